"""Content comparison queries: titles side by side, and the features the similarity model uses.

Definitions (METRICS.md where it has one):

- views (runtime-normalised), starts, completion rate, watch hours: as in the metric catalog,
  over the filtered period;
- demand multiplier: a title's views / mean views of the titles available (released by the end
  of the period, in the scope and matching the title filters) in the same period;
- curve since release: views per day since release (day 0 = release day), up to the end of the
  period, with the dimension filters; aligned on day 0 so titles released at different times can
  be compared;
- staying power: the share of a title's views since release (to the end of the period) that
  came on day 28 or later. NaN when the title is younger than 28 days or was released before the
  extract's first day (its early views are not in the data, so the share would be inflated);
- revenue: net revenue attributed to the title (pay-per-view and ad revenue; subscription revenue
  has no title) in the period, in the reporting currency at the rate of each amount's day
  (amounts without a rate are left out, and a note says how many);
- net revenue per view: that net revenue / the title's views in the period;
- licensing cost per view: the title's licensing cost (catalog money, stored in USD, converted at
  the rate of the period's last day like any point-in-time amount) / its views since release up
  to the end of the period. NaN for a title released before the extract's first day: its views
  before then are not in the data, so the cost would be spread over too few views.

The two money figures are both per view so they can be read against each other (a total cost
beside a period's revenue, or a per-view cost beside a total, reads as nonsense). Money is
computed only when asked for. Every value left blank has its reason in the summary's ``note``
(and ``staying_power_note``, ``curve_note``), so a page never shows a silent gap.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from data.extract.derived import extract_as_of
from data.queries import metrics
from data.queries import money as money_rules
from data.queries.dimensions import title_labels
from data.queries.filters import DIMENSIONS, Filters, Scope
from data.queries.view_filters import dv_view_where, fact_view_source, utc_bounds

MAX_TITLES = 6
STAYING_DAY = 28
CURVE_DAYS = 91
MIX_DIMENSIONS: tuple[str, ...] = ("country", "device", "age_band")
# Revenue rows carry a viewer and a title but no device.
REVENUE_DIMS = frozenset(DIMENSIONS) - {"device"}

# What each figure of the comparison means, for tooltips and the page's definitions: the metric
# catalog's own words where the catalog has the metric, this module's definitions otherwise.
DEFINITIONS: dict[str, str] = {
    "views": metrics.METRICS["views"].definition,
    "starts": metrics.METRICS["starts"].definition,
    "completion_rate": metrics.METRICS["completion_rate"].definition,
    "demand_multiplier": metrics.METRICS["demand_multiplier"].definition,
    "staying_power": (
        f"Share of a title's views since release (up to the end of the period) that came on day "
        f"{STAYING_DAY} or later. Needs {STAYING_DAY} days since release and the title's whole "
        "history in the data."
    ),
    "net_revenue_per_view": (
        "Net revenue attributed to the title in the period (pay-per-view and ads; subscription "
        "revenue has no title), in the reporting currency at each amount's day, / the title's "
        "views in the period."
    ),
    "licensing_cost_per_view": (
        "The title's licensing cost (stored in USD, converted at the rate of the period's last "
        "day) / its views since release up to the end of the period. Needs the title's whole "
        "history in the data."
    ),
}


def _ids(title_ids: tuple[int, ...] | list[int]) -> list[int]:
    ids: list[int] = []
    for t in title_ids:
        if int(t) not in ids:
            ids.append(int(t))
    return ids[:MAX_TITLES]


def title_catalog(
    cursor: duckdb.DuckDBPyConnection, filters: Filters | None, scope: Scope
) -> pd.DataFrame:
    """Titles the scope may see that were released by the end of the data: for pickers.

    Columns: title_id, name, label (``title_labels`` over these titles: the name, with "(#id)"
    when another of them has the same name), kind, genre, release_date, runtime_min; sorted by
    name.
    """
    scope_sql, params = scope.where("creator_id")
    frame = cursor.execute(
        "SELECT title_id, name, kind, genre, release_date, runtime_min FROM dim_title "
        f"WHERE release_date <= (SELECT max(day) FROM dv_view) AND {scope_sql} "
        "ORDER BY name, title_id",
        params,
    ).df()
    labels = title_labels(zip(frame["title_id"], frame["name"], strict=True))
    frame.insert(2, "label", [labels[int(t)] for t in frame["title_id"]])
    return frame


def compare_titles(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    title_ids: tuple[int, ...] = (),
    money: bool = False,
    curve_days: int = CURVE_DAYS,
    currency: str = money_rules.BASE_CURRENCY,
) -> dict[str, Any]:
    """Up to six titles side by side.

    Returns ``{"summary", "mix", "curve", "notes"}``:

    - summary: one row per title the scope may see, in the order asked: title_id, name, kind,
      genre, release_date, runtime_min, starts, views, watch_hours, completion_rate,
      demand_multiplier, views_since_release, staying_power, with ``money`` also net_revenue,
      net_revenue_per_view, licensing_cost, licensing_cost_per_view (all in ``currency``), then
      staying_power_note and curve_note (why the value or the line is missing, else "") and
      note (every reason a value of the row is blank, joined by "; ", else "");
    - mix: title_id, dimension, value, starts, share (of the title's starts in the period);
    - curve: title_id, day (since release), views, cumulative_views;
    - notes: why a value is missing (e.g. revenue cannot be split by device).
    """
    ids = _ids(title_ids)
    notes: list[str] = []
    empty = {
        "summary": pd.DataFrame(),
        "mix": pd.DataFrame(columns=["title_id", "dimension", "value", "starts", "share"]),
        "curve": pd.DataFrame(columns=["title_id", "day", "views", "cumulative_views"]),
        "notes": notes,
    }
    if not ids:
        return empty
    marks = ", ".join("?" * len(ids))
    scope_sql, scope_params = scope.where("t.creator_id")
    money_cols = ", t.licensing_cost" if money else ""
    info = cursor.execute(
        "SELECT t.title_id, t.name, t.kind, t.genre, t.release_date, t.runtime_min"
        f"{money_cols} FROM dim_title t WHERE t.title_id IN ({marks}) AND {scope_sql}",
        [*ids, *scope_params],
    ).df()
    if info.empty:
        return empty
    info["title_id"] = info["title_id"].astype("int64")
    ids = [t for t in ids if t in set(info["title_id"])]
    marks = ", ".join("?" * len(ids))

    where, params = dv_view_where(filters, scope)
    period = cursor.execute(
        "SELECT title_id, count(*) AS starts, sum(views) AS views, "
        "sum(watch_seconds) / 3600.0 AS watch_hours, "
        "count(*) FILTER (WHERE completed) AS completed FROM dv_view "
        f"WHERE day BETWEEN ? AND ? AND title_id IN ({marks}) AND {where} GROUP BY 1",
        [filters.start, filters.end, *ids, *params],
    ).df()
    total_views = cursor.execute(
        f"SELECT coalesce(sum(views), 0) FROM dv_view WHERE day BETWEEN ? AND ? AND {where}",
        [filters.start, filters.end, *params],
    ).fetchone()[0]
    title_dims, title_params = filters.where(
        {"genre": "genre", "kind": "kind", "creator": "creator_id"},
        skip=filters.active_dimensions - {"genre", "kind", "creator"},
    )
    cat_scope, cat_scope_params = scope.where("creator_id")
    available = cursor.execute(
        f"SELECT count(*) FROM dim_title WHERE release_date <= ? AND {title_dims} AND {cat_scope}",
        [filters.end, *title_params, *cat_scope_params],
    ).fetchone()[0]
    mean_views = float(total_views) / available if available else math.nan

    first_day = cursor.execute("SELECT min(day) FROM dv_view").fetchone()[0]
    dwhere, dparams = dv_view_where(filters, scope, "d.")
    daily = cursor.execute(
        "SELECT d.title_id, d.day - t.release_date AS day, sum(d.views) AS views "
        "FROM dv_view d JOIN dim_title t ON t.title_id = d.title_id "
        f"WHERE d.title_id IN ({marks}) AND d.day <= ? AND d.day >= t.release_date "
        f"AND {dwhere} GROUP BY ALL",
        [*ids, filters.end, *dparams],
    ).df()
    daily = daily.astype({"title_id": "int64", "day": "int64", "views": "float64"})

    summary = info.merge(period.astype({"title_id": "int64"}), on="title_id", how="left")
    for col in ("starts", "completed"):
        summary[col] = summary[col].fillna(0).astype("int64")
    for col in ("views", "watch_hours"):
        summary[col] = summary[col].astype("float64").fillna(0.0)
    summary["completion_rate"] = summary["completed"] / summary["starts"].where(
        summary["starts"] > 0
    )
    summary["demand_multiplier"] = summary["views"] / mean_views if mean_views else math.nan
    lifetime = daily.groupby("title_id")["views"].sum()
    late = daily[daily["day"] >= STAYING_DAY].groupby("title_id")["views"].sum()
    summary["views_since_release"] = summary["title_id"].map(lifetime).fillna(0.0)
    release = pd.to_datetime(summary["release_date"]).dt.date
    release_by_id = dict(zip(summary["title_id"].astype(int), release, strict=True))
    age = [(filters.end - r).days for r in release]
    # The title's whole history is in the data only when it was released on or after its first day.
    whole = [first_day is None or r >= first_day for r in release]
    known = [(a >= STAYING_DAY) and w for a, w in zip(age, whole, strict=True)]
    staying = summary["title_id"].map(late).fillna(0.0) / summary["views_since_release"].where(
        summary["views_since_release"] > 0
    )
    summary["staying_power"] = staying.where(pd.Series(known, index=summary.index))
    summary["staying_power_note"] = [
        _staying_note(r, a, w, v, first_day)
        for r, a, w, v in zip(release, age, whole, summary["views_since_release"], strict=True)
    ]

    curve_days = int(curve_days)
    grid = pd.MultiIndex.from_product([ids, range(curve_days)], names=["title_id", "day"])
    curve = daily.set_index(["title_id", "day"])["views"].reindex(grid).reset_index()
    # Days after the end of the period have not happened: NaN, not zero.
    last_day = {t: (filters.end - r).days for t, r in release_by_id.items()}
    # Days before the extract's first day are not in the data either (back-catalogue titles).
    first_known = {
        t: (first_day - r).days if first_day is not None else 0 for t, r in release_by_id.items()
    }
    happened = (curve["day"] <= curve["title_id"].map(last_day)) & (
        curve["day"] >= curve["title_id"].map(first_known)
    )
    curve["views"] = curve["views"].fillna(0.0).where(happened)
    curve["cumulative_views"] = curve.groupby("title_id")["views"].cumsum().where(happened)
    drawn = set(curve.loc[curve["views"] > 0, "title_id"].astype(int))
    summary["curve_note"] = [
        ""
        if int(t) in drawn
        else _curve_note(
            release_by_id[int(t)], first_known[int(t)], last_day[int(t)], curve_days, first_day
        )
        for t in summary["title_id"]
    ]

    columns = [
        "title_id",
        "name",
        "kind",
        "genre",
        "release_date",
        "runtime_min",
        "starts",
        "views",
        "watch_hours",
        "completion_rate",
        "demand_multiplier",
        "views_since_release",
        "staying_power",
    ]
    money_notes = [""] * len(summary)
    if money:
        summary["net_revenue"] = summary["title_id"].map(
            _revenue(cursor, filters, scope, ids, notes, currency)
        )
        summary["net_revenue_per_view"] = summary["net_revenue"] / summary["views"].where(
            summary["views"] > 0
        )
        factor = _usd_factor(cursor, filters.end, currency, notes)
        summary["licensing_cost"] = summary["licensing_cost"].astype("float64") * factor
        summary["licensing_cost_per_view"] = (
            summary["licensing_cost"]
            / summary["views_since_release"].where(summary["views_since_release"] > 0)
        ).where(pd.Series(whole, index=summary.index))
        money_notes = [
            _money_note(v, w, r, first_day)
            for v, w, r in zip(summary["views_since_release"], whole, release, strict=True)
        ]
        columns += [
            "net_revenue",
            "net_revenue_per_view",
            "licensing_cost",
            "licensing_cost_per_view",
        ]
    summary["note"] = [
        _row_note(starts, [("staying power", a), ("licensing cost per view", b), (CURVE_NOTE, c)])
        for starts, a, b, c in zip(
            summary["starts"],
            summary["staying_power_note"],
            money_notes,
            summary["curve_note"],
            strict=True,
        )
    ]
    columns += ["staying_power_note", "curve_note", "note"]
    order = {t: i for i, t in enumerate(ids)}
    summary = summary.sort_values("title_id", key=lambda s: s.map(order))[columns]

    mix_frames = []
    for dimension in MIX_DIMENSIONS:
        column = {"country": "country", "device": "device", "age_band": "age_band"}[dimension]
        part = cursor.execute(
            f"SELECT title_id, CAST({column} AS VARCHAR) AS value, count(*) AS starts "
            f"FROM dv_view WHERE day BETWEEN ? AND ? AND title_id IN ({marks}) AND {where} "
            "GROUP BY ALL",
            [filters.start, filters.end, *ids, *params],
        ).df()
        part.insert(1, "dimension", dimension)
        mix_frames.append(part)
    mix = pd.concat(mix_frames, ignore_index=True)
    mix["title_id"] = mix["title_id"].astype("int64")
    mix["value"] = mix["value"].fillna("(unknown)")
    totals = mix.groupby(["title_id", "dimension"])["starts"].transform("sum")
    mix["share"] = mix["starts"] / totals
    mix = mix.sort_values(["title_id", "dimension", "starts"], ascending=[True, True, False])
    return {
        "summary": summary.reset_index(drop=True),
        "mix": mix.reset_index(drop=True),
        "curve": curve,
        "notes": notes,
    }


CURVE_NOTE = "since-release curve (no data in the window)"


def _row_note(starts: int, blanks: list[tuple[str, str]]) -> str:
    """Every reason a row has blanks, each once, with the figures it blanks: "No views in the
    period; Staying power, since-release curve (no data in the window): released 2017-03-31,
    before the data begins (2024-12-08)"."""
    by_reason: dict[str, list[str]] = {}
    for figure, reason in blanks:
        if reason:
            by_reason.setdefault(reason, []).append(figure)
    parts = ["No views in the period"] if starts == 0 else []
    for reason, figures in by_reason.items():
        text = ", ".join(figures)
        parts.append(f"{text[:1].upper()}{text[1:]}: {reason}")
    return "; ".join(parts)


def _staying_note(
    release: date, age: int, whole: bool, views_since_release: float, first_day: date | None
) -> str:
    """Why a title's staying power is blank ("" when it is not)."""
    if age < 0:
        return "released after the period"
    if not whole:
        return _before_data(release, first_day)
    if age < STAYING_DAY:
        return f"{age} days since release; needs {STAYING_DAY}"
    if views_since_release <= 0:
        return "no views since release"
    return ""


def _curve_note(
    release: date, first_known: int, last_day: int, curve_days: int, first_day: date | None
) -> str:
    """Why a title has no line in the since-release chart."""
    if last_day < 0:
        return "released after the period"
    if first_known >= curve_days:
        # Worded as the other figures' reason, so a row's note says it once.
        return _before_data(release, first_day)
    return f"no views in its first {curve_days} days since release"


def _before_data(release: date, first_day: date | None) -> str:
    return f"released {release:%Y-%m-%d}, before the data begins ({first_day:%Y-%m-%d})"


def _money_note(
    views_since_release: float, whole: bool, release: date, first_day: date | None
) -> str:
    """Why a title's licensing cost per view is blank ("" when it is not)."""
    if not whole:
        return _before_data(release, first_day)
    if views_since_release <= 0:
        return "no views since release"
    return ""


def _usd_factor(
    cursor: duckdb.DuckDBPyConnection, day: date, currency: str, notes: list[str]
) -> float:
    """What one US dollar (catalog money) is worth in ``currency`` on ``day``; NaN, with a note,
    when there is no rate."""
    factor = money_rules.rate_factors(cursor, [day], [money_rules.BASE_CURRENCY], currency)[
        (day, money_rules.BASE_CURRENCY)
    ]
    if math.isnan(factor):
        notes.append(
            f"Licensing cost is stored in {money_rules.BASE_CURRENCY} and there is no exchange "
            f"rate to {currency} on {day:%Y-%m-%d}; it is left blank."
        )
    return factor


def _revenue(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    ids: list[int],
    notes: list[str],
    currency: str,
) -> pd.Series:
    """Net revenue per title in ``currency`` (dv_revenue: plausible rows, converted at each
    amount's day); a note for the amounts left out for want of a rate."""
    outside = filters.active_dimensions - REVENUE_DIMS
    if outside:
        names = ", ".join(DIMENSIONS[d].label.lower() for d in sorted(outside))
        notes.append(f"Revenue cannot be split by {names}; it is left blank.")
        return pd.Series(math.nan, index=ids, dtype="float64")
    source, source_params = money_rules.revenue_source(currency)
    dims_sql, params = filters.where(money_rules.REVENUE_COLUMNS)
    scope_sql, scope_params = scope.where("creator_id")
    marks = ", ".join("?" * len(ids))
    rows = cursor.execute(
        "SELECT title_id, currency, sum(net_rep), count(*) FILTER (WHERE net_rep IS NULL) "
        f"FROM {source} AS f WHERE day BETWEEN ? AND ? AND title_id IN ({marks}) "
        f"AND {dims_sql} AND {scope_sql} GROUP BY ALL",
        [*source_params, filters.start, filters.end, *ids, *params, *scope_params],
    ).fetchall()
    found: dict[int, float] = {}
    missing: dict[str | None, int] = {}
    for title_id, code, net, gap in rows:
        found[int(title_id)] = found.get(int(title_id), 0.0) + float(net or 0.0)
        if gap:
            missing[code] = missing.get(code, 0) + int(gap)
    notes.extend(f"Net revenue: {text}" for text in money_rules.gap_notes(missing))
    return pd.Series({t: found.get(t, 0.0) for t in ids}, dtype="float64")


def similarity_features(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    title_id: int = 0,
    candidates: int = 400,
) -> dict[str, pd.DataFrame]:
    """What models.similarity needs for one target title, over the filtered period.

    - titles: the target and the ``candidates`` most viewed titles in the period (in scope):
      title_id, name, kind, genre, genres, runtime_min, viewers (distinct, in the period);
    - overlap: title_id, shared (distinct viewers of the title who also watched the target);
    - pattern: title_id, slot (0..47: weekday hours 0..23, then weekend hours), starts — when in
      the viewer's local week people watch the title.
    """
    target = int(title_id)
    where, params = dv_view_where(filters, scope)
    top = cursor.execute(
        "SELECT title_id, count(DISTINCT viewer_key) AS viewers, sum(views) AS views "
        f"FROM dv_view WHERE day BETWEEN ? AND ? AND {where} GROUP BY 1 "
        "ORDER BY views DESC NULLS LAST, title_id LIMIT ?",
        [filters.start, filters.end, *params, int(candidates)],
    ).df()
    ids = sorted({int(t) for t in top["title_id"]} | {target})
    marks = ", ".join("?" * len(ids))
    scope_sql, scope_params = scope.where("creator_id")
    titles = cursor.execute(
        "SELECT title_id, name, kind, genre, genres, runtime_min FROM dim_title "
        f"WHERE title_id IN ({marks}) AND {scope_sql}",
        [*ids, *scope_params],
    ).df()
    titles["title_id"] = titles["title_id"].astype("int64")
    if target not in set(titles["title_id"]):
        empty = pd.DataFrame(columns=["title_id", "shared"])
        return {"titles": titles.iloc[0:0], "overlap": empty, "pattern": empty}
    ids = [int(t) for t in titles["title_id"]]
    marks = ", ".join("?" * len(ids))
    viewers = top[["title_id", "viewers"]]
    if target not in set(top["title_id"].astype(int)):
        viewers = pd.concat(
            [
                viewers,
                cursor.execute(
                    "SELECT title_id, count(DISTINCT viewer_key) AS viewers FROM dv_view "
                    f"WHERE day BETWEEN ? AND ? AND title_id = ? AND {where} GROUP BY 1",
                    [filters.start, filters.end, target, *params],
                ).df(),
            ]
        )
    titles = titles.merge(viewers.astype({"title_id": "int64"}), on="title_id", how="left")
    titles["viewers"] = titles["viewers"].fillna(0).astype("int64")
    overlap = cursor.execute(
        "WITH base AS (SELECT DISTINCT viewer_key FROM dv_view "
        f"  WHERE day BETWEEN ? AND ? AND title_id = ? AND {where}) "
        "SELECT d.title_id, count(DISTINCT d.viewer_key) AS shared FROM dv_view d "
        "JOIN base b ON b.viewer_key = d.viewer_key "
        f"WHERE d.day BETWEEN ? AND ? AND d.title_id IN ({marks}) AND "
        + dv_view_where(filters, scope, "d.")[0]
        + " GROUP BY 1",
        [
            filters.start,
            filters.end,
            target,
            *params,
            filters.start,
            filters.end,
            *ids,
            *dv_view_where(filters, scope, "d.")[1],
        ],
    ).df()
    source, fwhere, fparams = fact_view_source(filters, scope, extract_as_of(cursor))
    pattern = cursor.execute(
        "SELECT title_id, CASE WHEN isodow(local_at) >= 6 THEN 24 ELSE 0 END + hour(local_at) "
        "AS slot, count(*) AS starts FROM ("
        "  SELECT v.title_id, v.started_at + INTERVAL 1 MINUTE * v.tz_offset_min AS local_at"
        f"  FROM {source} WHERE v.started_at >= ? AND v.started_at < ? "
        f"  AND v.title_id IN ({marks}) AND {fwhere}"
        ") GROUP BY ALL",
        [*utc_bounds(filters.start, filters.end), *ids, *fparams],
    ).df()
    return {
        "titles": titles,
        "overlap": overlap.astype({"title_id": "int64"}),
        "pattern": pattern.astype({"title_id": "int64", "slot": "int64"}),
    }
