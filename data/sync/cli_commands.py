"""``python cli.py warehouse ddl`` and ``warehouse check``: connecting the operator's own
warehouse (mounted in cli.py). The logic is in :mod:`data.sync.warehouse_check`.

Exit status of ``check``: 0 when every source is ready (warnings allowed), 1 when something
blocks a sync (or the warehouse cannot be reached), 2 when a setting or the mapping is wrong.
"""

from __future__ import annotations

from typing import Annotated

import typer

from data.sync.source_map import WarehouseMapping, mapping_from_settings
from data.sync.warehouse import WarehouseError, warehouse_from_settings
from data.sync.warehouse_check import (
    DEFAULT_SAMPLE_ROWS,
    check_warehouse,
    ddl_script,
    report_lines,
)
from settings import SettingsError, load_settings

warehouse_app = typer.Typer(
    help="Connect your own warehouse: the model's DDL, and a check of every mapped source."
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@warehouse_app.command("ddl")
def ddl(
    dialect: Annotated[
        str, typer.Option("--dialect", help="redshift or postgres.", case_sensitive=False)
    ] = "redshift",
    target_schema: Annotated[
        str | None, typer.Option("--schema", help="Qualify the tables with this schema.")
    ] = None,
) -> None:
    """Print the model's CREATE TABLE statements and, per table, a commented view template
    that exposes your own table as the model (source columns filled in from the mapping)."""
    dialect = dialect.lower()
    if dialect not in ("redshift", "postgres"):
        _fail(f"--dialect must be redshift or postgres, got {dialect!r}", 2)
    try:
        mapping = mapping_from_settings(load_settings())
    except SettingsError as exc:
        _fail(str(exc), 2)
        mapping = WarehouseMapping()  # unreachable; _fail exits
    try:
        typer.echo(ddl_script(dialect, target_schema, mapping))  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(f"--schema: {exc}", 2)


@warehouse_app.command("check")
def check(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Check only this extract table's source (repeatable)."),
    ] = None,
    sample: Annotated[
        int,
        typer.Option("--sample", min=1, help="Rows read per source for the key and NULL checks."),
    ] = DEFAULT_SAMPLE_ROWS,
) -> None:
    """Connect as the sync does and compare every source it reads with the model; print what
    is ready and what to fix. Exit 1 when something blocks a sync."""
    try:
        settings = load_settings()
        if settings.demo_mode:
            _fail(
                "no warehouse is configured ([connections.warehouse] in .streamlit/secrets.toml "
                "or SPOTLIGHT_WAREHOUSE_URL); nothing to check.",
                2,
            )
        mapping = mapping_from_settings(settings)
        warehouse = warehouse_from_settings(settings)
        configured = [t.strip() for t in str(settings.sync_tables).split(",") if t.strip()]
        tables = list(only or configured)
        report = check_warehouse(
            warehouse,
            mapping,
            tables or None,
            sample_rows=sample,
            progress=lambda message: typer.echo(message, err=True),
        )
    except (SettingsError, KeyError) as exc:
        _fail(str(exc).strip("'\""), 2)
        return
    except WarehouseError as exc:
        _fail(f"{exc} (fix [connections.warehouse], then run the check again)", 1)
        return
    typer.echo("\n".join(report_lines(report)))
    if report.blocked:
        raise typer.Exit(1)
