"""An independent pandas implementation of METRICS.md over the BASE tables, for the metric tests.

It never reads the derived tables or data.queries: it joins the base facts to their dimensions
itself and applies each definition literally, so a mistake in the derived tables, the SQL or the
histogram arithmetic shows up as a difference. The rules it restates from METRICS.md rather than
importing:

- plausibility: a session with negative watch time or longer than 24 hours, a subscription with
  a negative price or ending before it starts, a revenue row with negative fees, fees above a
  non-negative gross or net other than gross - fees (beyond a cent), and any of them dated more
  than a day after the extract's ``as_of``, count nowhere;
- money: an amount is converted at the latest rate on or up to 7 days before its UTC day
  (a flow) or before the period's last day (MRR); rates are US dollars per unit, USD's is 1, a
  rate that is not a positive finite number is none; an amount already in the reporting currency
  is not converted; no rate: left out;
- engagement rate: subscribers active in the period (their own country, plan, age band) with a
  start in the period (device, genre, kind, creator filters) / subscribers active in the period;
- gross churn: subscriptions ended in the period / (active at its start + started in it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from data.queries.filters import Filters, Scope

VIEW_DIMS = {"country", "device", "genre", "kind", "creator", "plan", "age_band"}
REVENUE_DIMS = VIEW_DIMS - {"device"}
AD_DIMS = {"genre", "kind", "creator"}
SUB_DIMS = {"country", "age_band", "plan"}
BASE = "USD"
RATE_DAYS = 7
MAX_SESSION = 24 * 3600

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
# Ratios whose definition bounds them to [0, 1] (METRICS.md: "a property test checks it").
BOUNDED = ("avg_pct_viewed", "completion_rate", "engagement_rate", "library_utilisation",
           "gross_churn", "ctr")  # fmt: skip


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _future(moment: pd.Series, as_of: datetime | None) -> pd.Series:
    if as_of is None:
        return pd.Series(False, index=moment.index)
    return (moment > pd.Timestamp(as_of) + pd.Timedelta(days=1)).fillna(False)


@dataclass
class Reference:
    views: pd.DataFrame
    subs: pd.DataFrame
    titles: pd.DataFrame
    revenue: pd.DataFrame
    ads: pd.DataFrame
    rates: pd.DataFrame  # currency, rate_date (Timestamp), rate_to_usd: valid rates only
    as_of: datetime | None

    @classmethod
    def load(cls, cursor) -> Reference:
        def q(sql: str) -> pd.DataFrame:
            return cursor.execute(sql).df()

        meta = dict(cursor.execute("SELECT key, value FROM extract_meta").fetchall())
        as_of = datetime.fromisoformat(meta["as_of"]) if meta.get("as_of") else None
        titles = q("SELECT * FROM dim_title")
        viewers = q("SELECT viewer_key, country AS v_country, age_band, plan FROM dim_viewer")
        views = q("SELECT * FROM fact_view")
        ws = views["watch_seconds"]
        views = views[~((ws < 0) | (ws > MAX_SESSION) | _future(views["started_at"], as_of))].copy()
        views = views.merge(
            titles[["title_id", "runtime_min", "genre", "kind", "creator_id"]],
            on="title_id",
            how="left",
        )
        views = views.merge(
            viewers[["viewer_key", "age_band", "plan"]], on="viewer_key", how="left"
        )
        views["day"] = views["started_at"].dt.normalize()
        subs = q("SELECT * FROM fact_subscription")
        subs["monthly_price"] = subs["monthly_price"].astype("float64")
        bad = (
            (subs["monthly_price"] < 0)
            | (subs["ended_at"] < subs["started_at"]).fillna(False)
            | _future(subs["started_at"], as_of)
        )
        subs = subs[~bad].merge(
            viewers.rename(columns={"plan": "viewer_plan"}), on="viewer_key", how="left"
        )
        first = subs.sort_values(["viewer_key", "started_at", "subscription_id"]).drop_duplicates(
            "viewer_key"
        )
        subs["is_first"] = subs["subscription_id"].isin(first["subscription_id"])
        revenue = q("SELECT * FROM fact_revenue")
        for col in ("gross", "fees", "net"):
            revenue[col] = revenue[col].astype("float64")
        bad = (
            (revenue["fees"] < 0)
            | ((revenue["gross"] >= 0) & (revenue["fees"] > revenue["gross"]))
            | ((revenue["net"] - (revenue["gross"] - revenue["fees"])).abs() > 0.01 + 1e-9)
            | _future(revenue["occurred_at"], as_of)
        )
        revenue = revenue[~bad]
        revenue = revenue.merge(viewers, on="viewer_key", how="left").merge(
            titles[["title_id", "genre", "kind"]], on="title_id", how="left"
        )
        revenue["day"] = revenue["occurred_at"].dt.normalize()
        ads = q("SELECT * FROM fact_ad").merge(
            titles[["title_id", "genre", "kind", "creator_id"]], on="title_id", how="left"
        )
        ads["day"] = pd.to_datetime(ads["ad_date"])
        ads["ad_revenue"] = ads["ad_revenue"].astype("float64")
        rates = q("SELECT rate_date, currency, rate_to_usd FROM fact_exchange_rate")
        rates["rate_date"] = pd.to_datetime(rates["rate_date"]).astype("datetime64[ns]")
        rates = rates[
            (rates["rate_to_usd"] > 0)
            & np.isfinite(rates["rate_to_usd"])
            & (rates["currency"] != BASE)
        ]
        titles["release_date"] = pd.to_datetime(titles["release_date"])
        for frame in (subs, revenue, rates):
            frame["currency"] = frame["currency"].astype(object)
        ref = cls(views, subs, titles, revenue, ads, rates, as_of)
        # Each amount's own rate on its day, once: the reporting currency's comes per query.
        ref.revenue["to_usd"] = ref.to_usd(ref.revenue["day"], ref.revenue["currency"])
        return ref

    def to_usd(self, days: pd.Series, currencies: pd.Series) -> np.ndarray:
        """US dollars per unit of each currency on each day (NaN: no rate within 7 days)."""
        grid, first, codes = self._grid()
        day = (pd.to_datetime(days).to_numpy().astype("datetime64[D]") - first).astype(np.int64)
        at, names = pd.factorize(pd.Series(currencies), use_na_sentinel=True)
        col = np.asarray([codes.get(c, -1) for c in names] + [-1], dtype=np.int64)[at]
        ok = (day >= 0) & (day < grid.shape[0]) & (col >= 0)
        out = np.full(len(day), np.nan)
        out[ok] = grid[day[ok], col[ok]]
        out[(currencies == BASE).to_numpy()] = 1.0
        return out

    def _grid(self) -> tuple[np.ndarray, np.datetime64, dict[str, int]]:
        """Every day from the first rate to a week after the last, per currency: the latest
        rate dated that day or up to 7 days before (by a plain loop: independent, and small)."""
        if not hasattr(self, "_cached_grid"):
            codes = {c: j for j, c in enumerate(sorted(self.rates["currency"].unique()))}
            if not len(self.rates):
                self._cached_grid = (np.zeros((0, 0)), np.datetime64("1970-01-01"), codes)
                return self._cached_grid
            first = self.rates["rate_date"].min().to_datetime64().astype("datetime64[D]")
            last = self.rates["rate_date"].max().to_datetime64().astype("datetime64[D]")
            n = int((last - first).astype(np.int64)) + RATE_DAYS + 1
            dated = np.full((n, len(codes)), np.nan)
            for row in self.rates.itertuples(index=False):
                at = int(
                    (row.rate_date.to_datetime64().astype("datetime64[D]") - first).astype(np.int64)
                )
                dated[at, codes[row.currency]] = row.rate_to_usd
            grid = np.full((n, len(codes)), np.nan)
            for j in range(len(codes)):
                latest = math.nan
                age = RATE_DAYS + 1
                for i in range(n):
                    if not math.isnan(dated[i, j]):
                        latest, age = dated[i, j], 0
                    else:
                        age += 1
                    grid[i, j] = latest if age <= RATE_DAYS else math.nan
            self._cached_grid = (grid, first, codes)
        return self._cached_grid

    def factor(
        self,
        days: pd.Series,
        currencies: pd.Series,
        reporting: str,
        own: np.ndarray | None = None,
    ) -> np.ndarray:
        """What one unit of each currency is worth in ``reporting`` on each day (NaN: none);
        ``own``: the currencies' rates on those days, when known already."""
        own = self.to_usd(days, currencies) if own is None else own
        target = self.to_usd(days, pd.Series([reporting] * len(days), index=days.index))
        out = own / target
        out[(currencies == reporting).to_numpy()] = 1.0
        return out


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
WATCH_COLUMNS = {"device": "device", "genre": "genre", "kind": "kind", "creator": "creator_id"}
SUBSCRIBER_COLUMNS = {"country": "v_country", "age_band": "age_band", "plan": "viewer_plan"}


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


def values(
    ref: Reference, f: Filters, scope: Scope, lo: date, hi: date, currency: str = BASE
) -> dict[str, float]:
    """Every catalog metric over the days [lo, hi] (dimension filters from ``f``); money in
    ``currency``."""
    out: dict[str, float] = {}
    v = ref.views
    in_days = (v["day"] >= _ts(lo)) & (v["day"] <= _ts(hi))
    vm = in_days & _mask(v, f, VIEW_COLUMNS) & _scope_mask(v, scope)
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
    viewer_dims = _mask(s, f, SUBSCRIBER_COLUMNS)
    active_in = (s["started_at"] < end_excl) & (s["ended_at"].isna() | (s["ended_at"] >= start_ts))
    subscribed = set(s.loc[active_in & viewer_dims, "viewer_key"])
    # Engagement: the subscribers' own starts, filtered by what was watched and how.
    watched = v[in_days & _mask(v, f, WATCH_COLUMNS) & _scope_mask(v, scope)]
    theirs = watched[watched["viewer_key"].isin(subscribed)]
    out["engagement_rate"] = _ratio(float(theirs["viewer_key"].nunique()), len(subscribed))
    out["watch_time_per_subscriber"] = _ratio(
        float(theirs["watch_seconds"].sum()) / 3600, len(subscribed)
    )

    sub_dims = _mask(s, f, {"country": "v_country", "age_band": "age_band", "plan": "plan"})
    started_in = (s["started_at"] >= start_ts) & (s["started_at"] < end_excl)
    out["new_subscribers"] = float((s["is_first"] & started_in & sub_dims).sum())
    at_end = (s["started_at"] < end_excl) & (s["ended_at"].isna() | (s["ended_at"] >= end_excl))
    live = s[at_end & sub_dims]
    factor = ref.factor(
        pd.Series([_ts(hi)] * len(live), index=live.index), live["currency"], currency
    )
    priced = ~np.isnan(factor)
    mrr = float((live["monthly_price"].to_numpy() * np.where(priced, factor, 0.0)).sum())
    paying = float(((live["monthly_price"].to_numpy() > 0) & priced).sum())
    out["mrr"] = mrr
    out["arpu"] = _ratio(mrr, paying)
    at_start = (s["started_at"] < start_ts) & (s["ended_at"].isna() | (s["ended_at"] >= start_ts))
    cancelled = (s["ended_at"] >= start_ts) & (s["ended_at"] < end_excl)
    at_risk = float(((at_start | started_in) & sub_dims).sum())
    out["gross_churn"] = _ratio(float((cancelled & sub_dims).sum()), at_risk)

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
    converted = sr["net"].to_numpy() * ref.factor(
        sr["day"], sr["currency"], currency, sr["to_usd"].to_numpy()
    )
    out["net_revenue"] = float(np.nansum(converted))
    for stream in ("subscription", "ppv", "ad"):
        out[f"net_revenue_{stream}"] = float(
            np.nansum(converted[(sr["stream"] == stream).to_numpy()])
        )

    a = ref.ads
    am = (
        (a["day"] >= _ts(lo))
        & (a["day"] <= _ts(hi))
        & _mask(a, f, {"genre": "genre", "kind": "kind", "creator": "creator_id"})
        & _scope_mask(a, scope)
    )
    sa = a[am]
    impressions = float(sa["impressions"].sum())
    ad_factor = ref.factor(sa["day"], pd.Series([BASE] * len(sa), index=sa.index), currency)
    priced_ads = ~np.isnan(ad_factor)
    out["cpm"] = _ratio(
        float((sa["ad_revenue"].to_numpy() * np.where(priced_ads, ad_factor, 0.0)).sum()) * 1000,
        float(sa["impressions"].to_numpy()[priced_ads].sum()),
    )
    out["ctr"] = _ratio(float(sa["clicks"].sum()), impressions)

    for mid, (dims, scoped) in APPLICABILITY.items():
        if (f.active_dimensions - dims) or (not scoped and not scope.is_all):
            out[mid] = math.nan
    return out


def comparison_days(f: Filters, b0: date, b1: date) -> tuple[date, date] | None:
    """The comparison days of a bucket [b0, b1], restated from METRICS.md: the previous period
    moves them back by the period's length; last year takes the same calendar dates, where
    29 February starts a range on 1 March and ends one on 28 February (None: no days)."""
    if f.comparison == "none":
        return None
    if f.comparison == "previous_period":
        return b0 - timedelta(days=f.days), b1 - timedelta(days=f.days)

    def earlier(d: date, first: bool) -> date:
        if d.month == 2 and d.day == 29:
            return date(d.year - 1, 3, 1) if first else date(d.year - 1, 2, 28)
        return d.replace(year=d.year - 1)

    c0, c1 = earlier(b0, True), earlier(b1, False)
    return (c0, c1) if c0 <= c1 else None


def assert_close(actual: float, expected: float, what: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: expected NaN, got {actual}"
        return
    assert not math.isnan(actual), f"{what}: got NaN, expected {expected}"
    assert np.isclose(actual, expected, rtol=1e-9, atol=1e-6), f"{what}: {actual} != {expected}"
