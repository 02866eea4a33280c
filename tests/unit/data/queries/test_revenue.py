"""The Revenue page's queries (data/queries/revenue.py) against independent computations.

Three kinds of check:

- a tiny extract written by hand, where every figure of the MRR movement, the plan economics,
  the revenue waterfall and the ad table is worked out here on paper (an FX move, an upgrade, a
  downgrade after a gap, a churn, a currency without a rate, a title named like a formula);
- the demo extract and the messy one (tests/unit/data/queries/conftest.py: rate gaps in JPY,
  GBP and BRL, implausible rows) against pandas over the BASE tables: plausibility and rates
  come from ``metrics_reference.Reference`` (which never reads dv_* tables or data.queries),
  and each function's definition is restated here, row by row, in pandas;
- the rules every function keeps: scope (a creator sees only its titles' rows, subscription
  figures are not shown to it, an empty scope sees nothing), filters the data cannot honour give
  an empty frame, bounded ratios stay within [0, 1], gaps are counted and never converted 1:1,
  and the catalog (data/queries/metrics.py) agrees on the totals.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from data import schema
from data.extract.derived import build_derived
from data.queries import metrics as M
from data.queries import revenue as RV
from data.queries.filters import Filters, Scope
from tests.unit.data.queries import metrics_reference as R
from tests.unit.data.queries.test_metrics import random_case

END = date(2026, 10, 31)
FIRST = date(2024, 11, 1)
HYPERLINK = '=HYPERLINK("x")'

# dimension -> column of the reference frames, restated here (not imported from data/).
REV_DIMS = {
    "country": "v_country",
    "genre": "genre",
    "kind": "kind",
    "creator": "creator_id",
    "plan": "plan",
    "age_band": "age_band",
}
SUB_DIMS = {"country": "v_country", "age_band": "age_band", "plan": "plan"}
AD_DIMS = {"genre": "genre", "kind": "kind", "creator": "creator_id"}
FLOW_KEYS = {
    "stream": "stream",
    "country": "v_country",
    "plan": "plan",
    "genre": "genre",
    "creator": "creator_id",
    "title": "title_id",
}


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cursor(demo_store):
    return demo_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


@pytest.fixture(scope="module")
def messy(messy_store):
    return messy_store.cursor()


@pytest.fixture(scope="module")
def messy_ref(messy):
    return R.Reference.load(messy)


@pytest.fixture(scope="module")
def channels(cursor):
    return cursor.execute("SELECT viewer_key, acquisition_channel FROM dim_viewer").df()


@pytest.fixture(scope="module")
def options(ref):
    return {
        "country": ["US", "DE", "JP", "GB", "BR", "IN", "no-such-country"],
        "device": ["tv"],
        "genre": sorted(ref.titles["genre"].unique()),
        "kind": sorted(ref.titles["kind"].unique()),
        "creator": sorted(str(c) for c in ref.titles["creator_id"].unique()),
        "plan": ["basic", "premium", "standard", "ad_supported"],
        "age_band": sorted(ref.subs["age_band"].dropna().unique()),
    }


# --- the reference, restated in pandas ------------------------------------------------------------
def _ts(d: date) -> pd.Timestamp:
    return pd.Timestamp(d)


def _same(ref_value: float, value: float, what: str, atol: float = 1e-6) -> None:
    if isinstance(ref_value, float) and math.isnan(ref_value):
        assert math.isnan(value), f"{what}: expected NaN, got {value}"
        return
    assert not math.isnan(value), f"{what}: got NaN, expected {ref_value}"
    assert np.isclose(value, ref_value, rtol=1e-9, atol=atol), f"{what}: {value} != {ref_value}"


def _key(value, numeric: bool) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(int(value)) if numeric else str(value)


def _factor(ref, days: pd.Series, currencies: pd.Series, reporting: str) -> np.ndarray:
    """One unit of each currency in ``reporting`` on each day (NaN: no rate)."""
    days = pd.Series(pd.to_datetime(days).to_numpy(), index=currencies.index)
    return ref.factor(days, currencies.astype(object), reporting)


def _revenue_rows(ref, f: Filters, scope: Scope, lo: date, hi: date, currency: str):
    r = ref.revenue
    m = (
        (r["day"] >= _ts(lo))
        & (r["day"] <= _ts(hi))
        & R._mask(r, f, REV_DIMS)
        & R._scope_mask(r, scope)
    )
    rows = r[m].copy()
    factor = ref.factor(rows["day"], rows["currency"], currency, rows["to_usd"].to_numpy())
    for col in ("gross", "fees", "net"):
        rows[f"{col}_c"] = rows[col].to_numpy() * factor
    rows["priced"] = ~np.isnan(factor)
    return rows


def reference_flow(ref, f: Filters, scope: Scope, currency: str, by: str) -> dict:
    col, numeric = FLOW_KEYS[by], by in ("creator", "title")
    out: dict[str | None, dict[str, float]] = {}
    rows = _revenue_rows(ref, f, scope, f.start, f.end, currency)
    for value, g in rows.groupby(col, dropna=False):
        out[_key(value, numeric)] = {
            "gross": float(np.nansum(g["gross_c"])),
            "fees": float(np.nansum(g["fees_c"])),
            "net": float(np.nansum(g["net_c"])),
            "amounts": len(g),
            "missing": int((~g["priced"]).sum()),
            "comparison_net": 0.0,
        }
    comp = f.comparison_period
    if comp is not None:
        rows = _revenue_rows(ref, f, scope, comp[0], comp[1], currency)
        for value, g in rows.groupby(col, dropna=False):
            entry = out.setdefault(
                _key(value, numeric),
                {"gross": 0.0, "fees": 0.0, "net": 0.0, "amounts": 0, "missing": 0},
            )
            entry["comparison_net"] = float(np.nansum(g["net_c"]))
    for entry in out.values():
        entry.setdefault("comparison_net", 0.0)
        if comp is None:
            entry["comparison_net"] = math.nan
    return out


def reference_buckets(start: date, end: date, grain: str) -> list[tuple[date, date]]:
    """Days; weeks Monday to Sunday; calendar months; cut by the period."""
    out, d = [], start
    while d <= end:
        if grain == "day":
            last = d
        elif grain == "week":
            last = d + timedelta(days=6 - d.weekday())
        else:
            last = (d.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        last = min(last, end)
        out.append((d, last))
        d = last + timedelta(days=1)
    return out


def reference_movement(ref, f: Filters, currency: str) -> list[dict]:
    """MRR movement as revenue.py defines it, over every viewer of every month (no shortcut)."""
    s = ref.subs[R._mask(ref.subs, f, SUB_DIMS)].copy()
    s["start_day"] = s["started_at"].dt.normalize()
    s["end_day"] = s["ended_at"].dt.normalize()
    out = []
    m = f.start.replace(day=1)
    while m <= f.end:
        month_end = (m + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        o = max(m, f.start) - timedelta(days=1)
        c = min(month_end, f.end)

        def active(day: date) -> pd.Series:
            return (s["start_day"] <= _ts(day)) & (s["end_day"].isna() | (s["end_day"] > _ts(day)))

        ao, ac = active(o), active(c)
        x = s[ao | ac].copy()
        x["ao"], x["ac"] = ao[ao | ac], ac[ao | ac]
        cents = np.round(x["monthly_price"].to_numpy() * 100)
        fo = _factor(ref, pd.Series([_ts(o)] * len(x), index=x.index), x["currency"], currency)
        fc = _factor(ref, pd.Series([_ts(c)] * len(x), index=x.index), x["currency"], currency)
        xo, xc = x["ao"].to_numpy(), x["ac"].to_numpy()
        excluded = (cents > 0) & ((xo & np.isnan(fo)) | (xc & np.isnan(fc)))
        r = np.where(np.isnan(fo), fc, fo)
        with np.errstate(invalid="ignore"):
            x["opening"] = np.where(xo & (cents > 0), cents * fo, 0.0)
            x["closing"] = np.where(xc & (cents > 0), cents * fc, 0.0)
            x["delta"] = np.where(
                (cents > 0) & (xo != xc), np.where(xc, cents * r, -cents * fo), 0.0
            )
            x["fx"] = np.where(xc & (cents > 0), cents * (fc - r), 0.0)
        missing = int(excluded.sum())
        kept = x[~excluded]
        v = kept.groupby("viewer_key").agg(
            was=("ao", "any"),
            now=("ac", "any"),
            opening=("opening", "sum"),
            closing=("closing", "sum"),
            delta=("delta", "sum"),
            fx=("fx", "sum"),
        )
        both = v["was"] & v["now"]
        out.append(
            {
                "month": m,
                "opening_day": o,
                "closing_day": c,
                "opening": v["opening"].sum() / 100,
                "new": v.loc[~v["was"], "closing"].sum() / 100,
                "expansion": v.loc[both, "delta"].clip(lower=0).sum() / 100,
                "contraction": (-v.loc[both, "delta"]).clip(lower=0).sum() / 100,
                "churned": v.loc[~v["now"], "opening"].sum() / 100,
                "fx": v.loc[both, "fx"].sum() / 100,
                "closing": v["closing"].sum() / 100,
                "new_viewers": int((v["now"] & ~v["was"]).sum()),
                "churned_viewers": int((v["was"] & ~v["now"]).sum()),
                "missing": missing,
            }
        )
        m = month_end + timedelta(days=1)
    return out


def reference_plans(ref, channels, f: Filters, currency: str, by: str) -> dict:
    s = ref.subs.merge(channels, on="viewer_key", how="left")
    s["start_day"] = s["started_at"].dt.normalize()
    s["end_day"] = s["ended_at"].dt.normalize()
    everyone = s.copy()
    s = s[R._mask(s, f, SUB_DIMS)].copy()
    a, b = _ts(f.start), _ts(f.end)
    open_ = s["end_day"].isna()
    s["at_start"] = (s["start_day"] < a) & (open_ | (s["end_day"] >= a))
    s["started"] = (s["start_day"] >= a) & (s["start_day"] <= b)
    s["cancelled"] = ((s["end_day"] >= a) & (s["end_day"] <= b)).fillna(False)
    s["at_end"] = (s["start_day"] <= b) & (open_ | (s["end_day"] > b))
    factor = _factor(ref, pd.Series([b] * len(s), index=s.index), s["currency"], currency)
    priced = ~np.isnan(factor)
    paid = s["monthly_price"].to_numpy() > 0
    s["paying"] = s["at_end"].to_numpy() & paid & priced
    s["mrr"] = np.where(s["at_end"].to_numpy() & priced, s["monthly_price"].to_numpy(), 0.0)
    s["mrr"] = s["mrr"] * np.where(priced, factor, 0.0)
    s["missing"] = s["at_end"].to_numpy() & paid & ~priced
    # A cancellation is won back when the viewer starts another subscription (any plan) on or
    # after its end day and by the period's end.
    cancelled = s.loc[s["cancelled"], ["subscription_id", "viewer_key", "end_day"]]
    later = everyone.loc[
        (everyone["start_day"] >= a) & (everyone["start_day"] <= b),
        ["subscription_id", "viewer_key", "start_day"],
    ]
    pairs = cancelled.merge(later, on="viewer_key", suffixes=("", "_new"))
    won = pairs[
        (pairs["start_day"] >= pairs["end_day"])
        & (pairs["subscription_id_new"] != pairs["subscription_id"])
    ]
    s["resubscribed"] = s["subscription_id"].isin(set(won["subscription_id"]))
    next_month = (f.start.replace(day=1) + timedelta(days=32)).replace(day=1)
    whole_month = f.start.day == 1 and f.end == next_month - timedelta(days=1)
    col = "plan" if by == "plan" else "acquisition_channel"
    out = {}
    for value, g in s.groupby(col, dropna=False):
        at_risk = float(g["at_start"].sum() + g["started"].sum())
        cancelled_n = float(g["cancelled"].sum())
        relevant = at_risk + g["at_end"].sum() + cancelled_n
        if not relevant:
            continue
        mrr = float(g["mrr"].sum())
        paying = float(g["paying"].sum())
        arpu = mrr / paying if paying else math.nan
        gross = cancelled_n / at_risk if at_risk else math.nan
        net = (cancelled_n - g["resubscribed"].sum()) / at_risk if at_risk else math.nan
        days = (f.end - f.start).days + 1
        monthly = gross if whole_month else 1 - (1 - gross) ** (30 / days)
        out[_key(value, False)] = {
            "subscribers": int(g["at_end"].sum()),
            "paying": int(paying),
            "mrr": mrr,
            "arpu": arpu,
            "active_at_start": int(g["at_start"].sum()),
            "started": int(g["started"].sum()),
            "cancelled": int(cancelled_n),
            "resubscribed": int(g["resubscribed"].sum()),
            "gross_churn": gross,
            "net_churn": net,
            "monthly_churn": monthly,
            "ltv": arpu / monthly if monthly and monthly > 0 else math.nan,
            "missing": int(g["missing"].sum()),
        }
    return out


def reference_ads(ref, f: Filters, scope: Scope, currency: str, by: str) -> dict:
    def rows(lo: date, hi: date) -> pd.DataFrame:
        a = ref.ads
        m = (
            (a["day"] >= _ts(lo))
            & (a["day"] <= _ts(hi))
            & R._mask(a, f, AD_DIMS)
            & R._scope_mask(a, scope)
        )
        x = a[m].copy()
        factor = _factor(ref, x["day"], pd.Series(["USD"] * len(x), index=x.index), currency)
        x["rev"] = x["ad_revenue"].to_numpy() * factor
        x["priced"] = ~np.isnan(factor)
        return x

    col, numeric = ("title_id", True) if by == "title" else ("campaign", False)
    out: dict[str | None, dict[str, float]] = {}
    for value, g in rows(f.start, f.end).groupby(col, dropna=False):
        priced_impressions = float(g.loc[g["priced"], "impressions"].sum())
        revenue = float(np.nansum(g["rev"]))
        impressions = float(g["impressions"].sum())
        out[_key(value, numeric)] = {
            "impressions": impressions,
            "clicks": float(g["clicks"].sum()),
            "ad_revenue": revenue,
            "cpm": revenue * 1000 / priced_impressions if priced_impressions else math.nan,
            "ctr": float(g["clicks"].sum()) / impressions if impressions else math.nan,
            "missing": int((~g["priced"]).sum()),
            "comparison_ad_revenue": 0.0,
        }
    comp = f.comparison_period
    if comp is None:
        for entry in out.values():
            entry["comparison_ad_revenue"] = math.nan
    else:
        for value, g in rows(*comp).groupby(col, dropna=False):
            entry = out.setdefault(
                _key(value, numeric),
                {
                    "impressions": 0.0,
                    "clicks": 0.0,
                    "ad_revenue": 0.0,
                    "cpm": math.nan,
                    "ctr": math.nan,
                    "missing": 0,
                },
            )
            entry["comparison_ad_revenue"] = float(np.nansum(g["rev"]))
    return out


def _compare_keyed(frame: pd.DataFrame, expected: dict, columns, what: str) -> None:
    found = dict(zip(frame["key"].tolist(), frame.to_dict("records"), strict=True))
    assert set(found) == set(expected), f"{what}: keys {set(found) ^ set(expected)}"
    for key, values in expected.items():
        for col in columns:
            _same(values[col], float(found[key][col]), f"{what} [{key}] {col}")


# --- by hand --------------------------------------------------------------------------------------
def _tiny() -> duckdb.DuckDBPyConnection:
    """A hand-made extract for February 2026 (see the worked figures in the tests below)."""
    con = duckdb.connect()
    for statement in schema.extract_ddl():
        con.execute(statement)
    stamp = datetime(2026, 3, 1)
    rates = [
        (date(2026, 1, 31), "EUR", 1.10),
        (date(2026, 2, 20), "EUR", 1.15),
        (date(2026, 2, 28), "EUR", 1.20),
        (date(2026, 1, 31), "GBP", 1.25),
        (date(2026, 2, 28), "GBP", 1.30),
        # no JPY rate at all
    ]
    con.executemany(
        "INSERT INTO fact_exchange_rate VALUES (?, ?, ?, ?)", [(*r, stamp) for r in rates]
    )
    con.executemany(
        "INSERT INTO dim_creator VALUES (?, ?, 'studio', 0.5, 'US', ?)",
        [(1, "Creator One", stamp), (2, "Creator Two", stamp)],
    )
    con.executemany(
        "INSERT INTO dim_title (title_id, name, kind, genre, genres, release_date, runtime_min, "
        "language, maturity, creator_id, licensing_cost, budget, updated_at) "
        "VALUES (?, ?, 'movie', ?, ?, DATE '2025-01-01', 90, 'en', 'PG', ?, 0, 0, ?)",
        [(1, HYPERLINK, "Drama", "Drama", 1, stamp), (2, "Plain", "Comedy", "Comedy", 2, stamp)],
    )
    viewers = [
        (k, "DE" if k in (1, 4) else "US", "search" if k % 2 else "organic") for k in range(1, 7)
    ]
    con.executemany(
        "INSERT INTO dim_viewer VALUES (?, ?, 'r', '25-34', DATE '2025-01-01', 'basic', ?, ?)",
        [(*v, stamp) for v in viewers],
    )
    subs = [
        # id, viewer, plan, started, ended, price, currency
        (1, 1, "basic", datetime(2025, 12, 1), None, 10.00, "EUR"),  # unchanged: FX only
        (2, 2, "standard", datetime(2026, 2, 10), None, 15.00, "USD"),  # new
        (3, 3, "basic", datetime(2025, 11, 1), datetime(2026, 2, 15), 8.00, "GBP"),  # churned
        (4, 4, "basic", datetime(2025, 10, 1), datetime(2026, 2, 20, 9), 10.00, "EUR"),
        (5, 4, "premium", datetime(2026, 2, 20, 9), None, 15.00, "EUR"),  # upgrade same day
        (6, 5, "premium", datetime(2025, 9, 1), datetime(2026, 2, 5), 20.00, "USD"),
        (7, 5, "basic", datetime(2026, 2, 12), None, 7.00, "USD"),  # back after a gap, cheaper
        (8, 6, "basic", datetime(2025, 12, 1), None, 1000.00, "JPY"),  # no rate, ever
    ]
    con.executemany(
        "INSERT INTO fact_subscription VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*s, stamp) for s in subs],
    )
    revenue = [
        # id, at, viewer, title, creator, stream, gross, fees, net, currency
        (1, datetime(2026, 2, 21, 12), 1, 1, 1, "ppv", 10.00, 1.00, 9.00, "EUR"),
        (2, datetime(2026, 2, 21, 13), 2, 1, 1, "ppv", 5.00, 0.50, 4.50, "USD"),
        (3, datetime(2026, 2, 21, 0), None, 1, 1, "ad", 2.00, 0.60, 1.40, "USD"),
        (4, datetime(2026, 2, 10, 8), 1, None, None, "subscription", 10.00, 0.50, 9.50, "EUR"),
        (5, datetime(2026, 2, 10, 9), 2, None, None, "subscription", 15.00, 0.75, 14.25, "USD"),
        (6, datetime(2026, 2, 21, 14), 6, 2, 2, "ppv", 1000.00, 100.00, 900.00, "JPY"),
    ]
    con.executemany(
        "INSERT INTO fact_revenue VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, stamp) for r in revenue],
    )
    con.executemany(
        "INSERT INTO fact_ad VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (date(2026, 2, 21), 1, "Spring", 1000, 10, 5.00, stamp),
            (date(2026, 2, 22), 2, "Spring", 500, 5, 2.00, stamp),
            (date(2026, 2, 22), 2, "Winter", 400, 0, 1.00, stamp),
        ],
    )
    build_derived(con)
    return con


FEB = Filters(date(2026, 2, 1), date(2026, 2, 28), comparison="none")


def test_mrr_movement_by_hand_with_an_fx_move_an_upgrade_a_downgrade_and_a_gap():
    con = _tiny()
    row = RV.mrr_movement(con, FEB, Scope()).iloc[0]
    assert row["month"] == date(2026, 2, 1)
    assert row["opening_day"] == date(2026, 1, 31) and row["closing_day"] == date(2026, 2, 28)
    # Opening at 31 January: EUR 10 x 1.10 + GBP 8 x 1.25 + EUR 10 x 1.10 + USD 20.
    assert row["opening"] == pytest.approx(11.00 + 10.00 + 11.00 + 20.00)
    assert row["new"] == pytest.approx(15.00)  # viewer 2
    assert row["expansion"] == pytest.approx(5.50)  # viewer 4: +EUR 5 at the opening rate
    assert row["contraction"] == pytest.approx(13.00)  # viewer 5: USD 20 -> 7, after a gap
    assert row["churned"] == pytest.approx(10.00)  # viewer 3
    # Viewer 1: EUR 10 x (1.20 - 1.10); viewer 4: EUR 15 x (1.20 - 1.10).
    assert row["fx"] == pytest.approx(1.00 + 1.50)
    # Closing at 28 February: EUR 10 x 1.20 + USD 15 + EUR 15 x 1.20 + USD 7.
    assert row["closing"] == pytest.approx(12.00 + 15.00 + 18.00 + 7.00)
    assert (row["new_viewers"], row["churned_viewers"]) == (1, 1)
    assert row["missing"] == 1, "the JPY subscription has no rate: left out, counted, never 1:1"
    mrr = M.kpis(con, FEB, Scope(), ["mrr"]).set_index("metric").at["mrr", "value"]
    assert row["closing"] == pytest.approx(mrr)
    # In the viewer's own currency nothing moves by FX.
    eur = RV.mrr_movement(con, FEB, Scope(), currency="EUR").iloc[0]
    _assert_identity(pd.DataFrame([eur]))
    assert eur["expansion"] == pytest.approx(5.00)


def test_plan_economics_by_hand():
    con = _tiny()
    table = RV.plan_economics(con, FEB, Scope()).set_index("key")
    assert list(table.index) == ["basic", "premium", "standard"], "sorted by MRR"
    basic = table.loc["basic"]
    # At risk: 1, 3, 4 and 8 active at the start, 7 started; 3 and 4 cancelled, and viewer 4
    # subscribed again (premium) on the day 4 ended.
    assert (basic["active_at_start"], basic["started"], basic["cancelled"]) == (4, 1, 2)
    assert basic["resubscribed"] == 1
    assert basic["gross_churn"] == pytest.approx(2 / 5)
    assert basic["net_churn"] == pytest.approx(1 / 5)
    assert basic["monthly_churn"] == pytest.approx(2 / 5), "a whole month is its own month"
    assert (basic["subscribers"], basic["paying"], basic["missing"]) == (3, 2, 1)
    assert basic["mrr"] == pytest.approx(12.00 + 7.00)
    assert basic["arpu"] == pytest.approx(9.50)
    assert basic["ltv"] == pytest.approx(9.50 / 0.4)
    premium = table.loc["premium"]
    # 6 cancelled on 5 February, viewer 5 came back on the 12th (on basic): won back.
    assert (premium["cancelled"], premium["resubscribed"]) == (1, 1)
    assert premium["gross_churn"] == pytest.approx(0.5) and premium["net_churn"] == 0
    assert premium["ltv"] == pytest.approx(18.00 / 0.5)
    standard = table.loc["standard"]
    assert standard["gross_churn"] == 0 and math.isnan(standard["ltv"]), "no churn: no LTV, no inf"
    # A two-week period: the rate compounds to 30 days.
    half = Filters(date(2026, 2, 1), date(2026, 2, 14), comparison="none")
    part = RV.plan_economics(con, half, Scope()).set_index("key")
    assert part.at["premium", "gross_churn"] == 1.0 and part.at["premium", "monthly_churn"] == 1.0
    assert part.at["basic", "monthly_churn"] == 0.0
    by_channel = RV.plan_economics(con, FEB, Scope(), by="acquisition_channel")
    assert by_channel["subscribers"].sum() == table["subscribers"].sum()
    assert set(by_channel["key"]) == {"search", "organic"}


def test_revenue_waterfall_ads_and_a_formula_like_title_by_hand():
    con = _tiny()
    flow = RV.revenue_flow(con, FEB, Scope(), by="stream").set_index("key")
    assert list(flow.index) == ["ppv", "subscription", "ad"]
    # The EUR purchase on 21 February at 1.15; the JPY one has no rate.
    assert flow.at["ppv", "gross"] == pytest.approx(11.50 + 5.00)
    assert flow.at["ppv", "fees"] == pytest.approx(1.15 + 0.50)
    assert flow.at["ppv", "net"] == pytest.approx(10.35 + 4.50)
    assert (flow.at["ppv", "amounts"], flow.at["ppv", "missing"]) == (3, 1)
    # The EUR charge on 10 February: the 31 January rate is 10 days old, so none.
    assert flow.at["subscription", "net"] == pytest.approx(14.25)
    assert flow.at["subscription", "missing"] == 1
    assert flow.at["ad", "net"] == pytest.approx(1.40)
    assert math.isnan(flow.at["ad", "comparison_net"]), "no comparison period"
    assert flow.loc["ppv", "label"] == "Pay-per-view"
    titles = RV.revenue_flow(con, FEB, Scope(), by="title").set_index("key")
    assert titles.at["1", "label"] == HYPERLINK, "a title comes back as its own text"
    unattributed = titles[titles.index.isna()]
    assert unattributed["label"].tolist() == ["Subscriptions (not attributed to titles)"]
    assert titles.at["1", "net"] == pytest.approx(10.35 + 4.50 + 1.40)
    countries = RV.revenue_flow(con, FEB, Scope(), by="country")
    assert "Advertising (no viewer)" in set(countries["label"])
    ads = RV.ad_performance(con, FEB, Scope()).set_index("key")
    assert ads.at["1", "label"] == HYPERLINK
    assert ads.at["1", "cpm"] == pytest.approx(5.00) and ads.at["1", "ctr"] == pytest.approx(0.01)
    assert ads.at["2", "ad_revenue"] == pytest.approx(3.00)
    eur = RV.ad_performance(con, FEB, Scope(), currency="EUR", by="campaign").set_index("key")
    assert eur.at["Spring", "ad_revenue"] == pytest.approx((5.00 + 2.00) / 1.15)
    assert eur.at["Winter", "ctr"] == 0
    assert isinstance(RV.FILL_RATE_NOTE, str) and "request" in RV.FILL_RATE_NOTE


# --- against pandas, on the demo and the messy extract --------------------------------------------
FLOW_CASES = [
    (Filters(date(2026, 8, 1), END), Scope()),
    (Filters(date(2025, 3, 1), date(2025, 4, 13), comparison="same_period_last_year"), Scope()),
    (
        Filters(date(2026, 5, 4), date(2026, 7, 2), countries=("US", "DE"), plans=("basic",)),
        Scope(),
    ),
    (Filters(date(2026, 1, 1), date(2026, 3, 31), comparison="none", genres=("Drama",)), Scope()),
]


@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_revenue_flow_equals_pandas(cursor, ref, currency):
    for f, scope in FLOW_CASES:
        for by in RV.FLOW_BY:
            table = RV.revenue_flow(cursor, f, scope, currency=currency, by=by)
            assert list(table.columns) == list(RV.FLOW_COLUMNS)
            expected = reference_flow(ref, f, scope, currency, by)
            _compare_keyed(
                table,
                expected,
                ("gross", "fees", "net", "comparison_net", "amounts", "missing"),
                f"{by} {currency} {f}",
            )
            assert table["net"].is_monotonic_decreasing
            ok = table["comparison_net"].notna() & (table["comparison_net"] != 0)
            change = (table["net"] - table["comparison_net"]) / table["comparison_net"].abs()
            assert np.allclose(table.loc[ok, "change_pct"], change[ok])
            assert table.loc[~ok, "change_pct"].isna().all()
        # The waterfall adds up to the catalog's net revenue.
        streams = RV.revenue_flow(cursor, f, scope, currency=currency, by="stream")
        kpi = M.kpis(cursor, f, scope, ["net_revenue"], currency=currency).iloc[0]
        assert streams["net"].sum() == pytest.approx(kpi["value"], rel=1e-9)
        # gross - fees = net on every plausible row (to the cent).
        assert (
            (streams["gross"] - streams["fees"] - streams["net"]).abs()
            <= 0.02 * streams["amounts"] + 1e-6
        ).all()


def test_flow_labels_name_creators_and_titles(cursor, ref):
    f = FLOW_CASES[0][0]
    titles = RV.revenue_flow(cursor, f, Scope(), by="title")
    names = dict(zip(ref.titles["title_id"].astype(str), ref.titles["name"], strict=True))
    for key, label in zip(titles["key"], titles["label"], strict=True):
        if key is None:
            assert label == "Subscriptions (not attributed to titles)"
        else:
            assert label == names[key]
    creators = RV.revenue_flow(cursor, f, Scope(), by="creator")
    creator_names = dict(
        cursor.execute("SELECT CAST(creator_id AS VARCHAR), name FROM dim_creator").fetchall()
    )
    assert all(
        label == creator_names[key]
        for key, label in zip(creators["key"], creators["label"], strict=True)
        if key is not None
    )


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_revenue_over_time_equals_pandas_with_aligned_comparison(cursor, ref, grain):
    cases = [
        Filters(date(2026, 7, 15), END, comparison="previous_period"),
        Filters(date(2026, 2, 20), date(2026, 4, 3), comparison="same_period_last_year"),
        Filters(date(2026, 9, 3), date(2026, 10, 9), comparison="none", countries=("US",)),
    ]
    for f in cases:
        for currency in ("USD", "EUR"):
            table = RV.revenue_over_time(cursor, f, Scope(), currency=currency, grain=grain)
            assert list(table.columns) == list(RV.OVER_TIME_COLUMNS)
            buckets = reference_buckets(f.start, f.end, grain)
            assert len(table) == len(buckets) * 3, "every bucket and stream, zeros included"
            got = {(r["bucket"], r["stream"]): r for r in table.to_dict("records")}
            # Every row of the period and its comparison once, summed per day and stream.
            lo = min(f.start, (f.comparison_period or (f.start,))[0])
            rows = _revenue_rows(ref, f, Scope(), lo, f.end, currency)
            rows["unpriced"] = ~rows["priced"]
            daily = rows.groupby(["day", "stream"])[["net_c", "unpriced"]].sum(min_count=0)
            span = pd.date_range(_ts(lo) - pd.Timedelta(days=1), _ts(f.end))
            running = {
                col: daily[col].unstack("stream").reindex(span).fillna(0.0).cumsum()
                for col in ("net_c", "unpriced")
            }

            def total(a: date, b: date, stream: str, col: str, running=running) -> float:
                table = running[col]
                if stream not in table:
                    return 0.0
                before = _ts(a) - pd.Timedelta(days=1)
                return float(table.at[_ts(b), stream] - table.at[before, stream])

            for b0, b1 in buckets:
                comp = R.comparison_days(f, b0, b1)
                for stream in ("subscription", "ppv", "ad"):
                    row = got[(b0, stream)]
                    assert row["bucket_end"] == b1 and row["days"] == (b1 - b0).days + 1
                    what = f"{grain} {currency} {f} {b0} {stream}"
                    _same(total(b0, b1, stream, "net_c"), row["net"], what)
                    assert row["missing"] == total(b0, b1, stream, "unpriced")
                    expected = math.nan if comp is None else total(*comp, stream, "net_c")
                    _same(expected, row["comparison"], f"{what} comparison")
            natural = reference_buckets(
                f.start - timedelta(days=40), f.end + timedelta(days=40), grain
            )
            whole = {b for b in natural if f.start <= b[0] and b[1] <= f.end}
            for r in table.to_dict("records"):
                assert r["partial"] == ((r["bucket"], r["bucket_end"]) not in whole)


def test_29_february_has_no_comparison_day_last_year(cursor):
    f = Filters(date(2028, 2, 27), date(2028, 3, 1), comparison="same_period_last_year")
    table = RV.revenue_over_time(cursor, f, Scope(), grain="day")
    leap = table[table["bucket"] == date(2028, 2, 29)]
    assert len(leap) == 3 and leap["comparison"].isna().all()
    assert (table.loc[table["bucket"] != date(2028, 2, 29), "comparison"] == 0).all()
    week = RV.revenue_over_time(cursor, f, Scope(), grain="week")
    assert week["comparison"].notna().all(), "a week across the end of February has days"


def _assert_identity(table: pd.DataFrame) -> None:
    cents = {c: (table[c] * 100).round().astype("int64") for c in RV.MOVEMENT_COLUMNS[3:10]}
    moved = (
        cents["opening"]
        + cents["new"]
        + cents["expansion"]
        - cents["contraction"]
        - cents["churned"]
        + cents["fx"]
    )
    assert (moved == cents["closing"]).all(), "opening + movements == closing, to the cent"
    floats = (
        table["opening"]
        + table["new"]
        + table["expansion"]
        - table["contraction"]
        - table["churned"]
        + table["fx"]
    )
    assert np.allclose(floats, table["closing"], rtol=0, atol=1e-6)
    for col in ("new", "expansion", "contraction", "churned"):
        assert (table[col] >= 0).all()


MOVEMENT_CASES = [
    Filters(date(2026, 2, 10), date(2026, 5, 20)),  # months cut at both ends
    Filters(date(2025, 11, 1), date(2026, 1, 31), countries=("US", "GB", "JP")),
    Filters(date(2026, 9, 1), date(2026, 9, 30), plans=("premium", "basic")),
]


@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_mrr_movement_equals_pandas_and_adds_up(cursor, ref, currency):
    for f in MOVEMENT_CASES:
        table = RV.mrr_movement(cursor, f, Scope(), currency=currency)
        assert list(table.columns) == list(RV.MOVEMENT_COLUMNS)
        expected = reference_movement(ref, f, currency)
        assert len(table) == len(expected)
        for row, exp in zip(table.to_dict("records"), expected, strict=True):
            for col in (
                "month",
                "opening_day",
                "closing_day",
                "new_viewers",
                "churned_viewers",
                "missing",
            ):
                assert row[col] == exp[col], f"{col} {f} {currency}: {row[col]} != {exp[col]}"
            for col in ("opening", "new", "expansion", "contraction", "churned", "closing"):
                assert row[col] == pytest.approx(exp[col], abs=0.006), f"{col} {f} {currency}"
            assert row["fx"] == pytest.approx(exp["fx"], abs=0.03), f"fx {f} {currency}"
        _assert_identity(table)
        # The months chain, and the last closing is the catalog's MRR of the period.
        assert (table["closing"].to_numpy()[:-1] == table["opening"].to_numpy()[1:]).all()
        mrr = M.kpis(cursor, f, Scope(), ["mrr"], currency=currency).set_index("metric")
        assert table["closing"].iloc[-1] == pytest.approx(mrr.at["mrr", "value"], abs=0.006)
        if currency == "USD":
            fx = RV.mrr_movement(cursor, f, Scope(), currency="USD")["fx"]
            assert (fx != 0).any(), "the demo bills in nine currencies: rates move MRR"


@pytest.mark.parametrize("by", ["plan", "acquisition_channel"])
def test_plan_economics_equals_pandas(cursor, ref, channels, by):
    cases = [
        (Filters(date(2026, 9, 1), date(2026, 9, 30)), "USD"),  # a calendar month
        (Filters(date(2026, 8, 4), END), "EUR"),
        (Filters(date(2025, 6, 1), date(2025, 6, 7), countries=("US", "DE")), "USD"),
        (Filters(date(2025, 1, 1), date(2025, 12, 31), plans=("premium",)), "EUR"),
    ]
    columns = [c for c in RV.PLAN_COLUMNS if c not in ("key", "label")]
    for f, currency in cases:
        table = RV.plan_economics(cursor, f, Scope(), currency=currency, by=by)
        assert list(table.columns) == list(RV.PLAN_COLUMNS)
        expected = reference_plans(ref, channels, f, currency, by)
        _compare_keyed(table, expected, columns, f"{by} {currency} {f}")
        assert table["mrr"].is_monotonic_decreasing
        # Summed over the groups: the catalog's MRR and gross churn.
        kpi = M.kpis(cursor, f, Scope(), ["mrr", "gross_churn"], currency=currency)
        kpi = kpi.set_index("metric")["value"]
        assert table["mrr"].sum() == pytest.approx(kpi["mrr"], rel=1e-9)
        pooled = table["cancelled"].sum() / (
            table["active_at_start"].sum() + table["started"].sum()
        )
        assert pooled == pytest.approx(kpi["gross_churn"], rel=1e-12)


def test_ad_performance_equals_pandas(cursor, ref):
    cases = [
        (Filters(date(2026, 8, 1), END), Scope(), "USD"),
        (
            Filters(date(2026, 2, 1), date(2026, 4, 30), comparison="same_period_last_year"),
            Scope(),
            "EUR",
        ),
        (Filters(date(2026, 6, 1), date(2026, 6, 30), genres=("Drama", "Comedy")), Scope(), "EUR"),
    ]
    columns = (
        "impressions",
        "clicks",
        "ad_revenue",
        "cpm",
        "ctr",
        "comparison_ad_revenue",
        "missing",
    )
    for f, scope, currency in cases:
        for by in ("title", "campaign"):
            table = RV.ad_performance(cursor, f, scope, currency=currency, by=by)
            assert list(table.columns) == list(RV.AD_COLUMNS)
            _compare_keyed(table, reference_ads(ref, f, scope, currency, by), columns, f"{by} {f}")
            assert table["ad_revenue"].is_monotonic_decreasing
            assert table["ctr"].dropna().between(0, 1).all()
        cat = M.kpis(cursor, f, scope, ["cpm", "ctr"], currency=currency).set_index("metric")
        total = RV.ad_performance(cursor, f, scope, currency=currency, by="campaign")
        assert total["clicks"].sum() / total["impressions"].sum() == pytest.approx(
            cat.at["ctr", "value"]
        )


# --- gaps: counted, never 1:1 ---------------------------------------------------------------------
def test_messy_gaps_are_counted_and_never_converted_one_to_one(messy, messy_ref, channels):
    # JPY has no rate 8-20 August (its last one is 7 days old on the 7th), GBP none 8-10
    # September, BRL none after 22 October.
    f = Filters(date(2026, 7, 1), END)
    for currency in ("USD", "EUR", "JPY"):
        for by in ("stream", "country", "title"):
            table = RV.revenue_flow(messy, f, Scope(), currency=currency, by=by)
            expected = reference_flow(messy_ref, f, Scope(), currency, by)
            _compare_keyed(
                table,
                expected,
                ("gross", "fees", "net", "missing", "comparison_net"),
                f"messy {by} {currency}",
            )
        streams = RV.revenue_flow(messy, f, Scope(), currency=currency, by="stream")
        assert streams["missing"].sum() > 0, currency
        rows = _revenue_rows(messy_ref, f, Scope(), f.start, f.end, currency)
        one_to_one = float(np.where(rows["priced"], rows["net_c"], rows["net"]).sum())
        assert streams["net"].sum() != pytest.approx(one_to_one), "a gap is not converted 1:1"
        assert streams["net"].sum() == pytest.approx(float(np.nansum(rows["net_c"])))
    # Ads are in USD: no gap in USD, JPY's gap in JPY.
    assert RV.ad_performance(messy, f, Scope(), currency="USD")["missing"].sum() == 0
    jpy = RV.ad_performance(messy, f, Scope(), currency="JPY", by="campaign")
    _compare_keyed(
        jpy,
        reference_ads(messy_ref, f, Scope(), "JPY", "campaign"),
        ("ad_revenue", "cpm", "missing"),
        "messy ads JPY",
    )
    assert jpy["missing"].sum() > 0
    # Subscriptions: BRL has no rate on 31 October, JPY none on 15 August.
    for g, currency in (
        (Filters(date(2026, 8, 1), END), "EUR"),
        (Filters(date(2026, 7, 20), date(2026, 8, 15)), "USD"),
    ):
        table = RV.mrr_movement(messy, g, Scope(), currency=currency)
        expected = reference_movement(messy_ref, g, currency)
        assert table["missing"].tolist() == [e["missing"] for e in expected]
        assert table["missing"].iloc[-1] > 0
        for row, exp in zip(table.to_dict("records"), expected, strict=True):
            for col in ("opening", "new", "expansion", "contraction", "churned", "closing"):
                assert row[col] == pytest.approx(exp[col], abs=0.006), f"messy {col} {g}"
        _assert_identity(table)
        plans = RV.plan_economics(messy, g, Scope(), currency=currency)
        _compare_keyed(
            plans,
            reference_plans(messy_ref, channels, g, currency, "plan"),
            ("subscribers", "paying", "mrr", "arpu", "missing", "gross_churn", "net_churn"),
            f"messy plans {g}",
        )
        assert plans["missing"].sum() > 0
        mrr = M.kpis(messy, g, Scope(), ["mrr"], currency=currency).set_index("metric")
        assert plans["mrr"].sum() == pytest.approx(mrr.at["mrr", "value"], rel=1e-9)


# --- scope, filters, bounds -----------------------------------------------------------------------
def test_a_creator_scope_sees_only_its_titles_and_no_subscription_figures(cursor, ref):
    counts = ref.titles["creator_id"].value_counts()
    creator = int(counts.index[0])
    scope = Scope.creators([creator])
    theirs = set(ref.titles.loc[ref.titles["creator_id"] == creator, "title_id"].astype(str))
    f = Filters(date(2026, 5, 1), END)
    titles = RV.revenue_flow(cursor, f, scope, by="title")
    assert len(titles) and set(titles["key"]) <= theirs, "every row is one of its titles"
    assert set(RV.revenue_flow(cursor, f, scope, by="creator")["key"]) == {str(creator)}
    streams = RV.revenue_flow(cursor, f, scope, by="stream")
    assert set(streams["key"]) <= {"ppv", "ad"}, "subscription charges are no creator's"
    _compare_keyed(
        streams,
        reference_flow(ref, f, scope, "USD", "stream"),
        ("gross", "fees", "net", "comparison_net", "amounts", "missing"),
        "creator streams",
    )
    over_time = RV.revenue_over_time(cursor, f, scope, grain="month")
    assert set(over_time["stream"]) == {"ppv", "ad"}
    assert over_time["net"].sum() == pytest.approx(streams["net"].sum())
    ads = RV.ad_performance(cursor, f, scope, by="title")
    assert len(ads) and set(ads["key"]) <= theirs
    campaigns = RV.ad_performance(cursor, f, scope, by="campaign")
    _compare_keyed(
        campaigns,
        reference_ads(ref, f, scope, "USD", "campaign"),
        ("impressions", "clicks", "ad_revenue"),
        "creator campaigns",
    )
    for frame, columns in (
        (RV.mrr_movement(cursor, f, scope), RV.MOVEMENT_COLUMNS),
        (RV.plan_economics(cursor, f, scope), RV.PLAN_COLUMNS),
        (RV.plan_economics(cursor, f, scope, by="acquisition_channel"), RV.PLAN_COLUMNS),
    ):
        assert frame.empty and list(frame.columns) == list(columns), "platform-wide: not shown"


def _all_calls(cursor, f: Filters, scope: Scope):
    yield RV.revenue_flow(cursor, f, scope, by="title"), RV.FLOW_COLUMNS
    yield RV.revenue_flow(cursor, f, scope, by="stream", currency="EUR"), RV.FLOW_COLUMNS
    yield RV.revenue_over_time(cursor, f, scope, grain="week"), RV.OVER_TIME_COLUMNS
    yield RV.mrr_movement(cursor, f, scope), RV.MOVEMENT_COLUMNS
    yield RV.plan_economics(cursor, f, scope), RV.PLAN_COLUMNS
    yield RV.ad_performance(cursor, f, scope), RV.AD_COLUMNS
    yield RV.ad_performance(cursor, f, scope, by="campaign"), RV.AD_COLUMNS


def test_an_empty_scope_and_unsplittable_filters_give_empty_frames(cursor):
    f = Filters(date(2026, 8, 1), END)
    for frame, columns in _all_calls(cursor, f, Scope.creators(())):
        assert frame.empty and list(frame.columns) == list(columns), "nothing, never everything"
    device = Filters(date(2026, 8, 1), END, devices=("tv",))
    for frame, columns in _all_calls(cursor, device, Scope()):
        assert frame.empty and list(frame.columns) == list(columns), "revenue has no device"
    # Subscriptions cannot be split by genre, ads not by the viewer's country.
    genre = Filters(date(2026, 8, 1), END, genres=("Drama",))
    assert RV.mrr_movement(cursor, genre, Scope()).empty
    assert RV.plan_economics(cursor, genre, Scope()).empty
    assert not RV.revenue_flow(cursor, genre, Scope()).empty
    country = Filters(date(2026, 8, 1), END, countries=("US",))
    assert RV.ad_performance(cursor, country, Scope()).empty
    assert not RV.plan_economics(cursor, country, Scope()).empty


def test_bounded_ratios_and_ltv_under_random_filters(cursor, ref, channels, options):
    rng = random.Random(20261207)
    for _ in range(12):
        f, scope = random_case(rng, (FIRST, END), options)
        plans = RV.plan_economics(cursor, f, scope)
        if not scope.is_all or f.active_dimensions - {"country", "plan", "age_band"}:
            assert plans.empty
        else:
            _compare_keyed(
                plans,
                reference_plans(ref, channels, f, "USD", "plan"),
                ("subscribers", "mrr", "cancelled", "resubscribed", "gross_churn", "net_churn"),
                f"random {f}",
            )
            churn = plans["gross_churn"].dropna()
            assert churn.between(0, 1).all()
            net = plans[["gross_churn", "net_churn"]].dropna()
            assert (net["net_churn"] >= 0).all() and (net["net_churn"] <= net["gross_churn"]).all()
            assert plans["monthly_churn"].dropna().between(0, 1).all()
            assert not np.isinf(plans["ltv"]).any()
            assert plans.loc[plans["monthly_churn"] == 0, "ltv"].isna().all()
        ads = RV.ad_performance(cursor, f, scope, by="campaign")
        assert ads["ctr"].dropna().between(0, 1).all()
        flow = RV.revenue_flow(cursor, f, scope, by="creator")
        if not (f.active_dimensions & {"device"}) and scope.creator_ids != ():
            expected = reference_flow(ref, f, scope, "USD", "creator")
            _compare_keyed(flow, expected, ("net", "amounts", "comparison_net"), f"random {f}")
        if not scope.is_all and len(flow):
            assert {int(k) for k in flow["key"]} <= set(scope.creator_ids)


def test_bad_arguments_raise(cursor):
    f = Filters(date(2026, 8, 1), END)
    with pytest.raises(ValueError):
        RV.revenue_flow(cursor, f, Scope(), by="device")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RV.revenue_flow(cursor, f, Scope(), by="stream; DROP TABLE dv_revenue")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RV.plan_economics(cursor, f, Scope(), by="country")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RV.ad_performance(cursor, f, Scope(), by="genre")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RV.revenue_over_time(cursor, f, Scope(), grain="hour")  # type: ignore[arg-type]
    for call in (
        RV.revenue_flow,
        RV.revenue_over_time,
        RV.mrr_movement,
        RV.plan_economics,
        RV.ad_performance,
    ):
        with pytest.raises(ValueError):
            call(cursor, f, Scope(), currency="usd'; --")
    # Filter values are bound, never SQL.
    hostile = Filters(date(2026, 8, 1), END, countries=("' OR 1=1 --",), creators=("1); --",))
    assert RV.revenue_flow(cursor, hostile, Scope()).empty
