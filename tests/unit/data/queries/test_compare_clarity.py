"""Compare titles reads without guessing (issue 17, "Compare titles"): one label per title, a
reason for every blank value, no empty since-release line, and money figures of one kind.

Expected values come from the base tables of the demo extract (fact_view, dim_title,
fact_exchange_rate through the metric reference), never from the code under test.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from data.queries import comparison
from data.queries.dimensions import title_labels
from data.queries.filters import Filters, Scope
from tests.unit.data.queries.metrics_reference import Reference

END = date(2026, 10, 31)
ALL = Scope.everything()
PLAUSIBLE_SECONDS = 24 * 3600  # data/extract/plausibility.py: a session of at most 24 hours


@pytest.fixture(scope="module")
def cursor(demo_store):
    return demo_store.cursor()


@pytest.fixture(scope="module")
def base(cursor):
    titles = cursor.execute("SELECT * FROM dim_title").df()
    titles["release_date"] = pd.to_datetime(titles["release_date"]).dt.date
    views = cursor.execute("SELECT title_id, started_at, watch_seconds FROM fact_view").df()
    views = views[(views["watch_seconds"] >= 0) & (views["watch_seconds"] <= PLAUSIBLE_SECONDS)]
    views = views.merge(titles[["title_id", "runtime_min"]], on="title_id")
    views["day"] = views["started_at"].dt.date
    views["views"] = views["watch_seconds"] / (views["runtime_min"] * 60.0)
    return {"titles": titles.set_index("title_id"), "views": views, "first": views["day"].min()}


def test_title_labels_add_the_id_only_where_a_name_is_shared():
    labels = title_labels([(708, "Frozen Empire"), (12, "Frozen Empire"), (5, "Night Owl")])
    assert labels == {708: "Frozen Empire (#708)", 12: "Frozen Empire (#12)", 5: "Night Owl"}
    assert title_labels([]) == {}


def test_the_catalog_carries_one_unique_label_per_title(cursor):
    catalog = comparison.title_catalog(cursor, None, ALL)
    assert catalog["label"].is_unique
    shared = catalog["name"].duplicated(keep=False)
    assert shared.any(), "the demo has titles sharing a name"
    for row in catalog.itertuples():
        expected = f"{row.name} (#{row.title_id})" if shared[row.Index] else row.name
        assert row.label == expected
    # A creator's catalog disambiguates among the titles that creator can see.
    mine = comparison.title_catalog(cursor, None, Scope.creators([1]))
    assert mine["label"].is_unique
    assert set(mine["label"]) - set(catalog["label"]) <= {
        n for n in mine["name"] if n in set(catalog["name"])
    }


def _since_release(base, title_id: int, end: date) -> float:
    views = base["views"]
    release = base["titles"].loc[title_id, "release_date"]
    mine = views[(views["title_id"] == title_id) & (views["day"] >= release)]
    return float(mine[mine["day"] <= end]["views"].sum())


@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_licensing_cost_per_view_recomputed_from_the_extract(cursor, base, currency):
    """One title released inside the data: licensing cost (USD, at the period's last day's rate
    for another reporting currency) / its runtime-normalised views since release."""
    filters = Filters.for_preset("last_90_days", END)
    titles = base["titles"]
    young = titles[(titles["release_date"] >= base["first"]) & (titles["release_date"] < END)]
    watched = base["views"][base["views"]["title_id"].isin(young.index)]
    title_id = int(watched["title_id"].value_counts().index[0])
    other = int(titles.index[titles.index != title_id][0])
    got = comparison.compare_titles(
        cursor, filters, ALL, (title_id, other), money=True, currency=currency
    )
    row = got["summary"].set_index("title_id").loc[title_id]
    factor = 1.0
    if currency != "USD":
        factor = float(
            Reference.load(cursor).factor(
                pd.Series([pd.Timestamp(END)]), pd.Series(["USD"]), currency
            )[0]
        )
        assert not math.isnan(factor) and factor != 1.0
    expected = float(titles.loc[title_id, "licensing_cost"]) * factor
    expected /= _since_release(base, title_id, END)
    assert row["licensing_cost_per_view"] == pytest.approx(expected, rel=1e-9)
    # The revenue beside it is per view too: the period's net revenue / the period's views.
    in_period = base["views"][
        (base["views"]["title_id"] == title_id)
        & (base["views"]["day"] >= filters.start)
        & (base["views"]["day"] <= filters.end)
    ]
    assert row["views"] == pytest.approx(in_period["views"].sum())
    assert row["net_revenue_per_view"] == pytest.approx(row["net_revenue"] / row["views"])


def test_a_back_catalogue_title_has_no_line_and_says_why(cursor, base):
    filters = Filters.for_preset("last_90_days", END)
    titles = base["titles"]
    old = titles[titles["release_date"] < base["first"] - timedelta(days=comparison.CURVE_DAYS)]
    watched = base["views"][
        base["views"]["title_id"].isin(old.index) & (base["views"]["day"] >= filters.start)
    ]
    old_id = int(watched["title_id"].value_counts().index[0])
    new = titles[(titles["release_date"] >= base["first"]) & (titles["release_date"] < END)]
    recent = base["views"][base["views"]["title_id"].isin(new.index)]
    new_id = int(recent["title_id"].value_counts().index[0])
    got = comparison.compare_titles(cursor, filters, ALL, (old_id, new_id), money=True)
    summary = got["summary"].set_index("title_id")
    curve = got["curve"]
    assert curve[curve["title_id"] == old_id]["cumulative_views"].isna().all()
    assert curve[curve["title_id"] == new_id]["cumulative_views"].notna().any()
    first = f"{base['first']:%Y-%m-%d}"
    assert "before the data begins" in summary.loc[old_id, "curve_note"]
    assert first in summary.loc[old_id, "curve_note"]
    assert summary.loc[new_id, "curve_note"] == ""
    # Staying power and cost per view are blank for it, each with its reason.
    assert math.isnan(summary.loc[old_id, "staying_power"])
    assert first in summary.loc[old_id, "staying_power_note"]
    # One reason, said once, with every figure it blanks.
    release = f"{titles.loc[old_id, 'release_date']:%Y-%m-%d}"
    assert summary.loc[old_id, "note"] == (
        f"Staying power, licensing cost per view, {comparison.CURVE_NOTE}: "
        f"released {release}, before the data begins ({first})"
    )
    assert summary.loc[old_id, "starts"] > 0


def test_blank_values_of_young_and_unwatched_titles_have_reasons(cursor, base):
    views = base["views"]
    titles = base["titles"]
    # A title released 10 days before the end of some period, with views since.
    young = titles[titles["release_date"] > base["first"] + timedelta(days=30)]
    young_views = views[views["title_id"].isin(young.index)]
    young_id = int(young_views["title_id"].value_counts().index[0])
    end = titles.loc[young_id, "release_date"] + timedelta(days=10)
    filters = Filters(start=end - timedelta(days=27), end=end)
    period = views[(views["day"] >= filters.start) & (views["day"] <= filters.end)]
    released = titles[titles["release_date"] <= filters.start].index
    unwatched_id = int(sorted(set(released) - set(period["title_id"]))[0])
    got = comparison.compare_titles(cursor, filters, ALL, (young_id, unwatched_id), money=True)
    summary = got["summary"].set_index("title_id")
    assert math.isnan(summary.loc[young_id, "staying_power"])
    assert summary.loc[young_id, "staying_power_note"] == "10 days since release; needs 28"
    unwatched = summary.loc[unwatched_id]
    assert unwatched["starts"] == 0 and math.isnan(unwatched["completion_rate"])
    assert unwatched["note"].startswith("No views in the period")
    assert math.isnan(unwatched["net_revenue_per_view"])
    # Every blank number in a row is explained in its note.
    for _title_id, row in summary.iterrows():
        blanks = [
            c
            for c in ("completion_rate", "staying_power", "licensing_cost_per_view")
            if math.isnan(row[c])
        ]
        if blanks:
            assert row["note"], (blanks, row.to_dict())
