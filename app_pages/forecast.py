"""Forecast: a metric's forecast with its honest backtest and a what-if of your own, the shared
forecast defaults, and a title's predicted success before release (components/forecast_view.py)."""

from __future__ import annotations

from components import forecast_view
from components.dashboard import dashboard_page

ctx, principal, filters = dashboard_page("forecast", "🔮 Forecast")
forecast_view.page(ctx, principal, filters)
