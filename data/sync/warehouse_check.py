"""Is the operator's warehouse ready for a sync? ``python cli.py warehouse check`` and ``ddl``.

:func:`check_warehouse` connects as the sync would and compares every source the sync reads
(each extract table's, through the warehouse mapping) with the model: the table or view is
there and readable, its columns are those the model needs with the types it expects (the same
comparison the sync's schema-drift check makes, so "ready" here means the sync will not refuse
it), the cursor column is there, and in a sample of rows no key appears twice and no column the
extract requires is NULL. It counts each source's rows. Every finding says what to fix.

Statuses: ``blocked`` (the sync will fail until it is fixed), ``warning`` (the sync runs, but
look: an empty table, duplicate keys), ``ready`` (a finding with it is a note: an extra
column the mapping allows). The command exits non-zero when anything is
blocked.

:func:`ddl_script` prints the model's DDL and, per table, a commented view template: how to
expose one's own tables as the model under the model's names (the alternative to a mapping, or
the way to cast a column the mapping cannot).

All SQL is built from the model's names and validated, quoted source names
(:mod:`data.sync.source_map`); nothing the operator typed is pasted raw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from data import schema
from data.sync import extract_specs
from data.sync.extract_specs import ExtractSpec
from data.sync.source_map import WarehouseMapping, quote_ident
from data.sync.warehouse import Warehouse, WarehouseError, WarehouseSession

Status = Literal["ready", "warning", "blocked"]
_RANK = {"ready": 0, "warning": 1, "blocked": 2}
DEFAULT_SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class Finding:
    """One thing found about a source: its kind, how bad, and what to do."""

    kind: str  # access, missing_table, missing_column, retyped_column, extra_column, cursor,
    # duplicate_keys, nulls, empty, temp
    status: Status
    message: str


@dataclass
class TableReport:
    """What the check found for one extract table's source."""

    table: str
    source: str
    mapped: bool
    rows: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return max((f.status for f in self.findings), key=_RANK.__getitem__, default="ready")

    def kinds(self, status: Status | None = None) -> set[str]:
        return {f.kind for f in self.findings if status is None or f.status == status}


@dataclass
class CheckReport:
    """Every source's report, and findings about the connection itself (its grants)."""

    warehouse: str
    tables: list[TableReport] = field(default_factory=list)
    session: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(f.status == "blocked" for f in self.session) or any(
            t.status == "blocked" for t in self.tables
        )

    def table(self, name: str) -> TableReport:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)


def _state(error: WarehouseError) -> str:
    found = re.search(r"\[([0-9A-Z]{5})\]", str(error))
    return found.group(1) if found else ""


def check_warehouse(
    warehouse: Warehouse,
    mapping: WarehouseMapping | None = None,
    tables: Sequence[str] | None = None,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Compare every source the sync would read for ``tables`` (default: what a sync builds)
    with the model. Raises WarehouseError only when the warehouse cannot be reached at all."""
    say = progress or (lambda message: None)
    specs = extract_specs.resolve(tables or None, mapping)
    report = CheckReport(warehouse.describe())
    with warehouse.session() as session:
        report.session.extend(_check_temp(session))
        for spec in specs:
            say(f"checking {spec.name}")
            report.tables.append(_check_table(session, spec, int(sample_rows)))
    return report


def _check_temp(session: WarehouseSession) -> list[Finding]:
    """The sync keeps erased viewers' keys in a temporary table of its session (TEMP)."""
    try:
        session.execute("BEGIN")
        try:
            session.execute(extract_specs.SUPPRESSED_CREATE_SQL)
        finally:
            session.execute("ROLLBACK")
    except WarehouseError as exc:
        return [
            Finding(
                "temp",
                "blocked",
                f"cannot create a temporary table ({exc}); GRANT TEMP ON DATABASE "
                f"{session.config.database} TO {session.config.user or '<sync user>'}",
            )
        ]
    return []


def _check_table(session: WarehouseSession, spec: ExtractSpec, sample_rows: int) -> TableReport:
    default_schema = session.config.schema
    source_schema, source_table = spec.source_location(default_schema)
    report = TableReport(spec.name, f"{source_schema}.{source_table}", spec.source_map is not None)
    found = session.fetch_rows(spec.columns_sql(), [source_schema, source_table])
    issues = extract_specs.compare_columns(spec, [(str(n), str(t), p, s) for n, t, p, s in found])
    if issues and issues[0].kind == "missing_table":
        report.findings.append(_why_missing(session, spec, source_schema, source_table))
        return report
    report.findings.extend(_column_findings(spec, issues))
    if report.status == "blocked":
        # Reading it would fail on the same columns; say what to fix first.
        return report
    relation = spec.source_relation(default_schema)
    try:
        (count,) = session.fetch_rows(f"SELECT COUNT(*) FROM {relation} AS src")[0]
    except WarehouseError as exc:
        report.findings.append(_access_finding(exc, session, report.source))
        return report
    report.rows = int(count)
    if not report.rows:
        report.findings.append(
            Finding("empty", "warning", "the source has no rows: the dashboards will be empty")
        )
        return report
    if not spec.is_aggregate:
        report.findings.extend(_sample_findings(session, spec, relation, sample_rows))
    return report


def _why_missing(
    session: WarehouseSession, spec: ExtractSpec, source_schema: str, source_table: str
) -> Finding:
    """No columns are visible: the source is missing, or the sync user may not read it."""
    try:
        session.fetch_rows(
            f"SELECT 1 FROM {quote_ident(source_schema)}.{quote_ident(source_table)} AS src "
            "WHERE 1 = 0"
        )
    except WarehouseError as exc:
        if _state(exc) in {"42501"} or "permission denied" in str(exc).lower():
            return _access_finding(exc, session, f"{source_schema}.{source_table}")
    else:
        # Readable, yet the catalog lists no columns: Redshift's late-binding views do that,
        # and the sync's column check reads the catalog.
        return Finding(
            "missing_table",
            "blocked",
            f"{source_schema}.{source_table} can be read but information_schema lists none of "
            "its columns (a late-binding view, WITH NO SCHEMA BINDING?): recreate it as an "
            "ordinary view",
        )
    like = session.fetch_rows(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE lower(table_name) = $1 ORDER BY 1, 2",
        [source_table],
    )
    hint = (
        " Found " + ", ".join(f"{s}.{t}" for s, t in like[:5]) + ": map it"
        f' ([{spec.source_table}] source = "{like[0][0]}.{like[0][1]}")'
        if like
        else f" Create it (python cli.py warehouse ddl), or map {spec.source_table} to the table "
        f'or view that holds its rows ([{spec.source_table}] source = "schema.table")'
    )
    return Finding(
        "missing_table", "blocked", f"{source_schema}.{source_table} does not exist.{hint}."
    )


def _access_finding(exc: WarehouseError | None, session: WarehouseSession, source: str) -> Finding:
    user = session.config.user or "<sync user>"
    source_schema = source.split(".", 1)[0]
    detail = f" ({exc})" if exc else ""
    return Finding(
        "access",
        "blocked",
        f"the sync user may not read {source}{detail}: GRANT USAGE ON SCHEMA {source_schema} "
        f"TO {user}; GRANT SELECT ON {source} TO {user}",
    )


def _column_findings(
    spec: ExtractSpec, issues: Iterable[extract_specs.ColumnIssue]
) -> list[Finding]:
    findings = []
    issues = list(issues)
    by_name = {c.name: c for c in spec.checked_source_columns}
    table = spec.source_table
    for issue in issues:
        status: Status = "warning" if issue.allowed else "blocked"
        if issue.kind == "missing":
            column = by_name[issue.column]
            holder = _likely_source(column, issues) or "..."
            if issue.column == spec.cursor:
                findings.append(
                    Finding(
                        "cursor",
                        "blocked",
                        f"cursor column {issue.source} is missing: incremental syncs read the "
                        f"rows changed since the last one by it; map {issue.column} to the "
                        f"source's last-modified timestamp ([{table}.columns] "
                        f'{issue.column} = "{holder}")',
                    )
                )
                continue
            findings.append(
                Finding(
                    "missing_column",
                    status,
                    f"{issue.describe()}: map it to the source column that holds it "
                    f'([{table}.columns] {issue.column} = "{holder}") or add it to the source',
                )
            )
        elif issue.kind == "retyped":
            column = by_name[issue.column]
            findings.append(
                Finding(
                    "cursor" if issue.column == spec.cursor else "retyped_column",
                    status,
                    f"{issue.describe()}: expose it through a view with "
                    f"CAST({issue.source} AS {column.sql_type('postgres')}) AS {issue.column} "
                    "(python cli.py warehouse ddl prints a template) and map the view",
                )
            )
        elif issue.kind == "extra":
            findings.append(
                Finding(
                    "extra_column",
                    # Allowed by the mapping: a note, not something to look at.
                    "ready" if issue.allowed else "blocked",
                    f"{issue.describe()} is not read"
                    + (
                        ""
                        if issue.allowed
                        else f": set allow_extra_columns = true in [{table}] of the mapping, "
                        "or map a view of the model's columns only"
                    ),
                )
            )
    return findings


_TEXT_TYPES = frozenset({"character varying", "character", "text"})


def _likely_source(column: schema.Column, issues: list[extract_specs.ColumnIssue]) -> str:
    """The one column the model does not read whose type is the missing column's: probably
    the same thing under another name (empty when there is not exactly one)."""
    want = extract_specs.expected_source_type(column)[0]
    matches = [
        i.source
        for i in issues
        if i.kind == "extra" and (i.found == want or (column.is_text and i.found in _TEXT_TYPES))
    ]
    return matches[0] if len(matches) == 1 else ""


def _sample_findings(
    session: WarehouseSession, spec: ExtractSpec, relation: str, sample_rows: int
) -> list[Finding]:
    """Duplicate keys and NULLs where the extract needs a value, in the first rows read."""
    findings = []
    columns = ", ".join(f"src.{c.name}" for c in spec.columns)
    sample = f"(SELECT {columns} FROM {relation} AS src LIMIT {int(sample_rows)})"
    keys = ", ".join(f"s.{k}" for k in spec.primary_key)
    (duplicated,) = session.fetch_rows(
        f"SELECT COUNT(*) FROM (SELECT {keys} FROM {sample} AS s GROUP BY {keys} "
        "HAVING COUNT(*) > 1) AS d"
    )[0]
    if duplicated:
        findings.append(
            Finding(
                "duplicate_keys",
                "warning",
                f"{int(duplicated):,} key(s) ({', '.join(spec.primary_key)}) appear more than once "
                f"in {sample_rows:,} rows read: the sync keeps the latest {spec.cursor} of each. "
                "If they are different rows, the key is mapped to the wrong column",
            )
        )
    required = [c for c in spec.columns if not c.nullable]
    counts = session.fetch_rows(
        "SELECT "
        + ", ".join(f"SUM(CASE WHEN s.{c.name} IS NULL THEN 1 ELSE 0 END)" for c in required)
        + f" FROM {sample} AS s"
    )[0]
    empty = [(c, int(n or 0)) for c, n in zip(required, counts, strict=True) if n]
    if empty:
        findings.append(
            Finding(
                "nulls",
                "blocked",
                "NULL where the extract needs a value, in "
                + ", ".join(
                    f"{c.name} ({n:,} rows"
                    + (
                        f", source column {spec.source_column(c.name)})"
                        if spec.source_column(c.name) != c.name
                        else ")"
                    )
                    for c, n in empty
                )
                + f" of {sample_rows:,} read: fill them (COALESCE in a view) or leave those rows out",
            )
        )
    return findings


# --- the report, for a terminal ------------------------------------------------------------------
_LABEL = {"ready": "ready", "warning": "warn", "blocked": "FIX"}


def report_lines(report: CheckReport) -> list[str]:
    """The report as plain text lines: one block per table, then the verdict."""
    lines = [f"warehouse: {report.warehouse}"]
    for finding in report.session:
        lines.append(f"  {_LABEL[finding.status]:<5} connection: {finding.message}")
    width = max((len(t.table) for t in report.tables), default=10)
    source_width = max((len(t.source) for t in report.tables), default=10)
    lines.append(f"{'status':<6} {'table':<{width}} {'source':<{source_width}} {'rows':>12}")
    for t in report.tables:
        rows = "-" if t.rows is None else f"{t.rows:,}"
        mapped = "" if t.mapped else "  (model's name)"
        lines.append(
            f"{_LABEL[t.status]:<6} {t.table:<{width}} {t.source:<{source_width}} {rows:>12}{mapped}"
        )
        for finding in sorted(t.findings, key=lambda f: -_RANK[f.status]):
            lines.append(f"       - {_LABEL[finding.status]}: {finding.message}")
    blocked = [t.table for t in report.tables if t.status == "blocked"]
    if report.blocked:
        what = ", ".join(blocked) if blocked else "the connection"
        lines.append(f"NOT READY: fix {what} before syncing.")
    else:
        lines.append("READY: python cli.py sync --full runs the first sync.")
    return lines


# --- DDL and view templates ------------------------------------------------------------------------
def ddl_script(
    dialect: Literal["redshift", "postgres"],
    target_schema: str | None = None,
    mapping: WarehouseMapping | None = None,
) -> str:
    """The model's CREATE TABLE statements, then per table a commented CREATE VIEW template
    that exposes one's own table as the model (source columns filled in from the mapping)."""
    if target_schema is not None:
        quote_ident(target_schema)  # refuses anything but a plain identifier
    mapping = mapping or WarehouseMapping()
    out = [
        f"-- The Spotlight warehouse model ({dialect}), from data/schema.py.",
        "-- Either load tables like these, or expose your own tables under these names and",
        "-- types with views (templates below), or map your tables in the warehouse mapping.",
        "",
    ]
    out.extend(statement + ";\n" for statement in schema.warehouse_ddl(dialect, target_schema))
    prefix = f"{target_schema}." if target_schema else ""
    for table in schema.TABLES:
        source = mapping.get(table.name)
        where = source.describe("<your_schema>") if source else "<your_schema>.<your_table>"
        out.append(f"-- {table.name}: {table.doc}")
        out.append(f"-- CREATE VIEW {prefix}{table.name} AS")
        out.append("-- SELECT")
        for i, column in enumerate(table.columns):
            name = source.column(column.name) if source else f"<{column.name}>"
            comma = "," if i < len(table.columns) - 1 else ""
            notes = [
                "NOT NULL" if not column.nullable else "may be NULL",
                *(["primary key"] if column.name in table.primary_key else []),
                *([column.doc] if column.doc else []),
            ]
            out.append(
                f"--   CAST(src.{name} AS {column.sql_type(dialect)}) AS {column.name}{comma}"
                f"  -- {'; '.join(notes)}"
            )
        # An ordinary view: a late-binding one (WITH NO SCHEMA BINDING) lists no columns in
        # information_schema, so the sync's column check could not see it.
        out.append(f"-- FROM {where} AS src;")
        out.append("")
    return "\n".join(out)
