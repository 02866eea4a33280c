"""The operator's command line: demo data, sync, users, erasure, audit, benchmarks.

Run ``python cli.py --help``. Every command reads the same settings as the app (settings.py).
"""

from __future__ import annotations

import typer

from security.cli_commands import alerts_app, audit_app, users_app

app = typer.Typer(
    help="Spotlight Analytics operator commands.", no_args_is_help=True, add_completion=False
)

# Accounts, the audit log and alerts (security/cli_commands.py).
app.add_typer(users_app, name="users", no_args_is_help=True)
app.add_typer(audit_app, name="audit", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts", no_args_is_help=True)


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@app.command()
def sync(
    full: bool = typer.Option(False, "--full", help="Re-read every table whole."),
    only: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring an option
        None, "--only", help="Sync only this extract table (repeatable)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines (for cron)."),
) -> None:
    """Sync the encrypted extract from the warehouse; exit 1 (and alert) when it fails."""
    from data.sync import run_sync
    from security.audit import FAILURE, OK
    from security.service import Security
    from settings import SettingsError, load_settings

    try:
        settings = load_settings()
        if settings.demo_mode:
            typer.echo(
                "error: no warehouse is configured ([connections.warehouse] in "
                ".streamlit/secrets.toml or SPOTLIGHT_WAREHOUSE_URL); nothing to sync.",
                err=True,
            )
            raise typer.Exit(2)
        security = Security(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    def show(event) -> None:
        if not quiet and event.phase != "read":
            typer.echo(f"[{event.phase}] {event.message}", err=True)
        elif not quiet and event.rows and event.rows % 500_000 < 100_000:
            typer.echo(f"[read] {event.message}", err=True)

    result = run_sync(settings, full=full, only=only or None, progress=show)
    security.audit.record(
        actor=_cli_actor(),
        action="sync",
        target="extract",
        outcome=OK if result.ok else FAILURE,
        details=result.audit_record(),
    )
    typer.echo("\n".join(result.summary_lines()))
    if not result.ok:
        security.alerts.raise_alert(
            "sync_failed",
            f"Sync failed ({result.error_kind}): {result.error}",
            severity="critical",
            dedupe_key=f"sync_failed:{result.error_kind}",
        )
        raise typer.Exit(1)


@app.command()
def erase(
    viewer: int = typer.Option(..., "--viewer", help="The viewer's keyed pseudonym (viewer_key)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """GDPR erasure: remove a viewer from every extract table and keep them out of later syncs."""
    from data.erasure import ErasureError, erase_viewer
    from data.store import ExtractError, store_from_settings
    from data.writer_lock import ExtractBusyError
    from security.audit import FAILURE, OK
    from security.service import Security
    from settings import SettingsError, load_settings

    try:
        settings = load_settings()
        security = Security(settings)
        store = store_from_settings(settings)
    except (SettingsError, ExtractError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not yes:
        typer.confirm(
            f"Erase viewer {viewer} from {store.path} and suppress them in every later sync? "
            "This cannot be undone",
            abort=True,
        )
    try:
        result = erase_viewer(store, viewer, progress=lambda m: typer.echo(m, err=True))
    except (ErasureError, ExtractError, ExtractBusyError) as exc:
        security.audit.record(
            actor=_cli_actor(),
            action="gdpr_erasure",
            target=f"viewer:{viewer}",
            outcome=FAILURE,
            details={"error": str(exc)},
        )
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    security.audit.record(
        actor=_cli_actor(),
        action="gdpr_erasure",
        target=f"viewer:{viewer}",
        outcome=OK,
        details=result.audit_record(),
    )
    for name, count in result.rows_removed.items():
        typer.echo(f"{name:<20} {count:>8,} rows removed")
    note = " (it was already on the suppression list)" if result.already_suppressed else ""
    typer.echo(
        f"Viewer {viewer} erased: {result.total_removed:,} rows removed, extract rewritten in "
        f"{result.seconds:.1f}s{note}. The app's cached queries are keyed on the extract file, "
        "so none serves the old data."
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
