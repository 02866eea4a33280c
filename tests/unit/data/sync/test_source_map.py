"""The warehouse mapping: validation of what an operator writes, and the SQL it renders."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot.errors import ParseError

from data import schema
from data.sync import extract_specs
from data.sync.source_map import WarehouseMapping, quote_ident
from data.sync.warehouse_check import ddl_script
from settings import SettingsError, load_settings

PLAYBACK = {
    "fact_view": {
        "source": "Playback.Sessions",
        "allow_extra_columns": True,
        "columns": {"view_id": "session_id", "viewer_key": "Viewer_Pseudonym"},
    },
    "dim_title": "catalog.titles",
}


def test_a_mapping_is_read_with_names_folded_like_unquoted_sql():
    mapping = WarehouseMapping.from_config(PLAYBACK, "test")
    views = mapping.get("fact_view")
    assert views is not None
    assert (views.schema, views.table) == ("playback", "sessions")
    assert views.column("viewer_key") == "viewer_pseudonym"
    assert views.column("started_at") == "started_at", "unmapped columns keep the model's name"
    assert views.allow_extra_columns
    titles = mapping.get("dim_title")
    assert titles is not None and titles.location("public") == ("catalog", "titles")
    assert mapping.get("dim_viewer") is None
    # A table without a schema is in the connection's schema.
    only_columns = WarehouseMapping.from_config({"dim_viewer": {"columns": {"plan": "tier"}}})
    assert only_columns.get("dim_viewer").location("analytics") == ("analytics", "dim_viewer")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"fact_views": "x"}, r"unknown extract table 'fact_views'.*Map one of: dim_creator"),
        ({"fact_view_daily": "x"}, r"computed from fact_view's source: map fact_view instead"),
        (
            {"fact_view": {"columns": {"session_id": "view_id"}}},
            r"fact_view has no column 'session_id' \(the key is the model's name",
        ),
        ({"fact_view": {"colums": {}}}, r"unknown key\(s\) colums; use source, columns"),
        ({"fact_view": 42}, r"\[fact_view\] must be a table"),
        ({"fact_view": {"columns": "session_id"}}, r"columns must be a table of model column"),
        ({"fact_view": {"allow_extra_columns": "yes"}}, r"allow_extra_columns must be true"),
        ({"fact_view": {"columns": {"view_id": "a.b"}}}, r"must be a plain column name"),
        ({"fact_view": {"columns": {"view_id": 7}}}, r"must be a plain column name"),
    ],
)
def test_mistakes_are_refused_with_the_fix(raw, message):
    with pytest.raises(SettingsError, match=message):
        WarehouseMapping.from_config(raw, "mapping.toml")


@pytest.mark.parametrize(
    "source",
    [
        "a.b.c",
        "1sessions",
        "sessions; DROP TABLE users",
        'play"back.sessions',
        "playback.",
        ".sessions",
        "",
        "play back",
        "x" * 128,
        "sessions --",
    ],
)
def test_a_source_that_is_not_a_plain_identifier_is_refused(source):
    with pytest.raises(SettingsError, match=r"plain table or schema\.table.*create a view"):
        WarehouseMapping.from_config({"fact_view": {"source": source}}, "mapping.toml")


def test_quoting_only_takes_plain_identifiers():
    assert quote_ident("fact_view") == '"fact_view"'
    for bad in ('a"b', "a b", "", "1a", "a;b"):
        with pytest.raises(ValueError):
            quote_ident(bad)


def test_mapped_reads_rename_the_source_columns_and_quote_every_source_name():
    mapping = WarehouseMapping.from_config(PLAYBACK)
    (spec,) = extract_specs.resolve(["fact_view"], mapping)
    sql = spec.select_sql("analytics", incremental=True, suppress=True)
    assert 'FROM "playback"."sessions"' in sql
    assert '"session_id" AS view_id' in sql and '"viewer_pseudonym" AS viewer_key' in sql
    assert '"started_at" AS started_at' in sql
    tree = sqlglot.parse_one(sql, read="redshift")
    # The outer query still speaks the model's names (filters, suppression).
    assert "src.updated_at >= $1" in sql
    assert tree.find(sqlglot.exp.Exists) is not None
    # The daily rollup reads fact_view's source through the same mapping.
    (daily,) = extract_specs.resolve(["fact_view_daily"], mapping)
    assert 'FROM "playback"."sessions"' in daily.select_sql(
        "analytics", incremental=True, suppress=False
    )
    # A table mapped to another name only is read by that name, no projection needed.
    (titles,) = extract_specs.resolve(["dim_title"], mapping)
    assert 'FROM "catalog"."titles" AS src' in titles.select_sql(
        "analytics", incremental=False, suppress=False
    )
    # Unmapped tables are read exactly as before.
    (viewers,) = extract_specs.resolve(["dim_viewer"], mapping)
    assert "FROM analytics.dim_viewer AS src" in viewers.select_sql(
        "analytics", incremental=False, suppress=False
    )


def test_every_mapped_warehouse_statement_parses_as_redshift_sql():
    mapping = WarehouseMapping.from_config(PLAYBACK)
    statements = extract_specs.warehouse_statements("analytics", mapping)
    assert any('"playback"."sessions"' in s for s in statements)
    for sql in statements:
        try:
            sqlglot.parse_one(sql, read="redshift")
        except ParseError as exc:
            pytest.fail(f"not valid Redshift SQL: {exc}\n{sql}")


def test_drift_speaks_of_both_names_and_a_mapping_may_allow_extra_columns():
    mapping = WarehouseMapping.from_config(
        {"fact_view": {"columns": {"view_id": "session_id"}}, "dim_title": "titles"}
    )
    (spec,) = extract_specs.resolve(["fact_view"], mapping)
    found = [
        (spec.source_column(c.name), *extract_specs.expected_source_type(c))
        for c in spec.columns
        if c.name != "viewer_key"
    ]
    assert extract_specs.describe_drift(spec, found) == ["column viewer_key is missing"]
    found = [r if r[0] != "session_id" else ("session_id", "text", None, None) for r in found]
    assert extract_specs.describe_drift(spec, found) == [
        "column view_id (source column session_id) is text, expected bigint",
        "column viewer_key is missing",
    ]
    extra = [*found, ("referrer", "text", None, None)]
    assert "new column referrer (text)" in extract_specs.describe_drift(spec, extra)
    allowed = WarehouseMapping.from_config({"fact_view": {"allow_extra_columns": True}})
    (lenient,) = extract_specs.resolve(["fact_view"], allowed)
    model = [(c.name, *extract_specs.expected_source_type(c)) for c in lenient.columns]
    assert extract_specs.describe_drift(lenient, [*model, ("referrer", "text", None, None)]) == []
    (titles,) = extract_specs.resolve(["dim_title"], mapping)
    assert extract_specs.describe_drift(titles, []) == ["source table titles not found"]


def _settings(tmp_path, secrets: str = "", env: dict | None = None):
    path = tmp_path / "secrets.toml"
    path.write_text(secrets)
    return load_settings(env=env or {}, secrets_path=path)


def test_the_mapping_comes_from_secrets_or_from_a_file(tmp_path):
    inline = _settings(tmp_path, '[warehouse_mapping.fact_view]\nsource = "playback.sessions"\n')
    where, raw = inline.warehouse_mapping
    assert "secrets.toml" in where and raw == {"fact_view": {"source": "playback.sessions"}}
    file = tmp_path / "mapping.toml"
    file.write_text('dim_title = "catalog.titles"\n[fact_view.columns]\nview_id = "session_id"\n')
    from_file = _settings(tmp_path, env={"SPOTLIGHT_WAREHOUSE_MAPPING_FILE": str(file)})
    where, raw = from_file.warehouse_mapping
    assert where == str(file)
    assert WarehouseMapping.from_config(raw).get("fact_view").column("view_id") == "session_id"
    assert _settings(tmp_path).warehouse_mapping[1] == {}


def test_a_mapping_set_twice_missing_or_broken_is_refused(tmp_path):
    file = tmp_path / "mapping.toml"
    file.write_text('dim_title = "titles"\n')
    env = {"SPOTLIGHT_WAREHOUSE_MAPPING_FILE": str(file)}
    twice = _settings(tmp_path, '[warehouse_mapping]\ndim_title = "t"\n', env)
    with pytest.raises(SettingsError, match="set twice"):
        twice.warehouse_mapping  # noqa: B018 - the property raises
    missing = _settings(tmp_path, env={"SPOTLIGHT_WAREHOUSE_MAPPING_FILE": "nowhere.toml"})
    with pytest.raises(SettingsError, match="does not exist"):
        missing.warehouse_mapping  # noqa: B018
    file.write_text("[fact_view\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        _settings(tmp_path, env=env).warehouse_mapping  # noqa: B018


def test_ddl_prints_every_table_and_a_view_template_filled_from_the_mapping():
    mapping = WarehouseMapping.from_config(PLAYBACK)
    text = ddl_script("redshift", "spotlight", mapping)
    for table in schema.TABLES:
        assert f"CREATE TABLE IF NOT EXISTS spotlight.{table.name} (" in text
        assert f"-- CREATE VIEW spotlight.{table.name} AS" in text
    assert "CAST(src.session_id AS BIGINT) AS view_id" in text
    assert "-- FROM playback.sessions AS src;" in text
    assert "CAST(src.<plan> AS VARCHAR(16)) AS plan" in text
    postgres = ddl_script("postgres")
    assert "CREATE INDEX IF NOT EXISTS" in postgres and "NUMERIC(14,2)" in postgres
    # The model's own statements (parsed in their dialect by tests/unit/data/test_schema.py).
    for statement in schema.warehouse_ddl("redshift", "spotlight"):
        assert statement + ";" in text
    with pytest.raises(ValueError):
        ddl_script("postgres", "x; drop table y")


@pytest.mark.parametrize("dialect", ["redshift", "postgres"])
def test_each_view_template_is_valid_sql_once_filled_in(dialect):
    text = ddl_script(dialect)
    blocks = text.split("-- CREATE VIEW ")[1:]
    assert len(blocks) == len(schema.TABLES)
    for block in blocks:
        lines = ["CREATE VIEW " + block.splitlines()[0]]
        for line in block.splitlines()[1:]:
            if not line.startswith("-- "):
                break
            lines.append(line[3:].split("  -- ")[0])
        sql = "\n".join(lines).replace("<your_schema>.<your_table>", "mine.t")
        sql = sql.replace("<", "").replace(">", "")
        tree = sqlglot.parse_one(sql, read=dialect)
        assert isinstance(tree, sqlglot.exp.Create)
