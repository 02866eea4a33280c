"""WHERE fragments for per-title view queries (engagement, comparison, underperformance).

The metric catalog (data/queries/metrics.py) owns its own filtering; these helpers give the dashboard
queries the same meaning of every dimension over the same columns: the denormalised ``dv_view``
(data/extract/derived.py), or the base ``fact_view`` joined to its dimensions where a query needs the
session's time of day or time zone, which ``dv_view`` does not keep.

Identifiers come only from the fixed maps below; values are always bound parameters.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from data.extract.plausibility import plausible_sql
from data.queries.filters import Filters, Scope

# dimension -> column of dv_view (the same meaning data/queries/metrics.py gives the view family)
DV_VIEW_COLUMNS: dict[str, str] = {
    "country": "country",
    "device": "device",
    "genre": "genre",
    "kind": "kind",
    "creator": "creator_id",
    "plan": "plan",
    "age_band": "age_band",
}
# dimension -> column when reading fact_view v LEFT JOIN dim_title t LEFT JOIN dim_viewer w
FACT_VIEW_COLUMNS: dict[str, str] = {
    "country": "v.country",
    "device": "v.device",
    "genre": "t.genre",
    "kind": "t.kind",
    "creator": "t.creator_id",
    "plan": "w.plan",
    "age_band": "w.age_band",
}
_VIEWER_DIMENSIONS = frozenset({"plan", "age_band"})


def dv_view_where(
    filters: Filters, scope: Scope, prefix: str = "", *, skip: frozenset[str] = frozenset()
) -> tuple[str, list[Any]]:
    """Dimension filters and the creator scope over ``dv_view`` (columns optionally prefixed)."""
    columns = {d: prefix + c for d, c in DV_VIEW_COLUMNS.items()}
    dims_sql, params = filters.where(columns, skip=skip)
    scope_sql, scope_params = scope.where(prefix + "creator_id")
    return f"{dims_sql} AND {scope_sql}", params + scope_params


def fact_view_source(
    filters: Filters, scope: Scope, as_of: datetime | None
) -> tuple[str, str, list[Any]]:
    """``(FROM clause, WHERE fragment, parameters)`` for ``fact_view v`` with the joins needed.

    ``dim_viewer`` is joined only when a viewer attribute is filtered: it is the largest
    dimension, and most views of the dashboards do not need it. LEFT JOINs, as in dv_view, so
    a session whose title or viewer row is missing still counts when nothing filters on it.
    Implausible sessions are left out, as dv_view leaves them out: ``as_of`` is the extract's
    clock (``data.extract.derived.extract_as_of``).
    """
    source = "fact_view v LEFT JOIN dim_title t ON t.title_id = v.title_id"
    if filters.active_dimensions & _VIEWER_DIMENSIONS:
        source += " LEFT JOIN dim_viewer w ON w.viewer_key = v.viewer_key"
    dims_sql, params = filters.where(FACT_VIEW_COLUMNS)
    scope_sql, scope_params = scope.where("t.creator_id")
    keep_sql, keep_params = plausible_sql("fact_view", as_of, "v")
    return (
        source,
        f"{dims_sql} AND {scope_sql} AND {keep_sql}",
        params + scope_params + keep_params,
    )


def utc_bounds(start: date, end: date) -> list[date]:
    """Parameters for ``started_at >= ? AND started_at < ?`` covering UTC days start..end."""
    return [start, end + timedelta(days=1)]
