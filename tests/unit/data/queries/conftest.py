"""A messy extract for the metric rules: the demo extract with what a real warehouse holds.

``messy_store`` is a copy of the shared demo extract (tests/conftest.py ``demo_store``) with:

- implausible rows (data/extract/plausibility.py): sessions of 68 years and of negative length,
  sessions, subscriptions and revenue dated 2030, a negative subscription price, a subscription
  ending before it starts, negative fees, fees above the gross amount, net other than gross -
  fees;
- viewers who watch without ever having subscribed (their subscriptions removed), and sessions
  played abroad: 3,000 sessions of viewers from elsewhere played in NZ;
- exchange-rate gaps: JPY has no rates for 20 days, GBP has negative and NaN rates for 10 days,
  BRL has none for its last 16 days.

The derived tables are rebuilt from those base tables, with the demo's clock (``as_of``, the
end of 2026-10-31). Read-only for the tests, like ``demo_store``.
"""

from __future__ import annotations

import shutil

import pytest

from data.extract import build_cache
from data.extract.derived import build_derived
from data.extract.store import ExtractStore
from data.queries import viewer_index
from tests.conftest import DEMO_TEST_EXTRACT_KEY

# Base-table rows the messy store adds that no metric may count (by table).
IMPLAUSIBLE_ROWS = {"fact_view": 9, "fact_subscription": 4, "fact_revenue": 5}

_MESS = (
    # Watching without a subscription: 60 viewers who watch lose every subscription.
    "DELETE FROM fact_subscription WHERE viewer_key IN (SELECT viewer_key FROM fact_view "
    "WHERE started_at >= TIMESTAMP '2026-06-01' GROUP BY 1 ORDER BY hash(viewer_key) LIMIT 60)",
    # Sessions played abroad: 3,000 sessions of viewers from elsewhere, played in NZ.
    "UPDATE fact_view SET country = 'NZ' WHERE view_id IN (SELECT v.view_id FROM fact_view v "
    "JOIN dim_viewer w USING (viewer_key) WHERE w.country <> 'NZ' AND v.view_id < 100000000 "
    "ORDER BY hash(v.view_id) LIMIT 3000)",
    # Rate gaps.
    "DELETE FROM fact_exchange_rate WHERE currency = 'JPY' "
    "AND rate_date BETWEEN DATE '2026-08-01' AND DATE '2026-08-20'",
    "UPDATE fact_exchange_rate SET rate_to_usd = -1 WHERE currency = 'GBP' "
    "AND rate_date BETWEEN DATE '2026-09-01' AND DATE '2026-09-09'",
    "UPDATE fact_exchange_rate SET rate_to_usd = CAST('NaN' AS DOUBLE) WHERE currency = 'GBP' "
    "AND rate_date = DATE '2026-09-10'",
    "DELETE FROM fact_exchange_rate WHERE currency = 'BRL' AND rate_date > DATE '2026-10-15'",
    # Sessions: 68 years, negative, and in 2030 -- copies of the last sessions of the data, so
    # they fall in the default periods.
    "INSERT INTO fact_view SELECT view_id + 100000000, viewer_key, title_id, started_at, "
    "68 * 365 * 86400, device, country, tz_offset_min, completed, updated_at "
    "FROM fact_view ORDER BY view_id DESC LIMIT 3",
    "INSERT INTO fact_view SELECT view_id + 200000000, viewer_key, title_id, started_at, -120, "
    "device, country, tz_offset_min, completed, updated_at "
    "FROM fact_view ORDER BY view_id DESC LIMIT 3",
    "INSERT INTO fact_view SELECT view_id + 300000000, viewer_key, title_id, "
    "TIMESTAMP '2030-01-05 20:00:00' + to_days(CAST(view_id % 3 AS INTEGER)), watch_seconds, device, "
    "country, tz_offset_min, completed, updated_at FROM fact_view ORDER BY view_id DESC LIMIT 3",
    # Subscriptions: a negative price, one ending before it starts, two starting in 2030.
    "INSERT INTO fact_subscription SELECT subscription_id + 100000000, viewer_key, plan, "
    "TIMESTAMP '2026-10-20 10:00:00', NULL, -7.99, currency, updated_at "
    "FROM fact_subscription ORDER BY subscription_id LIMIT 1",
    "INSERT INTO fact_subscription SELECT subscription_id + 200000000, viewer_key, plan, "
    "TIMESTAMP '2026-10-20 10:00:00', TIMESTAMP '2026-09-01 10:00:00', monthly_price, currency, "
    "updated_at FROM fact_subscription ORDER BY subscription_id LIMIT 1 OFFSET 1",
    "INSERT INTO fact_subscription SELECT subscription_id + 300000000, viewer_key, plan, "
    "TIMESTAMP '2030-02-01 10:00:00', NULL, monthly_price, currency, updated_at "
    "FROM fact_subscription ORDER BY subscription_id LIMIT 2 OFFSET 2",
    # Revenue: negative fees, fees above the gross, net that is not gross - fees, 2030.
    "INSERT INTO fact_revenue SELECT revenue_id + 100000000, occurred_at, viewer_key, title_id, "
    "creator_id, stream, gross, -1.00, gross + 1.00, currency, updated_at "
    "FROM fact_revenue ORDER BY occurred_at DESC, revenue_id LIMIT 1",
    "INSERT INTO fact_revenue SELECT revenue_id + 200000000, occurred_at, viewer_key, title_id, "
    "creator_id, stream, gross, gross + 5, -5, currency, updated_at "
    "FROM fact_revenue ORDER BY occurred_at DESC, revenue_id LIMIT 1 OFFSET 1",
    "INSERT INTO fact_revenue SELECT revenue_id + 300000000, occurred_at, viewer_key, title_id, "
    "creator_id, stream, gross, fees, net + 100, currency, updated_at "
    "FROM fact_revenue ORDER BY occurred_at DESC, revenue_id LIMIT 1 OFFSET 2",
    "INSERT INTO fact_revenue SELECT revenue_id + 400000000, "
    "TIMESTAMP '2030-03-01 12:00:00', viewer_key, title_id, creator_id, stream, gross, fees, "
    "net, currency, updated_at FROM fact_revenue ORDER BY revenue_id LIMIT 2",
)


@pytest.fixture(scope="session")
def messy_store(demo_store, tmp_path_factory) -> ExtractStore:
    store = ExtractStore(
        tmp_path_factory.mktemp("messy-extract") / "extract.duckdb", DEMO_TEST_EXTRACT_KEY
    )
    shutil.copyfile(demo_store.path, store.path)
    with store.build(copy_current=True) as con:
        for statement in _MESS:
            con.execute(statement)
        build_derived(con)
    return store


@pytest.fixture(params=["memory", "sql"])
def engine(request, cursor):
    """Distinct counts from the in-memory viewer index, or all in SQL: both must be exact.

    ``cursor`` is the requesting test module's own fixture (its extract)."""
    memory = request.param == "memory"
    build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS if memory else 0)
    assert (viewer_index.index_for(cursor) is not None) == memory
    yield request.param
    build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)
