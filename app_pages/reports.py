"""Reports: tables of one's own on pivot shelves, saved, shared and exported
(components/report_view.py)."""

from __future__ import annotations

from components import report_view
from components.dashboard import dashboard_page

ctx, principal, filters = dashboard_page("reports", "📑 Reports")
report_view.page(ctx, principal, filters)
