"""An independent pandas implementation of METRICS.md over the BASE tables, for the metric tests.

It never reads the derived tables or data.metrics: it joins the base facts to their dimensions
itself and applies each definition literally, so a mistake in the derived tables, the SQL or the
histogram arithmetic shows up as a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from data.queries.filters import Filters, Scope

VIEW_DIMS = {"country", "device", "genre", "kind", "creator", "plan", "age_band"}
REVENUE_DIMS = VIEW_DIMS - {"device"}
AD_DIMS = {"genre", "kind", "creator"}
SUB_DIMS = {"country", "age_band", "plan"}

# metric -> (dimensions it may be filtered by, meaningful under a creator scope)
APPLICABILITY: dict[str, tuple[set[str], bool]] = {
    "starts": (VIEW_DIMS, True),
    "watch_hours": (VIEW_DIMS, True),
    "views": (VIEW_DIMS, True),
    "avg_view_duration": (VIEW_DIMS, True),
    "avg_pct_viewed": (VIEW_DIMS, True),
    "completion_rate": (VIEW_DIMS, True),
    "active_viewers": (VIEW_DIMS, True),
    "engagement_rate": (VIEW_DIMS, False),
    "watch_time_per_subscriber": (VIEW_DIMS, False),
    "library_utilisation": (VIEW_DIMS, True),
    "new_subscribers": (SUB_DIMS, False),
    "net_revenue": (REVENUE_DIMS, True),
    "net_revenue_subscription": (REVENUE_DIMS, False),
    "net_revenue_ppv": (REVENUE_DIMS, True),
    "net_revenue_ad": (REVENUE_DIMS, True),
    "mrr": (SUB_DIMS, False),
    "arpu": (SUB_DIMS, False),
    "gross_churn": (SUB_DIMS, False),
    "cpm": (AD_DIMS, True),
    "ctr": (AD_DIMS, True),
}


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


@dataclass
class Reference:
    views: pd.DataFrame
    subs: pd.DataFrame
    titles: pd.DataFrame
    revenue: pd.DataFrame
    ads: pd.DataFrame

    @classmethod
    def load(cls, cursor) -> Reference:
        def q(sql: str) -> pd.DataFrame:
            return cursor.execute(sql).df()

        titles = q("SELECT * FROM dim_title")
        viewers = q("SELECT viewer_key, country AS v_country, age_band, plan FROM dim_viewer")
        views = q("SELECT * FROM fact_view").merge(
            titles[["title_id", "runtime_min", "genre", "kind", "creator_id"]],
            on="title_id",
            how="left",
        )
        views = views.merge(
            viewers[["viewer_key", "age_band", "plan"]], on="viewer_key", how="left"
        )
        views["day"] = views["started_at"].dt.normalize()
        subs = q("SELECT * FROM fact_subscription").merge(
            viewers.rename(columns={"plan": "viewer_plan"}), on="viewer_key", how="left"
        )
        first = subs.sort_values(["viewer_key", "started_at", "subscription_id"]).drop_duplicates(
            "viewer_key"
        )
        subs["is_first"] = subs["subscription_id"].isin(first["subscription_id"])
        revenue = q("SELECT * FROM fact_revenue")
        revenue = revenue.merge(viewers, on="viewer_key", how="left").merge(
            titles[["title_id", "genre", "kind"]], on="title_id", how="left"
        )
        revenue["day"] = revenue["occurred_at"].dt.normalize()
        revenue["net"] = revenue["net"].astype("float64")
        ads = q("SELECT * FROM fact_ad").merge(
            titles[["title_id", "genre", "kind", "creator_id"]], on="title_id", how="left"
        )
        ads["day"] = pd.to_datetime(ads["ad_date"])
        for col in ("ad_revenue",):
            ads[col] = ads[col].astype("float64")
        subs["monthly_price"] = subs["monthly_price"].astype("float64")
        titles["release_date"] = pd.to_datetime(titles["release_date"])
        return cls(views, subs, titles, revenue, ads)


def _isin(series: pd.Series, values: tuple[str, ...], integer: bool = False) -> pd.Series:
    if integer:
        ints = {int(v) for v in values if v.isascii() and v.lstrip("-").isdigit()}
        return series.isin(ints)
    return series.isin(set(values))


# dimension -> column of the views frame, restated here (not imported from data/) so the
# reference stays independent of the code it checks.
VIEW_COLUMNS = {
    "country": "country",
    "device": "device",
    "genre": "genre",
    "kind": "kind",
    "creator": "creator_id",
    "plan": "plan",
    "age_band": "age_band",
}


def _mask(frame: pd.DataFrame, f: Filters, columns: dict[str, str]) -> pd.Series:
    m = pd.Series(True, index=frame.index)
    for dim, col in columns.items():
        values = f.values(dim)
        if values:
            m &= _isin(frame[col], values, integer=(dim == "creator"))
    return m


def _scope_mask(frame: pd.DataFrame, scope: Scope, col: str = "creator_id") -> pd.Series:
    if scope.is_all:
        return pd.Series(True, index=frame.index)
    return frame[col].isin(set(scope.creator_ids))


def _ts(d: date) -> pd.Timestamp:
    return pd.Timestamp(d)


def values(ref: Reference, f: Filters, scope: Scope, lo: date, hi: date) -> dict[str, float]:
    """Every catalog metric over the days [lo, hi] (dimension filters from ``f``)."""
    out: dict[str, float] = {}
    v = ref.views
    vm = (
        (v["day"] >= _ts(lo))
        & (v["day"] <= _ts(hi))
        & _mask(
            v,
            f,
            VIEW_COLUMNS,
        )
        & _scope_mask(v, scope)
    )
    sv = v[vm]
    starts = float(len(sv))
    ws = float(sv["watch_seconds"].sum())
    views = float((sv["watch_seconds"] / (sv["runtime_min"] * 60.0)).sum())
    viewers = float(sv["viewer_key"].nunique())
    out["starts"] = starts
    out["watch_hours"] = ws / 3600
    out["views"] = views
    out["avg_view_duration"] = _ratio(ws / 60, starts)
    out["avg_pct_viewed"] = _ratio(views, starts)
    out["completion_rate"] = _ratio(float(sv["completed"].sum()), starts)
    out["active_viewers"] = viewers

    s = ref.subs
    start_ts, end_excl = _ts(lo), _ts(hi + timedelta(days=1))
    viewer_dims = _mask(
        s, f, {"country": "v_country", "age_band": "age_band", "plan": "viewer_plan"}
    )
    active_in = (s["started_at"] < end_excl) & (s["ended_at"].isna() | (s["ended_at"] >= start_ts))
    subscribers = float(s.loc[active_in & viewer_dims, "viewer_key"].nunique())
    out["engagement_rate"] = _ratio(viewers, subscribers)
    out["watch_time_per_subscriber"] = _ratio(ws / 3600, subscribers)

    sub_dims = _mask(s, f, {"country": "v_country", "age_band": "age_band", "plan": "plan"})
    started_in = (s["started_at"] >= start_ts) & (s["started_at"] < end_excl)
    out["new_subscribers"] = float((s["is_first"] & started_in & sub_dims).sum())
    at_end = (s["started_at"] < end_excl) & (s["ended_at"].isna() | (s["ended_at"] >= end_excl))
    mrr = float(s.loc[at_end & sub_dims, "monthly_price"].sum())
    paying = float((at_end & sub_dims & (s["monthly_price"] > 0)).sum())
    out["mrr"] = mrr
    out["arpu"] = _ratio(mrr, paying)
    at_start = (s["started_at"] < start_ts) & (s["ended_at"].isna() | (s["ended_at"] >= start_ts))
    cancelled = (s["ended_at"] >= start_ts) & (s["ended_at"] < end_excl)
    out["gross_churn"] = _ratio(
        float((cancelled & sub_dims).sum()), float((at_start & sub_dims).sum())
    )

    t = ref.titles
    available = (
        (t["release_date"] <= _ts(hi))
        & _mask(t, f, {"genre": "genre", "kind": "kind", "creator": "creator_id"})
        & _scope_mask(t, scope)
    )
    out["library_utilisation"] = _ratio(float(sv["title_id"].nunique()), float(available.sum()))

    r = ref.revenue
    rm = (
        (r["day"] >= _ts(lo))
        & (r["day"] <= _ts(hi))
        & _mask(
            r,
            f,
            {
                "country": "v_country",
                "genre": "genre",
                "kind": "kind",
                "creator": "creator_id",
                "plan": "plan",
                "age_band": "age_band",
            },
        )
        & _scope_mask(r, scope)
    )
    sr = r[rm]
    out["net_revenue"] = float(sr["net"].sum())
    for stream in ("subscription", "ppv", "ad"):
        out[f"net_revenue_{stream}"] = float(sr.loc[sr["stream"] == stream, "net"].sum())

    a = ref.ads
    am = (
        (a["day"] >= _ts(lo))
        & (a["day"] <= _ts(hi))
        & _mask(a, f, {"genre": "genre", "kind": "kind", "creator": "creator_id"})
        & _scope_mask(a, scope)
    )
    sa = a[am]
    impressions = float(sa["impressions"].sum())
    out["cpm"] = _ratio(float(sa["ad_revenue"].sum()) * 1000, impressions)
    out["ctr"] = _ratio(float(sa["clicks"].sum()), impressions)

    for mid, (dims, scoped) in APPLICABILITY.items():
        if (f.active_dimensions - dims) or (not scoped and not scope.is_all):
            out[mid] = math.nan
    return out


def assert_close(actual: float, expected: float, what: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: expected NaN, got {actual}"
        return
    assert not math.isnan(actual), f"{what}: got NaN, expected {expected}"
    assert np.isclose(actual, expected, rtol=1e-9, atol=1e-6), f"{what}: {actual} != {expected}"
