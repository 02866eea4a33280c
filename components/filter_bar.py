"""The filter bar every dashboard page shows: period, comparison, filter chips and saved views.

Filters for people who do not write queries: "➕ Add a filter" lists the dimensions; each filter
is a chip with a searchable value picker, buttons to move it earlier (↑) or later (↓), and ✕ to
remove it. Native widgets rather than a drag-and-drop component (see docs/architecture.md, "The filter
bar"): they work with the keyboard and screen readers, load no extra frontend bundle, and are
driven by AppTest like every other widget.

The filters are user intent, so they live in session state under named keys (the URL
query-parameter dict of ``data.queries.filters.Filters`` under ``INTENT_KEY``, the chip order under
``<key>-chips``) and in the URL itself, so a view can be bookmarked and shared and survives
moving between pages. A link whose filters cannot be used (a bad date, an unknown preset) is not
thrown away silently: the page says what was wrong and shows the default period. Saved views
(security/saved_views.py) store the same URL parameters per user.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import streamlit as st

from components.context import AppContext
from components.text import md_escape
from data.queries.filters import (
    COMPARISON_LABELS,
    COMPARISONS,
    DEFAULT_PRESET,
    DIMENSIONS,
    PRESET_LABELS,
    PRESETS,
    Filters,
    FiltersError,
)
from security.saved_views import SavedViewError, SavedViews

INTENT_KEY = "filter_params"
CHIPS_PARAM = "chips"  # the chip order, so a shared link shows the same chips in the same order
_OWN_PARAMS = frozenset({"preset", "start", "end", "compare", CHIPS_PARAM, *DIMENSIONS})
_NOTICE_KEY = "filter_notice"


def _initial_params() -> dict[str, str]:
    """The URL's filter parameters when it has any, else what this session chose last."""
    from_url = {k: v for k, v in st.query_params.to_dict().items() if k in _OWN_PARAMS}
    if from_url:
        return from_url
    return dict(st.session_state.get(INTENT_KEY, {}))


def _resolve(params: Mapping[str, str], anchor: date, first_day: date) -> Filters:
    try:
        asked = Filters.from_query_params(params, anchor)
    except FiltersError as exc:
        st.warning(
            f"The filters in this link could not be used: {md_escape(exc)} "
            "Showing the last 28 days instead.",
            icon="⚠️",
        )
        return Filters.for_preset(DEFAULT_PRESET, anchor)
    clamped = asked.within_data(first_day, anchor)
    data_span = f"{first_day:%Y-%m-%d} to {anchor:%Y-%m-%d}"
    if clamped is None:
        st.warning(
            f"The dates in this link ({asked.start:%Y-%m-%d} to {asked.end:%Y-%m-%d}) hold no "
            f"data: there is data from {data_span}. Showing the last 28 days instead.",
            icon="⚠️",
        )
        return Filters.for_preset(DEFAULT_PRESET, anchor)
    if clamped != asked:
        st.warning(
            f"The dates in this link ({asked.start:%Y-%m-%d} to {asked.end:%Y-%m-%d}) reach "
            f"outside the data ({data_span}): showing {clamped.start:%Y-%m-%d} to "
            f"{clamped.end:%Y-%m-%d}.",
            icon="⚠️",
        )
    return clamped


def _chip_order(params: Mapping[str, str], filters: Filters) -> list[str]:
    """Chips in the link's order (unknown names dropped), then any other filtered dimension."""
    named = str(params.get(CHIPS_PARAM) or "").split(",")  # dimension names have no commas
    order = [n for n in dict.fromkeys(named) if n in DIMENSIONS]
    return order + [n for n in DIMENSIONS if n in filters.active_dimensions and n not in order]


def _set_widgets(key: str, filters: Filters, chips: list[str], *, force: bool) -> None:
    """Put the filters into the widgets' state (only where unset unless ``force``)."""
    state = st.session_state
    values = {
        f"{key}-preset": filters.preset,
        f"{key}-dates": (filters.start, filters.end),
        f"{key}-compare": filters.comparison,
        f"{key}-chips": list(chips),
        **{f"{key}-dim-{name}": list(filters.values(name)) for name in DIMENSIONS},
    }
    for name, value in values.items():
        if force or name not in state:
            state[name] = value
        else:
            # Streamlit drops a widget's value when another page draws a widget with the same
            # key; writing the value back through the Session State API keeps it (the
            # documented way to carry widget state across pages).
            state[name] = state[name]


def _publish(filters: Filters, chips: list[str]) -> None:
    params = filters.to_query_params()
    if chips:
        params[CHIPS_PARAM] = ",".join(chips)
    st.session_state[INTENT_KEY] = params
    current = st.query_params.to_dict()
    for name in _OWN_PARAMS:
        if name in params and current.get(name) != params[name]:
            st.query_params[name] = params[name]
        elif name not in params and name in current:
            del st.query_params[name]


# --- chip callbacks (run before the next script run, so widget state may be changed) ----------
def _add_chip(key: str) -> None:
    name = st.session_state.get(f"{key}-add")
    chips = st.session_state.setdefault(f"{key}-chips", [])
    if name in DIMENSIONS and name not in chips:
        chips.append(name)
    st.session_state[f"{key}-add"] = None


def _move_chip(key: str, name: str, step: int) -> None:
    chips = st.session_state.get(f"{key}-chips", [])
    if name in chips:
        i = chips.index(name)
        j = min(max(i + step, 0), len(chips) - 1)
        chips[i], chips[j] = chips[j], chips[i]


def _remove_chip(key: str, name: str) -> None:
    chips = st.session_state.get(f"{key}-chips", [])
    if name in chips:
        chips.remove(name)
    st.session_state[f"{key}-dim-{name}"] = []


def _clear_all(key: str) -> None:
    for name in st.session_state.get(f"{key}-chips", []):
        st.session_state[f"{key}-dim-{name}"] = []
    st.session_state[f"{key}-chips"] = []


def _open_view(key: str, views: SavedViews, username: str, anchor: date, first_day: date) -> None:
    name = st.session_state.get(f"{key}-view")
    view = views.get(username, name) if name else None
    if view is None:
        return
    try:
        asked = Filters.from_query_params(view.params, anchor)
    except FiltersError as exc:
        st.session_state[_NOTICE_KEY] = f"The saved view could not be opened: {exc}"
        return
    filters = asked.within_data(first_day, anchor)
    if filters is None:
        st.session_state[_NOTICE_KEY] = (
            f"The saved view “{view.name}” covers {asked.start:%Y-%m-%d} to {asked.end:%Y-%m-%d}, "
            f"which holds no data (there is data from {first_day:%Y-%m-%d} to {anchor:%Y-%m-%d})."
        )
        return
    _set_widgets(key, filters, _chip_order(view.params, filters), force=True)
    clamped = (
        f" Its dates were narrowed to the data: {filters.start:%Y-%m-%d} to {filters.end:%Y-%m-%d}."
        if filters != asked
        else ""
    )
    st.session_state[_NOTICE_KEY] = f"Opened the saved view “{view.name}”.{clamped}"


def _save_view(key: str, views: SavedViews, username: str) -> None:
    try:
        saved = views.save(
            username,
            st.session_state.get(f"{key}-view-name", ""),
            st.session_state.get(INTENT_KEY, {}),
        )
    except SavedViewError as exc:
        st.session_state[_NOTICE_KEY] = str(exc)
        return
    st.session_state[f"{key}-view-name"] = ""
    st.session_state[_NOTICE_KEY] = f"Saved the view “{saved.name}”."


def _delete_view(key: str, views: SavedViews, username: str) -> None:
    name = st.session_state.get(f"{key}-view")
    if name and views.delete(username, name):
        st.session_state[f"{key}-view"] = None
        st.session_state[_NOTICE_KEY] = f"Deleted the saved view “{name}”."


# --- rendering -----------------------------------------------------------------------------------
def _saved_views_popover(
    key: str, views: SavedViews, username: str, anchor: date, first_day: date
) -> None:
    mine = views.list(username)
    with st.popover("⭐ Saved views", width="stretch"):
        names = [v.name for v in mine]
        if st.session_state.get(f"{key}-view") not in names:
            st.session_state[f"{key}-view"] = None
        st.selectbox(
            "Your saved views",
            names,
            index=None,
            key=f"{key}-view",
            placeholder="None saved yet" if not names else "Pick a view",
        )
        left, right = st.columns(2)
        left.button(
            "Open",
            key=f"{key}-view-open",
            on_click=_open_view,
            args=(key, views, username, anchor, first_day),
            disabled=not names,
            width="stretch",
        )
        right.button(
            "Delete",
            key=f"{key}-view-delete",
            on_click=_delete_view,
            args=(key, views, username),
            disabled=not names,
            width="stretch",
        )
        st.text_input("Name for the current filters", key=f"{key}-view-name", max_chars=60)
        st.button(
            "💾 Save current filters",
            key=f"{key}-view-save",
            on_click=_save_view,
            args=(key, views, username),
            width="stretch",
        )


def _chip(
    key: str, name: str, position: int, count: int, labels: Mapping[str, str]
) -> tuple[str, ...]:
    dimension = DIMENSIONS[name]
    with st.container(border=True, width=300, key=f"{key}-chip-{name}"):
        head, up, down, remove = st.columns([5, 1, 1, 1], vertical_alignment="center", gap=None)
        head.markdown(f"**{dimension.label}**")
        up.button(
            "↑",
            key=f"{key}-up-{name}",
            help=f"Move the {dimension.label.lower()} filter earlier",
            on_click=_move_chip,
            args=(key, name, -1),
            disabled=position == 0,
            type="tertiary",
        )
        down.button(
            "↓",
            key=f"{key}-down-{name}",
            help=f"Move the {dimension.label.lower()} filter later",
            on_click=_move_chip,
            args=(key, name, 1),
            disabled=position == count - 1,
            type="tertiary",
        )
        remove.button(
            "✕",
            key=f"{key}-remove-{name}",
            help=f"Remove the {dimension.label.lower()} filter",
            on_click=_remove_chip,
            args=(key, name),
            type="tertiary",
        )
        # A value from a shared link that this extract lacks stays selectable (and selects
        # nothing) rather than being dropped or failing the widget.
        selected = st.session_state.get(f"{key}-dim-{name}", [])
        choices = list(labels) + [v for v in selected if v not in labels]
        picked = tuple(
            st.multiselect(
                dimension.label,
                choices,
                format_func=lambda value: labels.get(value, value),
                key=f"{key}-dim-{name}",
                placeholder=f"All — type to search {dimension.label.lower()}s",
                label_visibility="collapsed",
            )
        )
        # Every value of the dimension selected is no filter at all: otherwise metrics that a
        # dimension does not split (new subscribers by device) would go blank for nothing.
        return () if labels and set(labels) <= set(picked) else picked


def filter_bar(
    anchor: date,
    first_day: date,
    options: Mapping[str, list[tuple[str, str]]],
    *,
    key: str = "filters",
    views: SavedViews | None = None,
    username: str = "",
) -> Filters:
    """Render the filter bar and return the filters it describes (also written to the URL).

    With ``views`` and ``username`` the bar offers the user's saved views.
    """
    params = _initial_params()
    resolved = _resolve(params, anchor, first_day)
    _set_widgets(key, resolved, _chip_order(params, resolved), force=False)
    notice = st.session_state.pop(_NOTICE_KEY, None)
    if notice:
        st.toast(md_escape(notice), icon="⭐")

    period_col, compare_col, views_col = st.columns([3, 2, 1.3], vertical_alignment="bottom")
    with period_col:
        preset = st.selectbox(
            "Period",
            PRESETS,
            format_func=PRESET_LABELS.__getitem__,
            key=f"{key}-preset",
            help=f"Periods end on the last day with data ({anchor:%d %b %Y}). Days are UTC "
            "days (midnight to midnight UTC), whatever your time zone.",
        )
        start, end = st.session_state[f"{key}-dates"]
        if preset == "custom":
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
    if views is not None and username:
        with views_col:
            _saved_views_popover(key, views, username, anchor, first_day)

    chips: list[str] = [c for c in st.session_state[f"{key}-chips"] if c in DIMENSIONS]
    chosen: dict[str, tuple[str, ...]] = {}
    with st.container(horizontal=True, key=f"{key}-chips-row", vertical_alignment="center"):
        for position, name in enumerate(chips):
            values = _chip(key, name, position, len(chips), dict(options.get(name, [])))
            chosen[DIMENSIONS[name].field] = values
        unused = [n for n in DIMENSIONS if n not in chips]
        if unused:
            st.selectbox(
                "Add a filter",
                unused,
                index=None,
                format_func=lambda n: DIMENSIONS[n].label,
                key=f"{key}-add",
                on_change=_add_chip,
                args=(key,),
                placeholder="➕ Add a filter…",
                label_visibility="collapsed",
                width=220,
            )
        if chips:
            st.button("Clear filters", key=f"{key}-clear", on_click=_clear_all, args=(key,))
    try:
        filters = Filters.for_preset(
            preset, anchor, start=start, end=end, comparison=comparison, **chosen
        )
    except FiltersError as exc:
        st.error(f"{md_escape(exc)} Showing the last 28 days instead.", icon="⚠️")
        filters = Filters.for_preset(DEFAULT_PRESET, anchor, comparison=comparison, **chosen)
    _publish(filters, chips)
    return filters


def saved_views(ctx: AppContext) -> SavedViews:
    """The saved-views store in the app database behind ``ctx.security``."""
    return SavedViews(ctx.security.db, ctx.security.clock)
