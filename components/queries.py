"""The one way pages run queries: cached, scoped by the principal, keyed by the live extract.

Streamlit's caches are shared by every user of the process, so the row scope is part of every
cache key (SECURITY.md #8) and is derived here from the principal, never passed in by a page.
The extract generation is in the key too, so a sync or an erasure is visible on the next run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import duckdb
import streamlit as st

from components import forecast_view
from components.context import AppContext, app_context, data_scope
from data.queries import (
    comparison,
    dimensions,
    earnings,
    engagement,
    metrics,
    money,
    realtime,
    reports,
    revenue,
    segments,
    title_periods,
)
from data.queries.filters import Filters, Scope
from models import similarity, underperformance
from security.permissions import Principal, require

QueryFn = Callable[..., Any]

# name -> function(cursor, filters, scope, **options); the allowlist of what pages may ask for.
QUERIES: dict[str, QueryFn] = {
    "kpis": metrics.kpis,
    "trend": metrics.trend,
    "breakdown": metrics.breakdown,
    "top_titles": metrics.top_titles,
    "hourly": realtime.hourly,
    "revenue_by_currency": money.revenue_by_currency,
    "dimension_options": lambda cursor, _filters, scope: dimensions.dimension_options(
        cursor, scope
    ),
    # Dashboards (issue 5): engagement, comparison, underperformance.
    "local_time_heatmap": engagement.local_time_heatmap,
    "release_weeks": engagement.release_weeks,
    "dropoff_curve": engagement.dropoff_curve,
    "titles_in_period": engagement.titles_in_period,
    "interaction_titles": engagement.interaction_titles,
    "interactions_by_week": engagement.interactions_by_week,
    "title_catalog": comparison.title_catalog,
    "compare_titles": comparison.compare_titles,
    "similar_titles": lambda cursor, filters, scope, title_id, k=5: similarity.similar_titles(
        title_id, **comparison.similarity_features(cursor, filters, scope, title_id), k=k
    ),
    "underperforming_titles": lambda cursor, filters, scope, k=10: (
        underperformance.underperforming_titles(
            title_periods.title_period_stats(cursor, filters, scope), k=k
        )
    ),
    # Money pages (issue 15): the scope is narrowed to the creators asked for in data/, never
    # widened, whatever a page passes.
    "creator_directory": lambda cursor, _filters, scope: earnings.creator_directory(cursor, scope),
    "earnings": lambda cursor, _filters, scope, **options: earnings.earnings(
        cursor, scope, **options
    ),
    "payouts": lambda cursor, _filters, scope, **options: earnings.payouts(
        cursor, scope, **options
    ),
    "revenue_flow": revenue.revenue_flow,
    "revenue_over_time": revenue.revenue_over_time,
    "mrr_movement": revenue.mrr_movement,
    "plan_economics": revenue.plan_economics,
    "ad_performance": revenue.ad_performance,
    # Segments (issue 13): viewers are nobody's creator rows; data/ refuses a creator scope.
    "segment_options": lambda cursor, _filters, scope: segment_options(cursor, scope),
    # Reports (issue 16): run as the viewer — their scope here, their money rights in run().
    "report": lambda cursor, filters, scope, definition, can_see_money, currency: (
        reports.run_report(
            cursor, definition, filters, scope, currency=currency, can_see_money=can_see_money
        )
    ),
    "segment_size": lambda cursor, _filters, scope, definition: segments.segment_size(
        cursor, definition, scope
    ),
    "segment_funnel": lambda cursor, _filters, scope, definition: segments.segment_funnel(
        cursor, definition, scope
    ),
    "segment_profile": lambda cursor, _filters, scope, definition: segments.segment_profile(
        cursor, definition, scope
    ),
    "segment_overlap": lambda cursor, _filters, scope, definitions: segments.segment_overlap(
        cursor, dict(definitions), scope
    ),
    "segment_members": lambda cursor, _filters, scope, definition, attributes=(), limit=None: (
        segments.segment_members(cursor, definition, scope, attributes=attributes, limit=limit)
    ),
    "payout_checks": lambda cursor, _filters, scope, **options: earnings.payout_checks(
        cursor, scope, **options
    ),
    # Forecasts (issue 14, components/forecast_view.py): the series definition and the model's
    # parameters are options, so they are in the key beside the scope and the extract. Money
    # metrics and the success model's money features have their own names, which need see_money
    # (QUERY_REQUIRES). Looked up when called (forecast_view imports this module).
    "forecast_as_of": lambda cursor, _filters, _scope: forecast_view.as_of_query(cursor),
    "forecast": lambda cursor, filters, scope, **options: forecast_view.forecast_query(
        cursor, filters, scope, money=False, **options
    ),
    "forecast_money": lambda cursor, filters, scope, **options: forecast_view.forecast_query(
        cursor, filters, scope, money=True, **options
    ),
    "forecast_title_features": lambda cursor, _filters, scope: forecast_view.title_features_query(
        cursor, scope, False
    ),
    "forecast_title_features_money": lambda cursor, _filters, scope: (
        forecast_view.title_features_query(cursor, scope, True)
    ),
    "success_model": lambda cursor, _filters, scope, early_days=0: forecast_view.success_query(
        cursor, scope, False, early_days
    ),
    "success_model_money": lambda cursor, _filters, scope, early_days=0: (
        forecast_view.success_query(cursor, scope, True, early_days)
    ),
}


def segment_options(cursor: duckdb.DuckDBPyConnection, scope: Scope) -> dict[str, list]:
    """What the segment builder offers: (value, label) pairs per list condition and filter."""
    found = dimensions.dimension_options(cursor, scope)
    extra = dimensions.viewer_attribute_options(cursor)
    titles = comparison.title_catalog(cursor, None, scope)
    return {
        "country": found["country"],
        "device": found["device"],
        "plan": found["plan"],
        "age_band": found["age_band"],
        "genre": found["genre"],
        "kind": found["kind"],
        "creator_id": found["creator"],
        "title_id": [
            (str(t), str(n)) for t, n in zip(titles["title_id"], titles["label"], strict=True)
        ],
        "region": [(v, v) for v in extra["region"]],
        "acquisition_channel": [(v, v) for v in extra["acquisition_channel"]],
    }


# Queries that show money: run in the reporting currency (the ``reporting_currency`` setting),
# which is then part of their cache key like every other option.
MONEY_QUERIES = frozenset(
    {
        "kpis",
        "trend",
        "breakdown",
        "compare_titles",
        "revenue_by_currency",
        "earnings",
        "payout_checks",
        "revenue_flow",
        "revenue_over_time",
        "mrr_movement",
        "plan_economics",
        "ad_performance",
        "forecast_money",
        "report",
    }
)

# Queries that need more than a scope: the page (or action) the principal must be granted, checked
# here as well as by the page, so no other page can ask for them (viewer-level rows above all).
QUERY_REQUIRES: dict[str, tuple[str, ...]] = {
    "segment_size": ("segments",),
    "segment_funnel": ("segments",),
    "segment_profile": ("segments",),
    "segment_overlap": ("segments",),
    "segment_options": ("segments",),
    "segment_members": ("segments", "export_personal_data"),
    "forecast_as_of": ("forecast",),
    "forecast": ("forecast",),
    "forecast_money": ("forecast", "see_money"),
    "forecast_title_features": ("forecast",),
    "forecast_title_features_money": ("forecast", "see_money"),
    "success_model": ("forecast",),
    "success_model_money": ("forecast", "see_money"),
}

# How many times each query was asked for in this process. Tests read it to prove that a page
# a principal may not open ran no query at all.
QUERY_REQUESTS: Counter[str] = Counter()


@st.cache_data(ttl=3600, max_entries=4096, show_spinner=False)
def _cached(
    name: str, generation: str, scope: Scope, filters: Filters | None, options: tuple
) -> Any:
    cursor: duckdb.DuckDBPyConnection = app_context().store.cursor()
    return QUERIES[name](cursor, filters, scope, **dict(options))


def run(
    ctx: AppContext, principal: Principal, name: str, filters: Filters | None = None, **options: Any
) -> Any:
    """Run an allowlisted query for the principal's scope (cached per scope and extract); money
    in the reporting currency."""
    QUERY_REQUESTS[name] += 1
    for needed in QUERY_REQUIRES.get(name, ()):
        require(principal, needed)
    if name == "report":
        # Never the author's rights, nor what a page passes: the viewer's, decided here.
        options["can_see_money"] = principal.can("see_money")
    if name in MONEY_QUERIES:
        options["currency"] = reporting_currency(ctx)
    return _cached(
        name, ctx.store.generation(), data_scope(principal), filters, tuple(sorted(options.items()))
    )


def reporting_currency(ctx: AppContext) -> str:
    """The currency money is shown in (the ``reporting_currency`` setting)."""
    return str(ctx.settings.reporting_currency)


@st.cache_data(ttl=3600, show_spinner=False)
def _bounds(generation: str) -> tuple[date, date] | None:
    return metrics.data_bounds(app_context().store.cursor())


def data_bounds(ctx: AppContext) -> tuple[date, date] | None:
    """First and last day with data (not scoped: dates reveal nothing about anyone's rows)."""
    QUERY_REQUESTS["data_bounds"] += 1
    return _bounds(ctx.store.generation())


@st.cache_data(ttl=3600, show_spinner=False)
def _latest_view(generation: str) -> datetime | None:
    return realtime.latest_view_at(app_context().store.cursor())


def latest_view_at(ctx: AppContext) -> datetime | None:
    """When the newest view in the extract started (not scoped, like :func:`data_bounds`)."""
    QUERY_REQUESTS["latest_view_at"] += 1
    return _latest_view(ctx.store.generation())
