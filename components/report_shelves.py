"""The report builder's shelves: rows, columns and values, as in a pivot table's field list.

The shelves are plain data (the report document in session state); two ways of moving fields
edit the same document:

- drag and drop (streamlit-sortables' multi-container mode, which also reorders with the
  keyboard: its frontend ships in the wheel, so it works offline), where order matters —
  the first row field is the outer one;
- a keyboard and click alternative beside it: one picker per shelf (the order of choosing is the
  order on the shelf), usable by screen readers and by AppTest.

Each change renews both widgets' keys, so both always start from the document.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import streamlit as st
from streamlit_sortables import sort_items

from data.queries.reports import MAX_COLUMN_FIELDS, MAX_ROW_FIELDS, MAX_VALUES

DOC_KEY = "report-doc"
NONCE_KEY = "report-nonce"
SHELVES = ("rows", "columns", "values")
SHELF_LABELS = {"rows": "Rows", "columns": "Columns", "values": "Values"}
FIELDS_LABEL = "Fields"
SHELF_LIMITS = {"rows": MAX_ROW_FIELDS, "columns": MAX_COLUMN_FIELDS, "values": MAX_VALUES}
EMPTY_REPORT: dict[str, Any] = {
    "version": 1,
    "rows": ["genre"],
    "columns": [],
    "values": ["views", "watch_hours"],
    "filters": {},
    "grain": None,
    "sort": None,
    "top_n": None,
    "totals": True,
    "subtotals": False,
    "percent_of_total": [],
    "comparison": False,
}
# A drag-and-drop board is a few hundred pixels: at most this many fields wait in the list.
_MAX_LISTED = 40


def current() -> dict[str, Any]:
    if DOC_KEY not in st.session_state:
        st.session_state[DOC_KEY] = copy.deepcopy(EMPTY_REPORT)
    return st.session_state[DOC_KEY]


def load(doc: Mapping[str, Any]) -> None:
    """Put a report document on the shelves (a saved report, a duplicate)."""
    st.session_state[DOC_KEY] = copy.deepcopy(dict(doc))
    st.session_state[NONCE_KEY] = st.session_state.get(NONCE_KEY, 0) + 1


def _update(doc: dict[str, Any]) -> None:
    load(doc)
    st.rerun()


def shelves(dimensions: Mapping[str, str], metrics: Mapping[str, str]) -> dict[str, Any]:
    """Draw the shelves; return the report document as they now are.

    ``dimensions`` and ``metrics``: field id -> label (the labels are what is dragged).
    """
    doc = current()
    nonce = st.session_state.get(NONCE_KEY, 0)
    label_of = {**dimensions, **metrics}
    id_of = {label: field for field, label in label_of.items()}
    placed = {shelf: [f for f in doc.get(shelf, []) if f in label_of] for shelf in SHELVES}
    used = {f for fields in placed.values() for f in fields}
    free = [f for f in [*dimensions, *metrics] if f not in used][:_MAX_LISTED]
    board = [{"header": FIELDS_LABEL, "items": [label_of[f] for f in free]}] + [
        {"header": SHELF_LABELS[shelf], "items": [label_of[f] for f in placed[shelf]]}
        for shelf in SHELVES
    ]
    st.caption(
        "Drag fields onto Rows, Columns and Values (or use the pickers below): dimensions go on "
        "rows and columns, metrics on values. The first row field is the outer one."
    )
    moved = sort_items(board, multi_containers=True, key=f"report-board-{nonce}")
    if moved and moved != board:
        _apply_board(doc, moved, id_of, dimensions, metrics)
    with st.expander("⌨️ Pick fields without dragging", expanded=False):
        for shelf in SHELVES:
            options = list(metrics) if shelf == "values" else list(dimensions)
            chosen = st.multiselect(
                SHELF_LABELS[shelf],
                options,
                default=[f for f in placed[shelf] if f in options][: SHELF_LIMITS[shelf]],
                format_func=lambda f: label_of[f],
                key=f"report-{shelf}-{nonce}",
                max_selections=SHELF_LIMITS[shelf],
            )
            if chosen != placed[shelf]:
                new = copy.deepcopy(doc)
                new[shelf] = list(chosen)
                _update(new)
    return doc


def _apply_board(
    doc: dict[str, Any],
    moved: list[dict[str, Any]],
    id_of: Mapping[str, str],
    dimensions: Mapping[str, str],
    metrics: Mapping[str, str],
) -> None:
    new = copy.deepcopy(doc)
    refused: list[str] = []
    for container in moved:
        shelf = next((s for s, label in SHELF_LABELS.items() if label == container["header"]), None)
        if shelf is None:
            continue
        fields = [id_of[label] for label in container["items"] if label in id_of]
        allowed = metrics if shelf == "values" else dimensions
        refused += [f for f in fields if f not in allowed]
        fitting = [f for f in fields if f in allowed]
        # A shelf holds so many fields (a pivot's limits); the rest go back to the field list.
        refused += fitting[SHELF_LIMITS[shelf] :]
        new[shelf] = fitting[: SHELF_LIMITS[shelf]]
    if refused:
        st.session_state["report-refused"] = refused
    _update(new)


def refused_note(labels: Mapping[str, str]) -> None:
    """Say which fields were dropped on a shelf that cannot take them (once)."""
    refused = st.session_state.pop("report-refused", None)
    if refused:
        names = ", ".join(labels.get(f, f) for f in refused)
        st.warning(
            f"{names}: back in the field list — metrics go on Values, dimensions on Rows (at "
            f"most {MAX_ROW_FIELDS}) and Columns (at most {MAX_COLUMN_FIELDS}), and Values holds "
            f"at most {MAX_VALUES}.",
            icon="↩️",
        )
