"""security/saved_views.py over a fresh app database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from security.db import AppDB
from security.saved_views import MAX_VIEWS_PER_USER, SavedViewError, SavedViews
from tests.unit.security.security_support import app_db_target


@pytest.fixture
def views(tmp_path):
    db = AppDB(app_db_target(tmp_path))
    now = datetime.now(UTC).isoformat()
    with db.transaction() as conn:
        for user in ("ana", "ben"):
            conn.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, created_at, "
                "updated_at) VALUES (?, ?, 'x', '[]', ?, ?)",
                (user, user, now, now),
            )
    return SavedViews(db)


def test_save_list_open_replace_delete(views):
    params = {"preset": "last_7_days", "country": "US,BR", "chips": "country"}
    views.save("ana", "  My   view ", params)
    assert [v.name for v in views.list("ana")] == ["My view"]
    assert views.get("ana", "My view").params == params
    assert views.list("ben") == [], "views are per user"
    views.save("ana", "My view", {"preset": "last_90_days"})
    assert views.get("ana", "My view").params == {"preset": "last_90_days"}
    assert len(views.list("ana")) == 1
    assert views.delete("ana", "My view") is True
    assert views.delete("ana", "My view") is False
    assert views.list("ana") == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 61, "bad\x00name"])
def test_bad_names_are_refused(views, name):
    with pytest.raises(SavedViewError):
        views.save("ana", name, {"preset": "last_7_days"})


def test_limits(views):
    with pytest.raises(SavedViewError):
        views.save("ana", "big", {"country": "x" * 5000})
    with pytest.raises(SavedViewError):
        views.save("ana", "typed", {"preset": 7})  # type: ignore[dict-item]
    for i in range(MAX_VIEWS_PER_USER):
        views.save("ana", f"v{i}", {"preset": "last_7_days"})
    with pytest.raises(SavedViewError):
        views.save("ana", "one more", {"preset": "last_7_days"})
    views.save("ana", "v0", {"preset": "last_28_days"})  # replacing one is still allowed


def test_text_is_kept_as_text(views):
    hostile = "<script>alert(1)</script>'; DROP TABLE users; --"
    views.save("ben", hostile, {"genre": hostile})
    assert views.get("ben", hostile).params == {"genre": hostile}
