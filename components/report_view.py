"""The Reports page: build a table of one's own on shelves (rows, columns, values), preview it
with a chart, save it, share it, and take it to CSV or a formatted Excel workbook.

A report always runs as the person looking at it: the filter bar's filters, their scope and
their money rights (components/queries.py derives both; a report definition carries neither),
so a report shared with a creator shows only that creator's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from components import auth, queries, report_shelves
from components.context import AppContext, data_scope
from components.export import export_buttons, prepare_export
from components.text import md_escape
from data.export.streaming import SheetSpec, export_to_temp, write_csv, write_xlsx
from data.queries.filters import Filters
from data.queries.metrics import METRICS, visible_metrics
from data.queries.reports import (
    ADDITIVE_METRICS,
    FIELDS,
    PERIOD,
    ReportDefinitionError,
    ReportResult,
    about_entries,
    field_label,
    metric_label,
    parse_report,
)
from data.sync.run import sync_status
from security.permissions import ROLE_LABELS, ROLES, AccessDenied, Principal
from security.report_store import ReportStoreError
from security.service import ExportRefused

EDITING_KEY = "report-editing"
_FORMATS = {"integer": "%d", "decimal": "%.2f", "percent": "percent", "money": "%.2f"}


def page(ctx: AppContext, principal: Principal, filters: Filters) -> None:
    builds = principal.may("build_reports")
    if builds:
        view = (
            st.segmented_control(
                "Show",
                ["build", "saved"],
                default="build",
                format_func={"build": "🛠️ Build", "saved": "📁 Saved and shared"}.get,
                key="reports-view",
            )
            or "build"
        )
    else:
        view = "saved"
        st.caption("Reports shared with you, run with your own view of the data.")
    if view == "build":
        _build(ctx, principal, filters)
    else:
        _saved(ctx, principal, filters, builds)


# --- build ------------------------------------------------------------------------------------
def _fields(ctx: AppContext, principal: Principal) -> tuple[dict[str, str], dict[str, str]]:
    currency = queries.reporting_currency(ctx)
    dimensions = {f: field_label(f) for f in FIELDS}
    metrics = {
        m: metric_label(m, currency)
        for m in visible_metrics(principal.can("see_money"))
        if not METRICS[m].per_title
    }
    return dimensions, metrics


def _build(ctx: AppContext, principal: Principal, filters: Filters) -> None:
    editing = st.session_state.get(EDITING_KEY)
    if editing:
        left, right = st.columns([4, 1])
        left.info(
            f"Editing **{md_escape(editing['name'])}** (version {editing['version']}).", icon="✏️"
        )
        if right.button("Start a new report"):
            st.session_state.pop(EDITING_KEY, None)
            report_shelves.load(report_shelves.EMPTY_REPORT)
            st.rerun()
    dimensions, metrics = _fields(ctx, principal)
    with st.expander("📖 Fields and what they mean"):
        st.markdown(
            "\n".join(
                f"- **{md_escape(label)}** — {md_escape(METRICS[m].definition)}"
                for m, label in metrics.items()
            )
        )
    doc = report_shelves.shelves(dimensions, metrics)
    report_shelves.refused_note({**dimensions, **metrics})
    doc = _options(doc)
    doc = _report_filters(ctx, principal, doc)
    try:
        definition = parse_report(doc)
    except ReportDefinitionError as exc:
        st.warning(f"The report is not complete yet: {md_escape(exc)}", icon="✏️")
        return
    result = _run(ctx, principal, filters, definition)
    if result is None:
        return
    _show(result, key="report-preview")
    _save_form(ctx, principal, definition, editing)
    _downloads(ctx, principal, [("Report", result)], name="Report", key="report-build")


def _options(doc: dict[str, Any]) -> dict[str, Any]:
    nonce = st.session_state.get(report_shelves.NONCE_KEY, 0)
    new = dict(doc)
    values = list(doc.get("values", []))
    cols = st.columns(4)
    if PERIOD in doc.get("rows", []) or PERIOD in doc.get("columns", []):
        grains = ["day", "week", "month"]
        new["grain"] = cols[0].selectbox(
            "Time grain",
            grains,
            index=grains.index(doc.get("grain") or "week"),
            format_func=str.capitalize,
            key=f"report-grain-{nonce}",
        )
    else:
        new["grain"] = None
    if values:
        current = (doc.get("sort") or {}).get("by")
        by = cols[1].selectbox(
            "Sort by",
            values,
            index=values.index(current) if current in values else 0,
            format_func=lambda m: METRICS[m].label,
            key=f"report-sort-{nonce}",
        )
        descending = cols[1].toggle(
            "Largest first",
            value=(doc.get("sort") or {}).get("descending", True),
            key=f"report-desc-{nonce}",
        )
        new["sort"] = {"by": by, "descending": bool(descending)}
    top = cols[2].number_input(
        "Top N rows (0: all)",
        min_value=0,
        max_value=10_000,
        value=int(doc.get("top_n") or 0),
        step=5,
        key=f"report-top-{nonce}",
    )
    new["top_n"] = int(top) or None
    new["totals"] = cols[3].checkbox(
        "Totals", value=bool(doc.get("totals", True)), key=f"report-totals-{nonce}"
    )
    new["subtotals"] = cols[3].checkbox(
        "Subtotals", value=bool(doc.get("subtotals")), key=f"report-subtotals-{nonce}"
    )
    new["comparison"] = cols[3].checkbox(
        "Comparison period", value=bool(doc.get("comparison")), key=f"report-comparison-{nonce}"
    )
    additive = [m for m in values if m in ADDITIVE_METRICS]
    if additive:
        new["percent_of_total"] = st.multiselect(
            "Percent of total for",
            additive,
            default=[m for m in doc.get("percent_of_total", []) if m in additive],
            format_func=lambda m: METRICS[m].label,
            key=f"report-pct-{nonce}",
            help="Only for metrics that add up (a share of distinct viewers or of a rate would mislead).",
        )
    else:
        new["percent_of_total"] = []
    st.session_state[report_shelves.DOC_KEY] = new
    return new


def _report_filters(ctx: AppContext, principal: Principal, doc: dict[str, Any]) -> dict[str, Any]:
    """The Filters shelf: values a report always keeps to, on top of (never instead of) the
    filter bar — a report filter narrows what the filter bar selects."""
    nonce = st.session_state.get(report_shelves.NONCE_KEY, 0)
    options = queries.run(ctx, principal, "dimension_options")
    current = dict(doc.get("filters") or {})
    chosen: dict[str, list[str]] = {}
    with st.expander(
        f"🔎 Filters shelf ({sum(bool(v) for v in current.values())} set)",
        expanded=bool(current),
    ):
        st.caption("Saved with the report; the filter bar above narrows it further.")
        columns = st.columns(2)
        for i, (dimension, pairs) in enumerate(options.items()):
            labels = dict(pairs)
            values = columns[i % 2].multiselect(
                field_label(dimension),
                list(labels),
                default=[v for v in current.get(dimension, []) if v in labels],
                format_func=lambda v, labels=labels: labels.get(v, v),
                key=f"report-filter-{dimension}-{nonce}",
            )
            if values:
                chosen[dimension] = list(values)
    new = {**doc, "filters": chosen}
    st.session_state[report_shelves.DOC_KEY] = new
    return new


def _run(
    ctx: AppContext, principal: Principal, filters: Filters, definition
) -> ReportResult | None:
    with st.spinner("Running the report…"):
        try:
            return queries.run(ctx, principal, "report", filters, definition=definition)
        except ReportDefinitionError as exc:
            st.warning(md_escape(exc), icon="✏️")
            return None


def _column_config(result: ReportResult) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for meta in result.columns_meta:
        if meta.kind in _FORMATS:
            fmt = _FORMATS[meta.kind]
            label = meta.name
            config[meta.name] = st.column_config.NumberColumn(
                label, format=fmt, help=meta.definition or None
            )
        elif meta.kind == "date":
            config[meta.name] = st.column_config.DateColumn(meta.name, format="YYYY-MM-DD")
        else:
            config[meta.name] = st.column_config.TextColumn(meta.name)
    return config


def _show(result: ReportResult, *, key: str) -> None:
    for note in result.notes:
        st.caption(f"ℹ️ {md_escape(note)}")
    if result.frame.empty:
        st.info("Nothing matches these filters in this period.", icon="🔍")
        return
    _chart(result, key)
    shown = result.frame.copy()
    for meta in result.columns_meta:
        if meta.role == "field" and meta.name in shown.columns:
            # Dates and "Total" share a field column: shown as text (ISO dates), one type.
            shown[meta.name] = shown[meta.name].map(
                lambda v: (
                    v.isoformat() if hasattr(v, "isoformat") else ("" if v is None else str(v))
                )
            )
    config = {
        name: value
        for name, value in _column_config(result).items()
        if name not in {m.name for m in result.columns_meta if m.role == "field"}
    }
    st.dataframe(shown, hide_index=True, column_config=config)


def _chart(result: ReportResult, key: str) -> None:
    """The report as a chart, encoded from the shelves: the first row field on the x axis, the
    first value's columns on y (one series per column value), as Vega-Lite through Altair."""
    fields = [m for m in result.columns_meta if m.role == "field"]
    if not fields or not result.metrics:
        return
    first_metric = result.metrics[0]
    series = [m for m in result.columns_meta if m.role == "value" and m.metric == first_metric]
    series = [m for m in series if m.column_value != "Total"] or series
    keep = [kind == "data" for kind in result.row_kinds] or [True] * len(result.frame)
    data = result.frame[keep]
    x_name = fields[0].name
    long = data.melt(
        id_vars=[x_name], value_vars=[m.name for m in series], var_name="series", value_name="value"
    ).dropna(subset=["value"])
    if long.empty or len(long) > 5_000:
        return
    temporal = result.definition.rows and result.definition.rows[0] == PERIOD
    x = alt.X(f"{x_name}:{'T' if temporal else 'N'}", title=x_name, sort=None)
    y = alt.Y("value:Q", title=METRICS[first_metric].label)
    tooltip = [alt.Tooltip(f"{x_name}:N"), "series:N", alt.Tooltip("value:Q", format=",.2f")]
    chart = alt.Chart(long).mark_line(point=True) if temporal else alt.Chart(long).mark_bar()
    encoding: dict[str, Any] = {"x": x, "y": y, "tooltip": tooltip}
    if len(series) > 1:
        encoding["color"] = alt.Color("series:N", title=None)
        if not temporal:
            encoding["xOffset"] = "series:N"
    st.altair_chart(
        chart.encode(**encoding).properties(height=320, title=METRICS[first_metric].label),
        key=f"{key}-chart",
    )


def _save_form(ctx: AppContext, principal: Principal, definition, editing: dict | None) -> None:
    own = bool(editing) and editing.get("owner") == principal.username
    with st.form("report-save"):
        st.subheader("Save")
        name = st.text_input("Name", value=editing["name"] if editing else "", max_chars=80)
        description = st.text_area(
            "Description", value=editing.get("description", "") if editing else "", max_chars=500
        )
        as_new = not own or st.checkbox("Save as a new report instead of a new version")
        saved = st.form_submit_button(
            "Save as a new version" if own else "Save the report", type="primary"
        )
    if not saved:
        return
    try:
        version = ctx.security.reports.save(
            principal,
            name=name,
            description=description,
            definition=definition.to_dict(),
            report_id=None if as_new else editing["report_id"],
        )
    except (ReportStoreError, AccessDenied) as exc:
        st.error(md_escape(exc), icon="🚫")
        return
    st.session_state[EDITING_KEY] = _editing(version)
    st.toast(f"Saved “{md_escape(version.name)}”, version {version.version}.", icon="✅")
    st.rerun()


def _editing(version) -> dict[str, Any]:
    return {
        "report_id": version.report_id,
        "version": version.version,
        "name": version.name,
        "description": version.description,
        "owner": version.owner,
    }


def _open(version) -> None:
    report_shelves.load(version.definition)
    st.session_state[EDITING_KEY] = _editing(version)
    st.session_state["reports-view"] = "build"


# --- saved and shared -------------------------------------------------------------------------
def _saved(ctx: AppContext, principal: Principal, filters: Filters, builds: bool) -> None:
    store = ctx.security.reports
    summaries = store.list(principal) if builds else store.list_shared(principal)
    if not summaries:
        st.info(
            "No saved reports yet: build one and save it."
            if builds
            else "No report has been shared with you yet.",
            icon="📁",
        )
        return
    by_id = {s.report_id: s for s in summaries}
    report_id = st.selectbox(
        "Report",
        list(by_id),
        format_func=lambda i: (
            f"{by_id[i].name} — {by_id[i].owner}"
            + (" (shared with you)" if by_id[i].shared else "")
        ),
        key="saved-report",
    )
    try:
        version = store.get(principal, report_id)
    except ReportStoreError as exc:
        st.warning(md_escape(exc), icon="⚠️")
        return
    if version.description:
        st.caption(md_escape(version.description))
    try:
        definition = parse_report(version.definition)
    except ReportDefinitionError as exc:
        st.warning(
            f"This report no longer validates, so it cannot run: {md_escape(exc)}.", icon="⚠️"
        )
        return
    result = _run(ctx, principal, filters, definition)
    if result is None:
        return
    _show(result, key=f"report-saved-{report_id}")
    _downloads(
        ctx, principal, [(version.name, result)], name=version.name, key=f"report-{report_id}"
    )
    if builds:
        _manage(ctx, principal, version)
        _workbook(ctx, principal, filters, summaries)


def _manage(ctx: AppContext, principal: Principal, version) -> None:
    store = ctx.security.reports
    cols = st.columns(4)
    cols[0].button("Open in the builder", key="report-open", on_click=_open, args=(version,))
    with cols[1].popover("Duplicate"):
        name = st.text_input("Name of the copy", value=f"{version.name} (copy)", max_chars=80)
        if st.button("Duplicate", key="report-dup"):
            try:
                copy = store.duplicate(principal, version.report_id, name=name)
            except (ReportStoreError, AccessDenied) as exc:
                st.error(md_escape(exc), icon="🚫")
            else:
                st.toast(f"Duplicated as “{md_escape(copy.name)}”.", icon="✅")
                st.rerun()
    owner = version.owner == principal.username or "admin" in principal.roles
    if owner:
        with cols[2].popover("Share"):
            users = [u.username for u in ctx.security.users.list() if u.username != version.owner]
            chosen_users = st.multiselect(
                "People", users, default=[u for u in version.shared_with_users if u in users]
            )
            chosen_roles = st.multiselect(
                "Roles",
                list(ROLES),
                default=list(version.shared_with_roles),
                format_func=ROLE_LABELS.get,
            )
            st.caption("They see it with their own access: a creator sees only their rows.")
            if st.button("Share", key="report-share"):
                try:
                    store.share(
                        principal, version.report_id, users=chosen_users, roles=chosen_roles
                    )
                except (ReportStoreError, AccessDenied) as exc:
                    st.error(md_escape(exc), icon="🚫")
                else:
                    st.toast("Shared.", icon="✅")
                    st.rerun()
        with cols[3].popover("Delete"):
            if st.button("Delete it", key="report-del", type="primary"):
                try:
                    store.delete(principal, version.report_id)
                except (ReportStoreError, AccessDenied) as exc:
                    st.error(md_escape(exc), icon="🚫")
                else:
                    st.toast("Deleted.", icon="🗑️")
                    st.rerun()


def _workbook(ctx: AppContext, principal: Principal, filters: Filters, summaries) -> None:
    st.subheader("Several reports in one workbook")
    by_id = {s.report_id: s for s in summaries}
    chosen = st.multiselect(
        "Reports (one sheet each)",
        list(by_id),
        format_func=lambda i: by_id[i].name,
        max_selections=10,
        key="report-workbook",
    )
    if len(chosen) < 2:
        st.caption("Choose two or more saved reports.")
        return
    sheets = []
    for report_id in chosen:
        try:
            version = ctx.security.reports.get(principal, report_id)
            definition = parse_report(version.definition)
        except (ReportStoreError, ReportDefinitionError) as exc:
            st.warning(md_escape(exc), icon="⚠️")
            return
        result = _run(ctx, principal, filters, definition)
        if result is None:
            return
        sheets.append((version.name, result))
    _downloads(ctx, principal, sheets, name="Reports", key="report-workbook", formats=("excel",))


def _synced(ctx: AppContext) -> str:
    status = sync_status(ctx.store)
    if status.last_sync_at:
        return str(status.last_sync_at)
    return f"not synced: built from {status.source}"


# --- downloads --------------------------------------------------------------------------------
def _about(ctx: AppContext, principal: Principal, results: list[tuple[str, ReportResult]]) -> list:
    """The About sheet: each report's filters, scope, definitions and notes, who exported it and
    when the data was synced (data/queries/reports.py ``about_entries``)."""
    lines: list[tuple[str, str]] = []
    for title, result in results:
        lines += about_entries(
            result,
            scope=data_scope(principal),
            exported_by=principal.username,
            synced_at=_synced(ctx),
            name=title,
        )
    return lines


def _downloads(
    ctx: AppContext,
    principal: Principal,
    results: list[tuple[str, ReportResult]],
    *,
    name: str,
    key: str,
    formats: tuple[str, ...] = ("csv", "excel"),
) -> None:
    frame = results[0][1].frame
    rows = sum(len(r.frame) for _, r in results)
    options = st.columns([1, 1, 3])
    delimiter = ","
    bom = True
    if "csv" in formats and len(results) == 1:
        delimiter = options[0].selectbox(
            "CSV separator",
            [",", ";"],
            format_func={",": "comma (1,234.5)", ";": "semicolon (1234,5)"}.get,
            key=f"{key}-delimiter",
            help="Semicolon and decimal commas for Excel in comma-decimal locales.",
        )
        bom = options[1].checkbox("Byte-order mark", value=True, key=f"{key}-bom")
    about = _about(ctx, principal, results)

    def build(fmt: str, progress: Callable[[int], None] | None = None) -> bytes:
        if fmt == "csv":
            done = export_to_temp(
                lambda path: write_csv(
                    frame,
                    path,
                    bom=bom,
                    delimiter=delimiter,
                    columns=list(results[0][1].columns_meta),
                    progress=progress,
                ),
                suffix=".csv",
            )
        else:
            sheets = [
                SheetSpec(
                    title=title[:31] or "Report", batches=r.frame, columns=list(r.columns_meta)
                )
                for title, r in results
            ]
            done = export_to_temp(
                lambda path: write_xlsx(sheets, path, about=about, progress=progress),
                suffix=".xlsx",
            )
        return done.hand_over()

    if rows > LARGE_EXPORT_ROWS:
        _large_downloads(
            ctx, principal, frame, rows, name=name, key=key, formats=formats, build=build
        )
        return
    export_buttons(
        ctx.security,
        principal,
        frame if len(results) == 1 else pd.concat([r.frame for _, r in results], ignore_index=True),
        name=name,
        key=key,
        formats=formats,
        build=build,
    )
    if rows > principal.export_row_cap and any(principal.may(f"export_{f}") for f in formats):
        st.caption(
            f"{rows:,} row{'s' if rows != 1 else ''}: over your role's export limit of "
            f"{principal.export_row_cap:,}."
        )


# Above this many rows a file is prepared with a progress bar before it is offered.
LARGE_EXPORT_ROWS = 20_000


def _large_downloads(
    ctx: AppContext,
    principal: Principal,
    frame: pd.DataFrame,
    rows: int,
    *,
    name: str,
    key: str,
    formats: tuple[str, ...],
    build: Callable[..., bytes],
) -> None:
    """A large file is written in batches while a progress bar moves; the export is checked and
    audited first (row cap, rights: ``prepare_export``), and the bytes are offered once made."""
    allowed = [fmt for fmt in formats if principal.may(f"export_{fmt}")]
    if not allowed or principal.mfa_pending:
        st.caption("Downloads are not available here for your role or this tab.")
        return
    if rows > principal.export_row_cap:
        st.caption(f"{rows:,} rows: over your role's export limit of {principal.export_row_cap:,}.")
        return
    columns = st.columns(len(allowed) + 1)
    for column, fmt in zip(columns, allowed, strict=False):
        label = "CSV" if fmt == "csv" else "Excel"
        if column.button(f"Prepare the {label} file ({rows:,} rows)", key=f"{key}-prepare-{fmt}"):
            bar = st.progress(0.0, text=f"Writing {rows:,} rows…")

            def moved(done: int, bar=bar) -> None:
                bar.progress(min(1.0, done / rows), text=f"{done:,} of {rows:,} rows written")

            try:
                data = prepare_export(
                    ctx.security,
                    principal,
                    frame,
                    fmt=fmt,
                    target=name,
                    client=auth.client_id(),
                    build=lambda f: build(f, moved),
                )
            except ExportRefused as exc:
                st.error(f"Not exported: {md_escape(exc)}", icon="🚫")
                continue
            st.session_state[f"{key}-ready-{fmt}"] = data
            bar.empty()
        data = st.session_state.get(f"{key}-ready-{fmt}")
        if data is not None:
            column.download_button(
                f"⬇️ {label} (ready)",
                data,
                file_name=f"{key}.{'csv' if fmt == 'csv' else 'xlsx'}",
                key=f"{key}-ready-button-{fmt}",
                on_click="ignore",
            )
