"""Compare titles as a new user reads it (issue 17, "Compare titles"), run as AppTests on the
app's own demo extract:

- a title with no data in the window gets no empty line, legend entry or export column: the page
  says "no data in the window" and why, above the chart and in the exported table's Notes;
- no table, KPI or text on the page renders None / nan / NaT: blanks show "—" with a reason;
- a title is labelled the same way everywhere (the catalog's label: "(#id)" only for a name
  another visible title shares), the similar-titles table included;
- net revenue and licensing cost are the same kind of figure (both per view, one currency), each
  with its definition in the header's tooltip and in "What these numbers mean".

The titles picked are found in the extract by their properties (released before the data
begins, unwatched in the period, sharing a name), not written down.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from components.export import prepare_export
from components.table_export import builder
from components.text import md_escape
from data.extract.store import store_from_settings
from data.queries import comparison, metrics
from data.queries.filters import Filters, Scope
from models.similarity import similar_titles
from security.permissions import Principal
from settings import load_settings
from tests.app.conftest import signed_in_app, texts

COMPARE = "app_pages/compare.py"
ALL = Scope.everything()
# Text a blank value turns into when it is rendered as is.
RAW_BLANK = re.compile(r"(?<![\w-])(nan|NaN|NaT|<NA>|None)(?![\w-]| of )")


def _cursor():
    return store_from_settings(load_settings()).cursor()


@pytest.fixture(scope="module")
def executive() -> AppTest:
    at = signed_in_app("executive")
    at.switch_page(COMPARE).run()
    assert not at.exception, at.exception
    assert at.query_params.get("preset") == "last_28_days"
    return at


@pytest.fixture(scope="module")
def picks(executive) -> dict[str, int]:
    """Titles with the properties under test, found in the app's extract."""
    cursor = _cursor()
    first_day, last_day = metrics.data_bounds(cursor)
    filters = Filters.for_preset("last_28_days", last_day)
    catalog = comparison.title_catalog(cursor, None, ALL)
    catalog["release_date"] = pd.to_datetime(catalog["release_date"]).dt.date
    period = cursor.execute(
        "SELECT title_id, sum(views) AS views FROM dv_view WHERE day BETWEEN ? AND ? GROUP BY 1 "
        "ORDER BY 2 DESC, 1",
        [filters.start, filters.end],
    ).df()
    watched = [int(t) for t in period["title_id"]]
    old_cut = first_day - timedelta(days=comparison.CURVE_DAYS)
    back = set(catalog.loc[catalog["release_date"] < old_cut, "title_id"].astype(int))
    shared = set(catalog.loc[catalog["name"].duplicated(keep=False), "title_id"].astype(int))
    inside = set(catalog.loc[catalog["release_date"] >= first_day, "title_id"].astype(int))
    unwatched = sorted(back - set(watched))
    return {
        "old": next(t for t in watched if t in back and t not in shared),
        "unwatched": unwatched[0],
        "shared": next(t for t in watched if t in shared),
        "recent": next(t for t in watched if t in inside and t not in shared),
    }


@pytest.fixture(scope="module")
def labels() -> dict[int, str]:
    catalog = comparison.title_catalog(_cursor(), None, ALL)
    return dict(zip(catalog["title_id"].astype(int), catalog["label"], strict=True))


@pytest.fixture(scope="module")
def compared(picks) -> AppTest:
    return _compare("executive", list(picks.values()))


def _compare(role: str, ids: list[int]) -> AppTest:
    """The page comparing ``ids``, as after an earlier pick: the picker lists the period's most
    viewed titles plus those already picked, so an unwatched title is put in its state before
    the page is first drawn."""
    at = signed_in_app(role)
    at.session_state["compare-titles"] = ids
    at.switch_page(COMPARE).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="compare-titles").value == ids
    return at


def _table(at: AppTest, first_column: str) -> tuple[pd.DataFrame, dict, object]:
    for table in at.dataframe:
        if list(table.value.columns)[:1] == [first_column]:
            return table.value, json.loads(table.proto.columns or "{}"), table
    raise AssertionError(f"no table starting with {first_column!r}")


def _expander_table(at: AppTest, name: str) -> pd.DataFrame:
    for expander in at.expander:
        if expander.label == f"Data table: {name}":
            return expander.dataframe[0].value
    raise AssertionError(f"no data table {name!r}; have {[e.label for e in at.expander]}")


def _curve_traces(at: AppTest) -> list[str]:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if "Cumulative views since release" in json.dumps(spec.get("layout", {}).get("title")):
            return [trace.get("name", "") for trace in spec["data"]]
    raise AssertionError("no since-release chart")


def _read_back(frame: pd.DataFrame, config: dict, name: str) -> list[list[str]]:
    analyst = Principal(
        username=f"analyst-{uuid.uuid4().hex[:6]}",
        display_name="analyst",
        roles={"analyst"},
        mfa_verified=True,
    )
    counted, build = builder(frame, config, name)
    data = prepare_export(
        app_context().security, analyst, counted, fmt="csv", target=name, client="t", build=build
    )
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_a_title_without_data_in_the_window_is_named_not_drawn_empty(compared, picks, labels):
    at = compared
    gone = [labels[picks["old"]], labels[picks["unwatched"]]]
    captions = texts(at, "caption")
    for label in gone:
        said = [
            c for c in captions if c.startswith(f"📭 {md_escape(label)}: no data in the window")
        ]
        assert said, (label, captions)
    assert any("before the data begins" in c.replace("\\", "") for c in captions)
    # No legend entry, no empty column in the chart's table (and so in its export).
    traces = _curve_traces(at)
    table = _expander_table(at, "Cumulative views since release")
    for label in gone:
        assert label not in traces and label not in table.columns
    assert labels[picks["recent"]] in traces and labels[picks["recent"]] in table.columns
    assert not table.drop(columns="day").isna().all().any(), "no column without a value"
    # The side-by-side export says it too, in its Notes column.
    frame, config, _ = _table(at, "title")
    rows = _read_back(frame, config, "Compare titles side by side")
    notes = rows[0].index("Notes")
    by_title = {row[0]: row[notes] for row in rows[1:]}
    for label in gone:
        assert comparison.CURVE_NOTE in by_title[label].lower()
    assert by_title[labels[picks["unwatched"]]].startswith("No views in the period")


def test_nothing_on_the_page_renders_a_raw_blank(compared, picks, labels):
    at = compared
    frame, _, _ = _table(at, "title")
    staying = frame.set_index("title")["staying_power"]
    assert pd.isna(staying[labels[picks["old"]]]), "a back-catalogue title has no staying power"
    notes = frame.set_index("title")["note"]
    assert notes[labels[picks["old"]]].startswith("Staying power, ")
    assert notes[labels[picks["old"]]].count("before the data begins") == 1
    checked = 0
    for table in at.dataframe:
        value = table.value
        if value.isna().any().any():
            # A blank cell is drawn as the placeholder, never as "None".
            assert table.proto.placeholder == "—", list(value.columns)
        for column in value.columns:
            assert not RAW_BLANK.fullmatch(str(column))
            for cell in value[column]:
                if isinstance(cell, str):
                    assert not RAW_BLANK.search(cell), (column, cell)
        checked += 1
    assert checked >= 4, "the side-by-side table and the charts' tables"
    for metric in at.metric:
        assert not RAW_BLANK.search(str(metric.value)), metric.label
    for kind in ("caption", "markdown", "info", "warning", "subheader"):
        for text in texts(at, kind):
            assert not RAW_BLANK.search(text), (kind, text)
    for link in at.get("page_link"):
        assert not RAW_BLANK.search(link.proto.label)


def test_a_title_reads_the_same_everywhere(compared, picks, labels):
    at = compared
    shared = labels[picks["shared"]]
    assert re.fullmatch(r".+ \(#\d+\)", shared), "a shared name carries its id"
    bare = shared.rsplit(" (#", 1)[0]
    picker = at.multiselect(key="compare-titles")
    assert shared in [picker.format_func(t) for t in picker.value]
    frame, _, _ = _table(at, "title")
    assert shared in set(frame["title"])
    views = _expander_table(at, "Views in the period")
    assert shared in set(views.iloc[:, 0])
    links = [link.proto.label for link in at.get("page_link")]
    if links:
        assert any(md_escape(shared) in link for link in links)
    # Nowhere the bare name alone: every title on the page is a catalog label.
    shown = set(labels.values())
    for table in at.dataframe:
        for column in ("title", "Title"):
            if column in table.value.columns:
                assert set(table.value[column].astype(str)) <= shown
                assert bare not in set(table.value[column].astype(str))


def test_similar_titles_use_the_same_labels(executive, labels):
    """The similar-titles table used the bare name where every other table added the id."""
    cursor = _cursor()
    _, last_day = metrics.data_bounds(cursor)
    filters = Filters.for_preset("last_28_days", last_day)
    catalog = comparison.title_catalog(cursor, None, ALL)
    shared_names = set(catalog.loc[catalog["name"].duplicated(keep=False), "name"])
    top = cursor.execute(
        "SELECT title_id FROM dv_view WHERE day BETWEEN ? AND ? GROUP BY 1 "
        "ORDER BY sum(views) DESC, 1 LIMIT 40",
        [filters.start, filters.end],
    ).fetchall()
    anchor = None
    for (title_id,) in top:
        found = similar_titles(
            int(title_id),
            **comparison.similarity_features(cursor, filters, ALL, int(title_id)),
            k=5,
        )
        if set(found["name"]) & shared_names:
            anchor = int(title_id)
            break
    if anchor is None:
        pytest.skip("no title among the top 40 has a similar title with a shared name")
    at = executive
    at.segmented_control(key="compare-mode").set_value("similar").run()
    at.selectbox(key="compare-anchor").set_value(anchor).run()
    assert not at.exception, at.exception
    similar = _table(at, "Title")[0]
    assert set(similar["Title"]) <= set(labels.values())
    assert any(re.search(r" \(#\d+\)$", t) for t in similar["Title"])
    at.segmented_control(key="compare-mode").set_value("pick").run()


def test_money_is_per_view_in_one_currency_with_its_definition(compared, picks, labels):
    frame, config, _ = _table(compared, "title")
    headers = {c: config[c]["label"] for c in frame.columns if c in config}
    money = [h for h in headers.values() if "revenue" in h.lower() or "cost" in h.lower()]
    assert money == ["Net revenue per view (USD)", "Licensing cost per view (USD)"]
    for column in ("net_revenue_per_view", "licensing_cost_per_view", "staying_power", "views"):
        assert config[column]["help"] == comparison.DEFINITIONS[column]
    assert "net_revenue" not in frame.columns and "licensing_cost" not in frame.columns
    # Blank for a title whose views before the data begins are unknown, with the reason.
    row = frame.set_index("title").loc[labels[picks["old"]]]
    assert pd.isna(row["licensing_cost_per_view"])
    assert "licensing cost per view" in row["note"] and "before the data begins" in row["note"]
    recent = frame.set_index("title").loc[labels[picks["recent"]]]
    assert recent["licensing_cost_per_view"] > 0
    definitions = next(e for e in compared.expander if e.label == "What these numbers mean")
    text = " ".join(m.value for m in definitions.markdown)
    for column in ("licensing_cost_per_view", "net_revenue_per_view", "staying_power"):
        label = md_escape(config[column]["label"])
        assert f"**{label}**: {md_escape(comparison.DEFINITIONS[column])}" in text
    assert md_escape(metrics.METRICS["completion_rate"].definition) in text


def test_no_money_columns_for_a_role_without_money(picks):
    at = _compare("manager", list(picks.values()))
    frame, config, _ = _table(at, "title")
    headers = [config[c]["label"] for c in frame.columns if c in config]
    assert not [h for h in headers if "revenue" in h.lower() or "cost" in h.lower()]
    notes = " ".join(frame["note"])
    assert "licensing cost" not in notes.lower() and comparison.CURVE_NOTE in notes
