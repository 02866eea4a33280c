"""Which source values are implausible, defined once: the sync counts them, the metrics leave
them out.

A warehouse loaded by hand holds mistakes: a view session of 68 years, a negative duration or
amount, a start date years ahead. Averaged in, one such row moves a dashboard; dropped silently,
nobody fixes the source. So every sync counts the rows each rule catches (its result, the audit
log and the admin page show them) and the derived tables every metric reads leave those rows out.
The base tables keep them as they are at the source, so a later fix there flows through.

Rules (a row matching any rule of its table is implausible):

- ``fact_view``: a negative ``watch_seconds``; a session longer than 24 hours
  (``MAX_SESSION_SECONDS``); a start more than a day after the extract's clock (``as_of``, the
  warehouse's clock when the sync read it).
- ``fact_subscription``: a negative price; an end before its start; a start more than a day
  after the clock.
- ``fact_revenue``: negative fees; fees larger than the gross amount; net other than gross
  minus fees (beyond a cent); a time more than a day after the clock. Negative gross amounts
  are refunds and stay.

``as_of`` is bound as a parameter; a row dated within a day after it counts (time zones and
clock skew), and so does a NULL ``as_of`` (no clock known: no row counts as from the future).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb

MAX_SESSION_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class Rule:
    name: str  # what a person reads: "session longer than 24 hours"
    sql: str  # a condition over the table aliased ``src``; ``?`` binds as_of where ``dated``
    dated: bool = False


def _future(column: str) -> Rule:
    return Rule(
        f"{column} more than a day in the future",
        f"src.{column} > CAST(? AS TIMESTAMP) + INTERVAL 1 DAY",
        dated=True,
    )


RULES: Mapping[str, tuple[Rule, ...]] = {
    "fact_view": (
        Rule("negative watch time", "src.watch_seconds < 0"),
        Rule("session longer than 24 hours", f"src.watch_seconds > {MAX_SESSION_SECONDS}"),
        _future("started_at"),
    ),
    "fact_subscription": (
        Rule("negative price", "src.monthly_price < 0"),
        Rule("ends before it starts", "src.ended_at < src.started_at"),
        _future("started_at"),
    ),
    "fact_revenue": (
        Rule("negative fees", "src.fees < 0"),
        Rule("fees larger than the gross amount", "src.gross >= 0 AND src.fees > src.gross"),
        Rule("net is not gross minus fees", "abs(src.net - (src.gross - src.fees)) > 0.01"),
        _future("occurred_at"),
    ),
}


def implausible_sql(table: str, as_of: datetime | None, alias: str = "src") -> tuple[str, list]:
    """A condition true for the implausible rows of ``table`` (``FALSE`` when it has no rules),
    and the values to bind, for DuckDB."""
    rules = [r for r in RULES.get(table, ()) if as_of is not None or not r.dated]
    if not rules:
        return "FALSE", []
    sql = " OR ".join(f"({r.sql})" for r in rules).replace("src.", f"{alias}.")
    params = [as_of for r in rules if r.dated]
    # NULL comparisons are not "implausible": a rule that cannot be evaluated does not hold.
    return f"coalesce({sql}, FALSE)", params


def plausible_sql(table: str, as_of: datetime | None, alias: str = "src") -> tuple[str, list]:
    """The opposite of :func:`implausible_sql`: the rows the metrics keep."""
    sql, params = implausible_sql(table, as_of, alias)
    return f"NOT {sql}", params


def count_implausible(
    con: duckdb.DuckDBPyConnection, table: str, as_of: datetime | None
) -> dict[str, int]:
    """Rows of ``table`` each rule catches (a row may match several); only rules that matched."""
    rules = [r for r in RULES.get(table, ()) if as_of is not None or not r.dated]
    if not rules:
        return {}
    counts = ", ".join(f"count(*) FILTER (WHERE coalesce({r.sql}, FALSE))" for r in rules)
    params = [as_of for r in rules if r.dated]
    row = con.execute(f"SELECT {counts} FROM {table} AS src", params).fetchone()
    return {r.name: int(n) for r, n in zip(rules, row, strict=True) if n}
