"""The Reports page as analysts, managers and creators meet it: build on the shelves (the
keyboard pickers drive the same document as drag and drop), save, reopen, share — and a shared
report always runs as its viewer: a creator sees only their rows, a role without money sees no
money."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from data.queries.earnings import creator_directory
from data.queries.filters import Scope
from security.permissions import Principal
from tests.app.conftest import signed_in_app, texts, widget

pytestmark = pytest.mark.xdist_group("app-reports")


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _reports(at: AppTest) -> AppTest:
    return _ok(at.switch_page("app_pages/reports.py").run())


def _picker(at: AppTest, shelf: str):
    return next(m for m in at.multiselect if m.label == shelf)


def _table(at: AppTest):
    frames = [d.value for d in at.dataframe]
    assert frames, "no report table"
    return frames[-1]


def _save(at: AppTest, name: str) -> AppTest:
    widget(at, "text_input", "Name", form="report-save").input(name)
    return _ok(next(b for b in at.button if b.form_id == "report-save").click().run())


def test_an_analyst_builds_a_report_with_the_keyboard_pickers():
    at = _reports(signed_in_app("analyst"))
    table = _table(at)
    assert list(table.columns)[:3] == ["Genre", "Views", "Watch hours"]
    assert [b.label for b in at.get("download_button")] == ["⬇️ CSV", "⬇️ Excel"]
    at = _ok(_picker(at, "Rows").set_value(["country"]).run())
    at = _ok(_picker(at, "Columns").set_value(["device"]).run())
    table = _table(at)
    assert table.columns[0] == "Country"
    assert any("Views" in c for c in table.columns[1:]) and len(table.columns) > 3
    # A metric cannot go on Rows: the picker does not offer it, and the shelves stay valid.
    assert "views" not in _picker(at, "Rows").options


def test_save_share_with_creators_and_the_creator_sees_only_their_rows():
    analyst = _reports(signed_in_app("analyst"))
    analyst = _ok(_picker(analyst, "Rows").set_value(["creator"]).run())
    analyst = _save(analyst, "Views by creator")
    store = app_context().security.reports
    me = Principal(username="analyst", display_name="a", roles={"analyst"}, mfa_verified=True)
    [report] = [r for r in store.list(me) if r.name == "Views by creator"]
    store.share(me, report.report_id, roles=["creator"])
    creator = _reports(signed_in_app("creator"))
    assert not [s for s in creator.segmented_control if s.key == "reports-view"], "read-only"
    picker = creator.selectbox(key="saved-report")
    assert any("Views by creator" in o for o in picker.options)
    chosen = next(i for i, o in enumerate(picker.options) if "Views by creator" in o)
    creator = _ok(picker.select_index(chosen).run())
    table = _table(creator)
    cursor = app_context().store.cursor()
    mine = set(creator_directory(cursor, Scope.creators([1, 2]))["name"])
    shown = set(table["Creator"]) - {"Total"}
    assert shown and shown <= mine, shown
    everyone = set(creator_directory(cursor, Scope.everything())["name"])
    assert not (shown & (everyone - mine))


def test_a_report_with_money_shared_with_a_manager_shows_no_money():
    analyst = _reports(signed_in_app("admin"))
    analyst = _ok(_picker(analyst, "Values").set_value(["views", "net_revenue"]).run())
    assert "Net revenue" in " ".join(_table(analyst).columns)
    analyst = _save(analyst, "Views and revenue")
    store = app_context().security.reports
    me = Principal(username="admin", display_name="a", roles={"admin"}, mfa_verified=True)
    [report] = [r for r in store.list(me) if r.name == "Views and revenue"]
    store.share(me, report.report_id, users=["manager"])
    manager = _reports(signed_in_app("manager"))
    _ok(manager.segmented_control(key="reports-view").set_value("saved").run())
    picker = manager.selectbox(key="saved-report")
    chosen = next(i for i, o in enumerate(picker.options) if "Views and revenue" in o)
    manager = _ok(picker.select_index(chosen).run())
    assert "Net revenue" not in " ".join(_table(manager).columns)
    assert any("money, not shown for your role" in c for c in texts(manager, "caption"))


def test_an_invalid_saved_report_says_why_and_never_raises():
    store = app_context().security.reports
    me = Principal(username="analyst", display_name="a", roles={"analyst"}, mfa_verified=True)
    store.save(
        me,
        name="Broken report",
        description="",
        definition={"version": 1, "rows": ["nope"], "values": ["views"]},
    )
    at = _reports(signed_in_app("analyst"))
    _ok(at.segmented_control(key="reports-view").set_value("saved").run())
    picker = at.selectbox(key="saved-report")
    chosen = next(i for i, o in enumerate(picker.options) if "Broken report" in o)
    at = _ok(picker.select_index(chosen).run())
    assert any("no longer validates" in w for w in texts(at, "warning"))


def test_too_many_fields_dragged_onto_a_shelf_go_back_to_the_list():
    """The drag board takes any number of fields; the shelves hold two rows and one column, and
    the page must neither crash nor keep a document it cannot draw."""
    at = _reports(signed_in_app("analyst"))
    at.session_state["report-doc"] = {
        "version": 1,
        "rows": ["genre", "country", "device"],
        "columns": ["plan", "kind"],
        "values": ["views"],
        "filters": {},
        "grain": None,
        "sort": None,
        "top_n": None,
        "totals": True,
        "subtotals": False,
        "percent_of_total": [],
        "comparison": False,
    }
    at.session_state["report-nonce"] = 99  # as a drop does: the shelves are drawn anew
    at = _ok(at.run())
    assert _picker(at, "Rows").value == ["genre", "country"]
    assert _picker(at, "Columns").value == ["plan"]


def test_the_filters_shelf_narrows_the_report():
    at = _reports(signed_in_app("analyst"))
    before = _table(at)
    genres = next(m for m in at.multiselect if m.label == "Genre")
    keep = genres.options[0]
    at = _ok(genres.set_value([genres.options[0]]).run())
    after = _table(at)
    data = after[after["Genre"] != "Total"]
    assert list(data["Genre"]) == [keep]
    assert len(before) > len(after)
