"""KPI cards: the value for the period, its change against the comparison period, a sparkline."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from data.queries.metrics import METRICS


def _delta(row: pd.Series) -> tuple[str | None, str]:
    pct = row.get("change_pct")
    if pct is None or (isinstance(pct, float) and math.isnan(pct)):
        return None, "off"
    colour = "normal" if row.get("higher_is_better") is not False else "inverse"
    if row.get("higher_is_better") is None:
        colour = "off"
    return f"{pct:+.1%} vs comparison", colour


# On a phone Streamlit stacks every column full width: eight cards took ~1,850 px before the
# first chart. Two to a row with a shorter sparkline keeps the first chart within two screens.
# Static CSS only (no data in it), scoped to the cards' keyed container.
_PHONE_CSS = """<style>
@media (max-width: 640px) {
  .st-key-kpi-cards [data-testid="stColumn"] {
    min-width: calc(50% - 0.5rem) !important;
    flex: 1 1 calc(50% - 0.5rem) !important;
  }
  .st-key-kpi-cards [data-testid="stHorizontalBlock"] { gap: 0.5rem !important; }
  .st-key-kpi-cards [data-testid="stMetric"] {
    padding: 0.5rem 0.6rem !important;
    gap: 0.25rem !important;
  }
  .st-key-kpi-cards [data-testid="stMetricValue"] { height: auto !important; }
  .st-key-kpi-cards [data-testid="stMetricValue"] p { font-size: 1.45rem !important; }
  .st-key-kpi-cards [data-testid="stMetric"] > div:has([data-testid="stMetricChart"]) {
    height: 28px !important;
    overflow: hidden;
  }
  .st-key-kpi-cards [data-testid="stMetricChart"] {
    transform: scaleY(0.5);
    transform-origin: top left;
  }
}
</style>"""


def kpi_cards(
    kpis: pd.DataFrame,
    sparklines: Mapping[str, Sequence[float]],
    *,
    per_row: int = 4,
) -> None:
    """One bordered card per KPI row of ``data.queries.metrics.kpis``, ``per_row`` to a row."""
    rows = list(kpis.itertuples(index=False))
    st.html(_PHONE_CSS)
    cards = st.container(key="kpi-cards")
    for start in range(0, len(rows), per_row):
        columns = cards.columns(per_row)
        for column, row in zip(columns, rows[start : start + per_row], strict=False):
            series = pd.Series(row._asdict())
            delta, colour = _delta(series)
            help_text = series["definition"]
            if series.get("note"):
                help_text += f" ({series['note']})"
            if series.get("gap"):
                help_text += f" {series['gap']}"
            column.metric(
                series["label"],
                METRICS[series["metric"]].format(
                    series["value"], currency=series.get("currency") or None
                ),
                delta=delta,
                delta_color=colour,
                help=help_text,
                border=True,
                chart_data=list(sparklines.get(series["metric"], [])) or None,
                chart_type="area",
            )
