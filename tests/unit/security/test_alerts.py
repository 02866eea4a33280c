"""Alerts (raise, list, acknowledge) and the export checks that raise them."""

from __future__ import annotations

import pytest

from security.alerts import LARGE_EXPORT, MANY_EXPORTS, AlertError
from security.permissions import Principal
from security.service import ExportRefused
from tests.unit.security.security_support import make_security


def principal(*roles, ids=(), mfa=True, **kw):
    return Principal("pat", "Pat", frozenset(roles), frozenset(ids), mfa_verified=mfa, **kw)


def test_raise_list_and_acknowledge(tmp_path):
    sec, clock = make_security(tmp_path)
    alert_id = sec.alerts.raise_alert("sync_failed", "sync failed: timeout", severity="critical")
    assert [a.id for a in sec.alerts.list()] == [alert_id]
    assert sec.alerts.open_count() == 1
    clock.advance(minutes=3)
    assert sec.alerts.acknowledge(alert_id, "admin", client="10.0.0.1")
    assert sec.alerts.list() == []
    done = sec.alerts.list(open_only=False)[0]
    assert done.acknowledged_by == "admin" and done.acknowledged_at == clock.now
    assert not sec.alerts.acknowledge(alert_id, "admin"), "already acknowledged"
    with pytest.raises(AlertError):
        sec.alerts.acknowledge(9999, "admin")
    assert [r.action for r in sec.audit.list(newest_first=False)] == ["alert.raise", "alert.ack"]


def test_duplicates_are_suppressed_while_open(tmp_path):
    sec, clock = make_security(tmp_path)
    first = sec.alerts.raise_alert("sync_failed", "x", dedupe_key="sync", dedupe_minutes=30)
    assert sec.alerts.raise_alert("sync_failed", "x", dedupe_key="sync") is None
    clock.advance(minutes=31)
    assert sec.alerts.raise_alert("sync_failed", "x", dedupe_key="sync", dedupe_minutes=30)
    sec.alerts.acknowledge(first, "admin")
    assert sec.alerts.open_count() == 1


def test_bad_severity_is_refused(tmp_path):
    sec, _ = make_security(tmp_path)
    with pytest.raises(ValueError, match="severity"):
        sec.alerts.raise_alert("x", "y", severity="apocalyptic")


def test_export_is_audited_and_large_exports_alert(tmp_path):
    sec, _ = make_security(tmp_path, alert_export_rows=1000)
    analyst = principal("analyst")
    audit_id = sec.record_export(analyst, fmt="csv", target="engagement", rows=999)
    record = sec.audit.list(action="export")[0]
    assert record.id == audit_id and record.details["rows"] == 999
    assert sec.alerts.list() == []
    sec.record_export(analyst, fmt="excel", target="engagement", rows=1000)
    assert [a.kind for a in sec.alerts.list()] == [LARGE_EXPORT]


def test_many_exports_in_a_window_alert_once(tmp_path):
    sec, clock = make_security(tmp_path, alert_exports_count=3, alert_exports_window_minutes=10)
    analyst = principal("analyst")
    for _ in range(2):
        sec.record_export(analyst, fmt="csv", target="overview", rows=1)
        clock.advance(minutes=1)
    assert sec.alerts.list() == []
    for _ in range(3):
        sec.record_export(analyst, fmt="csv", target="overview", rows=1)
    assert [a.kind for a in sec.alerts.list()] == [MANY_EXPORTS]


def test_exports_beyond_the_cap_or_without_permission_are_refused_and_audited(tmp_path):
    sec, _ = make_security(tmp_path)
    creator = principal("creator", ids=(1,))
    with pytest.raises(ExportRefused) as info:
        sec.record_export(creator, fmt="csv", target="earnings", rows=creator.export_row_cap + 1)
    assert info.value.reason == "row_cap"
    with pytest.raises(ExportRefused):
        sec.record_export(principal("partner", ids=(3,)), fmt="csv", target="overview", rows=1)
    with pytest.raises(ExportRefused):
        sec.record_export(principal("marketer"), fmt="excel", target="segments", rows=1)
    with pytest.raises(ExportRefused) as info:
        sec.record_export(None, fmt="csv", target="overview", rows=1)
    assert info.value.reason == "signed_out"
    assert [r.outcome for r in sec.audit.list(action="export")] == ["denied"] * 4


def test_personal_data_exports_need_a_step_up(tmp_path):
    sec, clock = make_security(tmp_path)
    admin = principal("admin", resolved_at=clock())
    with pytest.raises(ExportRefused) as info:
        sec.record_export(admin, fmt="csv", target="viewers", rows=5, personal_data=True)
    assert info.value.reason == "step_up_required"
    from datetime import timedelta

    stepped = principal("admin", resolved_at=clock(), step_up_until=clock() + timedelta(minutes=1))
    sec.record_export(stepped, fmt="csv", target="viewers", rows=5, personal_data=True)
    assert sec.audit.list(action="export")[0].details["personal_data"] is True
