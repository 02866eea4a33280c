"""Forecasts of a daily or weekly additive series with Prophet, each with its backtest.

What it forecasts: any additive series (views, watch hours, new subscribers, net revenue...) handed
in as a pandas Series indexed by date. Nothing here reads data or imports streamlit; the caller
gets the series from ``data/queries/`` and passes the last complete day (the current day, or week,
is never fitted: everything after ``last_complete`` is dropped).

The model. Prophet (``prophet`` pinned in requirements.txt; its cmdstan binary ships in the wheel,
so it fits offline), fitted by MAP (``mcmc_samples=0``): a piecewise-linear trend, weekly
seasonality (daily series), yearly seasonality (from about a year of history, see below), the
public holidays of the chosen countries (the ``holidays`` package Prophet itself uses; same-named
holidays on the same day in several countries are one holiday), events such as title premieres,
and what-if regressors (a price change as a step, a campaign as a window). Seasonality is
multiplicative by default, because a growing platform's weekday swing grows with it: on the
tests' 60,000-view demo platform, four-fold backtests, MASE 1.09 against 1.15 for the additive
model at 28 days (the seasonal-naive forecast: 1.29), and for its Comedy genre 1.39 against 2.67
at 90 days. Yearly seasonality is added as an explicit Fourier series of order 6 rather than Prophet's
10: with one to two years of history the higher harmonics fit one year's accidents (order 6
backtested better than 10 on both series at both horizons; order 3 was better once).

How much history. A daily forecast needs 21 days (14 to learn the weekly pattern, 7 to test
against); a weekly one 12 weeks (8 to fit, 4 to test). Yearly seasonality is on when the history
holds a full year for the first backtest fold plus 8 weeks to test on (``YEARLY_MIN_DAYS``), off
below that, and the result says which and why. A series whose days are more than 30% zero or
missing (after its leading zeros: a title before release) is refused as too sparse. Refusals are
``TooShortError`` / ``TooSparseError`` with a message fit for a user, never a flat line.

The backtest: rolling-origin cross-validation (Hyndman's "evaluation on a rolling forecasting
origin"), the scheme of Prophet's ``diagnostics.cross_validation``: at each cutoff a model built
exactly like the final one (``build_model``: same seasonalities, holidays, regressors and priors,
what ``cross_validation`` gets from ``prophet_copy``) is fitted on the history up to the cutoff
only and forecasts the next ``h`` steps. It is our loop rather than ``cross_validation`` itself
because (1) the final model and the folds are independent fits, so they run on two threads at
once (cmdstan fits in a subprocess; ``cross_validation`` can parallelise only the folds, after the
final fit), (2) each fold's interval sampling is seeded (Prophet draws from numpy's global
generator), and (3) the seasonal-naive forecast and its scale come from exactly the same folds.
Folds: up to ``params.folds`` (4) non-overlapping windows at the end of the history, ``h`` = the
forecast's horizon where the history allows, else shorter (the result says so); the first fold
keeps at least 14 days of training (366 with yearly seasonality, so the cycle is seen once). Five
Prophet fits (MAP, ``mcmc_samples=0``; 300 interval draws) on two years of daily data take one to
three seconds on two cores, most of it Prophet's own Python (``bench/forecast.py``).

Scores, over every fold's predictions (METRICS.md, forecast error):

- MAPE, mean |y - yhat| / |y|; sMAPE, mean 2|y - yhat| / (|y| + |yhat|), instead when an actual
  is near zero (below 5% of the history's mean level), where MAPE explodes;
- MASE (Hyndman & Koehler, 2006): |y - yhat| scaled by the in-sample MAE of the seasonal-naive
  forecast on the fold's training data, (1/(n-m)) sum |y_t - y_{t-m}|, m = 7 for daily series
  (the weekly season) and 1 for weekly series ("same as last week"); averaged over all points;
- the same MASE for the seasonal-naive forecast itself on the same folds (y_{t-m*ceil(k/m)}, k
  steps after the cutoff), so "beats the naive forecast" means a smaller scaled error on the same
  days — a model with MASE above 1 can still beat it at long horizons, and one below 1 can lose;
- coverage: the share of actuals inside the fold's ``interval_width`` (80%) interval.

``cache_key`` gives a deterministic key for (series definition, scope, data build, parameters,
last complete day) for Streamlit's cache or a disk cache; ``forecast`` is pure: equal inputs give
equal outputs (interval draws are seeded with ``params.seed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

FREQS: tuple[str, ...] = ("D", "W")
MIN_HORIZON_DAYS = 7
MAX_HORIZON_DAYS = 365
# How much history a forecast needs, in steps of its frequency: enough to fit, enough to test.
MIN_FIT_STEPS = {"D": 14, "W": 8}  # two full weeks for the weekly pattern; two months of weeks
MIN_TEST_STEPS = {"D": 7, "W": 4}
# Yearly seasonality: the first backtest fold must see a whole year, then 8 weeks to test on.
YEARLY_INITIAL_DAYS = 366
YEARLY_MIN_DAYS = YEARLY_INITIAL_DAYS + 56
MAX_ZERO_SHARE = 0.3
# An actual below this share of the history's mean level counts as near zero (sMAPE, not MAPE).
NEAR_ZERO_SHARE = 0.05
SEASON = {"D": 7, "W": 1}
STEP_DAYS = {"D": 1, "W": 7}
YEARLY_PERIOD_DAYS = 365.25
# A learned what-if needs this many steps inside it and outside it in the history.
MIN_REGRESSOR_STEPS = {"D": 7, "W": 2}
MODEL_VERSION = "forecasting-1"
YEARLY_MODES: tuple[str, ...] = ("auto", "on", "off")
SEASONALITY_MODES: tuple[str, ...] = ("additive", "multiplicative")


class ForecastError(ValueError):
    """A forecast that cannot be made as asked; the message is fit to show a user."""


class ForecastParamsError(ForecastError):
    """Parameters out of range (horizon, frequency, countries, a what-if without an effect)."""


class NotForecastableError(ForecastError):
    """The series itself cannot support a forecast. ``needed`` and ``have`` are in ``unit``."""

    def __init__(self, message: str, *, needed: float, have: float, unit: str) -> None:
        super().__init__(message)
        self.needed = needed
        self.have = have
        self.unit = unit


class TooShortError(NotForecastableError):
    """Not enough complete history to fit and to test the forecast."""


class TooSparseError(NotForecastableError):
    """Too many zero or missing values for a forecast to mean anything."""


# --- parameters ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """A one-off event to add to the model, e.g. a planned premiere (a what-if).

    It takes the effect learned for past events of the same ``name`` (for instance the
    ``premiere`` rows passed as ``events``); a name with no past occurrence changes nothing, and
    the forecast says so.
    """

    name: str
    day: date
    days_before: int = 0
    days_after: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ForecastParamsError("An event needs a name.")
        if type(self.day) is not date:
            raise ForecastParamsError(f"An event's day must be a date, got {self.day!r}.")
        if not (0 <= int(self.days_before) <= 30 and 0 <= int(self.days_after) <= 30):
            raise ForecastParamsError("An event's window reaches at most 30 days either side.")


@dataclass(frozen=True)
class WhatIf:
    """A regressor that is 1 on the days of its periods and 0 elsewhere.

    A price change is one period with no end (a step); a campaign is a period with an end
    (inclusive). When the history has at least ``MIN_REGRESSOR_STEPS`` steps inside and outside
    the periods, Prophet learns the effect and applies it on future days in the periods; then
    ``effect`` must be None. Otherwise the effect cannot be learned and ``effect`` is the assumed
    relative change (0.1 = +10%) applied to the forecast and its interval on those future days.
    """

    name: str
    periods: tuple[tuple[date, date | None], ...]
    effect: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ForecastParamsError("A what-if needs a name.")
        periods = tuple((p[0], p[1]) for p in self.periods)
        if not periods:
            raise ForecastParamsError(f"The what-if {self.name!r} needs at least one period.")
        for start, end in periods:
            if type(start) is not date or (end is not None and type(end) is not date):
                raise ForecastParamsError(f"The what-if {self.name!r} needs dates.")
            if end is not None and end < start:
                raise ForecastParamsError(f"The what-if {self.name!r} ends before it starts.")
        object.__setattr__(self, "periods", periods)
        if self.effect is not None:
            effect = float(self.effect)
            if not (math.isfinite(effect) and effect > -1.0):
                raise ForecastParamsError(
                    f"The assumed effect of {self.name!r} must be a change above -100%."
                )
            object.__setattr__(self, "effect", effect)

    def active(self, days: pd.DatetimeIndex) -> np.ndarray:
        """1.0 on the days inside any period, else 0.0."""
        out = np.zeros(len(days))
        for start, end in self.periods:
            inside = days >= pd.Timestamp(start)
            if end is not None:
                inside &= days <= pd.Timestamp(end)
            out[np.asarray(inside)] = 1.0
        return out


@dataclass(frozen=True)
class ForecastParams:
    """Everything that shapes a forecast besides the data. Frozen and hashable (a cache key).

    ``yearly``: "auto" (on with at least ``YEARLY_MIN_DAYS`` of history), "on" (refuse a shorter
    history) or "off". ``countries``: ISO codes whose public holidays enter the model.
    ``uncertainty_samples`` draws make the interval; ``seed`` makes them repeatable.
    """

    horizon_days: int = 90
    freq: str = "D"
    countries: tuple[str, ...] = ()
    yearly: str = "auto"
    yearly_order: int = 6
    seasonality_mode: str = "multiplicative"
    changepoint_prior_scale: float = 0.05
    seasonality_prior_scale: float = 10.0
    holidays_prior_scale: float = 10.0
    interval_width: float = 0.8
    uncertainty_samples: int = 300
    folds: int = 4
    events: tuple[Event, ...] = ()
    what_ifs: tuple[WhatIf, ...] = ()
    nonnegative: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        horizon = self.horizon_days
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
            raise ForecastParamsError(
                f"The horizon must be a whole number of days, not {horizon!r}."
            )
        if not MIN_HORIZON_DAYS <= int(horizon) <= MAX_HORIZON_DAYS:
            raise ForecastParamsError(
                f"The horizon must be {MIN_HORIZON_DAYS} to {MAX_HORIZON_DAYS} days; "
                f"{int(horizon)} was asked."
            )
        object.__setattr__(self, "horizon_days", int(horizon))
        if self.freq not in FREQS:
            raise ForecastParamsError("The frequency must be 'D' (daily) or 'W' (weekly).")
        if self.yearly not in YEARLY_MODES:
            raise ForecastParamsError(f"yearly must be one of {', '.join(YEARLY_MODES)}.")
        if self.seasonality_mode not in SEASONALITY_MODES:
            raise ForecastParamsError(
                f"The seasonality mode must be one of {', '.join(SEASONALITY_MODES)}."
            )
        if isinstance(self.countries, str):
            raise ForecastParamsError("countries is a tuple of ISO codes, e.g. ('US', 'GB').")
        countries = tuple(sorted({str(c).strip().upper() for c in self.countries}))
        unknown = [c for c in countries if c not in _supported_countries()]
        if unknown:
            raise ForecastParamsError(f"No public holidays are known for {', '.join(unknown)}.")
        object.__setattr__(self, "countries", countries)
        for name in ("changepoint_prior_scale", "seasonality_prior_scale", "holidays_prior_scale"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ForecastParamsError(f"{name} must be a positive number.")
            object.__setattr__(self, name, value)
        if not 0.5 <= float(self.interval_width) < 1.0:
            raise ForecastParamsError("The interval width must be between 0.5 and 1 (e.g. 0.8).")
        object.__setattr__(self, "interval_width", float(self.interval_width))
        if not 100 <= int(self.uncertainty_samples) <= 5000:
            raise ForecastParamsError("uncertainty_samples must be 100 to 5000.")
        if not 1 <= int(self.folds) <= 10:
            raise ForecastParamsError("The backtest takes 1 to 10 folds.")
        if not 1 <= int(self.yearly_order) <= 20:
            raise ForecastParamsError("The yearly Fourier order must be 1 to 20.")
        events = tuple(self.events)
        whatifs = tuple(self.what_ifs)
        if not all(isinstance(e, Event) for e in events):
            raise ForecastParamsError("events must be Event values.")
        if not all(isinstance(w, WhatIf) for w in whatifs):
            raise ForecastParamsError("what_ifs must be WhatIf values.")
        if len({w.name for w in whatifs}) != len(whatifs):
            raise ForecastParamsError("Two what-ifs share a name.")
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "what_ifs", whatifs)

    @property
    def horizon_steps(self) -> int:
        return math.ceil(self.horizon_days / STEP_DAYS[self.freq])


@lru_cache(maxsize=1)
def _supported_countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


# --- results -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Backtest:
    """Rolling-origin backtest of the model against the seasonal-naive forecast.

    ``predictions``: one row per fold and step: cutoff, ds, step (1 = the day or week after the
    cutoff), y, yhat, yhat_lower, yhat_upper, naive, scale (the fold's in-sample seasonal-naive
    MAE). Scores are fractions (0.12 = 12%); see the module docstring for their definitions.
    """

    folds: int
    horizon_steps: int
    freq: str
    season: int
    cutoffs: tuple[date, ...]
    predictions: pd.DataFrame
    pct_error_kind: str
    pct_error: float
    naive_pct_error: float
    mase: float
    naive_mase: float
    coverage: float
    interval_width: float

    @property
    def beats_naive(self) -> bool:
        """True when the model's scaled error is below the seasonal-naive forecast's."""
        return bool(np.isfinite(self.mase) and self.mase < self.naive_mase)


@dataclass(frozen=True, eq=False)
class Forecast:
    """A fitted forecast and its backtest.

    - ``history``: ds, y as fitted (after ``last_complete``, trimming and weekly sums);
    - ``forecast``: the future, ds, yhat, yhat_lower, yhat_upper, naive (the seasonal-naive
      forecast: the last week repeated, or last week's value for weekly series);
    - ``fitted``: the history's in-sample fit, ds, yhat, yhat_lower, yhat_upper;
    - ``components``: history and future, ds, trend and each of weekly, yearly, holidays and the
      learned what-ifs present in the model (in the series' units for an additive model, relative
      to the trend for a multiplicative one);
    - ``effects``: per what-if, ("learned" or "assumed", relative effect) — for an additive model
      a learned effect is in the series' units per step instead;
    - ``notes``: plain sentences about choices made (yearly seasonality off, a shorter backtest).
    """

    params: ForecastParams
    last_complete: date
    yearly: bool
    history: pd.DataFrame
    forecast: pd.DataFrame
    fitted: pd.DataFrame
    components: pd.DataFrame
    backtest: Backtest
    effects: dict[str, tuple[str, float]]
    notes: tuple[str, ...]

    @property
    def verdict(self) -> str:
        return verdict(self.backtest)


# --- quiet Prophet -------------------------------------------------------------------------------
_RNG_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _prophet() -> Any:
    """Prophet's class, imported on first use (one to two seconds).

    Prophet and cmdstanpy log every fit at INFO ("Chain [1] start processing"); their loggers are
    raised to WARNING for the process, so warnings and errors still show and exceptions propagate.
    cmdstanpy sets its level the first time its logger is asked for, so it is asked for first.
    Prophet 1.5's own code also triggers pandas 3.1 deprecation notices (``inplace=``) on every
    fit: those, raised from Prophet's modules only, are ignored; everything else still warns.
    """
    from cmdstanpy.utils import get_logger

    get_logger().setLevel(logging.WARNING)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    _quiet_warnings()
    from prophet import Prophet

    return Prophet


def _quiet_warnings() -> None:
    # Idempotent (an equal filter replaces itself), so it is set again on every forecast: a
    # caller that restores the warning filters (pytest does per test) would otherwise drop it.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet(\.|$)")


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Prophet samples its intervals from numpy's global generator: seed it for one predict and
    give it back as it was. Only predicts are serialised; fits run in parallel threads."""
    with _RNG_LOCK:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _fit(model: Any, frame: pd.DataFrame) -> Any:
    try:
        model.fit(frame)
    finally:
        # cmdstan leaves its CSV output in a temp folder until the process exits.
        with contextlib.suppress(Exception):
            model.stan_backend.cleanup()
    return model


# --- inputs --------------------------------------------------------------------------------------
def last_complete_week_end(last_complete: date) -> date:
    """The Sunday that ends the last complete Monday-Sunday week on or before ``last_complete``."""
    return last_complete - timedelta(days=(last_complete.weekday() + 1) % 7)


def prepare_series(series: pd.Series, last_complete: date, freq: str = "D") -> pd.Series:
    """The series as it is fitted: indexed by day (or week start, Monday), float, nothing after
    the last complete day (or week), missing days as NaN, leading zeros and missing days
    trimmed (a title before its release, a slice before its first title).

    Weekly values are Monday-Sunday sums; a week with a missing day is missing; a first week
    that starts mid-week (after trimming) is dropped.
    """
    if not isinstance(series, pd.Series):
        raise ForecastParamsError("The series must be a pandas Series indexed by date.")
    if type(last_complete) is not date:
        raise ForecastParamsError("last_complete must be a date (the last complete day).")
    if freq not in FREQS:
        raise ForecastParamsError("The frequency must be 'D' (daily) or 'W' (weekly).")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(series.index))
    except (TypeError, ValueError) as exc:
        raise ForecastParamsError("The series must be indexed by date.") from exc
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    if (index != index.normalize()).any():
        raise ForecastParamsError("The series must hold one value per calendar day.")
    if index.has_duplicates:
        raise ForecastParamsError("The series has two values for the same day.")
    try:
        values = pd.to_numeric(pd.Series(series.to_numpy(), index=index), errors="raise")
    except (TypeError, ValueError) as exc:
        raise ForecastParamsError("The series must hold numbers.") from exc
    values = values.astype("float64").sort_index()
    end = last_complete if freq == "D" else last_complete_week_end(last_complete)
    values = values[values.index <= pd.Timestamp(end)]
    empty = pd.Series(dtype="float64", index=pd.DatetimeIndex([], name="ds"), name="y")
    if values.empty:
        return empty
    days = pd.date_range(values.index.min(), pd.Timestamp(end), freq="D")
    values = values.reindex(days)
    active = values.notna() & (values != 0)
    if not active.any():
        return empty
    values = values[active.idxmax() :]
    if freq == "W":
        first_monday = values.index[0] + pd.Timedelta(days=(7 - values.index[0].weekday()) % 7)
        values = values[first_monday:]
        if values.empty:
            return empty
        weeks = values.index - pd.to_timedelta(values.index.day_of_week, unit="D")
        grouped = values.groupby(weeks)
        values = grouped.sum(min_count=7).where(grouped.count() == 7)
    values.index = pd.DatetimeIndex(values.index, name="ds")
    return values.rename("y")


def _check_history(y: pd.Series, freq: str, yearly: str) -> tuple[bool, list[str]]:
    """Refuse a series too short or too sparse; decide yearly seasonality. Returns (yearly on,
    notes)."""
    unit = "days" if freq == "D" else "weeks"
    n = len(y)
    needed = MIN_FIT_STEPS[freq] + MIN_TEST_STEPS[freq]
    if n < needed:
        what = (
            f"{MIN_FIT_STEPS['D']} to learn the weekly pattern and {MIN_TEST_STEPS['D']} to test"
            if freq == "D"
            else f"{MIN_FIT_STEPS['W']} to fit and {MIN_TEST_STEPS['W']} to test"
        )
        have = f"{n} {unit}" if n else "none"
        raise TooShortError(
            f"Not enough history to forecast: a {'daily' if freq == 'D' else 'weekly'} forecast "
            f"needs at least {needed} complete {unit} with data ({what} the forecast against); "
            f"this series has {have}.",
            needed=needed,
            have=n,
            unit=unit,
        )
    empty = y.isna() | (y == 0)
    share = float(empty.mean())
    if share > MAX_ZERO_SHARE:
        raise TooSparseError(
            f"Too sparse to forecast: {share:.0%} of its {n} {unit} since its first value are "
            f"zero or missing (at most {MAX_ZERO_SHARE:.0%} can be). "
            + (
                "Forecast it weekly, or a wider slice (a genre rather than a title)."
                if freq == "D"
                else "Forecast a wider slice (a genre rather than a title)."
            ),
            needed=1 - MAX_ZERO_SHARE,
            have=1 - share,
            unit="share of steps with a value",
        )
    span_days = n * STEP_DAYS[freq]
    notes: list[str] = []
    long_enough = span_days >= YEARLY_MIN_DAYS
    if yearly == "on" and not long_enough:
        raise TooShortError(
            f"Yearly seasonality needs at least {YEARLY_MIN_DAYS} days of history (a full year "
            f"to learn the cycle, 8 weeks to test it); this series has {span_days}. "
            "Turn yearly seasonality off, or forecast with it once more history is in.",
            needed=YEARLY_MIN_DAYS,
            have=span_days,
            unit="days",
        )
    use_yearly = yearly == "on" or (yearly == "auto" and long_enough)
    if yearly == "auto" and not long_enough:
        notes.append(
            f"Yearly seasonality is off: it needs at least {YEARLY_MIN_DAYS} days of history "
            f"(a full year to learn the cycle, 8 weeks to test it), and this series has "
            f"{span_days}."
        )
    elif use_yearly and span_days < 2 * 365:
        notes.append(
            f"Yearly seasonality is learned from {span_days} days, less than two years: the "
            "split between the trend and the yearly cycle is uncertain."
        )
    return use_yearly, notes


@lru_cache(maxsize=64)
def _country_holidays(countries: tuple[str, ...], years: tuple[int, ...]) -> pd.DataFrame:
    import holidays

    rows = []
    for code in countries:
        for day, name in holidays.country_holidays(code, years=list(years)).items():
            # Several holidays on one day come joined by "; ": keep each.
            rows.extend((pd.Timestamp(day), part.strip()) for part in str(name).split(";"))
    frame = pd.DataFrame(rows, columns=["ds", "holiday"])
    return frame.drop_duplicates().sort_values(["ds", "holiday"]).reset_index(drop=True)


def holiday_frame(
    countries: tuple[str, ...], first: date, last: date, freq: str = "D"
) -> pd.DataFrame:
    """Prophet's holidays frame (holiday, ds, lower_window, upper_window) for the countries'
    public holidays from ``first`` to ``last``; weekly series put each on its week's Monday."""
    if not countries:
        return pd.DataFrame(columns=["holiday", "ds", "lower_window", "upper_window"])
    frame = _country_holidays(tuple(countries), tuple(range(first.year, last.year + 1))).copy()
    frame = frame[(frame["ds"] >= pd.Timestamp(first)) & (frame["ds"] <= pd.Timestamp(last))]
    return _as_prophet_events(frame.assign(lower_window=0, upper_window=0), freq)


def _as_prophet_events(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    frame = frame.copy()
    frame["ds"] = pd.to_datetime(frame["ds"])
    if freq == "W":
        frame["ds"] = frame["ds"] - pd.to_timedelta(frame["ds"].dt.day_of_week, unit="D")
        frame["lower_window"] = 0
        frame["upper_window"] = 0
    frame = frame[["holiday", "ds", "lower_window", "upper_window"]]
    frame = frame.astype({"holiday": "object", "lower_window": "int64", "upper_window": "int64"})
    return frame.drop_duplicates(["holiday", "ds"]).reset_index(drop=True)


def premiere_events(
    release_dates: pd.Series | list[date], name: str = "premiere", days_after: int = 6
) -> pd.DataFrame:
    """An events frame (ds, event, days_before, days_after) from release dates: one event type,
    so every premiere shares one learned effect over its first ``days_after`` + 1 days."""
    days = pd.to_datetime(pd.Series(list(release_dates), dtype="object")).dropna()
    return pd.DataFrame(
        {"ds": days.dt.normalize().unique(), "event": name, "days_before": 0}
    ).assign(days_after=int(days_after))


def _events_frame(
    events: pd.DataFrame | None, params: ForecastParams, first: date, last: date
) -> pd.DataFrame:
    parts = [holiday_frame(params.countries, first, last, params.freq)]
    if events is not None and not events.empty:
        missing = {"ds", "event"} - set(events.columns)
        if missing:
            raise ForecastParamsError("events need the columns ds and event.")
        given = pd.DataFrame(
            {
                "holiday": events["event"].astype(str),
                "ds": pd.to_datetime(events["ds"]),
                "lower_window": -events.get("days_before", pd.Series(0, index=events.index))
                .fillna(0)
                .astype(int),
                "upper_window": events.get("days_after", pd.Series(0, index=events.index))
                .fillna(0)
                .astype(int),
            }
        )
        parts.append(_as_prophet_events(given, params.freq))
    if params.events:
        planned = pd.DataFrame(
            {
                "holiday": [e.name for e in params.events],
                "ds": [pd.Timestamp(e.day) for e in params.events],
                "lower_window": [-e.days_before for e in params.events],
                "upper_window": [e.days_after for e in params.events],
            }
        )
        parts.append(_as_prophet_events(planned, params.freq))
    frame = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    inside = (frame["ds"] >= pd.Timestamp(first) - pd.Timedelta(days=31)) & (
        frame["ds"] <= pd.Timestamp(last) + pd.Timedelta(days=31)
    )
    return frame[inside].drop_duplicates(["holiday", "ds"]).reset_index(drop=True)


# --- the model -----------------------------------------------------------------------------------
def _regressor_column(index: int) -> str:
    return f"what_if_{index}"


def build_model(
    params: ForecastParams, yearly: bool, holidays: pd.DataFrame, learned: list[str]
) -> Any:
    """The unfitted Prophet model ``forecast`` fits: every argument is spelled out here."""
    Prophet = _prophet()
    model = Prophet(
        growth="linear",
        changepoint_prior_scale=params.changepoint_prior_scale,
        seasonality_mode=params.seasonality_mode,
        seasonality_prior_scale=params.seasonality_prior_scale,
        holidays_prior_scale=params.holidays_prior_scale,
        holidays=holidays if not holidays.empty else None,
        yearly_seasonality=False,
        weekly_seasonality=params.freq == "D",
        daily_seasonality=False,
        interval_width=params.interval_width,
        uncertainty_samples=params.uncertainty_samples,
        mcmc_samples=0,
    )
    if yearly:
        # Explicitly rather than yearly_seasonality=True: the same series at the order we chose,
        # and no warning for the deliberate use of one to two years of history.
        model.add_seasonality(
            "yearly", period=YEARLY_PERIOD_DAYS, fourier_order=params.yearly_order
        )
    for column in learned:
        model.add_regressor(column)
    return model


def _plan_folds(n: int, params: ForecastParams, yearly: bool) -> tuple[int, int, int]:
    """(initial steps, fold horizon h, number of folds)."""
    step = STEP_DAYS[params.freq]
    initial = math.ceil(YEARLY_INITIAL_DAYS / step) if yearly else MIN_FIT_STEPS[params.freq]
    available = n - initial
    h = max(1, min(params.horizon_steps, available))
    folds = max(1, min(params.folds, 1 + (available - h) // h))
    return initial, h, folds


def _seasonal_naive(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """k steps after the end of ``history``: the value one or more whole seasons before."""
    k = np.arange(1, steps + 1)
    back = season * np.ceil(k / season).astype(int)
    idx = len(history) - back + k - 1
    out = np.full(steps, np.nan)
    ok = idx >= 0
    out[ok] = history[idx[ok]]
    return out


def naive_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast: mean |y_t - y_{t-season}| over pairs with
    both values (Hyndman & Koehler's MASE denominator)."""
    diffs = np.abs(history[season:] - history[:-season])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else math.nan


def _score(predictions: pd.DataFrame, level: float) -> dict[str, Any]:
    p = predictions[predictions["y"].notna()]
    y = p["y"].to_numpy()
    err = np.abs(y - p["yhat"].to_numpy())
    nerr = np.abs(y - p["naive"].to_numpy())
    scale = p["scale"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mase = float(np.mean(err / scale)) if (scale > 0).all() else math.nan
        naive_mase = float(np.nanmean(nerr / scale)) if (scale > 0).all() else math.nan
    near_zero = (np.abs(y) < NEAR_ZERO_SHARE * level).any() if level > 0 else True
    if near_zero:
        kind = "sMAPE"
        pct = _smape(y, p["yhat"].to_numpy())
        naive_pct = _smape(y, p["naive"].to_numpy())
    else:
        kind = "MAPE"
        pct = float(np.mean(err / np.abs(y)))
        naive_pct = float(np.nanmean(nerr / np.abs(y)))
    inside = (y >= p["yhat_lower"].to_numpy()) & (y <= p["yhat_upper"].to_numpy())
    return {
        "pct_error_kind": kind,
        "pct_error": pct,
        "naive_pct_error": naive_pct,
        "mase": mase,
        "naive_mase": naive_mase,
        "coverage": float(inside.mean()) if len(y) else math.nan,
    }


def _smape(y: np.ndarray, yhat: np.ndarray) -> float:
    den = np.abs(y) + np.abs(yhat)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(den > 0, 2 * np.abs(y - yhat) / den, 0.0)
    return float(np.nanmean(terms))


def _fold_cutoffs(y: pd.Series, params: ForecastParams, yearly: bool) -> tuple[list, int]:
    """The backtest's cutoffs (last training step of each fold, oldest first) and its ``h``."""
    _initial, h, folds = _plan_folds(len(y), params, yearly)
    ds = y.index
    return [ds[len(ds) - 1 - h * (i + 1)] for i in range(folds)][::-1], h


def _fit_predict(
    make_model: Any, train: pd.DataFrame, future: pd.DataFrame, seed: int
) -> pd.DataFrame:
    # Again in the worker thread: code that uses warnings.catch_warnings in another thread (pandas
    # does) can put back a filter list from before the forecast began.
    _quiet_warnings()
    model = _fit(make_model(), train)
    with _seeded(seed):
        return model.predict(future)


def _backtest(
    fold_predictions: list[pd.DataFrame],
    cutoffs: list[pd.Timestamp],
    h: int,
    y: pd.Series,
    params: ForecastParams,
) -> tuple[Backtest, list[str]]:
    season = SEASON[params.freq]
    ds = y.index
    values = y.to_numpy()
    frames = []
    for cutoff, pred in zip(cutoffs, fold_predictions, strict=True):
        position = int(ds.get_loc(cutoff))
        train = values[: position + 1]
        target = pd.DataFrame({"ds": ds[position + 1 : position + 1 + h]})
        target["y"] = values[position + 1 : position + 1 + h]
        target["step"] = np.arange(1, len(target) + 1)
        target["naive"] = _seasonal_naive(train, len(target), season)
        target["scale"] = naive_scale(train, season)
        target["cutoff"] = cutoff
        target = target.merge(pred[["ds", "yhat", "yhat_lower", "yhat_upper"]], on="ds", how="left")
        frames.append(target)
    predictions = pd.concat(frames, ignore_index=True)[
        ["cutoff", "ds", "step", "y", "yhat", "yhat_lower", "yhat_upper", "naive", "scale"]
    ]
    if params.nonnegative:
        for col in ("yhat", "yhat_lower", "yhat_upper"):
            predictions[col] = predictions[col].clip(lower=0.0)
    level = float(np.nanmean(np.abs(values)))
    backtest = Backtest(
        folds=len(cutoffs),
        horizon_steps=h,
        freq=params.freq,
        season=season,
        cutoffs=tuple(c.date() for c in cutoffs),
        predictions=predictions,
        interval_width=params.interval_width,
        **_score(predictions, level),
    )
    notes = []
    if h < params.horizon_steps:
        unit = "days" if params.freq == "D" else "weeks"
        notes.append(
            f"The backtest checks forecasts up to {h} {unit} ahead; the history is too short to "
            f"test the full {params.horizon_steps} {unit}, so errors further out are not measured."
        )
    return backtest, notes


def forecast(
    series: pd.Series,
    last_complete: date,
    params: ForecastParams | None = None,
    events: pd.DataFrame | None = None,
    *,
    threads: int = 2,
) -> Forecast:
    """Fit, forecast ``params.horizon_days`` ahead and backtest.

    ``series``: values by date (one per day; absent days are missing, not zero — pass zeros for
    days with nothing). ``last_complete``: the last complete day; anything after it (the current
    day or week) is dropped. ``events``: past and planned events from the data, columns ds, event
    and optionally days_before, days_after (``premiere_events``). ``threads``: how many of the
    five Prophet fits (final model, four folds) run at once; it changes only the time taken.
    Raises ``TooShortError``, ``TooSparseError`` (the series) or ``ForecastParamsError``.
    """
    params = params or ForecastParams()
    _quiet_warnings()
    y = prepare_series(series, last_complete, params.freq)
    if y.empty and pd.to_numeric(series, errors="coerce").notna().any():
        raise TooSparseError(
            "Nothing to forecast: every value of this series up to the last complete day is "
            "zero or missing.",
            needed=1 - MAX_ZERO_SHARE,
            have=0.0,
            unit="share of steps with a value",
        )
    yearly, notes = _check_history(y, params.freq, params.yearly)
    step = pd.Timedelta(days=STEP_DAYS[params.freq])
    future_ds = pd.date_range(y.index[-1] + step, periods=params.horizon_steps, freq=step)
    all_ds = y.index.append(future_ds)

    frame = pd.DataFrame({"ds": y.index, "y": y.to_numpy()})
    future = pd.DataFrame({"ds": all_ds})
    learned: list[str] = []
    assumed: dict[str, WhatIf] = {}
    history_steps = frame["y"].notna().to_numpy()
    for i, what_if in enumerate(params.what_ifs):
        column = _regressor_column(i)
        hist_active = what_if.active(y.index)[history_steps]
        inside = int(hist_active.sum())
        outside = int(len(hist_active) - inside)
        learnable = min(inside, outside) >= MIN_REGRESSOR_STEPS[params.freq]
        if what_if.effect is None and not learnable:
            raise ForecastParamsError(
                f"The history has too few days inside and outside {what_if.name!r} to learn its "
                "effect: give its assumed effect (e.g. -0.05 for 5% less)."
            )
        if what_if.effect is None:
            learned.append(column)
            frame[column] = what_if.active(y.index)
            future[column] = what_if.active(all_ds)
        else:
            assumed[column] = what_if

    holidays = _events_frame(
        events, params, y.index[0].date(), (future_ds[-1] + step - pd.Timedelta(days=1)).date()
    )
    if not holidays.empty:
        in_history = (holidays["ds"] >= y.index[0]) & (holidays["ds"] <= y.index[-1])
        seen = set(holidays.loc[in_history, "holiday"])
        for event in params.events:
            if event.name not in seen:
                notes.append(
                    f"The event {event.name!r} has no past occurrence to learn from, so it "
                    "changes nothing; give it the name of a past event type (e.g. 'premiere')."
                )
    # The final model and one model per backtest fold, each built by build_model and fitted on
    # the history up to its cutoff (what Prophet's cross_validation does with prophet_copy), run
    # on ``threads`` threads: cmdstan fits in a subprocess, so two folds use two cores.
    cutoffs, h = _fold_cutoffs(y, params, yearly)
    step_ahead = h * step
    tasks = [(frame, future, params.seed)] + [
        (
            frame[frame["ds"] <= cutoff],
            frame.loc[(frame["ds"] > cutoff) & (frame["ds"] <= cutoff + step_ahead)].drop(
                columns="y"
            ),
            params.seed + 1 + i,
        )
        for i, cutoff in enumerate(cutoffs)
    ]

    def make_model() -> Any:
        return build_model(params, yearly, holidays, learned)

    def run(task: tuple[pd.DataFrame, pd.DataFrame, int]) -> pd.DataFrame:
        return _fit_predict(make_model, *task)

    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            predictions = list(pool.map(run, tasks))
    else:
        predictions = [run(task) for task in tasks]
    pred = predictions[0]
    backtest, bt_notes = _backtest(predictions[1:], cutoffs, h, y, params)
    notes.extend(bt_notes)

    out_cols = ["yhat", "yhat_lower", "yhat_upper"]
    if params.nonnegative:
        pred[out_cols] = pred[out_cols].clip(lower=0.0)
    is_future = pred["ds"] > y.index[-1]
    fut = pred.loc[is_future, ["ds", *out_cols]].reset_index(drop=True)
    effects: dict[str, tuple[str, float]] = {}
    for i, what_if in enumerate(params.what_ifs):
        column = _regressor_column(i)
        if column in assumed:
            factor = 1.0 + what_if.effect * what_if.active(pd.DatetimeIndex(fut["ds"]))
            fut[out_cols] = fut[out_cols].mul(factor, axis=0)
            effects[what_if.name] = ("assumed", float(what_if.effect))
        else:
            active = frame[column].to_numpy() == 1
            effects[what_if.name] = ("learned", float(pred.loc[~is_future, column][active].mean()))
    fut["naive"] = _seasonal_naive(y.to_numpy(), len(fut), SEASON[params.freq])

    comp_cols = ["ds", "trend"] + [
        c for c in ("weekly", "yearly", "holidays", *learned) if c in pred.columns
    ]
    components = pred[comp_cols].rename(
        columns={_regressor_column(i): w.name for i, w in enumerate(params.what_ifs)}
    )
    return Forecast(
        params=params,
        last_complete=last_complete,
        yearly=yearly,
        history=frame[["ds", "y"]].copy(),
        forecast=fut,
        fitted=pred.loc[~is_future, ["ds", *out_cols]].reset_index(drop=True),
        components=components.reset_index(drop=True),
        backtest=backtest,
        effects=effects,
        notes=tuple(notes),
    )


# --- words ---------------------------------------------------------------------------------------
def verdict(backtest: Backtest) -> str:
    """Plain words: does the model beat the seasonal-naive forecast, and is its interval honest."""
    naive = (
        "the seasonal-naive forecast (the same day last week)"
        if backtest.freq == "D"
        else "the naive forecast (the same as last week)"
    )
    unit = "days" if backtest.freq == "D" else "weeks"
    if not (math.isfinite(backtest.mase) and math.isfinite(backtest.naive_mase)):
        first = (
            f"The backtest cannot compare the model with {naive}: the series does not move "
            "between seasons, so there is no error to scale by."
        )
    elif backtest.beats_naive:
        gain = 1 - backtest.mase / backtest.naive_mase
        first = (
            f"The model beats {naive}: its errors in the backtest are {gain:.0%} smaller "
            f"(MASE {backtest.mase:.2f} against {backtest.naive_mase:.2f})."
        )
    else:
        first = (
            f"The model does no better than {naive} on this series (MASE {backtest.mase:.2f} "
            f"against {backtest.naive_mase:.2f}): rely on the naive forecast, shown beside it."
        )
    target = backtest.interval_width
    if not math.isfinite(backtest.coverage):
        second = "Its interval could not be checked."
    else:
        gap = backtest.coverage - target
        judged = (
            "about right"
            if abs(gap) <= 0.05
            else ("too narrow: the future is less certain than it shows" if gap < 0 else "wide")
        )
        second = (
            f"Its {target:.0%} interval held {backtest.coverage:.0%} of the actual {unit} in "
            f"the backtest ({judged})."
        )
    return (
        f"{first} {second} Typical error: {backtest.pct_error:.0%} ({backtest.pct_error_kind}) "
        f"over {backtest.folds} backtest{'s' if backtest.folds > 1 else ''} of "
        f"{backtest.horizon_steps} {unit}."
    )


def series_from_trend(trend: pd.DataFrame, metric: str = "views") -> pd.Series:
    """A daily series from ``data.queries.metrics.trend`` (grain "day"): bucket -> value."""
    rows = trend[trend["metric"] == metric]
    return pd.Series(
        rows["value"].astype("float64").to_numpy(),
        index=pd.DatetimeIndex(pd.to_datetime(rows["bucket"]), name="ds"),
        name=metric,
    )


# --- cache key -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _versions() -> str:
    found = []
    for package in ("prophet", "cmdstanpy", "holidays"):
        try:
            found.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}=?")
    return ",".join(found)


def _canonical(value: Any) -> Any:
    """A JSON-able value that is equal exactly when the inputs are equal, whatever their order
    (mappings and sets) or container type (tuple or list). Unknown objects raise: a repr with a
    memory address would make a key that never matches again."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return {"float": f.hex()} if math.isfinite(f) else {"float": str(f)}
    if isinstance(value, datetime | pd.Timestamp):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Enum):
        return {"enum": f"{type(value).__name__}.{value.name}"}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "type": type(value).__name__,
            "fields": {
                f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)
            },
        }
    if isinstance(value, Mapping):
        return {
            "map": sorted([[_canonical(k), _canonical(v)] for k, v in value.items()], key=_dump)
        }
    if isinstance(value, set | frozenset):
        return {"set": sorted((_canonical(v) for v in value), key=_dump)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    raise TypeError(f"cannot make a cache key from a {type(value).__name__}")


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def cache_key(
    definition: Mapping[str, Any],
    scope: Any,
    build_id: str,
    params: ForecastParams,
    last_complete: date,
) -> str:
    """A deterministic key (hex SHA-256) for a forecast: the series definition (metric, filters,
    frequency: whatever picks the series; include any event inputs that do not follow from the
    data), the scope (e.g. ``data.queries.filters.Scope``), the data build, the parameters and the
    last complete day, plus this module's and Prophet's versions, so a new release never reads
    an old result. Equal inputs give equal keys in every process."""
    payload = {
        "model": MODEL_VERSION,
        "versions": _versions(),
        "definition": _canonical(definition),
        "scope": _canonical(scope),
        "build_id": str(build_id),
        "params": _canonical(params),
        "last_complete": _canonical(last_complete),
    }
    return hashlib.sha256(_dump(payload).encode()).hexdigest()


__all__ = [
    "MAX_HORIZON_DAYS",
    "MIN_HORIZON_DAYS",
    "YEARLY_MIN_DAYS",
    "Backtest",
    "Event",
    "Forecast",
    "ForecastError",
    "ForecastParams",
    "ForecastParamsError",
    "NotForecastableError",
    "TooShortError",
    "TooSparseError",
    "WhatIf",
    "build_model",
    "cache_key",
    "forecast",
    "holiday_frame",
    "last_complete_week_end",
    "naive_scale",
    "premiere_events",
    "prepare_series",
    "series_from_trend",
    "verdict",
]
