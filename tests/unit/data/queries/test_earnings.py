"""Creator earnings under row-level security, against an independent pandas computation.

The reference (metrics_reference.Reference) reads the base tables of the messy extract
(implausible rows, exchange-rate gaps) and applies the plausibility and rate rules itself; here
it is turned into earnings by the METRICS.md definition with plain pandas. The property test
walks many creators, studios and random month ranges: every line belongs to the scope, and the
totals (and the statement's) equal the reference's to rounding.
"""

from __future__ import annotations

import calendar
import random
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from data.queries import earnings as E
from data.queries.filters import Scope
from tests.unit.data.queries import metrics_reference as R

FIRST = date(2024, 11, 1)
LAST = date(2026, 10, 1)


@pytest.fixture(scope="module")
def cursor(messy_store):
    return messy_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


@pytest.fixture(scope="module")
def creators(cursor) -> pd.DataFrame:
    return cursor.execute("SELECT creator_id, revenue_share FROM dim_creator").df()


def _month_end(m: date) -> date:
    return date(m.year, m.month, calendar.monthrange(m.year, m.month)[1])


def reference_rows(
    ref: R.Reference, creators: pd.DataFrame, ids: set[int], first: date, last: date, currency: str
) -> pd.Series:
    """Earnings of creators ``ids`` per (month, title_id, stream) by the definition, in floats,
    unrounded."""
    lo, hi = pd.Timestamp(first), pd.Timestamp(_month_end(last))
    rev = ref.revenue[(ref.revenue["day"] >= lo) & (ref.revenue["day"] <= hi)].copy()
    rev["f"] = ref.factor(rev["day"], rev["currency"], currency, own=rev["to_usd"].to_numpy())
    rev["net_rep"] = rev["net"] * rev["f"]
    rev["month"] = rev["day"].dt.to_period("M")
    share = dict(zip(creators["creator_id"], creators["revenue_share"].astype(float), strict=True))
    direct = rev[rev["stream"].isin(["ppv", "ad"]) & rev["creator_id"].isin(ids)].copy()
    direct["earnings"] = direct["net_rep"] * direct["creator_id"].map(share)
    parts = [direct.groupby(["month", "title_id", "stream"])["earnings"].sum()]
    pool = rev[rev["stream"] == "subscription"].groupby("month")["net_rep"].sum()
    views = ref.views[(ref.views["day"] >= lo) & (ref.views["day"] <= hi)].copy()
    views["month"] = views["day"].dt.to_period("M")
    month_watch = views.groupby("month")["watch_seconds"].sum()
    mine = views[views["creator_id"].isin(ids)]
    watch = mine.groupby(["month", "title_id", "creator_id"])["watch_seconds"].sum()
    sub = {
        (month, title, "subscription"): pool.get(month, 0.0)
        * seconds
        / month_watch[month]
        * share[creator]
        for (month, title, creator), seconds in watch.items()
    }
    parts.append(pd.Series(sub, dtype="float64"))
    out = pd.concat(parts)
    return out.groupby(level=[0, 1, 2]).sum()


def test_lines_belong_to_the_scope_and_totals_match_the_reference(cursor, ref, creators):
    rng = random.Random(15)
    ids = sorted(int(c) for c in creators["creator_id"])
    months = E.month_range(FIRST, LAST)
    cases = [({c}, "USD") for c in ids[:6]] + [({1, 2}, "EUR"), (set(ids[-3:]), "JPY")]
    cases += [({rng.choice(ids)}, rng.choice(["USD", "EUR", "GBP"])) for _ in range(8)]
    for chosen, currency in cases:
        a, b = sorted(rng.sample(range(len(months)), 2))
        first, last = months[a], months[b]
        found = E.earnings(
            cursor, Scope.creators(chosen), first_month=first, last_month=last, currency=currency
        )
        assert set(found.lines["creator_id"]) <= chosen
        assert all(isinstance(v, Decimal) for v in found.rows["earnings"])
        assert all(first <= m <= last for m in found.lines["month"])
        expected = reference_rows(ref, creators, chosen, first, last, currency)
        unit = E.minor_unit(currency)
        # Every statement row is within one minor unit of the reference's exact row: gross and
        # fees are rounded (so that net = gross - fees on the statement), then net x share once.
        ours = {
            (pd.Period(r.month, "M"), r.title_id, r.stream): r.earnings
            for r in found.rows.itertuples()
        }
        for key, value in expected.items():
            if abs(value) < float(unit) / 2 and key not in ours:
                continue
            assert abs(float(ours[key]) - value) <= float(unit) + 1e-6, (
                key,
                value,
                ours[key],
            )
        assert (
            abs(float(found.total) - expected.sum()) <= float(unit) * 0.5 * len(found.rows) + 1e-6
        )
        # The statement of each month adds up to that month on the page; each row's earnings
        # are its net times the share, rounded once.
        for month in set(found.rows["month"]):
            table = E.statement(found, month)
            on_page = found.by("month").set_index("month").loc[month, "earnings"]
            lines = table.iloc[:-1]
            assert table["Earnings"].iloc[-1] == on_page == lines["Earnings"].sum()
            assert (lines["Net"] == lines["Gross"] - lines["Fees"]).all()
            assert all(
                e == E.round_money(n * r, currency)
                for e, n, r in zip(
                    lines["Earnings"], lines["Net"], lines["Revenue share"], strict=True
                )
            )


def test_a_studio_sees_each_creator_and_their_sum(cursor):
    both = E.earnings(cursor, Scope.creators([1, 2]), first_month=FIRST, last_month=LAST)
    each = [
        E.earnings(cursor, Scope.creators([1, 2]), first_month=FIRST, last_month=LAST, creators=[c])
        for c in (1, 2)
    ]
    assert both.total == each[0].total + each[1].total
    assert set(each[0].lines["creator_id"]) == {1}


def test_another_creators_id_narrows_to_nothing(cursor):
    mine = Scope.creators([1, 2])
    theirs = E.earnings(cursor, mine, first_month=FIRST, last_month=LAST, creators=[3])
    assert theirs.lines.empty and theirs.views.empty and theirs.total == 0
    assert E.payouts(cursor, mine, creators=[3]).empty
    nobody = Scope.creators(())
    assert E.earnings(cursor, nobody, first_month=FIRST, last_month=LAST).lines.empty
    assert E.creator_directory(cursor, nobody).empty
    assert E.payouts(cursor, nobody).empty
    # Narrowing never widens, whatever is asked for.
    assert Scope.creators([1]).narrow([1, 2, 3]).creator_ids == (1,)
    assert Scope.everything().narrow([4]).creator_ids == (4,)
    assert Scope.creators([1]).narrow(None).creator_ids == (1,)


def test_payouts_are_the_scopes_rows_in_exact_decimals(cursor):
    rows = E.payouts(cursor, Scope.creators([2]))
    assert len(rows) and set(rows["creator_id"]) == {2}
    assert all(isinstance(v, Decimal) for v in rows["amount"])
    everyone = E.payouts(cursor, Scope.everything())
    (count,) = cursor.execute("SELECT count(*) FROM fact_payout").fetchone()
    assert len(everyone) == count


def test_earnings_reconcile_with_the_demo_payouts(demo_store):
    """The demo generator pays each creator their earnings (converted at the month's last
    rate): an independent implementation of the same definition, to 0.1%."""
    cursor = demo_store.cursor()
    found = E.earnings(
        cursor, Scope.everything(), first_month=date(2025, 6, 1), last_month=LAST, by_country=False
    )
    ours = found.by("month", "creator_id")
    paid = E.payouts(cursor, Scope.everything(), first_month=date(2025, 6, 1), last_month=LAST)
    rates = {
        (d, c): r
        for d, c, r in cursor.execute(
            "SELECT rate_date, currency, rate_to_usd FROM fact_exchange_rate"
        ).fetchall()
    }
    joined = ours.merge(paid, left_on=["month", "creator_id"], right_on=["period", "creator_id"])
    assert len(joined) > 50
    for row in joined.itertuples():
        rate = 1.0 if row.currency == "USD" else rates[(_month_end(row.period), row.currency)]
        assert float(row.amount) * rate == pytest.approx(float(row.earnings), rel=2e-3, abs=0.05)


def test_country_lines_add_up_to_title_lines(cursor):
    scope = Scope.creators([1, 2, 5])
    a = E.earnings(cursor, scope, first_month=date(2026, 5, 1), last_month=LAST)
    b = E.earnings(cursor, scope, first_month=date(2026, 5, 1), last_month=LAST, by_country=False)
    assert a.total == b.total, "the statement rows do not depend on the country split"
    assert a.lines.loc[a.lines["stream"] == "ad", "country"].isna().all()
    assert a.lines.loc[a.lines["stream"] != "ad", "country"].notna().all()


def test_rate_gaps_are_left_out_and_counted(cursor):
    # JPY has no rates for 1-20 Aug 2026 in the messy extract.
    found = E.earnings(
        cursor, Scope.everything(), first_month=date(2026, 8, 1), last_month=date(2026, 8, 1)
    )
    assert found.left_out.get(date(2026, 8, 1), 0) > 0
    # A creator is told their own rows without a rate, never the platform's volumes.
    mine = E.earnings(
        cursor, Scope.creators([1]), first_month=date(2026, 8, 1), last_month=date(2026, 8, 1)
    )
    (own,) = cursor.execute(
        "SELECT count(*) FROM dv_revenue WHERE creator_id = 1 AND stream <> 'subscription' "
        "AND rate_usd IS NULL AND day BETWEEN DATE '2026-08-01' AND DATE '2026-08-31'"
    ).fetchone()
    assert sum(mine.left_out.values()) == own
    assert date(2026, 8, 1) in mine.pool_gaps


def test_pay_dates_and_minor_units():
    assert E.expected_pay_date(date(2026, 1, 1), "finalised", None, 15) == date(2026, 2, 15)
    assert E.expected_pay_date(date(2026, 1, 1), "finalised", None, 31) == date(2026, 2, 28)
    assert E.round_money(Decimal("10.005"), "USD") == Decimal("10.01")
    assert E.round_money(Decimal("1234.5"), "JPY") == Decimal("1235")
    assert E.month_range(date(2025, 11, 20), date(2026, 1, 3)) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
    ]
