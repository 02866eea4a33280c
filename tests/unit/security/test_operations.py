"""Operator actions are audited the same way from the CLI and the admin page."""

from __future__ import annotations

import socket

from security.alerts import SYNC_FAILED
from security.audit import FAILURE
from security.operations import audited_sync
from tests.unit.security.security_support import make_security


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_a_failed_sync_is_audited_and_alerts_admins(tmp_path):
    sec, _ = make_security(
        tmp_path,
        warehouse_url=f"postgresql://spotlight@127.0.0.1:{_closed_port()}/warehouse",
        extract_key="e-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        app_key="a-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        audit_key="u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        sync_retries=1,
        sync_retry_delay_seconds=0,
    )
    result = audited_sync(sec, sec.settings, actor="ops", client="cli")
    assert not result.ok
    [record] = sec.audit.list(action="sync")
    assert record.outcome == FAILURE and record.actor == "ops"
    assert record.details["error_kind"] == result.error_kind
    [alert] = sec.alerts.list()
    assert alert.kind == SYNC_FAILED and alert.severity == "critical"
    assert not (tmp_path / "data" / "extract.duckdb").exists(), "a failed sync writes no extract"
