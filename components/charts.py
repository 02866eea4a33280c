"""Charts every page shares: titled, with axis units, colour-blind safe, and a table alternative.

Colours are the Okabe–Ito palette, distinguishable with the common colour-vision deficiencies;
series are also told apart by line dash, never by colour alone. Every chart is followed by an
expander holding the same numbers as a table and (for roles that may export) audited downloads, for screen readers and for
people who would rather read numbers than a picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components import auth
from components.context import app_context
from components.export import export_buttons
from components.text import label_escape

OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",
)
CURRENT_COLOUR = OKABE_ITO[0]
COMPARISON_COLOUR = "#6B6B6B"  # grey at 5.3:1 on white: readable, clearly secondary
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        # Below the x-axis title, never on top of it.
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
        hovermode="x unified",
        colorway=OKABE_ITO,
        font={"size": 13},
    )
    return fig


def readable_headers(frame: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with the headers a reader sees: the chart's own titles (``labels``: column id ->
    axis or series title) where given, else the id in words ("age_band" -> "Age band"). A label
    another column already has keeps its id beside it, so no two headers are the same."""
    labels = labels or {}
    headers: list[str] = []
    for column in frame.columns:
        label = labels.get(column) or str(column).replace("_", " ").strip()
        label = label[:1].upper() + label[1:] if label else str(column)
        headers.append(label if label not in headers else f"{label} ({column})")
    return frame.set_axis(headers, axis=1)


def table_alternative(
    frame: pd.DataFrame, name: str, key: str, labels: Mapping[str, str] | None = None
) -> None:
    """The chart's numbers as a table, and as audited downloads for roles that may export; the
    downloads have readable headers (``labels``: column id -> the title the chart gives it)."""
    with st.expander(f"Data table: {name}"):
        st.dataframe(frame, hide_index=True, placeholder="—")
        principal = auth.principal_for_run()
        if principal is not None:
            export_buttons(
                app_context().security,
                principal,
                readable_headers(frame, labels),
                name=name,
                key=key,
            )


def _partial_runs(partial: Sequence[bool]) -> list[int]:
    """Indexes the dotted segments pass through: each partial point and its whole neighbours,
    so the dotted line joins the solid one instead of floating apart."""
    keep: set[int] = set()
    for i, cut in enumerate(partial):
        if cut:
            keep.update(j for j in (i - 1, i, i + 1) if 0 <= j < len(partial))
    return sorted(keep)


def _add_line(
    fig: go.Figure,
    xs: pd.Series,
    ys: pd.Series,
    *,
    label: str,
    line: dict,
    markers: bool,
    partial: pd.Series | None,
    partial_label: str,
) -> None:
    """One series: solid over whole buckets, dotted and lighter over buckets the period cuts,
    whose points say "partial" on hover."""
    name = label_escape(label)
    if partial is None or not partial.any():
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, name=name, mode="lines+markers" if markers else "lines", line=line
            )
        )
        return
    whole = ys.where(~partial)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=whole,
            name=name,
            legendgroup=name,
            mode="lines+markers" if markers else "lines",
            line=line,
            connectgaps=False,
        )
    )
    dotted = ys.where(ys.index.isin(_partial_runs(partial.tolist())))
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=dotted,
            name=f"{name}, {label_escape(partial_label)}",
            legendgroup=name,
            mode="lines",
            line={**line, "dash": "dot"},
            opacity=0.55,
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys.where(partial),
            name=name,
            legendgroup=name,
            showlegend=False,
            mode="markers",
            marker={"color": line.get("color"), "symbol": "circle-open", "size": 9},
            hovertemplate=f"%{{y}} ({label_escape(partial_label)})<extra>{name}</extra>",
        )
    )


def line_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    series: Sequence[tuple[str, str]],
    title: str,
    x_title: str,
    y_title: str,
    key: str,
    comparison: tuple[str, str] | None = None,
    partial: str | None = None,
    partial_label: str = "partial",
) -> None:
    """A line per (column, label) in ``series``; ``comparison`` is drawn dashed and grey behind.

    ``partial`` names a boolean column marking buckets the period cuts (a week or month with
    fewer days than whole ones): they are drawn dotted and lighter, said "partial" on hover and
    in the table, so a short last week never reads as a collapse."""
    fig = go.Figure()
    cut = frame[partial].astype(bool).reset_index(drop=True) if partial else None
    xs = frame[x].reset_index(drop=True)
    markers = len(frame) <= 40
    if comparison is not None:
        column, label = comparison
        _add_line(
            fig,
            xs,
            frame[column].reset_index(drop=True),
            label=label,
            line={"color": COMPARISON_COLOUR, "dash": "dash", "width": 2},
            markers=False,
            partial=cut,
            partial_label=partial_label,
        )
    for i, (column, label) in enumerate(series):
        _add_line(
            fig,
            xs,
            frame[column].reset_index(drop=True),
            label=label,
            line={
                "color": OKABE_ITO[i % len(OKABE_ITO)],
                "dash": DASHES[i % len(DASHES)],
                "width": 3,
            },
            markers=markers,
            partial=cut,
            partial_label=partial_label,
        )
    st.plotly_chart(
        _layout(fig, title, x_title, y_title), key=f"chart-{key}", config={"displaylogo": False}
    )
    labels = {x: x_title, **dict(series)}
    if comparison is not None:
        labels[comparison[0]] = comparison[1]
    table = frame
    if partial:
        labels[partial] = partial_label.capitalize()
        table = frame.assign(**{partial: frame[partial].map({True: "yes", False: ""})})
    table_alternative(table, title, key, labels)


def bar_chart(
    frame: pd.DataFrame,
    *,
    category: str,
    value: str,
    title: str,
    value_title: str,
    key: str,
    horizontal: bool = True,
    category_title: str = "",
) -> None:
    """Bars sorted by value, largest first; horizontal so long names stay readable."""
    ordered = frame.sort_values(value, ascending=horizontal)
    if horizontal:
        trace = go.Bar(
            x=ordered[value],
            y=ordered[category].astype(str).map(label_escape),
            orientation="h",
            marker_color=CURRENT_COLOUR,
        )
        fig = _layout(
            go.Figure(trace),
            title,
            value_title,
            category_title,
            height=max(260, 28 * len(frame) + 90),
        )
    else:
        trace = go.Bar(
            x=ordered[category].astype(str).map(label_escape),
            y=ordered[value],
            marker_color=CURRENT_COLOUR,
        )
        fig = _layout(go.Figure(trace), title, category_title, value_title)
    fig.update_layout(hovermode="closest")
    st.plotly_chart(fig, key=f"chart-{key}", config={"displaylogo": False})
    table_alternative(frame, title, key, {category: category_title, value: value_title})


def stacked_bar_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    stack: str,
    value: str,
    title: str,
    x_title: str,
    y_title: str,
    key: str,
    order: Sequence[str] = (),
) -> None:
    """Vertical bars of ``value`` by ``x``, stacked by ``stack``; each part also has its own
    fill pattern, so parts are told apart without colour."""
    fig = go.Figure()
    parts = list(order) or sorted(frame[stack].dropna().astype(str).unique())
    patterns = ("", "/", ".", "x", "-", "|", "+", "\\")
    for i, part in enumerate(parts):
        rows = frame[frame[stack].astype(str) == part]
        if rows.empty:
            continue
        fig.add_trace(
            go.Bar(
                x=rows[x],
                y=rows[value],
                name=label_escape(part),
                marker={
                    "color": OKABE_ITO[i % len(OKABE_ITO)],
                    "pattern": {"shape": patterns[i % len(patterns)]},
                },
            )
        )
    fig = _layout(fig, title, x_title, y_title)
    # "relative": negative parts (MRR lost) stack below zero, positive above.
    fig.update_layout(barmode="relative")
    st.plotly_chart(fig, key=f"chart-{key}", config={"displaylogo": False})
    table_alternative(frame, title, key, {x: x_title, value: y_title})


def paired_bar_chart(
    frame: pd.DataFrame,
    *,
    category: str,
    first: tuple[str, str],
    second: tuple[str, str],
    title: str,
    value_title: str,
    key: str,
    percent: bool = False,
) -> None:
    """Two bars per category (e.g. a segment against everyone), horizontal, the second grey and
    hatched so the pair reads without colour."""
    ordered = frame.iloc[::-1]
    labels = ordered[category].astype(str).map(label_escape)
    fig = go.Figure()
    for (column, label), style in (
        (second, {"color": COMPARISON_COLOUR, "pattern": {"shape": "/"}}),
        (first, {"color": CURRENT_COLOUR}),
    ):
        fig.add_trace(
            go.Bar(
                x=ordered[column], y=labels, orientation="h", name=label_escape(label), marker=style
            )
        )
    fig = _layout(fig, title, value_title, "", height=max(280, 40 * len(frame) + 110))
    fig.update_layout(barmode="group", hovermode="closest")
    if percent:
        fig.update_xaxes(tickformat=".0%")
    st.plotly_chart(fig, key=f"chart-{key}", config={"displaylogo": False})
    table_alternative(frame, title, key, dict((first, second)))


def heatmap(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    value: str,
    title: str,
    x_title: str,
    y_title: str,
    value_title: str,
    key: str,
    x_order: Sequence | None = None,
    y_order: Sequence | None = None,
    fill_value: float | None = 0,
    aggfunc: str = "sum",
) -> None:
    """A heatmap on the perceptually uniform, colour-blind safe cividis scale.

    ``fill_value=None`` with ``aggfunc="mean"`` (one row per cell) leaves missing cells blank,
    e.g. weeks that have not happened yet.
    """
    fill = float("nan") if fill_value is None else fill_value
    grid = frame.pivot_table(
        index=y, columns=x, values=value, aggfunc=aggfunc, fill_value=fill_value, dropna=False
    )
    if x_order is not None:
        grid = grid.reindex(columns=list(x_order), fill_value=fill)
    if y_order is not None:
        grid = grid.reindex(index=list(y_order), fill_value=fill)
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[label_escape(c) for c in grid.columns],
            y=[label_escape(i) for i in grid.index],
            colorscale="Cividis",
            colorbar={"title": {"text": value_title}},
            hovertemplate=f"{y_title}: %{{y}}<br>{x_title}: %{{x}}<br>{value_title}: %{{z:,.1f}}<extra></extra>",
        )
    )
    fig = _layout(fig, title, x_title, y_title, height=max(320, 24 * len(grid.index) + 120))
    # Rows read top to bottom in the order given (Plotly would put the first at the bottom).
    fig.update_layout(hovermode="closest", yaxis={"autorange": "reversed"})
    st.plotly_chart(fig, key=f"chart-{key}", config={"displaylogo": False})
    table_alternative(frame, title, key, {x: x_title, y: y_title, value: value_title})
