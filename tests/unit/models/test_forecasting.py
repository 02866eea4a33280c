"""models/forecasting.py: on generated series whose trend and seasonality are known, against
Prophet called directly, and against an independent numpy reading of the backtest's scores."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest

from data.queries.filters import Filters, Scope
from models import forecasting as F

ROOT = Path(__file__).resolve().parents[3]
START = date(2024, 11, 1)
WEEKLY = np.array([-6.0, -4.0, -2.0, 0.0, 3.0, 6.0, 3.0])  # Monday..Sunday, sums to 0
SLOPE = 0.05
YEARLY_AMPLITUDE = 15.0


def _days(n: int, start: date = START) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D")


def _known_series(n: int = 730, noise: float = 2.0, seed: int = 1) -> pd.Series:
    """100 + 0.05 per day + a weekly pattern + a yearly sine + Gaussian noise."""
    days = _days(n)
    t = np.arange(n)
    yearly = YEARLY_AMPLITUDE * np.sin(2 * np.pi * days.day_of_year.to_numpy() / 365.25)
    values = 100 + SLOPE * t + WEEKLY[days.day_of_week] + yearly
    values = values + np.random.default_rng(seed).normal(0, noise, n)
    return pd.Series(values, index=days)


ADDITIVE = F.ForecastParams(seasonality_mode="additive", horizon_days=56)


@pytest.fixture(scope="module")
def known():
    series = _known_series()
    return series, F.forecast(series, series.index[-1].date(), ADDITIVE)


# --- the model recovers what the series is made of -----------------------------------------------
def test_recovers_trend_weekly_and_yearly_seasonality(known):
    series, result = known
    assert result.yearly is True
    comp = result.components.set_index("ds")
    history = comp.loc[: series.index[-1]]
    slope = (history["trend"].iloc[-1] - history["trend"].iloc[0]) / (len(history) - 1)
    assert slope == pytest.approx(SLOPE, abs=0.015)
    # The weekly component, one value per weekday, against the generated pattern.
    weekly = history["weekly"].groupby(history.index.day_of_week).mean().to_numpy()
    assert np.abs(weekly - WEEKLY).max() < 1.0
    # The yearly component against the sine (Prophet centres it; the sine's mean is ~0).
    days = history.index
    truth = YEARLY_AMPLITUDE * np.sin(2 * np.pi * days.day_of_year.to_numpy() / 365.25)
    assert np.sqrt(np.mean((history["yearly"].to_numpy() - truth) ** 2)) < 3.0
    # The forecast continues trend + seasonality.
    future = result.forecast
    fdays = pd.DatetimeIndex(future["ds"])
    t = (fdays - pd.Timestamp(START)).days.to_numpy()
    expected = (
        100
        + SLOPE * t
        + WEEKLY[fdays.day_of_week]
        + YEARLY_AMPLITUDE * np.sin(2 * np.pi * fdays.day_of_year.to_numpy() / 365.25)
    )
    assert np.mean(np.abs(future["yhat"].to_numpy() - expected)) < 3.0
    assert (future["yhat_lower"] <= future["yhat"]).all()
    assert (future["yhat"] <= future["yhat_upper"]).all()


def test_beats_seasonal_naive_on_a_seasonal_series(known):
    _series, result = known
    bt = result.backtest
    assert bt.mase < 1.0
    assert bt.beats_naive
    assert bt.pct_error_kind == "MAPE"
    assert 0.6 <= bt.coverage <= 1.0
    assert "beats" in result.verdict
    assert "80% interval" in result.verdict


def test_backtest_scores_equal_an_independent_computation(known):
    series, result = known
    bt = result.backtest
    preds = bt.predictions
    y = series.to_numpy()
    days = series.index
    assert bt.folds == 4
    assert bt.horizon_steps == 56
    # Non-overlapping folds at the end of the history, each of horizon_steps days after its cutoff.
    cutoffs = [pd.Timestamp(c) for c in bt.cutoffs]
    assert cutoffs == [days[-1] - pd.Timedelta(days=56 * k) for k in (4, 3, 2, 1)]
    scaled, naive_scaled, inside, ape = [], [], [], []
    for cutoff in cutoffs:
        fold = preds[preds["cutoff"] == cutoff]
        position = int(np.flatnonzero(days == cutoff)[0])
        assert len(fold) == 56
        assert (pd.DatetimeIndex(fold["ds"]) == days[position + 1 : position + 57]).all()
        train = y[: position + 1]
        scale = np.mean(np.abs(train[7:] - train[:-7]))
        actual = y[position + 1 : position + 57]
        # Seasonal naive: the last observed week, repeated.
        naive = np.array([train[len(train) - 7 + (k % 7)] for k in range(56)])
        np.testing.assert_allclose(fold["y"], actual)
        np.testing.assert_allclose(fold["naive"], naive)
        scaled.extend(np.abs(actual - fold["yhat"].to_numpy()) / scale)
        naive_scaled.extend(np.abs(actual - naive) / scale)
        ape.extend(np.abs(actual - fold["yhat"].to_numpy()) / np.abs(actual))
        inside.extend(
            (actual >= fold["yhat_lower"].to_numpy()) & (actual <= fold["yhat_upper"].to_numpy())
        )
    assert bt.mase == pytest.approx(np.mean(scaled), rel=1e-12)
    assert bt.naive_mase == pytest.approx(np.mean(naive_scaled), rel=1e-12)
    assert bt.coverage == pytest.approx(np.mean(inside), rel=1e-12)
    assert bt.pct_error == pytest.approx(np.mean(ape), rel=1e-12)


def _direct_model(series: pd.Series, countries: tuple[str, ...], horizon: int):
    """Prophet configured by hand as the module documents, holidays from the holidays package."""
    from prophet import Prophet

    last = series.index[-1] + pd.Timedelta(days=horizon)
    rows = []
    for code in countries:
        for day, name in holidays.country_holidays(
            code, years=range(series.index[0].year, last.year + 1)
        ).items():
            rows.append((pd.Timestamp(day), name))
    frame = pd.DataFrame(rows, columns=["ds", "holiday"])
    frame = frame[(frame["ds"] >= series.index[0]) & (frame["ds"] <= last)]
    model = Prophet(
        growth="linear",
        seasonality_mode="multiplicative",
        yearly_seasonality=False,
        weekly_seasonality=True,
        daily_seasonality=False,
        holidays=frame.assign(lower_window=0, upper_window=0),
        interval_width=0.8,
        uncertainty_samples=300,
        mcmc_samples=0,
    )
    model.add_seasonality("yearly", period=365.25, fourier_order=6)
    return model


def test_the_forecast_equals_prophet_called_directly():
    series = _known_series(500, seed=3)
    params = F.ForecastParams(horizon_days=30, countries=("US",))
    result = F.forecast(series, series.index[-1].date(), params)

    model = _direct_model(series, ("US",), 30)
    model.fit(pd.DataFrame({"ds": series.index, "y": series.to_numpy()}))
    future = model.make_future_dataframe(periods=30)
    np.random.seed(params.seed)
    direct = model.predict(future).iloc[-30:].reset_index(drop=True)
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        np.testing.assert_allclose(result.forecast[column], direct[column], rtol=1e-9)
    assert "holidays" in result.components


def test_a_fold_is_prophet_refitted_on_the_history_up_to_its_cutoff():
    """No leakage: the first fold equals a fresh model fitted only on the days to its cutoff."""
    series = _known_series(500, seed=4)
    params = F.ForecastParams(horizon_days=28, countries=("US",), folds=2)
    result = F.forecast(series, series.index[-1].date(), params)
    cutoff = pd.Timestamp(result.backtest.cutoffs[0])
    fold = result.backtest.predictions
    fold = fold[fold["cutoff"] == cutoff]
    train = series[:cutoff]
    model = _direct_model(series, ("US",), 30)
    model.fit(pd.DataFrame({"ds": train.index, "y": train.to_numpy()}))
    direct = model.predict(pd.DataFrame({"ds": fold["ds"]}))
    np.testing.assert_allclose(fold["yhat"], direct["yhat"], rtol=1e-9)


# --- refusals ------------------------------------------------------------------------------------
def test_too_short_series_raise_the_typed_error_with_what_is_needed():
    short = _known_series(15)
    with pytest.raises(F.TooShortError, match="needs at least 21 complete days") as info:
        F.forecast(short, short.index[-1].date())
    assert info.value.needed == 21 and info.value.have == 15 and info.value.unit == "days"
    assert "this series has 15 days" in str(info.value)
    weekly = _known_series(70)
    with pytest.raises(F.TooShortError, match="needs at least 12 complete weeks"):
        F.forecast(weekly, weekly.index[-1].date(), F.ForecastParams(freq="W"))
    year = _known_series(300)
    with pytest.raises(F.TooShortError, match="Yearly seasonality needs at least 422 days"):
        F.forecast(year, year.index[-1].date(), F.ForecastParams(yearly="on"))
    with pytest.raises(F.TooShortError, match="has none"):
        F.forecast(pd.Series(dtype="float64"), START)


def test_yearly_seasonality_is_turned_off_below_a_year_and_the_result_says_so():
    series = _known_series(200)
    result = F.forecast(series, series.index[-1].date(), F.ForecastParams(horizon_days=14))
    assert result.yearly is False
    assert "yearly" not in result.components
    assert any("Yearly seasonality is off" in note and "422" in note for note in result.notes)


def test_too_sparse_series_raise_the_typed_error():
    series = _known_series(120)
    sparse = series.where(np.arange(120) % 2 == 0, 0.0)  # every other day zero
    with pytest.raises(F.TooSparseError, match="50% of its 120 days") as info:
        F.forecast(sparse, series.index[-1].date())
    assert "Forecast it weekly" in str(info.value)
    missing = series.drop(series.index[1::3])  # a third of the days absent
    with pytest.raises(F.TooSparseError, match="zero or missing"):
        F.forecast(missing, series.index[-1].date())
    with pytest.raises(F.TooSparseError, match="every value"):
        F.forecast(series * 0, series.index[-1].date())


def test_leading_zeros_are_trimmed_not_counted_as_sparse():
    series = _known_series(120)
    before = pd.Series(0.0, index=_days(200, START - timedelta(days=200)))
    result = F.forecast(pd.concat([before, series]), series.index[-1].date(), ADDITIVE)
    assert result.history["ds"].iloc[0] == series.index[0]


def test_the_horizon_is_validated():
    for bad in (6, 366, 0, -7):
        with pytest.raises(F.ForecastParamsError, match="7 to 365 days"):
            F.ForecastParams(horizon_days=bad)
    with pytest.raises(F.ForecastParamsError, match="whole number"):
        F.ForecastParams(horizon_days=30.5)
    assert F.ForecastParams(horizon_days=7).horizon_steps == 7
    assert F.ForecastParams(horizon_days=365, freq="W").horizon_steps == 53
    with pytest.raises(F.ForecastParamsError, match="No public holidays"):
        F.ForecastParams(countries=("XX",))


# --- the incomplete day or week ------------------------------------------------------------------
def test_nothing_after_the_last_complete_day_is_fitted():
    series = _known_series(120)
    last = series.index[-2].date()
    partial = series.copy()
    partial.iloc[-1] = 1.0  # the current day, a few hours in
    result = F.forecast(partial, last, F.ForecastParams(horizon_days=7))
    assert result.history["ds"].iloc[-1] == pd.Timestamp(last)
    assert result.forecast["ds"].iloc[0] == pd.Timestamp(last + timedelta(days=1))
    assert len(result.forecast) == 7


def test_weekly_series_fit_complete_monday_to_sunday_weeks_only():
    series = _known_series(200)
    wednesday = date(2025, 5, 14)
    assert wednesday.weekday() == 2
    assert F.last_complete_week_end(wednesday) == date(2025, 5, 11)
    assert F.last_complete_week_end(date(2025, 5, 11)) == date(2025, 5, 11)
    y = F.prepare_series(series, wednesday, "W")
    assert (y.index.day_of_week == 0).all()
    assert y.index[-1] == pd.Timestamp(date(2025, 5, 5))
    # Each week is the sum of its seven days; the first (partial) week is left out.
    assert y.index[0] == pd.Timestamp(date(2024, 11, 4))
    assert y.iloc[0] == pytest.approx(
        series[pd.Timestamp(2024, 11, 4) : pd.Timestamp(2024, 11, 10)].sum()
    )
    result = F.forecast(series, wednesday, F.ForecastParams(freq="W", horizon_days=28))
    assert result.forecast["ds"].iloc[0] == pd.Timestamp(date(2025, 5, 12))
    assert len(result.forecast) == 4
    assert result.backtest.season == 1
    assert "same as last week" in result.verdict


# --- events and what-ifs -------------------------------------------------------------------------
def test_a_learned_step_and_premiere_events_are_recovered():
    series = _known_series(400, noise=1.0)
    step_day = series.index[250].date()
    stepped = series + np.where(series.index >= pd.Timestamp(step_day), 20.0, 0.0)
    premieres = [series.index[i].date() for i in range(30, 380, 45)]
    for day in premieres:
        stepped[pd.Timestamp(day) : pd.Timestamp(day) + pd.Timedelta(days=2)] += 30.0
    params = F.ForecastParams(
        seasonality_mode="additive",
        horizon_days=28,
        what_ifs=(F.WhatIf("price change", ((step_day, None),)),),
    )
    events = F.premiere_events(premieres, days_after=2)
    result = F.forecast(stepped, series.index[-1].date(), params, events=events)
    kind, effect = result.effects["price change"]
    assert kind == "learned"
    assert effect == pytest.approx(20.0, abs=3.0)
    comp = result.components.set_index("ds")
    on_premieres = comp.loc[[pd.Timestamp(d) for d in premieres], "holidays"]
    assert on_premieres.mean() == pytest.approx(30.0, abs=5.0)


def test_an_assumed_what_if_scales_the_future_in_its_window_only():
    series = _known_series(200)
    last = series.index[-1].date()
    base = F.forecast(series, last, F.ForecastParams(horizon_days=28))
    window = (last + timedelta(days=8), last + timedelta(days=14))
    campaign = F.WhatIf("campaign", (window,), effect=0.1)
    result = F.forecast(series, last, F.ForecastParams(horizon_days=28, what_ifs=(campaign,)))
    ratio = result.forecast["yhat"] / base.forecast["yhat"]
    inside = (result.forecast["ds"] >= pd.Timestamp(window[0])) & (
        result.forecast["ds"] <= pd.Timestamp(window[1])
    )
    np.testing.assert_allclose(ratio[inside], 1.1)
    np.testing.assert_allclose(ratio[~inside], 1.0)
    assert result.effects["campaign"] == ("assumed", 0.1)
    future_step = F.WhatIf("price change", ((last + timedelta(days=3), None),))
    with pytest.raises(F.ForecastParamsError, match="give its assumed effect"):
        F.forecast(series, last, F.ForecastParams(what_ifs=(future_step,)))


def test_a_planned_event_with_no_past_occurrence_is_reported():
    series = _known_series(120)
    last = series.index[-1].date()
    planned = F.Event("gala", last + timedelta(days=5))
    result = F.forecast(series, last, F.ForecastParams(horizon_days=14, events=(planned,)))
    assert any("'gala' has no past occurrence" in note for note in result.notes)


# --- words, noise, keys --------------------------------------------------------------------------
def _backtest(mase: float, naive: float, coverage: float, freq: str = "D") -> F.Backtest:
    return F.Backtest(
        folds=4,
        horizon_steps=28,
        freq=freq,
        season=7,
        cutoffs=(),
        predictions=pd.DataFrame(),
        pct_error_kind="sMAPE",
        pct_error=0.2,
        naive_pct_error=0.25,
        mase=mase,
        naive_mase=naive,
        coverage=coverage,
        interval_width=0.8,
    )


def test_the_verdict_says_in_plain_words_whether_the_model_beats_naive():
    good = F.verdict(_backtest(0.6, 0.8, 0.79))
    assert good.startswith("The model beats the seasonal-naive forecast (the same day last week)")
    assert "25% smaller" in good and "MASE 0.60 against 0.80" in good
    assert "held 79% of the actual days" in good and "about right" in good
    bad = F.verdict(_backtest(1.1, 0.9, 0.5))
    assert "does no better than the seasonal-naive forecast" in bad
    assert "rely on the naive forecast, shown beside it" in bad
    assert "too narrow" in bad and "20% (sMAPE)" in bad
    flat = F.verdict(_backtest(math.nan, math.nan, 1.0))
    assert "cannot compare" in flat


def test_the_naive_forecast_is_returned_for_the_horizon(known):
    series, result = known
    last_week = series.to_numpy()[-7:]
    np.testing.assert_allclose(result.forecast["naive"], np.resize(last_week, 56))


def test_prophet_and_cmdstan_print_nothing(capfd):
    series = _known_series(60)
    F.forecast(series, series.index[-1].date(), F.ForecastParams(horizon_days=7, folds=1))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_cache_key_is_deterministic_and_covers_every_input():
    params = F.ForecastParams(horizon_days=30, countries=("us", "GB"))
    definition = {"metric": "views", "filters": Filters(START, date(2026, 10, 31)), "freq": "D"}
    scope = Scope.creators([3, 1])
    key = F.cache_key(definition, scope, "build-1", params, date(2026, 10, 31))
    assert len(key) == 64
    # Equal inputs written differently give the same key.
    same = F.cache_key(
        {"freq": "D", "filters": Filters(START, date(2026, 10, 31)), "metric": "views"},
        Scope.creators([1, 3]),
        "build-1",
        F.ForecastParams(horizon_days=30, countries=["GB", "US"]),
        date(2026, 10, 31),
    )
    assert same == key
    others = {
        F.cache_key(
            {**definition, "metric": "watch_hours"}, scope, "build-1", params, date(2026, 10, 31)
        ),
        F.cache_key(definition, Scope.everything(), "build-1", params, date(2026, 10, 31)),
        F.cache_key(definition, scope, "build-2", params, date(2026, 10, 31)),
        F.cache_key(
            definition, scope, "build-1", F.ForecastParams(horizon_days=31), date(2026, 10, 31)
        ),
        F.cache_key(definition, scope, "build-1", params, date(2026, 10, 30)),
    }
    assert key not in others and len(others) == 5
    # Same key in another process (no hash randomisation, no memory addresses).
    code = (
        "from datetime import date\n"
        "from data.queries.filters import Filters, Scope\n"
        "from models import forecasting as F\n"
        "print(F.cache_key({'metric': 'views', 'filters': Filters(date(2024, 11, 1), "
        "date(2026, 10, 31)), 'freq': 'D'}, Scope.creators([3, 1]), 'build-1', "
        "F.ForecastParams(horizon_days=30, countries=('US', 'GB')), date(2026, 10, 31)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == key
    assert hash(params) == hash(F.ForecastParams(horizon_days=30, countries=("GB", "US")))
    with pytest.raises(TypeError):
        F.cache_key({"x": object()}, scope, "b", params, date(2026, 10, 31))


def test_forecast_on_the_demo_platform(demo_store):
    from data.queries import metrics

    cursor = demo_store.cursor()
    first, last = metrics.data_bounds(cursor)
    trend = metrics.trend(cursor, Filters(first, last, comparison="none"), Scope.everything())
    series = F.series_from_trend(trend)
    result = F.forecast(series, last, F.ForecastParams(horizon_days=28, countries=("US",)))
    assert result.history["ds"].iloc[-1] == pd.Timestamp(last)
    assert len(result.forecast) == 28
    assert (result.forecast[["yhat", "yhat_lower", "naive"]] >= 0).all().all()
    assert result.backtest.folds == 4
    assert np.isfinite(result.backtest.mase) and np.isfinite(result.backtest.coverage)
