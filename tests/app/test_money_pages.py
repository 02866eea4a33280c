"""The money pages as their users meet them: Revenue (executive, finance, admin), Earnings for a
creator (only their own rows, whatever the URL or widgets say), and the finance team's payout
ledger (step-up, decisions, the payment batch)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from data.queries import earnings as E
from data.queries.filters import Scope
from security.demo import DEMO_PASSWORD
from tests.app.conftest import CLOCK, new_app, sign_in, signed_in_app, texts, widget

pytestmark = pytest.mark.xdist_group("app-money")
OTHER_PASSWORD = "quiet harbour lamp 92"


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label_start: str) -> str:
    for m in at.metric:
        if m.label.startswith(label_start):
            return m.value
    raise AssertionError(f"no metric {label_start!r}: {[m.label for m in at.metric]}")


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def _creator_names(ids) -> set[str]:
    cursor = app_context().store.cursor()
    return set(E.creator_directory(cursor, Scope.creators(ids))["name"])


def test_revenue_page_for_an_executive():
    at = _ok(signed_in_app("executive").switch_page("app_pages/revenue.py").run())
    assert any("Revenue" in t for t in texts(at, "title"))
    assert _metric(at, "Net revenue").startswith("USD ")
    assert _metric(at, "MRR").startswith("USD ")
    subheaders = texts(at, "subheader")
    for heading in ("Net revenue by stream", "From gross to net", "MRR and its movement"):
        assert heading in subheaders
    flow = next(f for f in _frames(at) if {"label", "fees", "net"} <= set(f.columns))
    total = flow[flow["label"] == "All streams"].iloc[0]
    assert total["net"] == pytest.approx(total["gross"] - total["fees"], abs=0.05)
    # Every breakdown and view switch draws without error.
    for by in ("plan", "genre", "creator", "title"):
        _ok(at.segmented_control(key="revenue-breakdown").set_value(by).run())
    _ok(at.segmented_control(key="revenue-plan-by").set_value("acquisition_channel").run())
    _ok(at.segmented_control(key="revenue-ad-by").set_value("title").run())
    _ok(at.segmented_control(key="revenue-grain").set_value("month").run())
    assert any("Fill rate" in c for c in texts(at, "caption"))


def test_creator_sees_only_their_own_earnings_and_a_statement_that_adds_up():
    at = _ok(signed_in_app("creator").switch_page("app_pages/earnings.py").run())
    mine = _creator_names((1, 2))
    picker = at.selectbox(key="earnings-creator")
    assert picker.options[0].startswith("All my creators (2)")
    assert len(picker.options) == 3
    # Every table on the page names only the creator's own creators.
    for frame in _frames(at):
        if "Creator" in frame.columns:
            assert set(frame["Creator"]) - {"Total"} <= mine
    total = _metric(at, "Statement total")
    statement = next(f for f in _frames(at) if "Earnings" in f.columns and "Stream" in f.columns)
    assert statement["Creator"].iloc[-1] == "Total"
    assert total == f"USD {statement['Earnings'].iloc[-1]:,.2f}"
    assert statement["Earnings"].iloc[:-1].sum() == pytest.approx(
        statement["Earnings"].iloc[-1], abs=0.005
    )
    # One creator of the two.
    _ok(picker.set_value(1).run())
    assert at.query_params.get("creator") in (["1"], "1")


def test_another_creators_id_in_the_url_shows_nothing_of_theirs():
    at = signed_in_app("creator")
    theirs = _creator_names((3,))
    at.query_params["creator"] = "3"
    _ok(at.switch_page("app_pages/earnings.py").run())
    assert any("Nothing to show for creator 3" in t for t in texts(at, "info"))
    assert not at.metric
    for frame in _frames(at):
        for column in frame.columns:
            assert not (set(frame[column].astype(str)) & theirs), column


def test_whatever_a_page_asks_for_the_scope_narrows_it():
    """A widget or session value changed by hand reaches the queries as ``creators=``: the one
    place every page path goes through (components.queries.run) narrows, never widens."""
    from components import queries
    from security.permissions import Principal

    ctx = app_context()
    creator = Principal(
        username="creator",
        display_name="c",
        roles={"creator"},
        creator_ids={1, 2},
        mfa_verified=True,
    )
    cursor = ctx.store.cursor()
    (last,) = cursor.execute("SELECT max(period) FROM fact_payout").fetchone()
    found = queries.run(ctx, creator, "earnings", first_month=last, last_month=last, creators=(3,))
    assert found.lines.empty and found.total == 0
    assert queries.run(ctx, creator, "payouts", creators=(3, 4)).empty
    assert (
        queries.run(ctx, creator, "payout_checks", month=last)["payout_id"]
        .isin(E.payouts(cursor, Scope.creators([1, 2]))["payout_id"])
        .all()
    )
    own = queries.run(ctx, creator, "earnings", first_month=last, last_month=last, creators=(1, 3))
    assert set(own.lines["creator_id"]) == {1}


def test_a_creator_without_titles_sees_an_empty_state_not_the_platform():
    at = signed_in_app("admin")
    # An account whose creator id matches no creator in the extract.
    security = app_context().security
    if security.users.get("lonely") is None:
        security.users.add("lonely", OTHER_PASSWORD, ["creator"], creator_ids=[99999], actor="test")
    at = new_app().run()
    at = _ok(sign_in(at, "lonely", OTHER_PASSWORD))
    _ok(at.switch_page("app_pages/earnings.py").run())
    assert any("not linked to any creator" in t for t in texts(at, "info"))
    assert not at.metric and not at.dataframe


def test_two_creators_on_the_same_page_never_share_rows_or_cached_results():
    """Creator A and creator B, interleaved on the same page with the same months: the query
    cache is shared by the whole process, so B's run after A's would show A's rows if the scope
    were not in every cache key. (tests/e2e/test_money_journey.py runs the two at once.)"""
    security = app_context().security
    for name, ids in (("studio-a", [1]), ("studio-b", [2])):
        if security.users.get(name) is None:
            security.users.add(name, OTHER_PASSWORD, ["creator"], creator_ids=ids, actor="test")
    apps = {
        name: sign_in(new_app().run(), name, OTHER_PASSWORD) for name in ("studio-a", "studio-b")
    }
    names = {"studio-a": _creator_names((1,)), "studio-b": _creator_names((2,))}
    totals: dict[str, set[str]] = {"studio-a": set(), "studio-b": set()}
    for _round in range(2):
        for name, at in apps.items():
            _ok(at.switch_page("app_pages/earnings.py").run())
            other = names["studio-b" if name == "studio-a" else "studio-a"]
            picker = at.selectbox(key="earnings-creator")
            assert not any(n in option for option in picker.options for n in other)
            for frame in _frames(at):
                if "Creator" in frame.columns:
                    assert not (set(frame["Creator"]) & other), name
            totals[name].add(_metric(at, "Earnings in these months"))
    # Each saw one stable total of their own, and the two differ.
    assert len(totals["studio-a"]) == 1 and len(totals["studio-b"]) == 1
    assert totals["studio-a"] != totals["studio-b"]


def _ledger(at: AppTest) -> AppTest:
    _ok(at.switch_page("app_pages/earnings.py").run())
    return _ok(at.segmented_control(key="earnings-view").set_value("ledger").run())


def _choose_month_with(at: AppTest, status: str) -> date:
    cursor = app_context().store.cursor()
    (month,) = cursor.execute(
        "SELECT max(period) FROM fact_payout WHERE status = ?", [status]
    ).fetchone()
    _ok(at.selectbox(key="ledger-month").set_value(month).run())
    return month


def test_admin_reads_the_ledger_but_cannot_decide():
    at = _ledger(signed_in_app("admin"))
    _choose_month_with(at, "finalised")
    assert any("separation of duties" in c for c in texts(at, "caption"))
    assert not [b for b in at.button if b.label == "Record the decision"]


def _step_up(at: AppTest, username: str) -> AppTest:
    import pyotp

    from tests.app.conftest import SECRETS

    assert any("confirm it is you" in t for t in texts(at, "info"))
    widget(at, "text_input", "Password", form="step-up-payout").input(DEMO_PASSWORD)
    CLOCK.advance(seconds=31)  # a code of a time step not used before
    code = pyotp.TOTP(SECRETS[username]).at(CLOCK())
    widget(at, "text_input", "6-digit code", form="step-up-payout").input(code)
    return _ok(widget(at, "button", "Confirm", form="step-up-payout").click().run())


def test_finance_approves_a_line_with_step_up_and_the_creator_sees_it_approved():
    at = _ledger(signed_in_app("finance"))
    month = _choose_month_with(at, "finalised")
    cursor = app_context().store.cursor()
    (status,) = cursor.execute(
        "SELECT status FROM fact_payout WHERE creator_id = 1 AND period = ?", [month]
    ).fetchone()
    assert status == "finalised", "the demo pays creator 1 every month"
    name = _creator_names((1,)).pop()
    box = at.selectbox(key="ledger-line")
    index = next(i for i, o in enumerate(box.options) if o.startswith(name))
    _ok(box.select_index(index).run())
    security = app_context().security
    before = len(security.audit.list(action="payout.approve", actor="finance", limit=100))
    decision = next(r for r in at.radio if r.label == "Decision")
    assert decision.options[0] == "Approve for payment"
    _ok(decision.set_value("approve").run())
    # Pressed before confirming: nothing is recorded, and it says why.
    _ok(widget(at, "button", "Record the decision", form="payout-decision").click().run())
    assert any("Not recorded yet" in t for t in texts(at, "warning"))
    assert len(security.audit.list(action="payout.approve", actor="finance", limit=100)) == before
    at = _step_up(at, "finance")
    assert at.selectbox(key="ledger-line").options[index].startswith(name)
    _ok(widget(at, "button", "Record the decision", form="payout-decision").click().run())
    [record] = security.audit.list(action="payout.approve", actor="finance", limit=1)
    assert record.details["step_up"] is not None and record.details["creator_id"] == 1
    # The creator sees the month approved in their payout timeline, without who approved it.
    creator = _ok(signed_in_app("creator").switch_page("app_pages/earnings.py").run())
    _ok(creator.selectbox(key="earnings-creator").set_value(1).run())
    timeline = next(f for f in _frames(creator) if "Status" in f.columns)
    row = timeline[pd.to_datetime(timeline["Month"]).dt.date == month]
    assert list(row["Status"]) == ["✅ Approved for payment"]
    assert "Finance" not in " ".join(row["Note"])


def test_statement_amounts_are_decimals_end_to_end():
    cursor = app_context().store.cursor()
    (last,) = cursor.execute("SELECT max(period) FROM fact_payout").fetchone()
    found = E.earnings(cursor, Scope.creators([1, 2]), first_month=last, last_month=last)
    table = E.statement(found, last)
    assert all(isinstance(v, Decimal) for v in table["Earnings"])


def test_typed_amounts_are_read_strictly():
    from components.payout_ledger import parse_amount

    assert parse_amount(" 1,234.50 ") == Decimal("1234.50")
    assert parse_amount("1234") == Decimal("1234")
    for bad in ("1,50", "1,2,3", "12,,34", ",1", "-5", "1e3", "١٢٣", "１２３", "12.345", "", "NaN"):
        with pytest.raises(ValueError, match="not an amount"):
            parse_amount(bad)
