"""Where each extract table's rows live in the operator's warehouse: the warehouse mapping.

A platform's warehouse has its own names. The mapping says, per extract table, which table or
view holds its rows (``source``: ``table`` in the connection's schema, or ``schema.table``) and,
where the names differ, which source column feeds each model column (``columns``: model name =
source name). A table left out is read under the model's own names (``data/schema.py``), as
before. The TOML form, in a file named by the ``warehouse_mapping_file`` setting or under
``[warehouse_mapping]`` in ``.streamlit/secrets.toml``::

    [fact_view]
    source = "playback.sessions"
    allow_extra_columns = true      # the source may have columns the model does not read

    [fact_view.columns]
    view_id = "session_id"
    viewer_key = "viewer_pseudonym"

Names are plain SQL identifiers (letters, digits, ``_``, ``$``; not starting with a digit) and,
like unquoted identifiers in PostgreSQL and Redshift, are folded to lower case; they are
validated here and always rendered double-quoted, so nothing an operator writes is ever pasted
into SQL raw. A source whose name needs quoting (capitals, spaces) is exposed through a view
with a plain name (``python cli.py warehouse ddl`` prints a template per table).

Validation raises :class:`settings.SettingsError` naming where the mistake is and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from data import schema
from settings import SettingsError

# A plain identifier; 127 bytes is Redshift's limit (PostgreSQL's is 63, and it truncates).
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,126}")
# The extract tables a mapping may name: those read from a warehouse table of their own. The
# daily rollup is computed from fact_view's source and follows its mapping.
MAPPABLE: tuple[str, ...] = tuple(t.name for t in schema.TABLES)
_ENTRY_KEYS = ("source", "columns", "allow_extra_columns")


def quote_ident(name: str) -> str:
    """``name`` double-quoted for PostgreSQL and Redshift; refuses anything not a plain
    identifier (so even a quote doubled here never matters)."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SourceMap:
    """Where one model table's rows come from. ``schema`` empty: the connection's schema."""

    model: str
    schema: str = ""
    table: str = ""
    columns: Mapping[str, str] = field(default_factory=dict)
    allow_extra_columns: bool = False

    def column(self, model_column: str) -> str:
        """The source column that feeds ``model_column``."""
        return self.columns.get(model_column, model_column)

    def location(self, default_schema: str) -> tuple[str, str]:
        """(schema, table) as the warehouse's catalog spells them (lower case)."""
        return (self.schema or default_schema.lower(), self.table or self.model)

    def qualified(self, default_schema: str) -> str:
        """The source table or view, schema-qualified and quoted."""
        source_schema, table = self.location(default_schema)
        return f"{quote_ident(source_schema)}.{quote_ident(table)}"

    def relation(self, default_schema: str, columns: tuple[schema.Column, ...]) -> str:
        """What ``FROM`` reads: the source itself when it uses the model's column names, or a
        derived table that renames its columns to the model's, so that every statement the
        sync renders (``src.<model column>``) reads it unchanged. PostgreSQL and Redshift
        inline such a projection, so filters still reach the source's sort keys and indexes."""
        qualified = self.qualified(default_schema)
        if not any(self.column(c.name) != c.name for c in columns):
            return qualified
        picked = ", ".join(f"{quote_ident(self.column(c.name))} AS {c.name}" for c in columns)
        return f"(SELECT {picked} FROM {qualified})"

    def describe(self, default_schema: str) -> str:
        """``schema.table`` for messages."""
        return ".".join(self.location(default_schema))


@dataclass(frozen=True)
class WarehouseMapping:
    """Every mapped model table; ``where`` says where it was read from, for messages."""

    tables: Mapping[str, SourceMap] = field(default_factory=dict)
    where: str = ""

    def get(self, model_table: str) -> SourceMap | None:
        return self.tables.get(model_table)

    def __bool__(self) -> bool:
        return bool(self.tables)

    @classmethod
    def from_config(
        cls, raw: Mapping[str, Any], where: str = "the warehouse mapping"
    ) -> WarehouseMapping:
        """Validate a parsed mapping (TOML tables); SettingsError names the mistake and the fix."""
        if not isinstance(raw, Mapping):
            raise SettingsError(f"{where} must be a table of extract tables.")
        tables: dict[str, SourceMap] = {}
        for name, entry in raw.items():
            if name not in MAPPABLE:
                hint = (
                    " It is computed from fact_view's source: map fact_view instead."
                    if name == "fact_view_daily"
                    else ""
                )
                raise SettingsError(
                    f"{where}: unknown extract table {name!r}.{hint} Map one of: "
                    f"{', '.join(MAPPABLE)}."
                )
            tables[name] = _entry(name, entry, f"{where} [{name}]")
        return cls(tables, where)


def _identifier(value: Any, what: str, *, qualified: bool = False) -> tuple[str, ...]:
    text = value if isinstance(value, str) else None
    parts = text.split(".") if text is not None else []
    if (
        text is None
        or not 1 <= len(parts) <= (2 if qualified else 1)
        or not all(_IDENT.fullmatch(p) for p in parts)
    ):
        shape = "table or schema.table" if qualified else "column name"
        raise SettingsError(
            f"{what} must be a plain {shape} (letters, digits, _ or $, not starting with a "
            f"digit), got {value!r}. For a source whose name needs quoting, create a view with a "
            "plain name over it (python cli.py warehouse ddl prints a template) and map that."
        )
    return tuple(p.lower() for p in parts)


def _entry(name: str, entry: Any, where: str) -> SourceMap:
    if isinstance(entry, str):
        # Shorthand: fact_view = "playback.sessions".
        entry = {"source": entry}
    if not isinstance(entry, Mapping):
        raise SettingsError(
            f'{where} must be a table (source = "schema.table", optionally [columns]), got '
            f"{type(entry).__name__}."
        )
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise SettingsError(
            f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(_ENTRY_KEYS)}."
        )
    source_schema, table = "", ""
    if "source" in entry:
        parts = _identifier(entry["source"], f"{where} source", qualified=True)
        source_schema, table = parts if len(parts) == 2 else ("", parts[0])
    model = schema.TABLES_BY_NAME[name]
    raw_columns = entry.get("columns", {})
    if not isinstance(raw_columns, Mapping):
        raise SettingsError(
            f'{where} columns must be a table of model column = "source column", got '
            f"{type(raw_columns).__name__}."
        )
    columns: dict[str, str] = {}
    for model_column, source_column in raw_columns.items():
        if model_column not in model.column_names:
            raise SettingsError(
                f"{where} columns: {name} has no column {model_column!r} (the key is the "
                f"model's name, the value the source's). Its columns: "
                f"{', '.join(model.column_names)}."
            )
        (columns[model_column],) = _identifier(
            source_column, f"{where} columns.{model_column}", qualified=False
        )
    allow = entry.get("allow_extra_columns", False)
    if not isinstance(allow, bool):
        raise SettingsError(f"{where} allow_extra_columns must be true or false, got {allow!r}.")
    return SourceMap(name, source_schema, table, columns, allow)


def mapping_from_settings(settings: Any) -> WarehouseMapping:
    """The validated mapping the settings point at (empty: every table under its model name)."""
    where, raw = settings.warehouse_mapping
    return WarehouseMapping.from_config(raw, where) if raw else WarehouseMapping()
