"""Showing data text as text.

Titles and names come from the warehouse, so they can hold anything: ``<b>``, ``**``, ``[x](…)``.
Streamlit's Markdown would format them and Plotly's labels understand a few HTML tags, so data
text placed in either goes through these functions first. Tables (st.dataframe) need nothing.
"""

from __future__ import annotations

import html
import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$:])")


def md_escape(value: object) -> str:
    """Text that Streamlit's Markdown shows literally: HTML escaped, Markdown syntax escaped."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(str(value), quote=False))


def label_escape(value: object) -> str:
    """Text that Plotly shows literally in tick labels, legends and hover text."""
    return html.escape(str(value), quote=False)


def money_text(amount: object, currency: str) -> str:
    """An amount with its currency code, grouped: ``USD 1,234.56`` (``JPY 1,235``). Decimal
    amounts keep their exact digits; NaN or None reads as "—"."""
    from decimal import Decimal

    if amount is None or (isinstance(amount, float) and amount != amount):
        return "—"
    if isinstance(amount, Decimal):
        places = max(0, -amount.as_tuple().exponent) if amount.as_tuple().exponent < 0 else 0
        return f"{currency} {amount:,.{places}f}"
    return f"{currency} {float(amount):,.2f}"
