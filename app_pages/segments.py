"""Segments: audiences built from rules with a live size, saved with versions, compared for
overlap, found by clustering and handed to the CRM (components/segments_view.py)."""

from __future__ import annotations

import streamlit as st

from components import queries, segments_view
from components.guard import require_page

ctx, principal = require_page("segments", "🎯 Segments")
st.title("🎯 Segments")
bounds = queries.data_bounds(ctx)
if bounds is None:
    st.info("The extract has no view sessions yet. Run a sync, or build the demo data.", icon="📭")
    st.stop()

VIEWS = {
    "build": "🛠️ Build",
    "saved": "📁 Saved segments",
    "overlap": "🔀 Overlap",
    "clusters": "🧠 Clusters",
}
view = (
    st.segmented_control(
        "Show", list(VIEWS), default="build", format_func=VIEWS.get, key="segments-view"
    )
    or "build"
)
{
    "build": segments_view.build_section,
    "saved": segments_view.saved_section,
    "overlap": segments_view.overlap_section,
    "clusters": segments_view.clusters_section,
}[view](ctx, principal, bounds[1])
