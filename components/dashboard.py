"""How every dashboard page starts: the permission check, its title and the filter bar."""

from __future__ import annotations

import streamlit as st

from components import queries
from components.context import AppContext
from components.filter_bar import filter_bar, saved_views
from components.guard import require_page
from data.queries.filters import Filters
from security.permissions import Principal


def dashboard_page(page_id: str, title: str) -> tuple[AppContext, Principal, Filters]:
    """Check access (nothing below runs when denied), draw the title and the filter bar, and
    return the context, the principal and the chosen filters; stops when there is no data."""
    ctx, principal = require_page(page_id, title)
    st.title(title)
    bounds = queries.data_bounds(ctx)
    if bounds is None:
        st.info(
            "The extract has no view sessions yet. Run a sync, or build the demo data.", icon="📭"
        )
        st.stop()
    first_day, last_day = bounds
    options = queries.run(ctx, principal, "dimension_options")
    filters = filter_bar(
        last_day, first_day, options, views=saved_views(ctx), username=principal.username
    )
    return ctx, principal, filters
