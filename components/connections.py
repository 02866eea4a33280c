"""Streamlit connections for the warehouse and the extract (``st.connection``).

``st.connection("warehouse", type=WarehouseConnection)`` is configured from
``[connections.warehouse]`` in ``.streamlit/secrets.toml`` (url, or host/port/database/user/
password, driver, schema, iam ...; see ``.streamlit/secrets.toml.example``), falling back to
``SPOTLIGHT_WAREHOUSE_URL``. ``st.connection("extract", type=ExtractConnection)`` is configured
from ``[connections.extract]`` (``path``, ``key``), falling back to the settings (the data folder
and ``SPOTLIGHT_EXTRACT_KEY``, generated in demo mode).

They hold no SQL: the warehouse connection offers the sync and a reachability check, the extract
connection the read-only cursor, the generation (for cache keys) and the sync status. Both are
global (shared by all sessions): they hold no per-user state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
from streamlit.connections import BaseConnection

from data.extract.store import ExtractStore, store_from_settings
from data.sync.run import ProgressCallback, SyncResult, SyncStatus, run_sync, sync_status
from data.sync.warehouse import RetryPolicy, Warehouse
from settings import Settings, load_settings


def _settings() -> Settings:
    return load_settings()


class WarehouseConnection(BaseConnection[Warehouse]):
    """The configured warehouse; ``sync()`` builds a new extract from it."""

    def _connect(self, **kwargs: Any) -> Warehouse:
        settings = kwargs.pop("settings", None) or _settings()
        config = {**self._secrets.to_dict(), **kwargs} or settings.warehouse_config
        retry = RetryPolicy(
            attempts=int(settings.sync_retries),
            base_delay=float(settings.sync_retry_delay_seconds),
        )
        self._settings = settings
        return Warehouse.from_mapping(config, retry)

    @property
    def warehouse(self) -> Warehouse:
        return self._instance

    def describe(self) -> str:
        """Driver, user, host, database and schema; never the password."""
        return self._instance.describe()

    def ping(self) -> str:
        """The server's version string; raises WarehouseError when it cannot be reached."""
        return self._instance.ping()

    def sync(
        self,
        store: ExtractStore,
        *,
        full: bool = False,
        only: Sequence[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> SyncResult:
        """Run a sync into ``store`` (see ``data.sync.run_sync``); the caller audits the result."""
        return run_sync(
            self._settings,
            warehouse=self._instance,
            store=store,
            full=full,
            only=only,
            progress=progress,
        )


class ExtractConnection(BaseConnection[ExtractStore]):
    """The encrypted extract: read-only cursors, its generation and its sync status."""

    def _connect(self, **kwargs: Any) -> ExtractStore:
        config = {**self._secrets.to_dict(), **kwargs}
        settings = config.pop("settings", None)
        if config.get("path") and config.get("key"):
            return ExtractStore(config["path"], str(config["key"]))
        return store_from_settings(settings or _settings())

    @property
    def store(self) -> ExtractStore:
        return self._instance

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read-only cursor (external access disabled, configuration locked)."""
        return self._instance.cursor()

    def generation(self) -> str:
        """Identifies the live extract file; part of every cache key."""
        return self._instance.generation()

    def sync_status(self) -> SyncStatus:
        """The live extract's last successful sync, per table."""
        return sync_status(self._instance)
