"""The finance team's payout decisions: an append-only ledger in the app database, overlaid on
the warehouse's payout lines (``fact_payout``), which the app reads but never writes.

A payout line is one creator's month (``PayoutLine``: the warehouse row as synced). Finance can
``approve`` it for payment, ``hold`` it, ``release`` a hold and ``adjust`` the amount due; a
payment batch (``payment_batch``) hands the approved lines over for payment and records that it
did (``export``). Each decision is one row of ``payout_decisions`` (migration 4), never updated
or deleted (triggers refuse both on SQLite and PostgreSQL), with the audit record that describes
it written in the same transaction.

Status shown = the warehouse status overlaid by the decisions in force, first match wins::

    paid       the warehouse says paid: final, no decision applies
    held       an app hold in force, or the warehouse says held
    estimated  the warehouse amount is still an estimate
    approved   an approval in force whose warehouse amount and currency are still as approved
    adjusted   an adjustment in force (the amount due is the adjusted amount)
    finalised  otherwise

Decisions are layers rather than one overwritten state: a hold keeps the approval under it, so
a release returns the line to the status it had before the hold; an adjustment withdraws the
approval (an approval is of an amount). If the warehouse changes the amount or currency of an
approved line, the approval lapses: the line shows its status without it (finalised or adjusted)
with ``changed_since_decision`` and ``needs_reapproval`` set, is left out of payment batches and
can be approved again.

Concurrency: each decision names the number of the decision it follows (``expected_seq``: the
``seq`` of the :class:`EffectiveLine` the user saw) and is checked, with the transition table,
inside one write transaction (writes are serialised: security/db.py). A second approval of the
same line, from another user or tab, finds the first and is refused with who made it and when;
``UNIQUE (payout_id, seq)`` refuses a duplicate in the database itself.

Money is ``decimal.Decimal`` end to end: a float is refused with TypeError, amounts are stored as
exact decimal text (SQLite has no exact decimal column; text reads back the same on both
databases) and read back as Decimal.

Every decision needs ``approve_payout`` (finance only, not admin: separation of duties) with a
fresh step-up, checked first; the audit record cites the step-up (``step_up``).
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from numbers import Integral
from typing import TYPE_CHECKING, Any

from data.queries.money import minor_unit
from security.audit import AuditLog
from security.clock import Clock, as_utc, from_db, to_db, utcnow
from security.db import AppDB, IntegrityError, Row, Tx
from security.permissions import Principal, require

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ADJUST",
    "ADJUSTED",
    "APPROVE",
    "APPROVED",
    "APPROVE_PAYOUT",
    "BATCH_COLUMNS",
    "DECISIONS",
    "ESTIMATED",
    "EXPORT",
    "FINALISED",
    "HELD",
    "HOLD",
    "PAID",
    "PREVIOUS",
    "RELEASE",
    "STATUSES",
    "TRANSITIONS",
    "WAREHOUSE_STATUSES",
    "Decision",
    "EffectiveLine",
    "PayoutDecisionError",
    "PayoutLedger",
    "PayoutLine",
    "check_amount",
    "check_reason",
    "minor_unit",
]

APPROVE_PAYOUT = "approve_payout"

# --- statuses and decisions ------------------------------------------------------------------
ESTIMATED = "estimated"
FINALISED = "finalised"
HELD = "held"
PAID = "paid"
APPROVED = "approved"
ADJUSTED = "adjusted"
WAREHOUSE_STATUSES: frozenset[str] = frozenset({ESTIMATED, FINALISED, HELD, PAID})
STATUSES: tuple[str, ...] = (ESTIMATED, FINALISED, ADJUSTED, APPROVED, HELD, PAID)

APPROVE = "approve"
HOLD = "hold"
RELEASE = "release"
ADJUST = "adjust"
# Written by payment_batch only: the approved line was handed over for payment.
EXPORT = "export"
DECISIONS: tuple[str, ...] = (APPROVE, HOLD, RELEASE, ADJUST)

# Release returns the line to the status it had before the hold.
PREVIOUS = "previous"

# (status shown, decision) -> status after. A pair not listed is refused; ``paid`` is in no
# pair. Guards on top of the table (each refused with its own message):
# - hold / adjust of an approved line: only before it is exported in a payment batch;
# - release: only of the app's own hold (a warehouse hold is released in the warehouse);
# - adjust of a held line: not while the warehouse amount is still an estimate;
# - export of an approved line: once, unless the batch is made again (include_exported).
TRANSITIONS: dict[tuple[str, str], str] = {
    (FINALISED, APPROVE): APPROVED,
    (ADJUSTED, APPROVE): APPROVED,
    (ESTIMATED, HOLD): HELD,
    (FINALISED, HOLD): HELD,
    (ADJUSTED, HOLD): HELD,
    (APPROVED, HOLD): HELD,
    (HELD, RELEASE): PREVIOUS,
    (FINALISED, ADJUST): ADJUSTED,
    (ADJUSTED, ADJUST): ADJUSTED,
    (APPROVED, ADJUST): ADJUSTED,
    (HELD, ADJUST): HELD,
    (APPROVED, EXPORT): APPROVED,
}

_DECISION_NOUNS = {
    APPROVE: "An approval",
    HOLD: "A hold",
    RELEASE: "A release",
    ADJUST: "An adjustment",
}

# --- reasons ---------------------------------------------------------------------------------
MIN_REASON_CHARS = 3
MAX_REASON_CHARS = 500
# Not control characters by category, but they can fake a line break or reorder shown text.
_LINE_AND_BIDI = frozenset(
    "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
)

# --- money -----------------------------------------------------------------------------------
# The warehouse's money column is DECIMAL(14,2).
MAX_AMOUNT = Decimal("999999999999.99")

# IN-lists this long stay far below both databases' bind limits (SQLite 32,766+, PostgreSQL
# 65,535): a page of a few thousand lines is one query.
_READ_CHUNK = 5_000


class PayoutDecisionError(ValueError):
    """A decision that cannot be made; the message is fit to show the user."""


def check_amount(value: object, currency: str) -> Decimal:
    """An adjusted amount: a finite ``Decimal`` >= 0 with at most the currency's decimal places
    (2, or 0 for JPY and the like), at most 999,999,999,999.99; returned at that many places.
    TypeError for anything but a Decimal (a float never carries money here)."""
    if not isinstance(value, Decimal):
        raise TypeError(
            f"an amount must be a decimal.Decimal (e.g. Decimal('12.50')), not "
            f"{type(value).__name__}; money is never a float"
        )
    if not value.is_finite():
        raise PayoutDecisionError("An amount must be a number.")
    if value < 0:
        raise PayoutDecisionError("An amount cannot be negative.")
    unit = minor_unit(currency)
    places = -unit.as_tuple().exponent  # type: ignore[operator]
    try:
        exact = value.quantize(unit)
    except InvalidOperation:
        raise PayoutDecisionError("That amount is too large.") from None
    if exact != value:
        raise PayoutDecisionError(
            f"A {currency} amount has no decimal places."
            if places == 0
            else f"A {currency} amount has at most {places} decimal places."
        )
    if exact > MAX_AMOUNT:
        raise PayoutDecisionError("That amount is too large.")
    return exact


def _money_text(value: Decimal) -> str:
    """Exact decimal text without an exponent ('1E+2' -> '100')."""
    return format(value, "f")


def _money(value: Decimal, currency: str) -> str:
    return f"{_money_text(value)} {currency}"


def check_reason(reason: object, decision: str = HOLD, *, required: bool = True) -> str | None:
    """The reason with surrounding spaces removed: 3-500 characters, no control characters,
    line breaks or bidi overrides; None when none is given and none is required."""
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        if required:
            raise PayoutDecisionError(
                f"{_DECISION_NOUNS.get(decision, 'A decision')} needs a reason."
            )
        return None
    if not isinstance(reason, str):
        raise TypeError(f"a reason is text, not {type(reason).__name__}")
    text = reason.strip()
    # Format characters (Cf: bidi marks such as U+061C, zero-width spaces) can hide or reorder
    # what a reader sees; the zero-width joiner alone stays, for emoji sequences.
    if any(
        unicodedata.category(ch) in ("Cc", "Cs")
        or ch in _LINE_AND_BIDI
        or (unicodedata.category(ch) == "Cf" and ch != "\u200d")
        for ch in text
    ):
        raise PayoutDecisionError(
            "A reason cannot contain line breaks, control or invisible formatting characters."
        )
    visible = sum(unicodedata.category(ch) not in ("Cf", "Mn", "Me", "Zs") for ch in text)
    if visible < MIN_REASON_CHARS:
        raise PayoutDecisionError(f"A reason has at least {MIN_REASON_CHARS} characters.")
    if len(text) > MAX_REASON_CHARS:
        raise PayoutDecisionError(
            f"A reason has at most {MAX_REASON_CHARS} characters (this one has {len(text)})."
        )
    return text


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
    return int(value)


# --- the lines ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PayoutLine:
    """A warehouse payout row as synced (``fact_payout``; data.queries.earnings.payouts()).

    ``amount`` must be a Decimal (TypeError for a float); ``period`` is the first day of the
    month paid for; ``status`` is the warehouse's: estimated | finalised | held | paid.
    """

    payout_id: int
    creator_id: int
    period: date
    amount: Decimal
    currency: str
    status: str
    paid_at: datetime | None = None
    creator_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "payout_id", _whole(self.payout_id, "payout_id"))
        object.__setattr__(self, "creator_id", _whole(self.creator_id, "creator_id"))
        period = self.period
        if isinstance(period, datetime):
            period = period.date()
        if not isinstance(period, date):
            raise TypeError(f"period must be a date, not {type(period).__name__}")
        object.__setattr__(self, "period", period)
        if not isinstance(self.amount, Decimal):
            raise TypeError(
                f"a payout amount must be a decimal.Decimal, not {type(self.amount).__name__}; "
                "money is never a float"
            )
        if not self.amount.is_finite():
            raise ValueError("a payout amount must be a finite number")
        if not (
            isinstance(self.currency, str)
            and len(self.currency) == 3
            and self.currency.isascii()
            and self.currency.isalpha()
            and self.currency.isupper()
        ):
            raise ValueError(
                f"a currency is three capital letters (ISO 4217), not {self.currency!r}"
            )
        if self.status not in WAREHOUSE_STATUSES:
            raise ValueError(
                f"a warehouse payout status is one of {', '.join(sorted(WAREHOUSE_STATUSES))}, "
                f"not {self.status!r}"
            )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> list[PayoutLine]:
        """Lines from a frame with the columns of data.queries.earnings.payouts() (payout_id,
        creator_id, creator, period, amount, currency, status, paid_at); ``creator`` and
        ``paid_at`` may be missing. Amounts must already be Decimal."""
        import pandas as pd

        lines = []
        for record in frame.to_dict("records"):
            paid_at = record.get("paid_at")
            name = record.get("creator")
            lines.append(
                cls(
                    payout_id=record["payout_id"],
                    creator_id=record["creator_id"],
                    period=record["period"],
                    amount=record["amount"],
                    currency=record["currency"],
                    status=record["status"],
                    paid_at=None if paid_at is None or pd.isna(paid_at) else paid_at,
                    creator_name=None if name is None or pd.isna(name) else str(name),
                )
            )
        return lines


@dataclass(frozen=True)
class Decision:
    """One row of the ledger: a decision on a payout line, with the warehouse line as it was
    then (``warehouse_amount``, ``currency``, ``warehouse_status``)."""

    payout_id: int
    seq: int
    decision: str  # approve | hold | release | adjust | export
    status_after: str
    amount_before: Decimal
    amount_after: Decimal
    reason: str | None
    creator_id: int
    period: date
    warehouse_amount: Decimal
    currency: str
    warehouse_status: str
    decided_by: str
    decided_by_name: str
    decided_at: datetime
    step_up_id: int | None
    audit_id: int
    batch_id: str | None = None

    @property
    def reference(self) -> str:
        """A stable reference to this decision, e.g. ``PAY-1042-3`` (payout 1042, decision 3)."""
        return f"PAY-{self.payout_id}-{self.seq}"

    @property
    def when(self) -> str:
        """``10:32 UTC on 2026-01-05``."""
        return self.decided_at.strftime("%H:%M UTC on %Y-%m-%d")

    def _matches(self, line: PayoutLine) -> bool:
        """True when the warehouse line still has the amount and currency this saw."""
        return self.currency == line.currency and self.warehouse_amount == line.amount


@dataclass(frozen=True)
class EffectiveLine:
    """A warehouse line with the app's decisions overlaid (see the module docstring).

    ``seq``: the number of the latest decision (0: none), to pass back as ``expected_seq``.
    ``approval``: the latest approval not withdrawn by an adjustment (it may have lapsed because
    the warehouse changed the line: ``needs_reapproval``). ``hold``: the app's hold in force.
    ``adjustment``: the adjustment in force. ``exported``: the export of the approval in force.
    ``changed_since_decision``: the warehouse amount or currency differs from what the decision
    that fixed the amount due (the latest approval or adjustment, else the latest decision) saw.
    ``allowed``: the decisions that can be made now (for showing buttons). ``history``: every
    decision on the line, oldest first.
    """

    line: PayoutLine
    status: str
    amount_due: Decimal
    seq: int
    last_decision: Decision | None
    changed_since_decision: bool
    approval: Decision | None
    hold: Decision | None
    adjustment: Decision | None
    exported: Decision | None
    allowed: tuple[str, ...]
    history: tuple[Decision, ...]

    @property
    def payout_id(self) -> int:
        return self.line.payout_id

    @property
    def creator_id(self) -> int:
        return self.line.creator_id

    @property
    def period(self) -> date:
        return self.line.period

    @property
    def currency(self) -> str:
        return self.line.currency

    @property
    def warehouse_status(self) -> str:
        return self.line.status

    @property
    def decided_by(self) -> str | None:
        """Username of who made the latest decision."""
        return self.last_decision.decided_by if self.last_decision else None

    @property
    def decided_by_name(self) -> str | None:
        return self.last_decision.decided_by_name if self.last_decision else None

    @property
    def decided_at(self) -> datetime | None:
        return self.last_decision.decided_at if self.last_decision else None

    @property
    def reason(self) -> str | None:
        return self.last_decision.reason if self.last_decision else None

    @property
    def needs_reapproval(self) -> bool:
        """Approved, then changed in the warehouse: it must be approved again to be paid."""
        return (
            self.approval is not None
            and not self.approval._matches(self.line)
            and self.line.status != PAID
        )


# --- the overlay -------------------------------------------------------------------------------
def _overlay(line: PayoutLine, decisions: Sequence[Decision]) -> EffectiveLine:
    """The effective line: ``decisions`` (oldest first) applied over the warehouse line."""
    approval = hold = adjustment = export = None
    for d in decisions:
        if d.decision == APPROVE:
            approval, export = d, None
        elif d.decision == HOLD:
            hold = d
        elif d.decision == RELEASE:
            hold = None
        elif d.decision == ADJUST:
            adjustment, approval, export = d, None, None
        elif d.decision == EXPORT:
            export = d
    # An adjustment is an amount in the currency it was made in.
    adjusted = adjustment is not None and adjustment.currency == line.currency
    approved = approval is not None and approval._matches(line)
    if line.status == PAID:
        status = PAID
    elif hold is not None or line.status == HELD:
        status = HELD
    elif line.status == ESTIMATED:
        status = ESTIMATED
    elif approved:
        status = APPROVED
    elif adjusted:
        status = ADJUSTED
    else:
        status = FINALISED
    basis = max(
        (d for d in (approval, adjustment) if d is not None),
        key=lambda d: d.seq,
        default=decisions[-1] if decisions else None,
    )
    effective = EffectiveLine(
        line=line,
        status=status,
        amount_due=adjustment.amount_after if adjusted and adjustment else line.amount,
        seq=decisions[-1].seq if decisions else 0,
        last_decision=decisions[-1] if decisions else None,
        changed_since_decision=basis is not None and not basis._matches(line),
        approval=approval,
        hold=hold,
        adjustment=adjustment if adjusted else None,
        exported=export if approved else None,
        allowed=(),
        history=tuple(decisions),
    )
    allowed = tuple(d for d in DECISIONS if _refusal(effective, d) is None)
    return replace(effective, allowed=allowed)


def _who(d: Decision | None) -> str:
    if d is None:
        return ""
    return f" by {d.decided_by_name or d.decided_by} at {d.when}"


def _refusal(line: EffectiveLine, decision: str, *, re_export: bool = False) -> str | None:
    """Why ``decision`` cannot be made on the line now (a message for the user), or None."""
    status = line.status
    if status == PAID:
        paid = f" on {line.line.paid_at:%Y-%m-%d}" if line.line.paid_at else ""
        return f"This month is already paid{paid}; no decision applies to a paid line."
    if (status, decision) not in TRANSITIONS:
        return _refused_pair(line, decision)
    exported = line.exported
    if status == APPROVED and decision in (HOLD, ADJUST) and exported is not None:
        return (
            f"This month was exported for payment in batch {exported.batch_id}{_who(exported)}; "
            "it can no longer be changed here. Stop the payment with the payment provider."
        )
    if decision == RELEASE and line.hold is None:
        return "This month is held in the warehouse; it can only be released there."
    if decision == ADJUST and line.line.status == ESTIMATED:
        return (
            "This month's amount is still an estimate; it can be adjusted once the warehouse "
            "finalises it."
        )
    if decision == EXPORT and exported is not None and not re_export:
        return f"This month was already exported in batch {exported.batch_id}{_who(exported)}."
    return None


def _refused_pair(line: EffectiveLine, decision: str) -> str:
    status = line.status
    on_hold = (
        f"on hold ({line.hold.reason}){_who(line.hold)}"
        if line.hold is not None
        else "held in the warehouse"
    )
    if decision == APPROVE:
        if status == APPROVED:
            return f"This month is already approved{_who(line.approval)}."
        if status == HELD:
            if line.hold is not None:
                return f"This month is {on_hold}; release it before approving."
            return "This month is held in the warehouse; it can be approved once released there."
        return (
            "This month's amount is still an estimate; it can be approved once the warehouse "
            "finalises it."
        )
    if decision == HOLD:
        return f"This month is already {on_hold}."
    if decision == RELEASE:
        return "This month is not on hold."
    if decision == ADJUST:
        return (
            "This month's amount is still an estimate; it can be adjusted once the warehouse "
            "finalises it."
        )
    if decision == EXPORT:
        return "Only an approved month can be exported for payment."
    return f"{decision!r} is not a payout decision."


_DONE = {
    APPROVE: "approved",
    HOLD: "put on hold",
    RELEASE: "released",
    ADJUST: "adjusted",
    EXPORT: "exported for payment",
}


def _stale(line: EffectiveLine, expected_seq: int, decision: str) -> str:
    """The message for a decision made on an out-of-date view of the line."""
    latest = line.last_decision
    if decision == APPROVE and line.status == APPROVED:
        return f"This month is already approved{_who(line.approval)}."
    if latest is None or expected_seq > line.seq:
        return "This month's decisions have changed; reload the page and decide again."
    done = _DONE.get(latest.decision, latest.decision)
    if latest.decision == ADJUST:
        done += f" to {_money(latest.amount_after, latest.currency)}"
    return (
        f"This month was {done}{_who(latest)} while you were looking at it; reload the page "
        "to see it before deciding."
    )


# --- rows ------------------------------------------------------------------------------------
_COLUMNS = (
    "payout_id",
    "seq",
    "decision",
    "status_after",
    "amount_before",
    "amount_after",
    "reason",
    "creator_id",
    "period",
    "warehouse_amount",
    "currency",
    "warehouse_status",
    "batch_id",
    "decided_by",
    "decided_by_name",
    "decided_at",
    "step_up_id",
    "audit_id",
)
_INSERT = (
    f"INSERT INTO payout_decisions ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM payout_decisions"


def _to_decision(row: Row) -> Decision:
    decided_at = from_db(row["decided_at"])
    assert decided_at is not None
    return Decision(
        payout_id=int(row["payout_id"]),
        seq=int(row["seq"]),
        decision=row["decision"],
        status_after=row["status_after"],
        amount_before=Decimal(row["amount_before"]),
        amount_after=Decimal(row["amount_after"]),
        reason=row["reason"],
        creator_id=int(row["creator_id"]),
        period=date.fromisoformat(row["period"]),
        warehouse_amount=Decimal(row["warehouse_amount"]),
        currency=row["currency"],
        warehouse_status=row["warehouse_status"],
        decided_by=row["decided_by"],
        decided_by_name=row["decided_by_name"],
        decided_at=decided_at,
        step_up_id=None if row["step_up_id"] is None else int(row["step_up_id"]),
        audit_id=int(row["audit_id"]),
        batch_id=row["batch_id"],
    )


def _read(tx: Tx, payout_ids: Iterable[int]) -> dict[int, list[Decision]]:
    """Every decision on these lines, oldest first: one query per 5,000 lines."""
    ids = sorted(set(payout_ids))
    found: dict[int, list[Decision]] = {}
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = ids[start : start + _READ_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows = tx.execute(
            f"{_SELECT} WHERE payout_id IN ({marks}) ORDER BY payout_id, seq", chunk
        ).fetchall()
        for row in rows:
            decision = _to_decision(row)
            found.setdefault(decision.payout_id, []).append(decision)
    return found


def _insert(tx: Tx, d: Decision) -> None:
    try:
        tx.execute(
            _INSERT,
            (
                d.payout_id,
                d.seq,
                d.decision,
                d.status_after,
                _money_text(d.amount_before),
                _money_text(d.amount_after),
                d.reason,
                d.creator_id,
                d.period.isoformat(),
                _money_text(d.warehouse_amount),
                d.currency,
                d.warehouse_status,
                d.batch_id,
                d.decided_by,
                d.decided_by_name,
                to_db(d.decided_at),
                d.step_up_id,
                d.audit_id,
            ),
        )
    except IntegrityError:
        # UNIQUE (payout_id, seq): another decision on the same state got there first. The
        # write lock makes this unreachable through this class; the database still refuses it.
        raise PayoutDecisionError(
            "Someone else decided on this month at the same moment; reload the page and decide "
            "again."
        ) from None


BATCH_COLUMNS = [
    "payout_id",
    "creator_id",
    "creator_name",
    "period",
    "currency",
    "amount",
    "approved_by",
    "approved_at",
    "approval_reference",
]


# --- the ledger --------------------------------------------------------------------------------
class PayoutLedger:
    """Payout decisions over an :class:`AppDB` (no streamlit; safe across threads and
    processes). Every decision method takes the acting principal and checks ``approve_payout``
    (finance, fresh step-up) before anything else."""

    def __init__(self, db: AppDB, audit: AuditLog, clock: Clock = utcnow):
        self.db = db
        self.audit = audit
        self.clock = clock

    # --- reading -----------------------------------------------------------------------------
    def effective(self, lines: Iterable[PayoutLine]) -> list[EffectiveLine]:
        """The lines, in the order given, with the decisions overlaid (one snapshot, one query
        per 5,000 lines)."""
        lines = _lines(lines)
        with self.db.snapshot() as tx:
            found = _read(tx, (line.payout_id for line in lines))
        return [_overlay(line, found.get(line.payout_id, [])) for line in lines]

    def history(self, payout_id: int) -> list[Decision]:
        """Every decision on the line, oldest first."""
        rows = self.db.query(
            f"{_SELECT} WHERE payout_id = ? ORDER BY seq", (_whole(payout_id, "payout_id"),)
        )
        return [_to_decision(r) for r in rows]

    # --- decisions ---------------------------------------------------------------------------
    def approve(
        self,
        principal: Principal | None,
        line: PayoutLine,
        *,
        expected_seq: int,
        reason: str | None = None,
        client: str = "",
        now: datetime | None = None,
    ) -> EffectiveLine:
        """Approve a finalised (or adjusted) line for payment; the reason is optional."""
        return self._decide(principal, line, APPROVE, expected_seq, reason, None, client, now)

    def hold(
        self,
        principal: Principal | None,
        line: PayoutLine,
        *,
        expected_seq: int,
        reason: str,
        client: str = "",
        now: datetime | None = None,
    ) -> EffectiveLine:
        """Hold an estimated, finalised, adjusted or approved (not yet exported) line."""
        return self._decide(principal, line, HOLD, expected_seq, reason, None, client, now)

    def release(
        self,
        principal: Principal | None,
        line: PayoutLine,
        *,
        expected_seq: int,
        reason: str,
        client: str = "",
        now: datetime | None = None,
    ) -> EffectiveLine:
        """Release the app's hold: the line returns to the status it had before it."""
        return self._decide(principal, line, RELEASE, expected_seq, reason, None, client, now)

    def adjust(
        self,
        principal: Principal | None,
        line: PayoutLine,
        *,
        expected_seq: int,
        new_amount: Decimal,
        reason: str,
        client: str = "",
        now: datetime | None = None,
    ) -> EffectiveLine:
        """Set the amount due (a Decimal >= 0 in the line's currency); an approval in force is
        withdrawn (approve the new amount). Not on estimated, paid or exported lines."""
        return self._decide(principal, line, ADJUST, expected_seq, reason, new_amount, client, now)

    def _decide(
        self,
        principal: Principal | None,
        line: PayoutLine,
        decision: str,
        expected_seq: int,
        reason: str | None,
        new_amount: Decimal | None,
        client: str,
        now: datetime | None,
    ) -> EffectiveLine:
        now = as_utc(now or self.clock())
        require(principal, APPROVE_PAYOUT, now)
        assert principal is not None  # require() lets no signed-out principal through
        if not isinstance(line, PayoutLine):
            raise TypeError(f"a decision is made on a PayoutLine, not {type(line).__name__}")
        expected = _whole(expected_seq, "expected_seq")
        reason = check_reason(reason, decision, required=decision != APPROVE)
        amount = check_amount(new_amount, line.currency) if decision == ADJUST else None
        with self.db.transaction() as tx:
            before = _overlay(line, _read(tx, [line.payout_id]).get(line.payout_id, []))
            if before.seq != expected:
                raise PayoutDecisionError(_stale(before, expected, decision))
            refusal = _refusal(before, decision)
            if refusal is not None:
                raise PayoutDecisionError(refusal)
            if amount is not None and amount == before.amount_due:
                raise PayoutDecisionError(
                    f"{_money(amount, line.currency)} is already the amount due; nothing to adjust."
                )
            made = self._record(tx, principal, before, decision, amount, reason, None, client, now)
            return _overlay(line, [*before.history, made])

    # --- payment -----------------------------------------------------------------------------
    def payment_batch(
        self,
        lines: Iterable[PayoutLine],
        principal: Principal | None,
        *,
        include_exported: bool = False,
        client: str = "",
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """The approved, not yet paid lines among ``lines`` for payment, recorded as exported
        (an ``export`` decision per line, batch id in ``frame.attrs["batch_id"]``) and audited
        (``payout.batch_export``: lines and the total per currency) before the frame is returned.

        Lines already exported in an earlier batch are left out, so two files never pay a line
        twice; ``include_exported`` makes the file again (a lost file). Columns
        ``BATCH_COLUMNS`` (``creator_name`` only when the lines carry names); ``amount`` is
        the amount due as Decimal objects (object dtype), so CSV text stays exact. Build the
        file with data/export/formats.py.
        """
        import pandas as pd

        now = as_utc(now or self.clock())
        require(principal, APPROVE_PAYOUT, now)
        assert principal is not None  # require() lets no signed-out principal through
        lines = _lines(lines)
        if len({line.payout_id for line in lines}) != len(lines):
            raise ValueError("a payment batch lists each payout line once")
        batch_id = f"PB-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        with self.db.transaction() as tx:
            found = _read(tx, (line.payout_id for line in lines))
            due = [_overlay(line, found.get(line.payout_id, [])) for line in lines]
            due = [e for e in due if _refusal(e, EXPORT, re_export=include_exported) is None]
            due.sort(key=lambda e: (e.period, e.creator_id, e.payout_id))
            totals: dict[str, Decimal] = {}
            for e in due:
                totals[e.currency] = totals.get(e.currency, Decimal(0)) + e.amount_due
            audit_id = self.audit.append(
                tx,
                actor=principal.username,
                action="payout.batch_export",
                target=f"batch:{batch_id}",
                client=client,
                details={
                    "batch": batch_id,
                    "lines": len(due),
                    "totals": {c: _money_text(t) for c, t in sorted(totals.items())},
                    "re_export": include_exported,
                    "step_up": principal.step_up_id,
                },
                now=now,
            )
            for e in due:
                self._record(tx, principal, e, EXPORT, None, None, batch_id, client, now, audit_id)
        rows: dict[str, list[Any]] = {name: [] for name in BATCH_COLUMNS}
        for e in due:
            approval = e.approval
            assert approval is not None  # an approved line has its approval in force
            rows["payout_id"].append(e.payout_id)
            rows["creator_id"].append(e.creator_id)
            rows["creator_name"].append(e.line.creator_name)
            rows["period"].append(e.period)
            rows["currency"].append(e.currency)
            rows["amount"].append(e.amount_due)
            rows["approved_by"].append(approval.decided_by)
            rows["approved_at"].append(to_db(approval.decided_at))
            rows["approval_reference"].append(approval.reference)
        frame = pd.DataFrame(
            {name: pd.Series(values, dtype=object) for name, values in rows.items()}
        )
        for name in ("payout_id", "creator_id"):
            frame[name] = frame[name].astype("int64")
        if not any(line.creator_name for line in lines):
            frame = frame.drop(columns="creator_name")
        frame.attrs["batch_id"] = batch_id
        frame.attrs["audit_id"] = audit_id
        return frame

    # --- writing -----------------------------------------------------------------------------
    def _record(
        self,
        tx: Tx,
        principal: Principal,
        before: EffectiveLine,
        decision: str,
        amount: Decimal | None,
        reason: str | None,
        batch_id: str | None,
        client: str,
        now: datetime,
        audit_id: int | None = None,
    ) -> Decision:
        """Append one decision (and, unless ``audit_id`` is given, its audit record) inside the
        caller's transaction; checked against the transition table."""
        line = before.line
        target = TRANSITIONS[(before.status, decision)]
        made = Decision(
            payout_id=line.payout_id,
            seq=before.seq + 1,
            decision=decision,
            status_after="",
            amount_before=before.amount_due,
            amount_after=before.amount_due if amount is None else amount,
            reason=reason,
            creator_id=line.creator_id,
            period=line.period,
            warehouse_amount=line.amount,
            currency=line.currency,
            warehouse_status=line.status,
            decided_by=principal.username,
            decided_by_name=principal.display_name or principal.username,
            decided_at=now,
            step_up_id=principal.step_up_id,
            audit_id=0,
            batch_id=batch_id,
        )
        after = _overlay(line, [*before.history, made]).status
        if target != PREVIOUS and after != target:
            raise RuntimeError(
                f"payout ledger: {before.status} --{decision}--> {after}, not {target}"
            )
        if audit_id is None:
            audit_id = self.audit.append(
                tx,
                actor=principal.username,
                action=f"payout.{decision}",
                target=f"payout:{line.payout_id}",
                client=client,
                details={
                    "creator_id": line.creator_id,
                    "period": line.period.isoformat(),
                    "currency": line.currency,
                    "amount_before": _money_text(made.amount_before),
                    "amount_after": _money_text(made.amount_after),
                    "warehouse_amount": _money_text(line.amount),
                    "warehouse_status": line.status,
                    "status_before": before.status,
                    "status_after": after,
                    "reason": reason,
                    "seq": made.seq,
                    "step_up": principal.step_up_id,
                },
                now=now,
            )
        made = replace(made, status_after=after, audit_id=audit_id)
        _insert(tx, made)
        return made


def _lines(lines: Iterable[PayoutLine]) -> list[PayoutLine]:
    lines = list(lines)
    for line in lines:
        if not isinstance(line, PayoutLine):
            raise TypeError(f"expected PayoutLine objects, not {type(line).__name__}")
    return lines
