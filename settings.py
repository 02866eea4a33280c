"""Every setting of Spotlight Analytics in one place: name, default and help.

A setting is read, in order of precedence, from the environment variable ``SPOTLIGHT_<NAME>``,
then from the ``[spotlight]`` table of ``.streamlit/secrets.toml`` (the file ``st.secrets``
reads; this module parses it itself so that data/, models/ and security/ can use settings
without importing streamlit), then its default. The README documents each one; a test fails
when one is missing there.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets as _secrets
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent
ENV_PREFIX = "SPOTLIGHT_"
DEFAULT_SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    secret: bool = False

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    # --- where things live -------------------------------------------------------------------
    Setting("data_dir", "var/data", "Folder for the encrypted extract and the app database."),
    Setting(
        "key_dir",
        "~/.config/spotlight-analytics",
        "Folder (outside data_dir) where demo mode keeps the keys it generates, owner-only.",
    ),
    Setting(
        "app_db",
        "",
        "The app database (users, sessions, audit): a SQLite file path, or "
        "postgresql://user@host:5432/db (optionally ?schema=name) to share it between app "
        "servers; the password from ~/.pgpass or PGPASSWORD rather than the URL. Empty: "
        "data_dir/app.db.",
    ),
    # --- the extract -------------------------------------------------------------------------
    Setting(
        "extract_key",
        "",
        "AES-256-GCM key for the extract (at least 32 characters). Required with a warehouse; "
        "demo mode generates one in key_dir.",
        secret=True,
    ),
    Setting(
        "pseudonym_key",
        "",
        "HMAC key that turns source viewer ids into pseudonymous viewer keys. Demo mode "
        "generates one in key_dir.",
        secret=True,
    ),
    Setting(
        "memory_index_rows",
        50_000_000,
        "Largest view table whose viewer numbers, day offsets and filtered columns the app "
        "holds in memory for fast exact dashboard queries (about 8-30 bytes per view); 0 "
        "turns the index off and every query runs in DuckDB.",
    ),
    Setting("demo_viewers", 20_000, "Viewers in the demo extract built on first start."),
    Setting("demo_views", 400_000, "View sessions in the demo extract built on first start."),
    Setting("demo_seed", 7, "Random seed of the demo extract (same seed, same data)."),
    Setting(
        "warehouse_url",
        "",
        "Warehouse connection URL (postgresql://user:pass@host:5439/db). Empty, and no "
        "[connections.warehouse] in secrets: the app runs on the demo extract.",
        secret=True,
    ),
    Setting(
        "sync_overlap_hours",
        2.0,
        "An incremental sync re-reads rows whose updated_at is up to this many hours before the "
        "watermark, so rows committed late are not missed.",
    ),
    Setting("sync_retries", 4, "Attempts per table when the warehouse connection fails."),
    Setting(
        "sync_drift_check_minutes",
        60.0,
        "How often an incremental sync also compares every partition with the warehouse, to "
        "find rows deleted there or committed later than the overlap window (about 2 s per 10M "
        "views). 0: on every sync.",
    ),
    Setting(
        "sync_connect_timeout_seconds",
        10,
        "Seconds to wait for the warehouse to accept a connection before the attempt fails "
        "(a host that never answers fails within sync_retries x this, not hours later).",
    ),
    Setting(
        "sync_statement_timeout_seconds",
        1800,
        "Seconds any one warehouse statement may run before the warehouse cancels it and the "
        "sync fails (0: no limit).",
    ),
    Setting(
        "sync_retry_delay_seconds",
        2.0,
        "First pause before retrying a failed warehouse connection; it doubles each attempt.",
    ),
    Setting(
        "sync_tables",
        "",
        "Extract tables a sync builds, comma-separated. Empty: every base table. Add "
        "fact_view_daily for the daily view rollup computed in the warehouse.",
    ),
    # --- the operator's warehouse: where each extract table's rows are (data/sync/source_map.py)
    Setting(
        "warehouse_mapping_file",
        "",
        "A TOML file mapping extract tables to the warehouse's own tables or views and "
        "columns (see Connecting your warehouse). Empty: [warehouse_mapping] of "
        ".streamlit/secrets.toml if present, else every table under the model's names.",
    ),
    # --- scheduled sync (cli.py sync --every / --scheduled) -----------------------------------
    Setting(
        "sync_every",
        "5m",
        "Interval between the incremental syncs of cli.py sync --scheduled (30s, 5m, 1h, 1d, "
        "or combined like 1h30m); --every overrides it for one scheduler.",
    ),
    Setting(
        "sync_full_every",
        "24h",
        "How long after the last full sync a scheduled run re-reads every table whole instead "
        "(the full verification pass); off: never.",
    ),
    Setting(
        "sync_backoff_max",
        "1h",
        "Longest pause between a scheduler's attempts while the sync keeps failing (the pause "
        "doubles from the interval, with jitter, up to this).",
    ),
    Setting(
        "sync_lock_wait_seconds",
        60.0,
        "How long a sync started by hand (cli.py sync, Run sync) waits while another sync or "
        "erasure writes the extract, before it says the extract is busy. A scheduled run never "
        "waits: it skips its turn.",
    ),
    # --- sign-in and sessions ----------------------------------------------------------------
    Setting(
        "cookie_key",
        "",
        "Key that signs the sign-in cookie (at least 32 bytes, never the library's sample). "
        "Demo mode generates one in key_dir.",
        secret=True,
    ),
    Setting(
        "app_key",
        "",
        "Key that encrypts 2FA (TOTP) secrets in the app database (at least 32 characters). "
        "Demo mode generates one in key_dir.",
        secret=True,
    ),
    Setting(
        "audit_key",
        "",
        "Key of the audit log's HMAC chain (at least 32 characters), kept outside the database "
        "so that whoever can write the database cannot rewrite the log. Demo mode generates one "
        "in key_dir.",
        secret=True,
    ),
    Setting("cookie_name", "spotlight_auth", "Name of the sign-in cookie."),
    Setting(
        "cookie_secure",
        "auto",
        "Mark the sign-in and device cookies Secure (sent over HTTPS only): auto (when the "
        "page was requested over HTTPS, directly or through a trusted proxy), on, or off.",
    ),
    Setting(
        "device_cookie_days",
        90.0,
        "Lifetime of the device cookie that a completed sign-in leaves: failed sign-ins from "
        "elsewhere never lock the account on a device that holds one. 0: no device cookies.",
    ),
    Setting(
        "trusted_proxies",
        "",
        "Addresses or networks (comma-separated, e.g. 127.0.0.1, 10.0.0.0/8) of the reverse "
        "proxies in front of the app. Only from these is X-Forwarded-For believed, for the "
        "client address that sign-in throttles and the audit log use.",
    ),
    Setting("cookie_expiry_days", 1.0, "Lifetime of the sign-in cookie in days."),
    Setting(
        "session_idle_hours", 24.0, "Idle time after which a session is signed out everywhere."
    ),
    Setting("session_max_hours", 168.0, "Absolute lifetime of a session, however active."),
    Setting("login_max_failures", 5, "Failed sign-ins for one account before it is locked."),
    Setting(
        "login_client_max_failures", 20, "Failed sign-ins from one client before it is locked."
    ),
    Setting("login_lock_minutes", 15.0, "How long a sign-in lock lasts before it lifts."),
    Setting("totp_max_failures", 5, "Wrong 2FA codes before 2FA is locked for the account."),
    Setting("totp_lock_minutes", 15.0, "How long a 2FA lock lasts."),
    Setting("stepup_minutes", 5.0, "How long a step-up re-authentication stays valid."),
    # --- single sign-on (OpenID Connect; the provider itself is [auth] in secrets.toml) ------
    Setting(
        "sign_in_methods",
        "local",
        "Which sign-ins the sign-in page offers: local (username, password and the app's 2FA), "
        "sso (the identity provider configured in [auth] of secrets.toml), or both.",
    ),
    Setting(
        "sso_provider_label",
        "your organisation's account",
        "How the single sign-on button names the provider: 'Sign in with <label>'.",
    ),
    Setting(
        "sso_role_map",
        "",
        "Provider group -> role, as group=role pairs separated by commas (a group named twice "
        'gets both roles), or a JSON object {"group": ["role", ...]}. A user none of whose '
        "groups is mapped gets no access, never a default role.",
    ),
    Setting("sso_groups_claim", "groups", "ID-token claim that lists the user's groups."),
    Setting(
        "sso_username_claim",
        "email",
        "ID-token claim that becomes the username (2-64 characters: letters, digits . _ @ + -). "
        "email is accepted only with email_verified true; a stable claim such as sub (or oid "
        "for Entra ID) is safer.",
    ),
    Setting(
        "sso_creator_claim",
        "creator_ids",
        "ID-token claim with the creator ids an external (creator, partner) user sees; missing "
        "means none.",
    ),
    Setting(
        "sso_mfa_amr",
        "",
        "ID-token amr values (comma-separated, e.g. mfa, otp, hwk) that count as a second "
        "factor done at the provider; then money roles are not asked for the app's own code "
        "at sign-in. Empty: always the app's own 2FA.",
    ),
    Setting(
        "sso_signin_max_age_minutes",
        10.0,
        "A provider sign-in (the ID token's iat) older than this cannot start a new session: a "
        "copied old identity cookie never opens one.",
    ),
    # --- alerts ------------------------------------------------------------------------------
    Setting("alert_failed_signins", 10, "Failed sign-ins within the window that raise an alert."),
    Setting("alert_failed_signins_window_minutes", 10.0, "Window for the failed sign-in alert."),
    Setting("alert_export_rows", 50_000, "An export of at least this many rows raises an alert."),
    Setting("alert_exports_count", 5, "Exports by one user within the window that raise an alert."),
    Setting("alert_exports_window_minutes", 10.0, "Window for the many-exports alert."),
    # --- display -----------------------------------------------------------------------------
    Setting(
        "reporting_currency",
        "USD",
        "Currency every money figure is converted to and shown in (ISO 4217 code, e.g. USD, "
        "EUR, GBP). Each amount is converted at the latest rate on or up to 7 days before its "
        "day (fact_exchange_rate, quoted against USD); an amount without one is left out and "
        "the page says how many.",
    ),
    # --- freshness and auto-refresh ----------------------------------------------------------
    Setting(
        "stale_after_minutes",
        30.0,
        "Data last synced longer ago than this is flagged as stale (amber) on every page; set "
        "it to about twice the sync interval.",
    ),
    Setting(
        "auto_refresh_seconds",
        60,
        "How often an open page checks for a newly synced extract and updates itself (its "
        "freshness line too); 0 turns auto-refresh off. Users can pause it in the sidebar.",
    ),
    Setting(
        "auto_refresh_idle_minutes",
        30.0,
        "An open page stops refreshing itself after this long without the user doing anything.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _coerce(setting: Setting, raw: Any) -> Any:
    kind = type(setting.default)
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text.replace("_", ""))
        if kind is float:
            return float(text)
    except ValueError as exc:
        expected = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise SettingsError(
            f"{setting.env_var} must be {expected}, got {text!r}. {setting.help}"
        ) from exc
    return text


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``30s``, ``5m``, ``1h``, ``1d`` or ``1h30m``; ValueError, saying
    what is accepted, for anything else (a bare number, an unknown unit, zero)."""
    spelled = str(text).strip().lower().replace(" ", "")
    parts = _DURATION.findall(spelled)
    if not spelled or "".join(n + u for n, u in parts) != spelled:
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit, s, m, h or d, such as 30s, "
            "5m, 1h or 1h30m"
        )
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: give a duration of at least 1s")
    return seconds


def read_secrets(path: Path | None = None) -> dict[str, Any]:
    """The parsed secrets.toml (empty when the file does not exist)."""
    path = path or DEFAULT_SECRETS_PATH
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from exc


class Settings:
    """Resolved settings; attribute access by setting name (``settings.data_dir``)."""

    def __init__(self, values: Mapping[str, Any], secrets: Mapping[str, Any]):
        self._values = dict(values)
        self.secrets = dict(secrets)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            # Unpickling looks up dunders before _values exists; answering from it would recurse.
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (used by tests and the CLI's options)."""
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        values = dict(self._values)
        for name, raw in changes.items():
            values[name] = _coerce(_BY_NAME[name], raw)
        return Settings(values, self.secrets)

    # --- derived values ----------------------------------------------------------------------
    def duration(self, name: str, *, allow_off: bool = False) -> float | None:
        """A duration setting in seconds (``5m`` -> 300.0); None for ``off`` when ``allow_off``.
        SettingsError naming the variable when it is not a duration."""
        setting = _BY_NAME[name]
        value = str(self._values[name]).strip()
        if allow_off and value.lower() in {"off", "never", "0", "none"}:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise SettingsError(f"{setting.env_var}: {exc}. {setting.help}") from None

    def path(self, name: str) -> Path:
        """A path setting resolved: ``~`` expanded, relative paths taken from the project root."""
        value = Path(str(self._values[name])).expanduser()
        return value if value.is_absolute() else PROJECT_ROOT / value

    @property
    def data_path(self) -> Path:
        return self.path("data_dir")

    @property
    def key_path(self) -> Path:
        return self.path("key_dir")

    @property
    def extract_path(self) -> Path:
        return self.data_path / "extract.duckdb"

    @property
    def app_db_path(self) -> Path:
        return self.path("app_db") if self._values["app_db"] else self.data_path / "app.db"

    @property
    def warehouse_config(self) -> dict[str, Any]:
        """``[connections.warehouse]`` from secrets, or the URL setting; empty in demo mode."""
        section = self.secrets.get("connections", {}).get("warehouse", {})
        if section:
            return dict(section)
        if self._values["warehouse_url"]:
            return {"url": self._values["warehouse_url"]}
        return {}

    @property
    def warehouse_mapping(self) -> tuple[str, dict[str, Any]]:
        """(where it was read, the parsed mapping): the ``warehouse_mapping_file`` TOML file, or
        ``[warehouse_mapping]`` of secrets.toml; empty when neither is set. Validated against
        the model by ``data.sync.source_map``, which this module may not import."""
        inline = self.secrets.get("warehouse_mapping", {})
        name = str(self._values["warehouse_mapping_file"])
        if not name:
            return ("[warehouse_mapping] of .streamlit/secrets.toml", dict(inline))
        if inline:
            raise SettingsError(
                "The warehouse mapping is set twice: warehouse_mapping_file and "
                "[warehouse_mapping] in .streamlit/secrets.toml. Keep one of them."
            )
        path = self.path("warehouse_mapping_file")
        try:
            with path.open("rb") as fh:
                return (str(path), tomllib.load(fh))
        except FileNotFoundError:
            raise SettingsError(
                f"warehouse_mapping_file {path} does not exist; fix the path or unset it."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"warehouse_mapping_file {path} is not valid TOML: {exc}") from None

    @property
    def demo_mode(self) -> bool:
        """True when no warehouse is configured: the app runs on the generated demo extract."""
        return not self.warehouse_config

    def secret(self, name: str) -> str:
        """A key setting (``extract_key``, ``cookie_key``, ``pseudonym_key``), checked.

        Set explicitly, it must be at least 32 characters and not a published sample. Unset in
        demo mode, a random key is generated once per install into ``key_dir`` (mode 0600, outside
        the data folder so that copying the data does not copy its key). Unset with a warehouse
        configured, this refuses: real data is never protected by a key nobody chose.
        """
        setting = _BY_NAME[name]
        if not setting.secret:
            raise SettingsError(f"{name} is not a key setting")
        value = str(self._values[name])
        if value:
            _check_key_strength(setting, value)
            return value
        if not self.demo_mode:
            raise SettingsError(
                f"{setting.env_var} is not set. With a warehouse configured, set it in the "
                "environment or in [spotlight] of .streamlit/secrets.toml (at least 32 characters)."
            )
        return _demo_key(self.key_path, name)


# Keys that appear in public documentation and samples; a cookie signed with one can be forged.
PUBLISHED_SAMPLE_KEYS = frozenset(
    {"some_signature_key", "some_key", "abcdef", "changeme", "secret", "random_signature_key"}
)
MIN_KEY_LENGTH = 32


# A key's characters must carry at least this many bits by their own frequencies (Shannon):
# 32 random hex digits carry 90-120 by this measure, ``secrets.token_urlsafe(48)`` about 350,
# "0123456789" x 4 about 35 and 32 x "a" none.
MIN_KEY_BITS = 64
_KEY_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def key_entropy_bits(value: str) -> float:
    """Shannon entropy of the key's characters times its length, scaled by the share of its
    three-character runs that are distinct: an upper bound on how much randomness a key can
    hold, low for repeated or patterned keys."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    bits = -n * sum(c / n * math.log2(c / n) for c in counts.values())
    # A repeated run ("0123456789" x 4) has varied characters but few distinct triples.
    triples = [value[i : i + 3] for i in range(n - 2)]
    return bits * (len(set(triples)) / len(triples) if triples else 1.0)


def _check_key_strength(setting: Setting, value: str) -> None:
    if value.strip().lower() in PUBLISHED_SAMPLE_KEYS:
        raise SettingsError(f"{setting.env_var} is a published sample key; generate a random one.")
    if len(value.encode()) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"{setting.env_var} is too short ({len(value.encode())} bytes); use at least "
            f"{MIN_KEY_LENGTH}, {_KEY_HINT}."
        )
    if key_entropy_bits(value) < MIN_KEY_BITS:
        raise SettingsError(
            f"{setting.env_var} is too predictable (repeated or patterned characters); use a "
            f"random key, {_KEY_HINT}."
        )


def _demo_key(key_dir: Path, name: str) -> str:
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(key_dir, 0o700)
    path = key_dir / f"{name}.key"
    if not path.exists():
        # Written aside, then linked into place: a process starting at the same moment sees
        # either no key file or a complete one, never an empty file it would call damaged.
        tmp = key_dir / f".{name}.key.{os.getpid()}.{_secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # the first writer wins; the others read its key
        finally:
            tmp.unlink()
    value = path.read_text().strip()
    if len(value) >= MIN_KEY_LENGTH:
        return value
    raise SettingsError(f"{path} holds a damaged key; remove it to generate a new one.")


def load_settings(
    env: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> Settings:
    """Resolve every setting from the environment, then secrets.toml, then its default."""
    env = os.environ if env is None else env
    secrets = read_secrets(secrets_path)
    from_file = secrets.get("spotlight", {})
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env_var in env:
            values[setting.name] = _coerce(setting, env[setting.env_var])
        elif setting.name in from_file:
            values[setting.name] = _coerce(setting, from_file[setting.name])
        else:
            values[setting.name] = setting.default
    return Settings(values, secrets)
