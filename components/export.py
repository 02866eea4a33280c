"""Export buttons: permission and row cap checked on the server, audited before the file leaves.

The file is built only when the button is clicked (a deferred download): at that moment the
export is checked again and written to the audit log (SECURITY.md #11), then the bytes are made
and handed over. A role without export rights sees no button; a table over the role's row cap
gets a disabled button that says why.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from components import auth
from data.export.formats import to_csv_bytes, to_excel_bytes
from security.permissions import Principal
from security.service import ExportRefused, Security

FORMATS: dict[str, tuple[str, str, str]] = {
    # fmt: (button label, file extension, MIME type)
    "csv": ("⬇️ CSV", "csv", "text/csv"),
    "excel": (
        "⬇️ Excel",
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
}


def prepare_export(
    security: Security,
    principal: Principal,
    frame: pd.DataFrame,
    *,
    fmt: str,
    target: str,
    client: str,
    personal_data: bool = False,
    build: Callable[[str], bytes] | None = None,
) -> bytes:
    """Check, audit, then build the file. Raises ``ExportRefused`` and builds nothing when refused.
    ``personal_data``: viewer-level rows, which also need ``export_personal_data``. ``build``:
    makes the file's bytes for a format (the report builder's formatted, streamed files);
    default: ``data/export/formats.py`` from ``frame``."""
    security.record_export(
        principal,
        fmt=fmt,
        target=target,
        rows=len(frame),
        client=client,
        personal_data=personal_data,
    )
    if build is not None:
        return build(fmt)
    return to_csv_bytes(frame) if fmt == "csv" else to_excel_bytes(frame, target)


def export_for_session(
    security: Security,
    session_token: str,
    frame: pd.DataFrame,
    *,
    fmt: str,
    target: str,
    client: str,
    tab_state: tuple[bool, bool] = (False, False),
    personal_data: bool = False,
    build: Callable[[str], bytes] | None = None,
) -> bytes:
    """The export, for whoever the session is *now*, as this tab may act: a session signed out,
    idle or disabled since the button was drawn gets ``ExportRefused``, changed roles apply, and
    a tab restored from the cookie without 2FA in it (``tab_state``: restored, verified) is
    refused like its pages are."""
    principal = security.resolve(session_token)
    if principal is None:
        raise ExportRefused(target, "signed_out")
    principal = auth.for_tab(principal, *tab_state)
    return prepare_export(
        security,
        principal,
        frame,
        fmt=fmt,
        target=target,
        client=client,
        personal_data=personal_data,
        build=build,
    )


def _deferred(
    security: Security,
    frame: pd.DataFrame,
    fmt: str,
    target: str,
    personal_data: bool = False,
    build: Callable[[str], bytes] | None = None,
) -> Callable[[], bytes]:
    client = auth.client_id()
    token = st.session_state.get(auth.TOKEN_KEY, "")
    # Passing 2FA in this tab reruns the page, which draws the buttons again with the new state.
    tab_state = auth.tab_mfa_state()
    snapshot = frame.copy()

    def deliver() -> bytes:
        # Runs when the button is clicked, possibly long after the page was drawn.
        return export_for_session(
            security,
            token,
            snapshot,
            fmt=fmt,
            target=target,
            client=client,
            tab_state=tab_state,
            personal_data=personal_data,
            build=build,
        )

    return deliver


def export_buttons(
    security: Security,
    principal: Principal,
    frame: pd.DataFrame,
    *,
    name: str,
    key: str,
    personal_data: bool = False,
    formats: tuple[str, ...] = tuple(FORMATS),
    build: Callable[[str], bytes] | None = None,
) -> None:
    """Download buttons for the ``formats`` this principal may export; ``personal_data``:
    viewer-level rows (also checked for ``export_personal_data`` when the file is made)."""
    allowed = [fmt for fmt in formats if principal.may(f"export_{fmt}")]
    if not allowed:
        st.caption("Downloads are not available for your role.")
        return
    if principal.mfa_pending:
        # The same check as the file's own (require), said before anyone clicks.
        st.caption("🔐 Downloads need two-factor confirmation in this tab.")
        return
    cap = principal.export_row_cap
    over_cap = len(frame) > cap
    columns = st.columns(len(allowed) + 2)
    for column, fmt in zip(columns, allowed, strict=False):
        label, extension, mime = FORMATS[fmt]
        column.download_button(
            label,
            _deferred(security, frame, fmt, name, personal_data, build),
            file_name=f"{key}.{extension}",
            mime=mime,
            key=f"dl-{fmt}-{key}",
            on_click="ignore",
            disabled=over_cap,
            help=f"Your role may export up to {cap:,} rows."
            if over_cap
            else "The download is recorded in the audit log.",
        )
