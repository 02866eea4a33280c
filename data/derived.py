"""Tables derived from the base tables when an extract is built (rollups, denormalised facts).

Every builder of an extract (the demo generator, the sync, an erasure) calls
``build_derived(con)`` after the base tables are complete and before the extract is swapped in,
so derived tables can never disagree with the base tables of the same file.
"""

from __future__ import annotations

import duckdb

# (name, CREATE TABLE ... AS SELECT ...) in build order; the metric catalog adds its rollups here.
DERIVED_TABLES: tuple[tuple[str, str], ...] = ()


def build_derived(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build every derived table from the base tables in the connection's current database."""
    for name, statement in DERIVED_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(statement)
