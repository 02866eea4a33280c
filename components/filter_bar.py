"""The filter bar every dashboard page shows: period, comparison and dimension filters.

The filters are user intent, so they live in session state under one named key (as the URL
query-parameter dict of ``data.filters.Filters``) and in the URL itself, so a view can be
bookmarked and shared and survives moving between pages. A link whose filters cannot be used
(a bad date, an unknown preset) is not thrown away silently: the page says what was wrong and
shows the default period.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import streamlit as st

from data.filters import (
    COMPARISON_LABELS,
    COMPARISONS,
    DEFAULT_PRESET,
    DIMENSIONS,
    PRESET_LABELS,
    PRESETS,
    Filters,
    FiltersError,
)

INTENT_KEY = "filter_params"
_OWN_PARAMS = frozenset({"preset", "start", "end", "compare", *DIMENSIONS})


def _initial_params() -> dict[str, str]:
    """The URL's filter parameters when it has any, else what this session chose last."""
    from_url = {k: v for k, v in st.query_params.to_dict().items() if k in _OWN_PARAMS}
    if from_url:
        return from_url
    return dict(st.session_state.get(INTENT_KEY, {}))


def _resolve(params: Mapping[str, str], anchor: date) -> Filters:
    try:
        return Filters.from_query_params(params, anchor)
    except FiltersError as exc:
        st.warning(
            f"The filters in this link could not be used: {exc} Showing the last 28 days instead.",
            icon="⚠️",
        )
        return Filters.for_preset(DEFAULT_PRESET, anchor)


def _seed_widgets(key: str, filters: Filters) -> None:
    state = st.session_state
    state.setdefault(f"{key}-preset", filters.preset)
    state.setdefault(f"{key}-dates", (filters.start, filters.end))
    state.setdefault(f"{key}-compare", filters.comparison)
    for name in DIMENSIONS:
        state.setdefault(f"{key}-dim-{name}", list(filters.values(name)))


def _publish(filters: Filters) -> None:
    params = filters.to_query_params()
    st.session_state[INTENT_KEY] = params
    current = st.query_params.to_dict()
    for name in _OWN_PARAMS:
        if name in params and current.get(name) != params[name]:
            st.query_params[name] = params[name]
        elif name not in params and name in current:
            del st.query_params[name]


def filter_bar(
    anchor: date,
    first_day: date,
    options: Mapping[str, list[tuple[str, str]]],
    *,
    key: str = "filters",
) -> Filters:
    """Render the filter bar and return the filters it describes (also written to the URL)."""
    _seed_widgets(key, _resolve(_initial_params(), anchor))
    period_col, compare_col, dims_col = st.columns([2, 2, 3], vertical_alignment="bottom")
    with period_col:
        preset = st.selectbox(
            "Period",
            PRESETS,
            format_func=PRESET_LABELS.__getitem__,
            key=f"{key}-preset",
            help=f"Periods end on the last day with data ({anchor:%d %b %Y}); days are UTC.",
        )
    start, end = st.session_state[f"{key}-dates"]
    if preset == "custom":
        with period_col:
            picked = st.date_input(
                "Dates",
                min_value=first_day,
                max_value=anchor,
                key=f"{key}-dates",
                format="YYYY-MM-DD",
            )
            if isinstance(picked, tuple) and len(picked) == 2:
                start, end = picked
            else:
                st.caption("Pick an end date to complete the range.")
    with compare_col:
        comparison = st.selectbox(
            "Compare with",
            COMPARISONS,
            format_func=COMPARISON_LABELS.__getitem__,
            key=f"{key}-compare",
            help="The previous period has the same length and ends the day before this one starts.",
        )
    chosen: dict[str, tuple[str, ...]] = {}
    active = sum(bool(st.session_state.get(f"{key}-dim-{name}")) for name in DIMENSIONS)
    with (
        dims_col,
        st.popover(
            f"🔎 Filters ({active} active)" if active else "🔎 Add filters", width="stretch"
        ),
    ):
        for name, dimension in DIMENSIONS.items():
            labels = dict(options.get(name, []))
            # A value from a shared link that this extract lacks stays selectable (and selects
            # nothing) rather than being dropped or failing the widget.
            selected = st.session_state.get(f"{key}-dim-{name}", [])
            choices = list(labels) + [v for v in selected if v not in labels]
            chosen[dimension.field] = tuple(
                st.multiselect(
                    dimension.label,
                    choices,
                    format_func=lambda value, labels=labels: labels.get(value, value),
                    key=f"{key}-dim-{name}",
                    placeholder=f"All {dimension.label.lower()}s — type to search",
                )
            )
    try:
        filters = Filters.for_preset(
            preset, anchor, start=start, end=end, comparison=comparison, **chosen
        )
    except FiltersError as exc:
        st.error(f"{exc} Showing the last 28 days instead.", icon="⚠️")
        filters = Filters.for_preset(DEFAULT_PRESET, anchor, comparison=comparison, **chosen)
    _publish(filters)
    return filters
