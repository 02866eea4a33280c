"""The platform's subscriptions per day, cumulated in memory: exact unfiltered subscription
metrics for any window in microseconds.

The metric catalog computes subscription metrics from per-day histograms of starts and ends
(data/queries/metrics.py ``_hist_records``). Without filters those histograms depend only on the
extract, so they are built once per extract build (data/extract/build_cache.py) and cumulated: every
window is then a few lookups. Filtered queries still build their histograms in SQL.

Definitions are those of ``_hist_records`` (and METRICS.md), window [a, b] in days:

- new_subscribers: first-ever subscriptions started in [a, b];
- started: subscriptions started in [a, b];
- money at b, per currency: price (cents of that currency) and count of the paying
  subscriptions active at the end of b (started on or before b, not ended on or before b);
  converted by the caller at b's rates;
- cancelled: subscriptions that ended in [a, b];
- active_at_start: subscriptions active at the end of a - 1;
- subscribers: distinct viewers subscribed at any time in [a, b] = spells that start on or
  before b, minus spells that ended before a, minus gaps between one viewer's consecutive
  spells that both touch [a, b].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np

from data.extract import build_cache

_EPOCH = date(1970, 1, 1)

# Per day and currency; the columns of one currency are those of ``_COLUMNS``.
_SUB_SQL = """
SELECT day, currency, sum(n_start), sum(cents_start), sum(paying_start), sum(first_start),
    sum(n_end), sum(cents_end), sum(paying_end)
FROM (
    SELECT start_day AS day, currency, count(*) AS n_start, sum(price_cents) AS cents_start,
        count(*) FILTER (WHERE price_cents > 0) AS paying_start,
        count(*) FILTER (WHERE is_first) AS first_start,
        0 AS n_end, 0 AS cents_end, 0 AS paying_end
    FROM dv_subscription WHERE start_day IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT end_day, currency, 0, 0, 0, 0, count(*), sum(price_cents),
        count(*) FILTER (WHERE price_cents > 0)
    FROM dv_subscription WHERE end_day IS NOT NULL GROUP BY ALL
)
GROUP BY ALL ORDER BY day
"""
_COLUMNS = 7
N_START, CENTS_START, PAYING_START, FIRST_START, N_END, CENTS_END, PAYING_END = range(_COLUMNS)

_SPELL_SQL = """
SELECT day, sum(n_first), sum(n_last)
FROM (
    SELECT first_day AS day, count(*) AS n_first, 0 AS n_last
    FROM dv_sub_spell WHERE first_day IS NOT NULL GROUP BY 1
    UNION ALL
    SELECT last_day, 0, count(*) FROM dv_sub_spell WHERE last_day IS NOT NULL GROUP BY 1
)
GROUP BY day ORDER BY day
"""

_GAP_SQL = """
SELECT last_day, next_first_day FROM dv_sub_spell
WHERE next_first_day IS NOT NULL AND last_day IS NOT NULL
ORDER BY last_day
"""


def _days(values: list[date]) -> np.ndarray:
    # Dates as whole days since 1970; 9999-12-31 (an open spell) fits easily in int64.
    return np.asarray([(d - _EPOCH).days for d in values], dtype=np.int64)


class _Cumulated:
    """Per-day values cumulated: the sum over every day up to and including ``d``."""

    def __init__(self, days: np.ndarray, values: np.ndarray):
        self.days = days
        self.cum = np.cumsum(values, axis=0) if len(days) else np.zeros((0, values.shape[1]))

    def upto(self, d: int) -> np.ndarray:
        i = int(np.searchsorted(self.days, d, side="right")) - 1
        if i < 0:
            return np.zeros(self.cum.shape[1], dtype=self.cum.dtype)
        return self.cum[i]


@dataclass
class SubscriptionDays:
    """Cumulated unfiltered subscription and spell histograms of one extract build.

    ``subs`` has ``_COLUMNS`` columns per currency of ``currencies`` (currency-major)."""

    subs: _Cumulated
    spells: _Cumulated
    gap_last: np.ndarray  # a gap's last subscribed day, sorted
    gap_next: np.ndarray  # the first day of the same viewer's next spell
    currencies: tuple[str | None, ...] = ()

    @classmethod
    def load(cls, cursor: duckdb.DuckDBPyConnection) -> SubscriptionDays:
        sub_rows = cursor.execute(_SUB_SQL).fetchall()
        spell_rows = cursor.execute(_SPELL_SQL).fetchall()
        gaps = cursor.execute(_GAP_SQL).fetchall()
        currencies = tuple(sorted({r[1] for r in sub_rows}, key=lambda c: (c is None, str(c))))
        slot = {c: i for i, c in enumerate(currencies)}
        days = sorted({r[0] for r in sub_rows})
        row_of = {d: i for i, d in enumerate(days)}
        sub_values = np.zeros((len(days), _COLUMNS * len(currencies)), dtype=np.int64)
        for r in sub_rows:
            k = slot[r[1]] * _COLUMNS
            sub_values[row_of[r[0]], k : k + _COLUMNS] = [int(v or 0) for v in r[2:]]
        spell_values = np.asarray([r[1:] for r in spell_rows], dtype=np.int64).reshape(-1, 2)
        return cls(
            subs=_Cumulated(_days(days), sub_values),
            spells=_Cumulated(_days([r[0] for r in spell_rows]), spell_values),
            gap_last=_days([g[0] for g in gaps]),
            gap_next=_days([g[1] for g in gaps]),
            currencies=currencies,
        )

    def subscription_window(self, a: date, b: date) -> SubscriptionWindow:
        """The subscription aggregates of [a, b]; money per currency (see the module)."""
        lo, hi = (a - _EPOCH).days, (b - _EPOCH).days
        at_b = self.subs.upto(hi).reshape(-1, _COLUMNS)
        before_a = self.subs.upto(lo - 1).reshape(-1, _COLUMNS)
        if not len(self.currencies):
            at_b = before_a = np.zeros((0, _COLUMNS), dtype=np.int64)
        total_b, total_a = at_b.sum(axis=0), before_a.sum(axis=0)
        return SubscriptionWindow(
            new_subscribers=float(total_b[FIRST_START] - total_a[FIRST_START]),
            started=float(total_b[N_START] - total_a[N_START]),
            cancelled=float(total_b[N_END] - total_a[N_END]),
            active_at_start=float(total_a[N_START] - total_a[N_END]),
            money={
                c: (
                    float(at_b[i, CENTS_START] - at_b[i, CENTS_END]),
                    float(at_b[i, PAYING_START] - at_b[i, PAYING_END]),
                )
                for i, c in enumerate(self.currencies)
            },
        )

    def subscribers(self, a: date, b: date) -> float:
        """Distinct viewers subscribed at any time in [a, b]."""
        lo, hi = (a - _EPOCH).days, (b - _EPOCH).days
        first_by_b = self.spells.upto(hi)[0]
        ended_before_a = self.spells.upto(lo - 1)[1]
        # Gaps that both spells touch: last_day >= a and next_first_day <= b; since
        # last_day < next_first_day, only gaps whose last day falls in [a, b] can qualify.
        start = int(np.searchsorted(self.gap_last, lo, side="left"))
        stop = int(np.searchsorted(self.gap_last, hi, side="right"))
        gaps = int(np.count_nonzero(self.gap_next[start:stop] <= hi))
        return float(first_by_b - ended_before_a - gaps)


@dataclass(frozen=True)
class SubscriptionWindow:
    """Subscription aggregates of one window [a, b]; ``money``: currency -> (cents of that
    currency, paying subscriptions) of the subscriptions active at the end of b."""

    new_subscribers: float
    started: float
    cancelled: float
    active_at_start: float
    money: dict[str | None, tuple[float, float]]


# Days at or after this are "never" (an open spell's 9999-12-31): they end nothing in a window.
_NEVER = (date(9000, 1, 1) - _EPOCH).days
# Filtered histograms are dense over the days the rows span; a wider span is left to SQL.
_MAX_SPAN_DAYS = 100_000


def _histogram(
    days: np.ndarray,
    columns: list[np.ndarray],
    low: int,
    group: np.ndarray | None = None,
    groups: int = 1,
) -> _Cumulated:
    """Per-day sums of ``columns`` over the given days (dense from ``low``), cumulated; with
    ``group`` (0 .. groups - 1 per row) the columns repeat per group, group-major."""
    keep = days < _NEVER
    at = days[keep] - low
    size = int(at.max()) + 1 if len(at) else 0
    slot = at * groups + (group[keep] if group is not None else 0)
    values = np.zeros((size, groups, len(columns)), dtype=np.int64)
    for j, column in enumerate(columns):
        values[:, :, j] = (
            np.bincount(slot, weights=column[keep], minlength=size * groups)
            .round()
            .astype(np.int64)
            .reshape(size, groups)
        )
    return _Cumulated(
        np.arange(low, low + size, dtype=np.int64), values.reshape(size, groups * len(columns))
    )


class SubscriptionRows:
    """dv_subscription and dv_sub_spell as arrays, to build histograms for any filter."""

    # family -> dimension column -> the column in that table
    SUB_COLUMNS = ("country", "age_band", "plan")
    SPELL_COLUMNS = ("country", "age_band", "viewer_plan")

    def __init__(self, cursor: duckdb.DuckDBPyConnection):
        from data.queries.viewer_index import load_codes

        def days(table: str, expr: str) -> np.ndarray:
            found = cursor.execute(
                f"SELECT rowid AS r, coalesce(date_diff('day', DATE '1970-01-01', {expr}), "
                f"{_NEVER}) AS d FROM {table} ORDER BY rowid"
            ).fetchnumpy()
            return np.asarray(found["d"], dtype=np.int64)

        sub = cursor.execute(
            "SELECT rowid AS r, coalesce(price_cents, 0) AS cents, is_first AS first "
            "FROM dv_subscription ORDER BY rowid"
        ).fetchnumpy()
        self.sub_start = days("dv_subscription", "start_day")
        self.sub_end = days("dv_subscription", "end_day")
        self.sub_cents = np.asarray(sub["cents"], dtype=np.int64)
        self.sub_first = np.asarray(np.ma.filled(sub["first"], False), dtype=np.int64)
        self.sub_codes = {
            c: load_codes(cursor, "dv_subscription", c, text=True) for c in self.SUB_COLUMNS
        }
        codes, _lookup, names = load_codes(cursor, "dv_subscription", "currency", text=True)
        # A NULL currency (-1) gets the last slot.
        self.sub_currency = np.where(codes < 0, len(names), codes).astype(np.int64)
        self.currencies: tuple[str | None, ...] = (
            (*names, None) if bool((codes < 0).any()) else tuple(names)
        )
        self.spell_first = days("dv_sub_spell", "first_day")
        self.spell_last = days("dv_sub_spell", "last_day")
        self.spell_next = days("dv_sub_spell", "next_first_day")
        self.spell_codes = {
            c: load_codes(cursor, "dv_sub_spell", c, text=True) for c in self.SPELL_COLUMNS
        }
        starts = self.sub_start[self.sub_start < _NEVER]
        firsts = self.spell_first[self.spell_first < _NEVER]
        self.low = int(min(starts.min(initial=0), firsts.min(initial=0)))
        ends = np.concatenate([a[a < _NEVER] for a in (self.sub_end, self.spell_last)])
        high = int(max(ends.max(initial=self.low), starts.max(initial=self.low)))
        self.usable = high - self.low < _MAX_SPAN_DAYS

    def _mask(self, codes: dict, conditions: dict[str, tuple[str, ...]], rows: int) -> np.ndarray:
        from data.queries.viewer_index import member

        mask = np.ones(rows, dtype=bool)
        for column, wanted in conditions.items():
            found, lookup, _values = codes[column]
            mask &= member(found, wanted, lookup)
        return mask

    def filtered(
        self, family: str, conditions: dict[str, tuple[str, ...]]
    ) -> SubscriptionDays | None:
        """Histograms of one family ("sub" or "spell") over the rows matching ``conditions``
        (that table's column -> allowed values); the other family's part is left empty."""
        if not self.usable:
            return None
        empty = _Cumulated(np.zeros(0, dtype=np.int64), np.zeros((0, _COLUMNS), dtype=np.int64))
        if family == "sub":
            m = self._mask(self.sub_codes, conditions, len(self.sub_start))
            cents = self.sub_cents[m]
            paying, first = (cents > 0).astype(np.int64), self.sub_first[m]
            ones = np.ones(len(cents), dtype=np.int64)
            zero = np.zeros_like(ones)
            start, end, currency = self.sub_start[m], self.sub_end[m], self.sub_currency[m]
            k = max(len(self.currencies), 1)
            starts = _histogram(
                start, [ones, cents, paying, first, zero, zero, zero], self.low, currency, k
            )
            ends = _histogram(
                end, [zero, zero, zero, zero, ones, cents, paying], self.low, currency, k
            )
            none = np.zeros(0, dtype=np.int64)
            return SubscriptionDays(
                _merge(starts, ends), empty, none, none, currencies=self.currencies
            )
        s = self._mask(self.spell_codes, conditions, len(self.spell_first))
        ones = np.ones(int(s.sum()), dtype=np.int64)
        zero = np.zeros_like(ones)
        spells = _merge(
            _histogram(self.spell_first[s], [ones, zero], self.low),
            _histogram(self.spell_last[s], [zero, ones], self.low),
        )
        gap = s & (self.spell_next < _NEVER) & (self.spell_last < _NEVER)
        order = np.argsort(self.spell_last[gap], kind="stable")
        return SubscriptionDays(
            subs=empty,
            spells=spells,
            gap_last=self.spell_last[gap][order],
            gap_next=self.spell_next[gap][order],
        )


def _merge(a: _Cumulated, b: _Cumulated) -> _Cumulated:
    """Two cumulated histograms over days from the same first day, added."""
    size = max(len(a.days), len(b.days))
    width = a.cum.shape[1]
    total = np.zeros((size, width), dtype=np.int64)
    for part in (a, b):
        if len(part.days):
            total[: len(part.days)] += part.cum
            total[len(part.days) :] += part.cum[-1]
    days = a.days if len(a.days) >= len(b.days) else b.days
    merged = _Cumulated(days, np.zeros((0, width), dtype=np.int64))
    merged.cum = total
    return merged


def rows_for_cursor(cursor: duckdb.DuckDBPyConnection) -> SubscriptionRows | None:
    """The subscription rows of the cursor's extract build (None when indexes are off)."""
    return build_cache.for_build(cursor, "subscription_rows", lambda _bid: SubscriptionRows(cursor))


def for_cursor(cursor: duckdb.DuckDBPyConnection) -> SubscriptionDays | None:
    """The rollup of the cursor's extract build (None when in-memory indexes are off)."""
    return build_cache.for_build(
        cursor, "subscription_days", lambda _bid: SubscriptionDays.load(cursor)
    )
