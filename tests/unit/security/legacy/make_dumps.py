"""Write an app database with the sqlite3 code that shipped before SQLAlchemy, as an SQL dump.

The dumps beside this file are what ``test_app_db.py`` migrates forward:

- ``app_db_v1.sql``: commit 039138e (``PRAGMA user_version`` 1; audit chain not yet keyed);
- ``app_db_v3.sql``: commit 7612449 (``user_version`` 3: saved views, trusted devices, keyed
  audit chain).

They were made by running this script against an export of that commit, e.g.::

    git archive 7612449 | tar -x -C /tmp/v3
    cd /tmp/v3 && PYTHONPATH=. python /path/to/make_dumps.py /path/to/app_db_v3.sql

Every key and time is fixed (the keys are ``APP_KEY`` and ``AUDIT_KEY`` below), so a test can
sign in, check TOTP codes and verify the audit chain of the migrated database.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

APP_KEY = "k-legacy-key-0123456789-ABCDEFGHIJ-klmnopqrst"
AUDIT_KEY = "u-legacy-key-0123456789-ABCDEFGHIJ-klmnopqrst"
PASSWORD = "correct horse battery"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLIENT = "198.51.100.7"


def build(out: Path) -> None:
    from security import totp
    from security.clock import FakeClock
    from security.service import Security
    from settings import load_settings

    tmp = Path(tempfile.mkdtemp())
    env = {
        "SPOTLIGHT_DATA_DIR": str(tmp / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp / "keys"),
        "SPOTLIGHT_APP_KEY": APP_KEY,
        "SPOTLIGHT_AUDIT_KEY": AUDIT_KEY,
    }
    clock = FakeClock(START)
    sec = Security(
        load_settings(env=env, secrets_path=tmp / "none.toml"), clock=clock, bcrypt_rounds=4
    )
    sec.users.add("dana", PASSWORD, ["analyst"], display_name="Dana Scully")
    sec.users.add("fin", PASSWORD, ["finance"])
    sec.users.add("cora", PASSWORD, ["creator"], creator_ids=[1, 2])
    assert sec.authenticate("dana", PASSWORD, CLIENT).ok
    sec.authenticate("dana", "wrong password!", CLIENT)
    dana = sec.create_session("dana", CLIENT)
    assert sec.authenticate("fin", PASSWORD, CLIENT).ok
    fin = sec.create_session("fin", CLIENT)
    secret = sec.begin_totp_enrolment(fin).secret
    assert sec.confirm_totp_enrolment(fin, totp.code_at(secret, clock())).ok
    clock.advance(seconds=60)
    assert sec.step_up(fin, PASSWORD, totp.code_at(secret, clock())).ok
    alert = sec.alerts.raise_alert("sync_failed", "nightly sync failed", severity="critical")
    sec.alerts.acknowledge(alert, "fin")
    sec.alerts.raise_alert("sync_failed", "second sync failed")
    if hasattr(sec, "issue_device_token"):
        sec.issue_device_token("dana")
        from security.saved_views import SavedViews

        SavedViews(sec.db, clock).save("dana", "My view", {"preset": "last_7_days"})
    sec.revoke(dana)
    assert sec.audit.verify_chain() == (True, None)
    conn = sec.db.connect()
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    lines = [
        "-- Written by tests/unit/security/legacy/make_dumps.py with"
        f" the sqlite3 AppDB at user_version {version}; the TOTP",
        f"-- secret of fin is {secret} (encrypted under APP_KEY in the users table).",
        *conn.iterdump(),
        f"PRAGMA user_version = {version};",
    ]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1]))
