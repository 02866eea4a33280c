"""The operator's command line: demo data, sync, warehouse, users, erasure, audit, benchmarks.

Run ``python cli.py --help``. Every command reads the same settings as the app (settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from data.sync.cli_commands import warehouse_app
from security.cli_commands import alerts_app, audit_app, users_app

app = typer.Typer(
    help="Spotlight Analytics operator commands.", no_args_is_help=True, add_completion=False
)

# Accounts, the audit log and alerts (security/cli_commands.py).
app.add_typer(users_app, name="users", no_args_is_help=True)
app.add_typer(audit_app, name="audit", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts", no_args_is_help=True)
# Connecting the operator's own warehouse (data/sync/cli_commands.py).
app.add_typer(warehouse_app, name="warehouse", no_args_is_help=True)


@app.command()
def demo(
    viewers: int | None = typer.Option(
        None, min=1, help="Viewers (default: the demo_viewers setting, or views / 20 if larger)."
    ),
    views: int | None = typer.Option(
        None, min=0, help="View sessions (default: the demo_views setting)."
    ),
    seed: int | None = typer.Option(None, min=0, help="Random seed (default: demo_seed)."),
    end: str | None = typer.Option(
        None, help="Last day with data, YYYY-MM-DD (default: today, UTC)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing extract."),
) -> None:
    """Generate the demo platform into a new encrypted extract (same seed and end, same data)."""
    import datetime as dt

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from data.demo import DemoConfig, build_demo_extract
    from data.extract.store import ExtractError, store_from_settings
    from settings import SettingsError, load_settings

    try:
        end_date = dt.date.fromisoformat(end) if end else None
    except ValueError:
        raise typer.BadParameter(
            f"{end!r} is not a date like 2026-10-31", param_hint="--end"
        ) from None
    console = Console()
    try:
        settings = load_settings()
        views_n = settings.demo_views if views is None else views
        viewers_n = viewers or max(int(settings.demo_viewers), views_n // 20)
        config = DemoConfig(
            viewers=viewers_n,
            views=views_n,
            seed=settings.demo_seed if seed is None else seed,
            **({"end": end_date} if end_date else {}),
        )
        store = store_from_settings(settings)
        if store.exists() and not force:
            console.print(
                f"[red]An extract already exists at {store.path}.[/] Pass --force to replace it."
            )
            raise typer.Exit(1)
        pseudonym_key = settings.secret("pseudonym_key")
    except (ValueError, SettingsError, ExtractError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(
        f"Generating {config.viewers:,} viewers and {config.views:,} views, seed {config.seed}, "
        f"{config.start} to {config.end}."
    )
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("demo", total=1.0)
        result = build_demo_extract(
            store,
            config,
            pseudonym_key,
            lambda fraction, message: bar.update(task, completed=fraction, description=message),
        )
    table = Table("table", "rows")
    for name, count in result["rows"].items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(f"Built {store.path} in {result['seconds']:.1f} s.")


def _cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# Exit status of a sync refused because another sync or erasure kept the extract busy for the
# whole wait: sysexits' EX_TEMPFAIL, "try again later" (nothing failed, nothing changed).
EXIT_BUSY = 75


@app.command()
def sync(
    full: bool = typer.Option(False, "--full", help="Re-read every table whole."),
    only: list[str] = typer.Option(  # noqa: B008 - typer's way of declaring an option
        None, "--only", help="Sync only this extract table (repeatable)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", help="No progress lines (for cron); on a schedule, failures only."
    ),
    every: str | None = typer.Option(
        None,
        "--every",
        metavar="INTERVAL",
        help="Keep running in the foreground: an incremental sync every INTERVAL (30s, 5m, 1h, "
        "1h30m) until SIGTERM or Ctrl-C, backing off after failures.",
    ),
    scheduled: bool = typer.Option(
        False,
        "--scheduled",
        help="Like --every, on the interval of the sync_every setting (what the systemd unit "
        "runs, so the app and the scheduler agree on it).",
    ),
    full_every: str | None = typer.Option(
        None,
        "--full-every",
        metavar="INTERVAL",
        help="On a schedule: a full verification pass when the last full sync is INTERVAL old "
        "(default: the sync_full_every setting, 24h; off: never).",
    ),
    wait: float | None = typer.Option(
        None,
        "--wait",
        min=0,
        help="Seconds to wait while another sync or erasure writes the extract (default: the "
        "sync_lock_wait_seconds setting); then exit 75, busy.",
    ),
) -> None:
    """Sync the encrypted extract from the warehouse; exit 1 (and alert) when it fails.

    With --every or --scheduled it keeps syncing on an interval until stopped."""
    from data.sync.source_map import mapping_from_settings
    from security.operations import audited_sync
    from security.service import Security
    from settings import SettingsError, load_settings

    on_schedule = scheduled or every is not None
    if on_schedule and (full or only):
        typer.echo(
            "error: --every/--scheduled syncs every table; its full pass comes from "
            "--full-every (drop --full and --only).",
            err=True,
        )
        raise typer.Exit(2)
    if full_every is not None and not on_schedule:
        typer.echo("error: --full-every needs --every or --scheduled.", err=True)
        raise typer.Exit(2)
    try:
        settings = load_settings()
        if wait is not None:
            settings = settings.replace(sync_lock_wait_seconds=wait)
        schedule = None
        if on_schedule:
            from security.sync_schedule import Schedule

            schedule = Schedule.from_settings(settings, every=every, full_every=full_every)
        if settings.demo_mode:
            typer.echo(
                "error: no warehouse is configured ([connections.warehouse] in "
                ".streamlit/secrets.toml or SPOTLIGHT_WAREHOUSE_URL); nothing to sync.",
                err=True,
            )
            raise typer.Exit(2)
        mapping_from_settings(settings)  # a wrong mapping is a setting to fix (exit 2)
        security = Security(settings)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if schedule is not None:
        _sync_on_schedule(security, settings, schedule, quiet=quiet)
        return

    def show(event) -> None:
        if not quiet and event.phase != "read":
            typer.echo(f"[{event.phase}] {event.message}", err=True)
        elif not quiet and event.rows and event.rows % 500_000 < 100_000:
            typer.echo(f"[read] {event.message}", err=True)

    result = audited_sync(
        security, settings, actor=_cli_actor(), full=full, only=only or None, progress=show
    )
    if result.busy:
        typer.echo(f"busy: {result.error}", err=True)
        raise typer.Exit(EXIT_BUSY)
    typer.echo("\n".join(result.summary_lines()))
    if not result.ok:
        raise typer.Exit(1)


def _sync_on_schedule(security, settings, schedule, *, quiet: bool) -> None:
    """The foreground loop of ``sync --every``: stops between runs on the first SIGTERM or
    SIGINT; a second one abandons the run in flight (the extract is swapped in atomically, so
    the live one stays as it was)."""
    import datetime as dt
    import os
    import signal
    import threading

    from security.sync_schedule import SyncScheduler, describe_seconds

    stop = threading.Event()
    pid = os.getpid()

    def say(line: str) -> None:
        if quiet and line.startswith(("sync ok", "skipped")):
            return
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"{now} [{pid}] {line}")

    def on_signal(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say(f"{signal.Signals(signum).name}: stopping after the run in flight (again: abandon it)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    full = (
        f", a full pass when the last is {describe_seconds(schedule.full_every)} old"
        if schedule.full_every
        else ", no full pass"
    )
    say(
        f"syncing every {describe_seconds(schedule.every)}{full}, backing off up to "
        f"{describe_seconds(schedule.backoff_max)} after failures"
    )
    scheduler = SyncScheduler(
        security,
        settings,
        schedule,
        actor="scheduler:" + _cli_actor(),
        sleep=stop.wait,
        say=say,
    )
    try:
        runs = scheduler.run_forever(stop.is_set)
    except KeyboardInterrupt:
        say("abandoned the sync in flight; the live extract is as it was")
        raise typer.Exit(130) from None
    say(f"stopped after {runs} run(s), {scheduler.skipped} skipped while busy")


@app.command("pull-extract")
def pull_extract(
    source: Path = typer.Option(  # noqa: B008 - typer's way of declaring an option
        ..., "--from", help="The published extract file (the sync's data_dir/extract.duckdb)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Say nothing when it is unchanged (cron)."),
) -> None:
    """Replicas: copy the published extract in when it has changed (encrypted bytes, checked,
    swapped in atomically); the app picks it up on its next run."""
    from data.extract.replica_copy import pull_extract as pull
    from data.extract.store import ExtractError, store_from_settings
    from data.extract.writer_lock import ExtractBusyError
    from settings import SettingsError, load_settings

    try:
        store = store_from_settings(load_settings())
    except (SettingsError, ExtractError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = pull(source, store)
    except (ExtractError, ExtractBusyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if result.status == "copied":
        typer.echo(
            f"copied build {result.build_id} ({result.bytes / 1e6:,.1f} MB) into {store.path} "
            f"in {result.seconds:.1f}s"
        )
    elif not quiet:
        typer.echo(f"unchanged: {store.path} is build {result.build_id}")


@app.command()
def erase(
    viewer_text: str = typer.Option(
        ..., "--viewer", help="The viewer's keyed pseudonym (viewer_key), digits 0-9."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """GDPR erasure: remove a viewer from every extract table and keep them out of later syncs."""
    from data.extract.store import ExtractError, store_from_settings
    from data.extract.writer_lock import ExtractBusyError
    from data.sync.erasure import ErasureError
    from security.input import InputError, parse_viewer_key
    from security.operations import audited_erasure
    from security.service import Security
    from settings import SettingsError, load_settings

    try:
        viewer = parse_viewer_key(viewer_text)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
        result = audited_erasure(
            security, store, viewer, actor=_cli_actor(), progress=lambda m: typer.echo(m, err=True)
        )
    except (ErasureError, ExtractError, ExtractBusyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for name, count in result.rows_removed.items():
        typer.echo(f"{name:<20} {count:>8,} rows removed")
    note = " (it was already on the suppression list)" if result.already_suppressed else ""
    typer.echo(
        f"Viewer {viewer} erased: {result.total_removed:,} rows removed, extract rewritten in "
        f"{result.seconds:.1f}s{note}. The app's cached queries are keyed on the extract file, "
        "so none serves the old data."
    )


@app.command()
def forecast(
    all_series: bool = typer.Option(
        False, "--all", help="Precompute the platform, every genre and the top titles."
    ),
    titles: int = typer.Option(50, min=0, help="How many of the most viewed titles (91 days)."),
    horizon: int = typer.Option(90, min=7, max=365, help="Days ahead (the page's default: 90)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (for cron)."),
) -> None:
    """Precompute the Forecast page's default forecasts (views, daily, with backtests) into the
    sealed disk cache in the data folder, so the page's first viewer waits for nothing.

    Run it after a sync: forecasts are keyed by the extract's build, so a new build's first
    forecast clears the older ones. A series too short or too sparse is reported, not an error;
    one series that fails never stops the batch (exit status 1 at the end)."""
    import logging

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    # The page's modules are imported outside a Streamlit server: Streamlit's "no runtime"
    # notices are noise here.
    logging.disable(logging.WARNING)
    try:
        from components.forecast_view import disk_cache_for, precompute
    finally:
        logging.disable(logging.NOTSET)
    from data.extract.store import ExtractError, store_from_settings
    from models import forecasting as F
    from security.forecast_defaults import ForecastDefaultsStore
    from security.service import Security
    from settings import SettingsError, load_settings

    if not all_series:
        typer.echo("Nothing to do: pass --all to precompute every default forecast.", err=True)
        raise typer.Exit(2)
    console = Console(stderr=True)
    try:
        settings = load_settings()
        store = store_from_settings(settings)
        cursor = store.cursor()
        security = Security(settings)
    except (SettingsError, ExtractError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    cache = disk_cache_for(settings)
    if cache is None:
        typer.echo("error: the app key is not available, so nothing can be cached.", err=True)
        raise typer.Exit(2)
    defaults = ForecastDefaultsStore(security.db, security.audit).current().defaults
    F._prophet()  # imported (and its loggers quietened) before the bar starts
    with Progress(
        TextColumn("{task.description:<40.40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("forecasts", total=None)

        def show(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        result = precompute(
            cursor,
            cache,
            defaults,
            currency=str(settings.reporting_currency),
            top_titles=titles,
            horizon_days=horizon,
            progress=show,
        )
    if result.as_of is None:
        typer.echo("The extract has no view sessions yet: nothing to forecast.")
        return
    refused = [r for r in result.rows if r[1].startswith("refused")]
    typer.echo(
        f"{len(result.rows)} series to {result.as_of} (build {result.build[:12]}) in "
        f"{result.seconds:.1f} s: {result.count('forecast')} forecast, "
        f"{result.count('cached')} already cached, {len(refused)} too short or too sparse, "
        f"{len(result.failed)} failed."
    )
    typer.echo(f"Cache: {cache.folder / result.build} ({cache.entries(result.build)} entries).")
    for label, outcome, _seconds in result.failed:
        typer.echo(f"failed: {label}: {outcome}", err=True)
    if result.failed:
        raise typer.Exit(1)


# Benchmarks (bench/); each sub-command writes its results to bench/results/.
bench_app = typer.Typer(help="Benchmarks; results go to bench/results/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench", no_args_is_help=True)


@bench_app.command("queries")
def bench_queries(
    rows: Annotated[
        list[int] | None,
        typer.Option(
            "--rows", min=1, help="View rows of each extract, repeatable (default 1M and 10M)."
        ),
    ] = None,
    repeat: int = typer.Option(15, min=3, help="Timed runs of each query."),
    derived: bool = typer.Option(
        False, "--derived", help="Also time rebuilding the derived tables."
    ),
) -> None:
    """Median and p95 latency of every dashboard query, and the same queries in pandas."""
    from bench.queries import main as run_bench

    run_bench(rows or [1_000_000, 10_000_000], repeat, derived)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
