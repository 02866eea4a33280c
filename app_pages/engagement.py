"""Engagement: when viewers watch (local time), how new titles hold up, drop-off, interactions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import charts, queries
from components.dashboard import dashboard_page
from data.queries import dimensions
from data.queries.engagement import HOURS, RELEASE_WEEKS, WEEKDAYS, interaction_note

ctx, principal, filters = dashboard_page("engagement", "🔥 Engagement")


def unique_labels(frame: pd.DataFrame) -> dict[int, str]:
    """Title id -> its name, with the id added where two titles share a name (the labelling
    every page shares)."""
    return dimensions.title_labels(zip(frame["title_id"], frame["name"], strict=True))


with st.spinner("Reading the period's sessions…"):
    heat = queries.run(ctx, principal, "local_time_heatmap", filters)
if int(heat["starts"].sum()) == 0:
    st.info(
        "No views match these filters in this period. Widen the period or remove a filter.",
        icon="🔍",
    )
    st.stop()

st.subheader("When viewers watch")
measure = (
    st.segmented_control(
        "Measure",
        ["starts", "watch_hours"],
        default="starts",
        format_func={"starts": "Starts", "watch_hours": "Watch hours"}.__getitem__,
        key="engagement-heat-measure",
    )
    or "starts"
)
measure_label = "Starts" if measure == "starts" else "Watch hours (h)"
charts.heatmap(
    heat,
    x="hour",
    y="weekday_name",
    value=measure,
    title=f"{measure_label} by weekday and local hour",
    x_title="Hour of day (viewer's local time)",
    y_title="Day of week",
    value_title=measure_label,
    key="engagement-local-time",
    x_order=HOURS,
    y_order=WEEKDAYS,
)

st.subheader("New releases, week by week")
weeks = queries.run(ctx, principal, "release_weeks", filters, weeks=RELEASE_WEEKS, limit=15)
if weeks.empty:
    st.info(f"No title was released in the {RELEASE_WEEKS} weeks to {filters.end:%d %b %Y}.")
else:
    labels = unique_labels(weeks.drop_duplicates("title_id"))
    weeks = weeks.assign(title=weeks["title_id"].map(labels))
    charts.heatmap(
        weeks[["title", "release_date", "week", "views"]],
        x="week",
        y="title",
        value="views",
        title="Views by week since release",
        x_title="Weeks since release",
        y_title="Title",
        value_title="Views",
        key="engagement-release-weeks",
        x_order=range(RELEASE_WEEKS),
        y_order=list(dict.fromkeys(weeks["title"])),
        fill_value=None,
        aggfunc="mean",
    )
    st.caption(
        f"Titles released in the {RELEASE_WEEKS} weeks to {filters.end:%d %b %Y}; week 0 is the "
        "release day and the six days after. Blank cells are weeks that had not started by the "
        "end of the period."
    )

st.subheader("Drop-off")
titles = queries.run(ctx, principal, "titles_in_period", filters, limit=500)
title_labels = unique_labels(titles)
title_ids = list(title_labels)
if st.session_state.get("engagement-title") not in title_labels:
    st.session_state["engagement-title"] = title_ids[0]
title_id = st.selectbox(
    "Title (type to search; most viewed first)",
    title_ids,
    format_func=title_labels.__getitem__,
    key="engagement-title",
)
curve = queries.run(ctx, principal, "dropoff_curve", filters, title_id=int(title_id))
left, right, runtime_col = st.columns(3)
left.metric("Completion rate", f"{curve['completion_rate']:.1%}", border=True)
right.metric("Starts in the period", f"{curve['starts']:,}", border=True)
runtime_col.metric("Runtime", f"{curve['runtime_min']} min", border=True)
shown = curve["curve"].assign(still_watching=curve["curve"]["still_watching"] * 100)
charts.line_chart(
    shown.rename(columns={"pct": "% of runtime", "still_watching": "still watching (%)"}),
    x="% of runtime",
    series=[("still watching (%)", title_labels[title_id])],
    title="Starts still watching by % of runtime",
    x_title="Point in the title (% of runtime)",
    y_title="Starts still watching (%)",
    key="engagement-dropoff",
)
st.caption("The value at 90% of the runtime is the completion rate.")

st.subheader("Interactions")
note = interaction_note(filters)
if note:
    st.info(note, icon="ℹ️")
else:
    top = queries.run(ctx, principal, "interaction_titles", filters, limit=15)
    if top.empty:
        st.info("No polls, questions or reactions in this period for these filters.")
    else:
        inter_labels = unique_labels(top)
        valid = [
            t
            for t in st.session_state.get("engagement-interaction-titles", [])
            if t in inter_labels
        ]
        if "engagement-interaction-titles" not in st.session_state or not valid:
            st.session_state["engagement-interaction-titles"] = list(inter_labels)[:3]
        picked = st.multiselect(
            "Titles (the 15 with the most interactions; up to 5)",
            list(inter_labels),
            format_func=inter_labels.__getitem__,
            max_selections=5,
            key="engagement-interaction-titles",
        )
        if not picked:
            st.info("Pick at least one title to see its interactions.")
        else:
            frame = queries.run(
                ctx, principal, "interactions_by_week", filters, title_ids=tuple(sorted(picked))
            )
            frame = frame.assign(title=frame["title_id"].map(inter_labels))
            names = [inter_labels[t] for t in picked]
            measures = {
                "poll_participation": ("Poll participation", "% of viewers", 100.0),
                "questions": ("Q&A volume", "questions", 1.0),
                "sentiment": ("Reaction sentiment", "mean, -1 to 1", 1.0),
            }
            # One measure at a time: three charts on every run cost more than a click.
            column = (
                st.segmented_control(
                    "Measure",
                    list(measures),
                    default="poll_participation",
                    format_func=lambda m: measures[m][0],
                    key="engagement-interaction-measure",
                )
                or "poll_participation"
            )
            label, unit, scale = measures[column]
            wide = (
                frame.pivot_table(index="week", columns="title", values=column, aggfunc="mean")
                .reindex(columns=names)
                .mul(scale)
                .reset_index()
            )
            charts.line_chart(
                wide,
                x="week",
                series=[(n, n) for n in names],
                title=f"{label} by week",
                x_title="Week starting (UTC)",
                y_title=f"{label} ({unit})",
                key=f"engagement-{column}",
            )
