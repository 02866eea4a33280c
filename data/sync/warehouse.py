"""Warehouse drivers behind one interface: Arrow record batches out of Redshift (or PostgreSQL).

Two drivers speak to the warehouse:

* ``adbc`` (the default): the ADBC PostgreSQL driver. It returns Arrow record batches straight
  from the wire, detects Redshift and avoids COPY there, and reads several times faster than a
  row-by-row driver.
* ``redshift_connector``: Amazon's driver, for deployments that sign in with IAM or an identity
  provider (``iam = true``, ``credentials_provider = ...``). It returns Python rows, which this
  module fetches through a server-side cursor in bounded chunks and turns into Arrow batches.

Both are configured from one mapping, ``[connections.warehouse]`` in ``.streamlit/secrets.toml``
(or ``SPOTLIGHT_WAREHOUSE_URL``): either ``url`` or ``host``/``port``/``database``/``user``/
``password``, plus ``driver``, ``schema`` and driver options. Error messages never contain the
password: every message that leaves this module passes through :func:`redact`.

Transient failures (the connection refused, dropped or reset, the server shutting down or
terminating the backend, too many connections) raise :class:`TransientWarehouseError`, and
:func:`with_retries` retries exactly those with exponential backoff; anything else (bad SQL,
permissions, wrong password) fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa

log = logging.getLogger(__name__)

Driver = Literal["adbc", "redshift_connector"]
DRIVERS: tuple[str, ...] = ("adbc", "redshift_connector")

# SQLSTATE classes and codes that mean "the connection, not the statement, failed": connection
# exceptions (08), the server shutting down or terminating the backend (57P01..57P03), too many
# connections (53300), and Redshift's serialization conflict when a concurrent commit races ours.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001")
# Driver messages for the same, where the driver gives no SQLSTATE (sockets closed underneath it).
_TRANSIENT_TEXT = re.compile(
    r"connection (refused|reset|closed|timed out|lost|unexpectedly|to server)|broken pipe|"
    r"server closed the connection|terminating connection|could not connect|"
    r"no connection to the server|network|timeout expired|eof detected|"
    r"unexpected eof|socket|connection is closed|ssl syscall",
    re.IGNORECASE,
)


# Refusals that no retry changes: a wrong password or user, a missing database or role, missing
# grants, a host that requires TLS. Drivers may report them without a SQLSTATE, in text that also
# mentions the "connection to server", so they are recognised before any transient pattern.
_AUTH_TEXT = re.compile(
    r"password authentication failed|authentication failed|no pg_hba\.conf entry|"
    r"role \S+ does not exist|database \S+ does not exist|permission denied|"
    r"password is required|invalid password|not authorized|access denied|"
    r"ssl (is )?required|certificate verify failed",
    re.IGNORECASE,
)
_AUTH_SQLSTATES = ("28", "3D000", "42501")


class WarehouseError(RuntimeError):
    """The warehouse refused or failed a request; the message is safe to show and log."""


class TransientWarehouseError(WarehouseError):
    """A connection-level failure that may succeed when tried again."""


class WarehouseConfigError(WarehouseError):
    """``[connections.warehouse]`` cannot be used; the message names the setting to fix."""


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every given secret and any URL password replaced by ``***``."""
    text = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)
    text = re.sub(r"(?i)(password\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)", r"\1***", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
            quoted = quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, "***")
    return text


def _whole_number(what: str, value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise WarehouseConfigError(f"{what} must be a whole number (got {str(value)!r}).") from None
    if number < 0:
        raise WarehouseConfigError(f"{what} must not be negative (got {number}).")
    return number


@dataclass(frozen=True)
class WarehouseConfig:
    """Where the warehouse is and how to sign in; built by :meth:`from_mapping`."""

    host: str = ""
    port: int = 5439
    database: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    driver: Driver = "adbc"
    schema: str = "public"
    sslmode: str = ""
    connect_timeout: int = 10
    # Seconds any one statement may run before the warehouse cancels it (0: no limit).
    statement_timeout: int = 1800
    # ADBC reads result sets in record batches of about this many bytes.
    batch_bytes: int = 16 * 1024 * 1024
    # redshift_connector fetches this many rows per round trip from its server-side cursor.
    batch_rows: int = 50_000
    # Everything else goes to redshift_connector.connect (iam, cluster_identifier, region,
    # db_user, profile, credentials_provider, idp_host, ...).
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    _KNOWN = (
        "url",
        "host",
        "port",
        "database",
        "user",
        "username",
        "password",
        "driver",
        "type",
        "schema",
        "sslmode",
        "connect_timeout",
        "statement_timeout",
        "batch_bytes",
        "batch_rows",
    )

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> WarehouseConfig:
        """Parse ``[connections.warehouse]`` (or ``{"url": ...}``); raise a clear error if unusable."""
        if not config:
            raise WarehouseConfigError(
                "No warehouse is configured. Add [connections.warehouse] to .streamlit/secrets.toml "
                "or set SPOTLIGHT_WAREHOUSE_URL (see .streamlit/secrets.toml.example)."
            )
        values: dict[str, Any] = {}
        url = str(config.get("url") or "")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in {"postgresql", "postgres", "redshift"}:
                raise WarehouseConfigError(
                    "The warehouse url must look like postgresql://user:password@host:5439/database "
                    f"(it starts with {parts.scheme + '://' if parts.scheme else 'no scheme'})."
                )
            try:
                port = parts.port
            except ValueError:
                raise WarehouseConfigError(
                    "The warehouse url's port must be a whole number from 1 to 65535."
                ) from None
            values.update(
                host=parts.hostname or "",
                port=port or 5439,
                database=unquote(parts.path.lstrip("/")),
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
            )
            for item in filter(None, parts.query.split("&")):
                name, _, value = item.partition("=")
                if name == "sslmode":
                    values["sslmode"] = unquote(value)
                elif name in ("connect_timeout", "statement_timeout"):
                    values[name] = _whole_number(f"the warehouse url's {name}", unquote(value))
                elif name == "schema":
                    values["schema"] = unquote(value)
        for name in ("host", "database", "password", "schema", "sslmode"):
            if config.get(name) not in (None, ""):
                values[name] = str(config[name])
        if config.get("user") or config.get("username"):
            values["user"] = str(config.get("user") or config.get("username"))
        for name in ("port", "connect_timeout", "statement_timeout", "batch_bytes", "batch_rows"):
            if config.get(name) not in (None, ""):
                values[name] = _whole_number(f"[connections.warehouse] {name}", config[name])
        driver = str(config.get("driver") or "adbc")
        if driver not in DRIVERS:
            raise WarehouseConfigError(
                f"[connections.warehouse] driver must be one of {', '.join(DRIVERS)} (got {driver!r})."
            )
        options = {k: v for k, v in config.items() if k not in cls._KNOWN}
        if options.get("iam") or options.get("credentials_provider"):
            if driver != "redshift_connector" and config.get("driver"):
                raise WarehouseConfigError(
                    "IAM and identity-provider sign-in need driver = 'redshift_connector'."
                )
            driver = "redshift_connector"
        elif options and driver == "adbc":
            raise WarehouseConfigError(
                f"[connections.warehouse] has options the adbc driver does not use: "
                f"{', '.join(sorted(options))}. They are redshift_connector options; set "
                "driver = 'redshift_connector' or remove them."
            )
        values["driver"] = driver
        values["options"] = options
        result = cls(**values)
        if not result.host and not options.get("cluster_identifier"):
            raise WarehouseConfigError("[connections.warehouse] needs a host (or a url).")
        if not result.database:
            raise WarehouseConfigError("[connections.warehouse] needs a database.")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", result.schema):
            raise WarehouseConfigError(
                "[connections.warehouse] schema must be a plain identifier (letters, digits, _)."
            )
        return result

    def adbc_uri(self) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = [f"connect_timeout={self.connect_timeout}"]
        if self.sslmode:
            query.append(f"sslmode={quote(self.sslmode)}")
        return (
            f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
            f"?{'&'.join(query)}"
        )

    def describe(self) -> str:
        """Where this points, without any secret: for logs, errors and the admin page."""
        who = f"{self.user}@" if self.user else ""
        return f"{self.driver}: {who}{self.host}:{self.port}/{self.database} (schema {self.schema})"


class WarehouseSession(Protocol):
    """One open connection to the warehouse.

    SQL uses ``$1, $2, ...`` placeholders whatever the driver; values are always bound.
    """

    config: WarehouseConfig

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    if state:
        return str(state)
    # redshift_connector puts the server's error fields in a dict as the first argument.
    if exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("C", ""))
    return ""


def _message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("M", exc))
    return str(exc)


def is_transient(exc: BaseException) -> bool:
    """True for a connection-level failure that a new connection may not meet again."""
    if isinstance(exc, TransientWarehouseError):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, BrokenPipeError, EOFError)):
        return True
    if isinstance(exc, struct.error):
        # redshift_connector parses the wire protocol with struct: a connection cut in the
        # middle of a message surfaces as a short buffer ("unpack requires a buffer of ...").
        return True
    state = _sqlstate(exc)
    if (state and state.startswith(_AUTH_SQLSTATES)) or _AUTH_TEXT.search(_message(exc)):
        return False
    if state and state.startswith(_TRANSIENT_SQLSTATES):
        return True
    if state and not state.startswith("XX"):
        # A definite SQLSTATE of another class (syntax, permission, password) is not transient.
        return False
    return bool(_TRANSIENT_TEXT.search(_message(exc)))


def _translate(exc: BaseException, config: WarehouseConfig, doing: str) -> WarehouseError:
    cls = TransientWarehouseError if is_transient(exc) else WarehouseError
    state = _sqlstate(exc)
    detail = redact(_message(exc), config.password).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    where = config.describe()
    return cls(f"Warehouse {doing} failed ({where}){f' [{state}]' if state else ''}: {first}")


@contextlib.contextmanager
def _translated(config: WarehouseConfig, doing: str) -> Iterator[None]:
    try:
        yield
    except WarehouseError:
        raise
    except Exception as exc:
        raise _translate(exc, config, doing) from None


def _limit_statements(execute: Callable[[str], Any], config: WarehouseConfig) -> None:
    """Have the warehouse cancel any statement of this session that runs longer than the
    configured limit: a stuck query then fails the sync instead of holding the writer lock."""
    if config.statement_timeout:
        # PostgreSQL and Redshift both take milliseconds here; an integer, never bound text.
        execute(f"SET statement_timeout TO {int(config.statement_timeout) * 1000}")


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with PostgreSQL extension types (NUMERIC arrives as opaque text) as storage."""
    if not any(isinstance(f.type, pa.BaseExtensionType) for f in batch.schema):
        return batch
    arrays = [
        col.storage if isinstance(col.type, pa.BaseExtensionType) else col for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class AdbcSession:
    """A session on the ADBC PostgreSQL driver (autocommit; transactions are explicit SQL)."""

    def __init__(self, config: WarehouseConfig):
        import adbc_driver_postgresql.dbapi as adbc

        self.config = config
        with _translated(config, "connection"):
            self._con = adbc.connect(
                config.adbc_uri(),
                autocommit=True,
                conn_kwargs={},
            )
            self._cur = self._con.cursor()
            _limit_statements(self._cur.execute, config)
        # Larger batches mean fewer round trips through DuckDB's appender.
        self._cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(config.batch_bytes)}
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _translated(self.config, "statement"):
            self._cur.execute(sql, parameters=tuple(params) or None)

    def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _translated(self.config, "query"):
            self._cur.execute(sql, parameters=tuple(params) or None)
            return [tuple(r) for r in self._cur.fetchall()]

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[pa.RecordBatch]:
        with _translated(self.config, "read"):
            self._cur.execute(sql, parameters=tuple(params) or None)
            reader = self._cur.fetch_record_batch()
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                yield _plain(batch)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cur.close()
        with contextlib.suppress(Exception):
            self._con.close()


# redshift_connector type codes (PostgreSQL OIDs) -> Arrow types, for turning rows into batches.
_OID_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1700: pa.string(),  # NUMERIC: kept exact as text, as the ADBC driver does
}


class RedshiftConnectorSession:
    """A session on redshift_connector; result sets are read through a server-side cursor."""

    def __init__(self, config: WarehouseConfig):
        import redshift_connector

        self.config = config
        kwargs: dict[str, Any] = {
            "database": config.database,
            "timeout": config.connect_timeout,
        }
        if config.host:
            kwargs["host"] = config.host
            kwargs["port"] = config.port
        if config.user:
            kwargs["user"] = config.user
        if config.password:
            kwargs["password"] = config.password
        if config.sslmode:
            kwargs["ssl"] = config.sslmode != "disable"
            if config.sslmode in {"verify-ca", "verify-full"}:
                kwargs["sslmode"] = config.sslmode
        kwargs.update(config.options)
        with _translated(config, "connection"):
            self._con = redshift_connector.connect(**kwargs)
            self._con.autocommit = True
            self._cur = self._con.cursor()
            # $1-style placeholders are written as :1 for this driver (its "numeric" style).
            self._cur.paramstyle = "numeric"
            _limit_statements(self._cur.execute, config)
        self._cursors = 0

    @staticmethod
    def _sql(sql: str) -> str:
        return re.sub(r"\$(\d+)", r":\1", sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _translated(self.config, "statement"):
            self._cur.execute(self._sql(sql), tuple(params) or None)

    def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _translated(self.config, "query"):
            self._cur.execute(self._sql(sql), tuple(params) or None)
            return [tuple(r) for r in self._cur.fetchall()]

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[pa.RecordBatch]:
        # redshift_connector buffers a whole result in memory; a server-side cursor (DECLARE /
        # FETCH, which Redshift supports inside a transaction) bounds it to one chunk at a time.
        self._cursors += 1
        name = f"spotlight_c{self._cursors}"
        own_transaction = not self._con.in_transaction
        with _translated(self.config, "read"):
            if own_transaction:
                self._cur.execute("BEGIN")
            self._cur.execute(f"DECLARE {name} CURSOR FOR {self._sql(sql)}", tuple(params) or None)
            try:
                while True:
                    self._cur.execute(f"FETCH FORWARD {int(self.config.batch_rows)} FROM {name}")
                    rows = self._cur.fetchall()
                    if not rows:
                        break
                    yield self._to_batch(rows, self._cur.description)
                self._cur.execute(f"CLOSE {name}")
            finally:
                if own_transaction and self._con.in_transaction:
                    with contextlib.suppress(Exception):
                        self._cur.execute("COMMIT")

    @staticmethod
    def _to_batch(rows: Sequence[Sequence[Any]], description: Sequence[Any]) -> pa.RecordBatch:
        names = [d[0] for d in description]
        arrays = []
        for i, d in enumerate(description):
            values = [r[i] for r in rows]
            kind = _OID_ARROW.get(int(d[1]))
            if kind == pa.string() and int(d[1]) == 1700:
                values = [None if v is None else str(v) for v in values]
            arrays.append(pa.array(values, type=kind))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


def connect(config: WarehouseConfig) -> WarehouseSession:
    """An open session on the configured driver; raises WarehouseError (or Transient...)."""
    if config.driver == "redshift_connector":
        return RedshiftConnectorSession(config)
    return AdbcSession(config)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Exponential backoff with jitter, so that many clients do not retry in step: between
        half and all of ``base_delay * 2 ** (attempt - 1)``, capped at ``max_delay``. ``rand``
        (0 <= r < 1) is for tests."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling * (0.5 + rand() / 2)


T = TypeVar("T")


def with_retries(
    action: Callable[[int], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, float, WarehouseError], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action(attempt)``; retry only TransientWarehouseError, up to ``policy.attempts``.

    Any other exception propagates at once. When the attempts are used up, the last transient
    error propagates, its message saying how many attempts were made.
    """
    attempt = 1
    while True:
        try:
            return action(attempt)
        except TransientWarehouseError as exc:
            if attempt >= policy.attempts:
                raise TransientWarehouseError(f"{exc} (gave up after {attempt} attempts)") from None
            pause = policy.delay(attempt)
            log.warning("transient warehouse error, retrying in %.1fs: %s", pause, exc)
            if on_retry:
                on_retry(attempt, pause, exc)
            sleep(pause)
            attempt += 1


class Warehouse:
    """The configured warehouse: opens sessions, with transient connection failures retried."""

    def __init__(self, config: WarehouseConfig, retry: RetryPolicy | None = None):
        self.config = config
        self.retry = retry or RetryPolicy()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], retry: RetryPolicy | None = None) -> Warehouse:
        return cls(WarehouseConfig.from_mapping(config), retry)

    @contextlib.contextmanager
    def session(self) -> Iterator[WarehouseSession]:
        """An open session (connecting is retried on transient errors), closed afterwards."""
        session = with_retries(lambda _attempt: connect(self.config), self.retry)
        try:
            yield session
        finally:
            session.close()

    def ping(self) -> str:
        """The server's version string; raises WarehouseError when it cannot be reached."""
        with self.session() as s:
            return str(s.fetch_rows("SELECT version()")[0][0])

    def describe(self) -> str:
        return self.config.describe()


def warehouse_from_settings(settings: Any) -> Warehouse:
    """The warehouse the settings describe (``[connections.warehouse]`` or the URL setting);
    timeouts not set there come from the ``sync_*_timeout_seconds`` settings."""
    retry = RetryPolicy(
        attempts=int(settings.sync_retries),
        base_delay=float(settings.sync_retry_delay_seconds),
    )
    config = dict(settings.warehouse_config)
    url_query = urlsplit(str(config.get("url") or "")).query
    for name, setting in (
        ("connect_timeout", "sync_connect_timeout_seconds"),
        ("statement_timeout", "sync_statement_timeout_seconds"),
    ):
        if config.get(name) in (None, "") and f"{name}=" not in url_query:
            config[name] = int(getattr(settings, setting))
    return Warehouse.from_mapping(config, retry)
