"""Exports: permission and row caps enforced on the server, audited before the file is made,
alerts on large exports (SECURITY.md #10, #11)."""

from __future__ import annotations

import io
import uuid

import openpyxl
import pandas as pd
import pytest

from components.context import app_context
from components.export import export_for_session, prepare_export
from security.permissions import EXPORT_ROW_CAPS, Principal
from security.service import ExportRefused
from tests.app.conftest import new_app, sign_in, texts

CLIENT = "client-test"


def _principal(role: str, ids=()) -> Principal:
    return Principal(
        username=f"{role}-{uuid.uuid4().hex[:6]}",
        display_name=role,
        roles={role},
        creator_ids=ids,
        mfa_verified=True,
    )


def _exports_by(username: str) -> list:
    return app_context().security.audit.list(actor=username, action="export")


def test_an_allowed_export_is_audited_and_opens_in_a_real_reader():
    sec = app_context().security
    analyst = _principal("analyst")
    frame = pd.DataFrame({"title": ["=cmd|' /C calc'!A0", "Plain"], "views": [3, 4]})
    data = prepare_export(sec, analyst, frame, fmt="excel", target="Top titles", client=CLIENT)
    [record] = _exports_by(analyst.username)
    assert (
        record.outcome == "ok"
        and record.details["rows"] == 2
        and record.details["format"] == "excel"
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet["A2"].value == "=cmd|' /C calc'!A0" and sheet["A2"].data_type == "s"
    assert sheet["B3"].value == 4


def test_a_role_without_export_rights_gets_nothing_and_the_refusal_is_audited():
    sec = app_context().security
    partner = _principal("partner", ids=(3,))
    with pytest.raises(ExportRefused):
        prepare_export(sec, partner, pd.DataFrame({"a": [1]}), fmt="csv", target="t", client=CLIENT)
    assert [r.outcome for r in _exports_by(partner.username)] == ["denied"]


def test_the_row_cap_is_enforced_on_the_server():
    sec = app_context().security
    creator = _principal("creator", ids=(1,))
    too_many = pd.DataFrame({"a": range(EXPORT_ROW_CAPS["creator"] + 1)})
    with pytest.raises(ExportRefused):
        prepare_export(sec, creator, too_many, fmt="csv", target="t", client=CLIENT)
    assert [r.details.get("cap") for r in _exports_by(creator.username)] == [
        EXPORT_ROW_CAPS["creator"]
    ]


def test_a_large_export_raises_an_alert_for_admins():
    sec = app_context().security
    analyst = _principal("analyst")
    rows = app_context().settings.alert_export_rows
    prepare_export(
        sec, analyst, pd.DataFrame({"a": range(rows)}), fmt="csv", target="Big table", client=CLIENT
    )
    assert any(
        analyst.username in a.message and a.kind == "large_export" for a in sec.alerts.list()
    )


def test_chart_tables_offer_downloads_only_to_roles_that_may_export(clock):
    partner_name = f"partner-{uuid.uuid4().hex[:6]}"
    app_context().security.users.add(
        partner_name, "correct horse battery staple", ["partner"], creator_ids=[1]
    )
    analyst = sign_in(new_app().run(), "analyst")
    partner = sign_in(new_app().run(), partner_name, "correct horse battery staple")
    assert partner.metric, "the partner sees its creator's numbers"
    assert analyst.get("download_button"), "an analyst can download chart data"
    assert not partner.get("download_button")
    assert "Downloads are not available for your role." in texts(partner, "caption")


def test_a_download_clicked_after_sign_out_is_refused(clock):
    at = sign_in(new_app().run(), "analyst")
    token = at.session_state["session_token"]
    sec = app_context().security
    frame = pd.DataFrame({"a": [1, 2]})
    assert export_for_session(sec, token, frame, fmt="csv", target="t", client=CLIENT)
    sec.revoke(token)
    before = len(sec.audit.list(action="export", actor="analyst", limit=10_000))
    with pytest.raises(ExportRefused):
        export_for_session(sec, token, frame, fmt="csv", target="t", client=CLIENT)
    after = sec.audit.list(action="export", actor="analyst", limit=10_000)
    assert len(after) == before, "nothing is exported, so nothing is recorded as exported"
