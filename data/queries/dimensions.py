"""The values each filter dimension can take, for the filter bar's pickers.

Creator options are scoped like every other query: a creator sees only their own names in the
picker, never the list of other creators (SECURITY.md #7).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable

import duckdb

from data.queries.filters import DIMENSIONS, Scope

# dimension -> SQL listing (value, label) pairs; identifiers are fixed here, never from input.
_OPTION_QUERIES: dict[str, str] = {
    "country": "SELECT DISTINCT country, country FROM dim_viewer ORDER BY 1",
    # dv_view: the devices of plausible sessions (data/extract/plausibility.py), as the metrics see.
    "device": "SELECT DISTINCT device, device FROM dv_view ORDER BY 1",
    "genre": "SELECT DISTINCT genre, genre FROM dim_title ORDER BY 1",
    "kind": "SELECT DISTINCT kind, kind FROM dim_title ORDER BY 1",
    "plan": "SELECT DISTINCT plan, plan FROM dim_viewer ORDER BY 1",
    "age_band": "SELECT DISTINCT age_band, age_band FROM dim_viewer ORDER BY 1",
}


def dimension_options(
    cursor: duckdb.DuckDBPyConnection, scope: Scope
) -> dict[str, list[tuple[str, str]]]:
    """For every filter dimension, the (value, label) pairs present in the extract."""
    options: dict[str, list[tuple[str, str]]] = {}
    for name in DIMENSIONS:
        if name == "creator":
            where, params = scope.where("creator_id")
            rows = cursor.execute(
                f"SELECT CAST(creator_id AS VARCHAR), name FROM dim_creator WHERE {where} ORDER BY name",
                params,
            ).fetchall()
        else:
            rows = cursor.execute(_OPTION_QUERIES[name]).fetchall()
        if name == "country":
            # Names with their codes, so typing "United" or "US" both find the United States.
            rows = [(code, country_label(code)) for code, _ in rows]
        options[name] = [(str(value), str(label)) for value, label in rows if value is not None]
    return options


@functools.cache
def _country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> English short name, from the holidays package's registry (the
    calendars the demo and the forecasts already use): "UnitedStates" -> "United States"."""
    from holidays.registry import COUNTRIES

    names: dict[str, str] = {}
    for class_name, *codes in COUNTRIES.values():
        for code in codes:
            if len(code) == 2 and code.isupper():
                names[code] = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name)
    return names


def country_label(code: object) -> str:
    """ "United States (US)"; the code alone when the name is not known."""
    text = str(code)
    name = _country_names().get(text)
    return f"{name} ({text})" if name else text


def title_labels(titles: Iterable[tuple[object, object]]) -> dict[int, str]:
    """Title id -> the label every table, chart, picker and export shows for it: the name, with
    "(#id)" added when another of ``titles`` ((id, name) pairs) has the same name.

    Pass the titles the reader can see (``title_catalog``), not just those on screen, so a title
    keeps one label whatever else is picked; the id only where the name alone is ambiguous, so
    the usual unique name stays clean in headers and exports.
    """
    names = {int(t): str(n) for t, n in titles}
    counts = Counter(names.values())
    return {t: (f"{n} (#{t})" if counts[n] > 1 else n) for t, n in names.items()}


# Viewer attributes the segment builder offers beyond the filter dimensions (dim_viewer columns:
# an allowlist, never user input).
VIEWER_ATTRIBUTES: tuple[str, ...] = ("region", "acquisition_channel")


def viewer_attribute_options(cursor: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The values of each of VIEWER_ATTRIBUTES present in dim_viewer, sorted."""
    return {
        column: [
            str(value)
            for (value,) in cursor.execute(
                f"SELECT DISTINCT {column} FROM dim_viewer WHERE {column} IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        for column in VIEWER_ATTRIBUTES
    }
