"""The app refuses to start unsafely (SECURITY.md #1, #13) and shows data text as text (#3)."""

from __future__ import annotations

import uuid

import pytest

from components.context import app_context
from tests.app.conftest import app_environment, new_app, sign_in, texts

STRONG = "correct horse battery staple"


@pytest.mark.parametrize(
    ("key", "reason"),
    [("some_signature_key", "published sample key"), ("short-key", "too short")],
)
def test_a_sample_or_short_cookie_key_stops_the_app(key, reason):
    with app_environment(SPOTLIGHT_COOKIE_KEY=key):
        at = new_app().run()
    assert any(reason in e for e in texts(at, "error")), texts(at, "error")
    assert not [t for t in at.text_input if t.label == "Username"], "no sign-in form is offered"


def test_a_wrong_extract_key_stops_the_app_with_the_fix():
    new_app().run()  # the demo extract exists, built with this install's key
    assert app_context().store.exists()
    with app_environment(SPOTLIGHT_EXTRACT_KEY="w-test-key-0123456789-ABCDEFGHIJ-klmnopqrst"):
        at = new_app().run()
    errors = " ".join(texts(at, "error"))
    assert "extract key does not open" in errors, errors
    assert "SPOTLIGHT_EXTRACT_KEY" in errors
    assert not at.exception
    assert not [t for t in at.text_input if t.label == "Username"]


def test_html_and_markdown_in_data_are_shown_as_text(clock):
    name = f"html-{uuid.uuid4().hex[:6]}"
    hostile = "<img src=x onerror=alert(1)> **Bold** [link](javascript:alert(1))"
    app_context().security.users.add(name, STRONG, ["analyst"], display_name=hostile)
    at = sign_in(new_app().run(), name, STRONG)
    shown = [m.value for m in at.sidebar.markdown if "img" in m.value]
    assert shown, "the display name is in the sidebar"
    assert "<img" not in shown[0] and "&lt;img" in shown[0]
    assert "\\*\\*Bold\\*\\*" in shown[0] and "\\[link\\]" in shown[0]
