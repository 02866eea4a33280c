"""The Segments page's four views: build (rules with a live size, funnel and profile), saved
segments (versions, duplicate, delete, CRM export), overlap, and clusters.

Definitions are validated by data/queries/segments.py wherever they come from (the builder, the
JSON editor, a saved version, a cluster's rule); a saved version that no longer validates says
why instead of raising. Segments live in the app database (security/segment_store.py); viewers
are pseudonymous keys, and a CRM file of them is personal data: only roles with
``export_personal_data``, after a step-up, through the audited export path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import streamlit as st

from components import charts, queries, segment_builder
from components.context import AppContext
from components.export import export_buttons
from components.stepup import step_up_ok
from components.text import md_escape
from data.queries.segments import (
    SegmentDefinitionError,
    describe,
    parse_definition,
    resolve_window,
)
from security.permissions import AccessDenied, Principal
from security.segment_store import SegmentStoreError

EDITING_KEY = "segment-editing"
MEMBER_ATTRIBUTES = (
    "country",
    "region",
    "age_band",
    "plan",
    "acquisition_channel",
    "signup_date",
    "watch_hours_in_window",
    "sessions_in_window",
    "last_seen",
)


def _options(ctx: AppContext, principal: Principal) -> dict[str, list[tuple[str, str]]]:
    return queries.run(ctx, principal, "segment_options")


def _empty_group(group: Any) -> bool:
    items = group.get("items") if isinstance(group, dict) else None
    return isinstance(items, list) and any(
        isinstance(i, dict) and "items" in i and (not i["items"] or _empty_group(i)) for i in items
    )


def _parse(doc: Any):
    """A SegmentDefinition, or None after saying why not."""
    if _empty_group(doc.get("match")):
        st.info("A group has no condition yet: add one to it, or remove the group.", icon="✏️")
        return None
    try:
        return parse_definition(doc)
    except SegmentDefinitionError as exc:
        st.warning(f"The definition is not complete yet: {md_escape(exc)}", icon="✏️")
        return None


# --- build ------------------------------------------------------------------------------------
def build_section(ctx: AppContext, principal: Principal, last_day: date) -> None:
    editing = st.session_state.get(EDITING_KEY)
    if editing:
        left, right = st.columns([4, 1])
        left.info(
            f"Editing **{md_escape(editing['name'])}** (version {editing['version']}). Saving adds "
            "a new version; older ones stay viewable.",
            icon="✏️",
        )
        if right.button("Start a new segment"):
            st.session_state.pop(EDITING_KEY, None)
            segment_builder.load(segment_builder.EMPTY_DOC)
            st.rerun()
    doc = segment_builder.builder(_options(ctx, principal), last_day)
    if not doc["match"]["items"]:
        st.info(
            "Add a condition to see who is in the audience: a property of the viewer (country, "
            "plan, age band …) or what they did in the window (hours watched, titles completed, "
            "devices, pay-per-view, churn …).",
            icon="👆",
        )
        segment_builder.json_editor(parse_definition)
        return
    definition = _parse(doc)
    if definition is not None:
        _live(ctx, principal, definition, last_day)
        _save_form(ctx, principal, definition, editing)
    segment_builder.json_editor(parse_definition)


def _live(ctx: AppContext, principal: Principal, definition, last_day: date) -> None:
    start, end = resolve_window(definition, last_day)
    st.caption(
        f"**{md_escape(describe(definition))}** — behaviour from {start:%d %b %Y} to {end:%d %b %Y}."
    )
    with st.spinner("Counting the audience…"):
        size = queries.run(ctx, principal, "segment_size", definition=definition)
    cols = st.columns(3)
    cols[0].metric("Viewers in the segment", f"{size['viewers']:,}", border=True)
    cols[1].metric(
        "Share of active viewers",
        f"{size['share_of_active']:.1%}" if size["active_viewers"] else "—",
        help=f"{size['active_in_segment']:,} of the {size['active_viewers']:,} viewers with a "
        "session in the window.",
        border=True,
    )
    cols[2].metric(
        "Share of all viewers",
        f"{size['share_of_all']:.1%}" if size["all_viewers"] else "—",
        help=f"Of {size['all_viewers']:,} viewers.",
        border=True,
    )
    if not size["viewers"]:
        st.info(
            "Nobody matches these conditions. Loosen one of them (the funnel shows which).",
            icon="🔍",
        )
    funnel = queries.run(ctx, principal, "segment_funnel", definition=definition)
    if len(funnel) > 1:
        charts.bar_chart(
            funnel.assign(
                step_label=[
                    f"{s}. {lab}" for s, lab in zip(funnel["step"], funnel["label"], strict=True)
                ]
            ),
            category="step_label",
            value="viewers",
            title="How each condition narrows the audience",
            value_title="Viewers",
            key="segment-funnel",
        )
    if size["viewers"]:
        _profile(ctx, principal, definition)


def _profile(ctx: AppContext, principal: Principal, definition) -> None:
    st.subheader("Who they are")
    with st.spinner("Profiling the segment…"):
        profile = queries.run(ctx, principal, "segment_profile", definition=definition)
    names = {
        "country": "Country",
        "plan": "Plan",
        "age_band": "Age band",
        "device": "Device",
        "genre": "Genre",
    }
    which = (
        st.segmented_control(
            "Profile by",
            [k for k in names if k in profile],
            default="country",
            format_func=names.get,
            key="segment-profile-by",
        )
        or "country"
    )
    frame = profile[which].head(15)
    if frame.empty:
        st.info("Nothing to profile.")
        return
    charts.paired_bar_chart(
        frame,
        category="value",
        first=("segment_share", "This segment"),
        second=("all_share", "All viewers"),
        title=f"{names[which]}: this segment against all viewers",
        value_title="Share of viewers",
        key=f"segment-profile-{which}",
        percent=True,
    )


def _save_form(ctx: AppContext, principal: Principal, definition, editing: dict | None) -> None:
    store = ctx.security.segments
    own = bool(editing) and editing.get("owner") == principal.username
    with st.form("segment-save"):
        st.subheader("Save")
        name = st.text_input("Name", value=editing["name"] if editing else "", max_chars=80)
        description = st.text_area(
            "Description (what it is for)",
            value=editing.get("description", "") if editing else "",
            max_chars=500,
        )
        as_new = not own or st.checkbox("Save as a new segment instead of a new version")
        saved = st.form_submit_button(
            "Save as a new version" if own else "Save the segment", type="primary"
        )
    if not saved:
        return
    try:
        version = store.save(
            principal,
            name=name,
            description=description,
            definition=definition.to_json(),
            segment_id=None if as_new else editing["segment_id"],
        )
    except SegmentStoreError as exc:
        st.error(md_escape(exc), icon="🚫")
        return
    st.session_state[EDITING_KEY] = _editing(version)
    st.toast(f"Saved “{md_escape(version.name)}”, version {version.version}.", icon="✅")
    st.rerun()


def _editing(version) -> dict[str, Any]:
    return {
        "segment_id": version.segment_id,
        "version": version.version,
        "name": version.name,
        "description": version.description,
        "owner": version.owner,
    }


def _open_in_builder(version) -> None:
    segment_builder.load(version.definition)
    st.session_state[EDITING_KEY] = _editing(version)
    st.session_state["segments-view"] = "build"


# --- saved segments ---------------------------------------------------------------------------
def saved_section(ctx: AppContext, principal: Principal, last_day: date) -> None:
    store = ctx.security.segments
    summaries = store.list(principal)
    if not summaries:
        st.info("No saved segments yet. Build one and save it.", icon="📁")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": s.name,
                    "Owner": s.owner,
                    "Versions": s.versions,
                    "Last saved": s.updated_at.strftime("%Y-%m-%d %H:%M UTC"),
                    "By": s.updated_by,
                    "Description": s.description,
                }
                for s in summaries
            ]
        ),
        hide_index=True,
    )
    by_id = {s.segment_id: s for s in summaries}
    segment_id = st.selectbox(
        "Segment",
        list(by_id),
        format_func=_unique_labels(summaries).get,
        key="saved-segment",
    )
    versions = store.versions(principal, segment_id)
    version = st.selectbox(
        "Version",
        versions,
        format_func=lambda v: f"v{v.version} — {v.saved_at:%Y-%m-%d %H:%M} UTC by {v.saved_by}",
        key=f"saved-version-{segment_id}",
    )
    try:
        definition = parse_definition(version.definition)
    except SegmentDefinitionError as exc:
        st.warning(
            f"This version no longer validates, so it cannot be counted or exported: "
            f"{md_escape(exc)}. Open it in the builder's JSON editor to fix it.",
            icon="⚠️",
        )
        definition = None
    if definition is not None:
        st.markdown(f"**{md_escape(describe(definition))}**")
        if version.description:
            st.caption(md_escape(version.description))
        size = queries.run(ctx, principal, "segment_size", definition=definition)
        st.metric("Viewers now", f"{size['viewers']:,}")
    cols = st.columns(3)
    cols[0].button(
        "Open in the builder", key="saved-open", on_click=_open_in_builder, args=(version,)
    )
    with cols[1].popover("Duplicate"):
        new_name = st.text_input("Name of the copy", value=f"{version.name} (copy)", max_chars=80)
        if st.button("Duplicate", key="saved-dup"):
            try:
                copy = store.duplicate(principal, segment_id, name=new_name)
            except SegmentStoreError as exc:
                st.error(md_escape(exc), icon="🚫")
            else:
                st.toast(f"Duplicated as “{md_escape(copy.name)}”.", icon="✅")
                st.rerun()
    with cols[2].popover("Delete"):
        st.write("The segment leaves every list; its versions stay in the audit trail.")
        if st.button("Delete it", key="saved-del", type="primary"):
            try:
                store.delete(principal, segment_id)
            except (SegmentStoreError, AccessDenied) as exc:
                st.error(md_escape(exc), icon="🚫")
            else:
                st.toast("Deleted.", icon="🗑️")
                st.rerun()
    if definition is not None:
        _crm_export(ctx, principal, version, definition)


def _crm_export(ctx: AppContext, principal: Principal, version, definition) -> None:
    st.subheader("Hand off to the CRM")
    if not principal.may("export_personal_data"):
        st.caption(
            "A list of viewers is personal data: exporting it is for administrators, after "
            "confirming it is them (password and a fresh code)."
        )
        return
    attributes = st.multiselect(
        "Columns besides the viewer key",
        MEMBER_ATTRIBUTES,
        default=["country", "plan"],
        key="crm-attributes",
    )
    if not step_up_ok(ctx, principal, "export_personal_data", key="crm"):
        return
    # One row over the cap is enough to know the file would be refused.
    members = queries.run(
        ctx,
        principal,
        "segment_members",
        definition=definition,
        attributes=tuple(attributes),
        limit=principal.export_row_cap + 1,
    )
    exported_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = members.assign(
        segment_name=version.name, segment_version=version.version, exported_at=exported_at
    )
    st.caption(
        f"{len(frame):,} campaign members: viewer key (pseudonymous), the columns chosen, the "
        "segment's name and version, and when it was exported."
    )
    export_buttons(
        ctx.security,
        principal,
        frame,
        name=f"Segment {version.name} v{version.version}",
        key=f"crm-{version.segment_id}-{version.version}",
        personal_data=True,
        formats=("csv",),
    )


# --- overlap ----------------------------------------------------------------------------------
def overlap_section(ctx: AppContext, principal: Principal, last_day: date) -> None:
    store = ctx.security.segments
    summaries = store.list(principal)
    if len(summaries) < 2:
        st.info("Save at least two segments to compare their audiences.", icon="🔀")
        return
    by_id = {s.segment_id: s for s in summaries}
    labels = _unique_labels(summaries)
    chosen = st.multiselect(
        "Segments to compare (2 to 4)",
        list(by_id),
        format_func=labels.get,
        max_selections=4,
        key="overlap-segments",
    )
    if len(chosen) < 2:
        st.caption("Choose two to four segments.")
        return
    definitions = []
    for segment_id in chosen:
        try:
            latest = store.get(principal, segment_id)
        except SegmentStoreError as exc:
            st.warning(md_escape(exc), icon="⚠️")
            return
        try:
            # Labels, not names, key the overlap: two owners may both have a "Fans".
            definitions.append((labels[segment_id], parse_definition(latest.definition)))
        except SegmentDefinitionError as exc:
            st.warning(
                f"“{md_escape(latest.name)}” no longer validates: {md_escape(exc)}", icon="⚠️"
            )
            return
    overlap = queries.run(ctx, principal, "segment_overlap", definitions=tuple(definitions))
    regions = overlap[overlap["kind"] == "region"]
    charts.bar_chart(
        regions[["label", "viewers"]],
        category="label",
        value="viewers",
        title="Viewers in exactly these segments",
        value_title="Viewers",
        key="segment-overlap",
    )
    st.dataframe(
        overlap[["label", "viewers", "kind"]],
        hide_index=True,
        column_config={
            "label": st.column_config.TextColumn("Segments"),
            "viewers": st.column_config.NumberColumn("Viewers", format="%d"),
            "kind": st.column_config.TextColumn(
                "Row", help="region: in exactly these; total: one segment whole; union: in any."
            ),
        },
    )
    st.caption(
        "“A ∩ B only” counts viewers in A and B and in none of the others; the regions add up to "
        "the union. Each segment is counted over its own window."
    )


def _unique_labels(summaries) -> dict[int, str]:
    """A label per segment that no other segment shares: the name, with its owner when another
    segment has the name, and its number when even that is shared."""
    names = [s.name for s in summaries]
    labels = {
        s.segment_id: s.name if names.count(s.name) == 1 else f"{s.name} ({s.owner})"
        for s in summaries
    }
    values = list(labels.values())
    return {i: (v if values.count(v) == 1 else f"{v} #{i}") for i, v in labels.items()}


# --- clusters ---------------------------------------------------------------------------------
def clusters_section(ctx: AppContext, principal: Principal, last_day: date) -> None:
    from components import clusters

    clusters.section(ctx, principal, last_day)
