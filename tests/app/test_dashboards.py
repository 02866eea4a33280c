"""The dashboards (Overview, Engagement, Compare titles) and their filter bar, run as AppTests.

Filter combination classes: no filter, each dimension (added as a chip through the widgets),
each comparison, a custom range, a result with no rows, and a bad link. Numbers shown are
checked against the metric catalog computed directly on the app's extract, not against
hard-coded values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from data.extract.derived import build_derived
from data.extract.store import store_from_settings
from data.queries import metrics
from data.queries.filters import COMPARISONS, DIMENSIONS, Filters, Scope
from settings import load_settings
from tests.app.conftest import app_environment, new_app, sign_in, signed_in_app, texts

OVERVIEW = "app_pages/overview.py"
ENGAGEMENT = "app_pages/engagement.py"
COMPARE = "app_pages/compare.py"
_APPS: dict[str, AppTest] = {}


def _app(role: str) -> AppTest:
    if role not in _APPS:
        _APPS[role] = signed_in_app(role)
    return _APPS[role]


def _fresh(role: str, params: dict[str, str], page: str = OVERVIEW) -> AppTest:
    """A new session opened on a link with these query parameters."""
    at = new_app()
    at.query_params = dict(params)
    at.run()
    sign_in(at, role)
    at.query_params = dict(params)
    at.switch_page(page).run()
    return at


def _cursor():
    return store_from_settings(load_settings()).cursor()


def _metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return m.value
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def _expected(filters: Filters, metric_id: str) -> str:
    frame = metrics.kpis(_cursor(), filters, Scope.everything(), metrics=(metric_id,))
    return metrics.METRICS[metric_id].format(frame["value"].iloc[0])


def _anchor():
    return metrics.data_bounds(_cursor())[1]


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_overview_default_shows_the_issue_kpis_and_sections():
    at = _app("manager")
    at.switch_page(OVERVIEW).run()
    _no_exception(at)
    labels = [m.label for m in at.metric]
    for metric_id in metrics.OVERVIEW_KPIS:
        assert metrics.METRICS[metric_id].label in labels
    assert "Net revenue" not in labels, "a manager may not see money"
    assert at.query_params.get("preset") == "last_28_days"
    filters = Filters.for_preset("last_28_days", _anchor())
    assert _metric(at, "Views") == _expected(filters, "views")
    subheaders = texts(at, "subheader")
    for section in ("Trend", "Breakdown", "Underperforming titles", "Top titles"):
        assert section in subheaders


def test_overview_money_only_for_money_roles():
    at = _app("executive")
    at.switch_page(OVERVIEW).run()
    _no_exception(at)
    assert "Net revenue" in [m.label for m in at.metric]


def _expander_labels(at: AppTest) -> list[str]:
    return [e.label for e in at.expander]


def test_money_is_shown_with_its_currency_and_by_original_currency():
    at = _app("finance")
    at.switch_page(OVERVIEW).run()
    _no_exception(at)
    filters = Filters.for_preset("last_28_days", _anchor())
    shown = _metric(at, "Net revenue")
    assert shown.startswith("USD ") and "$" not in shown
    assert shown == _expected(filters, "net_revenue")
    assert "Net revenue by currency, and in USD" in _expander_labels(at)
    table = next(df.value for df in at.dataframe if "net_converted" in df.value.columns)
    # The demo bills in several currencies; the converted column adds up to the KPI.
    assert len(table) > 3 and "JPY" in set(table["currency"])
    value = metrics.kpis(_cursor(), filters, Scope.everything(), ["net_revenue"])["value"][0]
    assert table["net_converted"].sum() == pytest.approx(value)
    assert not at.warning, "the demo has a rate for every amount"
    # A role without money sees neither.
    manager = _app("manager")
    manager.switch_page(OVERVIEW).run()
    assert not any("currency" in label for label in _expander_labels(manager))


def test_another_reporting_currency_is_named_on_every_money_figure():
    with app_environment(SPOTLIGHT_REPORTING_CURRENCY="EUR"):
        at = signed_in_app("executive")
        at.switch_page(OVERVIEW).run()
        _no_exception(at)
        filters = Filters.for_preset("last_28_days", _anchor())
        value = metrics.kpis(
            _cursor(), filters, Scope.everything(), ["net_revenue"], currency="EUR"
        )["value"][0]
        assert _metric(at, "Net revenue") == metrics.METRICS["net_revenue"].format(value, "EUR")
        assert _metric(at, "Net revenue").startswith("EUR ")
        assert "Net revenue by currency, and in EUR" in _expander_labels(at)


@contextmanager
def _rates_removed(currency: str, first, last) -> Iterator[int]:
    """The app's extract without ``currency``'s rates dated first..last; yields how many."""
    store = store_from_settings(load_settings())
    with store.build(copy_current=True) as con:
        removed = con.execute(
            "SELECT * FROM fact_exchange_rate WHERE currency = ? AND rate_date BETWEEN ? AND ?",
            [currency, first, last],
        ).fetchall()
        con.execute(
            "DELETE FROM fact_exchange_rate WHERE currency = ? AND rate_date BETWEEN ? AND ?",
            [currency, first, last],
        )
        build_derived(con)
    try:
        yield len(removed)
    finally:
        with store.build(copy_current=True) as con:
            con.executemany("INSERT INTO fact_exchange_rate VALUES (?, ?, ?, ?)", removed)
            build_derived(con)


def test_amounts_without_an_exchange_rate_are_a_visible_gap():
    anchor = _anchor()
    filters = Filters.for_preset("last_28_days", anchor)
    cursor = _cursor()
    code, amounts = cursor.execute(
        "SELECT currency, count(*) FROM fact_revenue WHERE currency <> 'USD' "
        "AND occurred_at >= ? AND occurred_at < ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        [filters.start, filters.end + timedelta(days=1)],
    ).fetchone()
    assert amounts > 0
    before = metrics.kpis(cursor, filters, Scope.everything(), ["net_revenue"])["value"][0]
    # No rate for that currency from well before the period to its end: every amount of the
    # period in it has none within 7 days.
    with _rates_removed(code, filters.start - timedelta(days=30), anchor + timedelta(days=30)):
        at = signed_in_app("executive")
        at.switch_page(OVERVIEW).run()
        _no_exception(at)
        message = f"{amounts} amounts in {code} have no exchange rate and are not included."
        assert message in [w.value for w in at.warning]
        table = next(df.value for df in at.dataframe if "net_converted" in df.value.columns)
        row = table[table["currency"] == code].iloc[0]
        assert row["missing"] == amounts and row["net_converted"] == 0
        after = metrics.kpis(_cursor(), filters, Scope.everything(), ["net_revenue"])
        assert after["value"][0] < before, "left out, not converted 1:1"
        assert message in after["gap"][0]
        assert _metric(at, "Net revenue") == metrics.METRICS["net_revenue"].format(
            after["value"][0]
        )


def test_each_dimension_as_a_chip_filters_the_numbers_and_the_url():
    at = _app("analyst")
    at.switch_page(OVERVIEW).run()
    anchor = _anchor()
    for name in DIMENSIONS:
        at.selectbox(key="filters-add").set_value(name).run()
        _no_exception(at)
        picker = at.multiselect(key=f"filters-dim-{name}")
        value = picker.options[0]
        # Options are shown by label; the widget's value is the underlying key.
        picker.select(value).run()
        _no_exception(at)
        chosen = at.multiselect(key=f"filters-dim-{name}").value
        assert len(chosen) == 1
        assert at.query_params.get(name) == str(chosen[0])
        assert at.query_params.get("chips") == name
        filters = Filters.for_preset("last_28_days", anchor).with_dimension(name, chosen)
        expected = _expected(filters, "views")
        if expected in ("0", "—"):
            # The first value may have no views in the window (the demo ends today): the page
            # then says so instead of drawing cards of zeros.
            assert any("No views match these filters" in t for t in texts(at, "info")), name
        else:
            assert _metric(at, "Views") == expected, name
        at.button(key=f"filters-remove-{name}").click().run()
        assert name not in at.query_params
        assert "chips" not in at.query_params


def test_chips_reorder_and_remove():
    at = _app("analyst")
    at.switch_page(OVERVIEW).run()
    at.selectbox(key="filters-add").set_value("country").run()
    at.selectbox(key="filters-add").set_value("device").run()
    assert at.query_params.get("chips") == "country,device"
    assert at.button(key="filters-up-country").disabled
    at.button(key="filters-down-country").click().run()
    assert at.query_params.get("chips") == "device,country"
    at.button(key="filters-clear").click().run()
    assert "chips" not in at.query_params
    _no_exception(at)


@pytest.mark.parametrize("comparison", COMPARISONS)
def test_each_comparison(comparison):
    at = _app("manager")
    at.switch_page(OVERVIEW).run()
    at.selectbox(key="filters-compare").set_value(comparison).run()
    _no_exception(at)
    if comparison == "previous_period":
        assert "compare" not in at.query_params  # the default is left out of links
    else:
        assert at.query_params.get("compare") == comparison
    views = next(m for m in at.metric if m.label == "Views")
    if comparison == "none":
        assert not views.delta
    else:
        assert views.delta and "vs comparison" in views.delta
    at.selectbox(key="filters-compare").set_value("previous_period").run()


def test_custom_range_goes_to_the_url_and_the_numbers():
    at = _app("manager")
    at.switch_page(OVERVIEW).run()
    anchor = _anchor()
    start, end = anchor - timedelta(days=20), anchor - timedelta(days=6)
    at.selectbox(key="filters-preset").set_value("custom").run()
    at.date_input(key="filters-dates").set_value((start, end)).run()
    _no_exception(at)
    assert at.query_params.get("start") == start.isoformat()
    assert at.query_params.get("end") == end.isoformat()
    filters = Filters.for_preset("custom", start=start, end=end)
    assert _metric(at, "Views") == _expected(filters, "views")
    at.selectbox(key="filters-preset").set_value("last_28_days").run()


def test_a_filter_matching_nothing_says_so():
    at = _fresh("manager", {"country": "ZZ"})
    _no_exception(at)
    assert any("No views match these filters" in t for t in texts(at, "info"))
    assert not at.metric


def test_a_bad_link_is_explained_and_the_default_shown():
    at = _fresh("manager", {"start": "2026-02-30", "end": "2026-03-10"})
    _no_exception(at)
    # The message is Markdown with the link's text escaped; compare what a reader sees.
    warnings = " ".join(texts(at, "warning")).replace("\\", "")
    assert "could not be used" in warnings and "2026-02-30" in warnings
    assert at.query_params.get("preset") == "last_28_days"


def test_a_bad_preset_in_a_link_names_the_periods_as_users_see_them():
    at = _fresh("manager", {"preset": "last_6_weeks"})
    _no_exception(at)
    warnings = " ".join(texts(at, "warning")).replace("\\", "")
    assert "Last 7 days" in warnings and "Year to date" in warnings
    assert "last_7_days" not in warnings


def test_selecting_every_value_of_a_dimension_is_no_filter():
    at = _fresh("analyst", {})
    at.selectbox(key="filters-add").set_value("device").run()
    picker = at.multiselect(key="filters-dim-device")
    for value in picker.options:
        picker = at.multiselect(key="filters-dim-device")
        picker.select(value)
    at.run()
    _no_exception(at)
    assert len(at.multiselect(key="filters-dim-device").value) == len(picker.options)
    assert "device" not in at.query_params, "everything selected filters nothing"
    assert _metric(at, "New subscribers") != "—"
    assert _metric(at, "New subscribers") == _expected(
        Filters.for_preset("last_28_days", _anchor()), "new_subscribers"
    )


def test_saved_views_round_trip():
    at = _app("analyst")
    at.switch_page(OVERVIEW).run()
    at.selectbox(key="filters-compare").set_value("same_period_last_year").run()
    at.text_input(key="filters-view-name").input("Year on year").run()
    at.button(key="filters-view-save").click().run()
    _no_exception(at)
    at.selectbox(key="filters-compare").set_value("none").run()
    assert at.query_params.get("compare") == "none"
    at.selectbox(key="filters-view").set_value("Year on year").run()
    at.button(key="filters-view-open").click().run()
    _no_exception(at)
    assert at.query_params.get("compare") == "same_period_last_year"
    at.button(key="filters-view-delete").click().run()
    assert "Year on year" not in at.selectbox(key="filters-view").options
    at.selectbox(key="filters-compare").set_value("previous_period").run()


def test_engagement_page_draws_every_section():
    at = _app("manager")
    at.switch_page(ENGAGEMENT).run()
    _no_exception(at)
    subheaders = texts(at, "subheader")
    for section in ("When viewers watch", "New releases, week by week", "Drop-off", "Interactions"):
        assert section in subheaders
    assert "Completion rate" in [m.label for m in at.metric]
    title = at.selectbox(key="engagement-title")
    title.set_value(title.options and title.value).run()
    _no_exception(at)


def test_engagement_with_a_device_filter_explains_missing_interactions():
    at = _fresh("analyst", {"device": "tv"}, ENGAGEMENT)
    _no_exception(at)
    assert any("not recorded by device" in t for t in texts(at, "info"))


@pytest.mark.parametrize(("role", "money"), [("manager", False), ("executive", True)])
def test_compare_page_pick_and_similar(role, money):
    at = _app(role)
    at.switch_page(COMPARE).run()
    _no_exception(at)
    table = at.dataframe[0].value
    assert 2 <= len(table) <= 6
    assert ("net_revenue_per_view" in table.columns) is money
    assert ("licensing_cost_per_view" in table.columns) is money
    at.segmented_control(key="compare-mode").set_value("similar").run()
    _no_exception(at)
    similar = at.dataframe[0].value
    assert "Similarity" in similar.columns and len(similar) >= 1
    at.segmented_control(key="compare-mode").set_value("pick").run()


@pytest.mark.parametrize("code", ["usd", "DOLLARS", "$"])
def test_a_reporting_currency_that_is_not_a_code_stops_the_app_with_the_fix(code):
    with app_environment(SPOTLIGHT_REPORTING_CURRENCY=code):
        at = new_app().run()
    errors = " ".join(texts(at, "error"))
    assert "SPOTLIGHT_REPORTING_CURRENCY" in errors and "ISO 4217" in errors, errors
    assert not at.exception
    assert not [t for t in at.text_input if t.label == "Username"]
