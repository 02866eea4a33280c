"""``python cli.py users ...``, ``audit ...`` and ``alerts ...``: the operator's commands for
accounts, the audit log and the alert inbox (mounted in cli.py).

Every change is audited with the actor ``cli:<os user>``. Bad input (unknown user or role, weak
password, a creator scope on an internal account) prints what to fix and exits with status 1;
a broken audit chain exits with status 1 naming the first bad record.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from security.alerts import AlertError
from security.passwords import DEFAULT_ROUNDS, PasswordPolicyError
from security.permissions import ROLES, RoleError
from security.service import Security
from security.users import UserError
from settings import SettingsError, load_settings

# Tests lower this to keep bcrypt fast; operators always get the production cost.
BCRYPT_ROUNDS = DEFAULT_ROUNDS

users_app = typer.Typer(help="Manage accounts: add, disable, roles, creator scope, resets.")
audit_app = typer.Typer(help="Check and read the hash-chained audit log.")
alerts_app = typer.Typer(help="The admins' alert inbox.")

T = TypeVar("T")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _security() -> Security:
    try:
        return Security(load_settings(), bcrypt_rounds=BCRYPT_ROUNDS)
    except SettingsError as exc:
        _fail(str(exc), code=2)
        raise  # unreachable; _fail exits


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(action: Callable[[], T]) -> T:
    """Run an account change, turning the errors an operator can fix into a message and exit 1."""
    try:
        return action()
    except (UserError, RoleError, PasswordPolicyError, AlertError) as exc:
        _fail(str(exc))
        raise  # unreachable


def _read_password(from_stdin: bool) -> str:
    # Never a command-line argument: those show up in `ps` and shell history.
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


StdinFlag = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
]


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[
        list[str],
        typer.Option("--role", "-r", help=f"Role (repeat or comma-separate): {', '.join(ROLES)}."),
    ],
    name: Annotated[str | None, typer.Option(help="Display name (default: the username).")] = None,
    creator_id: Annotated[
        list[str] | None,
        typer.Option("--creator-id", "-c", help="Creator ids a creator/partner account sees."),
    ] = None,
    password_stdin: StdinFlag = False,
) -> None:
    """Add an account; asks for the password (at least 12 characters)."""
    sec = _security()
    password = _read_password(password_stdin)
    user = _run(
        lambda: sec.users.add(
            username,
            password,
            _split(role),
            display_name=name,
            creator_ids=_split(creator_id or []),
            actor=_actor(),
        )
    )
    typer.echo(f"added {user.username} ({', '.join(sorted(user.roles))})")


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account and sign it out everywhere."""
    sec = _security()
    user = _run(lambda: sec.users.disable(username, actor=_actor()))
    typer.echo(f"disabled {user.username}; its sessions are revoked")


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Enable a disabled account."""
    sec = _security()
    user = _run(lambda: sec.users.enable(username, actor=_actor()))
    typer.echo(f"enabled {user.username}")


@users_app.command("set-role")
def users_set_role(
    username: str,
    roles: Annotated[
        list[str], typer.Argument(help=f"New roles (replace the old): {', '.join(ROLES)}.")
    ],
) -> None:
    """Replace an account's roles (audited with before and after)."""
    sec = _security()
    user = _run(lambda: sec.users.set_roles(username, _split(roles), actor=_actor()))
    typer.echo(f"{user.username} now has roles: {', '.join(sorted(user.roles))}")


@users_app.command("set-scope")
def users_set_scope(
    username: str,
    creator_ids: Annotated[
        list[str] | None, typer.Argument(help="Creator ids, e.g. 1,2 (none: see nothing).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every creator id.")] = False,
) -> None:
    """Set which creators' rows a creator or partner account sees."""
    ids = _split(creator_ids or [])
    if not ids and not clear:
        _fail("give creator ids (e.g. 1,2) or --clear to remove them all")
    sec = _security()
    user = _run(lambda: sec.users.set_creator_scope(username, ids, actor=_actor()))
    shown = ", ".join(str(i) for i in sorted(user.creator_ids)) or "none (sees no rows)"
    typer.echo(f"{user.username} sees creators: {shown}")


@users_app.command("reset-password")
def users_reset_password(username: str, password_stdin: StdinFlag = False) -> None:
    """Set a new password; the account is signed out everywhere."""
    sec = _security()
    _run(lambda: sec.users.require(username))
    password = _read_password(password_stdin)
    user = _run(lambda: sec.users.reset_password(username, password, actor=_actor()))
    typer.echo(f"password of {user.username} reset; its sessions are revoked")


@users_app.command("reset-2fa")
def users_reset_2fa(username: str) -> None:
    """Forget the account's authenticator: it enrols again at its next sign-in."""
    sec = _security()
    user = _run(lambda: sec.users.reset_2fa(username, actor=_actor()))
    typer.echo(f"2FA of {user.username} reset; it enrols again at the next sign-in")


@users_app.command("revoke-sessions")
def users_revoke_sessions(username: str) -> None:
    """Sign an account out everywhere now."""
    sec = _security()
    _run(lambda: sec.users.require(username))
    count = sec.revoke_all(username, actor=_actor())
    typer.echo(f"revoked {count} session(s) of {username}")


@users_app.command("list")
def users_list() -> None:
    """Every account with roles, scope, 2FA and status."""
    sec = _security()
    rows = [("username", "name", "roles", "creators", "2fa", "status")]
    for u in sec.users.list():
        status = "disabled" if u.disabled else "active"
        rows.append(
            (
                u.username,
                u.display_name,
                ",".join(sorted(u.roles)),
                ",".join(str(i) for i in sorted(u.creator_ids)) or "-",
                "enrolled" if u.totp_enrolled else "-",
                status + (" (demo)" if u.is_demo else "") + (" (sso)" if u.sso else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@users_app.command("locks")
def users_locks() -> None:
    """Locks in force: what is locked (account, device, client, 2FA) and until when."""
    locks = _security().active_locks()
    if not locks:
        typer.echo("nothing is locked")
        return
    for lock in locks:
        until = lock.locked_until.strftime("%Y-%m-%d %H:%M UTC") if lock.locked_until else "-"
        typer.echo(f"{lock.kind}  {lock.key}  user={lock.username or '-'}  until {until}")


@users_app.command("unlock")
def users_unlock(
    key: Annotated[str, typer.Argument(help="The username, or the key `users locks` shows.")],
    kind: Annotated[
        str,
        typer.Option(help="signin_user, signin_device, signin_client, reauth_session or totp."),
    ] = "signin_user",
) -> None:
    """Lift a lock now (audited ``signin.unlock``)."""
    sec = _security()
    if not sec.lift_lock(kind, key, actor=_actor()):
        _fail(f"no {kind} lock in force for {key!r}; see `users locks`")
    typer.echo(f"lifted the {kind} lock on {key}")


def _read_anchors(path: Path) -> list[tuple[int, str]]:
    anchors = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or line.startswith("#"):
            continue
        # "<time> <id> <hash>" as ``audit anchor`` writes it.
        if len(parts) != 3 or not parts[1].isdecimal() or len(parts[2]) != 64:
            _fail(f"{path}:{number} is not an anchor line (<time> <id> <hash>)", code=2)
        anchors.append((int(parts[1]), parts[2]))
    return anchors


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor", help="Also check every head recorded in this file by `audit anchor`."
        ),
    ] = None,
) -> None:
    """Check the keyed hash chain (and anchors); exit 1 naming the first record that breaks it."""
    sec = _security()
    ok, bad_id = sec.audit.verify_chain()
    if not ok:
        _fail(
            f"audit chain broken at record {bad_id}: it, or the record before it, was changed, "
            "removed or inserted (or written without the audit key)"
        )
    if anchor is not None:
        if not anchor.exists():
            _fail(f"no anchor file at {anchor}", code=2)
        anchors = _read_anchors(anchor)
        missing = sec.audit.verify_anchors(anchors)
        if missing is not None:
            _fail(
                f"anchored record {missing} is gone or was rewritten: the log's history was "
                "replaced after that anchor was taken"
            )
    count = sec.db.query("SELECT COUNT(*) FROM audit")[0][0]
    head_id, head_hash = sec.audit.head()
    where = f"; head {head_id} {head_hash}" if count else ""
    anchored = f"; {len(anchors)} anchor(s) hold" if anchor is not None else ""
    typer.echo(f"audit chain ok: {count} record(s){where}{anchored}")


@audit_app.command("anchor")
def audit_anchor(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Append the head to this file (keep it outside the data folder, e.g. on "
            "another host or write-once storage).",
        ),
    ] = None,
    to_syslog: Annotated[
        bool, typer.Option("--syslog", help="Also send the head to the local syslog.")
    ] = False,
) -> None:
    """Print the audit log's head (time, id, hash); run it from cron to anchor the chain."""
    sec = _security()
    head_id, head_hash = sec.audit.head()
    line = f"{sec.clock().strftime('%Y-%m-%dT%H:%M:%SZ')} {head_id} {head_hash}"
    if file is not None:
        data_dir = sec.settings.data_path.resolve()
        if file.resolve().is_relative_to(data_dir):
            _fail(f"{file} is inside the data folder ({data_dir}); anchor somewhere else", code=2)
        with file.open("a") as out:
            out.write(line + "\n")
    if to_syslog:
        import syslog

        syslog.openlog("spotlight-audit", 0, syslog.LOG_AUTH)
        syslog.syslog(syslog.LOG_NOTICE, f"audit head {line}")
    typer.echo(line)


@audit_app.command("tail")
def audit_tail(
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many records.")] = 20,
    user: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (a prefix with a trailing '.').")
    ] = None,
    outcome: Annotated[str | None, typer.Option(help="Only this outcome.")] = None,
) -> None:
    """The newest audit records, oldest first, one line each (control characters encoded)."""
    sec = _security()
    records = sec.audit.list(actor=user, action=action, outcome=outcome, limit=lines)
    for record in reversed(records):
        typer.echo(record.line())


@alerts_app.command("list")
def alerts_list(
    all_alerts: Annotated[bool, typer.Option("--all", help="Include acknowledged ones.")] = False,
) -> None:
    """Open alerts (or all), newest first."""
    sec = _security()
    for a in sec.alerts.list(open_only=not all_alerts):
        state = f"ack by {a.acknowledged_by}" if a.acknowledged_at else "OPEN"
        typer.echo(
            f"{a.id} {a.raised_at:%Y-%m-%d %H:%M}Z {a.severity} {a.kind} [{state}] {a.message}"
        )


@alerts_app.command("raise")
def alerts_raise(
    kind: str,
    message: str,
    severity: Annotated[str, typer.Option(help="info, warning or critical.")] = "warning",
) -> None:
    """Raise an alert for the admins (e.g. from a cron job when a sync fails)."""
    sec = _security()
    try:
        alert_id = sec.alerts.raise_alert(kind, message, severity=severity, actor=_actor())
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"raised alert {alert_id}")


@alerts_app.command("ack")
def alerts_ack(alert_id: int) -> None:
    """Acknowledge an alert."""
    sec = _security()
    changed = _run(lambda: sec.alerts.acknowledge(alert_id, _actor()))
    typer.echo(
        f"alert {alert_id} acknowledged"
        if changed
        else f"alert {alert_id} was already acknowledged"
    )
