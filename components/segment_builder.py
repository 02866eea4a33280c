"""The segment rule builder: a segment definition (data/queries/segments.py's JSON document) kept
in session state, drawn as native widgets, and read back from them on every run.

Conditions sit in an AND or OR group; a condition can be a sub-group of its own (one level in
the form; any depth through "Edit as JSON", which validates exactly like a saved segment). Each
structural change (add, remove, load) renews the widget keys, so widgets always start from the
document, and the document is always what the widgets show.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st

from components.text import md_escape
from data.queries.segments import check_definition

DOC_KEY = "segment-doc"
RAW_KEY = "segment-raw"  # a loaded document that did not validate: (its JSON text, why)
NONCE_KEY = "segment-nonce"
EMPTY_DOC: dict[str, Any] = {
    "version": 1,
    "window": {"last_days": 30},
    "match": {"op": "and", "items": []},
}

# type -> (label in the picker, kind, filters offered)
CONDITIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "watch_hours": ("Watched hours", "number", ("genre", "kind", "title_id", "creator_id")),
    "sessions": ("Views (sessions started)", "count", ("genre", "kind", "title_id", "creator_id")),
    "distinct_titles": ("Different titles watched", "count", ("genre", "kind", "creator_id")),
    "completed": (
        "Titles completed (sessions)",
        "count",
        ("genre", "kind", "title_id", "creator_id"),
    ),
    "active_days": ("Days active", "count", ()),
    "ppv_purchases": ("Pay-per-view purchases", "count", ()),
    "interactions": ("Polls, Q&A and reactions", "count", ()),
    "device": ("Used a device", "list", ()),
    "subscribed": ("Started a subscription", "flag", ()),
    "churned": ("Churned (ended, none active at the end)", "flag", ()),
    "resubscribed": ("Came back (a new subscription after an earlier one)", "flag", ()),
    "country": ("Country", "list", ()),
    "region": ("Region", "list", ()),
    "age_band": ("Age band", "list", ()),
    "plan": ("Plan", "list", ()),
    "acquisition_channel": ("Acquisition channel", "list", ()),
    "signup_date": ("Signed up", "dates", ()),
}
FILTER_LABELS = {
    "": "any title",
    "genre": "of a genre",
    "kind": "of a kind",
    "title_id": "of a title",
    "creator_id": "of a creator",
}
INTERACTION_KINDS = {"": "any kind", "poll": "polls", "qa": "Q&A", "reaction": "reactions"}


def current_doc() -> dict[str, Any]:
    if DOC_KEY not in st.session_state:
        st.session_state[DOC_KEY] = copy.deepcopy(EMPTY_DOC)
    return st.session_state[DOC_KEY]


def load(doc: Any, *, validate: bool = True) -> None:
    """Put a document in the builder (a saved segment, a cluster's rule, a JSON edit).

    A document that does not validate (a saved version written by an older release, say) is
    not drawn as widgets, which could not show it: the builder starts empty and the JSON editor
    holds the document, open, with what is wrong with it.
    """
    problem = _problem(doc) if validate else None
    if problem is None:
        st.session_state[DOC_KEY] = copy.deepcopy(doc)
        st.session_state.pop(RAW_KEY, None)
    else:
        st.session_state[DOC_KEY] = copy.deepcopy(EMPTY_DOC)
        st.session_state[RAW_KEY] = (_as_text(doc), problem)
    st.session_state[NONCE_KEY] = st.session_state.get(NONCE_KEY, 0) + 1


def _problem(doc: Any) -> str | None:
    """Why ``doc`` cannot be drawn, if it cannot; empty groups are fine here (being built)."""

    def filled(group: Any) -> Any:
        if not isinstance(group, dict) or not isinstance(group.get("items"), list):
            return group
        items = [filled(i) for i in group["items"]] or [{"type": "subscribed"}]
        return {**group, "items": items}

    if isinstance(doc, dict) and "match" in doc:
        doc = {**doc, "match": filled(doc["match"])}
    return check_definition(doc)


def _as_text(doc: Any) -> str:
    try:
        return json.dumps(doc, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(doc)


def _nonce() -> int:
    return st.session_state.get(NONCE_KEY, 0)


def _default_condition(kind: str, options: dict[str, list]) -> dict[str, Any]:
    shape = CONDITIONS[kind][1]
    if shape in ("number", "count"):
        return {"type": kind, "min": 1}
    if shape == "list":
        values = options.get(kind) or []
        return {"type": kind, "any_of": [values[0][0]] if values else []}
    if shape == "dates":
        return {"type": kind, "after": date(date.today().year - 1, 1, 1).isoformat()}
    return {"type": kind}


def builder(options: dict[str, list[tuple[str, str]]], last_day: date) -> dict[str, Any]:
    """Draw the builder; return the document as the widgets now say.

    ``options``: value lists per list condition and per filter (``genre``, ``kind``,
    ``title_id``, ``creator_id``, ``country`` ...), each as (value, label) pairs.
    """
    doc = current_doc()
    key = f"seg{_nonce()}"
    window = _window(doc.get("window", {}), key, last_day)
    match = doc.get("match") or {"op": "and", "items": []}
    match = _group(match, options, f"{key}-m", top=True)
    new = {"version": 1, "window": window, "match": match}
    st.session_state[DOC_KEY] = new
    return new


def _window(window: dict[str, Any], key: str, last_day: date) -> dict[str, Any]:
    left, right = st.columns([2, 3])
    mode = left.radio(
        "Behaviour over",
        ["last_days", "range"],
        index=0 if "last_days" in window else 1,
        format_func={"last_days": "the last days of the data", "range": "a date range"}.get,
        key=f"{key}-wmode",
        horizontal=True,
    )
    if mode == "last_days":
        days = right.number_input(
            "Days",
            min_value=1,
            max_value=3660,
            value=int(window.get("last_days", 30)),
            step=1,
            key=f"{key}-wdays",
            help="Counted back from the last day with data.",
        )
        return {"last_days": int(days)}
    # Defaults from the data's last day: an extract that ends in the past is not an empty today.
    start = _as_date(window.get("start")) or last_day.replace(day=1)
    end = _as_date(window.get("end")) or last_day
    chosen = right.date_input("From – to", value=(start, end), key=f"{key}-wrange")
    if isinstance(chosen, tuple) and len(chosen) == 2:
        return {"start": chosen[0].isoformat(), "end": chosen[1].isoformat()}
    return {"start": start.isoformat(), "end": end.isoformat()}


def _as_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _group(
    group: dict[str, Any], options: dict[str, list], key: str, *, top: bool
) -> dict[str, Any]:
    items = list(group.get("items", []))
    with st.container(border=not top):
        head = st.columns([3, 1]) if not top else [st.container(), None]
        op = head[0].segmented_control(
            "Viewers who match" if top else "This group matches",
            ["and", "or"],
            default=group.get("op", "and"),
            format_func={"and": "all of these (AND)", "or": "any of these (OR)"}.get,
            key=f"{key}-op",
        ) or group.get("op", "and")
        negate = bool(group.get("negate", False))
        if not top and head[1] is not None:
            negate = head[1].checkbox(
                "Not", value=negate, key=f"{key}-not", help="Viewers who do NOT match the group."
            )
        kept: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            sub = f"{key}-{i}"
            if "items" in item:
                if top:
                    new_item = _group(item, options, sub, top=False)
                    if st.button("Remove this group", key=f"{sub}-rmg"):
                        _structural(lambda d, i=i: d["match"]["items"].pop(i))
                    kept.append(new_item)
                else:
                    st.caption("A deeper group: edit it as JSON below.")
                    kept.append(item)
                continue
            new_item, removed = _condition(item, options, sub)
            if removed:
                path = (i,) if top else None
                _remove(key, i, path)
            kept.append(new_item)
        _adder(options, key, top)
    out: dict[str, Any] = {"op": op, "items": kept}
    if negate:
        out["negate"] = True
    return out


def _structural(change: Callable[[dict[str, Any]], Any]) -> None:
    doc = copy.deepcopy(st.session_state[DOC_KEY])
    change(doc)
    load(doc, validate=False)
    st.rerun()


def _group_path(key: str) -> list[int]:
    """The item indices of a group's key (``segN-m`` is the top, ``segN-m-2`` its third item)."""
    parts = key.split("-")[2:]
    return [int(p) for p in parts]


def _remove(group_key: str, index: int, _path: tuple | None) -> None:
    path = _group_path(group_key)

    def change(doc: dict[str, Any]) -> None:
        group = doc["match"]
        for step in path:
            group = group["items"][step]
        group["items"].pop(index)

    _structural(change)


def _adder(options: dict[str, list], key: str, top: bool) -> None:
    path = _group_path(key)
    cols = st.columns([4, 2, 2] if top else [4, 2])
    kind = cols[0].selectbox(
        "Add a condition" if top else "Add a condition to this group",
        list(CONDITIONS),
        index=None,
        format_func=lambda t: CONDITIONS[t][0],
        placeholder="Choose a condition…",
        key=f"{key}-addtype",
    )
    cols[1].write("")
    if cols[1].button("➕ Add", key=f"{key}-add", disabled=kind is None):

        def change(doc: dict[str, Any]) -> None:
            group = doc["match"]
            for step in path:
                group = group["items"][step]
            group["items"].append(_default_condition(kind, options))

        _structural(change)
    if top:
        cols[2].write("")
        if cols[2].button("➕ Add an OR group", key=f"{key}-addg"):

            def change(doc: dict[str, Any]) -> None:
                doc["match"]["items"].append({"op": "or", "items": []})

            _structural(change)


def _condition(
    item: dict[str, Any], options: dict[str, list], key: str
) -> tuple[dict[str, Any], bool]:
    kind = str(item.get("type", ""))
    if kind not in CONDITIONS:
        st.warning(f"Unknown condition {kind!r}: edit it as JSON below.", icon="⚠️")
        return item, False
    label, shape, filters = CONDITIONS[kind]
    cols = st.columns([3, 6, 1, 1])
    cols[0].markdown(f"**{label}**")
    out: dict[str, Any] = {"type": kind}
    with cols[1]:
        if shape in ("number", "count"):
            out.update(_numbers(item, key, shape))
            if filters:
                out.update(_filter(item, options, key, filters))
            if kind == "interactions":
                chosen = st.selectbox(
                    "Kind",
                    list(INTERACTION_KINDS),
                    index=list(INTERACTION_KINDS).index(item.get("kind", "")),
                    format_func=INTERACTION_KINDS.get,
                    key=f"{key}-ikind",
                )
                if chosen:
                    out["kind"] = chosen
        elif shape == "list":
            pairs = options.get(kind, [])
            values = [v for v, _ in pairs]
            labels = dict(pairs)
            chosen = st.multiselect(
                "Any of",
                values,
                default=[v for v in item.get("any_of", []) if v in labels],
                format_func=lambda v: labels.get(v, v),
                key=f"{key}-any",
            )
            out["any_of"] = list(chosen)
        elif shape == "dates":
            a, b = st.columns(2)
            after = a.date_input(
                "On or after", value=_as_date(item.get("after")), key=f"{key}-after"
            )
            before = b.date_input(
                "On or before", value=_as_date(item.get("before")), key=f"{key}-before"
            )
            if after:
                out["after"] = after.isoformat()
            if before:
                out["before"] = before.isoformat()
        else:
            st.caption("In the window.")
    negate = cols[2].checkbox(
        "Not", value=bool(item.get("negate")), key=f"{key}-not", help="Viewers who do NOT match."
    )
    if negate:
        out["negate"] = True
    removed = cols[3].button("✕", key=f"{key}-rm", help="Remove this condition")
    return out, removed


def _numbers(item: dict[str, Any], key: str, shape: str) -> dict[str, Any]:
    a, b = st.columns(2)
    step = 0.5 if shape == "number" else 1.0
    low = a.number_input(
        "At least", min_value=0.0, value=_num(item.get("min")), step=step, key=f"{key}-min"
    )
    high = b.number_input(
        "At most (blank: no limit)",
        min_value=0.0,
        value=_num(item.get("max")),
        step=step,
        key=f"{key}-max",
    )
    out: dict[str, Any] = {}
    for name, value in (("min", low), ("max", high)):
        if value is not None:
            out[name] = int(value) if shape == "count" and float(value).is_integer() else value
    return out


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _filter(
    item: dict[str, Any], options: dict[str, list], key: str, filters: tuple[str, ...]
) -> dict[str, Any]:
    present = next((f for f in filters if f in item), "")
    a, b = st.columns(2)
    which = a.selectbox(
        "Of",
        ["", *filters],
        index=["", *filters].index(present),
        format_func=FILTER_LABELS.get,
        key=f"{key}-of",
    )
    if not which:
        return {}
    pairs = options.get(which, [])
    values = [v for v, _ in pairs]
    labels = dict(pairs)
    current = str(item.get(which, "")) if present == which else None
    chosen = b.selectbox(
        FILTER_LABELS[which].replace("of a ", "").capitalize(),
        values,
        index=values.index(current) if current in values else 0,
        format_func=lambda v: labels.get(v, v),
        key=f"{key}-ofv",
    )
    if chosen is None:
        return {}
    return {which: int(chosen) if which in ("title_id", "creator_id") else chosen}


def json_editor(parse: Callable[[Any], Any], key: str = "segment-json") -> None:
    """The document as JSON, editable; "Apply" validates it exactly as a saved one and loads it."""
    raw = st.session_state.get(RAW_KEY)
    with st.expander("Edit as JSON (nested groups, any depth)", expanded=raw is not None):
        if raw is not None:
            st.warning(
                f"This definition cannot be used as it is: {md_escape(raw[1])}. Correct it here "
                "and apply it.",
                icon="⚠️",
            )
        text = st.text_area(
            "Definition",
            value=raw[0] if raw is not None else json.dumps(current_doc(), indent=2),
            height=240,
            key=f"{key}-{_nonce()}",
        )
        if st.button("Apply the JSON", key=f"{key}-apply-{_nonce()}"):
            try:
                definition = parse(text)
            except ValueError as exc:
                st.error(f"Not applied: {md_escape(exc)}", icon="🚫")
                return
            load(definition.to_json())
            st.rerun()
