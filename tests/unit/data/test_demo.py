"""The demo generator: deterministic, conforming to the schema, consistent, and realistic."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import date

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from data import schema
from data.demo import DemoConfig, arrow_schema, ensure_demo_extract, generate
from data.extract.pseudonym import pseudonymise, pseudonymise_many
from settings import load_settings
from tests.conftest import DEMO_TEST_CONFIG, DEMO_TEST_PSEUDONYM_KEY

SMALL = {"viewers": 400, "views": 6_000, "end": date(2026, 10, 31), "days": 120, "titles": 80}
KEY = "unit-test-pseudonym-key-0123456789abcdef"


def _tables(config: DemoConfig, key: str = KEY) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    for name, batch in generate(config, key):
        parts.setdefault(name, []).append(batch)
    return {name: pa.concat_tables(batches) for name, batches in parts.items()}


def _checksum(tables: dict[str, pa.Table]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tables):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, tables[name].schema) as writer:
            writer.write_table(tables[name])
        digest.update(name.encode())
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


def _one(store, sql: str, params: list | None = None):
    return store.cursor().execute(sql, params or []).fetchone()[0]


# --- determinism and schema ----------------------------------------------------------------------
def test_same_config_gives_identical_data_and_another_seed_does_not():
    first = _tables(DemoConfig(seed=5, **SMALL))
    again = _tables(DemoConfig(seed=5, **SMALL))
    other = _tables(DemoConfig(seed=6, **SMALL))
    assert _checksum(first) == _checksum(again)
    assert _checksum(first) != _checksum(other)
    assert not first["fact_view"].equals(other["fact_view"])


def test_the_end_date_moves_the_window_and_defaults_to_today():
    moved = DemoConfig(seed=5, **{**SMALL, "end": date(2026, 11, 1)})
    assert moved.start == date(2026, 7, 5)
    assert _checksum(_tables(moved)) != _checksum(_tables(DemoConfig(seed=5, **SMALL)))
    assert DemoConfig().end >= date(2026, 1, 1)


def test_every_batch_has_exactly_the_schema_columns_and_types():
    seen = set()
    for name, batch in generate(DemoConfig(seed=2, **{**SMALL, "batch_rows": 1_000}), KEY):
        table = schema.TABLES_BY_NAME[name]
        assert batch.schema.names == list(table.column_names)
        assert batch.schema.equals(arrow_schema(table)), name
        for column in table.columns:
            if not column.nullable:
                assert batch.column(column.name).null_count == 0, (name, column.name)
        seen.add(name)
    assert seen == {t.name for t in schema.TABLES}


def test_views_come_in_bounded_batches(monkeypatch):
    sizes = [
        b.num_rows
        for name, b in generate(DemoConfig(seed=2, **{**SMALL, "batch_rows": 1_000}), KEY)
        if name == "fact_view"
    ]
    assert sum(sizes) == SMALL["views"]
    assert len(sizes) >= 5
    # A batch closes at the end of the day that takes it past batch_rows.
    assert max(sizes) < 1_000 + 200


def test_the_extract_has_the_schema_types(demo_store):
    rows = demo_store.cursor().execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    )
    actual: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows.fetchall():
        actual.setdefault(table, []).append((column, data_type))
    for table in schema.TABLES:
        expected = [(c.name, c.sql_type("duckdb")) for c in table.columns]
        assert actual[table.name] == expected


def test_invalid_configurations_are_refused():
    for bad in ({"views": -1}, {"viewers": 0}, {"days": 3}, {"seed": -2}, {"titles": 5}):
        with pytest.raises(ValueError):
            DemoConfig(**bad)


# --- invariants ----------------------------------------------------------------------------------
def test_completed_is_exactly_ninety_percent_of_runtime(demo_store):
    wrong = _one(
        demo_store,
        "SELECT count(*) FROM fact_view v JOIN dim_title t USING (title_id) "
        "WHERE v.completed <> (v.watch_seconds >= 0.9 * t.runtime_min * 60)",
    )
    assert wrong == 0
    assert _one(demo_store, "SELECT count(DISTINCT completed) FROM fact_view") == 2
    assert _one(demo_store, "SELECT min(watch_seconds) FROM fact_view") > 0


def test_views_follow_release_and_fall_inside_a_subscription_and_the_window(demo_store):
    assert (
        _one(
            demo_store,
            "SELECT count(*) FROM fact_view v JOIN dim_title t USING (title_id) "
            "WHERE v.started_at < t.release_date",
        )
        == 0
    )
    uncovered = _one(
        demo_store,
        "SELECT count(*) FROM fact_view v WHERE NOT EXISTS (SELECT 1 FROM fact_subscription s "
        "WHERE s.viewer_key = v.viewer_key AND s.started_at <= v.started_at "
        "AND (s.ended_at IS NULL OR v.started_at < s.ended_at))",
    )
    assert uncovered == 0
    meta = demo_store.read_meta()
    assert meta["data_start"] == "2024-11-01" and meta["data_end"] == "2026-10-31"
    low, high = (
        demo_store.cursor()
        .execute("SELECT min(started_at)::DATE, max(started_at)::DATE FROM fact_view")
        .fetchone()
    )
    assert low >= date(2024, 11, 1) and high <= date(2026, 10, 31)
    assert (
        _one(
            demo_store,
            "SELECT count(*) FROM fact_view v JOIN dim_viewer d USING (viewer_key) "
            "WHERE v.started_at::DATE < d.signup_date",
        )
        == 0
    )


def test_money_adds_up(demo_store):
    assert _one(demo_store, "SELECT count(*) FROM fact_revenue WHERE net <> gross - fees") == 0
    assert _one(demo_store, "SELECT count(*) FROM fact_revenue WHERE fees < 0 OR gross <= 0") == 0
    streams = {
        r[0]
        for r in demo_store.cursor().execute("SELECT DISTINCT stream FROM fact_revenue").fetchall()
    }
    assert streams == {"subscription", "ppv", "ad"}
    # Ad revenue per day and title is exactly what fact_ad delivered.
    mismatched = _one(
        demo_store,
        "WITH a AS (SELECT ad_date, title_id, sum(ad_revenue) AS amount FROM fact_ad GROUP BY ALL), "
        "r AS (SELECT occurred_at::DATE AS ad_date, title_id, sum(gross) AS amount "
        "FROM fact_revenue WHERE stream = 'ad' GROUP BY ALL) "
        "SELECT count(*) FROM a FULL JOIN r USING (ad_date, title_id) "
        "WHERE coalesce(a.amount, 0) <> coalesce(r.amount, 0)",
    )
    assert mismatched == 0
    assert _one(demo_store, "SELECT count(*) FROM fact_ad WHERE clicks > impressions") == 0
    # Subscription revenue carries a viewer and no title; ad revenue a title and no viewer.
    assert (
        _one(
            demo_store,
            "SELECT count(*) FROM fact_revenue WHERE (stream = 'subscription' AND "
            "(viewer_key IS NULL OR title_id IS NOT NULL)) OR (stream = 'ad' AND "
            "(viewer_key IS NOT NULL OR title_id IS NULL)) OR (stream = 'ppv' AND "
            "(viewer_key IS NULL OR title_id IS NULL))",
        )
        == 0
    )


def test_viewer_keys_are_keyed_pseudonyms(demo_store):
    keys = [
        r[0] for r in demo_store.cursor().execute("SELECT viewer_key FROM dim_viewer").fetchall()
    ]
    assert len(keys) == DEMO_TEST_CONFIG["viewers"] == len(set(keys))
    assert min(keys) > 2**40  # not small sequential ids
    seed = DEMO_TEST_CONFIG["seed"]
    ids = [f"demo-{seed}-viewer-{i}" for i in range(DEMO_TEST_CONFIG["viewers"])]
    assert set(keys) == set(pseudonymise_many(DEMO_TEST_PSEUDONYM_KEY, ids).tolist())
    assert not set(keys) & set(pseudonymise_many("another-key-" * 4, ids).tolist())


def test_every_fact_points_at_existing_dimensions(demo_store):
    orphans = {
        "view title": "SELECT count(*) FROM fact_view WHERE title_id NOT IN (SELECT title_id FROM dim_title)",
        "view viewer": "SELECT count(*) FROM fact_view WHERE viewer_key NOT IN (SELECT viewer_key FROM dim_viewer)",
        "subscription viewer": "SELECT count(*) FROM fact_subscription WHERE viewer_key NOT IN (SELECT viewer_key FROM dim_viewer)",
        "revenue viewer": "SELECT count(*) FROM fact_revenue WHERE viewer_key NOT IN (SELECT viewer_key FROM dim_viewer)",
        "revenue title": "SELECT count(*) FROM fact_revenue WHERE title_id NOT IN (SELECT title_id FROM dim_title)",
        "revenue creator": "SELECT count(*) FROM fact_revenue r JOIN dim_title t USING (title_id) WHERE r.creator_id <> t.creator_id",
        "ad title": "SELECT count(*) FROM fact_ad WHERE title_id NOT IN (SELECT title_id FROM dim_title)",
        "interaction viewer": "SELECT count(*) FROM fact_interaction WHERE viewer_key NOT IN (SELECT viewer_key FROM dim_viewer)",
        "interaction title": "SELECT count(*) FROM fact_interaction WHERE title_id NOT IN (SELECT title_id FROM dim_title)",
        "payout creator": "SELECT count(*) FROM fact_payout WHERE creator_id NOT IN (SELECT creator_id FROM dim_creator)",
        "title creator": "SELECT count(*) FROM dim_title WHERE creator_id NOT IN (SELECT creator_id FROM dim_creator)",
    }
    assert {name: _one(demo_store, sql) for name, sql in orphans.items()} == dict.fromkeys(
        orphans, 0
    )
    for table in schema.TABLES:
        keys = ", ".join(table.primary_key)
        duplicates = _one(
            demo_store,
            f"SELECT count(*) FROM (SELECT {keys} FROM {table.name} GROUP BY ALL HAVING count(*) > 1)",
        )
        assert duplicates == 0, table.name


def test_payouts_follow_their_lifecycle(demo_store):
    rows = demo_store.cursor().execute(
        "SELECT period, status, paid_at, amount FROM fact_payout ORDER BY period"
    )
    payouts = rows.fetchall()
    assert {p[1] for p in payouts} <= {"estimated", "finalised", "held", "paid"}
    last = max(p[0] for p in payouts)
    assert last == date(2026, 10, 1)
    assert all(p[1] == "estimated" for p in payouts if p[0] == last)
    before = [p for p in payouts if p[0] < date(2026, 9, 1)]
    assert {p[1] for p in before} == {"paid", "held"}
    assert sum(p[1] == "held" for p in before) < 0.1 * len(before)
    assert all((p[2] is not None) == (p[1] == "paid") for p in payouts)
    assert all(p[3] > 0 for p in payouts)
    # Paid on the 15th of the following month.
    assert all(p[2].day == 15 for p in payouts if p[1] == "paid")


def test_interactions_and_tricky_titles(demo_store):
    low, high = (
        demo_store.cursor()
        .execute("SELECT min(sentiment), max(sentiment) FROM fact_interaction")
        .fetchone()
    )
    assert -1 <= low < 0 < high <= 1
    kinds = demo_store.cursor().execute(
        "SELECT kind, count(sentiment), count(*) FROM fact_interaction GROUP BY kind"
    )
    by_kind = {k: (with_sentiment, total) for k, with_sentiment, total in kinds.fetchall()}
    assert set(by_kind) == {"poll", "qa", "reaction"}
    assert by_kind["poll"][0] == 0 and by_kind["reaction"][0] == by_kind["reaction"][1]
    tricky = _one(
        demo_store,
        "SELECT count(*) FROM dim_title WHERE name LIKE '%<%>%' AND name LIKE '%&%' "
        "AND regexp_matches(name, '[\\x{1F300}-\\x{1FAFF}]')",
    )
    assert tricky >= 2


# --- realism -------------------------------------------------------------------------------------
def test_popularity_has_a_long_tail(demo_store):
    share = _one(
        demo_store,
        "WITH c AS (SELECT title_id, count(*) AS n FROM fact_view GROUP BY title_id), "
        "r AS (SELECT n, row_number() OVER (ORDER BY n DESC) AS rank FROM c) "
        "SELECT sum(n) FILTER (WHERE rank <= (SELECT count(*) FROM dim_title) / 10) / sum(n) FROM r",
    )
    assert share > 0.5


def test_evenings_and_weekends_are_busier_in_local_time(demo_store):
    cur = demo_store.cursor()
    evening, morning = cur.execute(
        "WITH l AS (SELECT hour(started_at + to_minutes(tz_offset_min)) AS h FROM fact_view) "
        "SELECT count(*) FILTER (WHERE h BETWEEN 19 AND 22) / 4, "
        "count(*) FILTER (WHERE h BETWEEN 6 AND 9) / 4 FROM l"
    ).fetchone()
    assert evening > 2 * morning
    weekend, weekday = cur.execute(
        "WITH l AS (SELECT isodow(started_at + to_minutes(tz_offset_min)) AS d FROM fact_view) "
        "SELECT count(*) FILTER (WHERE d >= 6) / 2, count(*) FILTER (WHERE d <= 4) / 4 FROM l"
    ).fetchone()
    assert weekend > 1.1 * weekday
    # Time zones are the viewers' own: many offsets, and DST moves some of them.
    assert _one(demo_store, "SELECT count(DISTINCT tz_offset_min) FROM fact_view") >= 12
    assert _one(demo_store, "SELECT count(DISTINCT country) FROM dim_viewer") >= 20


def test_long_titles_are_completed_less_often(demo_store):
    short, long_ = (
        demo_store.cursor()
        .execute(
            "SELECT avg(completed::INT) FILTER (WHERE runtime_min <= 30), "
            "avg(completed::INT) FILTER (WHERE runtime_min >= 100) "
            "FROM fact_view JOIN dim_title USING (title_id)"
        )
        .fetchone()
    )
    assert short > long_ + 0.15


def test_new_releases_decay(demo_store):
    first, second = (
        demo_store.cursor()
        .execute(
            "SELECT count(*) FILTER (WHERE age < 30), count(*) FILTER (WHERE age BETWEEN 60 AND 89) "
            "FROM (SELECT date_diff('day', t.release_date, v.started_at::DATE) AS age "
            "FROM fact_view v JOIN dim_title t USING (title_id) "
            "WHERE t.kind <> 'live' AND t.release_date BETWEEN DATE '2025-01-01' AND DATE '2026-06-30')"
        )
        .fetchone()
    )
    assert first > 1.5 * second


def test_holidays_draw_more_viewing(demo_store):
    import holidays

    us_days = holidays.country_holidays("US", years=[2024, 2025, 2026])
    rows = demo_store.cursor().execute(
        "SELECT (started_at + to_minutes(tz_offset_min))::DATE AS d, count(*) FROM fact_view "
        "WHERE country = 'US' GROUP BY d"
    )
    per_day = dict(rows.fetchall())
    # Compare each holiday with the same weekday a week before and after (growth cancels out).
    ratios = []
    for day in us_days:
        if date(2024, 11, 8) <= day <= date(2026, 10, 24) and day.weekday() < 5:
            from datetime import timedelta

            around = [per_day.get(day + timedelta(days=k), 0) for k in (-7, 7)]
            ratios.append((per_day.get(day, 0), sum(around) / 2))
    holiday_views = sum(r[0] for r in ratios)
    usual_views = sum(r[1] for r in ratios)
    assert holiday_views > 1.1 * usual_views


def test_subscriptions_churn_and_come_back(demo_store):
    cur = demo_store.cursor()
    ended, open_ = cur.execute(
        "SELECT count(ended_at), count(*) - count(ended_at) FROM fact_subscription"
    ).fetchone()
    assert ended > 0 and open_ > 0
    returners = _one(
        demo_store,
        "SELECT count(*) FROM (SELECT viewer_key FROM fact_subscription GROUP BY 1 HAVING count(*) > 1)",
    )
    assert returners > 0
    plans = {r[0] for r in cur.execute("SELECT DISTINCT plan FROM dim_viewer").fetchall()}
    assert plans == {"basic", "standard", "premium", "ad_supported"}
    kinds = {r[0] for r in cur.execute("SELECT DISTINCT kind FROM dim_creator").fetchall()}
    assert kinds == {"independent", "studio", "distributor"}
    # Monthly charges: an active subscriber is charged about once a month.
    charges = _one(
        demo_store,
        "SELECT count(*) / count(DISTINCT (viewer_key, date_trunc('month', occurred_at))) "
        "FROM fact_revenue WHERE stream = 'subscription'",
    )
    assert 0.95 <= charges <= 1.05


# --- pseudonyms ----------------------------------------------------------------------------------
def test_pseudonym_is_the_first_63_bits_of_the_hmac():
    digest = hmac.new(KEY.encode(), b"viewer-42", hashlib.sha256).digest()
    assert pseudonymise(KEY, "viewer-42") == int.from_bytes(digest[:8], "big") >> 1
    many = pseudonymise_many(KEY, ["viewer-42", 42, b"x"])
    assert many.tolist() == [pseudonymise(KEY, s) for s in ("viewer-42", "42", b"x")]
    assert pseudonymise(KEY, 42) == pseudonymise(KEY, "42")
    assert pseudonymise(KEY + "!", "viewer-42") != pseudonymise(KEY, "viewer-42")
    assert all(0 <= k < 2**63 for k in pseudonymise_many(KEY, range(1000)).tolist())
    with pytest.raises(ValueError):
        pseudonymise("", "viewer-42")


# --- the embedded default and the command line ---------------------------------------------------
def _settings(tmp_path, **extra: str):
    env = {
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
        "SPOTLIGHT_DEMO_VIEWERS": "300",
        "SPOTLIGHT_DEMO_VIEWS": "3000",
        **extra,
    }
    return load_settings(env=env, secrets_path=tmp_path / "absent.toml")


def test_ensure_demo_extract_builds_once_even_when_raced(tmp_path):
    settings = _settings(tmp_path)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_demo_extract(settings)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert settings.extract_path.exists()
    assert ensure_demo_extract(settings) is False
    from data.extract.store import store_from_settings

    meta = store_from_settings(settings).read_meta()
    assert meta["source"] == "demo" and meta["views"] == "3000"


def test_demo_keys_generated_at_once_by_many_starters_agree(tmp_path):
    settings = _settings(tmp_path)
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(settings.secret("pseudonym_key")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) >= 32
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["pseudonym_key.key"]


def test_a_failing_generator_leaves_no_extract(tmp_path, monkeypatch):
    import data.demo as demo
    from data.extract.store import ExtractStore

    def broken(config, key, progress=None):
        yield from list(generate(config, key))[:3]
        raise RuntimeError("generator broke")

    monkeypatch.setattr(demo, "generate", broken)
    store = ExtractStore(tmp_path / "extract.duckdb", "e-test-key-0123456789-ABCDEFGHIJ-klmnopqrst")
    with pytest.raises(RuntimeError, match="generator broke"):
        demo.build_demo_extract(store, DemoConfig(seed=1, **SMALL), KEY)
    assert not store.exists()


def test_ensure_demo_extract_does_nothing_with_a_warehouse(tmp_path):
    settings = _settings(tmp_path, SPOTLIGHT_WAREHOUSE_URL="postgresql://u:p@localhost/db")
    assert ensure_demo_extract(settings) is False
    assert not settings.extract_path.exists()


def test_cli_demo_builds_and_refuses_bad_input(tmp_path, monkeypatch):
    from cli import app

    monkeypatch.setenv("SPOTLIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOTLIGHT_KEY_DIR", str(tmp_path / "keys"))
    runner = CliRunner()
    for bad in (["--views", "-5"], ["--viewers", "-1"], ["--seed", "-3"], ["--end", "31/10/2026"]):
        result = runner.invoke(app, ["demo", *bad])
        assert result.exit_code != 0, bad
    assert not (tmp_path / "data" / "extract.duckdb").exists()

    args = ["demo", "--viewers", "200", "--views", "2000", "--seed", "4", "--end", "2026-10-31"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "fact_view" in result.output and "2,000" in result.output
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


# --- money in several currencies --------------------------------------------------------------
def test_viewers_are_billed_in_their_countrys_currency(demo_store):
    rows = (
        demo_store.cursor()
        .execute(
            "SELECT w.country, s.currency, count(*) FROM fact_subscription s "
            "JOIN dim_viewer w USING (viewer_key) GROUP BY ALL"
        )
        .fetchall()
    )
    by_country = {}
    for country, currency, _n in rows:
        by_country.setdefault(country, set()).add(currency)
    assert all(len(c) == 1 for c in by_country.values()), "one currency per country"
    assert by_country["JP"] == {"JPY"} and by_country["DE"] == {"EUR"}
    assert by_country["GB"] == {"GBP"} and by_country["US"] == {"USD"}
    assert by_country["NG"] == {"USD"}, "countries without their own price list pay in USD"
    # Revenue follows: a viewer's charges and purchases are in the viewer's currency; ads in USD.
    mixed = _one(
        demo_store,
        "SELECT count(*) FROM fact_revenue r JOIN fact_subscription s USING (viewer_key) "
        "WHERE r.currency <> s.currency",
    )
    assert mixed == 0
    assert _one(demo_store, "SELECT count(DISTINCT currency) FROM fact_revenue") >= 8
    assert _one(demo_store, "SELECT count(*) FROM fact_revenue WHERE stream = 'ad' "
                "AND currency <> 'USD'") == 0  # fmt: skip
    # Local price points: a yen price is a whole number of yen, far above its dollar one.
    prices = dict(
        demo_store.cursor()
        .execute("SELECT currency, max(monthly_price) FROM fact_subscription GROUP BY 1")
        .fetchall()
    )
    assert prices["JPY"] == 2290 and float(prices["USD"]) == pytest.approx(19.99)


def test_exchange_rates_cover_every_day_and_every_currency_and_move_a_little(demo_store):
    cursor = demo_store.cursor()
    used = {
        c
        for (c,) in cursor.execute(
            "SELECT currency FROM fact_revenue UNION SELECT currency FROM fact_subscription "
            "UNION SELECT currency FROM fact_payout"
        ).fetchall()
    }
    quoted = {
        c for (c,) in cursor.execute("SELECT DISTINCT currency FROM fact_exchange_rate").fetchall()
    }
    assert quoted == used - {"USD"}, "every currency but the base one, and no other"
    start = date(2024, 11, 1)
    days = _one(
        demo_store,
        "SELECT min(n) FROM (SELECT currency, count(*) AS n FROM fact_exchange_rate "
        "WHERE rate_date BETWEEN ? AND ? GROUP BY 1)",
        [start, date(2026, 10, 31)],
    )
    assert days == 730, "a rate every day of the window"
    assert _one(demo_store, "SELECT min(rate_date) FROM fact_exchange_rate") < start
    levels = dict(
        cursor.execute(
            "SELECT currency, median(rate_to_usd) FROM fact_exchange_rate GROUP BY 1"
        ).fetchall()
    )
    assert 0.9 < levels["EUR"] < 1.3 and 0.004 < levels["JPY"] < 0.01
    assert 1.0 < levels["GBP"] < 1.6 and 0.008 < levels["INR"] < 0.02
    jump = _one(
        demo_store,
        "SELECT max(abs(ln(rate_to_usd / prev))) FROM (SELECT rate_to_usd, lag(rate_to_usd) "
        "OVER (PARTITION BY currency ORDER BY rate_date) AS prev FROM fact_exchange_rate)",
    )
    assert 0 < jump < 0.05, "a small daily random walk"
    meta = demo_store.read_meta()
    assert meta["as_of"] == "2026-10-31T23:59:59"


def test_an_extract_of_an_older_demo_format_is_built_again(tmp_path):
    from data.demo import demo_outdated
    from data.extract.store import store_from_settings, write_meta

    settings = _settings(tmp_path)
    assert ensure_demo_extract(settings) is True
    store = store_from_settings(settings)
    assert not demo_outdated(store)
    with store.build(copy_current=True) as con:
        write_meta(con, {"demo_format": "1"})
    assert demo_outdated(store)
    assert ensure_demo_extract(settings) is False, "only when asked to replace it"
    assert ensure_demo_extract(settings, replace_outdated=True) is True
    assert not demo_outdated(store)
    assert ensure_demo_extract(settings, replace_outdated=True) is False
