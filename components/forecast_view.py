"""The Forecast page's parts: a metric's forecast with its backtest and a per-user what-if, the
shared defaults (``change_models``), and a title's predicted success before release.

Two halves. The first (down to "the page") never calls streamlit: it reads a series through
``data/queries/`` and fits it with ``models/forecasting.py``, so the page (through the query
allowlist, components/queries.py) and ``python cli.py forecast --all`` compute exactly the same
forecast for the same inputs. The second half draws the page.

Caching, in two levels, both keyed by (series definition, scope, data build, parameters, last
complete day):

1. ``components/queries.run`` (``st.cache_data``; the scope and the extract generation are in its
   key, and the series definition and the parameters are its options): a second viewer of the
   same forecast in the same server process gets it in about a millisecond.
2. ``DiskCache``, in ``<data_dir>/forecast-cache/<build id>/``: one file per forecast, keyed by
   ``models.forecasting.cache_key``, pickled and sealed with AES-256-GCM under a key derived from
   the app key (HKDF, its own purpose), the cache key as associated data. ``cli.py forecast --all``
   fills it after a build, so the first viewer after a restart or a sync waits for nothing
   either. A file that does not authenticate is ignored (and never unpickled); a new build's
   first write removes the folders of older builds. Forecasts are aggregates (a slice's daily
   totals), never viewer rows; sealed anyway, as every data file at rest is (SECURITY.md #13).

What is fitted. History runs from the first day with data to the *last complete day*: the
earlier of the period's end and the extract clock's last whole day (``extract_meta.as_of``; when
the extract does not say, the last day with data counts as incomplete). A weekly forecast ends at
the last complete Monday-Sunday week (models/forecasting.py). Platform and filter slices add the
premieres of the slice (movies, live events and first episodes, the scope's titles only) as one
event type, ``premiere``, over the release day and ``PREMIERE_DAYS_AFTER`` days after, when they
are events at all: if their windows cover more than ``MAX_PREMIERE_SHARE`` of the history (a
large catalog premieres something nearly every day) they are left out and the forecast says so
(``load_series``). A planned premiere in the what-if takes the learned effect. A single title is
its own series (every country and device) without premiere events: its history begins at its own
release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import pickle
import re
import shutil
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components import auth, charts, queries
from components.context import AppContext, app_context
from components.text import md_escape
from data.extract.derived import extract_as_of
from data.queries import forecast_inputs, metrics
from data.queries.filters import DIMENSIONS, Filters, Scope
from data.queries.title_features import EARLY_DAYS, title_features
from data.schema import BASE_CURRENCY
from models import forecasting as F
from models import success as S
from security.forecast_defaults import (
    CHANGEPOINT_RANGE,
    SEASONALITY_MODES,
    DefaultsError,
    ForecastDefaults,
    ForecastDefaultsStore,
)
from security.permissions import AccessDenied, Principal

# Additive metrics of the catalog a forecast may take: a day's value is a sum over the day.
# Active viewers (DAU) are distinct viewers per day: forecast daily only, since a week's active
# viewers are not the sum of its days.
FORECAST_METRICS: tuple[str, ...] = (
    "views",
    "watch_hours",
    "starts",
    "active_viewers",
    "new_subscribers",
    "net_revenue",
    "net_revenue_subscription",
    "net_revenue_ppv",
    "net_revenue_ad",
)
TITLE_METRICS: tuple[str, ...] = ("views", "watch_hours", "starts")  # forecast_inputs' catalog
DAILY_ONLY: frozenset[str] = frozenset({"active_viewers"})
DEFAULT_HORIZON_DAYS = 90
PREMIERE_EVENT = "premiere"
PREMIERE_DAYS_AFTER = 3
MAX_PREMIERE_SHARE = 0.5  # premieres are events only where they are not on most days
CACHE_FOLDER = "forecast-cache"
PRECOMPUTE_TOP_TITLES = 50
WHATIF_KEY = "forecast-whatif"
FREQ_LABELS = {"D": "Daily", "W": "Weekly"}

# What this process did, for tests and the benchmark: "fit" (a forecast fitted), "disk" (read from
# the disk cache), "refused" (a series too short or sparse, or parameters out of range), "success"
# (a success model fitted).
FITS: Counter[str] = Counter()


# --- what is fitted ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A forecast that cannot be made, with the model's message (fit to show a user); picklable
    and cacheable, unlike the exception it replaces. ``needed``/``have`` in ``unit`` when the
    series itself is the reason."""

    message: str
    kind: str
    needed: float | None = None
    have: float | None = None
    unit: str = ""

    @classmethod
    def from_error(cls, exc: F.ForecastError) -> Refusal:
        if isinstance(exc, F.NotForecastableError):
            return cls(str(exc), type(exc).__name__, exc.needed, exc.have, exc.unit)
        return cls(str(exc), type(exc).__name__)


def last_complete_day(cursor: duckdb.DuckDBPyConnection) -> tuple[date, date, date] | None:
    """(first day with data, last day with data, last complete day), or None without data.

    The last complete day is the extract clock's (``as_of``) last whole UTC day, never after the
    last day with data; without a clock, the day before the last day with data (a sync may have
    read it half-way)."""
    bounds = metrics.data_bounds(cursor)
    if bounds is None:
        return None
    first, last = bounds
    try:
        as_of = extract_as_of(cursor)
    except ValueError:
        as_of = None
    if as_of is None:
        complete = last - timedelta(days=1)
    elif as_of.time() >= dtime(23, 59, 59):
        complete = as_of.date()
    else:
        complete = as_of.date() - timedelta(days=1)
    return first, last, max(first, min(last, complete))


def history_filters(filters: Filters | None, first_day: date, as_of: date) -> Filters:
    """The filters a forecast reads: every day from the first with data to ``as_of``, the
    dimension filters of ``filters`` (none for a single title: pass None). One spelling for the
    page and the CLI, so their cache keys meet."""
    dims = {d.field: getattr(filters, d.field) for d in DIMENSIONS.values()} if filters else {}
    return Filters(first_day, as_of, "custom", "none", **dims)


def forecast_params(
    defaults: ForecastDefaults,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    freq: str = "D",
    *,
    events: tuple[F.Event, ...] = (),
    what_ifs: tuple[F.WhatIf, ...] = (),
) -> F.ForecastParams:
    """The model's parameters: the shared defaults, the viewer's horizon and frequency, and a
    what-if's events and regressors (none for the forecast everyone sees)."""
    return F.ForecastParams(
        horizon_days=int(horizon_days),
        freq=freq,
        countries=defaults.countries,
        seasonality_mode=defaults.seasonality_mode,
        changepoint_prior_scale=defaults.changepoint_prior_scale,
        events=events,
        what_ifs=what_ifs,
    )


def series_definition(
    history: Filters, metric: str, title_id: int | None, currency: str
) -> dict[str, Any]:
    """What picks the series (``models.forecasting.cache_key``'s definition)."""
    money = metrics.METRICS[metric].money
    return {
        "metric": metric,
        "filters": history,
        "title_id": title_id,
        "currency": currency if money else None,
        "events": None if title_id is not None else [PREMIERE_EVENT, PREMIERE_DAYS_AFTER],
    }


def premiere_share(releases: pd.Series, first_day: date, last_day: date) -> float:
    """The share of the history's days inside a premiere's window (release day and
    ``PREMIERE_DAYS_AFTER`` after)."""
    days = pd.date_range(first_day, last_day, freq="D")
    if not len(days):
        return 0.0
    inside = np.zeros(len(days), dtype=bool)
    for day in pd.to_datetime(pd.Series(list(releases), dtype="object")).dropna().unique():
        inside |= (days >= day) & (days <= day + pd.Timedelta(days=PREMIERE_DAYS_AFTER))
    return float(inside.mean())


def load_series(
    cursor: duckdb.DuckDBPyConnection,
    history: Filters,
    scope: Scope,
    metric: str,
    title_id: int | None = None,
    currency: str = BASE_CURRENCY,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> tuple[pd.Series, pd.DataFrame | None, tuple[str, ...]]:
    """The daily series, its premiere events (None: not modelled) and notes about them, through
    data/queries/ only. Raises ``ForecastError`` with a message for a metric the slice or the
    scope cannot give.

    Premieres are modelled only where they are events: when their windows cover at most
    ``MAX_PREMIERE_SHARE`` of the history's days. A slice with a premiere nearly every day (the
    whole platform, a large genre) has nothing to tell an ordinary day from a premiere day by,
    and Prophet's holiday features then cost one to two seconds more per forecast for nothing
    (the 1M-view demo platform: MASE 2.626 with them, 2.637 without; its Comedy genre 5.37 with,
    5.17 without)."""
    if metric not in FORECAST_METRICS:
        raise F.ForecastParamsError(f"{metric!r} cannot be forecast here.")
    spec = metrics.METRICS[metric]
    if title_id is not None:
        if metric not in TITLE_METRICS:
            raise F.ForecastParamsError(
                f"{spec.label} is not kept per title: forecast a title's views, watch hours or "
                "starts, or a filter slice's."
            )
        rows = forecast_inputs.title_daily(cursor, history, scope, (int(title_id),), metric)
        if rows.empty:
            raise F.ForecastParamsError("That title is not in the catalog you can see.")
        series = pd.Series(
            rows["value"].to_numpy(dtype="float64"),
            index=pd.DatetimeIndex(pd.to_datetime(rows["day"]), name="ds"),
            name=metric,
        )
        return series, None, ()
    unsupported = history.active_dimensions - spec.dims
    if unsupported:
        names = ", ".join(sorted(DIMENSIONS[d].label.lower() for d in unsupported))
        raise F.ForecastParamsError(
            f"{spec.label} cannot be split by {names}: remove that filter to forecast it."
        )
    trend = metrics.trend(cursor, history, scope, "day", (metric,), currency)
    series = F.series_from_trend(trend, metric)
    if series.notna().sum() == 0 and len(series):
        raise F.ForecastParamsError(
            f"{spec.label} is not available for the rows you can see (it is a platform-wide "
            "figure)."
        )
    releases = forecast_inputs.premieres(cursor, history, scope, ahead_days=horizon_days)
    if releases.empty:
        return series, None, ()
    share = premiere_share(releases["release_date"], history.start, history.end)
    if share > MAX_PREMIERE_SHARE:
        return (
            series,
            None,
            (
                f"Premieres are not modelled for this slice: a premiere's first "
                f"{PREMIERE_DAYS_AFTER + 1} days cover {share:.0%} of its history, too many to "
                "tell what one premiere adds; a planned premiere changes nothing here (narrow "
                "the slice, e.g. by kind or genre, or use a campaign with an assumed lift).",
            ),
        )
    events = F.premiere_events(releases["release_date"], PREMIERE_EVENT, PREMIERE_DAYS_AFTER)
    return series, events, ()


def build_id(cursor: duckdb.DuckDBPyConnection) -> str:
    """The extract's build id (a new one for every sync, erasure or demo build)."""
    row = cursor.execute("SELECT value FROM extract_meta WHERE key = 'build_id'").fetchone()
    return str(row[0]) if row and row[0] else "unknown"


def compute_forecast(
    cursor: duckdb.DuckDBPyConnection,
    history: Filters,
    scope: Scope,
    *,
    metric: str,
    params: F.ForecastParams,
    title_id: int | None = None,
    currency: str = BASE_CURRENCY,
    disk: DiskCache | None = None,
    threads: int = 2,
) -> F.Forecast | Refusal:
    """The forecast of one series (or why not), from the disk cache when it holds it."""
    build = key = None
    if disk is not None:
        build = build_id(cursor)
        definition = series_definition(history, metric, title_id, currency)
        key = F.cache_key(definition, scope, build, params, history.end)
        found = disk.get(build, key)
        if found is not None:
            FITS["disk"] += 1
            return found
    result: F.Forecast | Refusal
    try:
        series, events, notes = load_series(
            cursor, history, scope, metric, title_id, currency, params.horizon_days
        )
        if notes and params.events:
            # The planned premiere would be "an event with no past occurrence": say why instead.
            params = dataclasses.replace(params, events=())
        result = F.forecast(series, history.end, params, events=events, threads=threads)
        if notes:
            result = dataclasses.replace(result, notes=(*result.notes, *notes))
        FITS["fit"] += 1
    except F.ForecastError as exc:
        FITS["refused"] += 1
        result = Refusal.from_error(exc)
    if disk is not None and build is not None and key is not None:
        # A full or read-only disk costs the next viewer a fit, never this forecast.
        with contextlib.suppress(OSError):
            disk.put(build, key, result)
    return result


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Prophet's and cmdstanpy's console noise off for a batch (the CLI): INFO logs
    (models/forecasting.py raises their loggers once) and the warnings Prophet's own code raises
    on every fit. Changes the process's warning filters while it lasts, so it is for a
    single-threaded caller, never a page (the app's sessions run in threads)."""
    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


# --- the disk cache ------------------------------------------------------------------------------
_BUILD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class DiskCache:
    """Sealed forecasts on disk, one folder per extract build (module docstring)."""

    PURPOSE = b"spotlight forecast cache v1"

    def __init__(self, folder: Path, app_key: str):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        self.folder = Path(folder)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self.PURPOSE).derive(
            app_key.encode()
        )
        self._aead = AESGCM(key)

    def _path(self, build: str, key: str) -> Path | None:
        if not (_BUILD_RE.match(build) and _KEY_RE.match(key)):
            return None
        return self.folder / build / f"{key}.bin"

    def get(self, build: str, key: str) -> Any | None:
        from cryptography.exceptions import InvalidTag

        path = self._path(build, key)
        if path is None:
            return None
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], f"{build}/{key}".encode())
        except (InvalidTag, ValueError):
            return None  # not sealed by this app key for this entry: never unpickled
        try:
            # S301: only bytes this app sealed under its own key for this very entry reach here.
            return pickle.loads(plain)  # noqa: S301
        except Exception:
            return None

    def put(self, build: str, key: str, value: Any) -> None:
        path = self._path(build, key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(
            nonce,
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL),
            f"{build}/{key}".encode(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(sealed)
        os.replace(tmp, path)
        for other in self.folder.iterdir():
            if other.is_dir() and other.name != build:
                shutil.rmtree(other, ignore_errors=True)

    def entries(self, build: str) -> int:
        folder = self.folder / build
        return sum(1 for _ in folder.glob("*.bin")) if folder.is_dir() else 0


def disk_cache_for(settings: Any) -> DiskCache | None:
    """The disk cache in the settings' data folder, or None when the app key is unavailable."""
    try:
        return DiskCache(Path(settings.data_path) / CACHE_FOLDER, settings.secret("app_key"))
    except Exception:
        return None


# --- the allowlisted queries (components/queries.py) ---------------------------------------------
def forecast_query(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    metric: str,
    params: F.ForecastParams,
    money: bool,
    title_id: int | None = None,
    currency: str = BASE_CURRENCY,
) -> F.Forecast | Refusal:
    """``queries.run(..., "forecast" or "forecast_money", history, metric=, params=,
    title_id=)``: cached per scope and extract by queries.run, then by the disk cache. Money
    metrics only under "forecast_money" (which needs see_money), the others only under
    "forecast". A what-if (events or regressors of one user's) is kept in memory only: nobody
    else is likely to ask for it again."""
    if metric in metrics.METRICS and metrics.METRICS[metric].money != money:
        return Refusal(
            f"{metrics.METRICS[metric].label} is "
            + ("not a money metric." if money else "money: it needs the money forecast."),
            "ForecastParamsError",
        )
    whatif = bool(params.events or params.what_ifs)
    return compute_forecast(
        cursor,
        filters,
        scope,
        metric=metric,
        params=params,
        title_id=title_id,
        currency=currency,
        disk=None if whatif else disk_cache_for(app_context().settings),
    )


def as_of_query(cursor: duckdb.DuckDBPyConnection) -> tuple[date, date, date] | None:
    return last_complete_day(cursor)


def title_features_query(
    cursor: duckdb.DuckDBPyConnection, scope: Scope, money: bool = False
) -> dict[str, Any]:
    return title_features(cursor, None, scope, money=money)


@dataclass(frozen=True, eq=False)
class SuccessOutcome:
    """A fitted success model, or why there is none (too few titles in the scope)."""

    model: S.SuccessModel | None
    error: str | None
    titles: int


def success_query(
    cursor: duckdb.DuckDBPyConnection, scope: Scope, money: bool = False, early_days: int = 0
) -> SuccessOutcome:
    """The success model trained on the scope's titles only. Under a creator scope with too few
    titles there is no platform-wide fallback: its genre medians, held-out figures and typical
    values would be other creators' numbers (SECURITY.md #7)."""
    features = title_features(cursor, None, scope, money=money)
    n = len(features["titles"])
    try:
        model = S.fit_success_model(features, S.SuccessConfig(early_days=int(early_days)))
    except S.SuccessDataError as exc:
        return SuccessOutcome(None, str(exc), n)
    FITS["success"] += 1
    return SuccessOutcome(model, None, n)


# --- precompute (cli.py forecast --all) ----------------------------------------------------------
@dataclass
class PrecomputeResult:
    """What ``precompute`` did: per series (label, outcome, seconds) and the totals."""

    as_of: date | None
    build: str
    rows: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for _, o, _ in self.rows if o == outcome)

    @property
    def failed(self) -> list[tuple[str, str, float]]:
        return [r for r in self.rows if r[1].startswith("error")]


def precompute_definitions(
    cursor: duckdb.DuckDBPyConnection, first_day: date, as_of: date, top_titles: int
) -> list[tuple[str, Filters, int | None]]:
    """The platform, every genre with views, and the ``top_titles`` most viewed titles of the
    91 days to ``as_of``: (label, history filters, title id)."""
    everything = Scope.everything()
    base = history_filters(None, first_day, as_of)
    genres = metrics.breakdown(cursor, base, everything, "genre", ("views",))
    found: list[tuple[str, Filters, int | None]] = [("platform", base, None)]
    for genre in sorted(str(g) for g in genres["key"].dropna()):
        found.append((f"genre {genre}", base.with_dimension("genre", [genre]), None))
    if top_titles > 0:
        top = metrics.top_titles(cursor, base, everything, 91, top_titles)
        for tid, name in zip(top["title_id"], top["name"], strict=True):
            found.append((f"title {int(tid)} {name}", base, int(tid)))
    return found


def precompute(
    cursor: duckdb.DuckDBPyConnection,
    disk: DiskCache,
    defaults: ForecastDefaults,
    *,
    currency: str = BASE_CURRENCY,
    top_titles: int = PRECOMPUTE_TOP_TITLES,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    progress: Callable[[int, int, str], None] | None = None,
) -> PrecomputeResult:
    """Forecast what the page shows first (views, daily, ``horizon_days``, the shared defaults,
    no what-if) for the platform, every genre and the top titles, into the disk cache. One
    failed series is recorded and the batch goes on."""
    started = time.perf_counter()
    found = last_complete_day(cursor)
    build = build_id(cursor)
    if found is None:
        return PrecomputeResult(None, build)
    first_day, _last, as_of = found
    result = PrecomputeResult(as_of, build)
    params = forecast_params(defaults, horizon_days, "D")
    definitions = precompute_definitions(cursor, first_day, as_of, top_titles)
    with quiet():
        _precompute_each(cursor, disk, params, currency, definitions, result, progress)
    result.seconds = time.perf_counter() - started
    return result


def _precompute_each(
    cursor: duckdb.DuckDBPyConnection,
    disk: DiskCache,
    params: F.ForecastParams,
    currency: str,
    definitions: list[tuple[str, Filters, int | None]],
    result: PrecomputeResult,
    progress: Callable[[int, int, str], None] | None,
) -> None:
    for i, (label, history, title_id) in enumerate(definitions):
        if progress is not None:
            progress(i, len(definitions), label)
        t0 = time.perf_counter()
        before = FITS["disk"]
        try:
            out = compute_forecast(
                cursor,
                history,
                Scope.everything(),
                metric="views",
                params=params,
                title_id=title_id,
                currency=currency,
                disk=disk,
            )
            if isinstance(out, Refusal):
                outcome = f"refused: {out.kind}"
            else:
                outcome = "cached" if FITS["disk"] > before else "forecast"
        except Exception as exc:  # one failed series never stops the batch
            outcome = f"error: {type(exc).__name__}: {exc}"
        result.rows.append((label, outcome, time.perf_counter() - t0))
    if progress is not None:
        progress(len(definitions), len(definitions), "done")


# --- the page: shared pieces ---------------------------------------------------------------------
def defaults_store(ctx: AppContext) -> ForecastDefaultsStore:
    return ForecastDefaultsStore(ctx.security.db, ctx.security.audit, ctx.security.clock)


def _num(value: float, fmt: str = "{:.2f}") -> str:
    return fmt.format(value) if value is not None and math.isfinite(value) else "—"


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _unit_title(ctx: AppContext, metric: str) -> str:
    spec = metrics.METRICS[metric]
    if spec.money:
        return f"{spec.label} ({queries.reporting_currency(ctx)})"
    if metric == "views":
        return "Views (hours viewed ÷ runtime)"
    return f"{spec.label} ({spec.unit})" if spec.unit else spec.label


def _naive_label(freq: str) -> str:
    return "Same day last week (naive)" if freq == "D" else "Same as last week (naive)"


def chart_frame(
    result: F.Forecast, shown_from: date, whatif: F.Forecast | None = None
) -> pd.DataFrame:
    """The chart's numbers: history from ``shown_from``, then the forecast (and what-if)."""
    history = result.history[result.history["ds"] >= pd.Timestamp(shown_from)]
    fut = result.forecast.rename(
        columns={
            "yhat": "forecast",
            "yhat_lower": "forecast_low_80",
            "yhat_upper": "forecast_high_80",
        }
    )
    frame = pd.concat([history.rename(columns={"y": "actual"}), fut], ignore_index=True, sort=False)
    if whatif is not None:
        alt = whatif.forecast[["ds", "yhat", "yhat_lower", "yhat_upper"]].rename(
            columns={
                "yhat": "what_if",
                "yhat_lower": "what_if_low_80",
                "yhat_upper": "what_if_high_80",
            }
        )
        frame = frame.merge(alt, on="ds", how="left")
    frame = frame.rename(columns={"ds": "date"})
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame


def forecast_chart(
    result: F.Forecast,
    *,
    shown_from: date,
    title: str,
    y_title: str,
    key: str,
    show_naive: bool,
    whatif: F.Forecast | None = None,
) -> None:
    """History, forecast and its 80% band (Okabe–Ito, dashes), the naive forecast when asked,
    the what-if beside the base; then the same numbers as a table (charts.table_alternative)."""
    frame = chart_frame(result, shown_from, whatif)
    width = result.params.interval_width
    fut = frame[frame["forecast"].notna()]
    hist = frame[frame["actual"].notna()]
    blue, orange, green = charts.OKABE_ITO[0], charts.OKABE_ITO[1], charts.OKABE_ITO[2]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=fut["date"],
            y=fut["forecast_high_80"],
            mode="lines",
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fut["date"],
            y=fut["forecast_low_80"],
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor=_rgba(orange, 0.25),
            name=f"{width:.0%} interval",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=hist["date"], y=hist["actual"], name="Actual", line={"color": blue, "width": 2}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fut["date"],
            y=fut["forecast"],
            name="Base forecast" if whatif is not None else "Forecast",
            line={"color": orange, "width": 3, "dash": "dash"},
        )
    )
    if whatif is not None:
        fig.add_trace(
            go.Scatter(
                x=fut["date"],
                y=fut["what_if"],
                name="What-if",
                line={"color": green, "width": 3, "dash": "dashdot"},
            )
        )
    if show_naive:
        fig.add_trace(
            go.Scatter(
                x=fut["date"],
                y=fut["naive"],
                name=_naive_label(result.params.freq),
                line={"color": charts.COMPARISON_COLOUR, "width": 2, "dash": "dot"},
            )
        )
    x_title = "Day (UTC)" if result.params.freq == "D" else "Week starting Monday (UTC)"
    st.plotly_chart(
        charts._layout(fig, title, x_title, y_title, height=400),
        key=f"chart-{key}",
        config={"displaylogo": False},
    )
    table = frame.rename(
        columns={
            "actual": "Actual",
            "forecast": "Forecast",
            "forecast_low_80": f"Forecast, low {width:.0%}",
            "forecast_high_80": f"Forecast, high {width:.0%}",
            "naive": _naive_label(result.params.freq),
            "what_if": "What-if",
            "what_if_low_80": f"What-if, low {width:.0%}",
            "what_if_high_80": f"What-if, high {width:.0%}",
            "date": "Day" if result.params.freq == "D" else "Week starting",
        }
    )
    charts.table_alternative(table, title, key)


def backtest_panel(result: F.Forecast) -> None:
    """The backtest's scores and the verdict in plain words."""
    bt = result.backtest
    naive = "naive"
    unit = "days" if bt.freq == "D" else "weeks"
    st.markdown(
        f"**Backtest** · {bt.folds} fold{'s' if bt.folds > 1 else ''} of {bt.horizon_steps} {unit}"
    )
    left, right = st.columns(2)
    left.metric(
        "MASE, model",
        _num(bt.mase),
        help="Mean absolute error scaled by the seasonal-naive forecast's in-sample error: below "
        "1 is better than that naive forecast was in the history.",
        border=True,
    )
    right.metric(
        f"MASE, {naive}",
        _num(bt.naive_mase),
        help="The same score for the naive forecast ("
        + ("the same day last week" if bt.freq == "D" else "the same as last week")
        + ") on the same backtest days.",
        border=True,
    )
    left.metric(
        f"{bt.pct_error_kind}, model",
        _num(bt.pct_error, "{:.0%}"),
        help="Typical percentage error; sMAPE replaces MAPE when an actual is near zero.",
        border=True,
    )
    right.metric(f"{bt.pct_error_kind}, {naive}", _num(bt.naive_pct_error, "{:.0%}"), border=True)
    st.metric(
        f"{bt.interval_width:.0%} interval coverage",
        _num(bt.coverage, "{:.0%}"),
        help=f"Share of the backtest's actual {unit} inside the model's {bt.interval_width:.0%} "
        f"interval: close to {bt.interval_width:.0%} means the band is honest.",
        border=True,
    )
    (st.success if bt.beats_naive else st.warning)(result.verdict, icon="🧪")


# --- the page: the forecast ----------------------------------------------------------------------
def forecast_query_name(metric: str) -> str:
    """The allowlisted query for a metric: money metrics need see_money (QUERY_REQUIRES)."""
    return "forecast_money" if metrics.METRICS[metric].money else "forecast"


def _metric_choices(principal: Principal, single_title: bool) -> list[str]:
    allowed = set(metrics.visible_metrics(principal.can("see_money")))
    pool = TITLE_METRICS if single_title else FORECAST_METRICS
    return [m for m in pool if m in allowed]


def _whatif_inputs(as_of: date, single_title: bool) -> None:
    """The what-if form; the submitted spec goes to this tab's session state only."""
    spec = st.session_state.get(WHATIF_KEY) or {}
    with st.form("forecast-whatif-form"):
        first, second, third = st.columns(3)
        with first:
            premiere = st.checkbox(
                "A planned premiere",
                value="premiere" in spec,
                disabled=single_title,
                help="Takes the effect learned from this slice's past premieres."
                if not single_title
                else "A single title's forecast has no premiere events.",
            )
            premiere_day = st.date_input(
                "Premiere day",
                value=spec.get("premiere", as_of + timedelta(days=14)),
                min_value=as_of + timedelta(days=1),
                key="forecast-whatif-premiere-day",
            )
        with second:
            price = st.checkbox("A price change", value="price" in spec)
            price_from = st.date_input(
                "Price change from",
                value=(spec.get("price") or {}).get("from", as_of + timedelta(days=7)),
                key="forecast-whatif-price-from",
            )
            price_effect = st.number_input(
                "Assumed effect (%)",
                min_value=-90.0,
                max_value=300.0,
                value=float((spec.get("price") or {}).get("effect", -5.0)),
                step=1.0,
                key="forecast-whatif-price-effect",
            )
            price_learn = st.checkbox(
                "Learn its effect from the history (the change already happened)",
                value=bool((spec.get("price") or {}).get("learn", False)),
                key="forecast-whatif-price-learn",
            )
        with third:
            campaign = st.checkbox("A campaign", value="campaign" in spec)
            chosen = spec.get("campaign") or {}
            campaign_dates = st.date_input(
                "Campaign from – to",
                value=(
                    chosen.get("start", as_of + timedelta(days=7)),
                    chosen.get("end", as_of + timedelta(days=20)),
                ),
                key="forecast-whatif-campaign-dates",
            )
            campaign_effect = st.number_input(
                "Assumed lift (%)",
                min_value=-90.0,
                max_value=300.0,
                value=float(chosen.get("effect", 10.0)),
                step=1.0,
                key="forecast-whatif-campaign-effect",
            )
        submitted = st.form_submit_button("Show the what-if", type="primary")
    if submitted:
        new: dict[str, Any] = {}
        if premiere and not single_title:
            new["premiere"] = premiere_day
        if price:
            new["price"] = {"from": price_from, "effect": price_effect, "learn": price_learn}
        if campaign:
            if isinstance(campaign_dates, tuple | list) and len(campaign_dates) == 2:
                start, end = campaign_dates
                new["campaign"] = {"start": start, "end": end, "effect": campaign_effect}
            else:
                st.warning("Pick the campaign's last day too.", icon="📅")
        st.session_state[WHATIF_KEY] = new or None


def whatif_parts(spec: dict[str, Any]) -> tuple[tuple[F.Event, ...], tuple[F.WhatIf, ...]]:
    """A what-if spec (this tab's session state) as the model's events and regressors."""
    events: list[F.Event] = []
    what_ifs: list[F.WhatIf] = []
    if spec.get("premiere"):
        events.append(F.Event(PREMIERE_EVENT, spec["premiere"], days_after=PREMIERE_DAYS_AFTER))
    if spec.get("price"):
        price = spec["price"]
        effect = None if price.get("learn") else float(price["effect"]) / 100
        what_ifs.append(F.WhatIf("price change", ((price["from"], None),), effect))
    if spec.get("campaign"):
        c = spec["campaign"]
        what_ifs.append(F.WhatIf("campaign", ((c["start"], c["end"]),), float(c["effect"]) / 100))
    return tuple(events), tuple(what_ifs)


def _describe_whatif(spec: dict[str, Any]) -> str:
    parts = []
    if spec.get("premiere"):
        parts.append(f"a premiere on {spec['premiere']:%d %b %Y}")
    if spec.get("price"):
        p = spec["price"]
        how = "its effect learned" if p.get("learn") else f"{p['effect']:+.0f}% assumed"
        parts.append(f"a price change from {p['from']:%d %b %Y} ({how})")
    if spec.get("campaign"):
        c = spec["campaign"]
        parts.append(
            f"a campaign {c['start']:%d %b} – {c['end']:%d %b %Y} ({c['effect']:+.0f}% assumed)"
        )
    return ", ".join(parts)


def forecast_section(ctx: AppContext, principal: Principal, filters: Filters) -> None:
    found = queries.run(ctx, principal, "forecast_as_of")
    if found is None:
        st.info("The extract has no view sessions yet.", icon="📭")
        return
    first_day, last_day, complete = found
    as_of = min(filters.end, complete)
    stored = defaults_store(ctx).current()

    slice_col, metric_col, freq_col, horizon_col = st.columns([2, 2, 1.4, 2.2])
    with slice_col:
        kind = (
            st.segmented_control(
                "Forecast",
                ["slice", "title"],
                default="slice",
                format_func={"slice": "The filtered slice", "title": "One title"}.get,
                key="forecast-slice",
            )
            or "slice"
        )
    single_title = kind == "title"
    title_id: int | None = None
    names: dict[int, str] = {}
    if single_title:
        catalog = queries.run(ctx, principal, "title_catalog")
        if catalog.empty:
            st.info("There is no title in the catalog you can see.", icon="🎬")
            return
        names = dict(
            zip(catalog["title_id"].astype(int), catalog["label"].astype(str), strict=True)
        )
        title_id = st.selectbox(
            "Title",
            list(names),
            format_func=lambda t: names.get(t, str(t)),
            key="forecast-title",
            help="Titles of the catalog you can see; type to search.",
        )
    choices = _metric_choices(principal, single_title)
    with metric_col:
        metric = st.selectbox(
            "Metric",
            choices,
            format_func=lambda m: metrics.METRICS[m].label,
            key="forecast-metric",
        )
    freqs = ["D"] if metric in DAILY_ONLY else ["D", "W"]
    with freq_col:
        freq = (
            st.segmented_control(
                "Frequency",
                freqs,
                default="D",
                format_func=FREQ_LABELS.get,
                key="forecast-freq",
            )
            or "D"
        )
    if freq not in freqs:
        freq = "D"
    with horizon_col:
        horizon = st.slider(
            "Horizon (days)",
            F.MIN_HORIZON_DAYS,
            F.MAX_HORIZON_DAYS,
            DEFAULT_HORIZON_DAYS,
            key="forecast-horizon",
        )
    if metric in DAILY_ONLY:
        st.caption(
            f"{metrics.METRICS[metric].label} are forecast daily only: a week's distinct viewers "
            "are not the sum of its days."
        )
    if single_title:
        st.caption(
            "A single title's series covers every country and device: the filter bar's filters "
            "do not apply to it."
        )
    if principal.may("see_money") and not principal.can("see_money"):
        st.caption("🔐 Revenue metrics appear once you confirm 2FA in this tab.")

    history = history_filters(None if single_title else filters, first_day, as_of)
    params = forecast_params(stored.defaults, horizon, freq)
    query = forecast_query_name(metric)
    with st.spinner("Fitting the forecast and its backtest…"):
        result = queries.run(
            ctx, principal, query, history, metric=metric, title_id=title_id, params=params
        )
    fitted_to = as_of if freq == "D" else F.last_complete_week_end(as_of)
    told = [
        f"Fitted on complete {'days' if freq == 'D' else 'weeks'} from {first_day:%d %b %Y} to "
        f"{fitted_to:%d %b %Y}."
    ]
    if as_of < complete:
        told.append(f"The period ends on {filters.end:%d %b %Y}: the forecast starts after it.")
    elif complete < last_day:
        told.append(f"{last_day:%d %b %Y} is not complete yet, so it is not fitted.")
    if fitted_to < as_of:
        told.append("The current week is not complete yet, so it is not fitted.")
    st.caption(" ".join(told))
    if isinstance(result, Refusal):
        st.warning(result.message, icon="📏")
        return
    for note in result.notes:
        st.caption(f"ℹ️ {note}")

    spec = metrics.METRICS[metric]
    # Names come from the data: shown escaped in a caption, never in a chart's title (Plotly reads
    # a few HTML tags) or an expander's label (Markdown).
    if single_title and title_id is not None:
        slice_kind = "one title"
        st.caption(f"Title: {md_escape(names.get(title_id, title_id))}")
    elif filters.active_dimensions:
        slice_kind = "the filtered slice"
        st.caption(f"Slice: {md_escape(_slice_label(filters))}")
    else:
        slice_kind = "the platform"
    step = timedelta(days=7 if freq == "W" else 1)
    shown_from = min(filters.start, as_of - max(timedelta(days=horizon), 8 * step))
    chart_col, backtest_col = st.columns([3, 2])
    with chart_col:
        show_naive = not result.backtest.beats_naive or st.checkbox(
            "Also draw the naive forecast", key="forecast-show-naive"
        )
        forecast_chart(
            result,
            shown_from=shown_from,
            title=f"{spec.label}, {FREQ_LABELS[freq].lower()}: {slice_kind}, next {horizon} days",
            y_title=_unit_title(ctx, metric),
            key="forecast-main",
            show_naive=show_naive,
        )
    with backtest_col:
        backtest_panel(result)
    preds = result.backtest.predictions.copy()
    for col in ("cutoff", "ds"):
        preds[col] = pd.to_datetime(preds[col]).dt.date
    charts.table_alternative(
        preds.rename(columns={"ds": "date", "yhat": "model", "y": "actual"}),
        "Backtest: every fold's forecasts and actuals",
        "forecast-backtest",
    )
    st.caption(
        "Backtest: the model was refitted on the history up to each cutoff only and scored on "
        "the days after it, like the seasonal-naive forecast on the same days. Same defaults for "
        f"everyone: {_defaults_text(stored.defaults)} (see Defaults)."
    )

    st.subheader("What if …")
    st.caption(
        "Only you see a what-if: it is kept in this browser tab and never changes the forecast "
        "anyone else sees."
    )
    _whatif_inputs(as_of, single_title)
    chosen = st.session_state.get(WHATIF_KEY)
    if not chosen:
        return
    if st.button("Clear the what-if", key="forecast-whatif-clear"):
        st.session_state[WHATIF_KEY] = None
        st.rerun()
    try:
        events, what_ifs = whatif_parts(chosen)
        alt_params = dataclasses.replace(params, events=events, what_ifs=what_ifs)
    except F.ForecastError as exc:
        st.warning(md_escape(exc), icon="✏️")
        return
    with st.spinner("Fitting the what-if…"):
        alt = queries.run(
            ctx, principal, query, history, metric=metric, title_id=title_id, params=alt_params
        )
    if isinstance(alt, Refusal):
        hint = (
            " Untick “Learn its effect from the history” and give the assumed effect in %."
            if "to learn its effect" in alt.message
            else ""
        )
        st.warning(alt.message + hint, icon="✏️")
        return
    base_total = float(result.forecast["yhat"].sum())
    alt_total = float(alt.forecast["yhat"].sum())
    left, right = st.columns(2)
    left.metric(
        f"Base forecast, next {horizon} days",
        spec.format(base_total, currency=queries.reporting_currency(ctx)),
        border=True,
    )
    right.metric(
        f"With {_describe_whatif(chosen)}",
        spec.format(alt_total, currency=queries.reporting_currency(ctx)),
        delta=f"{alt_total / base_total - 1:+.1%}" if base_total else None,
        border=True,
    )
    for name, (how, value) in alt.effects.items():
        st.caption(
            f"{md_escape(name)}: effect {how}, {value:+.1%}"
            + (
                " per step while active"
                if how == "learned" and alt.params.seasonality_mode == "multiplicative"
                else ""
            )
        )
    for note in alt.notes:
        if note not in result.notes:
            st.caption(f"ℹ️ {note}")
    forecast_chart(
        result,
        shown_from=max(shown_from, as_of - max(timedelta(days=horizon // 2), 4 * step)),
        title=f"{spec.label}: the base forecast and your what-if",
        y_title=_unit_title(ctx, metric),
        key="forecast-whatif",
        show_naive=False,
        whatif=alt,
    )


def _slice_label(filters: Filters) -> str:
    active = [d for d in DIMENSIONS.values() if getattr(filters, d.field)]
    if not active:
        return "the platform"
    return "; ".join(f"{d.label.lower()} {', '.join(getattr(filters, d.field))}" for d in active)


def _defaults_text(defaults: ForecastDefaults) -> str:
    countries = ", ".join(defaults.countries) or "none"
    return (
        f"{defaults.seasonality_mode} seasonality, changepoint prior scale "
        f"{defaults.changepoint_prior_scale:g}, public holidays of {countries}"
    )


# --- the page: defaults --------------------------------------------------------------------------
def defaults_section(ctx: AppContext, principal: Principal) -> None:
    store = defaults_store(ctx)
    stored = store.current()
    st.markdown(
        "Every forecast on this page, and the precomputed ones, use these settings. They are "
        "the same for everyone."
    )
    d = stored.defaults
    one, two, three = st.columns(3)
    one.metric("Seasonality", d.seasonality_mode.capitalize(), border=True)
    two.metric("Changepoint prior scale", f"{d.changepoint_prior_scale:g}", border=True)
    three.metric("Public holidays of", ", ".join(d.countries) or "none", border=True)
    if stored.changed_by:
        st.caption(
            f"Last changed by {md_escape(stored.changed_by)} on "
            f"{stored.changed_at:%d %b %Y %H:%M} UTC (audited)."
        )
    else:
        st.caption("The built-in defaults: nobody has changed them.")
    st.caption(
        "Multiplicative seasonality suits a growing platform (the weekday swing grows with it); "
        "a larger changepoint prior scale lets the trend bend more (and overfit more)."
    )
    if not principal.may("change_models"):
        st.caption("Only analysts and administrators (change models) can change them.")
        return
    import holidays

    supported = sorted(holidays.list_supported_countries())
    with st.form("forecast-defaults-form"):
        mode = st.selectbox(
            "Seasonality",
            SEASONALITY_MODES,
            index=SEASONALITY_MODES.index(d.seasonality_mode),
            key="forecast-defaults-mode",
        )
        scale = st.number_input(
            "Changepoint prior scale",
            min_value=CHANGEPOINT_RANGE[0],
            max_value=CHANGEPOINT_RANGE[1],
            value=float(d.changepoint_prior_scale),
            step=0.01,
            format="%.3f",
            key="forecast-defaults-scale",
        )
        countries = st.multiselect(
            "Public holidays of",
            supported,
            default=[c for c in d.countries if c in supported],
            key="forecast-defaults-countries",
        )
        save = st.form_submit_button("Save for everyone", type="primary")
    if save:
        try:
            new = ForecastDefaults(mode, scale, tuple(countries))
            after = store.change(principal, new, client=auth.client_id())
        except DefaultsError as exc:
            st.error(md_escape(exc), icon="🚫")
            return
        except AccessDenied as denied:
            st.error(
                "Confirm 2FA in this tab first."
                if denied.reason == "mfa_required"
                else "Your role cannot change the forecast defaults.",
                icon="🚫",
            )
            return
        if after.audit_id == stored.audit_id:
            st.info("Nothing changed.", icon="ℹ️")
        else:
            st.success("Saved: every forecast now uses these settings.", icon="✅")


# --- the page: content success -------------------------------------------------------------------
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _genre_baseline(labelled: pd.DataFrame, row: pd.DataFrame, interval: float) -> dict[str, float]:
    """The planner's baseline for one title: its primary genre's median (and 10th-90th
    percentiles) of first-28-day views and completion among the titles with a known result."""
    log_views = np.log1p(labelled["views"].astype("float64"))
    v = S.genre_median_baseline(labelled, row, log_views, interval).iloc[0]
    starts = labelled["starts"].astype("float64")
    comp = labelled["completed"].astype("float64") / starts.where(starts > 0)
    c = S.genre_median_baseline(labelled, row, comp, interval).iloc[0]
    return {
        "views": float(np.expm1(v["pred"])),
        "views_low": float(np.expm1(v["low"])),
        "views_high": float(np.expm1(v["high"])),
        "completion": float(c["pred"]),
    }


def success_section(ctx: AppContext, principal: Principal) -> None:
    # Budget and licensing cost are money: features and model with them need see_money.
    money = principal.can("see_money")
    suffix = "_money" if money else ""
    features = queries.run(ctx, principal, f"forecast_title_features{suffix}")
    titles: pd.DataFrame = features["titles"]
    bounds = features["bounds"]
    if titles.empty or bounds is None:
        st.info("There is no title in the catalog you can see.", icon="🎬")
        return
    first_day, last_day = bounds
    scoped = not principal.scope.all_creators
    st.markdown(
        "Predicted first-28-day views and completion of a title before its release (or in its "
        "first days), against the simple baseline a planner would use: its genre's median."
    )
    st.caption(
        "Trained on "
        + (
            "your own titles only: no other creator's titles or figures are used or shown."
            if scoped
            else f"every title with a known first-28-day result ({int(titles['window_complete'].sum())} "
            "of the catalog's), validated on the latest releases held out by release date."
        )
    )
    requested = _requested_title()
    mode = (
        st.segmented_control(
            "Title",
            ["catalog", "planned", "released"],
            default="released" if requested is not None else "catalog",
            format_func={
                "catalog": "A title in the catalog",
                "planned": "A planned title",
                "released": "Predicted vs actual",
            }.get,
            key="forecast-success-mode",
        )
        or "catalog"
    )
    row: pd.DataFrame | None = None
    early = 0
    if mode == "released":
        _predicted_vs_actual(ctx, principal, titles, suffix, requested, scoped)
        return
    if mode == "catalog":
        upcoming = titles[
            ~titles["window_complete"]
            & (pd.to_datetime(titles["release_date"]) >= pd.Timestamp(first_day))
        ]
        if upcoming.empty:
            st.info(
                "No title of yours is before release or in its first 28 days: describe a "
                "planned title instead.",
                icon="🎬",
            )
            return
        labels = {
            int(r.title_id): f"{r.name} ({r.kind}, {r.genre}, "
            + (
                f"out {r.release_date:%d %b %Y})"
                if r.release_date > last_day
                else f"released {r.release_date:%d %b %Y}, day {int(r.days_observed)})"
            )
            for r in upcoming.itertuples()
        }
        chosen = st.selectbox(
            "Title before release or in its first days",
            list(labels),
            format_func=labels.get,
            key="forecast-success-title",
        )
        row = upcoming[upcoming["title_id"] == chosen].head(1)
        seen = int(row["days_observed"].iloc[0])
        early = max((k for k in EARLY_DAYS if k <= seen), default=0)
    else:
        creators = dict(queries.run(ctx, principal, "dimension_options")["creator"])
        row = _planned_title(titles, last_day, creators)
    with st.spinner("Training the success model…"):
        outcome = queries.run(ctx, principal, f"success_model{suffix}", early_days=early)
    if outcome.model is None:
        st.warning(
            f"{md_escape(outcome.error)} "
            + (
                "There is no platform-wide fallback for your account: it would rest on other "
                "creators' results."
                if scoped
                else ""
            ),
            icon="📏",
        )
        return
    model: S.SuccessModel = outcome.model
    if early:
        st.caption(f"Uses the title's views in its first {early} day{'s' if early > 1 else ''}.")
    pred = model.predict(row).iloc[0]
    labelled = titles[titles["window_complete"]]
    base = _genre_baseline(labelled, row, model.config.interval)
    genre = md_escape(row["genre"].iloc[0])
    one, two, three = st.columns(3)
    one.metric(
        "Predicted first-28-day views",
        f"{pred['views']:,.0f}",
        delta=f"{pred['views'] / base['views'] - 1:+.0%} vs genre median"
        if base["views"] > 0
        else None,
        delta_color="off",
        help="Runtime-normalised views in the first 28 days, release day included.",
        border=True,
    )
    two.metric(
        f"Genre median ({genre})",
        f"{base['views']:,.0f}",
        help="The baseline: the median first-28-day views of the genre's titles.",
        border=True,
    )
    three.metric(
        "Predicted completion",
        f"{pred['completion']:.0%}",
        delta=f"{(pred['completion'] - base['completion']) * 100:+.0f} points vs genre median"
        if math.isfinite(base["completion"])
        else None,
        delta_color="off",
        border=True,
    )
    width = model.config.interval
    st.caption(
        f"{width:.0%} interval: {pred['views_low']:,.0f} – {pred['views_high']:,.0f} views "
        f"(the genre {genre}'s range: {base['views_low']:,.0f} – {base['views_high']:,.0f}); "
        f"completion {pred['completion_low']:.0%} – {pred['completion_high']:.0%}."
    )
    (st.success if model.evaluation["beats_baseline"] else st.warning)(S.summary(model), icon="🧪")

    st.markdown("**Main factors**")
    factors = model.explain(row).head(6)
    if factors.empty:
        st.caption("Every feature of this title is at its typical value.")
    else:
        shown = factors.assign(
            value=[
                _fmt_value(f, v) for f, v in zip(factors["feature"], factors["value"], strict=True)
            ],
            typical=[
                _fmt_value(f, v)
                for f, v in zip(factors["feature"], factors["typical"], strict=True)
            ],
        )[["label", "value", "typical", "views_ratio", "completion_change"]]
        st.dataframe(
            shown,
            hide_index=True,
            column_config={
                "label": st.column_config.TextColumn("Factor"),
                "value": st.column_config.TextColumn("This title"),
                "typical": st.column_config.TextColumn("Typical title"),
                "views_ratio": st.column_config.NumberColumn(
                    "Views vs with the typical value", format="%.2fx"
                ),
                "completion_change": st.column_config.NumberColumn(
                    "Completion change", format="percent"
                ),
            },
        )
        st.caption(
            "Each factor alone set to the typical title's value: how much the prediction moves. "
            "One at a time: the effects do not add up to the prediction."
        )

    st.markdown("**What if** (for you only: nothing is saved)")
    field = (
        st.segmented_control(
            "Change",
            ["release_month", "runtime_min", "genre"],
            default="release_month",
            format_func={
                "release_month": "Release month",
                "runtime_min": "Runtime",
                "genre": "Genre",
            }.get,
            key="forecast-success-whatif",
        )
        or "release_month"
    )
    if field == "release_month":
        values: list[Any] = list(range(1, 13))
    elif field == "runtime_min":
        runtime = float(row["runtime_min"].iloc[0] or 60.0)
        values = sorted({round(runtime * f) for f in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)})
    else:
        values = sorted(str(g) for g in titles["genre"].dropna().unique())
    table = model.what_if(row, **{field: values})
    table["label"] = [
        _MONTHS[int(v) - 1]
        if field == "release_month"
        else (f"{v:.0f} min" if field == "runtime_min" else str(v))
        for v in table["value"]
    ]
    charts.bar_chart(
        table[["label", "views", "views_low", "views_high", "completion", "views_change"]],
        category="label",
        value="views",
        title=f"Predicted first-28-day views by {field.replace('_min', '').replace('_', ' ')}",
        value_title="Views in the first 28 days (hours viewed ÷ runtime)",
        key="forecast-success-whatif-chart",
        horizontal=field == "genre",
    )


# Features the success model keeps as log(1 + x): shown as x.
_LOG_FEATURES = (
    "creator_prior_median",
    "series_prior_median",
    "audience_before",
    "log_budget",
    "log_licensing_cost",
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _fmt_value(feature: str, value: Any) -> str:
    """A feature's value as a planner reads it: views rather than their log, month and weekday
    names, flags as yes/no."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if not isinstance(value, int | float | np.number):
        return str(value)
    number = float(value)
    if feature in _LOG_FEATURES or feature.startswith("log_views_day_"):
        return f"{math.expm1(number):,.0f}"
    if feature == "release_month" and 1 <= number <= 12:
        return _MONTHS[int(number) - 1]
    if feature == "release_weekday" and 0 <= number <= 6:
        return _WEEKDAYS[int(number)]
    if feature.startswith("has_"):
        return "yes" if number else "no"
    if feature == "runtime_min":
        return f"{number:,.0f} min"
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def _planned_title(
    titles: pd.DataFrame, last_day: date, creator_names: dict[str, str]
) -> pd.DataFrame:
    """A planned title described in a few fields (nothing is saved)."""

    def options(column: str) -> list[str]:
        return sorted(str(v) for v in titles[column].dropna().unique())

    def common(column: str) -> str:
        mode = titles[column].dropna().astype(str).mode()
        return str(mode.iloc[0]) if len(mode) else ""

    genres, kinds = options("genre"), options("kind")
    kind_default = "movie" if "movie" in kinds else common("kind")
    languages, ratings = options("language"), options("maturity")
    creators = sorted(int(c) for c in titles["creator_id"].dropna().unique())
    a, b, c = st.columns(3)
    genre = a.selectbox("Genre", genres, index=genres.index(common("genre")), key="planned-genre")
    kind = b.selectbox("Kind", kinds, index=kinds.index(kind_default), key="planned-kind")
    runtime = c.number_input(
        "Runtime (min)", min_value=1, max_value=600, value=90, key="planned-runtime"
    )
    language = a.selectbox(
        "Language", languages, index=languages.index(common("language")), key="planned-language"
    )
    maturity = b.selectbox(
        "Maturity rating", ratings, index=ratings.index(common("maturity")), key="planned-maturity"
    )
    release = c.date_input(
        "Release day", value=last_day + timedelta(days=30), key="planned-release"
    )
    creator = a.selectbox(
        "Creator (its track record counts)",
        [None, *creators],
        format_func=lambda v: (
            "A new creator" if v is None else creator_names.get(str(v), f"Creator {v}")
        ),
        key="planned-creator",
    )
    return pd.DataFrame(
        [
            {
                "title_id": -1,
                "name": "Planned title",
                "kind": kind,
                "series_name": None,
                "season": None,
                "episode": None,
                "genre": genre,
                "genres": genre,
                "release_date": release,
                "runtime_min": float(runtime),
                "language": language,
                "maturity": maturity,
                "creator_id": creator if creator is not None else -1,
                "budget": np.nan,
                "licensing_cost": np.nan,
                **{f"views_day_{k}": 0.0 for k in EARLY_DAYS},
            }
        ]
    )


def _requested_title() -> int | None:
    """The title a link asked for (``?title=`` from the Compare page), if it is a number."""
    raw = st.query_params.get("title")
    if raw is None or not str(raw).isascii() or not str(raw).isdigit() or len(str(raw)) > 10:
        return None
    return int(raw)


def _predicted_vs_actual(
    ctx: AppContext,
    principal: Principal,
    titles: pd.DataFrame,
    suffix: str,
    requested: int | None,
    scoped: bool,
) -> None:
    """What the model predicted before release against what happened, for the titles it never
    saw: the latest releases, held out by release date when it was evaluated. An older title
    trained the model, so a "prediction" for it would be a look at its own answer."""
    with st.spinner("Training the success model…"):
        outcome = queries.run(ctx, principal, f"success_model{suffix}", early_days=0)
    if outcome.model is None:
        st.warning(md_escape(outcome.error), icon="📏")
        return
    model: S.SuccessModel = outcome.model
    held = model.test_predictions
    names = dict(zip(titles["title_id"].astype(int), titles["name"], strict=True))
    held = held[held["title_id"].astype(int).isin(names)]
    if held.empty:
        st.info("No title you can see was held out of the model's training.", icon="🎬")
        return
    first = pd.Timestamp(held["release_date"].min())
    options = [int(t) for t in held.sort_values("release_date", ascending=False)["title_id"]]
    if requested is not None and requested not in options:
        if requested in names:
            st.info(
                f"“{md_escape(names[requested])}” was released before {first:%d %b %Y} and helped "
                "train the model, so a prediction for it would not be honest. Predicted against "
                f"actual is shown for the titles released from {first:%d %b %Y} on, which the "
                "model never saw.",
                icon="ℹ️",
            )
        requested = None
    chosen = st.selectbox(
        "Released title (held out of training)",
        options,
        index=options.index(requested) if requested in options else 0,
        format_func=lambda t: names.get(t, f"Title {t}"),
        key="forecast-success-released",
    )
    row = held[held["title_id"].astype(int) == chosen].iloc[0]
    one, two, three = st.columns(3)
    one.metric(
        "Predicted first-28-day views",
        f"{row['predicted']:,.0f}",
        help=f"{model.config.interval:.0%} interval {row['low']:,.0f} – {row['high']:,.0f}.",
        border=True,
    )
    two.metric(
        "Actual",
        f"{row['views']:,.0f}",
        delta=f"{row['views'] / row['predicted'] - 1:+.0%} vs predicted"
        if row["predicted"] > 0
        else None,
        delta_color="off",
        border=True,
    )
    three.metric(
        "Genre median (the baseline)",
        f"{row['baseline']:,.0f}",
        help="What a planner without the model would have expected.",
        border=True,
    )
    inside = row["low"] <= row["views"] <= row["high"]
    st.caption(
        ("Inside" if inside else "Outside")
        + f" the {model.config.interval:.0%} interval. Completion: predicted "
        f"{row['predicted_completion']:.0%}, actual {row['completion']:.0%}. "
        + ("Trained on your own titles only." if scoped else "")
    )


VIEWS = {
    "forecast": "📈 Forecast",
    "success": "🎬 Content success",
    "defaults": "⚙️ Defaults",
}


def page(ctx: AppContext, principal: Principal, filters: Filters) -> None:
    """The Forecast page below the filter bar: one view at a time (tabs would run all three)."""
    linked = st.query_params.get("view") if st.query_params.get("view") in VIEWS else None
    view = (
        st.segmented_control(
            "Show",
            list(VIEWS),
            default=linked or "forecast",
            format_func=VIEWS.get,
            key="forecast-view",
        )
        or "forecast"
    )
    if view == "forecast":
        forecast_section(ctx, principal, filters)
    elif view == "success":
        success_section(ctx, principal)
    else:
        defaults_section(ctx, principal)
