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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
