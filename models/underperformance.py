"""Underperforming titles: views furthest below what the title was expected to get, and why.

The expected curve comes from peers, because a title's own history says little about the next
weeks without knowing how titles of its kind age:

- A title already out in the baseline (the equal-length period just before) is expected to
  move like its peers: expected = its baseline views x the median ratio (period views /
  baseline views) of *other* titles of the same genre and age band (age since release at the
  end of the period: 0-6, 7-27, 28-90, 91-364, 365+ days). With fewer than ``min_peers`` such
  peers, the peers are the age band across genres, then every established title.
- A title released during the period (no baseline yet) is expected to earn the median daily
  views since release of other new titles of its genre (then any genre), times its days out.

Shortfall = views - expected. Titles are ranked by shortfall in views (the biggest absolute
miss first: what matters to the business), among those at least ``min_gap`` below expected and
with an expectation of at least the median title's views (so noise in tiny titles is ignored).

Minimum volume (``MINIMUM_VOLUME_RULE``, the sentence a page shows under the table): in a small
scope (one creator or partner) the median title is tiny, so on top of that relative floor a title
is judged only with at least ``MIN_TITLE_VIEWS`` views in the period or in the baseline and an
expectation of at least ``MIN_EXPECTED_VIEWS`` views. Below that a -80% is a handful of
sessions, not a finding.

The reason is one line taken from the same numbers: completion fell N pts; starts fell N% in the
country that lost most starts (when it holds at least 40% of the title's loss), among countries
with at least ``MIN_SLICE_STARTS`` starts in the baseline (so "starts fell 100% in AR" never
describes two lost sessions); otherwise how its views moved against its peers. Nothing here reads
data or imports streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 6, "0-6 days"),
    (7, 27, "1-4 weeks"),
    (28, 90, "1-3 months"),
    (91, 364, "3-12 months"),
    (365, 10**9, "1 year+"),
)
COMPLETION_DROP_PTS = 3.0
COUNTRY_SHARE_OF_LOSS = 0.4
# Minimum volumes (see the module docstring): a title needs this many views in the period or
# the baseline, and this many expected views, to be judged; a country needs this many starts in
# the baseline to be named in a reason.
MIN_TITLE_VIEWS = 20.0
MIN_EXPECTED_VIEWS = 10.0
MIN_SLICE_STARTS = 10
MINIMUM_VOLUME_RULE = (
    f"Only titles with at least {MIN_TITLE_VIEWS:.0f} views in this or the previous period and "
    f"at least {MIN_EXPECTED_VIEWS:.0f} expected views are judged; a country is named only when "
    f"it had at least {MIN_SLICE_STARTS} starts in the previous period."
)

COLUMNS = [
    "title_id",
    "name",
    "genre",
    "release_date",
    "age_band",
    "views",
    "expected",
    "shortfall",
    "shortfall_pct",
    "basis",
    "reason",
]


def age_band(age_days: int) -> str:
    for lo, hi, label in AGE_BANDS:
        if lo <= age_days <= hi:
            return label
    return AGE_BANDS[0][2]  # released after the end: not expected in the input


def _kth_of_rest(ranked: np.ndarray, pos: np.ndarray, j: int) -> np.ndarray:
    """For every row, the j-th smallest (0-based) of the other values: dropping the value at
    sorted position ``pos`` shifts the later ones down by one."""
    return np.where(pos > j, ranked[j], ranked[min(j + 1, len(ranked) - 1)])


def _leave_one_out_median(values: pd.Series, groups: pd.Series, min_peers: int) -> pd.Series:
    """For each row, the median of the other rows of its group (NaN with too few others).

    Vectorised per group: with the group sorted, dropping the element at sorted position i
    shifts every later element down by one, so the median of the rest is read off the sorted
    array at one or two positions that depend only on whether i is before them.
    """
    out = pd.Series(np.nan, index=values.index)
    for _, idx in values.groupby(groups).groups.items():
        n = len(idx)
        if n - 1 < min_peers:
            continue
        vals = values.loc[idx].to_numpy(dtype="float64")
        order = np.argsort(vals, kind="stable")
        ranked = vals[order]
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)  # sorted position of each row

        m = n - 1
        if m % 2:
            med = _kth_of_rest(ranked, pos, m // 2)
        else:
            med = (_kth_of_rest(ranked, pos, m // 2 - 1) + _kth_of_rest(ranked, pos, m // 2)) / 2
        out.loc[idx] = med
    return out


def _peer_expectation(
    values: pd.Series, keys: list[pd.Series], min_peers: int
) -> tuple[pd.Series, pd.Series]:
    """Leave-one-out medians from the narrowest peer group that has enough peers."""
    result = pd.Series(np.nan, index=values.index)
    level = pd.Series("", index=values.index, dtype=object)
    for name, key in keys:
        med = _leave_one_out_median(values, key, min_peers)
        fill = result.isna() & med.notna()
        result[fill] = med[fill]
        level[fill] = name
    return result, level


def underperforming_titles(
    stats: dict,
    *,
    k: int = 10,
    min_gap: float = 0.15,
    min_peers: int = 3,
) -> pd.DataFrame:
    """Rank titles by shortfall against their expected views; ``stats`` is
    ``data.queries.title_periods.title_period_stats``. Columns: see ``COLUMNS``.
    """
    titles: pd.DataFrame = stats["titles"].copy()
    if titles.empty:
        return pd.DataFrame(columns=COLUMNS)
    start, end = stats["period"]
    titles["release_date"] = pd.to_datetime(titles["release_date"]).dt.date
    titles["age"] = [(end - r).days for r in titles["release_date"]]
    titles["age_band"] = [age_band(a) for a in titles["age"]]
    for col in ("views_cur", "views_base", "starts_cur", "starts_base"):
        titles[col] = titles[col].astype("float64")

    established = (titles["release_date"] < start) & (titles["views_base"] > 0)
    new = titles["release_date"] >= start
    titles["expected"] = np.nan
    titles["basis"] = ""
    titles["peer_ratio"] = np.nan

    est = titles[established]
    if not est.empty:
        ratio = est["views_cur"] / est["views_base"]
        peer_ratio, level = _peer_expectation(
            ratio,
            [
                ("genre and age", est["genre"].astype(str) + "|" + est["age_band"]),
                ("age", est["age_band"]),
                ("all", pd.Series("all", index=est.index)),
            ],
            min_peers,
        )
        titles.loc[est.index, "peer_ratio"] = peer_ratio
        titles.loc[est.index, "expected"] = est["views_base"] * peer_ratio
        titles.loc[est.index, "basis"] = "own trend, peers by " + level

    fresh = titles[new]
    if not fresh.empty:
        days_out = pd.Series([(end - r).days + 1 for r in fresh["release_date"]], index=fresh.index)
        rate = fresh["views_cur"] / days_out
        peer_rate, level = _peer_expectation(
            rate,
            [
                ("genre", fresh["genre"].astype(str)),
                ("all new titles", pd.Series("all", index=fresh.index)),
            ],
            min_peers,
        )
        titles.loc[fresh.index, "expected"] = peer_rate * days_out
        titles.loc[fresh.index, "basis"] = "new-title peers by " + level

    titles = titles[titles["expected"].notna() & (titles["expected"] > 0)]
    if titles.empty:
        return pd.DataFrame(columns=COLUMNS)
    watched = stats["titles"]["views_cur"].astype("float64")
    floor = float(watched[watched > 0].median()) if (watched > 0).any() else 0.0
    titles["views"] = titles["views_cur"]
    titles["shortfall"] = titles["views"] - titles["expected"]
    titles["shortfall_pct"] = titles["views"] / titles["expected"] - 1.0
    enough = (titles[["views_cur", "views_base"]].max(axis=1) >= MIN_TITLE_VIEWS) & (
        titles["expected"] >= MIN_EXPECTED_VIEWS
    )
    flagged = titles[(titles["shortfall_pct"] <= -min_gap) & (titles["expected"] >= floor) & enough]
    flagged = flagged.sort_values(["shortfall", "title_id"], ascending=[True, True]).head(int(k))
    if flagged.empty:
        return pd.DataFrame(columns=COLUMNS)
    countries: pd.DataFrame = stats["countries"]
    flagged = flagged.copy()
    flagged["reason"] = [
        reason_for(row, countries[countries["title_id"] == row.title_id])
        for row in flagged.itertuples(index=False)
    ]
    return flagged[COLUMNS].reset_index(drop=True)


def _pct(x: float) -> str:
    return f"{abs(x):.0%}"


def reason_for(row: object, countries: pd.DataFrame) -> str:
    """One line saying what changed for the title (see the module docstring)."""

    def get(name: str) -> object:
        return getattr(row, name)

    views, expected = float(get("views_cur")), float(get("expected"))
    if math.isnan(float(get("peer_ratio"))):  # a new title: judged against new peers
        return f"{_pct(views / expected - 1)} below new {get('genre')} titles at the same age"
    parts: list[str] = []
    s_cur, s_base = float(get("starts_cur")), float(get("starts_base"))
    c_cur, c_base = float(get("completed_cur")), float(get("completed_base"))
    if s_cur > 0 and s_base > 0:
        change_pts = (c_cur / s_cur - c_base / s_base) * 100
        if change_pts <= -COMPLETION_DROP_PTS:
            parts.append(f"completion fell {abs(change_pts):.0f} pts")
    # Only countries with enough starts before can be named: a drop from 2 starts is noise.
    countries = countries[countries["starts_base"].astype(float) >= MIN_SLICE_STARTS]
    if not countries.empty:
        loss = countries["starts_base"].astype(float) - countries["starts_cur"].astype(float)
        total_loss = s_base - s_cur
        worst = loss.idxmax()
        worst_loss = float(loss.loc[worst])
        base = float(countries.loc[worst, "starts_base"])
        if worst_loss > 0 and base > 0 and worst_loss >= COUNTRY_SHARE_OF_LOSS * total_loss:
            parts.append(
                f"starts fell {_pct(worst_loss / base)} in {countries.loc[worst, 'country']}"
            )
    if not parts:
        own = views / float(get("views_base")) - 1
        peers = float(get("peer_ratio")) - 1
        verb = "fell" if own < 0 else "grew"
        peers_text = f"{round(peers * 100):+d}%" if round(peers * 100) else "flat"
        parts.append(f"views {verb} {_pct(own)} while peers were {peers_text}")
    return "; ".join(parts[:2])


__all__ = [
    "AGE_BANDS",
    "COLUMNS",
    "MINIMUM_VOLUME_RULE",
    "MIN_EXPECTED_VIEWS",
    "MIN_SLICE_STARTS",
    "MIN_TITLE_VIEWS",
    "age_band",
    "reason_for",
    "underperforming_titles",
]
