"""The admin page's data section: sync status, and GDPR erasure behind step-up (SECURITY.md #15)."""

from __future__ import annotations

import pyotp
import pytest

from components.context import app_context
from security.operations import ERASE_ACTION
from tests.app.conftest import CLOCK, SECRETS, has_widget, signed_in_app, texts, widget


def _admin_on_admin_page():
    at = signed_in_app("admin")
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception
    return at


def test_demo_install_shows_the_extract_source_and_nothing_to_sync(clock):
    at = _admin_on_admin_page()
    assert any("there is nothing to sync" in i for i in texts(at, "info"))
    assert not [b for b in at.button if b.label == "🔄 Run sync"]


def test_erasure_needs_step_up_then_removes_the_viewer_everywhere(clock):
    store = app_context().store
    viewer = (
        store.cursor()
        .execute(
            "SELECT viewer_key FROM fact_view GROUP BY viewer_key ORDER BY count(*) DESC LIMIT 1"
        )
        .fetchone()[0]
    )
    at = _admin_on_admin_page()
    widget(at, "text_input", "Viewer key").input(str(viewer))
    widget(
        at,
        "checkbox",
        "I understand this removes the viewer's data everywhere and cannot be undone.",
    ).check()
    widget(at, "button", "🧹 Erase viewer").click().run()
    assert has_widget(at, "text_input", "Password", form="step-up-erase"), (
        "erasure asks for password and a fresh code"
    )
    assert (
        store.cursor()
        .execute("SELECT count(*) FROM fact_view WHERE viewer_key = ?", [viewer])
        .fetchone()[0]
        > 0
    )

    widget(at, "text_input", "Password", form="step-up-erase").input("spotlight-demo")
    widget(at, "text_input", "6-digit code", form="step-up-erase").input(
        pyotp.TOTP(SECRETS["admin"]).at(CLOCK())
    )
    widget(at, "button", "Confirm", form="step-up-erase").click().run()
    assert not at.exception
    assert any(f"Viewer {viewer} erased" in s for s in texts(at, "success")), texts(at, "error")
    cursor = store.cursor()
    for table in ("fact_view", "dim_viewer", "fact_subscription", "fact_interaction"):
        assert (
            cursor.execute(
                f"SELECT count(*) FROM {table} WHERE viewer_key = ?", [viewer]
            ).fetchone()[0]
            == 0
        )
    [record] = app_context().security.audit.list(action=ERASE_ACTION, actor="admin", limit=1)
    assert record.target == f"viewer:{viewer}" and record.outcome == "ok"


@pytest.mark.parametrize(
    "bad",
    ["12; DROP TABLE fact_view", "²", "１２３", "-5", "9223372036854775808", "1_000", ""],
)
def test_a_bad_viewer_key_is_a_clear_error(clock, bad):
    at = _admin_on_admin_page()
    widget(at, "text_input", "Viewer key").input(bad)
    widget(
        at,
        "checkbox",
        "I understand this removes the viewer's data everywhere and cannot be undone.",
    ).check()
    widget(at, "button", "🧹 Erase viewer").click().run()
    assert not at.exception
    assert any(
        "A viewer key must be a whole number written with the digits 0-9" in e
        or "A viewer key must be at most 9,223,372,036,854,775,807" in e
        for e in texts(at, "error")
    ), texts(at, "error")
    # Refused before the step-up: nothing is pending.
    assert not any("Erasing viewer" in m for m in texts(at, "markdown"))
