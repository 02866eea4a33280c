"""The encrypted DuckDB extract: built aside and swapped in atomically, read through locked cursors.

The extract is one DuckDB file encrypted with AES-256-GCM. DuckDB writes encrypted files only
with its OpenSSL backend, which ships in the httpfs extension; the ``duckdb-extension-httpfs``
wheel carries it, so it loads offline from site-packages. Without it DuckDB refuses to write, and
after every build the file is checked to be unreadable without the key before it replaces the
live one, so plaintext never takes its place.

Readers get a cursor per thread over one read-only instance with external access disabled and
the configuration locked: no query can read or write a file, attach a database or undo those
settings. When a sync or an erasure swaps a new file in, the next ``cursor()`` call sees the new
inode and reopens.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import duckdb
import duckdb_extension_httpfs

from data import schema
from settings import Settings, SettingsError

EXTRACT_ALIAS = "extract"


class ExtractError(RuntimeError):
    """The extract cannot be opened or written; the message says why and what to do."""


def _httpfs_path() -> str:
    base = os.path.dirname(duckdb_extension_httpfs.__file__)
    found = glob.glob(
        os.path.join(base, "extensions", f"v{duckdb.__version__}", "*.duckdb_extension")
    )
    if not found:
        raise ExtractError(
            f"The httpfs extension for DuckDB {duckdb.__version__} is not installed, so the "
            "extract cannot be encrypted. Install duckdb-extension-httpfs with the same version."
        )
    return found[0]


def _new_instance() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # OpenSSL: the backend that may write encrypted files, and the fast one for reading them.
    con.execute(f"LOAD '{_httpfs_path()}'")
    return con


def _sql_string(value: str) -> str:
    """A SQL string literal. Only for ATTACH's path and key, which DuckDB cannot bind."""
    return "'" + value.replace("'", "''") + "'"


def _attach(con: duckdb.DuckDBPyConnection, path: Path, key: str, *, read_only: bool) -> None:
    options = f"ENCRYPTION_KEY {_sql_string(key)}, ENCRYPTION_CIPHER 'GCM'"
    if read_only:
        options += ", READ_ONLY"
    try:
        con.execute(f"ATTACH {_sql_string(str(path))} AS {EXTRACT_ALIAS} ({options})")
    except duckdb.Error as exc:
        text = str(exc)
        if "Wrong encryption key" in text:
            raise ExtractError(
                f"The extract key does not open {path}. Set SPOTLIGHT_EXTRACT_KEY to the key the "
                "extract was built with, or rebuild it (python cli.py demo / python cli.py sync --full)."
            ) from None
        raise ExtractError(f"Cannot open the encrypted extract {path}: {text}") from None
    con.execute(f"USE {EXTRACT_ALIAS}")


def is_encrypted(path: Path) -> bool:
    """True when DuckDB cannot open the file without a key."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {_sql_string(str(path))} AS probe (READ_ONLY)")
    except duckdb.Error as exc:
        return "encrypted" in str(exc).lower()
    finally:
        con.close()
    return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ExtractStore:
    """One encrypted extract file: build a new one aside, swap it in, read it safely."""

    def __init__(self, path: Path, key: str, *, threads: int | None = None):
        if not key:
            raise ExtractError(
                "No extract key. Set SPOTLIGHT_EXTRACT_KEY (at least 32 characters); the app "
                "never writes the extract unencrypted."
            )
        self.path = Path(path)
        self._key = key
        self._threads = threads
        self._lock = threading.Lock()
        self._base: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int] | None = None
        self._local = threading.local()

    @property
    def temp_dir(self) -> Path:
        return self.path.parent / ".duckdb-tmp"

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def key_fingerprint(self) -> str:
        """A short digest of the key, safe to log and to use in cache keys."""
        return hashlib.sha256(self._key.encode()).hexdigest()[:12]

    # --- writing ---------------------------------------------------------------------------------
    def _prepare_writer(self, con: duckdb.DuckDBPyConnection) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        con.execute(f"SET temp_directory = {_sql_string(str(self.temp_dir))}")
        # Spilled intermediate results are encrypted like the extract itself.
        con.execute("SET temp_file_encryption = true")
        if self._threads:
            con.execute(f"SET threads = {int(self._threads)}")

    @contextlib.contextmanager
    def build(self, *, copy_current: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A writable connection to a new extract, swapped in only if the block succeeds.

        The new file is written beside the live one; on success it is checkpointed, checked to
        be encrypted, fsynced and renamed over the live file in one atomic step. If the block
        raises, or the process dies, the live extract is untouched and the partial file removed
        (or left as an orphan ``.building`` file that the next build sweeps away).
        ``copy_current`` starts the new extract as a byte copy of the live file (incremental
        sync): the same key opens it and nothing is decrypted on the way, so the copy costs what
        copying the file costs. Rows the block deletes may keep their bytes in the copy's blocks,
        so an erasure must not use it: it writes fresh tables instead (data.sync.erasure).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sweep_orphans()
        building = self.building_path()
        con = _new_instance()
        try:
            self._prepare_writer(con)
            if copy_current:
                if not self.exists():
                    raise ExtractError(f"There is no extract at {self.path} to start from.")
                # Every build ends with a checkpoint, so the live file holds everything (no WAL).
                shutil.copyfile(self.path, building)
            _attach(con, building, self._key, read_only=False)
            if not copy_current:
                for statement in schema.extract_ddl():
                    con.execute(statement)
            yield con
            # Every file gets its own id: in-memory indexes of an extract (data.queries.viewer_index)
            # are keyed on it, so a copied-then-changed file never reuses a stale one.
            write_meta(con, {"build_id": uuid.uuid4().hex})
            con.execute("CHECKPOINT")
            con.execute("USE memory")
            con.execute(f"DETACH {EXTRACT_ALIAS}")
            con.close()
            if not is_encrypted(building):
                raise ExtractError(
                    "The new extract was written without encryption; it was discarded and the "
                    "live extract kept."
                )
            with open(building, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(building, self.path)
            _fsync_dir(self.path.parent)
        finally:
            with contextlib.suppress(Exception):
                con.close()
            for leftover in (building, Path(str(building) + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def building_path(self) -> Path:
        """A fresh path beside the live file for a new build or copy, swept by the next build if
        the process dies before it is swapped in."""
        return self.path.parent / f".{self.path.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def install(self, candidate: Path) -> str:
        """Swap ``candidate`` (a complete extract file beside the live one, e.g. a copy of the
        extract another server built) in as the live extract, atomically; returns its build id.

        It must be encrypted and open with this store's key, so a truncated copy, a plaintext
        file or one built with another key never replaces the live extract; nothing is decrypted
        on disk. Readers see the new file on their next ``cursor()`` (a new inode).
        """
        candidate = Path(candidate)
        if candidate.parent.resolve() != self.path.parent.resolve():
            raise ExtractError(f"{candidate} must be in {self.path.parent} to be swapped in.")
        if not is_encrypted(candidate):
            raise ExtractError(f"{candidate} is not an encrypted extract; the live one is kept.")
        con = duckdb.connect(":memory:")
        try:
            _attach(con, candidate, self._key, read_only=True)
            con.execute("SET enable_external_access = false")
            rows = dict(con.execute("SELECT key, value FROM extract_meta").fetchall())
        except duckdb.Error as exc:
            raise ExtractError(f"{candidate} is not a readable extract: {exc}") from None
        finally:
            con.close()
        with open(candidate, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(candidate, self.path)
        _fsync_dir(self.path.parent)
        return rows.get("build_id", "")

    def _sweep_orphans(self) -> None:
        """Remove partial builds whose process is gone (a sync killed mid-way)."""
        for orphan in self.path.parent.glob(f".{self.path.name}.building-*"):
            pid_text = orphan.name.split("building-", 1)[1].split("-", 1)[0]
            if (
                pid_text.isdigit()
                and int(pid_text) != os.getpid()
                and not _pid_alive(int(pid_text))
            ):
                with contextlib.suppress(FileNotFoundError):
                    orphan.unlink()

    # --- reading ---------------------------------------------------------------------------------
    def _file_identity(self) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ExtractError(
                f"There is no extract at {self.path}. Build the demo extract with "
                "`python cli.py demo`, or sync from the warehouse with `python cli.py sync`."
            ) from None
        return (st.st_ino, st.st_mtime_ns)

    def _open_reader(self) -> duckdb.DuckDBPyConnection:
        con = _new_instance()
        if self._threads:
            con.execute(f"SET threads = {int(self._threads)}")
        _attach(con, self.path, self._key, read_only=True)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read-only cursor; reopened when a new extract has been swapped in."""
        identity = self._file_identity()
        local = self._local
        if getattr(local, "identity", None) == identity:
            return local.cursor
        with self._lock:
            if self._identity != identity or self._base is None:
                self._base = self._open_reader()
                self._identity = identity
            cursor = self._base.cursor()
            # The default schema is per connection; a new cursor starts in the empty memory one.
            cursor.execute(f"USE {EXTRACT_ALIAS}")
            local.cursor = cursor
            local.identity = identity
        return local.cursor

    @contextlib.contextmanager
    def peek(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-only connection to the live extract, for a few small reads.

        Unlike :meth:`cursor` it loads no OpenSSL backend (0.1 s of a 0.7 s incremental sync
        of 1M views): DuckDB's built-in one reads encrypted files, slower per byte, which a
        few rows of metadata do not notice. Closed on exit, so nothing of it stays open.
        """
        self._file_identity()  # the clear "no extract" error
        con = duckdb.connect(":memory:")
        try:
            _attach(con, self.path, self._key, read_only=True)
            con.execute("SET enable_external_access = false")
            yield con
        finally:
            con.close()

    def generation(self) -> str:
        """Identifies the extract file now live; part of every query cache key."""
        ino, mtime = self._file_identity()
        return f"{ino}-{mtime}"

    def read_meta(self) -> dict[str, str]:
        rows = self.cursor().execute("SELECT key, value FROM extract_meta").fetchall()
        return dict(rows)


def write_meta(con: duckdb.DuckDBPyConnection, values: Mapping[str, object]) -> None:
    """Record facts about the extract (its source, when it was built, sync watermarks)."""
    if not values:
        return
    # One statement for all of them: a sync records about 40, and a statement each cost 0.13 s.
    con.execute(
        "INSERT INTO extract_meta SELECT unnest(?), unnest(?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [list(values), [str(v) for v in values.values()]],
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def store_from_settings(settings: Settings) -> ExtractStore:
    """The extract store the settings describe, with its key resolved (generated in demo mode)."""
    try:
        key = settings.secret("extract_key")
    except SettingsError as exc:
        raise ExtractError(str(exc)) from None
    return ExtractStore(settings.extract_path, key)
