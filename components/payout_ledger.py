"""Payouts on the Earnings page: the timeline a creator sees, and the finance team's ledger.

Statuses come from the warehouse (``fact_payout``) overlaid with the finance team's decisions
in the app database (security/payout_ledger.py); the app never writes to the warehouse. Making a
decision needs ``approve_payout`` (finance: an administrator reads the ledger but cannot decide,
separation of duties) and a fresh step-up; the ledger checks both again itself, and refuses a
decision made on a line someone else has just decided (the ``seq`` the page showed).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from components import auth, queries
from components.context import AppContext
from components.export import export_buttons
from components.stepup import step_up_ok
from components.text import md_escape, money_text
from data.queries.earnings import expected_pay_date, month_range
from security.payout_ledger import (
    ADJUST,
    APPROVE,
    HOLD,
    RELEASE,
    EffectiveLine,
    PayoutDecisionError,
    PayoutLine,
)
from security.permissions import AccessDenied, Principal

STATUS_LABELS = {
    "estimated": "🕓 Estimated",
    "finalised": "📄 Finalised",
    "approved": "✅ Approved for payment",
    "adjusted": "✏️ Adjusted",
    "held": "⏸️ Held",
    "paid": "💸 Paid",
}
DECISION_LABELS = {
    APPROVE: "Approve for payment",
    HOLD: "Hold",
    RELEASE: "Release the hold",
    ADJUST: "Adjust the amount due",
}
_AMOUNT = re.compile(r"(?:[0-9]{1,12}|[0-9]{1,3}(?:,[0-9]{3}){1,3})(?:\.[0-9]{1,2})?", re.ASCII)
PAY_DAY = 15  # the platform pays on the 15th of the month after the month earned


def effective_lines(ctx: AppContext, paid: pd.DataFrame) -> list[EffectiveLine]:
    """The warehouse's payout rows with the finance team's decisions overlaid."""
    if paid.empty:
        return []
    return ctx.security.payouts.effective(PayoutLine.from_frame(paid))


def _note(line: EffectiveLine, internal: bool) -> str:
    notes = []
    if line.needs_reapproval:
        notes.append("The warehouse changed the amount after approval: it needs approving again.")
    for decision in (line.hold, line.adjustment):
        if decision is not None and decision.reason:
            who = f" ({decision.decided_by_name})" if internal else ""
            notes.append(f"{decision.decision.capitalize()}: {decision.reason}{who}")
    if line.approval is not None and line.status == "approved":
        who = f" by {line.approval.decided_by_name}" if internal else ""
        notes.append(f"Approved{who} on {line.approval.decided_at:%d %b %Y}.")
    if line.exported is not None and line.status == "approved":
        notes.append("In a payment batch.")
    if line.warehouse_status == "held" and line.hold is None:
        notes.append(
            "Held by the platform's payments system; the reason is recorded there."
            if internal
            else "On hold: the platform's partner team can tell you why."
        )
    return " ".join(notes)


def timeline_frame(lines: list[EffectiveLine], internal: bool) -> pd.DataFrame:
    """The payout timeline as shown: one row per line, newest month first."""
    rows = [
        {
            "payout_id": e.payout_id,
            "Month": e.period,
            "Creator": e.line.creator_name or f"Creator {e.creator_id}",
            "Amount due": e.amount_due,
            "Currency": e.currency,
            "Status": STATUS_LABELS.get(e.status, e.status),
            # A held line has no date until it is released.
            "Pay date": None
            if e.status == "held"
            else expected_pay_date(e.period, e.status, e.line.paid_at, PAY_DAY),
            "Note": _note(e, internal),
        }
        for e in lines
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "payout_id",
            "Month",
            "Creator",
            "Amount due",
            "Currency",
            "Status",
            "Pay date",
            "Note",
        ],
    )
    return frame.sort_values(["Month", "Creator"], ascending=[False, True]).reset_index(drop=True)


def _show(frame: pd.DataFrame) -> None:
    shown = frame.copy()
    shown["Amount due"] = shown["Amount due"].map(float)
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "Month": st.column_config.DateColumn("Month", format="MMM YYYY"),
            "Amount due": st.column_config.NumberColumn("Amount due", format="%.2f"),
            "Pay date": st.column_config.DateColumn(
                "Paid / expected",
                format="D MMM YYYY",
                help="Paid on, or expected on; blank while on hold.",
            ),
            "Note": st.column_config.TextColumn("Note", width="large"),
        },
    )


def timeline(principal: Principal, lines: list[EffectiveLine]) -> None:
    """The payout timeline of the creators on the page (``effective_lines``)."""
    if not lines:
        st.info("No payouts for these months yet.", icon="🗓️")
        return
    internal = not principal.is_external
    several = len({e.creator_id for e in lines}) > 1
    for e in sorted(lines, key=lambda e: e.period, reverse=True)[:3]:
        if e.status == "paid":
            continue
        who = f" — {md_escape(e.line.creator_name)}" if several and e.line.creator_name else ""
        if e.status == "held":
            when = "on hold, no pay date yet"
        else:
            when = (
                f"expected around {expected_pay_date(e.period, e.status, None, PAY_DAY):%d %b %Y}"
            )
        st.markdown(
            f"**{e.period:%B %Y}: {STATUS_LABELS.get(e.status, e.status)}**{who} · "
            f"{md_escape(money_text(e.amount_due, e.currency))}, {when}"
        )
    frame = timeline_frame(lines, internal=internal).drop(columns="payout_id")
    if frame["Creator"].nunique() == 1:
        frame = frame.drop(columns="Creator")
    _show(frame)
    st.caption(
        f"A month is estimated until it closes, then finalised, approved by the finance team and "
        f"paid on the {PAY_DAY}th of the following month. Payouts are in your payout currency."
    )


# --- the finance team's ledger ----------------------------------------------------------------
def ledger_section(ctx: AppContext, principal: Principal, bounds: tuple[date, date]) -> None:
    first_day, last_day = bounds
    currency = queries.reporting_currency(ctx)
    months = list(reversed(month_range(first_day, last_day)))
    every = queries.run(ctx, principal, "payouts")
    waiting = sorted(set(every.loc[every["status"] == "finalised", "period"]), reverse=True)
    # Open on the latest month with lines waiting for a decision: that is the work to do.
    default = months.index(waiting[0]) if waiting and waiting[0] in months else 0
    month = st.selectbox(
        "Month",
        months,
        index=default,
        format_func=lambda m: m.strftime("%B %Y"),
        key="ledger-month",
    )
    paid = queries.run(ctx, principal, "payouts", first_month=month, last_month=month)
    lines = effective_lines(ctx, paid)
    if not lines:
        st.info(f"The warehouse has no payout lines for {month:%B %Y}.", icon="🗓️")
        return
    checks = queries.run(ctx, principal, "payout_checks", month=month)
    by_status = pd.Series([e.status for e in lines]).value_counts()
    st.caption(
        " · ".join(f"{STATUS_LABELS.get(s, s)}: {n}" for s, n in by_status.items())
        + f" — {len(lines)} lines"
    )
    table = timeline_frame(lines, internal=True)
    table = table.merge(checks, on="payout_id", how="left")
    shown = table.drop(columns=["Pay date"]).copy()
    shown["Amount due"] = shown["Amount due"].map(float)
    shown["estimate"] = shown["estimate"].map(lambda v: float(v) if v is not None else None)
    st.dataframe(
        shown[
            [
                "Creator",
                "Amount due",
                "Currency",
                "Status",
                "amount_converted",
                "estimate",
                "difference_pct",
                "Note",
                "payout_id",
            ]
        ],
        hide_index=True,
        column_config={
            "Amount due": st.column_config.NumberColumn("Amount due", format="%.2f"),
            "amount_converted": st.column_config.NumberColumn(
                f"Payout in {currency}", format="%.2f", help="At the rate of the month's last day."
            ),
            "estimate": st.column_config.NumberColumn(
                f"Spotlight's estimate ({currency})",
                format="%.2f",
                help="The creator's earnings worked out from the extract (revenue share of "
                "their titles' net revenue).",
            ),
            "difference_pct": st.column_config.NumberColumn("Payout vs estimate", format="percent"),
            "Note": st.column_config.TextColumn("Note", width="large"),
            "payout_id": st.column_config.NumberColumn("Payout id", format="%d"),
        },
    )
    _decision_form(ctx, principal, lines)
    _payment_batch(ctx, principal, lines, month)


def _line_label(e: EffectiveLine) -> str:
    name = e.line.creator_name or f"Creator {e.creator_id}"
    return (
        f"{name} · {money_text(e.amount_due, e.currency)} · {STATUS_LABELS.get(e.status, e.status)}"
    )


def parse_amount(text: str) -> Decimal:
    """An amount typed by a person: digits with at most two decimals after a point, and
    optionally commas between groups of three digits (1,234.50). Anything else — a decimal
    comma, stray commas, signs, exponents, other digits — is refused with what was expected,
    never guessed."""
    cleaned = text.strip()
    if not _AMOUNT.fullmatch(cleaned):
        raise ValueError(
            f"“{cleaned[:30]}” is not an amount: type digits with a point for decimals, e.g. "
            "1234.50 or 1,234.50 (no currency sign, no decimal comma)."
        )
    return Decimal(cleaned.replace(",", ""))


def _decision_form(ctx: AppContext, principal: Principal, lines: list[EffectiveLine]) -> None:
    st.subheader("Decide on a line")
    if not principal.may("approve_payout"):
        st.caption(
            "Payout decisions are made by the finance team: administrators read the ledger but "
            "cannot approve, hold, release or adjust (separation of duties)."
        )
        return
    open_lines = {e.payout_id: e for e in lines if e.allowed}
    if not open_lines:
        st.info("Nothing to decide in this month: every line is paid or waiting.", icon="✅")
        return
    # The option is the payout id, so the chosen line stays chosen when its status changes.
    payout_id = st.selectbox(
        "Line",
        list(open_lines),
        format_func=lambda i: _line_label(open_lines[i]),
        key="ledger-line",
    )
    chosen = open_lines[payout_id]
    if chosen.history:
        with st.expander(f"History of this line ({len(chosen.history)} decisions)"):
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "When (UTC)": d.decided_at.strftime("%Y-%m-%d %H:%M"),
                            "Decision": d.decision,
                            "By": d.decided_by_name,
                            "Amount due after": money_text(d.amount_after, d.currency),
                            "Reason": d.reason or "",
                            "Reference": d.reference,
                        }
                        for d in chosen.history
                    ]
                ),
                hide_index=True,
            )
    confirmed = step_up_ok(ctx, principal, "approve_payout", key="payout")
    # The form is always drawn, so what was typed survives a step-up that ran out meanwhile.
    with st.form("payout-decision"):
        decision = st.radio(
            "Decision",
            list(chosen.allowed),
            format_func=lambda d: DECISION_LABELS.get(d, d),
            horizontal=True,
            key=f"ledger-decision-{payout_id}",
        )
        reason = st.text_area(
            "Reason (required to hold, release or adjust; the creator sees the reason for a hold "
            "or an adjustment)",
            max_chars=500,
            key=f"ledger-reason-{payout_id}",
        )
        amount = st.text_input(
            f"New amount due, in {chosen.currency} (adjustments only)",
            placeholder="1234.50",
            key=f"ledger-amount-{payout_id}",
        )
        submitted = st.form_submit_button("Record the decision", type="primary")
    if not submitted:
        return
    if not confirmed or not principal.can("approve_payout"):
        st.warning(
            "Not recorded yet: confirm it is you (above), then press “Record the decision” "
            "again. What you typed is kept.",
            icon="🔐",
        )
        return
    if decision != ADJUST and amount.strip():
        st.error(
            "A new amount is only for “Adjust the amount due”: clear it, or choose Adjust.",
            icon="🚫",
        )
        return
    ledger = ctx.security.payouts
    client = auth.client_id()
    try:
        if decision == ADJUST:
            new_amount = parse_amount(amount)
            ledger.adjust(
                principal,
                chosen.line,
                expected_seq=chosen.seq,
                new_amount=new_amount,
                reason=reason,
                client=client,
            )
        else:
            method = {APPROVE: ledger.approve, HOLD: ledger.hold, RELEASE: ledger.release}[decision]
            method(
                principal,
                chosen.line,
                expected_seq=chosen.seq,
                reason=reason or None,
                client=client,
            )
    except (PayoutDecisionError, ValueError) as exc:
        st.error(md_escape(exc), icon="🚫")
        return
    except AccessDenied:
        st.warning(
            "Not recorded: your confirmation ran out. Confirm it is you again, then press "
            "“Record the decision”.",
            icon="🔐",
        )
        return
    for field in ("reason", "amount"):
        st.session_state.pop(f"ledger-{field}-{payout_id}", None)
    st.toast(f"{DECISION_LABELS[decision]}: recorded.", icon="✅")
    st.rerun()


def _payment_batch(
    ctx: AppContext, principal: Principal, lines: list[EffectiveLine], month: date
) -> None:
    st.subheader("Payment batch")
    key = f"payment-batch-{month:%Y-%m}"
    if not principal.may("approve_payout"):
        st.caption("Payment batches are made by the finance team.")
        return
    ready = [e for e in lines if e.status == "approved" and e.exported is None]
    batches: dict[str, list[EffectiveLine]] = {}
    for e in lines:
        if e.status == "approved" and e.exported is not None and e.exported.batch_id:
            batches.setdefault(e.exported.batch_id, []).append(e)
    st.caption(
        f"{len(ready)} approved line(s) of {month:%B %Y} not yet in a batch. Making the batch "
        "records each line as handed over for payment, so no line is paid twice."
    )
    left, right = st.columns(2)
    if ready and left.button("Make the payment batch", key=f"{key}-make"):
        _make_batch(ctx, principal, [e.line for e in ready], key, again=False)
    if batches:
        earlier = right.selectbox(
            "Download an earlier batch again",
            sorted(batches, reverse=True),
            format_func=lambda b: f"{b} ({len(batches[b])} lines)",
            key=f"{key}-earlier",
        )
        if right.button("Make its file again", key=f"{key}-again"):
            _make_batch(ctx, principal, [e.line for e in batches[earlier]], key, again=True)
    batch = st.session_state.get(key)
    if batch is not None:
        st.success(
            f"Batch {batch.attrs.get('batch_id', '')}: {len(batch)} line(s). Download it for the "
            "payment system.",
            icon="🧾",
        )
        export_buttons(
            ctx.security,
            principal,
            batch,
            name=f"Payment batch {batch.attrs.get('batch_id', '')}",
            key=key,
        )


def _make_batch(
    ctx: AppContext, principal: Principal, lines: list[PayoutLine], key: str, *, again: bool
) -> None:
    if not principal.can("approve_payout"):
        st.error("Confirm it is you first (above).", icon="🔐")
        return
    try:
        st.session_state[key] = ctx.security.payouts.payment_batch(
            lines, principal, include_exported=again, client=auth.client_id()
        )
    except (PayoutDecisionError, ValueError, AccessDenied) as exc:
        st.error(md_escape(exc), icon="🚫")
