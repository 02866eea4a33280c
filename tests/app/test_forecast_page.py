"""The Forecast page as its users meet it: a forecast with its backtest per role (money metrics
only for money roles), the page's numbers equal to calling models/forecasting directly, a series
too short to forecast, a what-if that changes nobody else's forecast, the shared defaults behind
``change_models`` (audited), the content-success panel, and the cache a second viewer hits.

Prophet fits are slow (seconds each): every test reuses the default forecast (views, daily, 90
days, the shared defaults), which the first page run fits once for the whole process.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from components import forecast_view as FV
from components import queries
from components.context import app_context
from data.queries import forecast_inputs, metrics
from data.queries.filters import Filters, Scope
from models import forecasting as F
from security.forecast_defaults import BUILT_IN, ForecastDefaults, ForecastDefaultsStore
from security.permissions import AccessDenied, Principal
from tests.app.conftest import signed_in_app, texts, widget

pytestmark = pytest.mark.xdist_group("app-forecast")

PAGE = "app_pages/forecast.py"
_APPS: dict[str, AppTest] = {}


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(role: str) -> AppTest:
    """The role's signed-in app on the Forecast page (one sign-in per role and module)."""
    if role not in _APPS:
        _APPS[role] = signed_in_app(role)
    return _ok(_APPS[role].switch_page(PAGE).run())


def _forecast_table(at: AppTest) -> pd.DataFrame:
    """The main chart's table alternative: the page's own numbers."""
    for frame in (d.value for d in at.dataframe):
        if "Forecast" in frame.columns and "Day" in frame.columns:
            return frame
    raise AssertionError([list(d.value.columns) for d in at.dataframe])


def _as_of() -> tuple[date, date]:
    """First day with data and the last complete day, read independently of the page."""
    store = app_context().store
    first, last = metrics.data_bounds(store.cursor())
    clock = datetime.fromisoformat(store.read_meta()["as_of"])
    complete = (
        clock.date()
        if clock.time() >= datetime.max.time().replace(microsecond=0)
        else (clock.date() - timedelta(days=1))
    )
    return first, min(last, complete)


def test_money_metrics_only_for_money_roles_and_a_creator_cannot_open_it():
    manager = _page("manager")
    options = manager.selectbox(key="forecast-metric").options
    assert "Views" in options and "Watch hours" in options
    assert not any("revenue" in o.lower() for o in options), options
    assert any("MASE" in m.label for m in manager.metric)
    # The verdict in plain words, always.
    verdict = " ".join(texts(manager, "success") + texts(manager, "warning"))
    assert "seasonal-naive forecast" in verdict and "interval held" in verdict

    executive = _page("executive")
    options = executive.selectbox(key="forecast-metric").options
    assert "Net revenue" in options and "Ad revenue (net)" in options
    _ok(executive.selectbox(key="forecast-metric").set_value("net_revenue").run())
    assert any(m.label == "MASE, model" for m in executive.metric)
    assert any("Net revenue" in e.label and "Data table" in e.label for e in executive.expander)
    _ok(executive.selectbox(key="forecast-metric").set_value("views").run())

    creator = signed_in_app("creator")
    before = sum(queries.QUERY_REQUESTS.values())
    creator.switch_page(PAGE).run()
    assert "No access" in " ".join(texts(creator, "error"))
    assert sum(queries.QUERY_REQUESTS.values()) == before
    assert not creator.metric and not creator.dataframe


def test_the_page_forecast_equals_prophet_called_directly_and_a_second_viewer_waits_for_nothing():
    at = _page("analyst")
    shown = _forecast_table(at)
    future = shown[shown["Forecast"].notna()]
    assert len(future) == FV.DEFAULT_HORIZON_DAYS

    # The same data and parameters, read and fitted here without the page's helpers.
    first, as_of = _as_of()
    cursor = app_context().store.cursor()
    history = Filters(first, as_of, "custom", "none")
    trend = metrics.trend(cursor, history, Scope.everything(), "day", ("views",))
    series = pd.Series(
        trend["value"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(trend["bucket"]))
    )
    releases = forecast_inputs.premieres(cursor, history, Scope.everything(), ahead_days=90)
    days = set(pd.to_datetime(releases["release_date"]).dt.date)
    covered = {d + timedelta(days=k) for d in days for k in range(4)}
    share = len({d for d in covered if first <= d <= as_of}) / ((as_of - first).days + 1)
    # Premieres are events only when they are not on most days (the page says which).
    events = (
        pd.DataFrame({"ds": pd.to_datetime(sorted(days)), "event": "premiere"}).assign(
            days_before=0, days_after=3
        )
        if share <= 0.5
        else None
    )
    params = F.ForecastParams(horizon_days=90, countries=("US", "GB"))
    direct = F.forecast(series, as_of, params, events=events)
    notes = " ".join(texts(at, "caption"))
    assert ("Premieres are not modelled" in notes) == (events is None)
    np.testing.assert_allclose(
        future["Forecast"].to_numpy(dtype=float), direct.forecast["yhat"].to_numpy(), rtol=1e-9
    )
    assert pd.to_datetime(future["Day"]).min().date() == as_of + timedelta(days=1)
    shown_mase = next(m.value for m in at.metric if m.label == "MASE, model")
    assert shown_mase == f"{direct.backtest.mase:.2f}"

    # Another user opening the same forecast: no fit, no disk read, one cache hit.
    fits = dict(FV.FITS)
    other = _page("manager")
    np.testing.assert_allclose(
        _forecast_table(other)["Forecast"].dropna().to_numpy(dtype=float),
        future["Forecast"].to_numpy(dtype=float),
    )
    assert dict(FV.FITS) == fits


def test_a_series_too_short_gets_the_models_message():
    """A title first watched in the last days has too little history: the model's own message
    (how much is needed, how much there is), no chart and no backtest."""
    _first, as_of = _as_of()
    cursor = app_context().store.cursor()
    newest = cursor.execute(
        "SELECT title_id, min(day) FILTER (WHERE views > 0) AS first_seen FROM dv_title_day "
        "WHERE day <= ? GROUP BY 1 HAVING sum(views) > 0 ORDER BY first_seen DESC, 1 LIMIT 1",
        [as_of],
    ).fetchone()
    title_id, first_seen = int(newest[0]), newest[1]
    # Daily needs 21 days, weekly 12 weeks: pick what this title is too young for.
    daily = (as_of - first_seen).days + 1 < 21
    at = _page("analyst")
    _ok(at.segmented_control(key="forecast-slice").set_value("title").run())
    _ok(at.selectbox(key="forecast-title").set_value(title_id).run())
    if not daily:
        _ok(at.segmented_control(key="forecast-freq").set_value("W").run())
    warning = " ".join(texts(at, "warning"))
    assert "Not enough history to forecast" in warning or "Nothing to forecast" in warning
    assert "needs at least" in warning or "zero or missing" in warning
    assert not at.metric
    _ok(at.segmented_control(key="forecast-freq").set_value("D").run())
    _ok(at.segmented_control(key="forecast-slice").set_value("slice").run())


def test_a_what_if_is_yours_alone():
    at = _page("analyst")
    base = _forecast_table(at)["Forecast"].dropna().to_numpy(dtype=float)
    widget(at, "checkbox", "A campaign").check()
    widget(at, "button", "Show the what-if").click()
    _ok(at.run())
    with_campaign = next(m for m in at.metric if m.label.startswith("With a campaign"))
    assert with_campaign.delta.startswith("+")
    tables = [d.value for d in at.dataframe if "What-if" in d.value.columns]
    assert tables, "the what-if is drawn beside the base forecast"
    both = tables[0].dropna(subset=["What-if"])
    assert (both["What-if"] >= both["Forecast"] - 1e-9).all()
    # The base forecast on this page is unchanged ...
    np.testing.assert_allclose(_forecast_table(at)["Forecast"].dropna().to_numpy(dtype=float), base)
    # ... and another session sees the base forecast and no what-if at all.
    other = _page("manager")
    np.testing.assert_allclose(
        _forecast_table(other)["Forecast"].dropna().to_numpy(dtype=float), base
    )
    assert not any(m.label.startswith("With ") for m in other.metric)
    _ok(widget(at, "button", "Clear the what-if").click().run())
    assert not any(m.label.startswith("With ") for m in at.metric)


def test_changing_the_defaults_needs_change_models_and_is_audited():
    security = app_context().security
    store = ForecastDefaultsStore(security.db, security.audit, security.clock)
    manager = _page("manager")
    _ok(manager.segmented_control(key="forecast-view").set_value("defaults").run())
    assert any(m.label == "Seasonality" for m in manager.metric)
    assert not any(b.label == "Save for everyone" for b in manager.button)
    assert any("Only analysts and administrators" in c for c in texts(manager, "caption"))
    as_manager = Principal(username="manager", display_name="m", roles={"manager"})
    with pytest.raises(AccessDenied):
        store.change(as_manager, ForecastDefaults(changepoint_prior_scale=0.2))
    _ok(manager.segmented_control(key="forecast-view").set_value("forecast").run())

    analyst = _page("analyst")
    _ok(analyst.segmented_control(key="forecast-view").set_value("defaults").run())
    analyst.number_input(key="forecast-defaults-scale").set_value(0.2)
    _ok(widget(analyst, "button", "Save for everyone").click().run())
    assert any("Saved" in s for s in texts(analyst, "success"))
    try:
        assert store.current().defaults.changepoint_prior_scale == pytest.approx(0.2)
        [record] = security.audit.list(action="model.change", actor="analyst", limit=1)
        assert record.target == "forecast.defaults"
        assert record.details["before"]["changepoint_prior_scale"] == pytest.approx(0.05)
        assert record.details["after"]["changepoint_prior_scale"] == pytest.approx(0.2)
        # Everyone reads the new defaults.
        _ok(manager.segmented_control(key="forecast-view").set_value("defaults").run())
        shown = next(m.value for m in manager.metric if m.label == "Changepoint prior scale")
        assert shown == "0.2"
        assert any("Last changed by analyst" in c for c in texts(manager, "caption"))
    finally:
        as_analyst = Principal(username="analyst", display_name="a", roles={"analyst"})
        store.change(as_analyst, BUILT_IN)
        _ok(manager.segmented_control(key="forecast-view").set_value("forecast").run())
        _ok(analyst.segmented_control(key="forecast-view").set_value("forecast").run())


def test_a_creator_scope_is_refused_by_the_runner_and_narrowed_below_it():
    """Creators cannot open the page, and the query runner refuses them the forecast queries
    too; below it, the forecast narrows to the scope like every query: another creator's title
    is refused, never forecast."""
    ctx = app_context()
    first, as_of = _as_of()
    cursor = ctx.store.cursor()
    history = Filters(first, as_of, "custom", "none")
    theirs = cursor.execute(
        "SELECT title_id FROM dim_title WHERE creator_id NOT IN (1, 2) ORDER BY title_id LIMIT 1"
    ).fetchone()[0]
    creator = Principal(username="creator", display_name="c", roles={"creator"}, creator_ids={1, 2})
    params = FV.forecast_params(BUILT_IN, 14, "W")
    for name in ("forecast_as_of", "forecast_title_features", "success_model"):
        with pytest.raises(AccessDenied):
            queries.run(ctx, creator, name)
    with pytest.raises(AccessDenied):
        queries.run(ctx, creator, "forecast", history, metric="views", params=params)
    refused = FV.compute_forecast(
        cursor, history, Scope.creators([1, 2]), metric="views", params=params, title_id=theirs
    )
    assert isinstance(refused, FV.Refusal)
    assert "not in the catalog you can see" in refused.message


def test_money_forecasts_need_see_money_in_the_query_runner_itself():
    """Whatever a page asks for: a money metric is only forecast under its own query name, which
    needs see_money (and the forecast page), checked before anything runs."""
    ctx = app_context()
    first, as_of = _as_of()
    history = Filters(first, as_of, "custom", "none")
    params = FV.forecast_params(BUILT_IN, 14, "W")
    manager = Principal(username="manager", display_name="m", roles={"manager"})
    with pytest.raises(AccessDenied):
        queries.run(ctx, manager, "forecast_money", history, metric="net_revenue", params=params)
    with pytest.raises(AccessDenied):
        queries.run(ctx, manager, "success_model_money")
    marketer = Principal(username="marketer", display_name="m", roles={"marketer"})
    with pytest.raises(AccessDenied):
        queries.run(ctx, marketer, "forecast", history, metric="views", params=params)
    # Asked for under the other name, a money metric is refused, not forecast.
    smuggled = queries.run(ctx, manager, "forecast", history, metric="net_revenue", params=params)
    assert isinstance(smuggled, FV.Refusal) and "money" in smuggled.message


def test_content_success_for_a_title_before_release():
    at = _page("manager")
    _ok(at.segmented_control(key="forecast-view").set_value("success").run())
    labels = {m.label for m in at.metric}
    assert "Predicted first-28-day views" in labels and "Predicted completion" in labels
    assert any(label.startswith("Genre median") for label in labels)
    verdict = " ".join(texts(at, "success") + texts(at, "warning"))
    assert "genre median" in verdict and "released from then on" in verdict
    assert any("Factor" in d.value.columns or "label" in d.value.columns for d in at.dataframe)
    # The what-if by release month: twelve predictions.
    month_table = next(d.value for d in at.dataframe if "views_change" in d.value.columns)
    assert len(month_table) == 12
    _ok(at.segmented_control(key="forecast-view").set_value("forecast").run())


def test_the_cli_precompute_and_the_page_meet_in_the_sealed_disk_cache():
    """``cli.py forecast --all`` keys a forecast exactly as the page does, so what it writes is
    what the page reads; the file is sealed (no plaintext, a changed byte is never unpickled)."""
    at = _page("analyst")
    shown = _forecast_table(at)["Forecast"].dropna().to_numpy(dtype=float)
    ctx = app_context()
    cursor = ctx.store.cursor()
    first, _last, as_of = FV.last_complete_day(cursor)
    label, history, title_id = FV.precompute_definitions(cursor, first, as_of, 0)[0]
    assert label == "platform" and title_id is None
    params = FV.forecast_params(BUILT_IN, FV.DEFAULT_HORIZON_DAYS, "D")
    build = FV.build_id(cursor)
    definition = FV.series_definition(history, "views", None, queries.reporting_currency(ctx))
    key = F.cache_key(definition, Scope.everything(), build, params, as_of)
    disk = FV.disk_cache_for(ctx.settings)
    found = disk.get(build, key)
    assert isinstance(found, F.Forecast), "the page's first fit was written where the CLI writes"
    np.testing.assert_allclose(found.forecast["yhat"].to_numpy(), shown)
    path = disk.folder / build / f"{key}.bin"
    sealed = path.read_bytes()
    assert b"yhat" not in sealed and b"pandas" not in sealed
    try:
        path.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
        assert disk.get(build, key) is None
    finally:
        path.write_bytes(sealed)
    assert isinstance(disk.get(build, key), F.Forecast)


def test_one_failed_series_never_stops_the_precompute(monkeypatch, tmp_path):
    calls: list[str] = []

    def fake(cursor, history, scope, *, metric, params, title_id=None, currency, disk):
        calls.append(str(history.genres or title_id or "platform"))
        if len(calls) == 2:
            raise RuntimeError("cmdstan crashed")
        return FV.Refusal("Too sparse to forecast", "TooSparseError")

    monkeypatch.setattr(FV, "compute_forecast", fake)
    cursor = app_context().store.cursor()
    steps: list[tuple[int, int]] = []
    result = FV.precompute(
        cursor,
        FV.DiskCache(tmp_path, "a-test-app-key-0123456789abcdef0123"),
        BUILT_IN,
        top_titles=3,
        progress=lambda done, total, _label: steps.append((done, total)),
    )
    assert len(result.rows) == len(calls) >= 5  # platform, every genre, three titles
    assert len(result.failed) == 1 and "cmdstan crashed" in result.failed[0][1]
    assert result.count("refused: TooSparseError") == len(calls) - 1
    assert steps[-1] == (len(calls), len(calls))


def test_defaults_are_validated_and_an_unchanged_save_writes_nothing():
    from security.forecast_defaults import DefaultsError

    for bad in (
        {"changepoint_prior_scale": 5.0},
        {"changepoint_prior_scale": float("nan")},
        {"seasonality_mode": "exponential"},
        {"countries": ("XX",)},
        {"countries": "US"},
    ):
        with pytest.raises(DefaultsError):
            ForecastDefaults(**bad)
    assert ForecastDefaults(countries=("us", " gb", "US")).countries == ("GB", "US")
    security = app_context().security
    store = ForecastDefaultsStore(security.db, security.audit, security.clock)
    analyst = Principal(username="analyst", display_name="a", roles={"analyst"})
    before = len(security.audit.list(action="model.change", limit=1000))
    assert store.change(analyst, store.current().defaults) == store.current()
    assert len(security.audit.list(action="model.change", limit=1000)) == before
    # A 2FA role must have passed 2FA in this tab to change them.
    admin_pending = Principal(username="admin", display_name="a", roles={"admin"})
    with pytest.raises(AccessDenied):
        store.change(admin_pending, ForecastDefaults(changepoint_prior_scale=0.3))


def _main_chart_traces(at: AppTest) -> list[str]:
    """The names of the lines on the page's first chart (the forecast; the what-if's is later)."""
    import json

    return [t.get("name", "") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]


def test_the_naive_forecast_is_drawn_whenever_the_model_does_not_beat_it():
    at = _page("analyst")
    names = _main_chart_traces(at)
    beats = any("The model beats" in s for s in texts(at, "success"))
    assert ("Same day last week (naive)" in names) == (not beats)
    # Weekly watch hours (the model lost to "same as last week" on the demo data when written):
    # the naive line is drawn exactly when the verdict says the model does no better.
    _ok(at.selectbox(key="forecast-metric").set_value("watch_hours").run())
    _ok(at.segmented_control(key="forecast-freq").set_value("W").run())
    names = _main_chart_traces(at)
    loses = any("does no better than" in w for w in texts(at, "warning"))
    assert ("Same as last week (naive)" in names) == loses
    _ok(at.segmented_control(key="forecast-freq").set_value("D").run())
    _ok(at.selectbox(key="forecast-metric").set_value("views").run())


def test_compare_links_a_title_to_its_predicted_vs_actual():
    """Managers license with it: Compare titles links each title to the Forecast page's
    predicted-vs-actual, which shows it only for titles the model never trained on."""
    from components.context import app_context
    from components.forecast_view import success_query

    at = signed_in_app("manager")
    cursor = app_context().store.cursor()
    model = success_query(cursor, Scope.everything(), False, 0).model
    held = int(model.test_predictions.sort_values("release_date")["title_id"].iloc[-1])
    at.query_params["view"] = "success"
    at.query_params["title"] = str(held)
    at = at.switch_page("app_pages/forecast.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="forecast-success-released").value == held
    labels = [m.label for m in at.metric]
    assert "Actual" in labels and "Predicted first-28-day views" in labels
    compare = signed_in_app("manager").switch_page("app_pages/compare.py").run()
    assert not compare.exception
    links = [p.proto for p in compare.get("page_link")]
    compared = next(m for m in compare.multiselect if m.label.startswith("Titles to compare"))
    assert len(links) == len(compared.value) >= 2
    assert all(link.label.startswith("Predicted vs actual: ") for link in links)
    assert all("forecast" in link.page for link in links)
