"""Money and the engagement rate end to end: rows in PostgreSQL (in Redshift's role), a real
sync (data.sync.run.run_sync), the metrics read from the encrypted extract.

The expected numbers are computed here from the warehouse's own rows with plain Python loops,
not from the extract or data/queries: each amount at the latest rate on or up to 7 days before
its UTC day, none when there is no such rate; the engagement rate as subscribers living in the
country with a start in the period / subscribers living in the country.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from data.queries import metrics as M
from data.queries import money
from data.queries.filters import Filters, Scope
from data.sync.run import run_sync

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 2, 12, 0, 0)
OCTOBER = Filters(date(2026, 10, 1), date(2026, 10, 31), comparison="none")


def _sync(wh, store, make_warehouse):
    result = run_sync(warehouse=make_warehouse(wh), store=store, now=NOW)
    assert result.ok, result.summary_lines()
    return result


def _expected_by_currency(wh, filters: Filters, reporting: str) -> dict[str, dict[str, float]]:
    """Per original currency: amounts, amounts without a rate, and the converted net."""
    rates: dict[str, dict[date, float]] = {}
    for day, code, rate in wh.sql(
        "SELECT rate_date, currency, rate_to_usd FROM fact_exchange_rate"
    ):
        if rate is not None and rate > 0 and math.isfinite(rate) and code != "USD":
            rates.setdefault(code, {})[day] = rate

    def to_usd(code: str, day: date) -> float | None:
        if code == "USD":
            return 1.0
        for back in range(8):  # the day itself and the 7 before it
            found = rates.get(code, {}).get(day - timedelta(days=back))
            if found is not None:
                return found
        return None

    out: dict[str, dict[str, float]] = {}
    rows = wh.sql(
        "SELECT occurred_at, currency, gross, fees, net FROM fact_revenue "
        "WHERE occurred_at >= %s AND occurred_at < %s",
        (filters.start, filters.end + timedelta(days=1)),
    )
    for occurred_at, code, gross, fees, net in rows:
        # Implausible rows (none here unless a test adds them) would not count.
        if fees < 0 or (gross >= 0 and fees > gross) or abs(net - (gross - fees)) > Decimal("0.01"):
            continue
        day = occurred_at.date()
        entry = out.setdefault(code, {"amounts": 0, "missing": 0, "converted": 0.0})
        entry["amounts"] += 1
        own, target = to_usd(code, day), to_usd(reporting, day)
        if code == reporting:
            entry["converted"] += float(net)
        elif own is None or target is None:
            entry["missing"] += 1
        else:
            entry["converted"] += float(net) * own / target
    return out


def _check(wh, store, reporting: str) -> dict[str, dict[str, float]]:
    expected = _expected_by_currency(wh, OCTOBER, reporting)
    found = money.revenue_by_currency(store.cursor(), OCTOBER, Scope(), reporting)
    assert sorted(found["currency"]) == sorted(expected)
    for row in found.itertuples(index=False):
        exp = expected[row.currency]
        assert row.amounts == exp["amounts"], row.currency
        assert row.missing == exp["missing"], row.currency
        assert row.net_converted == pytest.approx(exp["converted"], rel=1e-9, abs=1e-6)
    kpi = M.kpis(store.cursor(), OCTOBER, Scope(), ["net_revenue"], currency=reporting).iloc[0]
    total = sum(e["converted"] for e in expected.values())
    assert kpi["value"] == pytest.approx(total, rel=1e-9)
    assert kpi["currency"] == reporting
    for code, e in expected.items():
        if e["missing"]:
            assert f"{e['missing']:,} amount" in kpi["gap"] and f" in {code} " in kpi["gap"]
    return expected


def test_converted_totals_after_a_sync_equal_an_independent_computation(
    loaded, store, make_warehouse
):
    # The demo bills in nine currencies. JPY loses its rates from 8 October on (amounts up to
    # the 14th still take the 7th's rate, 7 days old at most); GBP gets unusable ones.
    loaded.sql(
        "DELETE FROM fact_exchange_rate WHERE currency = 'JPY' AND rate_date >= DATE '2026-10-08'"
    )
    loaded.sql(
        "UPDATE fact_exchange_rate SET rate_to_usd = -1 WHERE currency = 'GBP' "
        "AND rate_date BETWEEN DATE '2026-10-10' AND DATE '2026-10-20'"
    )
    _sync(loaded, store, make_warehouse)
    in_usd = _check(loaded, store, "USD")
    assert len(in_usd) >= 5, "several currencies in the period"
    assert in_usd["JPY"]["missing"] > 0, "JPY amounts after 14 October have no rate"
    assert in_usd["USD"]["missing"] == 0
    _check(loaded, store, "EUR")
    _check(loaded, store, "JPY")

    # An incremental sync brings JPY's rates back for 20-31 October, and a new revenue row in
    # JPY: the refreshed derived tables price what now has a rate.
    later = datetime(2026, 11, 2, 13, 0, 0)
    loaded.sql(
        "INSERT INTO fact_exchange_rate SELECT d::date, 'JPY', 0.0066, %s "
        "FROM generate_series(DATE '2026-10-20', DATE '2026-10-31', INTERVAL '1 day') AS d",
        (later,),
    )
    loaded.sql(
        "INSERT INTO fact_revenue SELECT max_id + 1, TIMESTAMP '2026-10-30 09:00:00', NULL, "
        "NULL, NULL, 'ppv', 10000, 290, 9710, 'JPY', %s FROM "
        "(SELECT max(revenue_id) AS max_id FROM fact_revenue) AS m",
        (later,),
    )
    result = run_sync(warehouse=make_warehouse(loaded), store=store, now=NOW + timedelta(hours=1))
    assert result.ok, result.summary_lines()
    assert result.table("fact_exchange_rate").mode == "incremental"
    again = _check(loaded, store, "USD")
    assert again["JPY"]["missing"] < in_usd["JPY"]["missing"]
    _check(loaded, store, "EUR")


def test_engagement_counts_one_population_in_the_warehouse_too(loaded, store, make_warehouse):
    """A viewer from NZ who watches without ever subscribing, and sessions of viewers from
    elsewhere played in NZ: the NZ engagement rate stays at most 100% and equals the
    definition computed from the warehouse's rows."""
    (nz_key,) = loaded.sql("SELECT min(viewer_key) - 1 FROM dim_viewer")[0]
    loaded.sql(
        "INSERT INTO dim_viewer SELECT %s, 'NZ', 'Auckland', '25-34', DATE '2026-09-01', "
        "'basic', 'organic', TIMESTAMP '2026-09-01 00:00:00'",
        (nz_key,),
    )
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id + 50000000, %s, title_id, started_at, "
        "watch_seconds, device, 'NZ', tz_offset_min, completed, updated_at FROM fact_view "
        "WHERE started_at >= TIMESTAMP '2026-10-01' ORDER BY view_id LIMIT 5",
        (nz_key,),
    )
    # 40 sessions of viewers who live elsewhere, played in NZ.
    loaded.sql(
        "UPDATE fact_view SET country = 'NZ' WHERE view_id IN (SELECT v.view_id FROM fact_view v "
        "JOIN dim_viewer w ON w.viewer_key = v.viewer_key WHERE w.country <> 'NZ' "
        "AND v.started_at >= TIMESTAMP '2026-10-01' ORDER BY v.view_id LIMIT 40)"
    )
    _sync(loaded, store, make_warehouse)

    lo, hi = datetime(2026, 10, 1), datetime(2026, 11, 1)
    subscribers = {
        key
        for (key,) in loaded.sql(
            "SELECT DISTINCT s.viewer_key FROM fact_subscription s JOIN dim_viewer w "
            "ON w.viewer_key = s.viewer_key WHERE w.country = 'NZ' AND s.started_at < %s "
            "AND (s.ended_at IS NULL OR s.ended_at >= %s)",
            (hi, lo),
        )
    }
    watchers = {
        key
        for (key,) in loaded.sql(
            "SELECT DISTINCT viewer_key FROM fact_view WHERE started_at >= %s AND started_at < %s",
            (lo, hi),
        )
    }
    played_in_nz = {
        key
        for (key,) in loaded.sql(
            "SELECT DISTINCT viewer_key FROM fact_view WHERE country = 'NZ' "
            "AND started_at >= %s AND started_at < %s",
            (lo, hi),
        )
    }
    assert nz_key in played_in_nz and nz_key not in subscribers
    filters = OCTOBER.with_dimension("country", ["NZ"])
    for memory in (True, False):
        from data.extract import build_cache

        build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS if memory else 0)
        try:
            table = M.kpis(store.cursor(), filters, Scope(), ["engagement_rate"])
        finally:
            build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)
        rate = table["value"].iloc[0]
        assert rate == pytest.approx(len(subscribers & watchers) / len(subscribers))
        assert 0 < rate <= 1
    # What the old definition gave: viewers of sessions played in NZ / NZ subscribers.
    assert len(played_in_nz) / len(subscribers) > 1
