"""The forecast defaults everyone sees (seasonality mode, changepoint prior scale, holiday
countries), kept in the app database without a table of their own.

Where they live. Each change is a ``model.change`` record of the hash-chained audit log (target
``forecast.defaults``, details ``{"before": {...}, "after": {...}}``), and the defaults in force
are the ``after`` of the newest such record; before the first change, ``BUILT_IN``. The audit log
is append-only and chained (SECURITY.md #12), so the history of the defaults (who, when, what
before and after) is the audit trail itself, a change and its audit record cannot disagree, and no
migration was needed. The read is one indexed lookup (``audit_action_ts``).

Who may do what: reading takes no principal (every page that forecasts shows them); changing
needs ``change_models`` (analyst, admin; ``require`` also asks a 2FA role for its code in this
tab). A change that changes nothing writes nothing. Values are validated here, so a record that
reaches the log always parses back: a seasonality mode Prophet knows, a changepoint prior scale
from 0.001 to 0.5 (Prophet's documented useful range), and ISO country codes the ``holidays``
package knows (at most ``MAX_COUNTRIES``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from security.audit import OK, AuditLog
from security.clock import Clock, as_utc, from_db, utcnow
from security.db import AppDB
from security.permissions import Principal, require

__all__ = [
    "ACTION",
    "BUILT_IN",
    "TARGET",
    "DefaultsError",
    "ForecastDefaults",
    "ForecastDefaultsStore",
    "StoredDefaults",
]

ACTION = "model.change"
TARGET = "forecast.defaults"
CHANGE_MODELS = "change_models"
SEASONALITY_MODES: tuple[str, ...] = ("multiplicative", "additive")
CHANGEPOINT_RANGE = (0.001, 0.5)
MAX_COUNTRIES = 10


class DefaultsError(ValueError):
    """Defaults that cannot be used; the message is fit to show the user."""


@dataclass(frozen=True)
class ForecastDefaults:
    """The shared settings of every forecast. Frozen and hashable (part of a cache key)."""

    seasonality_mode: str = "multiplicative"
    changepoint_prior_scale: float = 0.05
    countries: tuple[str, ...] = ("GB", "US")

    def __post_init__(self) -> None:
        if self.seasonality_mode not in SEASONALITY_MODES:
            raise DefaultsError(
                f"The seasonality mode must be one of {', '.join(SEASONALITY_MODES)}."
            )
        try:
            scale = float(self.changepoint_prior_scale)
        except (TypeError, ValueError):
            raise DefaultsError("The changepoint prior scale must be a number.") from None
        lo, hi = CHANGEPOINT_RANGE
        if not (math.isfinite(scale) and lo <= scale <= hi):
            raise DefaultsError(f"The changepoint prior scale must be from {lo} to {hi}.")
        object.__setattr__(self, "changepoint_prior_scale", scale)
        if isinstance(self.countries, str):
            raise DefaultsError("Countries are a list of ISO codes, e.g. US, GB.")
        codes = tuple(sorted({str(c).strip().upper() for c in self.countries if str(c).strip()}))
        if len(codes) > MAX_COUNTRIES:
            raise DefaultsError(f"At most {MAX_COUNTRIES} countries' holidays can be used.")
        unknown = [c for c in codes if c not in _supported_countries()]
        if unknown:
            raise DefaultsError(f"No public holidays are known for {', '.join(unknown)}.")
        object.__setattr__(self, "countries", codes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seasonality_mode": self.seasonality_mode,
            "changepoint_prior_scale": self.changepoint_prior_scale,
            "countries": list(self.countries),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ForecastDefaults:
        return cls(
            seasonality_mode=str(values.get("seasonality_mode", BUILT_IN.seasonality_mode)),
            changepoint_prior_scale=values.get(
                "changepoint_prior_scale", BUILT_IN.changepoint_prior_scale
            ),
            countries=tuple(values.get("countries", BUILT_IN.countries)),
        )


def _supported_countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


BUILT_IN = ForecastDefaults()


@dataclass(frozen=True)
class StoredDefaults:
    """The defaults in force, and who set them when (None: the built-in ones)."""

    defaults: ForecastDefaults
    changed_by: str | None = None
    changed_at: datetime | None = None
    audit_id: int | None = None


class ForecastDefaultsStore:
    """Reads and changes the shared forecast defaults (module docstring)."""

    def __init__(self, db: AppDB, audit: AuditLog, clock: Clock = utcnow):
        self.db = db
        self.audit = audit
        self.clock = clock

    def current(self) -> StoredDefaults:
        """The defaults in force: the newest change's, else the built-in ones. A record that
        no longer parses (written by a later version with other fields) falls back to the
        built-in defaults rather than failing every forecast."""
        rows = self.db.query(
            "SELECT id, ts, actor, details FROM audit WHERE action = ? AND target = ? "
            "AND outcome = ? ORDER BY id DESC LIMIT 1",
            (ACTION, TARGET, OK),
        )
        if not rows:
            return StoredDefaults(BUILT_IN)
        row = rows[0]
        try:
            defaults = ForecastDefaults.from_dict(json.loads(row["details"])["after"])
        except (ValueError, KeyError, TypeError):
            return StoredDefaults(BUILT_IN)
        return StoredDefaults(defaults, row["actor"], from_db(row["ts"]), int(row["id"]))

    def change(
        self, principal: Principal | None, new: ForecastDefaults, *, client: str = ""
    ) -> StoredDefaults:
        """Put ``new`` in force for everyone (``change_models``; audited ``model.change`` with
        before and after, in the same transaction that reads the current ones). Returns the
        defaults in force afterwards; a change to the same values writes nothing."""
        now = as_utc(self.clock())
        require(principal, CHANGE_MODELS, now)
        assert principal is not None  # require() lets no signed-out principal through
        if not isinstance(new, ForecastDefaults):
            raise DefaultsError("The defaults must be ForecastDefaults.")
        with self.db.transaction() as tx:
            # Read inside the write lock: two analysts changing at once each record what they
            # really replaced.
            before = self.current()
            if before.defaults == new:
                return before
            record_id = self.audit.append(
                tx,
                actor=principal.username,
                action=ACTION,
                target=TARGET,
                client=client,
                details={"before": before.defaults.as_dict(), "after": new.as_dict()},
                now=now,
            )
        return StoredDefaults(new, principal.username, now, record_id)
