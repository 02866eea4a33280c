"""Earnings: a creator's own earnings, payouts and monthly statement; finance and admin see any
creator's, and the payout ledger (components/payout_ledger.py)."""

from __future__ import annotations

import streamlit as st

from components import earnings_view, payout_ledger, queries
from components.guard import require_page

ctx, principal = require_page("earnings", "💰 Earnings")
st.title("💰 Earnings")
bounds = queries.data_bounds(ctx)
if bounds is None:
    st.info("The extract has no data yet. Run a sync, or build the demo data.", icon="📭")
    st.stop()

view = "creator"
if not principal.is_external:
    view = (
        st.segmented_control(
            "Show",
            ["creator", "ledger"],
            default="creator",
            format_func={"creator": "👤 A creator's earnings", "ledger": "🧾 Payout ledger"}.get,
            key="earnings-view",
        )
        or "creator"
    )
if view == "ledger":
    payout_ledger.ledger_section(ctx, principal, bounds)
else:
    earnings_view.creator_section(ctx, principal, bounds)
