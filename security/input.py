"""Strict parsing of identifiers typed by people: creator ids and viewer keys.

Python's ``int()`` and ``str.isdigit()`` accept more than an operator means: ``int('１２')`` is
12 (full-width digits), ``'²'.isdigit()`` is True but ``int('²')`` raises, and ``int(' 7_0 ')``
is 70. Here a number is ASCII digits 0-9 and nothing else, and every refusal says what was
expected, quoting the offending text safely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
MAX_VIEWER_KEY = 2**63 - 1
MAX_CREATOR_ID = 2**31 - 1


class InputError(ValueError):
    """Typed input that is not what the field expects; the message says what is."""


def _shown(text: str) -> str:
    """The offending text for a message: short, and with control characters made visible."""
    clipped = text if len(text) <= 40 else text[:37] + "…"
    return ascii(clipped) if not clipped.isprintable() else repr(clipped)


def parse_whole_number(text: object, *, what: str, maximum: int) -> int:
    """A whole number from 0 to ``maximum`` written with the digits 0-9 only."""
    cleaned = str(text).strip()
    if not _DIGITS.fullmatch(cleaned):
        raise InputError(
            f"{what} must be a whole number written with the digits 0-9, got {_shown(cleaned)}."
        )
    value = int(cleaned)
    if value > maximum:
        raise InputError(f"{what} must be at most {maximum:,}, got {cleaned}.")
    return value


def parse_viewer_key(text: object) -> int:
    """A viewer key: the pseudonym of a viewer, 0 to 2^63 - 1."""
    return parse_whole_number(text, what="A viewer key", maximum=MAX_VIEWER_KEY)


def parse_creator_ids(text: str | Iterable[object]) -> list[int]:
    """Creator ids from ``"4, 7"`` (or from a list of such parts); empty text gives none."""
    parts = text.split(",") if isinstance(text, str) else [str(p) for p in text]
    ids = []
    for part in parts:
        if not part.strip():
            continue
        ids.append(parse_whole_number(part, what="A creator id", maximum=MAX_CREATOR_ID))
    return sorted(set(ids))
