"""Clusters on the Segments page: the model version in use, its clusters in plain words, fitting
a new version (``change_models``: analysts and admins; audited in the model registry), and any
cluster turned into an editable rule segment.

A fit is deterministic (fixed seed, features from one extract build), so the version in use is
reproduced from its parameters when someone asks for a cluster's rule; only ``change_models``
records a new version.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from components import segment_builder
from components.context import AppContext, app_context, data_scope
from components.text import md_escape
from data.queries.filters import ALL_CREATORS
from data.queries.segments import describe, parse_definition
from data.queries.viewer_features import viewer_features
from models.segmentation import ClusterParams, cluster_rule, describe_clusters, fit_clusters
from security.permissions import AccessDenied, Principal

DEFAULT_WINDOW_DAYS = 90


@st.cache_resource(max_entries=2, show_spinner=False)
def _fitted(
    generation: str, last_day: date, window_days: int, k: int | None
) -> tuple[Any, pd.DataFrame]:
    """The model and the features it was fitted on (cached per extract build and parameters)."""
    ctx = app_context()
    start = last_day - timedelta(days=window_days - 1)
    features = viewer_features(ctx.store.cursor(), start=start, end=last_day, scope=ALL_CREATORS)
    return fit_clusters(features, ClusterParams(k=k)), features


def section(ctx: AppContext, principal: Principal, last_day: date) -> None:
    if not data_scope(principal).is_all:
        st.error("Clusters describe every viewer: they are for internal roles.", icon="🚫")
        return
    store = ctx.security.segments
    in_use = store.model_in_use()
    if in_use is None:
        st.info(
            "No clusters have been fitted yet."
            + (" Fit them below." if principal.may("change_models") else " An analyst fits them."),
            icon="🧠",
        )
    else:
        _show(in_use)
    if principal.may("change_models"):
        _fit_form(ctx, principal, last_day)
    if in_use is not None:
        _to_rule(ctx, in_use, last_day)


def _show(in_use) -> None:
    params = in_use.params
    quality = in_use.quality
    st.markdown(
        f"**Model in use: version {in_use.id}**, fitted by {md_escape(in_use.fitted_by)} on "
        f"{in_use.fitted_at:%d %b %Y %H:%M} UTC — {params.get('k', '?')} clusters over the last "
        f"{params.get('window_days', '?')} days; silhouette {quality.get('silhouette', float('nan')):.2f}; "
        f"data build `{str(in_use.data_build)[:12]}`."
    )
    rows = in_use.summary.get("clusters", [])
    if rows:
        st.dataframe(
            pd.DataFrame(rows)[["cluster", "text", "size", "share"]],
            hide_index=True,
            column_config={
                "cluster": st.column_config.NumberColumn("#", format="%d"),
                "text": st.column_config.TextColumn("Who they are", width="large"),
                "size": st.column_config.NumberColumn("Viewers", format="%d"),
                "share": st.column_config.NumberColumn("Share", format="percent"),
            },
        )


def _fit_form(ctx: AppContext, principal: Principal, last_day: date) -> None:
    with st.form("fit-clusters"):
        st.subheader("Fit a new version")
        left, right = st.columns(2)
        window_days = left.number_input(
            "Behaviour over the last … days", min_value=7, max_value=730, value=DEFAULT_WINDOW_DAYS
        )
        k = right.selectbox(
            "Clusters",
            [None, 2, 3, 4, 5, 6, 7, 8],
            format_func=lambda v: "choose by silhouette (2–8)" if v is None else str(v),
        )
        go = st.form_submit_button("Fit", type="primary")
    if not go:
        return
    with st.status("Fitting clusters…", expanded=True) as status:
        st.write("Reading each active viewer's behaviour…")
        try:
            model, features = _fitted(ctx.store.generation(), last_day, int(window_days), k)
        except ValueError as exc:
            status.update(label="Not fitted", state="error")
            st.error(f"Clusters could not be fitted: {md_escape(exc)}", icon="🚫")
            return
        st.write(f"Fitted {model.k} clusters on {len(features):,} viewers.")
        descriptions = describe_clusters(model, features)
        try:
            version = ctx.security.segments.record_model(
                principal,
                params={
                    "window_days": int(window_days),
                    "k": model.k,
                    "k_chosen": k is None,
                    "last_day": last_day.isoformat(),
                    "seed": model.params.seed,
                },
                data_build=model.fingerprint,
                quality={
                    key: value
                    for key, value in model.quality.items()
                    if isinstance(value, int | float)
                },
                summary={
                    "clusters": [
                        {
                            "cluster": d.cluster,
                            "text": d.text,
                            "size": int(d.size),
                            "share": float(d.share),
                        }
                        for d in descriptions
                    ]
                },
            )
        except AccessDenied:
            status.update(label="Your role cannot fit models.", state="error")
            return
        status.update(label=f"Version {version.id} is in use.", state="complete")
    st.rerun()


def _to_rule(ctx: AppContext, in_use, last_day: date) -> None:
    st.subheader("Turn a cluster into a rule segment")
    rows = in_use.summary.get("clusters", [])
    if not rows:
        return
    texts = {r["cluster"]: r["text"] for r in rows}
    cluster = st.selectbox(
        "Cluster", list(texts), format_func=lambda c: f"#{c}: {texts[c]}", key="rule-cluster"
    )
    found = st.session_state.get("cluster-rule")
    if st.button("Find the rule", key="rule-find"):
        found = _find_rule(ctx, in_use, last_day, int(cluster))
        st.session_state["cluster-rule"] = found
    if not found or found["cluster"] != cluster:
        return
    if found["changed"]:
        st.warning(
            "The data changed since this version was fitted (a sync ran): the rule is found on "
            "today's data. Fit a new version to describe it.",
            icon="🔄",
        )
    definition = parse_definition(found["definition"])
    st.markdown(f"**{md_escape(describe(definition))}**")
    st.caption(
        f"Precision {found['precision']:.0%} (of the viewers the rule finds, this share is in the "
        f"cluster) · recall {found['recall']:.0%} (of the cluster, this share the rule finds)."
    )
    st.button(
        "Open in the builder", key="rule-open", on_click=_open_rule, args=(definition.to_json(),)
    )


def _open_rule(document: dict) -> None:
    segment_builder.load(document)
    st.session_state.pop("segment-editing", None)
    st.session_state["segments-view"] = "build"


def _find_rule(ctx: AppContext, in_use, last_day: date, cluster: int) -> dict:
    params = in_use.params
    model_day = date.fromisoformat(params.get("last_day", last_day.isoformat()))
    window_days = int(params.get("window_days", DEFAULT_WINDOW_DAYS))
    k = None if params.get("k_chosen") else int(params.get("k"))
    with st.spinner("Reproducing the model and finding the thresholds that separate the cluster…"):
        model, features = _fitted(ctx.store.generation(), model_day, window_days, k)
        # The model's own dates, not "the last N days": after a sync those would be other days.
        start = model_day - timedelta(days=window_days - 1)
        rule = cluster_rule(
            model,
            features,
            cluster,
            window={"start": start.isoformat(), "end": model_day.isoformat()},
        )
    return {
        "cluster": cluster,
        "definition": rule.definition,
        "precision": float(rule.precision),
        "recall": float(rule.recall),
        "changed": model.fingerprint != in_use.data_build,
    }
