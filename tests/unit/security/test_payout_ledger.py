"""security/payout_ledger.py on SQLite and PostgreSQL: the transition table (every allowed and
refused decision), reasons, Decimal-only money, the append-only table, concurrent decisions,
permissions with step-up, the audit records, the warehouse-changed flag and the payment batch."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import event

from data.export.formats import to_csv_bytes
from security import payout_ledger, totp
from security.audit import AuditLog
from security.db import AppDB, IntegrityError
from security.payout_ledger import (
    ADJUST,
    ADJUSTED,
    APPROVE,
    APPROVED,
    DECISIONS,
    ESTIMATED,
    FINALISED,
    HELD,
    HOLD,
    PAID,
    RELEASE,
    TRANSITIONS,
    EffectiveLine,
    PayoutDecisionError,
    PayoutLedger,
    PayoutLine,
    check_amount,
    check_reason,
)
from security.permissions import AccessDenied, Principal
from tests.unit.security.security_support import CLIENT, PASSWORD, add_user, make_security

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
JAN = date(2026, 1, 1)


def finance(clock, username="dana", name="Dana", step_up_id=41, **overrides) -> Principal:
    """A finance principal whose step-up is fresh at the clock's time."""
    fields = {
        "mfa_verified": True,
        "session_id": "sess-public-id",
        "step_up_until": clock() + timedelta(minutes=5),
        "step_up_id": step_up_id,
        "resolved_at": clock(),
        **overrides,
    }
    return Principal(username, name, frozenset({"finance"}), **fields)


def wh(payout_id, status=FINALISED, amount="100.00", currency="USD", **fields) -> PayoutLine:
    """A warehouse payout line."""
    return PayoutLine(
        payout_id=payout_id,
        creator_id=fields.pop("creator_id", 7),
        period=fields.pop("period", JAN),
        amount=Decimal(amount),
        currency=currency,
        status=status,
        **fields,
    )


@pytest.fixture
def ledger(tmp_path):
    sec, clock = make_security(tmp_path)
    return sec.payouts, sec, clock


def now_line(book: PayoutLedger, line: PayoutLine) -> EffectiveLine:
    [effective] = book.effective([line])
    return effective


def decision_rows(sec) -> int:
    return sec.db.query("SELECT count(*) FROM payout_decisions")[0][0]


# --- the state machine ---------------------------------------------------------------------------
# How each starting state is reached: the warehouse status, then the decisions made.
SETUPS = {
    "estimated": (ESTIMATED, []),
    "finalised": (FINALISED, []),
    "adjusted": (FINALISED, [ADJUST]),
    "approved": (FINALISED, [APPROVE]),
    "approved+exported": (FINALISED, [APPROVE, "export"]),
    "held (app)": (FINALISED, [HOLD]),
    "held (warehouse)": (HELD, []),
    "held (app) on an estimate": (ESTIMATED, [HOLD]),
    "held (app) after approval": (FINALISED, [APPROVE, HOLD]),
    "held (app) after adjustment": (FINALISED, [ADJUST, HOLD]),
    "paid": (PAID, []),
    "approved, then paid": (FINALISED, [APPROVE, "paid"]),
}
PAID_MSG = "already paid"
# (starting state, decision) -> the status after it, or a part of the refusal's message.
EXPECTED = {
    ("estimated", APPROVE): "still an estimate",
    ("estimated", HOLD): HELD,
    ("estimated", RELEASE): "not on hold",
    ("estimated", ADJUST): "still an estimate",
    ("finalised", APPROVE): APPROVED,
    ("finalised", HOLD): HELD,
    ("finalised", RELEASE): "not on hold",
    ("finalised", ADJUST): ADJUSTED,
    ("adjusted", APPROVE): APPROVED,
    ("adjusted", HOLD): HELD,
    ("adjusted", RELEASE): "not on hold",
    ("adjusted", ADJUST): ADJUSTED,
    ("approved", APPROVE): "already approved by Dana at 09:00 UTC",
    ("approved", HOLD): HELD,
    ("approved", RELEASE): "not on hold",
    ("approved", ADJUST): ADJUSTED,
    ("approved+exported", APPROVE): "already approved by Dana",
    ("approved+exported", HOLD): "exported for payment in batch PB-",
    ("approved+exported", RELEASE): "not on hold",
    ("approved+exported", ADJUST): "exported for payment in batch PB-",
    ("held (app)", APPROVE): "release it before approving",
    ("held (app)", HOLD): "already on hold (checking the invoice) by Dana",
    ("held (app)", RELEASE): FINALISED,
    ("held (app)", ADJUST): HELD,
    ("held (warehouse)", APPROVE): "held in the warehouse",
    ("held (warehouse)", HOLD): "already held in the warehouse",
    ("held (warehouse)", RELEASE): "can only be released there",
    ("held (warehouse)", ADJUST): HELD,
    ("held (app) on an estimate", APPROVE): "release it before approving",
    ("held (app) on an estimate", HOLD): "already on hold",
    ("held (app) on an estimate", RELEASE): ESTIMATED,
    ("held (app) on an estimate", ADJUST): "still an estimate",
    ("held (app) after approval", RELEASE): APPROVED,
    ("held (app) after adjustment", RELEASE): ADJUSTED,
    **{("paid", d): PAID_MSG for d in DECISIONS},
    **{("approved, then paid", d): PAID_MSG for d in DECISIONS},
}
# Pairs the table lists but a guard refuses.
GUARDED = {
    ("approved+exported", HOLD),
    ("approved+exported", ADJUST),
    ("held (warehouse)", RELEASE),
    ("held (app) on an estimate", ADJUST),
}


def _setup(book: PayoutLedger, who: Principal, payout_id: int, state: str):
    """A fresh line brought to ``state``; (the warehouse line now, its effective line)."""
    status, steps = SETUPS[state]
    line = wh(payout_id, status)
    for step in steps:
        seq = now_line(book, line).seq
        if step == APPROVE:
            book.approve(who, line, expected_seq=seq)
        elif step == HOLD:
            book.hold(who, line, expected_seq=seq, reason="checking the invoice")
        elif step == ADJUST:
            book.adjust(who, line, expected_seq=seq, new_amount=Decimal("80.00"), reason="fee")
        elif step == "export":
            book.payment_batch([line], who)
        elif step == "paid":
            line = wh(payout_id, PAID, paid_at=datetime(2026, 2, 15, tzinfo=UTC))
    return line, now_line(book, line)


def _decide(book, who, line, decision, seq):
    if decision == APPROVE:
        return book.approve(who, line, expected_seq=seq)
    if decision == HOLD:
        return book.hold(who, line, expected_seq=seq, reason="second look")
    if decision == RELEASE:
        return book.release(who, line, expected_seq=seq, reason="all clear")
    return book.adjust(who, line, expected_seq=seq, new_amount=Decimal("75.50"), reason="fee")


def test_every_transition_allowed_or_refused_as_the_table_says(ledger):
    book, sec, clock = ledger
    who = finance(clock)
    problems = []
    for number, ((state, decision), expected) in enumerate(sorted(EXPECTED.items()), start=1):
        line, before = _setup(book, who, number, state)
        audit_before = len(sec.audit.list(limit=10_000))
        in_table = (before.status, decision) in TRANSITIONS
        try:
            after = _decide(book, who, line, decision, before.seq)
        except PayoutDecisionError as refused:
            outcome, message = "refused", str(refused)
        else:
            outcome, message = after.status, ""
        label = f"{state} --{decision}-->"
        if expected in (*payout_ledger.STATUSES,):
            if outcome != expected:
                problems.append(f"{label} {outcome} {message!r}, expected {expected}")
            elif not in_table:
                problems.append(
                    f"{label} succeeded but ({before.status}, {decision}) is not listed"
                )
            elif decision not in before.allowed:
                problems.append(f"{label} succeeded but was not in .allowed {before.allowed}")
            target = TRANSITIONS.get((before.status, decision))
            if outcome == expected and target not in (expected, payout_ledger.PREVIOUS):
                problems.append(f"{label} {outcome}, the table says {target}")
        else:
            if outcome != "refused" or expected not in message:
                problems.append(f"{label} {outcome} {message!r}, expected a refusal: {expected}")
            if in_table and (state, decision) not in GUARDED:
                problems.append(f"{label} refused but the table lists it")
            if decision in before.allowed:
                problems.append(f"{label} refused but listed in .allowed")
            if now_line(book, line).seq != before.seq:
                problems.append(f"{label} refused yet wrote a ledger row")
            if len(sec.audit.list(limit=10_000)) != audit_before:
                problems.append(f"{label} refused yet wrote an audit record")
    assert not problems, "\n".join(problems)


def test_release_returns_to_the_status_before_the_hold(ledger):
    book, _, clock = ledger
    who = finance(clock)
    for payout_id, state, back in (
        (1, "held (app) after approval", APPROVED),
        (2, "held (app) after adjustment", ADJUSTED),
        (3, "held (app)", FINALISED),
        (4, "held (app) on an estimate", ESTIMATED),
    ):
        line, held = _setup(book, who, payout_id, state)
        assert held.status == HELD and held.hold is not None
        released = book.release(who, line, expected_seq=held.seq, reason="cleared by legal")
        assert released.status == back, state
        assert released.reason == "cleared by legal" and released.hold is None
    # A hold made on an estimate is released into whatever the warehouse says now.
    line, held = _setup(book, who, 5, "held (app) on an estimate")
    finalised = wh(5, FINALISED)
    assert (
        book.release(who, finalised, expected_seq=held.seq, reason="all good").status == FINALISED
    )


def test_adjusting_withdraws_an_approval_and_sets_the_amount_due(ledger):
    book, _, clock = ledger
    who = finance(clock)
    line = wh(1, amount="100.00")
    approved = book.approve(who, line, expected_seq=0, reason="matches the invoice")
    adjusted = book.adjust(
        who, line, expected_seq=approved.seq, new_amount=Decimal("90.5"), reason="refund"
    )
    assert adjusted.status == ADJUSTED and adjusted.approval is None
    assert adjusted.amount_due == Decimal("90.50") and str(adjusted.amount_due) == "90.50"
    with pytest.raises(PayoutDecisionError, match="already the amount due"):
        book.adjust(
            who, line, expected_seq=adjusted.seq, new_amount=Decimal("90.50"), reason="x" * 3
        )
    again = book.approve(who, line, expected_seq=adjusted.seq)
    assert again.status == APPROVED and again.amount_due == Decimal("90.50")
    history = book.history(1)
    assert [d.decision for d in history] == [APPROVE, ADJUST, APPROVE]
    assert [d.seq for d in history] == [1, 2, 3]
    assert [d.status_after for d in history] == [APPROVED, ADJUSTED, APPROVED]
    assert (history[1].amount_before, history[1].amount_after) == (Decimal(100), Decimal("90.5"))
    assert history[0].reason == "matches the invoice" and history[2].reason is None


def test_a_decision_on_an_out_of_date_view_is_refused(ledger):
    book, _, clock = ledger
    dana, eve = finance(clock), finance(clock, "eve", "Eve")
    line = wh(1)
    book.hold(eve, line, expected_seq=0, reason="bank details missing")
    with pytest.raises(PayoutDecisionError, match="put on hold by Eve at 09:00 UTC") as info:
        book.approve(dana, line, expected_seq=0)
    assert "reload" in str(info.value)
    book.adjust(eve, line, expected_seq=1, new_amount=Decimal("12.00"), reason="partial")
    with pytest.raises(PayoutDecisionError, match=r"adjusted to 12\.00 USD by Eve"):
        book.release(dana, line, expected_seq=1, reason="fine")
    with pytest.raises(PayoutDecisionError, match="have changed"):
        book.release(dana, line, expected_seq=9, reason="fine")
    assert now_line(book, line).seq == 2


# --- reasons ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reason",
    [
        "line\nbreak",
        "carriage\rreturn",
        "tab\there",
        "nul\x00byte",
        "escape \x1b[31mred",
        "delete\x7fchar",
        "c1\x85control",
        "line\u2028separator",
        "bidi \u202eoverride",
    ],
)
def test_a_reason_with_control_characters_is_refused(reason):
    with pytest.raises(PayoutDecisionError, match="control or invisible"):
        check_reason(reason, HOLD)


def test_reason_lengths_and_types():
    assert check_reason("abc", HOLD) == "abc"
    assert check_reason("  spaced out  ", HOLD) == "spaced out"
    assert check_reason("x" * 500, HOLD) == "x" * 500
    with pytest.raises(PayoutDecisionError, match="at most 500 characters \\(this one has 501\\)"):
        check_reason("x" * 501, HOLD)
    with pytest.raises(PayoutDecisionError, match="at least 3"):
        check_reason("ab", HOLD)
    with pytest.raises(PayoutDecisionError, match="at least 3"):
        check_reason("  ab   ", HOLD)
    for decision, message in (
        (HOLD, "A hold needs a reason"),
        (RELEASE, "A release needs a reason"),
        (ADJUST, "An adjustment needs a reason"),
    ):
        for empty in (None, "", "   "):
            with pytest.raises(PayoutDecisionError, match=message):
                check_reason(empty, decision)
    assert check_reason(None, APPROVE, required=False) is None
    with pytest.raises(TypeError):
        check_reason(42, HOLD)


def test_reasons_are_checked_by_every_decision_and_kept_as_text(ledger):
    book, sec, clock = ledger
    who = finance(clock)
    line = wh(1)
    with pytest.raises(PayoutDecisionError, match="A hold needs a reason"):
        book.hold(who, line, expected_seq=0, reason="")
    with pytest.raises(PayoutDecisionError, match="control or invisible"):
        book.approve(who, line, expected_seq=0, reason="ok\nok")
    with pytest.raises(PayoutDecisionError, match="An adjustment needs a reason"):
        book.adjust(who, line, expected_seq=0, new_amount=Decimal(1), reason=" ")
    assert decision_rows(sec) == 0
    hostile = "<script>alert(1)</script>'; DROP TABLE payout_decisions; -- {{x}} %s ?"
    held = book.hold(who, line, expected_seq=0, reason=hostile)
    with pytest.raises(PayoutDecisionError, match="A release needs a reason"):
        book.release(who, line, expected_seq=held.seq, reason=None)  # type: ignore[arg-type]
    assert book.history(1)[0].reason == hostile
    assert now_line(book, line).reason == hostile


# --- money ---------------------------------------------------------------------------------------
def test_money_is_decimal_only():
    for bad in (100.0, 100, "100.00", None, True):
        with pytest.raises(TypeError, match=r"decimal\.Decimal"):
            PayoutLine(1, 7, JAN, bad, "USD", FINALISED)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"decimal\.Decimal"):
            check_amount(bad, "USD")
    assert check_amount(Decimal("12.3"), "USD") == Decimal("12.30")
    assert str(check_amount(Decimal("12.3"), "USD")) == "12.30"
    assert str(check_amount(Decimal("1200"), "JPY")) == "1200"
    assert check_amount(Decimal("0"), "EUR") == 0
    assert str(check_amount(Decimal("999999999999.99"), "USD")) == "999999999999.99"
    for bad, currency, message in (
        (Decimal("12.345"), "USD", "at most 2 decimal places"),
        (Decimal("1200.5"), "JPY", "no decimal places"),
        (Decimal("-0.01"), "USD", "negative"),
        (Decimal("NaN"), "USD", "a number"),
        (Decimal("Infinity"), "USD", "a number"),
        (Decimal("1000000000000.00"), "USD", "too large"),
        (Decimal("1E+40"), "USD", "too large"),
    ):
        with pytest.raises(PayoutDecisionError, match=message):
            check_amount(bad, currency)
    with pytest.raises(ValueError, match="three capital letters"):
        PayoutLine(1, 7, JAN, Decimal(1), "usd", FINALISED)
    with pytest.raises(ValueError, match="warehouse payout status"):
        PayoutLine(1, 7, JAN, Decimal(1), "USD", APPROVED)


def test_amounts_are_stored_exactly_and_read_back_as_decimal(ledger):
    book, sec, clock = ledger
    who = finance(clock)
    line = wh(1, amount="1234567899.99")
    with pytest.raises(TypeError):
        book.adjust(who, line, expected_seq=0, new_amount=0.1, reason="float")  # type: ignore[arg-type]
    assert decision_rows(sec) == 0, "a float is refused before anything is written"
    book.adjust(who, line, expected_seq=0, new_amount=Decimal("1234567890.1"), reason="exact")
    [decision] = book.history(1)
    for amount in (decision.amount_before, decision.amount_after, decision.warehouse_amount):
        assert type(amount) is Decimal
    assert str(decision.amount_after) == "1234567890.10"
    assert str(decision.warehouse_amount) == "1234567899.99"
    [row] = sec.db.query("SELECT amount_after, warehouse_amount FROM payout_decisions")
    assert (row[0], row[1]) == ("1234567890.10", "1234567899.99"), "exact decimal text"
    effective = now_line(book, line)
    assert type(effective.amount_due) is Decimal and str(effective.amount_due) == "1234567890.10"


def test_lines_from_a_payouts_frame():
    frame = pd.DataFrame(
        {
            "payout_id": [1, 2],
            "creator_id": [7, 8],
            "creator": ["Cora", None],
            "period": [JAN, date(2026, 2, 1)],
            "amount": pd.Series([Decimal("10.10"), Decimal("5")], dtype=object),
            "currency": ["USD", "EUR"],
            "status": [PAID, ESTIMATED],
            "paid_at": [pd.Timestamp("2026-02-15", tz="UTC"), pd.NaT],
        }
    )
    first, second = PayoutLine.from_frame(frame)
    assert (first.payout_id, first.creator_name, first.amount) == (1, "Cora", Decimal("10.10"))
    assert first.paid_at is not None and second.paid_at is None and second.creator_name is None
    assert type(first.payout_id) is int and second.period == date(2026, 2, 1)
    frame["amount"] = [10.1, 5.0]
    with pytest.raises(TypeError, match="never a float"):
        PayoutLine.from_frame(frame)


# --- append-only ---------------------------------------------------------------------------------
def test_the_ledger_cannot_be_updated_or_deleted(ledger):
    book, sec, clock = ledger
    book.approve(finance(clock), wh(1), expected_seq=0)
    before = sec.db.query("SELECT * FROM payout_decisions")
    for statement in (
        "UPDATE payout_decisions SET amount_after = '1000000.00'",
        "UPDATE payout_decisions SET decision = 'hold' WHERE payout_id = 1",
        "DELETE FROM payout_decisions",
        "DELETE FROM payout_decisions WHERE payout_id = 1",
        *(["TRUNCATE payout_decisions"] if sec.db.dialect == "postgresql" else []),
    ):
        with pytest.raises(IntegrityError, match="append-only"), sec.db.transaction() as tx:
            tx.execute(statement)
    assert sec.db.query("SELECT * FROM payout_decisions") == before


def test_the_database_refuses_a_second_decision_with_the_same_number(ledger):
    book, sec, clock = ledger
    book.approve(finance(clock), wh(1), expected_seq=0)
    columns = (
        "payout_id, seq, decision, status_after, amount_before, amount_after, reason, "
        "creator_id, period, warehouse_amount, currency, warehouse_status, batch_id, "
        "decided_by, decided_by_name, decided_at, step_up_id, audit_id"
    )
    with pytest.raises(IntegrityError), sec.db.transaction() as tx:
        tx.execute(
            f"INSERT INTO payout_decisions ({columns}) SELECT {columns} FROM payout_decisions"
        )
    assert decision_rows(sec) == 1


# --- concurrency ---------------------------------------------------------------------------------
def test_concurrent_decisions_on_one_line_let_exactly_one_through(ledger):
    _, sec, clock = ledger
    # Four app databases over the same data, as four app processes would have.
    key = sec.settings.secret("audit_key")
    books = [sec.payouts]
    for _ in range(3):
        db = AppDB(sec.db.path or os.environ["SPOTLIGHT_APP_DB"])
        books.append(PayoutLedger(db, AuditLog(db, clock, key=key), clock))
    people = [finance(clock, f"fin{i}", f"Finance {i}") for i in range(8)]
    rounds = [
        [APPROVE] * 8,
        [APPROVE] * 8,
        [APPROVE] * 8,
        [APPROVE, HOLD] * 4,  # different decisions racing: still exactly one
    ]
    for round_no, decisions in enumerate(rounds, start=1):
        line = wh(round_no)
        barrier = threading.Barrier(8)

        def attempt(i: int, line=line, decisions=decisions, barrier=barrier):
            barrier.wait(10)
            try:
                _decide(books[i % 4], people[i], line, decisions[i], 0)
                return people[i].display_name, decisions[i]
            except PayoutDecisionError as refused:
                return None, str(refused)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(attempt, range(8)))
        winners = [(who, d) for who, d in results if who is not None]
        assert len(winners) == 1, results
        winner, decided = winners[0]
        refusals = [(d, m) for d, (who, m) in zip(decisions, results, strict=True) if who is None]
        assert len(refusals) == 7
        for tried, message in refusals:
            if tried == decided == APPROVE:
                assert f"already approved by {winner} at 09:00 UTC" in message
            else:
                assert f"by {winner} at 09:00 UTC" in message and "reload" in message
        [effective] = sec.payouts.effective([line])
        assert effective.seq == 1 and effective.decided_by_name == winner
    approvals = sec.db.query(
        "SELECT payout_id, count(*) FROM payout_decisions WHERE decision = 'approve' "
        "GROUP BY payout_id ORDER BY payout_id"
    )
    assert [(r[0], r[1]) for r in approvals][:3] == [(1, 1), (2, 1), (3, 1)]
    assert decision_rows(sec) == len(rounds), "one row per line, nothing lost or doubled"
    audited = Counter(r.target for r in sec.audit.list(action="payout.", limit=100))
    assert audited == {f"payout:{i}": 1 for i in range(1, len(rounds) + 1)}
    assert sec.audit.verify_chain() == (True, None)


# --- permissions and audit -------------------------------------------------------------------------
def test_only_finance_with_a_fresh_step_up_may_decide(ledger):
    book, sec, clock = ledger
    line = wh(1)
    fresh = {"step_up_until": clock() + timedelta(minutes=5), "step_up_id": 9}
    admin = Principal("root", "Root", {"admin"}, mfa_verified=True, **fresh)
    creator = Principal("cora", "Cora", {"creator"}, {7}, mfa_verified=True, **fresh)
    executive = Principal("exec", "Exec", {"executive"}, mfa_verified=True, **fresh)
    cases = [
        (None, "signed_out"),
        (admin, "not_permitted"),
        (creator, "not_permitted"),
        (executive, "not_permitted"),
        (finance(clock, step_up_until=None, step_up_id=None), "step_up_required"),
        (finance(clock, step_up_until=clock() - timedelta(seconds=1)), "step_up_required"),
        (finance(clock, mfa_verified=False), "mfa_required"),
    ]
    for who, reason in cases:
        for attempt in (
            lambda p: book.approve(p, line, expected_seq=0),
            lambda p: book.hold(p, line, expected_seq=0, reason="because"),
            lambda p: book.release(p, line, expected_seq=0, reason="because"),
            # The permission is checked first, before the (bad) amount and reason.
            lambda p: book.adjust(p, line, expected_seq=0, new_amount=1.5, reason=""),  # type: ignore[arg-type]
            lambda p: book.payment_batch([line], p),
        ):
            with pytest.raises(AccessDenied) as denied:
                attempt(who)
            assert denied.value.reason == reason, (who, reason)
            assert denied.value.target == "approve_payout"
    assert decision_rows(sec) == 0
    assert sec.audit.list(action="payout.") == []
    # The step-up counts at the time of the decision (the ledger's clock).
    dana = finance(clock)
    clock.advance(minutes=5)
    with pytest.raises(AccessDenied, match="step_up_required"):
        book.approve(dana, line, expected_seq=0)


def test_a_signed_in_finance_user_decides_after_step_up_and_the_audit_cites_it(tmp_path):
    sec, clock = make_security(tmp_path, stepup_minutes=5)
    add_user(sec, "fin", ("finance",), display_name="Fiona Finance")
    assert sec.authenticate("fin", PASSWORD, CLIENT).ok
    token = sec.create_session("fin", CLIENT)
    enrolment = sec.begin_totp_enrolment(token)
    assert sec.confirm_totp_enrolment(token, totp.code_at(enrolment.secret, clock())).ok
    clock.advance(seconds=30)
    line = wh(11, creator_id=3, period=date(2026, 2, 1), amount="250.00")
    with pytest.raises(AccessDenied) as denied:
        sec.payouts.approve(sec.resolve(token), line, expected_seq=0)
    assert denied.value.reason == "step_up_required"
    assert sec.step_up(token, PASSWORD, totp.code_at(enrolment.secret, clock())).ok
    principal = sec.resolve(token)
    assert principal.step_up_id is not None
    [stepup] = sec.audit.list(action="stepup")
    assert principal.step_up_id == stepup.id

    approved = sec.payouts.approve(
        principal, line, expected_seq=0, reason="as invoiced", client=CLIENT
    )
    adjusted = sec.payouts.adjust(
        principal, line, expected_seq=approved.seq, new_amount=Decimal("240"), reason="late fee"
    )
    assert adjusted.last_decision.step_up_id == stepup.id
    records = sec.audit.list(action="payout.", newest_first=False)
    assert [r.action for r in records] == ["payout.approve", "payout.adjust"]
    first, second = records
    assert (first.actor, first.target, first.client) == ("fin", "payout:11", CLIENT)
    assert first.details["step_up"] == stepup.id == second.details["step_up"]
    assert second.details == {
        "creator_id": 3,
        "period": "2026-02-01",
        "currency": "USD",
        "amount_before": "250.00",
        "amount_after": "240.00",
        "warehouse_amount": "250.00",
        "warehouse_status": FINALISED,
        "status_before": APPROVED,
        "status_after": ADJUSTED,
        "reason": "late fee",
        "seq": 2,
        "step_up": stepup.id,
    }
    assert [d.audit_id for d in sec.payouts.history(11)] == [first.id, second.id]
    stored = json.dumps([r.details for r in records]) + "".join(r.line() for r in records)
    for secret in (PASSWORD, token, enrolment.secret, principal.session_id):
        assert secret not in stored
    assert sec.audit.verify_chain() == (True, None)
    # The step-up lapses: the next decision needs another one.
    clock.advance(minutes=5, seconds=1)
    with pytest.raises(AccessDenied, match="step_up_required"):
        sec.payouts.approve(sec.resolve(token), line, expected_seq=2)


def test_a_decision_and_its_audit_record_commit_together(ledger, monkeypatch):
    book, sec, clock = ledger
    who = finance(clock)

    def audit_fails(*args, **kwargs):
        raise RuntimeError("audit unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(book.audit, "append", audit_fails)
        with pytest.raises(RuntimeError, match="audit unavailable"):
            book.approve(who, wh(1), expected_seq=0)
    assert decision_rows(sec) == 0

    def insert_fails(tx, decision):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(payout_ledger, "_insert", insert_fails)
        with pytest.raises(RuntimeError, match="disk full"):
            book.approve(who, wh(1), expected_seq=0)
    assert sec.audit.list(action="payout.") == [], "no audit record without its decision"
    book.approve(who, wh(1), expected_seq=0)
    assert decision_rows(sec) == 1 and len(sec.audit.list(action="payout.")) == 1
    assert sec.audit.verify_chain() == (True, None)


# --- the warehouse changes ------------------------------------------------------------------------
def test_a_line_changed_in_the_warehouse_after_approval_needs_approving_again(ledger):
    book, _, clock = ledger
    who = finance(clock)
    line = wh(1, amount="100.00")
    approved = book.approve(who, line, expected_seq=0)
    assert not approved.changed_since_decision and not approved.needs_reapproval
    assert now_line(book, wh(1, amount="100.0")).status == APPROVED, "the same amount"

    changed = wh(1, amount="120.00")
    effective = now_line(book, changed)
    assert effective.status == FINALISED and effective.approval is not None
    assert effective.changed_since_decision and effective.needs_reapproval
    assert effective.amount_due == Decimal("120.00")
    assert APPROVE in effective.allowed
    assert book.payment_batch([changed], who).empty, "a changed line is not paid"
    again = book.approve(who, changed, expected_seq=effective.seq)
    assert again.status == APPROVED
    assert not again.changed_since_decision and not again.needs_reapproval
    [paid_line] = book.payment_batch([changed], who)["amount"]
    assert paid_line == Decimal("120.00")

    # Another currency is a change too; a paid line is final whatever happened.
    other = now_line(book, wh(1, amount="120.00", currency="EUR"))
    assert other.status == FINALISED and other.changed_since_decision
    paid = now_line(book, wh(1, PAID, amount="120.00"))
    assert paid.status == PAID and paid.allowed == ()

    # An adjustment keeps its amount; the flag says the warehouse moved under it.
    line2 = wh(2, amount="50.00")
    book.adjust(who, line2, expected_seq=0, new_amount=Decimal("45.00"), reason="fee")
    moved = now_line(book, wh(2, amount="55.00"))
    assert moved.status == ADJUSTED and moved.amount_due == Decimal("45.00")
    assert moved.changed_since_decision and not moved.needs_reapproval


def test_effective_reads_thousands_of_lines_in_one_query(ledger):
    book, sec, clock = ledger
    who = finance(clock)
    lines = [wh(i, amount=f"{i}.25", creator_id=i % 50) for i in range(1, 3001)]
    for line in lines[:20]:
        book.approve(who, line, expected_seq=0)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "payout_decisions" in statement:
            statements.append(statement)

    event.listen(sec.db._engine, "before_cursor_execute", count)
    try:
        effective = book.effective(lines)
    finally:
        event.remove(sec.db._engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert [e.payout_id for e in effective] == list(range(1, 3001)), "in the order given"
    assert Counter(e.status for e in effective) == {APPROVED: 20, FINALISED: 2980}
    assert effective[0].history[0].decided_by == "dana" and effective[-1].history == ()
    assert book.effective([]) == []


# --- the payment batch -----------------------------------------------------------------------------
def test_payment_batch_holds_the_approved_unpaid_lines_and_is_audited(ledger):
    book, sec, clock = ledger
    dana, eve = finance(clock), finance(clock, "eve", "Eve", step_up_id=52)
    feb = date(2026, 2, 1)
    a = wh(1, amount="100.10", creator_name='=HYPERLINK("x")', creator_id=2)
    b = wh(2, amount="50.10", currency="EUR", creator_name="Bea", creator_id=1)
    c = wh(3, amount="1200", currency="JPY", period=feb, creator_id=1)
    d = wh(4)  # finalised, not approved
    e = wh(5)  # approved, then held
    f = wh(6)  # approved, then paid in the warehouse
    g = wh(7)  # approved, then changed in the warehouse
    book.approve(dana, a, expected_seq=0)
    book.adjust(dana, b, expected_seq=0, new_amount=Decimal("45.05"), reason="chargeback")
    clock.advance(minutes=1)
    approve_b = book.approve(eve, b, expected_seq=1, reason="checked")
    book.approve(dana, c, expected_seq=0)
    book.approve(dana, e, expected_seq=0)
    book.hold(dana, e, expected_seq=1, reason="tax form")
    book.approve(dana, f, expected_seq=0)
    book.approve(dana, g, expected_seq=0)
    f_paid = wh(6, PAID, paid_at=datetime(2026, 2, 15, tzinfo=UTC))
    g_changed = wh(7, amount="101.00")
    everything = [a, b, c, d, e, f_paid, g_changed]

    batch = book.payment_batch(everything, eve, client=CLIENT)
    assert list(batch.columns) == payout_ledger.BATCH_COLUMNS
    assert batch["payout_id"].tolist() == [2, 1, 3], "by period, creator, payout"
    assert batch["amount"].dtype == object
    assert batch["amount"].tolist() == [Decimal("45.05"), Decimal("100.10"), Decimal("1200")]
    assert all(type(v) is Decimal for v in batch["amount"])
    assert batch["currency"].tolist() == ["EUR", "USD", "JPY"]
    assert batch["creator_name"].tolist() == ["Bea", '=HYPERLINK("x")', None]
    assert batch["period"].tolist() == [JAN, JAN, feb]
    assert batch["approved_by"].tolist() == ["eve", "dana", "dana"]
    assert batch["approved_at"].tolist()[0] == "2026-01-05T09:01:00.000000Z"
    assert batch["approval_reference"].tolist() == [
        approve_b.last_decision.reference,
        "PAY-1-1",
        "PAY-3-1",
    ]
    batch_id = batch.attrs["batch_id"]

    [record] = sec.audit.list(action="payout.batch_export")
    assert record.id == batch.attrs["audit_id"]
    assert (record.actor, record.client, record.target) == ("eve", CLIENT, f"batch:{batch_id}")
    assert record.details == {
        "batch": batch_id,
        "lines": 3,
        "totals": {"EUR": "45.05", "JPY": "1200", "USD": "100.10"},
        "re_export": False,
        "step_up": 52,
    }
    exported = now_line(book, a)
    assert exported.status == APPROVED and exported.exported is not None
    assert exported.exported.batch_id == batch_id and exported.history[-1].audit_id == record.id
    assert exported.allowed == ()
    with pytest.raises(PayoutDecisionError, match=f"exported for payment in batch {batch_id}"):
        book.hold(dana, a, expected_seq=exported.seq, reason="too late")

    # The CSV keeps every amount exact and the hostile name inert.
    csv = to_csv_bytes(batch).decode("utf-8-sig")
    assert ",45.05," in csv and ",100.10," in csv and ",1200," in csv
    assert "'=HYPERLINK" in csv

    # A second batch leaves out what was exported; making the file again includes it.
    second = book.payment_batch(everything, eve)
    assert second.empty and list(second.columns) == payout_ledger.BATCH_COLUMNS
    again = book.payment_batch(everything, eve, include_exported=True)
    assert again["payout_id"].tolist() == [2, 1, 3]
    exports = sec.audit.list(action="payout.batch_export", newest_first=False)
    assert [r.details["lines"] for r in exports] == [3, 0, 3]
    assert exports[2].details["re_export"] is True
    # Without names, no name column.
    unnamed = book.payment_batch([c], eve, include_exported=True)
    assert "creator_name" not in unnamed.columns and unnamed["amount"].tolist() == [Decimal(1200)]
    with pytest.raises(ValueError, match="once"):
        book.payment_batch([a, a], eve)
    assert sec.audit.verify_chain() == (True, None)


@pytest.mark.parametrize(
    "reason",
    ["a\u200b\u200b", "ok\u061c", "x\u200e\u200fyz", "\u2060\u2060abc"],
    ids=["zero-width padding", "arabic letter mark", "lrm-rlm", "word joiners"],
)
def test_invisible_characters_neither_pad_nor_hide_a_reason(reason):
    with pytest.raises(PayoutDecisionError):
        check_reason(reason, HOLD)


def test_a_reason_counts_visible_characters():
    with pytest.raises(PayoutDecisionError, match="at least 3"):
        check_reason("a \u0301 ", HOLD)  # one letter, a space and a combining accent
    assert check_reason("Tax form 👩\u200d💼 missing", HOLD) == "Tax form 👩\u200d💼 missing"
