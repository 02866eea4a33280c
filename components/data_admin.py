"""The admin page's data section: sync status, "Run sync", and GDPR erasure."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from components import auth
from components.context import AppContext
from components.stepup import step_up_ok
from components.text import md_escape
from data.extract.store import ExtractError
from data.extract.writer_lock import ExtractBusyError
from data.sync.erasure import ErasureError
from data.sync.extract_specs import SPECS
from data.sync.run import SyncProgress, quality_notes, sync_status
from security.audit import OK
from security.input import InputError, parse_viewer_key
from security.operations import audited_erasure, audited_sync
from security.permissions import Principal

ERASE_PENDING_KEY = "erase-pending"
SYNC_OUTCOME_KEY = "sync-outcome"


def sync_panel(ctx: AppContext, principal: Principal) -> None:
    status = sync_status(ctx.store)
    if not ctx.store.exists():
        st.warning("There is no extract yet: run the first sync to bring the data in.", icon="⏳")
    elif status.last_sync_at:
        mode = "full" if status.last_sync_full else "incremental"
        st.write(
            f"Last successful sync: **{_utc_minute(status.last_sync_at)} UTC** ({mode}) "
            f"from `{status.source}`."
        )
    else:
        st.write(f"The extract was built from `{status.source}`; it has not been synced yet.")
    _last_run(ctx)
    if status.tables:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "table": t.table,
                        "rows": t.rows,
                        "watermark": _utc_minute(t.watermark, seconds=True),
                        "synced at": _utc_minute(t.synced_at),
                        "mode": t.mode,
                    }
                    for t in status.tables
                ]
            ),
            hide_index=True,
            column_config={
                "watermark": st.column_config.TextColumn(
                    "watermark (UTC)",
                    help="The newest change read from the warehouse (its updated_at column); "
                    "the next incremental sync reads from here, less an overlap window.",
                ),
                "synced at": st.column_config.TextColumn("synced at (UTC)"),
            },
        )
    st.caption(
        f"{status.suppressed_viewers:,} erased viewer(s) on the suppression list. Failed runs are in the audit log."
    )
    if ctx.settings.demo_mode:
        st.info(
            "No warehouse is configured, so the app runs on the demo extract and there is nothing to sync. "
            "Set `[connections.warehouse]` in `.streamlit/secrets.toml` (see the example file).",
            icon="ℹ️",
        )
        return
    left, right = st.columns(2)
    full = left.toggle("Full refresh (re-read every table)", key="sync-full")
    only = right.multiselect(
        "Only these tables",
        [spec.name for spec in SPECS],
        key="sync-only",
        placeholder="All tables",
    )
    if not st.button(
        "🔄 Run sync", key="sync-run", type="primary", disabled=not principal.can("run_sync")
    ):
        _show_last_sync()
        return
    with st.status("Syncing from the warehouse…", expanded=True) as box:
        bar = st.progress(0.0, text="Connecting…")

        def progress(event: SyncProgress) -> None:
            bar.progress(min(max(event.fraction or 0.0, 0.0), 1.0), text=event.message[:200])

        result = audited_sync(
            ctx.security,
            ctx.settings,
            actor=principal.username,
            client=auth.client_id(),
            full=full,
            only=only or None,
            progress=progress,
        )
        box.update(
            label="Sync finished" if result.ok else "Sync failed",
            state="complete" if result.ok else "error",
        )
    # Run the page again so that everything above (the status table, the "no extract yet"
    # warning) describes the new extract; the outcome is shown under the button on that run.
    st.session_state[SYNC_OUTCOME_KEY] = (
        result.ok,
        f"Sync succeeded in {result.seconds:.1f} s; dashboards show the new data now.",
        "\n".join(result.summary_lines()),
    )
    st.rerun()


def _utc_minute(iso: str | None, *, seconds: bool = False) -> str:
    """An ISO timestamp the sync wrote (naive UTC) as the admin page shows times elsewhere."""
    if not iso:
        return "—"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{moment:%Y-%m-%d %H:%M:%S}" if seconds else f"{moment:%Y-%m-%d %H:%M}"


def _last_run(ctx: AppContext) -> None:
    """The newest sync run by anyone (this page, the CLI or cron), failed ones included, from
    the audit log: when, who, how long, and how it ended."""
    runs = ctx.security.audit.list(action="sync", limit=1)
    if not runs:
        return
    run = runs[0]
    details = run.details or {}
    seconds = details.get("seconds")
    took = f" in {float(seconds):.1f} s" if isinstance(seconds, int | float) else ""
    tables = details.get("tables") or {}
    read = sum(int(t.get("rows_read") or 0) for t in tables.values() if isinstance(t, dict))
    when = f"{run.ts:%Y-%m-%d %H:%M} UTC by {md_escape(run.actor)}"
    if run.outcome == OK:
        st.caption(f"Last run: {when}, succeeded{took}, {read:,} rows read.")
        if notes := quality_notes(tables):
            st.warning(
                "**The warehouse needs a look** (the sync kept the numbers right):\n"
                + "\n".join(f"- {md_escape(note)}" for note in notes),
                icon="⚠️",
            )
    else:
        kind = md_escape(str(details.get("error_kind") or "error"))
        error = md_escape(str(details.get("error") or ""))
        kept = (
            "The extract described here is from the last successful sync."
            if ctx.store.exists()
            else "There is still no extract."
        )
        st.error(
            f"**The last sync failed** ({when}{took}, {kind}): {error} {kept}",
            icon="🛑",
        )


def _show_last_sync() -> None:
    """The outcome of the sync this tab just ran (once), with its per-table summary."""
    outcome = st.session_state.pop(SYNC_OUTCOME_KEY, None)
    if outcome is None:
        return
    ok, message, summary = outcome
    if ok:
        st.success(message, icon="✅")
    # A failure is already said above the status (the last run, from the audit log).
    with st.expander("What the sync did", expanded=not ok):
        st.code(summary, language=None)


def erasure_panel(ctx: AppContext, principal: Principal) -> None:
    st.write(
        "Remove one viewer's rows from every table of the extract, keep them out of every later sync, "
        "and rewrite the file so the bytes are gone. Viewers are identified by their pseudonymous key."
    )
    with st.form("erase-form"):
        text = st.text_input("Viewer key", placeholder="e.g. 4611686018427387904")
        confirmed = st.checkbox(
            "I understand this removes the viewer's data everywhere and cannot be undone."
        )
        requested = st.form_submit_button("🧹 Erase viewer")
    if requested:
        try:
            viewer_key = parse_viewer_key(text)
        except InputError as exc:
            st.error(str(exc), icon="⚠️")
            return
        if not confirmed:
            st.error("Tick the box to confirm the erasure.", icon="⚠️")
            return
        st.session_state[ERASE_PENDING_KEY] = viewer_key
    pending = st.session_state.get(ERASE_PENDING_KEY)
    if pending is None:
        return
    st.write(f"Erasing viewer **{pending}**.")
    if not step_up_ok(ctx, principal, "erase_viewer", key="erase"):
        return
    st.session_state.pop(ERASE_PENDING_KEY, None)
    with st.status(f"Erasing viewer {pending}…", expanded=True) as box:
        try:
            result = audited_erasure(
                ctx.security,
                ctx.store,
                pending,
                actor=principal.username,
                client=auth.client_id(),
                progress=lambda message: st.write(message),
            )
        except (ErasureError, ExtractError, ExtractBusyError) as exc:
            box.update(label="Erasure failed", state="error")
            st.error(f"The erasure did not happen: {exc} The extract is unchanged.", icon="🛑")
            return
        box.update(label="Erasure complete", state="complete", expanded=False)
    # Cached query results are keyed by the extract file, which was rewritten; clearing also frees
    # the memory the old results held.
    st.cache_data.clear()
    if result.total_removed:
        st.success(
            f"Viewer {pending} erased: {result.total_removed:,} rows removed in {result.seconds:.1f} s; "
            "the key is on the suppression list.",
            icon="✅",
        )
    else:
        st.success(
            f"No rows held viewer {pending}; the key is on the suppression list now.", icon="✅"
        )
    st.dataframe(
        pd.DataFrame([{"table": t, "rows removed": n} for t, n in result.rows_removed.items()]),
        hide_index=True,
    )
