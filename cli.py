"""The operator's command line: demo data, sync, users, erasure, audit, benchmarks.

Run ``python cli.py --help``. Every command reads the same settings as the app (settings.py).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Spotlight Analytics operator commands.", no_args_is_help=True, add_completion=False
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
