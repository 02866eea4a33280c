"""A title's first-28-day views and completion, predicted from what is known before release.

Input: the frames of ``data.queries.title_features.title_features`` (titles with their attributes
and first-window results, and the daily audience). Nothing here reads data or imports streamlit.

Features, each known on the release day (``FEATURES``; money ones only when given):

- the title: primary genre, every genre it carries (one flag per genre), kind, runtime, language,
  maturity, season and episode numbers (episodes), release month and weekday;
- track record: the median log first-window views of the creator's earlier titles and of the
  series' earlier episodes, and how many there were, counting only titles whose window had
  closed before this release (what a planner could have looked up that day);
- the audience it is released into: mean daily views of the catalog over the 28 days before;
- budget and licensing cost (log), when the caller may see money;
- with ``early_days`` = k > 0, its views in the first k days (a prediction in its first week).

Targets: log(1 + views in the first 28 days) and completion (completed / starts in the window),
each with scikit-learn's ``HistGradientBoostingRegressor`` (shallow trees, strong
regularisation: a catalog has hundreds of titles, not millions; native categorical support and
missing values, so a new creator or a movie's missing episode number needs no imputation).

Validation is by release date, never a random split: the titles released in the last
``test_share`` of the labelled release dates are held out, and the model is trained only on
titles whose 28-day window had closed before the first of them (release + 28 <= cutoff), as it
would have been on the cutoff day. Reported against the baseline a planner would use, the median
of the title's primary genre among the training titles (the overall median for an unseen genre):
MAE of log views (0.5 = typically 1.65x off), MAPE and median APE of views, and the coverage of
the 80% interval. On the demo extracts the model beats the genre median on MAE of log views,
completion and coverage (with or without the money features); on percentage errors of raw views
it does not reliably: its MAPE is the worse one (MAPE punishes over-predicting the smallest
titles, and the genre median predicts low) and its median APE is about the same without the
money features (``evaluate``; figures in tests/unit/models/test_success.py's output).

Demo data, for what the features can find: the demo generator draws a title's popularity from a
random rank (shared by a series' episodes), the creator's kind (studios reach further), the
episode's position and the platform's size, not from its genre, month or weekday: the series'
and creator's track records, episode number, kind and the audience carry the signal there.

The interval: residual quantiles (split-conformal in time order): the training titles are cut
into ``folds`` + 1 blocks by release date, each block after the first is predicted by a model
trained on the blocks before it, and the 10th and 90th percentiles of those out-of-time residuals
are added to the point prediction. The baseline's interval is the genre's 10th-90th percentile.

Explanations: globally, permutation importance on the held-out titles (how much the held-out
error grows when a feature's values are shuffled); per prediction, a local sensitivity: the
change in the prediction when one feature at a time takes its typical value (training median, or
most common category) instead of the title's own — how far that factor moves this title from
an ordinary one. These do not add up to the prediction (the model is not additive), and say so.
``what_if`` re-predicts a planned title with release month, weekday, runtime or genre changed.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

WINDOW_DAYS = 28
AUDIENCE_DAYS = 28
CATEGORICAL: tuple[str, ...] = ("genre", "kind", "language", "maturity")
BASE_NUMERIC: tuple[str, ...] = (
    "runtime_min",
    "season",
    "episode",
    "release_month",
    "release_weekday",
    "n_genres",
    "creator_prior_titles",
    "creator_prior_median",
    "series_prior_titles",
    "series_prior_median",
    "audience_before",
)
MONEY_FEATURES: tuple[str, ...] = ("log_budget", "log_licensing_cost")
TARGETS: tuple[str, ...] = ("log_views", "completion")
FEATURE_LABELS: dict[str, str] = {
    "genre": "genre",
    "kind": "kind",
    "language": "language",
    "maturity": "maturity rating",
    "runtime_min": "runtime",
    "season": "season number",
    "episode": "episode number",
    "release_month": "release month",
    "release_weekday": "release weekday",
    "n_genres": "number of genres",
    "creator_prior_titles": "creator's earlier titles",
    "creator_prior_median": "creator's track record",
    "series_prior_titles": "series' earlier episodes",
    "series_prior_median": "series' track record",
    "audience_before": "audience at release",
    "log_budget": "budget",
    "log_licensing_cost": "licensing cost",
}
WHAT_IF_FIELDS: tuple[str, ...] = ("release_month", "release_weekday", "runtime_min", "genre")


@dataclass(frozen=True)
class SuccessConfig:
    """How the model is validated and fitted. Frozen and hashable (a cache key)."""

    test_share: float = 0.25
    early_days: int = 0
    interval: float = 0.8
    folds: int = 4
    max_iter: int = 150
    learning_rate: float = 0.05
    max_depth: int = 3
    min_samples_leaf: int = 8
    l2_regularization: float = 1.0
    importance_repeats: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.05 <= self.test_share <= 0.5:
            raise ValueError("test_share must be 0.05 to 0.5")
        if not 0 <= self.early_days <= WINDOW_DAYS - 1:
            raise ValueError("early_days must be 0 to 27")
        if not 0.5 <= self.interval < 1:
            raise ValueError("interval must be between 0.5 and 1")
        if not 2 <= self.folds <= 10:
            raise ValueError("folds must be 2 to 10")


class SuccessDataError(ValueError):
    """Too few titles with a known first-window result to train and test; fit to show a user."""


# --- features ------------------------------------------------------------------------------------
def _genre_flag(name: str) -> str:
    return "has_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _split_genres(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [g.strip() for g in value.split("|") if g.strip()]


def _prior_record(
    frame: pd.DataFrame,
    key: str,
    outcome: pd.Series,
    known_from: pd.Series,
    wanted: np.ndarray | None = None,
) -> tuple[pd.Series, pd.Series]:
    """For each row (each ``wanted`` row; the others stay 0 / NaN): how many titles of the same
    ``key`` had a known outcome before its release, and the median of those outcomes (NaN when
    none). ``known_from``: the day each outcome became known (release + window); rows with a
    missing key or outcome never count."""
    count = pd.Series(0.0, index=frame.index)
    median = pd.Series(np.nan, index=frame.index)
    release = pd.to_datetime(frame["release_date"]).to_numpy()
    known = pd.to_datetime(known_from).to_numpy()
    values = outcome.to_numpy(dtype="float64")
    wanted = np.ones(len(frame), dtype=bool) if wanted is None else wanted
    keys = frame[key]
    for _, idx in frame.groupby(keys, dropna=True, sort=False).groups.items():
        pos = frame.index.get_indexer(idx)
        vals = values[pos]
        usable = np.isfinite(vals)
        if not usable.any():
            continue
        kn = known[pos][usable]
        vv = vals[usable]
        for p in pos[wanted[pos]]:
            before = kn <= release[p]
            if before.any():
                count.iloc[p] = float(before.sum())
                median.iloc[p] = float(np.median(vv[before]))
    return count, median


def _before(days: np.ndarray, index: pd.DatetimeIndex, cumulative: np.ndarray) -> np.ndarray:
    """The cumulative value over every day strictly before each of ``days`` (0 when none)."""
    pos = index.searchsorted(days, side="left") - 1
    return np.where(pos >= 0, cumulative[np.clip(pos, 0, None)], 0.0)


def _audience_before(releases: pd.Series, audience: pd.DataFrame) -> pd.Series:
    """log(1 + mean daily views of the catalog over the AUDIENCE_DAYS days before each release);
    a release after the data takes the last AUDIENCE_DAYS days with data (the latest audience
    known). Days without data are missing, not zero; NaN when none is in the window."""
    if audience is None or audience.empty:
        return pd.Series(np.nan, index=releases.index)
    daily = pd.Series(
        audience["views"].astype("float64").to_numpy(),
        index=pd.DatetimeIndex(pd.to_datetime(audience["day"])),
    ).sort_index()
    index = pd.DatetimeIndex(daily.index)
    total = daily.cumsum().to_numpy()
    count = np.arange(1, len(daily) + 1, dtype="float64")
    end = np.minimum(
        pd.to_datetime(releases).to_numpy(), (index[-1] + pd.Timedelta(days=1)).to_datetime64()
    )
    start = end - np.timedelta64(AUDIENCE_DAYS, "D")
    sums = _before(end, index, total) - _before(start, index, total)
    n = _before(end, index, count) - _before(start, index, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, sums / np.where(n > 0, n, 1), np.nan)
    return pd.Series(np.log1p(mean), index=releases.index)


@dataclass(frozen=True, eq=False)
class _Reference:
    """What a prediction's track-record and audience features are computed against."""

    titles: pd.DataFrame  # title_id, creator_id, series_name, release_date, known_from, log_views
    audience: pd.DataFrame
    genres: tuple[str, ...]
    money: bool


def _reference(features: dict[str, Any]) -> _Reference:
    titles = features["titles"]
    window = int(features.get("window_days", WINDOW_DAYS))
    labelled = titles[titles["window_complete"]]
    genres = sorted({g for v in titles["genres"] for g in _split_genres(v)} | set(titles["genre"]))
    ref = pd.DataFrame(
        {
            "title_id": labelled["title_id"].to_numpy(),
            "creator_id": labelled["creator_id"].to_numpy(),
            "series_name": labelled["series_name"].to_numpy(),
            "release_date": pd.to_datetime(labelled["release_date"]).to_numpy(),
            "known_from": (
                pd.to_datetime(labelled["release_date"]) + pd.Timedelta(days=window)
            ).to_numpy(),
            "log_views": np.log1p(labelled["views"].astype("float64").to_numpy()),
        }
    )
    money = all(c in titles.columns for c in ("budget", "licensing_cost"))
    return _Reference(ref, features["audience"], tuple(genres), money)


def build_features(
    titles: pd.DataFrame, reference: _Reference, early_days: int = 0
) -> pd.DataFrame:
    """The model's feature frame for ``titles`` (any titles, e.g. a planned one: title_id may be
    absent or new), with track records taken from ``reference``'s known results before each
    title's release. Index follows ``titles``."""
    titles = titles.copy()
    if "title_id" not in titles:
        titles["title_id"] = -1 - np.arange(len(titles))
    release = pd.to_datetime(titles["release_date"])
    out = pd.DataFrame(index=titles.index)
    for col in CATEGORICAL:
        out[col] = titles[col].astype("object").where(titles[col].notna(), None)
    out["runtime_min"] = pd.to_numeric(titles["runtime_min"], errors="coerce").astype("float64")
    for col in ("season", "episode"):
        values = titles[col] if col in titles else pd.Series(np.nan, index=titles.index)
        out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
    out["release_month"] = release.dt.month.astype("float64")
    out["release_weekday"] = release.dt.day_of_week.astype("float64")
    genre_lists = [
        sorted(set(_split_genres(gs)) | ({g} if isinstance(g, str) else set()))
        for gs, g in zip(
            titles.get("genres", pd.Series(None, index=titles.index)),
            titles["genre"],
            strict=True,
        )
    ]
    out["n_genres"] = [float(len(g)) for g in genre_lists]
    for name in reference.genres:
        out[_genre_flag(name)] = [float(name in g) for g in genre_lists]

    # Track records: the reference's known outcomes, joined with these titles in one frame so
    # that each title sees only results known before its own release (and never its own).
    ref = reference.titles
    own = pd.DataFrame(
        {
            "title_id": titles["title_id"].to_numpy(),
            "creator_id": titles["creator_id"].to_numpy(),
            "series_name": titles.get("series_name", pd.Series(None, index=titles.index))
            .astype("object")
            .to_numpy(),
            "release_date": release.to_numpy(),
        }
    )
    both = pd.concat(
        [
            own.assign(known_from=pd.NaT, log_views=np.nan, _own=True),
            ref[~ref["title_id"].isin(own["title_id"])].assign(_own=False),
            # A title's own result is known only after its window; it may inform its later
            # episodes and the creator's later titles, never itself.
            ref[ref["title_id"].isin(own["title_id"])].assign(_own=False, release_date=pd.NaT),
        ],
        ignore_index=True,
    )
    both["series_name"] = both["series_name"].where(both["series_name"].notna(), None)
    both["release_date"] = both["release_date"].fillna(pd.Timestamp.max.normalize())
    mine = both["_own"].to_numpy()
    outcome, known = both["log_views"], both["known_from"]
    c_count, c_median = _prior_record(both, "creator_id", outcome, known, mine)
    s_count, s_median = _prior_record(both, "series_name", outcome, known, mine)
    out["creator_prior_titles"] = c_count[mine].to_numpy()
    out["creator_prior_median"] = c_median[mine].to_numpy()
    has_series = own["series_name"].notna().to_numpy()
    out["series_prior_titles"] = np.where(has_series, s_count[mine].to_numpy(), np.nan)
    out["series_prior_median"] = np.where(has_series, s_median[mine].to_numpy(), np.nan)
    out["audience_before"] = _audience_before(release, reference.audience).to_numpy()
    if reference.money:
        for col, name in (("budget", "log_budget"), ("licensing_cost", "log_licensing_cost")):
            values = titles[col] if col in titles else pd.Series(np.nan, index=titles.index)
            out[name] = np.log1p(pd.to_numeric(values, errors="coerce").astype("float64"))
    if early_days:
        col = f"views_day_{early_days}"
        if col not in titles:
            raise ValueError(f"the titles frame has no {col} column (title_features early_days)")
        out[f"log_views_day_{early_days}"] = np.log1p(titles[col].astype("float64"))
    return out


def _targets(titles: pd.DataFrame) -> pd.DataFrame:
    starts = titles["starts"].astype("float64")
    return pd.DataFrame(
        {
            "log_views": np.log1p(titles["views"].astype("float64")),
            "completion": (titles["completed"].astype("float64") / starts.where(starts > 0)),
        },
        index=titles.index,
    )


# --- the split -----------------------------------------------------------------------------------
def split_by_release(
    titles: pd.DataFrame, test_share: float = 0.25, window_days: int = WINDOW_DAYS
) -> tuple[pd.Index, pd.Index, date]:
    """(train index, test index, cutoff) over the titles with a complete window.

    Test: the titles released on or after ``cutoff``, the release date below which
    1 - ``test_share`` of the labelled titles fall. Train: titles whose window had closed by the
    cutoff (release + window_days <= cutoff), so no training label was unknown on that day.
    """
    labelled = titles[titles["window_complete"]]
    if labelled.empty:
        raise SuccessDataError("No title has a complete first-28-day window in the data yet.")
    release = pd.to_datetime(labelled["release_date"])
    ordered = release.sort_values(kind="stable")
    at = min(len(ordered) - 1, math.floor(len(ordered) * (1 - test_share)))
    cutoff = ordered.iloc[at]
    test = labelled.index[(release >= cutoff).to_numpy()]
    train = labelled.index[(release + pd.Timedelta(days=window_days) <= cutoff).to_numpy()]
    return train, test, cutoff.date()


# --- models --------------------------------------------------------------------------------------
def _one_thread() -> Any:
    """One OpenMP thread for the boosting: on a few hundred rows threads only wait for each
    other, and on a busy two-core machine they made a fit 10-30x slower (4 s against 0.15 s)."""
    # threadpoolctl limits only the libraries already loaded: load sklearn's OpenMP first.
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _regressor(config: SuccessConfig, categorical: list[bool], seed_offset: int = 0) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_depth=config.max_depth,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=False,
        categorical_features=categorical,
        random_state=config.seed + seed_offset,
    )


def _encode(frame: pd.DataFrame, categories: Mapping[str, list[str]]) -> np.ndarray:
    """A float matrix: categoricals as codes of the training categories (an unseen value is
    missing, NaN). Plain arrays, because sklearn re-encodes a pandas categorical frame on every
    predict (about 20 ms each, most of a permutation importance's time)."""
    columns = []
    for col in frame.columns:
        if col in CATEGORICAL:
            codes = pd.Categorical(frame[col].astype("object"), categories=categories[col]).codes
            columns.append(np.where(codes >= 0, codes, np.nan).astype("float64"))
        else:
            columns.append(frame[col].to_numpy(dtype="float64"))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


@dataclass(frozen=True, eq=False)
class _Fitted:
    """One target's model with its interval offsets (residual quantiles)."""

    target: str
    model: Any
    low: float
    high: float


def _fit_target(
    X: np.ndarray,
    y: np.ndarray,
    release: np.ndarray,
    config: SuccessConfig,
    categorical: list[bool],
    target: str,
) -> _Fitted:
    ok = np.isfinite(y)
    X, y, release = X[ok], y[ok], release[ok]
    model = _regressor(config, categorical).fit(X, y)
    residuals = _out_of_time_residuals(X, y, release, config, categorical)
    alpha = (1 - config.interval) / 2
    if residuals.size >= 10:
        low, high = np.quantile(residuals, [alpha, 1 - alpha])
    else:
        low, high = -math.inf, math.inf
    return _Fitted(target, model, float(low), float(high))


def _out_of_time_residuals(
    X: np.ndarray,
    y: np.ndarray,
    release: np.ndarray,
    config: SuccessConfig,
    categorical: list[bool],
) -> np.ndarray:
    rel = release.astype("datetime64[D]")
    order = np.argsort(rel, kind="stable")
    blocks = np.array_split(order, config.folds + 1)
    residuals = []
    for k in range(1, len(blocks)):
        test = blocks[k]
        if not len(test):
            continue
        first = rel[test].min()
        # Only titles whose window had closed when the block's first title came out.
        train = np.concatenate(blocks[:k])
        train = train[rel[train] + np.timedelta64(WINDOW_DAYS, "D") <= first]
        if len(train) < 2 * config.min_samples_leaf:
            continue
        model = _regressor(config, categorical, k).fit(X[train], y[train])
        residuals.append(y[test] - model.predict(X[test]))
    return np.concatenate(residuals) if residuals else np.array([])


@dataclass(frozen=True, eq=False)
class SuccessModel:
    """A fitted success model: predicts with ``predict``, explains with ``explain``.

    ``evaluation``: the held-out figures (see ``evaluate``); ``importance``: permutation
    importance on the held-out titles (feature, label, importance, std: the growth of the
    held-out MAE of log views when the feature is shuffled). The predicting models are refitted
    on every labelled title after the evaluation.
    """

    config: SuccessConfig
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    reference: _Reference
    views: _Fitted
    completion: _Fitted
    typical: dict[str, Any]
    evaluation: dict[str, Any]
    importance: pd.DataFrame
    test_predictions: pd.DataFrame = field(repr=False)

    def _raw(self, titles: pd.DataFrame) -> pd.DataFrame:
        X = build_features(titles, self.reference, self.config.early_days)
        for col in self.features:
            if col not in X:
                X[col] = np.nan
        return X[list(self.features)]

    def predict(self, titles: pd.DataFrame) -> pd.DataFrame:
        """Per title (index kept): views (median estimate), views_low, views_high (the interval),
        completion, completion_low, completion_high. ``titles`` has title_features' columns
        (release_date, genre, genres, kind, runtime_min, language, maturity, creator_id,
        series_name, season, episode; money and early-day columns when the model uses them)."""
        return self._predict_raw(self._raw(titles))

    def _predict_raw(self, raw: pd.DataFrame) -> pd.DataFrame:
        X = _encode(raw, self.categories)
        index = raw.index
        with _one_thread():
            lv = self.views.model.predict(X)
            comp = self.completion.model.predict(X)
        return pd.DataFrame(
            {
                "views": np.expm1(lv),
                "views_low": np.maximum(0.0, np.expm1(lv + self.views.low)),
                "views_high": np.expm1(lv + self.views.high),
                "completion": np.clip(comp, 0, 1),
                "completion_low": np.clip(comp + self.completion.low, 0, 1),
                "completion_high": np.clip(comp + self.completion.high, 0, 1),
            },
            index=index,
        )

    def explain(self, title: pd.DataFrame | pd.Series) -> pd.DataFrame:
        """One title's main factors: for each feature, its value, the typical value, and how the
        predicted views change (``views_ratio``: prediction / prediction with the typical value;
        ``completion_change``: in points of 0..1) when only that feature is set to the typical
        value. Sorted by the size of the views effect. Effects are one at a time and do not add
        up to the prediction."""
        row = _one_row(title)
        X = self._raw(row)
        changed_cols = []
        for col in self.features:
            typical, own = self.typical[col], X[col].iloc[0]
            if not ((pd.isna(own) and pd.isna(typical)) or own == typical):
                changed_cols.append(col)
        # The title as it is, then one copy per feature set to its typical value: one predict.
        variants = pd.concat([X] * (1 + len(changed_cols)), ignore_index=True)
        for i, col in enumerate(changed_cols, start=1):
            variants[col] = variants[col].astype("object")
            variants.loc[i, col] = self.typical[col]
        preds = self._predict_raw(variants)
        base = preds.iloc[0]
        rows = [
            {
                "feature": col,
                "label": _label(col),
                "value": X[col].iloc[0],
                "typical": self.typical[col],
                "views_ratio": float(base["views"] + 1) / float(preds["views"].iloc[i] + 1),
                "completion_change": float(base["completion"] - preds["completion"].iloc[i]),
            }
            for i, col in enumerate(changed_cols, start=1)
        ]
        out = pd.DataFrame(
            rows,
            columns=["feature", "label", "value", "typical", "views_ratio", "completion_change"],
        )
        if out.empty:
            return out
        size = np.abs(np.log(out["views_ratio"].astype("float64")))
        return out.iloc[np.argsort(-size.to_numpy(), kind="stable")].reset_index(drop=True)

    def what_if(self, title: pd.DataFrame | pd.Series, **changes: Iterable[Any]) -> pd.DataFrame:
        """Re-predict a title with one field changed at a time: ``release_month=[1, ..., 12]``,
        ``release_weekday=[0..6]`` (0 = Monday), ``runtime_min=[...]``, ``genre=[...]`` (the
        title then carries that genre only). Columns: field, value, is_current, then
        ``predict``'s columns, and views_change (relative to the title as planned)."""
        unknown = set(changes) - set(WHAT_IF_FIELDS)
        if unknown:
            raise ValueError(f"what_if changes only {', '.join(WHAT_IF_FIELDS)}")
        row = _one_row(title)
        cases = [(name, value) for name, values in changes.items() for value in values]
        variants = pd.concat(
            [row] + [_change(row, name, value) for name, value in cases], ignore_index=True
        )
        preds = self.predict(variants)
        current = preds.iloc[0]
        rows = [
            {
                "field": name,
                "value": value,
                "is_current": _current_value(row, name) == value,
                **preds.iloc[i].to_dict(),
                "views_change": float(preds["views"].iloc[i] / current["views"] - 1)
                if current["views"] > 0
                else math.nan,
            }
            for i, (name, value) in enumerate(cases, start=1)
        ]
        return pd.DataFrame(rows)


def _label(feature: str) -> str:
    if feature in FEATURE_LABELS:
        return FEATURE_LABELS[feature]
    if feature.startswith("has_"):
        return "genre tag: " + feature[4:].replace("_", " ")
    if feature.startswith("log_views_day_"):
        return f"views in the first {feature.rsplit('_', 1)[1]} days"
    return feature


def _one_row(title: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(title, pd.Series):
        return title.to_frame().T.reset_index(drop=True)
    if len(title) != 1:
        raise ValueError("explain and what_if take one title")
    return title.reset_index(drop=True)


def _current_value(row: pd.DataFrame, name: str) -> Any:
    release = pd.Timestamp(row["release_date"].iloc[0])
    if name == "release_month":
        return release.month
    if name == "release_weekday":
        return release.weekday()
    return row[name].iloc[0]


def _change(row: pd.DataFrame, name: str, value: Any) -> pd.DataFrame:
    out = row.copy()
    release = pd.Timestamp(out["release_date"].iloc[0]).date()
    if name == "release_month":
        month = int(value)
        if not 1 <= month <= 12:
            raise ValueError("release_month is 1 to 12")
        # The same day of that month in the same year (the 31st becomes the month's last day).
        day = min(release.day, calendar.monthrange(release.year, month)[1])
        out.loc[out.index[0], "release_date"] = release.replace(month=month, day=day)
    elif name == "release_weekday":
        weekday = int(value)
        if not 0 <= weekday <= 6:
            raise ValueError("release_weekday is 0 (Monday) to 6 (Sunday)")
        shifted = release + timedelta(days=weekday - release.weekday())
        out.loc[out.index[0], "release_date"] = shifted
    elif name == "runtime_min":
        out.loc[out.index[0], "runtime_min"] = float(value)
    elif name == "genre":
        out.loc[out.index[0], "genre"] = str(value)
        out.loc[out.index[0], "genres"] = str(value)
    return out


# --- fit and evaluate ----------------------------------------------------------------------------
def _typical(X: pd.DataFrame) -> dict[str, Any]:
    typical: dict[str, Any] = {}
    for col in X.columns:
        if col in CATEGORICAL:
            mode = X[col].dropna().astype("object").mode()
            typical[col] = mode.iloc[0] if len(mode) else None
        else:
            median = X[col].median()
            typical[col] = float(median) if pd.notna(median) else math.nan
    return typical


def permutation_importance(
    model: Any, X: np.ndarray, y: np.ndarray, repeats: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per column: mean and std over ``repeats`` shuffles of (MAE with the column shuffled - MAE
    as is), the definition of sklearn's ``permutation_importance`` with MAE scoring; every
    shuffled copy goes through one ``predict`` (sklearn's calls it once per copy, 8 ms each)."""
    rng = np.random.default_rng(seed)
    n, k = X.shape
    copies = np.repeat(X[None, :, :], k * repeats, axis=0)
    for j in range(k):
        for r in range(repeats):
            copies[j * repeats + r, :, j] = X[rng.permutation(n), j]
    with _one_thread():
        base = float(np.mean(np.abs(model.predict(X) - y)))
        pred = model.predict(copies.reshape(-1, X.shape[1])).reshape(k, repeats, n)
    drop = np.abs(pred - y[None, None, :]).mean(axis=2) - base
    return drop.mean(axis=1), drop.std(axis=1)


def genre_median_baseline(
    train: pd.DataFrame, test: pd.DataFrame, target: pd.Series, interval: float = 0.8
) -> pd.DataFrame:
    """The planner's baseline: per test title, the median (and the interval's quantiles) of
    ``target`` over training titles of the same primary genre; the overall ones for a genre
    without training titles. ``target`` is indexed like ``train``."""
    alpha = (1 - interval) / 2
    t = pd.DataFrame({"genre": train["genre"].astype("object"), "y": target}).dropna()
    by_genre = t.groupby("genre")["y"]
    med = by_genre.median()
    lo = by_genre.quantile(alpha)
    hi = by_genre.quantile(1 - alpha)
    overall = (t["y"].median(), t["y"].quantile(alpha), t["y"].quantile(1 - alpha))
    genre = test["genre"].astype("object")
    return pd.DataFrame(
        {
            "pred": genre.map(med).fillna(overall[0]).astype("float64"),
            "low": genre.map(lo).fillna(overall[1]).astype("float64"),
            "high": genre.map(hi).fillna(overall[2]).astype("float64"),
        },
        index=test.index,
    )


def fit_success_model(
    features: dict[str, Any], config: SuccessConfig | None = None
) -> SuccessModel:
    """Validate by release date against the genre-median baseline, then refit on every labelled
    title. ``features``: ``data.queries.title_features.title_features``'s result (money columns
    become features when present). Raises ``SuccessDataError`` with too few titles."""
    with _one_thread():
        return _fit_success_model(features, config)


def _fit_success_model(features: dict[str, Any], config: SuccessConfig | None) -> SuccessModel:
    config = config or SuccessConfig()
    titles = features["titles"]
    window = int(features.get("window_days", WINDOW_DAYS))
    reference = _reference(features)
    labelled = titles[titles["window_complete"]]
    train_idx, test_idx, cutoff = split_by_release(titles, config.test_share, window)
    min_train = max(30, 4 * config.min_samples_leaf)
    if len(train_idx) < min_train or len(test_idx) < 10:
        raise SuccessDataError(
            f"Too few titles with a known first-{window}-day result to train and test the "
            f"model: {len(train_idx)} to train on (needs {min_train}) and {len(test_idx)} to "
            "test on (needs 10)."
        )
    raw = build_features(labelled, reference, config.early_days)
    targets = _targets(labelled)
    categories = {
        col: sorted({str(v) for v in titles[col].dropna().astype("object")}) for col in CATEGORICAL
    }
    features_list = list(raw.columns)
    categorical = [c in CATEGORICAL for c in features_list]
    X_all = _encode(raw, categories)
    lv_all = targets["log_views"].to_numpy()
    comp_all = targets["completion"].to_numpy()
    release = pd.to_datetime(labelled["release_date"]).to_numpy()
    tr = labelled.index.get_indexer(train_idx)
    te = labelled.index.get_indexer(test_idx)

    # Evaluation: trained as on the cutoff day, tested on the later titles.
    ev_views = _fit_target(X_all[tr], lv_all[tr], release[tr], config, categorical, "log_views")
    ev_comp = _fit_target(X_all[tr], comp_all[tr], release[tr], config, categorical, "completion")
    X_te = X_all[te]
    pred_lv = ev_views.model.predict(X_te)
    pred_comp = np.clip(ev_comp.model.predict(X_te), 0, 1)
    actual_lv = lv_all[te]
    train_titles, test_titles = labelled.loc[train_idx], labelled.loc[test_idx]
    base_v = genre_median_baseline(
        train_titles, test_titles, targets.loc[train_idx, "log_views"], config.interval
    )
    base_c = genre_median_baseline(
        train_titles, test_titles, targets.loc[train_idx, "completion"], config.interval
    )
    test_predictions = pd.DataFrame(
        {
            "title_id": test_titles["title_id"].to_numpy(),
            "release_date": test_titles["release_date"].to_numpy(),
            "genre": test_titles["genre"].to_numpy(),
            "views": np.expm1(actual_lv),
            "predicted": np.expm1(pred_lv),
            "low": np.maximum(0.0, np.expm1(pred_lv + ev_views.low)),
            "high": np.expm1(pred_lv + ev_views.high),
            "baseline": np.expm1(base_v["pred"].to_numpy()),
            "baseline_low": np.expm1(base_v["low"].to_numpy()),
            "baseline_high": np.expm1(base_v["high"].to_numpy()),
            "completion": comp_all[te],
            "predicted_completion": pred_comp,
            "baseline_completion": base_c["pred"].to_numpy(),
        }
    )
    evaluation = evaluate(test_predictions)
    evaluation.update(
        {
            "cutoff": cutoff,
            "train_titles": len(train_idx),
            "test_titles": len(test_idx),
            "train_last_release": max(train_titles["release_date"]),
            "test_first_release": min(test_titles["release_date"]),
        }
    )
    imp_mean, imp_std = permutation_importance(
        ev_views.model, X_te, actual_lv, config.importance_repeats, config.seed
    )
    importance = (
        pd.DataFrame(
            {
                "feature": features_list,
                "label": [_label(f) for f in features_list],
                "importance": imp_mean,
                "std": imp_std,
            }
        )
        .sort_values("importance", ascending=False, kind="stable")
        .reset_index(drop=True)
    )

    # The predicting models: every labelled title.
    views = _fit_target(X_all, lv_all, release, config, categorical, "log_views")
    completion = _fit_target(X_all, comp_all, release, config, categorical, "completion")
    return SuccessModel(
        config=config,
        features=tuple(features_list),
        categories=categories,
        reference=reference,
        views=views,
        completion=completion,
        typical=_typical(raw),
        evaluation=evaluation,
        importance=importance,
        test_predictions=test_predictions,
    )


def evaluate(predictions: pd.DataFrame) -> dict[str, Any]:
    """Held-out figures from ``SuccessModel.test_predictions``-shaped rows: MAE of log(1 + views)
    (what the model minimises, and the headline), MAPE and median APE of views for the model and
    the genre-median baseline, their intervals' coverage, and the MAE of completion. MAPE is
    dominated by the smallest titles (a title with 0.5 views predicted at 2 is 300% off) and
    rewards predicting low; read it beside the median."""
    v = predictions["views"].to_numpy(dtype="float64")
    lv = np.log1p(v)
    out: dict[str, Any] = {}
    for name, pred, lo, hi in (
        ("model", "predicted", "low", "high"),
        ("baseline", "baseline", "baseline_low", "baseline_high"),
    ):
        p = predictions[pred].to_numpy(dtype="float64")
        out[f"{name}_mae_log"] = float(np.mean(np.abs(np.log1p(p) - lv)))
        positive = v > 0
        ape = np.abs(p[positive] - v[positive]) / v[positive]
        out[f"{name}_mape"] = float(np.mean(ape))
        out[f"{name}_mdape"] = float(np.median(ape))
        inside = (v >= predictions[lo].to_numpy()) & (v <= predictions[hi].to_numpy())
        out[f"{name}_coverage"] = float(inside.mean())
    comp = predictions["completion"].to_numpy(dtype="float64")
    ok = np.isfinite(comp)
    for name, col in (("model", "predicted_completion"), ("baseline", "baseline_completion")):
        p = predictions[col].to_numpy(dtype="float64")
        out[f"{name}_completion_mae"] = (
            float(np.mean(np.abs(p[ok] - comp[ok]))) if ok.any() else math.nan
        )
    out["beats_baseline"] = out["model_mae_log"] < out["baseline_mae_log"]
    return out


def summary(model: SuccessModel) -> str:
    """The held-out result in plain words."""
    e = model.evaluation
    better = "beats" if e["beats_baseline"] else "does no better than"
    return (
        f"Trained on {e['train_titles']} titles released before {e['cutoff']:%d %b %Y} and "
        f"tested on the {e['test_titles']} released from then on, the model {better} the genre "
        f"median: typically {math.exp(e['model_mae_log']):.2f}x off in first-28-day views "
        f"against {math.exp(e['baseline_mae_log']):.2f}x (MAE of log views "
        f"{e['model_mae_log']:.2f} against {e['baseline_mae_log']:.2f}); its "
        f"{model.config.interval:.0%} interval held {e['model_coverage']:.0%} of the later "
        f"titles (the genre's range: {e['baseline_coverage']:.0%})."
    )


__all__ = [
    "CATEGORICAL",
    "FEATURE_LABELS",
    "WHAT_IF_FIELDS",
    "SuccessConfig",
    "SuccessDataError",
    "SuccessModel",
    "build_features",
    "evaluate",
    "fit_success_model",
    "genre_median_baseline",
    "permutation_importance",
    "split_by_release",
    "summary",
]
