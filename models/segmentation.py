"""Viewer clusters found by k-means, described in words, and turned into editable rule segments.

Input: the frame of ``data.queries.viewer_features.viewer_features`` (one row per viewer active in
a window, indexed by ``viewer_key``). Nothing here reads data or imports streamlit; the caller
owns role checks, auditing and storing fitted models (``ClusterModel.fingerprint`` names a fit).

Fitting (:func:`fit_clusters`):

- features: ``ClusterParams.features``, or by default the behaviour columns (``DEFAULT_FEATURES``
  and every ``genre_share_*`` and ``device_share_*`` column); ``"plan"`` may be asked for and
  becomes one 0/1 column per plan (``plan_is_<plan>``). Heavy-tailed counts (hours, sessions,
  active days, distinct titles, completed, hours per genre) are ``log1p``-ed, missing values
  (tenure of a viewer without a dimension row) take the column's median, then every column is
  standardised (``StandardScaler``). The share columns of one family (genres, devices, plans) are
  then down-weighted by 1/sqrt(columns in the family), so the genre mix as a whole weighs about
  as much as one behaviour column, not a dozen;
- rows are sorted by viewer key first, so the result does not depend on the frame's order;
- ``KMeans`` (``MiniBatchKMeans`` above ``minibatch_above`` viewers) with a fixed seed: a refit
  on the same data with the same parameters gives the same labels. With ``k=None`` every k of
  ``k_range`` (inclusive) is tried on a fixed random sample of ``sample`` viewers (KMeans; all
  viewers when there are no more than that) and the k with the best silhouette on the sample
  is fitted on every viewer (ties: the smaller k). Silhouettes of every candidate come from one
  pass over the sample's pairwise distances (:func:`silhouettes_of`): at 500k viewers the
  choice of k costs a few seconds instead of a minute. Clusters are renumbered by size, 0 the
  largest;
- ``fingerprint``: sha256 of the parameters, the columns, the row count and a checksum of the
  viewer keys and values: the "data build" a fitted version stands for.

Describing (:func:`describe_clusters`): each cluster's mean of every profile column against
the mean of all viewers (ratio) and in standard deviations of all viewers (z); the columns that
differ most (by |z|) are the cluster's distinctive features, and a sentence is built from
templates: a name ("Heavy evening binge-watchers of Documentary on TV") from the hours, the
sessions per active day, the evening and weekend shares, the genre and device shares, tenure
and plan, then the three most distinctive figures ("3.1× the platform's hours watched").

Rules (:func:`cluster_rule`): a shallow decision tree separates the cluster from the rest on
the *rule features* only, those a segment condition can state exactly (``RULE_FEATURES`` below).
Every leaf's path becomes conditions of the segment format (``data/queries/segments.py``), with
thresholds made exact for what they are: counts are whole numbers (``sessions > 3.5`` is
``"min": 4``), hours are kept to two decimals (``hours > t`` is ``"min"`` = t rounded up to 0.01,
``hours <= t`` is ``"max"`` = t rounded down). The leaf whose conditions have the best F1 against
the cluster wins, and conditions that do not help are dropped. Precision and recall are those of
the emitted conditions evaluated on the features (not the tree's predictions), so they are what
the saved segment means. Every split can be said: a device *not* used is a negated device
condition, tenure *below* a number a signup date *after* one, a plan *not* held ``any_of`` the
others.
When no condition implies a session in the window, ``{"type": "sessions", "min": 1}`` is added:
the clusters are of active viewers, and the segment must not take in the inactive ones.

Rule features and the conditions they compile to:

================================  ==============================================================
``hours``                         ``{"type": "watch_hours", "min"/"max": h}`` (two decimals)
``genre_hours_<g>``               ``{"type": "watch_hours", "genre": g, "min"/"max": h}``
``sessions``, ``active_days``,    ``{"type": <same name>, "min"/"max": n}`` (whole numbers)
``distinct_titles``
``completed``                     ``{"type": "completed", "min"/"max": n}`` (completed sessions)
``device_used_<d>`` (share > 0)   ``{"type": "device", "any_of": [d]}`` (used it at all), or
                                  with ``"negate": true`` (did not use it)
``plan_is_<p>``                   ``{"type": "plan", "any_of": [p, ...]}`` (not p: the others)
``tenure_days`` >= N / <= M       ``{"type": "signup_date", "before": end - N days}`` /
                                  ``"after": end - M days`` (inclusive dates, as the compiler
                                  reads them; ``end`` the last day of the features' window)
================================  ==============================================================

As the compiled segment does, a viewer without a ``dim_viewer`` row (no plan) matches no rule
and an unknown signup date meets no date condition (:func:`evaluate_conditions`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

SEGMENT_VERSION = 1

# The column names of data/queries/viewer_features.py (models import nothing of the project).
GENRE_HOURS = "genre_hours_"
GENRE_SHARE = "genre_share_"
DEVICE_SHARE = "device_share_"
OTHER_GENRES = "genre_share_other"
PLAN_IS = "plan_is_"
DEVICE_USED = "device_used_"

DEFAULT_FEATURES: tuple[str, ...] = (
    "hours",
    "sessions",
    "active_days",
    "distinct_titles",
    "completion",
    "weekend_share",
    "evening_share",
    "tenure_days",
)
LOG_FEATURES: frozenset[str] = frozenset(
    {"hours", "sessions", "active_days", "distinct_titles", "completed"}
)
COUNT_RULES: tuple[str, ...] = ("sessions", "active_days", "distinct_titles", "completed")
# Rule features (besides the prefixed families): each is a segment condition's exact meaning.
RULE_FEATURES: tuple[str, ...] = ("hours", *COUNT_RULES, "tenure_days")
# Columns always profiled by describe_clusters (when present), besides the model's own.
PROFILE_EXTRA: tuple[str, ...] = ("hours", "sessions", "active_days", "completion")
_FALLBACK_LABELS: dict[str, str] = {
    "hours": "hours watched",
    "sessions": "sessions",
    "active_days": "active days",
    "distinct_titles": "distinct titles",
    "completed": "completed sessions",
    "completion": "completion rate",
    "weekend_share": "share of sessions at weekends",
    "evening_share": "share of sessions in the evening",
    "tenure_days": "days since signing up",
    OTHER_GENRES: "share of other genres",
}
_DEVICE_NAMES: dict[str, str] = {"tv": "TV", "web": "the web"}


@dataclass(frozen=True)
class ClusterParams:
    """How clusters are fitted. Frozen and hashable (a cache key)."""

    k: int | None = None
    k_range: tuple[int, int] = (2, 8)
    seed: int = 7
    sample: int = 20_000
    minibatch_above: int = 50_000
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.k is not None and (isinstance(self.k, bool) or not 2 <= int(self.k) <= 50):
            raise ValueError("k must be 2 to 50 (or None to choose it)")
        lo, hi = (int(v) for v in self.k_range)
        if not 2 <= lo <= hi <= 50:
            raise ValueError("k_range must be (low, high) with 2 <= low <= high <= 50")
        object.__setattr__(self, "k_range", (lo, hi))
        if int(self.sample) < 100:
            raise ValueError("sample must be at least 100 viewers")
        if int(self.minibatch_above) < 1:
            raise ValueError("minibatch_above must be positive")
        object.__setattr__(self, "features", tuple(str(f) for f in self.features))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["k_range"] = list(self.k_range)
        d["features"] = list(self.features)
        return d


@dataclass(frozen=True, eq=False)
class ClusterModel:
    """A fitted clustering: labels by viewer, sizes, centers in original units, quality.

    ``labels``: cluster of every viewer (index ``viewer_key``, 0 = largest cluster); ``sizes``:
    viewers per cluster; ``centers``: per cluster the mean of every model column in its own
    units (rows 0..k-1); ``features``: the model columns (``plan`` expanded to ``plan_is_*``);
    ``quality``: silhouette (on the sample), inertia (in the scaled space), ``silhouettes`` per
    k when k was chosen, the algorithm, viewers and sample size; ``window``: (start, end) of the
    features when they say.
    """

    labels: pd.Series
    k: int
    silhouette: float
    sizes: tuple[int, ...]
    centers: pd.DataFrame
    params: ClusterParams
    fingerprint: str
    quality: dict[str, Any]
    features: tuple[str, ...]
    window: tuple[date, date] | None = None
    _scaler: Any = field(default=None, repr=False, compare=False)
    _estimator: Any = field(default=None, repr=False, compare=False)
    _order: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _fill: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def assign(self, features: pd.DataFrame) -> pd.Series:
        """The cluster each viewer of ``features`` falls into (same columns as the fit)."""
        raw = _matrix(_model_frame(features, self.features, self._plans()))
        X = _transform(raw, self.features, self._scaler, np.asarray(self._fill))
        raw_labels = self._estimator.predict(X)
        relabel = np.empty(len(self._order), dtype="int64")
        relabel[list(self._order)] = np.arange(len(self._order))
        return pd.Series(relabel[raw_labels], index=features.index, name="cluster")

    def _plans(self) -> list[str]:
        return [f[len(PLAN_IS) :] for f in self.features if f.startswith(PLAN_IS)]


@dataclass(frozen=True)
class FeatureContrast:
    """One column of a cluster against all viewers."""

    feature: str
    label: str
    cluster_mean: float
    overall_mean: float
    ratio: float | None  # cluster mean / overall mean; None when the overall mean is 0
    z: float  # (cluster mean - overall mean) / overall standard deviation


@dataclass(frozen=True)
class ClusterDescription:
    cluster: int
    size: int
    share: float
    name: str  # "Heavy evening binge-watchers of Documentary on TV"
    text: str  # name: the three most distinctive figures
    distinctive: tuple[FeatureContrast, ...]


@dataclass(frozen=True)
class ClusterRule:
    """A rule segment that approximates a cluster, with how well it does."""

    cluster: int
    conditions: tuple[dict[str, Any], ...]
    definition: dict[str, Any]
    precision: float  # matched viewers in the cluster / matched viewers
    recall: float  # matched viewers in the cluster / viewers in the cluster
    matched: int
    cluster_size: int
    text: str  # "at least 5 hours of Documentary and used TV"


# --- fitting ----------------------------------------------------------------------------------
def model_features(features: pd.DataFrame, params: ClusterParams) -> tuple[str, ...]:
    """The model columns the parameters select from ``features`` (``plan`` expanded)."""
    asked = params.features or _default_features(features)
    out: list[str] = []
    for name in asked:
        if name == "plan":
            out.extend(PLAN_IS + p for p in _plans_of(features))
        elif name.startswith(PLAN_IS) and "plan" in features.columns:
            out.append(name)
        elif name not in features.columns:
            raise ValueError(f"Unknown feature {name!r}: not a column of the viewer features.")
        elif not pd.api.types.is_numeric_dtype(features[name]):
            raise ValueError(f"Feature {name!r} is not numeric.")
        else:
            out.append(name)
    if not out:
        raise ValueError("No features to cluster on.")
    return tuple(dict.fromkeys(out))


def _default_features(features: pd.DataFrame) -> tuple[str, ...]:
    cols = [c for c in DEFAULT_FEATURES if c in features.columns]
    cols += [c for c in features.columns if c.startswith(GENRE_SHARE)]
    cols += [c for c in features.columns if c.startswith(DEVICE_SHARE)]
    return tuple(cols)


def _plans_of(features: pd.DataFrame) -> list[str]:
    plans = features.attrs.get("plans")
    if plans:
        return [str(p) for p in plans]
    if "plan" not in features.columns:
        return []
    return sorted(str(p) for p in features["plan"].dropna().unique())


def _model_frame(features: pd.DataFrame, columns: Sequence[str], plans: Sequence[str]):
    data: dict[str, np.ndarray] = {}
    plan = features["plan"] if "plan" in features.columns else None
    for c in columns:
        if c.startswith(PLAN_IS) and c not in features.columns:
            if plan is None:
                raise ValueError("The features have no plan column.")
            data[c] = (plan == c[len(PLAN_IS) :]).to_numpy(dtype="float64")
        else:
            data[c] = features[c].to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(data, index=features.index)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame.to_numpy(dtype="float64"))


def _is_log(column: str) -> bool:
    return column in LOG_FEATURES or column.startswith(GENRE_HOURS)


def _family(column: str) -> str | None:
    for prefix in (GENRE_SHARE, DEVICE_SHARE, PLAN_IS):
        if column.startswith(prefix):
            return prefix
    return None


def _prepare(raw: np.ndarray, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Missing values filled with the column median (0 when all missing); the medians."""
    with np.errstate(all="ignore"):
        fill = np.array(
            [
                float(np.nanmedian(raw[:, j])) if np.isfinite(raw[:, j]).any() else 0.0
                for j in range(raw.shape[1])
            ]
        )
    return fill, np.where(np.isfinite(raw), raw, fill)


def _transform(
    raw: np.ndarray, columns: Sequence[str], scaler: StandardScaler, fill: np.ndarray
) -> np.ndarray:
    X = _logged(np.where(np.isfinite(raw), raw, fill), columns)
    return scaler.transform(X) * _weights(columns)


def _logged(X: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    X = X.copy()
    for j, c in enumerate(columns):
        if _is_log(c):
            X[:, j] = np.log1p(np.clip(X[:, j], 0.0, None))
    return X


def _weights(columns: Sequence[str]) -> np.ndarray:
    families: dict[str | None, int] = {}
    for c in columns:
        families[_family(c)] = families.get(_family(c), 0) + 1
    return np.array(
        [1.0 if _family(c) is None else 1.0 / math.sqrt(families[_family(c)]) for c in columns]
    )


def _estimator(k: int, params: ClusterParams, minibatch: bool):
    if minibatch:
        return MiniBatchKMeans(
            n_clusters=k, random_state=params.seed, n_init=3, batch_size=4096, max_iter=100
        )
    return KMeans(n_clusters=k, random_state=params.seed, n_init=4)


def _checksum(index: np.ndarray, raw: np.ndarray, columns: Sequence[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(list(columns)).encode())
    digest.update(np.ascontiguousarray(index, dtype="int64").tobytes())
    digest.update(np.ascontiguousarray(raw, dtype="float64").tobytes())
    return digest.hexdigest()


def fit_clusters(features: pd.DataFrame, params: ClusterParams) -> ClusterModel:
    """Cluster the viewers of ``features``; see the module docstring."""
    columns = model_features(features, params)
    ordered = features.sort_index(kind="stable")
    if not ordered.index.is_unique:
        raise ValueError("The features have a viewer more than once.")
    frame = _model_frame(ordered, columns, _plans_of(features))
    raw = _matrix(frame)
    n = raw.shape[0]
    if n < 3:
        raise ValueError(f"Too few viewers to cluster ({n}); at least 3 are needed.")
    fill, filled = _prepare(raw, columns)
    logged = _logged(filled, columns)
    del filled
    scaler = StandardScaler().fit(logged)
    X = scaler.transform(logged)
    del logged
    X *= _weights(columns)
    distinct = len(np.unique(X, axis=0)) if n <= 10 * params.k_range[1] else n
    ks = (
        [params.k]
        if params.k is not None
        else list(range(params.k_range[0], params.k_range[1] + 1))
    )
    ks = [k for k in ks if k < distinct] if params.k is None else ks
    if not ks or ks[0] >= distinct:
        raise ValueError(
            f"Too few distinct viewers ({distinct}) for {ks[0] if ks else params.k_range[0]} "
            "clusters."
        )
    minibatch = n > params.minibatch_above
    rng = np.random.default_rng(params.seed)
    sample = np.sort(rng.choice(n, size=min(int(params.sample), n), replace=False))
    Xs = X[sample]
    whole = len(sample) == n
    silhouettes: dict[int, float] = {}
    est: Any = None
    score = -1.0
    if params.k is None:
        # Candidates: on every viewer when the sample is all of them (the chosen one is kept),
        # else on the sample (KMeans), and only the chosen k is fitted on every viewer.
        fits = {k: _estimator(k, params, minibatch and whole).fit(X if whole else Xs) for k in ks}
        labelings = {
            k: (est.predict(Xs) if minibatch and whole else est.labels_) for k, est in fits.items()
        }
        scores = silhouettes_of(Xs, list(labelings.values()))
        silhouettes = {k: round(sc, 6) for k, sc in zip(labelings, scores, strict=True)}
        k = max(ks, key=lambda c: (scores[ks.index(c)], -c))
        if whole:
            est, score = fits[k], scores[ks.index(k)]
    else:
        k = int(params.k)
    if est is None:
        est = _estimator(k, params, minibatch).fit(X)
        (score,) = silhouettes_of(Xs, [est.predict(Xs)])
    raw_labels = est.predict(X) if minibatch else est.labels_
    counts = np.bincount(raw_labels, minlength=k)
    order = tuple(sorted(range(k), key=lambda c: (-int(counts[c]), c)))
    relabel = np.empty(k, dtype="int64")
    relabel[list(order)] = np.arange(k)
    labels = relabel[raw_labels]
    sizes = tuple(int(s) for s in np.bincount(labels, minlength=k))
    centers = frame.groupby(labels).mean().reindex(range(k))
    centers.index = pd.RangeIndex(k, name="cluster")
    # inertia in the scaled space, of the labels kept (MiniBatchKMeans' own is of its batches)
    inertia = float(((X - est.cluster_centers_[raw_labels]) ** 2).sum())
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "params": params.as_dict(),
                "columns": list(columns),
                "rows": n,
                "data": _checksum(ordered.index.to_numpy(), raw, columns),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    start, end = features.attrs.get("start"), features.attrs.get("end")
    quality: dict[str, Any] = {
        "silhouette": round(float(score), 6),
        "inertia": round(inertia, 3),
        "algorithm": "MiniBatchKMeans" if minibatch else "KMeans",
        "viewers": n,
        "sample": len(sample),
    }
    if params.k is None:
        quality["silhouettes"] = silhouettes
    return ClusterModel(
        labels=pd.Series(labels, index=ordered.index, name="cluster"),
        k=k,
        silhouette=float(score),
        sizes=sizes,
        centers=centers,
        params=params,
        fingerprint=fingerprint,
        quality=quality,
        features=columns,
        window=(start, end) if isinstance(start, date) and isinstance(end, date) else None,
        _scaler=scaler,
        _estimator=est,
        _order=order,
        _fill=tuple(float(f) for f in fill),
    )


def silhouettes_of(X: np.ndarray, labelings: Sequence[np.ndarray], chunk: int = 512) -> list[float]:
    """The mean silhouette of each labeling of the rows of ``X`` (Euclidean), in one pass.

    What ``sklearn.metrics.silhouette_score`` gives for each, but the pairwise distances (the
    cost: n^2) are computed once, a block of rows at a time, and summed per cluster of every
    labeling by one matrix product, instead of once per labeling with a working memory of up
    to 1 GB. A viewer alone in its cluster scores 0; a labeling of one cluster scores -1.
    """
    n = len(X)
    blocks, offsets, total = [], [], 0
    for labels in labelings:
        labels = np.asarray(labels, dtype="int64")
        k = int(labels.max()) + 1 if n else 0
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        blocks.append(onehot)
        offsets.append(total)
        total += k
    if not n or not total:
        return [-1.0 for _ in labelings]
    members = np.hstack(blocks)
    sq = np.einsum("ij,ij->i", X, X)
    sums = np.empty((n, total))
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        d = sq[lo:hi, None] + sq[None, :] - 2.0 * (X[lo:hi] @ X.T)
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        d[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        sums[lo:hi] = d @ members
    out = []
    rows = np.arange(n)
    for labels, block, offset in zip(labelings, blocks, offsets, strict=True):
        labels = np.asarray(labels, dtype="int64")
        k = block.shape[1]
        counts = block.sum(axis=0)
        if int((counts > 0).sum()) < 2:
            out.append(-1.0)
            continue
        per = sums[:, offset : offset + k]
        own_count = counts[labels]
        a = per[rows, labels] / np.maximum(own_count - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_other = np.where(counts > 0, per / counts, np.inf)
        mean_other[rows, labels] = np.inf
        b = mean_other.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (b - a) / np.maximum(a, b)
        s = np.where((own_count > 1) & np.isfinite(s), s, 0.0)
        out.append(float(s.mean()))
    return out


# --- describing -------------------------------------------------------------------------------
def _labels_of(features: pd.DataFrame) -> Mapping[str, str]:
    return features.attrs.get("labels") or {}


def feature_label(column: str, labels: Mapping[str, str] | None = None) -> str:
    if labels and column in labels:
        return str(labels[column])
    if column in _FALLBACK_LABELS:
        return _FALLBACK_LABELS[column]
    if column.startswith(DEVICE_SHARE):
        device = column[len(DEVICE_SHARE) :]
        return "share on " + _DEVICE_NAMES.get(device, device)
    for prefix, words in (
        (GENRE_HOURS, "hours of "),
        (GENRE_SHARE, "share of "),
        (PLAN_IS, "share on the plan "),
    ):
        if column.startswith(prefix):
            return words + column[len(prefix) :]
    return column.replace("_", " ")


def _aligned(model: ClusterModel, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """``features`` in the model's row order and the labels; refuses other viewers."""
    if len(features) != len(model.labels):
        raise ValueError("These features are not the ones the model was fitted on.")
    ordered = features.sort_index(kind="stable")
    if not ordered.index.equals(model.labels.index):
        raise ValueError("These features are not the ones the model was fitted on.")
    return ordered, model.labels.to_numpy()


def _profile_columns(model: ClusterModel, features: pd.DataFrame) -> list[str]:
    cols = [c for c in PROFILE_EXTRA if c in features.columns]
    cols += [c for c in model.features if c not in cols]
    return cols


def _fmt_ratio(r: float) -> str:
    if r >= 10:
        return f"{r:.0f}×"
    text = f"{r:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "×"


def describe_clusters(model: ClusterModel, features: pd.DataFrame) -> list[ClusterDescription]:
    """Every cluster in words, largest first; see the module docstring."""
    ordered, labels = _aligned(model, features)
    names = _labels_of(features)
    columns = _profile_columns(model, ordered)
    frame = _model_frame(ordered, columns, _plans_of(features))
    values = _matrix(frame)
    overall = np.nanmean(values, axis=0)
    spread = np.nanstd(values, axis=0)
    n = len(labels)
    out: list[ClusterDescription] = []
    for c in range(model.k):
        mask = labels == c
        size = int(mask.sum())
        means = np.nanmean(values[mask], axis=0) if size else np.full(len(columns), np.nan)
        contrasts = []
        for j, col in enumerate(columns):
            om, cm, sd = float(overall[j]), float(means[j]), float(spread[j])
            if not (math.isfinite(om) and math.isfinite(cm)):
                continue
            ratio = cm / om if om > 0 else None
            z = (cm - om) / sd if sd > 0 else 0.0
            contrasts.append(FeatureContrast(col, feature_label(col, names), cm, om, ratio, z))
        contrasts.sort(key=lambda f: (-abs(f.z), f.feature))
        distinctive = tuple(f for f in contrasts if abs(f.z) >= 0.25)[:6]
        name = _persona({f.feature: f for f in contrasts}, names)
        figures = [f for f in distinctive if f.ratio is not None and f.ratio > 0][:3]
        facts = [
            (
                f"{_fmt_ratio(f.ratio)} the platform's {f.label}"
                if i == 0
                else f"{_fmt_ratio(f.ratio)} {f.label}"
            )
            for i, f in enumerate(figures)
            if f.ratio is not None
        ]
        text = f"{name}: {', '.join(facts)}" if facts else f"{name}: close to the platform average"
        out.append(
            ClusterDescription(
                cluster=c,
                size=size,
                share=size / n if n else 0.0,
                name=name,
                text=text,
                distinctive=distinctive,
            )
        )
    return out


def _persona(stats: Mapping[str, FeatureContrast], names: Mapping[str, str]) -> str:
    """A short name from templates: intensity, time of week, tenure, noun, genre, device, plan."""

    def ratio(col: str) -> float:
        f = stats.get(col)
        return f.ratio if f is not None and f.ratio is not None else 1.0

    def z(col: str) -> float:
        f = stats.get(col)
        return f.z if f is not None else 0.0

    def mean(col: str) -> float:
        f = stats.get(col)
        return f.cluster_mean if f is not None else 0.0

    words: list[str] = []
    if z("tenure_days") >= 0.75:
        words.append("long-standing")
    elif z("tenure_days") <= -0.75:
        words.append("new")
    if ratio("hours") >= 1.75:
        words.append("heavy")
    elif "hours" in stats and ratio("hours") <= 0.5:
        words.append("light")
    times = [
        t
        for t, col in (("evening", "evening_share"), ("weekend", "weekend_share"))
        if z(col) >= 0.5 and mean(col) >= 0.5
    ]
    if times:
        words.append(" and ".join(times))
    per_day = {
        side: (
            getattr(stats["sessions"], side) / getattr(stats["active_days"], side)
            if "sessions" in stats
            and "active_days" in stats
            and getattr(stats["active_days"], side) > 0
            else 0.0
        )
        for side in ("cluster_mean", "overall_mean")
    }
    binge = per_day["overall_mean"] > 0 and per_day["cluster_mean"] >= 1.4 * per_day["overall_mean"]
    words.append("binge-watchers" if binge else "viewers")
    genres = sorted(
        (
            f
            for col, f in stats.items()
            if col.startswith(GENRE_SHARE)
            and col != OTHER_GENRES
            and f.cluster_mean >= 0.25
            and (f.ratio or 0) >= 1.5
        ),
        key=lambda f: (-f.z, f.feature),
    )[:2]
    if genres:
        words.append("of " + " and ".join(g.feature[len(GENRE_SHARE) :] for g in genres))
    devices = sorted(
        (
            f
            for col, f in stats.items()
            if col.startswith(DEVICE_SHARE) and f.cluster_mean >= 0.4 and (f.ratio or 0) >= 1.3
        ),
        key=lambda f: (-f.z, f.feature),
    )[:1]
    if devices:
        label = feature_label(devices[0].feature, names)
        device = label[len("share on ") :] if label.startswith("share on ") else label
        words.append(f"on {device}")
    plans = sorted(
        (
            f
            for col, f in stats.items()
            if col.startswith(PLAN_IS) and f.cluster_mean >= 0.6 and (f.ratio or 0) >= 1.5
        ),
        key=lambda f: (-f.z, f.feature),
    )[:1]
    if plans:
        words.append(f"on the {plans[0].feature[len(PLAN_IS) :]} plan")
    if words == ["viewers"]:
        words = ["typical", "viewers"]
    text = " ".join(words)
    return text[0].upper() + text[1:]


# --- rules ------------------------------------------------------------------------------------
def rule_features(features: pd.DataFrame) -> pd.DataFrame:
    """The columns a segment condition can state exactly (see the module docstring's table)."""
    data: dict[str, np.ndarray] = {}
    for c in RULE_FEATURES:
        if c in features.columns:
            values = features[c].to_numpy(dtype="float64", na_value=np.nan)
            # Unknown tenure: no signup date, never "signed up before" anything.
            data[c] = np.where(np.isfinite(values), values, -1.0) if c == "tenure_days" else values
    for c in features.columns:
        if c.startswith(GENRE_HOURS):
            data[c] = features[c].to_numpy(dtype="float64")
    for c in features.columns:
        if c.startswith(DEVICE_SHARE):
            used = features[c].to_numpy(dtype="float64") > 0
            data[DEVICE_USED + c[len(DEVICE_SHARE) :]] = used.astype("float64")
    if "plan" in features.columns:
        for p in _plans_of(features):
            data[PLAN_IS + p] = (features["plan"] == p).to_numpy(dtype="float64")
    return pd.DataFrame(data, index=features.index)


def _floor2(t: float) -> float:
    return math.floor(round(t * 100, 6)) / 100


def _ceil2(t: float) -> float:
    return math.ceil(round(t * 100, 6)) / 100


@dataclass
class _Leaf:
    """A leaf's conditions, merged per condition, before they are emitted."""

    bounds: dict[str, list[float | None]] = field(default_factory=dict)  # feature -> [min, max]
    used: set[str] = field(default_factory=set)  # devices used
    unused: set[str] = field(default_factory=set)  # devices not used
    plans: set[str] | None = None

    def add(self, feature: str, above: bool, t: float, all_plans: Sequence[str]) -> None:
        if feature.startswith(DEVICE_USED):
            (self.used if above else self.unused).add(feature[len(DEVICE_USED) :])
            return
        if feature.startswith(PLAN_IS):
            plan = feature[len(PLAN_IS) :]
            keep = {plan} if above else set(all_plans) - {plan}
            self.plans = keep if self.plans is None else self.plans & keep
            return
        lo, hi = self.bounds.setdefault(feature, [None, None])
        if feature in COUNT_RULES or feature == "tenure_days":
            value: float = math.floor(t) + 1 if above else math.floor(t)
        else:
            value = _ceil2(t) if above else _floor2(t)
        if above:
            self.bounds[feature][0] = value if lo is None else max(lo, value)
        else:
            self.bounds[feature][1] = value if hi is None else min(hi, value)

    @property
    def empty(self) -> bool:
        """No viewer can meet these conditions (contradictory bounds, devices or plans)."""
        if self.plans is not None and not self.plans:
            return True
        if self.used & self.unused:
            return True
        return any(lo is not None and hi is not None and lo > hi for lo, hi in self.bounds.values())


def _conditions(leaf: _Leaf, end: date | None, all_plans: Sequence[str]) -> list[dict[str, Any]]:
    """The leaf as segment conditions, in a fixed order; bounds that hold for everyone dropped."""
    out: list[dict[str, Any]] = []
    for feature in sorted(leaf.bounds, key=_rule_order):
        lo, hi = leaf.bounds[feature]
        if feature == "tenure_days":
            continue
        if lo is not None and lo <= 0:
            lo = None  # at least 0: every viewer
        if lo is None and hi is None:
            continue
        cond: dict[str, Any]
        if feature == "hours" or feature.startswith(GENRE_HOURS):
            cond = {"type": "watch_hours"}
            if feature.startswith(GENRE_HOURS):
                cond["genre"] = feature[len(GENRE_HOURS) :]
        else:
            cond = {"type": feature}
        integer = feature in COUNT_RULES
        if lo is not None:
            cond["min"] = int(lo) if integer else float(lo)
        if hi is not None:
            cond["max"] = int(hi) if integer else float(hi)
        out.append(cond)
    for device in sorted(leaf.used):
        out.append({"type": "device", "any_of": [device]})
    for device in sorted(leaf.unused):
        out.append({"type": "device", "any_of": [device], "negate": True})
    if leaf.plans is not None and set(leaf.plans) != set(all_plans):
        out.append({"type": "plan", "any_of": sorted(leaf.plans)})
    if "tenure_days" in leaf.bounds:
        if end is None:
            raise ValueError("A tenure condition needs the end of the features' window.")
        # tenure >= N  <=>  signup_date <= end - N;  tenure <= M  <=>  signup_date >= end - M
        lo, hi = leaf.bounds["tenure_days"]
        cond = {"type": "signup_date"}
        if hi is not None:
            cond["after"] = (end - timedelta(days=int(hi))).isoformat()
        if lo is not None:
            cond["before"] = (end - timedelta(days=int(lo))).isoformat()
        out.append(cond)
    return out


def _rule_order(feature: str) -> tuple[int, str]:
    order = {"hours": 0, "sessions": 1, "active_days": 2, "distinct_titles": 3, "completed": 4}
    return (order.get(feature, 5), feature)


def evaluate_conditions(
    conditions: Sequence[Mapping[str, Any]], features: pd.DataFrame, end: date | None = None
) -> np.ndarray:
    """Which viewers of ``features`` meet every condition: what the segment means for them.

    As data/queries/segments.py compiles it: bounds are inclusive, a viewer without a
    ``dim_viewer`` row (no plan) is in no segment, an unknown signup date meets no date
    condition, and a negated condition is its complement among the other viewers.
    """
    population = (
        features["plan"].notna().to_numpy()
        if "plan" in features.columns
        else np.ones(len(features), dtype=bool)
    )
    mask = population.copy()
    for cond in conditions:
        kind = cond["type"]
        if kind in ("watch_hours", *COUNT_RULES):
            column = kind
            if kind == "watch_hours":
                column = GENRE_HOURS + cond["genre"] if "genre" in cond else "hours"
            if column not in features.columns:
                raise ValueError(f"The features have no column {column!r} for {dict(cond)}.")
            x = features[column].to_numpy(dtype="float64")
            met = np.ones(len(features), dtype=bool)
            if "min" in cond:
                met &= x >= cond["min"]
            if "max" in cond:
                met &= x <= cond["max"]
        elif kind == "device":
            met = np.zeros(len(features), dtype=bool)
            for device in cond["any_of"]:
                col = DEVICE_SHARE + device
                if col in features.columns:
                    met |= features[col].to_numpy(dtype="float64") > 0
        elif kind == "plan":
            met = features["plan"].isin(list(cond["any_of"])).to_numpy()
        elif kind == "signup_date":
            if end is None:
                raise ValueError("A signup date condition needs the end of the window.")
            tenure = features["tenure_days"].to_numpy(dtype="float64")
            known = np.isfinite(tenure)
            tenure = np.where(known, tenure, 0.0)
            met = known.copy()
            if "before" in cond:  # signup_date <= before  <=>  tenure >= end - before
                met &= tenure >= (end - date.fromisoformat(cond["before"])).days
            if "after" in cond:  # signup_date >= after  <=>  tenure <= end - after
                met &= tenure <= (end - date.fromisoformat(cond["after"])).days
        else:
            raise ValueError(f"Unknown condition type {kind!r}")
        mask &= (population & ~met) if cond.get("negate") else met
    return mask


def _implies_activity(conditions: Sequence[Mapping[str, Any]]) -> bool:
    for cond in conditions:
        if cond.get("negate"):
            continue
        if cond["type"] == "device":
            return True
        if cond["type"] in ("watch_hours", *COUNT_RULES) and cond.get("min", 0) > 0:
            return True
    return False


def _with_activity(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if _implies_activity(conditions):
        return conditions
    for cond in conditions:
        if cond["type"] == "sessions":
            cond["min"] = 1
            return conditions
    return [{"type": "sessions", "min": 1}, *conditions]


def _score(mask: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    matched = int(mask.sum())
    hits = int((mask & target).sum())
    precision = hits / matched if matched else 0.0
    recall = hits / int(target.sum()) if target.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall


def _leaf_paths(tree: DecisionTreeClassifier) -> list[list[tuple[int, bool, float]]]:
    t = tree.tree_
    paths: list[list[tuple[int, bool, float]]] = []
    stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if t.children_left[node] == -1:
            paths.append(path)
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        stack.append((int(t.children_right[node]), [*path, (f, True, thr)]))
        stack.append((int(t.children_left[node]), [*path, (f, False, thr)]))
    return paths


def cluster_rule(
    model: ClusterModel,
    features: pd.DataFrame,
    cluster: int,
    *,
    max_depth: int = 3,
    window: Mapping[str, Any],
    end: date | None = None,
) -> ClusterRule:
    """The rule segment that best separates ``cluster`` from the other viewers.

    ``window`` goes into the definition as it is (``{"last_days": 90}``, or ``{"start": ...,
    "end": ...}`` in ISO dates) and must describe the features' window: one that disagrees with
    the features' start and end is refused. ``{"last_days": N}`` means the N days up to the
    extract's last day with data when the segment is evaluated, so it matches features whose
    ``end`` is that day; explicit dates match whatever the features cover. ``end``: the last
    day of the window (default: the features' ``attrs["end"]``), which signup dates are
    counted back from.
    """
    if not 0 <= int(cluster) < model.k:
        raise ValueError(f"There is no cluster {cluster} (the model has {model.k}).")
    if not 1 <= int(max_depth) <= 6:
        raise ValueError("max_depth must be 1 to 6")
    ordered, labels = _aligned(model, features)
    end = end if end is not None else ordered.attrs.get("end", features.attrs.get("end"))
    start = features.attrs.get("start")
    window = dict(window)
    if isinstance(start, date) and isinstance(end, date):
        days = (end - start).days + 1
        if "last_days" in window and int(window["last_days"]) != days:
            raise ValueError(
                f"The window says the last {window['last_days']} days, but the features cover "
                f"{days} days ({start.isoformat()} to {end.isoformat()})."
            )
        if "start" in window and (str(window["start"]), str(window.get("end"))) != (
            start.isoformat(),
            end.isoformat(),
        ):
            raise ValueError(
                f"The window is {window['start']} to {window.get('end')}, but the features "
                f"cover {start.isoformat()} to {end.isoformat()}."
            )
    rules = rule_features(ordered)
    plans = _plans_of(features)
    target = labels == int(cluster)
    tree = DecisionTreeClassifier(
        max_depth=int(max_depth),
        min_samples_leaf=max(5, len(rules) // 1000),
        class_weight="balanced",
        random_state=model.params.seed,
    )
    X = rules.to_numpy(dtype="float64")
    tree.fit(X, target)
    names = list(rules.columns)
    best: tuple[tuple[float, int], list[dict[str, Any]]] | None = None
    seen: set[str] = set()
    for path in _leaf_paths(tree):
        leaf = _Leaf()
        for f, above, thr in path:
            leaf.add(names[f], above, thr, plans)
        if leaf.empty:
            continue
        conditions = _simplify(_conditions(leaf, end, plans), ordered, target, end)
        key = json.dumps(conditions, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        f1 = _score(evaluate_conditions(conditions, ordered, end), target)[0]
        rank = (f1, -len(conditions))
        if best is None or rank > best[0]:
            best = (rank, conditions)
    conditions = best[1] if best is not None else []
    conditions = _with_activity([dict(c) for c in conditions])
    mask = evaluate_conditions(conditions, ordered, end)
    _, precision, recall = _score(mask, target)
    definition = {
        "version": SEGMENT_VERSION,
        "window": window,
        "match": {"op": "and", "items": [dict(c) for c in conditions]},
    }
    return ClusterRule(
        cluster=int(cluster),
        conditions=tuple(conditions),
        definition=definition,
        precision=precision,
        recall=recall,
        matched=int(mask.sum()),
        cluster_size=int(target.sum()),
        text=" and ".join(condition_text(c, _labels_of(features)) for c in conditions),
    )


def _simplify(
    conditions: list[dict[str, Any]], features: pd.DataFrame, target: np.ndarray, end: date | None
) -> list[dict[str, Any]]:
    """Drop conditions whose removal does not lower the F1 (greedily, last first)."""
    current = list(conditions)
    score = _score(evaluate_conditions(current, features, end), target)[0]
    for i in range(len(current) - 1, -1, -1):
        trial = current[:i] + current[i + 1 :]
        trial_score = _score(evaluate_conditions(trial, features, end), target)[0]
        if trial and trial_score >= score:
            current, score = trial, trial_score
    return current


_SINGULAR = {
    "hours": "hour",
    "sessions": "session",
    "active days": "active day",
    "distinct titles": "distinct title",
    "completed sessions": "completed session",
}


def condition_text(cond: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> str:
    """A condition in words ("at least 4 sessions", "used TV", "plan premium or basic")."""
    kind = cond["type"]
    if kind == "device":
        devices = [
            feature_label(DEVICE_SHARE + d, labels).removeprefix("share on ")
            for d in cond["any_of"]
        ]
        return ("did not use " if cond.get("negate") else "used ") + " or ".join(devices)
    if kind == "plan":
        return "plan " + " or ".join(cond["any_of"])
    if kind == "signup_date":
        if "after" in cond and "before" in cond:
            return f"signed up from {cond['after']} to {cond['before']}"
        if "after" in cond:
            return f"signed up on or after {cond['after']}"
        return f"signed up on or before {cond['before']}"
    what = {
        "watch_hours": "hours" + (f" of {cond['genre']}" if "genre" in cond else ""),
        "sessions": "sessions",
        "active_days": "active days",
        "distinct_titles": "distinct titles",
        "completed": "completed sessions",
    }.get(kind, kind)
    lo, hi = cond.get("min"), cond.get("max")
    if hi == 0:
        return f"no {what}"
    if (lo if hi is None else hi) == 1 and what in _SINGULAR:
        what = _SINGULAR[what]
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g} {what}"
    if lo is not None:
        return f"at least {lo:g} {what}"
    return f"at most {hi:g} {what}"


__all__ = [
    "DEFAULT_FEATURES",
    "RULE_FEATURES",
    "SEGMENT_VERSION",
    "ClusterDescription",
    "ClusterModel",
    "ClusterParams",
    "ClusterRule",
    "FeatureContrast",
    "cluster_rule",
    "condition_text",
    "describe_clusters",
    "evaluate_conditions",
    "fit_clusters",
    "model_features",
    "rule_features",
    "silhouettes_of",
]
