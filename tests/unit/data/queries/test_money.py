"""Money in one reporting currency: conversion at each amount's day, and gaps made visible.

Two kinds of check: a tiny extract written by hand, where every converted amount is worked out
here on paper (a weekend takes Friday's rate, a rate 8 days old is no rate, NaN and negative
rates are none, an amount in the reporting currency needs no rate); and the messy demo extract
(tests/unit/data/queries/conftest.py, with rate gaps in JPY, GBP and BRL) against the
independent pandas reference, in USD and in EUR.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from data import schema
from data.extract.derived import build_derived
from data.queries import metrics as M
from data.queries import money
from data.queries.filters import Filters, Scope
from tests.unit.data.queries import metrics_reference as R
from tests.unit.data.queries.test_metrics import random_case

END = date(2026, 10, 31)


# --- by hand ---------------------------------------------------------------------------------------
def _tiny() -> duckdb.DuckDBPyConnection:
    """Revenue in four currencies over a week in March 2026, and the rates below."""
    con = duckdb.connect()
    for statement in schema.extract_ddl():
        con.execute(statement)
    rates = [
        # rate_date, currency, US dollars per unit
        (date(2026, 3, 6), "EUR", 1.10),  # a Friday; nothing on the weekend
        (date(2026, 3, 9), "EUR", 1.20),
        (date(2026, 3, 2), "JPY", 0.0070),  # then nothing: 8 days later there is no rate
        (date(2026, 3, 6), "GBP", -1.0),  # not a rate
        (date(2026, 3, 7), "GBP", float("nan")),  # not a rate either
        (date(2026, 3, 5), "GBP", 1.25),
    ]
    con.executemany(
        "INSERT INTO fact_exchange_rate VALUES (?, ?, ?, TIMESTAMP '2026-03-10')", rates
    )
    revenue = [
        # id, occurred_at, currency, net
        (1, datetime(2026, 3, 6, 12), "EUR", 100.00),  # 110.00 USD
        (2, datetime(2026, 3, 8, 12), "EUR", 10.00),  # Sunday: Friday's rate, 11.00 USD
        (3, datetime(2026, 3, 9, 12), "EUR", 10.00),  # 12.00 USD
        (4, datetime(2026, 3, 9, 12), "JPY", 1000.00),  # 7 days old: 7.00 USD
        (5, datetime(2026, 3, 10, 12), "JPY", 5000.00),  # 8 days old: no rate
        (6, datetime(2026, 3, 8, 12), "GBP", 8.00),  # NaN on the 7th, -1 on the 6th: 5th's, 10.00
        (7, datetime(2026, 3, 8, 12), "USD", 2.50),  # 2.50 USD, no rate needed
        (8, datetime(2026, 3, 10, 12), "USD", 4.00),  # 4.00 USD
    ]
    con.executemany(
        "INSERT INTO fact_revenue VALUES (?, ?, NULL, NULL, NULL, 'ppv', ?, 0, ?, ?, ?)",
        [(i, at, net, net, code, at) for i, at, code, net in revenue],
    )
    build_derived(con)
    return con


WEEK = Filters(date(2026, 3, 6), date(2026, 3, 10), comparison="none")


def test_amounts_are_converted_at_the_rate_of_their_day_by_hand():
    con = _tiny()
    usd = money.revenue_by_currency(con, WEEK, Scope(), "USD").set_index("currency")
    assert usd.at["EUR", "net_converted"] == pytest.approx(110 + 11 + 12)
    assert usd.at["JPY", "net_converted"] == pytest.approx(7.0)
    assert usd.at["JPY", "missing"] == 1 and usd.at["JPY", "missing_net"] == 5000
    assert usd.at["GBP", "net_converted"] == pytest.approx(10.0)
    assert usd.at["USD", "net_converted"] == pytest.approx(6.5)
    assert usd["missing"].sum() == 1
    kpi = M.kpis(con, WEEK, Scope(), ["net_revenue"], currency="USD").iloc[0]
    assert kpi["value"] == pytest.approx(133 + 7 + 10 + 6.5)
    assert kpi["currency"] == "USD"
    assert kpi["gap"] == "1 amount in JPY has no exchange rate and is not included."


def test_another_reporting_currency_converts_through_the_days_rates_by_hand():
    con = _tiny()
    eur = money.revenue_by_currency(con, WEEK, Scope(), "EUR").set_index("currency")
    # Amounts in EUR are not converted; the others at (their rate / EUR's rate) of their day.
    assert eur.at["EUR", "net_converted"] == pytest.approx(120.0)
    assert eur.at["JPY", "net_converted"] == pytest.approx(1000 * 0.0070 / 1.20)
    assert eur.at["GBP", "net_converted"] == pytest.approx(8 * 1.25 / 1.10)
    assert eur.at["USD", "net_converted"] == pytest.approx(2.5 / 1.10 + 4.0 / 1.20)
    assert eur.at["JPY", "missing"] == 1
    # In JPY: amounts in JPY need no rate, even on the 10th; the others convert with JPY's
    # rate of 2 March up to the 9th (7 days), and on the 10th there is none to convert to.
    jpy = money.revenue_by_currency(con, WEEK, Scope(), "JPY").set_index("currency")
    assert jpy.at["JPY", "net_converted"] == pytest.approx(6000.0)
    assert jpy.at["JPY", "missing"] == 0
    assert jpy.at["EUR", "net_converted"] == pytest.approx(133 / 0.0070)
    assert jpy.at["USD", "net_converted"] == pytest.approx(2.5 / 0.0070)
    assert jpy.at["USD", "missing"] == 1, "10 March: no JPY rate within 7 days"


def test_rate_factors_and_the_currency_rule():
    con = _tiny()
    days = [date(2026, 3, 8), date(2026, 3, 10)]
    factors = money.rate_factors(con, days, ["EUR", "JPY", "USD"], "USD")
    assert factors[(date(2026, 3, 8), "EUR")] == pytest.approx(1.10)
    assert factors[(date(2026, 3, 8), "USD")] == 1.0
    assert math.isnan(factors[(date(2026, 3, 10), "JPY")])
    assert money.rate_factors(con, days, ["JPY"], "JPY")[(date(2026, 3, 10), "JPY")] == 1.0
    for bad in ("usd", "US", "USDX", "", "1; DROP TABLE fact_revenue"):
        with pytest.raises(ValueError):
            money.check_currency(bad)
        with pytest.raises(ValueError):
            M.kpis(con, WEEK, Scope(), ["net_revenue"], currency=bad)


def test_money_is_formatted_with_its_currency_code_never_a_bare_sign():
    for mid in ("net_revenue", "mrr", "arpu", "cpm", "net_revenue_ppv"):
        shown = M.METRICS[mid].format(1234.5)
        assert shown.startswith("USD ") and "$" not in shown
        assert M.METRICS[mid].format(1234.5, "JPY").startswith("JPY ")
    assert M.METRICS["net_revenue"].format(1234.5, "EUR") == "EUR 1,234"
    assert M.METRICS["arpu"].format(9.5) == "USD 9.50"
    assert M.METRICS["ctr"].format(0.01) == "1.00%", "a rate of money is not money"


def test_gap_sentences():
    assert money.gap_notes({"JPY": 3, "BRL": 1, "GBP": 0}) == [
        "3 amounts in JPY have no exchange rate and are not included.",
        "1 amount in BRL has no exchange rate and is not included.",
    ]
    assert money.gap_notes({None: 2}) == [
        "2 amounts without a currency have no exchange rate and are not included."
    ]


# --- against the reference, on the messy extract ---------------------------------------------------
@pytest.fixture(scope="module")
def cursor(messy_store):
    return messy_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


def _reference_by_currency(ref, filters: Filters, scope: Scope, reporting: str) -> pd.DataFrame:
    r = ref.revenue
    m = (
        (r["day"] >= pd.Timestamp(filters.start))
        & (r["day"] <= pd.Timestamp(filters.end))
        & R._mask(
            r,
            filters,
            {
                "country": "v_country",
                "genre": "genre",
                "kind": "kind",
                "creator": "creator_id",
                "plan": "plan",
                "age_band": "age_band",
            },
        )
        & R._scope_mask(r, scope)
    )
    sr = r[m].copy()
    sr["converted"] = sr["net"] * ref.factor(sr["day"], sr["currency"], reporting)
    return sr.groupby("currency").agg(
        amounts=("net", "size"),
        net=("net", "sum"),
        net_converted=("converted", lambda x: x.sum(min_count=0)),
        missing=("converted", lambda x: int(x.isna().sum())),
    )


@pytest.mark.parametrize("reporting", ["USD", "EUR", "JPY"])
def test_revenue_by_currency_equals_pandas_with_the_gaps(cursor, ref, reporting):
    rng = random.Random(hash(reporting) % 997)
    options = {
        "country": ["US", "DE", "JP", "GB", "BR", "IN"],
        "device": ["tv"],
        "genre": sorted(ref.titles["genre"].unique()),
        "kind": sorted(ref.titles["kind"].unique()),
        "creator": sorted(str(c) for c in ref.titles["creator_id"].unique()),
        "plan": ["basic", "premium"],
        "age_band": ["25-34"],
    }
    gaps_seen = 0
    cases = [(Filters(date(2026, 7, 20), END, comparison="none"), Scope())]
    cases += [random_case(rng, (date(2024, 11, 1), END), options) for _ in range(25)]
    for filters, scope in cases:
        found = money.revenue_by_currency(cursor, filters, scope, reporting)
        if filters.active_dimensions & {"device"}:
            assert found.empty
            continue
        expected = _reference_by_currency(ref, filters, scope, reporting)
        assert sorted(found["currency"]) == sorted(expected.index), filters
        for row in found.itertuples(index=False):
            exp = expected.loc[row.currency]
            assert row.amounts == exp["amounts"]
            assert row.missing == exp["missing"], (row.currency, filters)
            R.assert_close(row.net, exp["net"], f"{row.currency} net")
            R.assert_close(row.net_converted, exp["net_converted"], f"{row.currency} {filters}")
        gaps_seen += int(found["missing"].sum())
        # The KPI is the converted total, and says what it left out.
        kpi = M.kpis(cursor, filters, scope, ["net_revenue"], currency=reporting).iloc[0]
        R.assert_close(kpi["value"], float(found["net_converted"].sum()), "kpi = table")
        for code, n in money.missing_by_currency(found).items():
            assert f"{n:,} amount" in kpi["gap"] and f" in {code} " in kpi["gap"]
    assert gaps_seen > 0, "the messy extract has amounts without a rate in these periods"


def test_mrr_is_converted_at_the_rates_of_the_periods_last_day(cursor, ref):
    # BRL has no rates after 15 October: valued on 31 October, BRL subscriptions have none.
    filters = Filters.for_preset("last_28_days", END, comparison="previous_period")
    for reporting in ("USD", "EUR"):
        table = M.kpis(cursor, filters, Scope(), ["mrr", "arpu"], reporting).set_index("metric")
        exp = R.values(ref, filters, Scope(), filters.start, filters.end, reporting)
        R.assert_close(table.at["mrr", "value"], exp["mrr"], f"mrr {reporting}")
        R.assert_close(table.at["arpu", "value"], exp["arpu"], f"arpu {reporting}")
        assert "in BRL have no exchange rate" in table.at["mrr", "gap"]
        comp = R.values(ref, filters, Scope(), *filters.comparison_period, reporting)
        R.assert_close(table.at["mrr", "comparison"], comp["mrr"], f"mrr then {reporting}")


@pytest.mark.parametrize("reporting", ["EUR", "GBP"])
def test_every_money_kpi_equals_pandas_in_another_currency(cursor, ref, reporting):
    rng = random.Random(len(reporting) * 31)
    options = {
        "country": ["US", "DE", "JP", "GB"],
        "device": ["tv", "mobile"],
        "genre": sorted(ref.titles["genre"].unique())[:3],
        "kind": sorted(ref.titles["kind"].unique()),
        "creator": sorted(str(c) for c in ref.titles["creator_id"].unique())[:3],
        "plan": ["basic", "standard"],
        "age_band": ["25-34", "35-44"],
    }
    ids = [m for m in M.METRICS if M.METRICS[m].money]
    for _ in range(20):
        filters, scope = random_case(rng, (date(2024, 11, 1), END), options)
        table = M.kpis(cursor, filters, scope, ids, currency=reporting).set_index("metric")
        exp = R.values(ref, filters, scope, filters.start, filters.end, reporting)
        for mid in ids:
            R.assert_close(table.at[mid, "value"], exp[mid], f"{mid} {reporting} {filters}")
