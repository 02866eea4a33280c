"""Compare titles: 2-6 titles side by side, or one title and the titles most like it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import charts, queries
from components.dashboard import dashboard_page
from components.navigation import in_menu
from components.table_export import table_export_buttons
from components.text import md_escape
from data.queries.comparison import DEFINITIONS, MAX_TITLES

PICKER_TITLES = 1000

ctx, principal, filters = dashboard_page("compare", "⚖️ Compare titles")
sees_money = principal.can("see_money")

catalog = queries.run(ctx, principal, "title_catalog")
if catalog.empty:
    st.info("No titles to compare.", icon="📭")
    st.stop()
# One label per title for everything on the page (pickers, tables, charts, links, exports): the
# catalog's, so a title reads the same here as on every page that lists titles.
labels = dict(zip(catalog["title_id"].astype(int), catalog["label"].astype(str), strict=True))
# The pickers list the titles most viewed in the period (plus any already picked): a list of
# every title ever released would be sent to the browser on every run and is slow to search.
popular = queries.run(ctx, principal, "titles_in_period", filters, limit=PICKER_TITLES)
popular_ids = [int(t) for t in popular["title_id"] if int(t) in labels]


def choices(picked: list[int]) -> list[int]:
    listed = set(popular_ids)
    return popular_ids + [t for t in picked if t not in listed]


mode = (
    st.segmented_control(
        "How to choose titles",
        ["pick", "similar"],
        default="pick",
        format_func={"pick": "Pick 2–6 titles", "similar": "Find similar titles"}.__getitem__,
        key="compare-mode",
    )
    or "pick"
)
if mode == "pick":
    kept = [t for t in st.session_state.get("compare-titles", []) if t in labels]
    if "compare-titles" not in st.session_state or kept != st.session_state["compare-titles"]:
        st.session_state["compare-titles"] = kept or popular_ids[:3]
    ids = st.multiselect(
        f"Titles to compare (type to search the {PICKER_TITLES:,} most viewed in the period)",
        choices(st.session_state["compare-titles"]),
        format_func=labels.__getitem__,
        max_selections=MAX_TITLES,
        key="compare-titles",
        placeholder="Type a title's name",
    )
else:
    if st.session_state.get("compare-anchor") not in labels:
        st.session_state["compare-anchor"] = popular_ids[0] if popular_ids else next(iter(labels))
    anchor = st.selectbox(
        "Title (type to search; most viewed in the period first)",
        choices([st.session_state["compare-anchor"]]),
        format_func=labels.__getitem__,
        key="compare-anchor",
    )
    with st.spinner("Finding similar titles…"):
        similar = queries.run(ctx, principal, "similar_titles", filters, title_id=int(anchor), k=5)
    if similar.empty:
        st.info("This title had no viewers in the period, so nothing can be matched to it.")
        ids = [anchor]
    else:
        st.caption(
            "Similarity = 30% shared genres + 15% runtime + 35% shared audience + 20% viewing "
            "times (hour of the viewer's local day), each from 0 to 100%, over the period."
        )
        st.dataframe(
            similar.assign(
                name=[
                    labels.get(int(t), n)
                    for t, n in zip(similar["title_id"], similar["name"], strict=True)
                ]
            )
            .rename(
                columns={
                    "name": "Title",
                    "score": "Similarity",
                    "genre": "Genres",
                    "runtime": "Runtime",
                    "audience": "Shared audience",
                    "pattern": "Viewing times",
                    "why": "Most alike in",
                }
            )
            .drop(columns=["title_id"]),
            hide_index=True,
            placeholder="—",
            column_config={
                c: st.column_config.ProgressColumn(
                    c, min_value=0.0, max_value=1.0, format="percent"
                )
                for c in ("Similarity", "Genres", "Runtime", "Shared audience", "Viewing times")
            },
        )
        ids = [anchor, *[int(t) for t in similar["title_id"]]][:MAX_TITLES]

if len(ids) < 2:
    st.info("Pick at least two titles to compare them.", icon="👆")
    st.stop()

with st.spinner("Comparing titles…"):
    result = queries.run(
        ctx, principal, "compare_titles", filters, title_ids=tuple(ids), money=sees_money
    )
summary: pd.DataFrame = result["summary"]
if summary.empty:
    st.info("None of these titles can be shown.", icon="🔍")
    st.stop()
summary = summary.assign(title=summary["title_id"].map(labels))
if int(summary["starts"].sum()) == 0:
    st.info(
        "None of these titles was watched in this period with these filters. Widen the period "
        "or remove a filter.",
        icon="🔍",
    )

if in_menu(principal, "forecast"):
    # For licensing: what the success model expected of each title against what it did.
    links = st.columns(min(len(summary), 3))
    for i, (title_id, name) in enumerate(zip(summary["title_id"], summary["title"], strict=True)):
        links[i % len(links)].page_link(
            "app_pages/forecast.py",
            label=f"Predicted vs actual: {md_escape(str(name)[:60])}",
            icon="🎬",
            query_params={"view": "success", "title": str(int(title_id))},
        )

st.subheader("Side by side")
# The numbers first, so a phone shows them without scrolling sideways. Each header's tooltip is
# its definition (the metric catalog's where it has one).
table_columns = {
    "title": st.column_config.TextColumn("Title"),
    "views": st.column_config.NumberColumn("Views", format="%.0f", help=DEFINITIONS["views"]),
    "completion_rate": st.column_config.NumberColumn(
        "Completion", format="percent", help=DEFINITIONS["completion_rate"]
    ),
    "demand_multiplier": st.column_config.NumberColumn(
        "Demand multiplier", format="%.2fx", help=DEFINITIONS["demand_multiplier"]
    ),
    "staying_power": st.column_config.NumberColumn(
        "Staying power", format="percent", help=DEFINITIONS["staying_power"]
    ),
    "starts": st.column_config.NumberColumn("Starts", format="%d", help=DEFINITIONS["starts"]),
}
if sees_money:
    currency = queries.reporting_currency(ctx)
    # Both per view, in one currency: a total beside a per-view figure reads as nonsense.
    table_columns |= {
        "net_revenue_per_view": st.column_config.NumberColumn(
            f"Net revenue per view ({currency})",
            format="%.4f",
            help=DEFINITIONS["net_revenue_per_view"],
        ),
        "licensing_cost_per_view": st.column_config.NumberColumn(
            f"Licensing cost per view ({currency})",
            format="%.4f",
            help=DEFINITIONS["licensing_cost_per_view"],
        ),
    }
table_columns |= {
    "genre": st.column_config.TextColumn("Genre"),
    "release_date": st.column_config.DateColumn("Released"),
    "runtime_min": st.column_config.NumberColumn("Runtime (min)"),
    "note": st.column_config.TextColumn(
        "Notes", help="Why a value of the row is blank (shown as —).", width="large"
    ),
}
side_by_side = summary[list(table_columns)]
st.dataframe(side_by_side, hide_index=True, column_config=table_columns, placeholder="—")
# The same columns as on screen: money columns only for roles that see money; the Notes column
# carries the reasons for blank cells into the file.
table_export_buttons(
    side_by_side, table_columns, name="Compare titles side by side", key="compare-side-by-side"
)
st.caption(
    "— : not enough data for that figure; the Notes column says why. Views are "
    "runtime-normalised (hours viewed ÷ runtime) in the period."
)
with st.expander("What these numbers mean"):
    st.markdown(
        "\n".join(
            f"- **{md_escape(str(table_columns[c]['label']))}**: {md_escape(text)}"
            for c, text in DEFINITIONS.items()
            if c in table_columns
        )
    )
for note in result["notes"]:
    st.caption(f"ℹ️ {note}")

left, right = st.columns(2)
with left:
    charts.bar_chart(
        summary[["title", "views"]],
        category="title",
        value="views",
        title="Views in the period",
        value_title="Views (hours viewed ÷ runtime)",
        key="compare-views",
    )
with right:
    charts.bar_chart(
        summary[["title", "completion_rate"]].assign(
            completion_rate=summary["completion_rate"] * 100
        ),
        category="title",
        value="completion_rate",
        title="Completion rate",
        value_title="Starts reaching 90% of runtime (%)",
        key="compare-completion",
    )

st.subheader("Since release")
# A title with nothing to draw gets no legend entry and no empty column in the export: it is
# named here, with the reason, instead.
missing = summary[summary["curve_note"] != ""]
for title, why in zip(missing["title"], missing["curve_note"], strict=True):
    st.caption(f"📭 {md_escape(str(title))}: no data in the window ({md_escape(why)}).")
drawn = [t for t in summary.loc[summary["curve_note"] == "", "title"]]
if drawn:
    curve = result["curve"].assign(title=result["curve"]["title_id"].map(labels))
    curve = curve[curve["title"].isin(drawn)]
    wide = curve.pivot_table(
        index="day", columns="title", values="cumulative_views", aggfunc="mean", dropna=False
    ).reset_index()
    charts.line_chart(
        wide,
        x="day",
        series=[(t, t) for t in drawn if t in wide.columns],
        title="Cumulative views since release",
        x_title="Days since release (0 = release day)",
        y_title="Cumulative views",
        key="compare-curve",
    )
    st.caption(
        "A line stops where the period ends; it starts late for titles released before the "
        "data begins."
    )
else:
    st.info("None of these titles has views to draw since its release.", icon="📭")

st.subheader("Audience mix")
mix = result["mix"].assign(
    title=result["mix"]["title_id"].map(labels), share=lambda m: m["share"] * 100
)
# One dimension at a time (not tabs): tabs would draw every heatmap on every run.
dimension = (
    st.segmented_control(
        "Audience by",
        ["country", "device", "age_band"],
        default="country",
        format_func=lambda d: d.replace("_", " ").capitalize(),
        key="compare-mix-dimension",
    )
    or "country"
)
part = mix[mix["dimension"] == dimension]
if part.empty:
    st.info("No starts to break down.")
else:
    top_values = part.groupby("value")["starts"].sum().sort_values(ascending=False).index[:12]
    charts.heatmap(
        part[part["value"].isin(top_values)][["title", "value", "share", "starts"]],
        x="value",
        y="title",
        value="share",
        title=f"Share of each title's starts by {dimension.replace('_', ' ')}",
        x_title=dimension.replace("_", " ").capitalize(),
        y_title="Title",
        value_title="% of starts",
        key=f"compare-mix-{dimension}",
        x_order=list(top_values),
        y_order=[t for t in summary["title"] if t in set(part["title"])],
    )
    unwatched = [t for t in summary["title"] if t not in set(part["title"])]
    if unwatched:
        st.caption(
            "Not shown (no starts in the period): "
            + ", ".join(md_escape(str(t)) for t in unwatched)
        )
