"""AppTest helpers: the real app.py on a small demo extract, a movable clock, and sign-in.

The app builds its demo extract on its first run in this test process, exactly as a fresh
install does (sizes from the environment below). Time is a FakeClock installed as the app's
clock, so idle timeouts and locks are tested by moving it, and TOTP codes are computed for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pyotp
import pytest
from streamlit.testing.v1 import AppTest

from components import context
from components.auth import ENROLMENT_KEY_CONTAINER, ENROLMENT_KEY_LABEL
from components.context import app_context
from security.clock import FakeClock
from security.demo import DEMO_PASSWORD
from settings import PROJECT_ROOT

os.environ.setdefault("SPOTLIGHT_DEMO_VIEWERS", "1500")
os.environ.setdefault("SPOTLIGHT_DEMO_VIEWS", "20000")
os.environ.setdefault("SPOTLIGHT_DEMO_SEED", "3")

APP = str(PROJECT_ROOT / "app.py")
TIMEOUT = 120

# One clock for the whole test process: every test moves it forward, never back, so TOTP time
# steps and session timestamps stay consistent across tests sharing the app database.
CLOCK = FakeClock(datetime.now(UTC).replace(microsecond=0))
context.CLOCK = CLOCK
# TOTP secrets of the accounts this process has enrolled.
SECRETS: dict[str, str] = {}


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    CLOCK.advance(minutes=5)
    yield CLOCK


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def widget(at: AppTest, kind: str, label: str, *, form: str | None = None):
    """The first widget of ``kind`` (text_input, button, ...) with this label (in this form)."""
    for element in getattr(at, kind):
        if element.label == label and (form is None or element.form_id == form):
            return element
    raise AssertionError(
        f"no {kind} labelled {label!r}{f' in form {form!r}' if form else ''}; "
        f"have {[(e.label, e.form_id) for e in getattr(at, kind)]}"
    )


def has_widget(at: AppTest, kind: str, label: str, *, form: str | None = None) -> bool:
    return any(e.label == label and (form is None or e.form_id == form) for e in getattr(at, kind))


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def submit_password(at: AppTest, username: str, password: str = DEMO_PASSWORD) -> AppTest:
    widget(at, "text_input", "Username").input(username)
    widget(at, "text_input", "Password").input(password)
    return widget(at, "button", "Sign in").click().run()


def enrolment_key(at: AppTest) -> str | None:
    """The TOTP key shown for typing in by hand on the enrolment screen, or None."""
    try:
        block = at.get_by_key(ENROLMENT_KEY_CONTAINER)
    except KeyError:
        return None
    assert ENROLMENT_KEY_LABEL in [m.value.strip("*") for m in block.markdown]
    return block.code[0].value


def enter_code(at: AppTest, username: str, *, code: str | None = None) -> AppTest:
    if (key := enrolment_key(at)) is not None:
        SECRETS[username] = key
    code = code or pyotp.TOTP(SECRETS[username]).at(CLOCK())
    widget(at, "text_input", "6-digit code").input(code)
    return widget(at, "button", "Verify").click().run()


def sign_in(at: AppTest, username: str, password: str = DEMO_PASSWORD) -> AppTest:
    """Sign in through the form, passing 2FA with a computed code when the role needs it."""
    if not has_widget(at, "text_input", "Username"):
        at.run()
    submit_password(at, username, password)
    if has_widget(at, "text_input", "6-digit code"):
        enter_code(at, username)
        # The next code must come from a later time step: each code is accepted once.
        CLOCK.advance(seconds=31)
    assert not at.exception, at.exception
    return at


def signed_in_app(username: str) -> AppTest:
    return sign_in(new_app().run(), username)


@contextmanager
def app_environment(**values: str) -> Iterator[None]:
    """Run AppTests under other settings: set environment variables, rebuild the app context,
    and put both back afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    app_context.clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        app_context.clear()
