"""An admin runs the first sync from the app, against PostgreSQL playing Redshift."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from security.audit import OK
from tests.app.conftest import app_environment, has_widget, new_app, sign_in, texts, widget
from tests.integration.conftest import EXTRACT_KEY

pytestmark = pytest.mark.integration
STRONG = "correct horse battery staple"


@contextlib.contextmanager
def _signed_in_admin(warehouse, tmp_path) -> Iterator[AppTest]:
    """The app pointed at ``warehouse`` with no extract, an admin "ops" signed in."""
    url = f"{warehouse.dsn}?sslmode=disable&schema={warehouse.schema}"
    with app_environment(
        SPOTLIGHT_WAREHOUSE_URL=url,
        SPOTLIGHT_DATA_DIR=str(tmp_path / "data"),
        SPOTLIGHT_EXTRACT_KEY=EXTRACT_KEY,
        SPOTLIGHT_COOKIE_KEY="c-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        SPOTLIGHT_APP_KEY="a-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
        SPOTLIGHT_AUDIT_KEY="u-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    ):
        app_context().security.users.add("ops", STRONG, ["admin"], display_name="Ops")
        yield sign_in(new_app().run(), "ops", STRONG)


def test_an_admin_runs_the_first_sync_from_the_app(loaded, tmp_path):
    with _signed_in_admin(loaded, tmp_path) as at:
        assert any("no data yet" in i for i in texts(at, "info")), (
            "no extract before the first sync"
        )
        assert not at.metric

        at.switch_page("app_pages/admin.py").run()
        assert any("no extract yet" in w for w in texts(at, "warning"))
        widget(at, "button", "🔄 Run sync").click().run()
        assert not at.exception
        assert any("Sync succeeded" in s for s in texts(at, "success")), texts(at, "error")
        assert any(
            c.value.startswith("Last run:") and "by ops, succeeded in" in c.value
            for c in at.caption
        )
        assert app_context().store.exists()
        # The status describes the new extract, its times written as elsewhere on the page.
        assert any(
            re.search(
                r"Last successful sync: \*\*\d{4}-\d\d-\d\d \d\d:\d\d UTC\*\* \(full\)", m.value
            )
            for m in at.markdown
        ), [m.value for m in at.markdown]
        [status] = [d for d in at.dataframe if "watermark" in d.value.columns]
        assert list(status.value.columns) == ["table", "rows", "watermark", "synced at", "mode"]
        assert status.value["synced at"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d").all()
        assert status.value["watermark"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
        [record] = app_context().security.audit.list(action="sync", actor="ops")
        assert record.outcome == OK

        at.switch_page("app_pages/overview.py").run()
        assert at.metric, "the dashboards show the synced data"
        assert not has_widget(at, "button", "🔄 Run sync")
        counts = (
            app_context().store.cursor().execute("SELECT count(*) FROM fact_view").fetchone()[0]
        )
        assert counts == loaded.sql("SELECT count(*) FROM fact_view")[0][0]


def test_a_failed_sync_says_why_and_keeps_the_page_as_it_was(pg, tmp_path):
    """The warehouse schema is empty: the sync fails on the missing tables."""
    with _signed_in_admin(pg, tmp_path) as at:
        at.switch_page("app_pages/admin.py").run()
        widget(at, "button", "🔄 Run sync").click().run()
        assert not at.exception
        [error] = [e for e in texts(at, "error") if "last sync failed" in e]
        assert "by ops" in error and "SchemaDriftError" in error and "still no extract" in error
        assert any("no extract yet" in w for w in texts(at, "warning"))
        assert [e for e in at.expander if e.label == "What the sync did"]
        assert not app_context().store.exists()
        [record] = app_context().security.audit.list(action="sync", actor="ops")
        assert record.outcome != OK
        # The run's summary is shown once; the failure stays said until a sync succeeds.
        at.run()
        assert not [e for e in at.expander if e.label == "What the sync did"]
        assert [e for e in texts(at, "error") if "last sync failed" in e]
