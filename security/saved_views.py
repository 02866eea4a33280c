"""Saved views: each user's named sets of dashboard filters, kept in the app database.

The app database (not the browser, not the extract) because a view belongs to the account: it
follows the user to another browser, is removed with the account, and never mixes with
warehouse data that a sync replaces. A view stores the URL filter parameters exactly as the
filter bar writes them (plain strings), so opening a view is the same as opening a shared link,
and the filter bar's validation of links applies to it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from security.db import AppDB

MAX_VIEWS_PER_USER = 50
MAX_NAME_CHARS = 60
MAX_PARAMS_CHARS = 4_000


class SavedViewError(ValueError):
    """A view that cannot be saved; the message is fit to show the user."""


@dataclass(frozen=True)
class SavedView:
    name: str
    params: dict[str, str]
    updated_at: str


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise SavedViewError("Give the view a name.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise SavedViewError(f"A view name has at most {MAX_NAME_CHARS} characters.")
    if any(ord(ch) < 32 for ch in cleaned):
        raise SavedViewError("A view name cannot contain control characters.")
    return cleaned


class SavedViews:
    """Per-user saved views over the app database (no streamlit; safe across threads)."""

    def __init__(self, db: AppDB, clock: Callable[[], datetime] | None = None):
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))

    def list(self, username: str) -> list[SavedView]:
        """The user's views, by name."""
        rows = self.db.query(
            "SELECT name, params, updated_at FROM saved_views WHERE username = ? "
            "ORDER BY lower(name), name",
            (username,),
        )
        return [SavedView(r["name"], json.loads(r["params"]), r["updated_at"]) for r in rows]

    def get(self, username: str, name: str) -> SavedView | None:
        for view in self.list(username):
            if view.name == name:
                return view
        return None

    def save(self, username: str, name: str, params: Mapping[str, str]) -> SavedView:
        """Create or replace the user's view called ``name``."""
        name = _clean_name(name)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise SavedViewError("Filter parameters must be text.")
        text = json.dumps(dict(sorted(params.items())), ensure_ascii=False)
        if len(text) > MAX_PARAMS_CHARS:
            raise SavedViewError("These filters are too long to save; remove some values.")
        now = self.clock().isoformat()
        with self.db.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM saved_views WHERE username = ? AND name = ?", (username, name)
            ).fetchone()
            if not exists:
                count = conn.execute(
                    "SELECT count(*) FROM saved_views WHERE username = ?", (username,)
                ).fetchone()[0]
                if count >= MAX_VIEWS_PER_USER:
                    raise SavedViewError(
                        f"You have {MAX_VIEWS_PER_USER} saved views; delete one first."
                    )
            conn.execute(
                "INSERT INTO saved_views (username, name, params, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (username, name) DO UPDATE SET "
                "params = excluded.params, updated_at = excluded.updated_at",
                (username, name, text, now, now),
            )
        return SavedView(name, json.loads(text), now)

    def delete(self, username: str, name: str) -> bool:
        """Remove one of the user's views; False if there was none by that name."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM saved_views WHERE username = ? AND name = ?", (username, name)
            )
        return cursor.rowcount > 0
