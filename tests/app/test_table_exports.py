"""Table exports (issue 17, "Exports analysts expect"): Top titles, Underperforming titles and
Compare's side-by-side table get the governed CSV/Excel downloads, with the headers users see,
CSV values at the shown precision and full precision (with a number format) in Excel."""

from __future__ import annotations

import csv
import io
import json
import uuid

import openpyxl
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from components.charts import readable_headers
from components.context import app_context
from components.export import prepare_export
from components.table_export import builder, export_frames, precision
from security.permissions import Principal
from tests.app.conftest import new_app, sign_in, texts

OVERVIEW = "app_pages/overview.py"
COMPARE = "app_pages/compare.py"
CLIENT = "client-test"


def _open(role: str, page: str, password: str | None = None) -> AppTest:
    at = new_app().run()
    sign_in(at, role) if password is None else sign_in(at, role, password)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _download_keys(at: AppTest) -> set[str]:
    return {button.key for button in at.get("download_button")}


def _shown_table(at: AppTest, first_column: str) -> tuple[pd.DataFrame, dict]:
    """A displayed table (the page's frame) and its column_config, as the page drew them."""
    for table in at.dataframe:
        if list(table.value.columns)[:1] == [first_column] and table.proto.columns:
            config = json.loads(table.proto.columns)
            if any("type_config" in c for c in config.values()):
                return table.value, config
    raise AssertionError(f"no table starting with {first_column!r}")


def _labels(config: dict, frame: pd.DataFrame) -> list[str]:
    return [config[c]["label"] for c in frame.columns]


def _read_back(frame: pd.DataFrame, config: dict, name: str) -> tuple[list[list[str]], object]:
    """The CSV rows and the Excel sheet, built through the audited prepare_export."""
    sec = app_context().security
    analyst = Principal(
        username=f"analyst-{uuid.uuid4().hex[:6]}",
        display_name="analyst",
        roles={"analyst"},
        mfa_verified=True,
    )
    counted, build = builder(frame, config, name)
    files = {
        fmt: prepare_export(sec, analyst, counted, fmt=fmt, target=name, client=CLIENT, build=build)
        for fmt in ("csv", "excel")
    }
    rows = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(files["excel"])).active
    return rows, sheet


def test_overview_tables_offer_downloads_to_exporters_and_none_to_a_partner(clock):
    analyst = _open("analyst", OVERVIEW)
    keys = _download_keys(analyst)
    assert {"dl-csv-overview-top-titles", "dl-excel-overview-top-titles"} <= keys
    if not any("No title is clearly below" in i.value for i in analyst.info):
        assert {
            "dl-csv-overview-underperforming",
            "dl-excel-overview-underperforming",
        } <= keys

    partner_name = f"partner-{uuid.uuid4().hex[:6]}"
    app_context().security.users.add(
        partner_name, "correct horse battery staple", ["partner"], creator_ids=[1]
    )
    partner = _open(partner_name, OVERVIEW, "correct horse battery staple")
    assert partner.metric, "the partner sees its creator's numbers"
    assert not partner.get("download_button")
    assert "Downloads are not available for your role." in texts(partner, "caption")


def test_top_titles_export_has_the_shown_headers_and_precision(clock):
    at = _open("analyst", OVERVIEW)
    frame, config = _shown_table(at, "rank")
    csv_frame, excel_frame, formats = export_frames(frame, config)
    assert list(csv_frame.columns) == [
        "#",
        "Title",
        "Kind",
        "Genre",
        "Views",
        "Watch hours",
        "Completion",
        "Demand multiplier",
    ]
    assert "watch_hours" not in csv_frame.columns and list(excel_frame.columns) == list(
        csv_frame.columns
    )
    rows, sheet = _read_back(frame, config, "Top titles")
    assert rows[0] == list(csv_frame.columns)
    hours = rows[0].index("Watch hours")
    assert all(row[hours].lstrip("-").isdigit() for row in rows[1:]), "whole hours, as shown"
    completion = rows[0].index("Completion")
    assert all(len(row[completion].partition(".")[2]) <= 4 for row in rows[1:])
    # Excel: full precision in the cell, shown as on screen by its number format.
    assert [c.value for c in sheet[1]] == rows[0]
    column = hours + 1
    full = float(frame["watch_hours"].iloc[0])
    assert sheet.cell(2, column).value == pytest.approx(full, rel=1e-12), "not rounded"
    assert sheet.cell(2, column).number_format == formats["Watch hours"] == "#,##0"
    assert sheet.cell(2, completion + 1).number_format == "0.00%"


def test_underperforming_export_has_the_shown_headers(clock):
    at = _open("analyst", OVERVIEW)
    if any("No title is clearly below" in i.value for i in at.info):
        return
    frame, config = _shown_table(at, "name")
    csv_frame, _, _ = export_frames(frame, config)
    assert list(csv_frame.columns) == _labels(config, frame)
    assert {"Title", "Why", "vs expected", "Expected views"} <= set(csv_frame.columns)


def test_compare_side_by_side_exports_money_columns_only_for_money_roles(clock):
    executive = _open("executive", COMPARE)
    analyst = _open("analyst", COMPARE)
    for at in (executive, analyst):
        assert {"dl-csv-compare-side-by-side", "dl-excel-compare-side-by-side"} <= _download_keys(
            at
        )
    money_frame, money_config = _shown_table(executive, "title")
    plain_frame, plain_config = _shown_table(analyst, "title")
    money_rows, money_sheet = _read_back(money_frame, money_config, "Compare titles side by side")
    plain_rows, _ = _read_back(plain_frame, plain_config, "Compare titles side by side")
    assert money_rows[0] == _labels(money_config, money_frame)
    assert plain_rows[0] == _labels(plain_config, plain_frame)
    # Both money figures per view, in the reporting currency (issue 17: a per-view cost beside a
    # total revenue read as nonsense).
    assert "Net revenue per view (USD)" in money_rows[0]
    assert "Licensing cost per view (USD)" in money_rows[0]
    assert not any("revenue" in h.lower() or "cost" in h.lower() for h in plain_rows[0])
    assert "net_revenue_per_view" not in money_rows[0] and "Completion" in plain_rows[0]
    # CSV at the shown precision (money per view to 4 decimals), Excel with a number format.
    net = money_rows[0].index("Net revenue per view (USD)")
    assert all(len(row[net].partition(".")[2]) <= 4 for row in money_rows[1:])
    assert money_sheet.cell(2, net + 1).number_format == "#,##0.0000"


def test_chart_data_table_exports_have_readable_headers():
    frame = pd.DataFrame(
        {"bucket": ["2026-01-01"], "metric": ["views"], "this period": [1.0], "age_band": ["new"]}
    )
    headers = list(
        readable_headers(frame, {"bucket": "Day (UTC)", "this period": "This period"}).columns
    )
    assert headers == ["Day (UTC)", "Metric", "This period", "Age band"]
    # Two columns given the same title stay distinct.
    same = readable_headers(pd.DataFrame({"a": [1], "b": [2]}), {"a": "Views", "b": "Views"})
    assert list(same.columns) == ["Views", "Views (b)"]


def test_precision_follows_the_streamlit_formats():
    assert precision("%d") == (0, "#,##0")
    assert precision("%.0f") == (0, "#,##0")
    assert precision("%.2f") == (2, "#,##0.00")
    assert precision("%.2fx") == (2, '#,##0.00"x"')
    assert precision("percent") == (4, "0.00%")
    assert precision(None) == (None, None)
    frame = pd.DataFrame({"watch_hours": [12.6, 3.2], "name": ["=A1", "B"]})
    config = {
        "watch_hours": st.column_config.NumberColumn("Watch hours", format="%.0f"),
        "name": st.column_config.TextColumn("Title"),
    }
    csv_frame, excel_frame, _ = export_frames(frame, config)
    assert csv_frame["Watch hours"].tolist() == [13, 3]
    assert excel_frame["Watch hours"].tolist() == [12.6, 3.2]
