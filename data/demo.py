"""A deterministic, realistic demo streaming platform, generated fast and streamed in batches.

``generate(config, pseudonym_key)`` yields ``(table name, pyarrow.Table)`` batches whose columns
are exactly those of ``data.schema`` (same order, matching Arrow types); ``build_demo_extract``
writes them into a new encrypted extract; ``ensure_demo_extract`` is the app's embedded default.

Determinism: the same ``DemoConfig`` (seed, sizes, ``end`` date, batch size) and the same
pseudonym key give identical tables. ``end`` defaults to today's UTC date so the demo looks
live; pass it explicitly (tests do) to reproduce a build on another day.

What makes it realistic, and why it stays fast (10 million views in well under two minutes on
two cores): every per-row quantity is drawn with numpy over whole batches, never a Python loop
per view.

- Viewers sign up over the window (the platform grows), in many countries and time zones, on
  four plans; each has an activity level (a few heavy viewers watch most) and a subscription that
  churns with a plan-, channel- and activity-dependent hazard; some come back (resubscription).
- Views are generated day by day in time order. A day's volume is the summed activity of the
  viewers subscribed that day, weighted by the weekday, the season and public holidays of each
  viewer's country (``holidays``); each view then draws a viewer subscribed that day (rejection
  sampling over the signed-up prefix), a local hour from a weekday or weekend/holiday profile, and
  a title from that day's popularity: Zipf-like base popularity times a decay since release (live
  events spike on their day). Views never precede a title's release or a viewer's subscription.
- Completion falls with runtime; ``completed`` is exactly ``watch_seconds >= 0.9 * runtime * 60``.
- Revenue: monthly subscription charges, pay-per-view purchases (live events, premium rentals)
  and ad revenue, with card or ad-tech fees and ``net = gross - fees`` in exact cents. Ad
  impressions come from ad-supported viewers' watch time, split over the campaigns in flight.
- Money comes in several currencies: viewers are billed in their country's currency (USD, EUR,
  GBP, JPY, CAD, MXN, BRL, INR, AUD; other countries in USD) at local price points, and creators
  are paid in theirs. Ad revenue is in USD (the base currency; ad delivery rows carry none).
  Exchange rates against USD are published every day for every other currency: a small
  mean-reverting random walk around realistic levels (``fact_exchange_rate``).
- Creator payouts per month are the creators' earnings as METRICS.md defines them (net revenue
  of their titles times their revenue share, subscription revenue attributed by watch time),
  added up in USD at each day's rate and paid in the creator's currency at the month's last rate.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import math
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import holidays
import numpy as np
import pyarrow as pa

from data import schema
from data.extract.derived import build_derived
from data.extract.pseudonym import pseudonymise_many
from data.extract.store import ExtractStore, store_from_settings, write_meta
from settings import Settings

Progress = Callable[[float, str], None]

DAY = 86_400
# What a demo extract's layout is: a live demo extract of another format is built again on start.
DEMO_FORMAT = "2"

# (code, US dollars per unit around which the rate moves, daily volatility, monthly prices of the
# plans basic, standard, premium and ad-supported in cents, the card processor's fixed fee in
# cents). Local price points, as streaming services set them, not conversions of the USD list.
_CURRENCIES: tuple[tuple[str, float, float, tuple[int, int, int, int], int], ...] = (
    ("USD", 1.0, 0.0, (799, 1399, 1999, 599), 30),
    ("EUR", 1.08, 0.0045, (799, 1299, 1899, 599), 25),
    ("GBP", 1.27, 0.005, (699, 1099, 1599, 499), 20),
    ("JPY", 0.0067, 0.006, (99_000, 159_000, 229_000, 79_000), 4_000),
    ("CAD", 0.73, 0.004, (999, 1649, 2399, 699), 40),
    ("MXN", 0.055, 0.007, (13_900, 22_900, 29_900, 9_900), 500),
    ("BRL", 0.19, 0.008, (2_590, 3_990, 5_590, 1_890), 150),
    ("INR", 0.012, 0.003, (19_900, 49_900, 64_900, 14_900), 2_500),
    ("AUD", 0.66, 0.006, (1_099, 1_899, 2_599, 799), 45),
)
_CURRENCY_CODES = tuple(c[0] for c in _CURRENCIES)
# Countries billed in their own currency; the others in USD.
_COUNTRY_CURRENCY = {
    "US": "USD",
    "CA": "CAD",
    "MX": "MXN",
    "BR": "BRL",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "NL": "EUR",
    "JP": "JPY",
    "IN": "INR",
    "AU": "AUD",
}
_PRICE_CENTS = np.array([c[3] for c in _CURRENCIES], dtype=np.int64)  # currency x plan
_FIXED_FEE_CENTS = np.array([c[4] for c in _CURRENCIES], dtype=np.int64)
# Prices in currencies without minor units (in practice) are whole numbers.
_WHOLE_UNITS = np.array([c[0] in ("JPY", "INR", "MXN") for c in _CURRENCIES])
# Rates start this many days before the window, so its first days have a rate too.
_RATE_LEAD_DAYS = 14


def _today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo platform is and which one (seed) it is.

    ``end`` is the last day with data (inclusive) and defaults to today's UTC date, so the demo
    looks live; the window is the ``days`` days ending there. ``titles`` defaults to a catalog
    that grows with the number of views. ``batch_rows`` bounds memory; it is part of the
    configuration because batch boundaries are part of what makes the output reproducible.
    """

    viewers: int = 20_000
    views: int = 400_000
    seed: int = 7
    end: date = field(default_factory=_today_utc)
    days: int = 730
    titles: int | None = None
    batch_rows: int = 500_000

    def __post_init__(self) -> None:
        if self.viewers < 1:
            raise ValueError(f"viewers must be at least 1, got {self.viewers}")
        if self.views < 0:
            raise ValueError(f"views must not be negative, got {self.views}")
        if self.days < 28:
            raise ValueError(f"days must be at least 28, got {self.days}")
        if self.titles is not None and self.titles < 50:
            raise ValueError(f"titles must be at least 50, got {self.titles}")
        if self.batch_rows < 1_000:
            raise ValueError(f"batch_rows must be at least 1000, got {self.batch_rows}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")

    @property
    def start(self) -> date:
        """The first day with data."""
        return self.end - timedelta(days=self.days - 1)

    @property
    def n_titles(self) -> int:
        if self.titles is not None:
            return self.titles
        return int(min(6_000, max(300, self.views // 150)))

    @property
    def n_creators(self) -> int:
        return int(min(200, max(12, self.n_titles // 40)))


# --- reference data ------------------------------------------------------------------------------
# (country, weight, hemisphere, [(region, weight, UTC offset in minutes, DST rule)])
_COUNTRIES: tuple[tuple[str, float, int, tuple[tuple[str, float, int, str], ...]], ...] = (
    (
        "US",
        30,
        1,
        (
            ("Northeast", 0.3, -300, "us"),
            ("Southeast", 0.2, -300, "us"),
            ("Midwest", 0.2, -360, "us"),
            ("Mountain", 0.08, -420, "us"),
            ("West", 0.22, -480, "us"),
        ),
    ),
    (
        "CA",
        4,
        1,
        (
            ("Ontario", 0.45, -300, "us"),
            ("Quebec", 0.2, -300, "us"),
            ("Alberta", 0.15, -420, "us"),
            ("British Columbia", 0.2, -480, "us"),
        ),
    ),
    ("MX", 4, 1, (("Mexico City", 0.6, -360, ""), ("Jalisco", 0.4, -360, ""))),
    ("BR", 6, -1, (("São Paulo", 0.6, -180, ""), ("Rio de Janeiro", 0.4, -180, ""))),
    ("AR", 2, -1, (("Buenos Aires", 1.0, -180, ""),)),
    ("GB", 7, 1, (("England", 0.85, 0, "eu"), ("Scotland", 0.15, 0, "eu"))),
    ("DE", 6, 1, (("Bavaria", 0.3, 60, "eu"), ("Berlin", 0.3, 60, "eu"), ("Hesse", 0.4, 60, "eu"))),
    ("FR", 5, 1, (("Île-de-France", 0.5, 60, "eu"), ("Occitanie", 0.5, 60, "eu"))),
    ("ES", 3, 1, (("Madrid", 0.5, 60, "eu"), ("Catalonia", 0.5, 60, "eu"))),
    ("IT", 3, 1, (("Lombardy", 0.5, 60, "eu"), ("Lazio", 0.5, 60, "eu"))),
    ("NL", 2, 1, (("North Holland", 1.0, 60, "eu"),)),
    ("SE", 1.5, 1, (("Stockholm", 1.0, 60, "eu"),)),
    ("PL", 2, 1, (("Masovia", 1.0, 60, "eu"),)),
    ("TR", 2, 1, (("Istanbul", 1.0, 180, ""),)),
    (
        "IN",
        6,
        1,
        (("Maharashtra", 0.4, 330, ""), ("Karnataka", 0.3, 330, ""), ("Delhi", 0.3, 330, "")),
    ),
    ("JP", 4, 1, (("Tokyo", 0.6, 540, ""), ("Osaka", 0.4, 540, ""))),
    ("KR", 2.5, 1, (("Seoul", 1.0, 540, ""),)),
    ("ID", 2, -1, (("Jakarta", 1.0, 420, ""),)),
    ("PH", 2, 1, (("Metro Manila", 1.0, 480, ""),)),
    ("SG", 1, 1, (("Singapore", 1.0, 480, ""),)),
    (
        "AU",
        3,
        -1,
        (
            ("New South Wales", 0.4, 600, "au"),
            ("Victoria", 0.3, 600, "au"),
            ("Queensland", 0.2, 600, ""),
            ("Western Australia", 0.1, 480, ""),
        ),
    ),
    ("NZ", 1, -1, (("Auckland", 1.0, 720, "nz"),)),
    ("ZA", 1.5, -1, (("Gauteng", 1.0, 120, ""),)),
    ("NG", 1.5, 1, (("Lagos", 1.0, 60, ""),)),
    ("EG", 1, 1, (("Cairo", 1.0, 120, ""),)),
)
_DST_RULES = ("", "us", "eu", "au", "nz")

_PLANS = ("basic", "standard", "premium", "ad_supported")
_PLAN_WEIGHTS = (0.24, 0.36, 0.15, 0.25)
_PLAN_CHURN = np.array([1.15, 0.95, 0.8, 1.3])
_AD_PLAN = _PLANS.index("ad_supported")

_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_WEIGHTS = (0.17, 0.27, 0.22, 0.16, 0.11, 0.07)

_CHANNELS = ("organic", "search", "paid_social", "referral", "tv_ads", "partner_bundle")
_CHANNEL_WEIGHTS = (0.3, 0.2, 0.2, 0.12, 0.08, 0.1)
_CHANNEL_CHURN = np.array([0.9, 1.0, 1.3, 0.8, 1.05, 0.7])

_DEVICES = ("tv", "mobile", "web", "tablet", "console")
_DEVICE_WEIGHTS = (0.38, 0.27, 0.15, 0.1, 0.1)
# Small screens are abandoned more often.
_DEVICE_COMPLETION = np.array([1.0, 0.82, 0.9, 0.92, 1.02])

_WEEKDAY_FACTOR = np.array([0.92, 0.9, 0.92, 0.95, 1.08, 1.22, 1.16])  # Monday first
_HOLIDAY_FACTOR = 1.3

# Local-hour viewing profiles: weekday evenings peak; weekends and holidays fill the afternoon.
_HOURS_WEEKDAY = np.array(
    [0.9, 0.45, 0.25, 0.15, 0.12, 0.15, 0.35, 0.6, 0.6, 0.55, 0.6, 0.7,
     0.95, 0.9, 0.75, 0.8, 0.95, 1.2, 1.6, 2.2, 2.7, 2.8, 2.3, 1.6]
)  # fmt: skip
_HOURS_WEEKEND = np.array(
    [1.2, 0.7, 0.4, 0.25, 0.15, 0.15, 0.25, 0.45, 0.7, 1.0, 1.3, 1.5,
     1.6, 1.7, 1.7, 1.7, 1.8, 1.9, 2.0, 2.4, 2.7, 2.7, 2.3, 1.8]
)  # fmt: skip

_KINDS = ("movie", "episode", "live")
_GENRES_VOD = (
    "Drama",
    "Comedy",
    "Thriller",
    "Documentary",
    "Action",
    "Sci-Fi",
    "Romance",
    "Horror",
    "Animation",
    "Family",
    "Crime",
    "Reality",
)
_GENRES_LIVE = ("Sports", "Music", "Comedy", "Talk")
_LANGUAGES = ("en", "es", "fr", "de", "ja", "ko", "hi", "pt", "it")
_LANGUAGE_WEIGHTS = (0.58, 0.1, 0.05, 0.05, 0.06, 0.06, 0.05, 0.03, 0.02)
_MATURITY_MOVIE = ("G", "PG", "PG-13", "R", "NC-17")
_MATURITY_TV = ("TV-Y", "TV-G", "TV-PG", "TV-14", "TV-MA")

_ADJECTIVES = (
    "Silent",
    "Crimson",
    "Hidden",
    "Broken",
    "Golden",
    "Northern",
    "Last",
    "Midnight",
    "Distant",
    "Wild",
    "Hollow",
    "Electric",
    "Burning",
    "Frozen",
    "Quiet",
    "Lost",
    "Shattered",
    "Velvet",
    "Iron",
    "Paper",
    "Secret",
    "Endless",
    "Bright",
    "Savage",
)
_NOUNS = (
    "Harbor",
    "Empire",
    "Signal",
    "Orchard",
    "Tide",
    "Frontier",
    "Garden",
    "Kingdom",
    "Circuit",
    "Mirror",
    "River",
    "Summit",
    "Lantern",
    "Machine",
    "Horizon",
    "Station",
    "Archive",
    "Voyage",
    "Canyon",
    "Protocol",
    "Anthem",
    "Island",
    "Compass",
    "Echo",
)
_EPISODE_WORDS = (
    "Pilot",
    "Arrival",
    "Fault",
    "Lines",
    "Undertow",
    "Crossroads",
    "Reckoning",
    "Homecoming",
    "Aftermath",
    "Leverage",
    "Blackout",
    "Tremor",
    "Ghosts",
    "Thaw",
    "Breakpoint",
    "Kindling",
    "Nightfall",
    "Threshold",
    "Paper",
    "Trail",
    "Endgame",
)
_LIVE_EVENTS = (
    "Championship Final",
    "Derby Night",
    "World Tour Live",
    "Stand-Up Special Live",
    "Late Night Live",
    "Awards Night",
    "Grand Prix",
    "Festival Main Stage",
    "Title Fight",
    "Season Opener",
)
# Real catalogs carry markup-like characters, quotes and emoji; the app must show them as text.
_TRICKY_TITLES = (
    "<b>Bold</b> & Beautiful: \"Quotes\" 'n' More 🎬",
    "Tom & Jerry's <script>alert('x')</script> Show 🍿",
    'Café <i>Noir</i> — 100% "Unfiltered" & Live 🎤🔥',
)
_STUDIOS = (
    "Northlight Studios",
    "Bluefin Pictures",
    "Harborline Films",
    "Redwood Media",
    "Silverframe Studios",
    "Lumen House",
    "Vantage Pictures",
    "Orbit Studios",
    "Kestrel Films",
    "Atlas Entertainment",
)
_DISTRIBUTORS = (
    "Meridian Distribution",
    "Crossroads Releasing",
    "Polar Star Distribution",
    "Tidewater Releasing",
    "Keystone Distribution",
)
_FIRST_NAMES = (
    "Ava",
    "Noah",
    "Mia",
    "Liam",
    "Zoe",
    "Omar",
    "Lena",
    "Ravi",
    "Yuki",
    "Ines",
    "Tariq",
    "Sofia",
    "Mateo",
    "Amara",
    "Felix",
)
_LAST_NAMES = (
    "Moreno",
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Novak",
    "Haddad",
    "Rossi",
    "Kaur",
    "Fischer",
    "Silva",
    "Park",
    "Dubois",
)

_CAMPAIGN_BRANDS = (
    "Acme Cola",
    "Zephyr Motors",
    "Brightside Bank",
    "Nimbus Phones",
    "Trailhead Outdoor",
    "Pixel Foods",
    "Harbor & Hearth Home",
    "Luma Beauty",
    "Quanta Insurance",
    "Velo Bikes",
)
_CAMPAIGN_THEMES = (
    "Spring Launch",
    "Summer Splash",
    "Back to School",
    "Holiday",
    "New Year",
    "Always On",
)


# --- Arrow helpers -------------------------------------------------------------------------------
def arrow_type(column: schema.Column) -> pa.DataType:
    """The Arrow type a generated column has for a schema column."""
    if column.is_text:
        return pa.string()
    return {
        "id": pa.int64(),
        "int": pa.int32(),
        "small": pa.int16(),
        "real": pa.float64(),
        "money": pa.decimal128(14, 2),
        "ratio": pa.decimal128(5, 4),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "ts": pa.timestamp("us"),
    }[column.type]


def arrow_schema(table: schema.Table) -> pa.Schema:
    """The Arrow schema of a generated table: the schema's columns, in order, with nullability."""
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in table.columns])


def _mask(valid: np.ndarray | None) -> np.ndarray | None:
    return None if valid is None else ~valid


def _ts(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    micros = (np.asarray(seconds, dtype=np.int64) * 1_000_000).view("M8[us]")
    return pa.array(micros, mask=_mask(valid))


def _dates(days_since_epoch: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days_since_epoch, dtype=np.int64).astype("M8[D]"))


def _decimal(
    units: np.ndarray, precision: int, scale: int, valid: np.ndarray | None = None
) -> pa.Array:
    """A DECIMAL array from integer units (cents for money), built without Python objects."""
    low = np.ascontiguousarray(units, dtype=np.int64)
    # Decimal128 is a 16-byte little-endian two's complement integer: low word, sign-extended high.
    words = np.empty((len(low), 2), dtype=np.int64)
    words[:, 0] = low
    words[:, 1] = low >> 63
    validity = None
    null_count = 0
    if valid is not None:
        validity = pa.array(np.asarray(valid, dtype=bool)).buffers()[1]
        null_count = int(len(low) - np.count_nonzero(valid))
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale),
        len(low),
        [validity, pa.py_buffer(words)],
        null_count=null_count,
    )


def _money(cents: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return _decimal(cents, 14, 2, valid)


def _labels(labels: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    return pa.array(list(labels), pa.string()).take(pa.array(np.asarray(codes, dtype=np.int32)))


def _const_text(value: str, n: int) -> pa.Array:
    return _labels((value,), np.zeros(n, dtype=np.int32))


def _int(values: np.ndarray, dtype: type, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=dtype), mask=_mask(valid))


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    target = arrow_schema(schema.TABLES_BY_NAME[name])
    return pa.Table.from_arrays([columns[f.name] for f in target], schema=target)


# --- the generator -------------------------------------------------------------------------------
def _rng(seed: int, *stream: int | str) -> np.random.Generator:
    """An independent, reproducible random stream per purpose (and batch)."""
    words = [seed] + [zlib.crc32(s.encode()) if isinstance(s, str) else int(s) for s in stream]
    return np.random.default_rng(words)


def _choice(
    rng: np.random.Generator, weights: tuple[float, ...] | np.ndarray, n: int
) -> np.ndarray:
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.searchsorted(cum, rng.random(n) * cum[-1], side="right").astype(np.int64)


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    sunday = first + timedelta(days=(6 - first.weekday()) % 7)
    if n > 0:
        return sunday + timedelta(weeks=n - 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def _dst_active(rule: str, d: date) -> bool:
    """Whether daylight saving time is in force on a local day (to the day, not the hour)."""
    y = d.year
    if rule == "us":
        return _nth_sunday(y, 3, 2) <= d < _nth_sunday(y, 11, 1)
    if rule == "eu":
        return _nth_sunday(y, 3, -1) <= d < _nth_sunday(y, 10, -1)
    if rule == "au":
        return not (_nth_sunday(y, 4, 1) <= d < _nth_sunday(y, 10, 1))
    if rule == "nz":
        return not (_nth_sunday(y, 4, 1) <= d < _nth_sunday(y, 9, -1))
    return False


class _Generator:
    def __init__(self, config: DemoConfig, pseudonym_key: str | bytes, progress: Progress | None):
        self.cfg = config
        self.key = pseudonym_key
        self.progress = progress or (lambda fraction, message: None)
        self.D = config.days
        self.day0 = _epoch_day(config.start)
        self.t0 = self.day0 * DAY
        self.t_end = (self.day0 + self.D) * DAY  # exclusive
        self.dates = [config.start + timedelta(days=i) for i in range(self.D)]
        # Month index of each window day, for the monthly accumulators behind payouts.
        months = np.array([(d.year - config.start.year) * 12 + d.month for d in self.dates])
        self.day_month = (months - months[0]).astype(np.int64)
        self.n_months = int(self.day_month[-1]) + 1
        self.revenue_id = 0
        self._countries()
        self._exchange_rates()

    # --- money -------------------------------------------------------------------------------
    def _exchange_rates(self) -> None:
        """Daily rates against USD: an Ornstein-Uhlenbeck walk of the log rate around its level."""
        rng = _rng(self.cfg.seed, "fx")
        n_days = self.D + _RATE_LEAD_DAYS
        levels = np.log([c[1] for c in _CURRENCIES])
        vol = np.array([c[2] for c in _CURRENCIES])
        log_rate = np.empty((len(_CURRENCIES), n_days))
        x = levels + rng.normal(0, 0.03, len(levels))
        for d in range(n_days):
            x = x + 0.01 * (levels - x) + vol * rng.standard_normal(len(levels))
            log_rate[:, d] = x
        rate = np.exp(log_rate)
        # Six significant digits, as rates are published.
        digits = 5 - np.floor(np.log10(rate))
        rate = np.round(rate * 10.0**digits) / 10.0**digits
        rate[_CURRENCY_CODES.index("USD")] = 1.0
        self.fx_rate = rate  # currency x day, day 0 = _RATE_LEAD_DAYS before the window
        self.country_currency = np.array(
            [_CURRENCY_CODES.index(_COUNTRY_CURRENCY.get(code, "USD")) for code, *_ in _COUNTRIES]
        )

    def _usd_cents(self, cents: np.ndarray, currency: np.ndarray, window_day: np.ndarray):
        """Amounts in the currencies' cents as US cents at their day's rate (floats)."""
        return cents * self.fx_rate[currency, np.asarray(window_day) + _RATE_LEAD_DAYS]

    def _fees(self, gross: np.ndarray, currency: np.ndarray) -> np.ndarray:
        return np.round(gross * 0.029).astype(np.int64) + _FIXED_FEE_CENTS[currency]

    def exchange_rates(self) -> pa.Table:
        """fact_exchange_rate: every currency but USD, every day from before the window."""
        others = np.array([i for i, c in enumerate(_CURRENCY_CODES) if c != "USD"])
        n_days = self.fx_rate.shape[1]
        day = np.tile(np.arange(n_days) + self.day0 - _RATE_LEAD_DAYS, len(others))
        cur = np.repeat(others, n_days)
        # Published in the afternoon (UTC) of the day they are for.
        return _table(
            "fact_exchange_rate",
            {
                "rate_date": _dates(day),
                "currency": _labels(_CURRENCY_CODES, cur),
                "rate_to_usd": pa.array(self.fx_rate[others].ravel(), pa.float64()),
                "updated_at": _ts(day * DAY + 16 * 3600),
            },
        )

    # --- calendar ------------------------------------------------------------------------------
    def _countries(self) -> None:
        regions = []
        for ci, (_code, weight, _hemisphere, regs) in enumerate(_COUNTRIES):
            for name, share, offset, rule in regs:
                regions.append((ci, name, weight * share, offset, _DST_RULES.index(rule)))
        self.region_country = np.array([r[0] for r in regions], dtype=np.int64)
        self.region_names = [r[1] for r in regions]
        self.region_weight = np.array([r[2] for r in regions])
        self.region_offset = np.array([r[3] for r in regions], dtype=np.int64)
        self.region_rule = np.array([r[4] for r in regions], dtype=np.int64)
        self.country_codes = [c[0] for c in _COUNTRIES]

        years = range(self.cfg.start.year, self.cfg.end.year + 1)
        dows = np.array([d.weekday() for d in self.dates])
        doy = np.array([d.timetuple().tm_yday for d in self.dates])
        n_c = len(_COUNTRIES)
        self.holiday = np.zeros((n_c, self.D), dtype=bool)
        weight = np.empty((n_c, self.D))
        for ci, (code, _w, hemisphere, _r) in enumerate(_COUNTRIES):
            try:
                cal = holidays.country_holidays(code, years=years)
            except NotImplementedError:  # pragma: no cover - every listed country is supported
                cal = {}
            self.holiday[ci] = [d in cal for d in self.dates]
            # Winter evenings at home: a seasonal swing that is opposite south of the equator.
            season = 1 + 0.08 * hemisphere * np.cos(2 * math.pi * (doy - 15) / 365.25)
            weight[ci] = (
                _WEEKDAY_FACTOR[dows] * season * np.where(self.holiday[ci], _HOLIDAY_FACTOR, 1.0)
            )
        self.day_weight = weight
        self.weekend_like = (dows >= 5)[None, :] | self.holiday  # country x day
        self.dst = np.array(
            [[_dst_active(rule, d) for d in self.dates] for rule in _DST_RULES], dtype=bool
        )

    # --- creators and titles -------------------------------------------------------------------
    def creators(self) -> pa.Table:
        rng = _rng(self.cfg.seed, "creators")
        n = self.cfg.n_creators
        kind = _choice(rng, (0.65, 0.2, 0.15), n)  # independent, studio, distributor
        kind[:3] = [1, 2, 0]  # every kind is present, whatever the size
        names = []
        studios = iter(_STUDIOS)
        distributors = iter(_DISTRIBUTORS)
        for i, k in enumerate(kind):
            if i == 3:
                names.append('Black & White "Noir" Films')
                continue
            if k == 1:
                name = next(studios, None) or f"Studio {i}"
            elif k == 2:
                name = next(distributors, None) or f"Distributor {i}"
            else:
                first = _FIRST_NAMES[rng.integers(len(_FIRST_NAMES))]
                last = _LAST_NAMES[rng.integers(len(_LAST_NAMES))]
                name = f"{first} {last} {('Films', 'Productions', 'Creative', 'Media')[i % 4]}"
            names.append(name)
        share = np.where(
            kind == 0,
            rng.uniform(0.6, 0.75, n),
            np.where(kind == 1, rng.uniform(0.45, 0.55, n), rng.uniform(0.3, 0.4, n)),
        )
        self.creator_kind = kind
        self.creator_share_bp = np.round(share * 10_000).astype(np.int64)
        country = _choice(rng, [c[1] for c in _COUNTRIES], n)
        self.creator_currency = self.country_currency[country]
        return _table(
            "dim_creator",
            {
                "creator_id": _int(np.arange(1, n + 1), np.int32),
                "name": pa.array(names, pa.string()),
                "kind": _labels(("independent", "studio", "distributor"), kind),
                "revenue_share": _decimal(self.creator_share_bp, 5, 4),
                "country": _labels(self.country_codes, country),
                "updated_at": _ts(np.full(n, self.t_end - 1)),
            },
        )

    def titles(self) -> pa.Table:
        rng = _rng(self.cfg.seed, "titles")
        T = self.cfg.n_titles
        n_live = max(3, T // 20)
        n_movies = (T - n_live) * 45 // 95
        n_eps = T - n_live - n_movies
        D = self.D
        rows: list[dict] = []

        def release_day() -> int:
            # A back catalog from before the window, then a steady flow of new releases; a few
            # are announced but not out yet (they count as available titles with no views).
            u = rng.random()
            if u < 0.4:
                return -int(rng.integers(1, 3650))
            if u < 0.98:
                return int(rng.integers(0, D))
            return D + int(rng.integers(1, 60))

        for _ in range(n_movies):
            rows.append(
                {
                    "kind": 0,
                    "name": f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
                    if rng.random() < 0.4
                    else f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
                    "series": None,
                    "season": None,
                    "episode": None,
                    "release": release_day(),
                    "runtime": int(np.clip(rng.normal(108, 20), 75, 185)),
                    "popularity": 1.0,
                }
            )
        made = 0
        while made < n_eps:
            series = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
            episode_runtime = int(rng.choice((22, 24, 30, 44, 48, 55)))
            seasons = int(rng.integers(1, 5))
            binge = rng.random() < 0.6
            first = release_day()
            for s in range(1, seasons + 1):
                season_start = first + (s - 1) * int(rng.integers(200, 420))
                for e in range(1, int(rng.integers(6, 11)) + 1):
                    if made >= n_eps:
                        break
                    rows.append(
                        {
                            "kind": 1,
                            "name": f"{series} S{s}E{e}: {rng.choice(_EPISODE_WORDS)}",
                            "series": series,
                            "season": s,
                            "episode": e,
                            "release": season_start + (0 if binge else 7 * (e - 1)),
                            "runtime": int(np.clip(episode_runtime + rng.integers(-3, 4), 18, 65)),
                            # Later episodes and seasons lose viewers along the way.
                            "popularity": 0.86 ** (e - 1) * 0.8 ** (s - 1),
                        }
                    )
                    made += 1
        for i in range(n_live):
            rows.append(
                {
                    "kind": 2,
                    "name": f"Live: {_LIVE_EVENTS[i % len(_LIVE_EVENTS)]} {self.cfg.start.year + i % 3}",
                    "series": None,
                    "season": None,
                    "episode": None,
                    "release": int(rng.integers(0, D)),
                    "runtime": int(rng.integers(90, 241)),
                    "popularity": 1.0,
                }
            )
        # Two movies and a live event carry the tricky names.
        for i, name in zip((0, 1, len(rows) - 1), _TRICKY_TITLES, strict=True):
            rows[i]["name"] = name

        kind = np.array([r["kind"] for r in rows], dtype=np.int64)
        n = len(rows)
        creator = self._assign_creators(rng, n)
        is_live = kind == 2
        genre = np.where(
            is_live,
            rng.integers(0, len(_GENRES_LIVE), n) + len(_GENRES_VOD),
            rng.integers(0, len(_GENRES_VOD), n),
        )
        all_genres = list(_GENRES_VOD) + list(_GENRES_LIVE)
        genres = []
        for g in genre:
            extra = rng.choice(len(_GENRES_VOD), size=int(rng.integers(0, 3)), replace=False)
            names = [all_genres[g]] + [
                _GENRES_VOD[x] for x in extra if _GENRES_VOD[x] != all_genres[g]
            ]
            genres.append("|".join(names))
        # Series share genre, language and maturity across their episodes.
        series_names = [r["series"] for r in rows]
        language = _choice(rng, _LANGUAGE_WEIGHTS, n)
        maturity_code = rng.integers(0, 5, n)
        first_of_series: dict[str, int] = {}
        for i, s in enumerate(series_names):
            if s is None:
                continue
            j = first_of_series.setdefault(s, i)
            genre[i], genres[i], language[i], maturity_code[i] = (
                genre[j],
                genres[j],
                language[j],
                maturity_code[j],
            )
            creator[i] = creator[j]
        maturity = [
            (_MATURITY_TV if k == 1 else _MATURITY_MOVIE)[m]
            for k, m in zip(kind, maturity_code, strict=True)
        ]
        release = np.array([r["release"] for r in rows], dtype=np.int64)
        runtime = np.array([r["runtime"] for r in rows], dtype=np.int64)

        # Zipf-like base popularity over a random ranking; series share one rank.
        rank_key = np.array(
            [zlib.crc32((r["series"] or f"#{i}").encode()) for i, r in enumerate(rows)]
        )
        _, group = np.unique(rank_key, return_inverse=True)
        order = rng.permutation(group.max() + 1)
        zipf = (order[group] + 1.0) ** -1.2
        quality = rng.lognormal(0, 0.25, n)
        ckind = self.creator_kind[creator]
        reach = np.where(ckind == 1, 1.6, np.where(ckind == 2, 1.2, 0.8))
        base = zipf * quality * reach * np.array([r["popularity"] for r in rows])
        # Series hold their audience over many episodes: scale episodes so that series take about
        # as much viewing as movies, as on real platforms, however many series the catalog has.
        movie_total = base[kind == 0].sum()
        episode_total = base[kind == 1].sum()
        if episode_total > 0:
            base = np.where(kind == 1, base * 0.9 * movie_total / episode_total, base)
        base = np.where(is_live, base * 4.0, base)

        budget_scale = np.where(ckind == 1, 2.5e7, np.where(ckind == 2, 8e6, 6e5))
        budget = np.round(
            budget_scale * rng.lognormal(0, 0.6, n) * np.where(kind == 1, 0.12, 1.0) * 100
        ).astype(np.int64)
        licensing = np.round(budget * np.where(ckind == 2, 0.35, np.where(ckind == 1, 0.2, 0.05)))
        is_ppv = is_live | ((kind == 0) & (release >= 0) & (rng.random(n) < 0.08))
        ppv_price = np.where(
            is_live, rng.choice([999, 1499, 1999, 2999], n), rng.choice([499, 599, 699], n)
        )

        self.T = n
        self.title_kind = kind
        self.title_release = release
        self.title_runtime = runtime
        self.title_creator = creator
        self.title_quality = quality
        self.title_base = base
        self.title_ppv = is_ppv
        self.title_ppv_price = ppv_price.astype(np.int64)  # US cents; local prices below
        level = np.array([c[1] for c in _CURRENCIES])
        unit = np.where(_WHOLE_UNITS, 100, 10)
        local = np.round(self.title_ppv_price[None, :] / level[:, None] / unit[:, None])
        self.title_ppv_local = (np.maximum(local, 1) * unit[:, None]).astype(np.int64)
        self._title_day_table()

        valid_series = np.array([s is not None for s in series_names])
        return _table(
            "dim_title",
            {
                "title_id": _int(np.arange(1, n + 1), np.int32),
                "name": pa.array([r["name"] for r in rows], pa.string()),
                "kind": _labels(_KINDS, kind),
                "series_name": pa.array(series_names, pa.string()),
                "season": _int(np.array([r["season"] or 0 for r in rows]), np.int16, valid_series),
                "episode": _int(
                    np.array([r["episode"] or 0 for r in rows]), np.int16, valid_series
                ),
                "genre": _labels(all_genres, genre),
                "genres": pa.array(genres, pa.string()),
                "release_date": _dates(self.day0 + release),
                "runtime_min": _int(runtime, np.int32),
                "language": _labels(_LANGUAGES, language),
                "maturity": pa.array(maturity, pa.string()),
                "creator_id": _int(creator + 1, np.int32),
                "licensing_cost": _money(licensing.astype(np.int64)),
                "budget": _money(budget),
                "updated_at": _ts(np.full(n, self.t_end - 1)),
            },
        )

    def _assign_creators(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # Studios and distributors supply many titles each, independents a few.
        w = np.where(self.creator_kind == 1, 8.0, np.where(self.creator_kind == 2, 5.0, 1.0))
        w = w * rng.lognormal(0, 0.5, len(w))
        return _choice(rng, w, n)

    def _title_day_table(self) -> None:
        """Per day, the cumulative popularity of titles released by then, as one flat array.

        Row d holds the normalised cumulative weights plus d, so one ``searchsorted`` of
        ``d + u`` picks a title for many views on different days at once.
        """
        cum = np.empty((self.D, self.T))
        live = (self.title_kind == 2)[None, :]
        # A block of days at a time keeps the temporaries small next to the table itself.
        for d0 in range(0, self.D, 64):
            days = np.arange(d0, min(d0 + 64, self.D))[:, None]
            age = (days - self.title_release[None, :]).astype(np.float64)
            released = age >= 0
            np.maximum(age, 0, out=age)
            decay = np.where(live, 0.02 + np.exp(-age / 1.5), 0.12 + 0.88 * np.exp(-age / 45.0))
            w = np.where(released, self.title_base[None, :] * decay, 0.0)
            block = np.cumsum(w, axis=1)
            block /= block[:, -1:]
            block += days
            cum[d0 : d0 + len(days)] = block
        self.title_cum = cum.ravel()

    # --- viewers and subscriptions -------------------------------------------------------------
    def viewers(self) -> pa.Table:
        cfg = self.cfg
        rng = _rng(cfg.seed, "viewers")
        n = cfg.viewers
        D = self.D
        pre = rng.random(n) < 0.3
        # Before the window: an established base; inside: growth (signups rise over time).
        signup_day = np.where(
            pre,
            -rng.integers(1, 3 * 365, n),
            np.minimum(np.floor(D * np.sqrt(rng.random(n))), D - 1).astype(np.int64),
        )
        signup_ts = self.t0 + signup_day * DAY + rng.integers(0, DAY, n)
        order = np.argsort(signup_ts, kind="stable")
        signup_ts = signup_ts[order]

        region = _choice(rng, self.region_weight, n)
        country = self.region_country[region]
        age = _choice(rng, _AGE_WEIGHTS, n)
        channel = _choice(rng, _CHANNEL_WEIGHTS, n)
        plan1 = _choice(rng, _PLAN_WEIGHTS, n)
        activity = rng.lognormal(0, 1.0, n)
        device = _choice(rng, _DEVICE_WEIGHTS, n)

        hazard = 0.042 * _PLAN_CHURN[plan1] * _CHANNEL_CHURN[channel] * activity**-0.3
        month = 30.44 * DAY
        life1 = np.maximum(rng.exponential(month / hazard), DAY).astype(np.int64)
        e1 = signup_ts + life1
        churned = e1 < self.t_end
        resub = churned & (rng.random(n) < 0.35)
        s2 = e1 + ((rng.exponential(75, n) + 7) * DAY).astype(np.int64)
        resub &= s2 < self.t_end
        plan2 = np.where(rng.random(n) < 0.6, plan1, _choice(rng, _PLAN_WEIGHTS, n))
        life2 = np.maximum(rng.exponential(month / (hazard * 1.2)), DAY).astype(np.int64)
        e2 = s2 + life2

        self.n_viewers = n
        self.v_country = country
        self.v_region = region
        self.v_device = device
        self.v_s1, self.v_e1 = signup_ts, np.minimum(e1, self.t_end)
        self.v_e1_open = ~churned
        self.v_has2 = resub
        self.v_s2 = np.where(resub, s2, self.t_end)
        self.v_e2 = np.where(resub, np.minimum(e2, self.t_end), self.t_end)
        self.v_e2_open = resub & (e2 >= self.t_end)
        self.v_plan1, self.v_plan2 = plan1, plan2
        self.v_activity = activity
        # Source ids are those of a fictional platform; only their keyed pseudonyms are stored.
        self.v_key = pseudonymise_many(
            self.key, (f"demo-{cfg.seed}-viewer-{i}" for i in range(n)), unique=True
        )
        self._viewer_day_tables()

        plan_now = np.where(resub, plan2, plan1)
        return _table(
            "dim_viewer",
            {
                "viewer_key": _int(self.v_key, np.int64),
                "country": _labels(self.country_codes, country),
                "region": _labels(self.region_names, region),
                "age_band": _labels(_AGE_BANDS, age),
                "signup_date": _dates(signup_ts // DAY),
                "plan": _labels(_PLANS, plan_now),
                "acquisition_channel": _labels(_CHANNELS, channel),
                "updated_at": _ts(np.maximum(signup_ts, np.where(resub, s2, signup_ts))),
            },
        )

    def _span_days(self, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last window day (local-day index) a span [s, e) covers."""
        return (s - self.t0) // DAY, (e - 1 - self.t0) // DAY

    def _viewer_day_tables(self) -> None:
        D = self.D
        self.s1d, self.e1d = self._span_days(self.v_s1, self.v_e1)
        s2d, e2d = self._span_days(self.v_s2, self.v_e2)
        self.s2d = np.where(self.v_has2, s2d, np.iinfo(np.int64).max)
        self.e2d = np.where(self.v_has2, e2d, np.iinfo(np.int64).min)
        last = np.where(self.v_has2, self.e2d, self.e1d)
        # Viewers who left before the window can never be drawn; give them no weight at all.
        act = np.where(last >= 0, self.v_activity, 0.0)
        self.cum_act = np.cumsum(act)
        self.prefix = np.searchsorted(self.s1d, np.arange(D), side="right")

        # Expected views per day: the activity of subscribed viewers, by country and day weight.
        n_c = len(_COUNTRIES)
        diff = np.zeros(n_c * (D + 1))
        for s, e, has in ((self.s1d, self.e1d, None), (self.s2d, self.e2d, self.v_has2)):
            sel = np.ones(len(s), bool) if has is None else has.copy()
            lo = np.clip(s, 0, D)
            hi = np.clip(e + 1, 0, D)
            sel &= hi > lo
            c = self.v_country[sel]
            diff += np.bincount(c * (D + 1) + lo[sel], act[sel], n_c * (D + 1))
            diff -= np.bincount(c * (D + 1) + hi[sel], act[sel], n_c * (D + 1))
        active = np.cumsum(diff.reshape(n_c, D + 1), axis=1)[:, :D]
        self.day_volume = np.maximum((active * self.day_weight).sum(axis=0), 0.0)
        self.day_weight_max = self.day_weight.max(axis=0)

    def subscriptions(self) -> pa.Table:
        n = self.n_viewers
        has2 = self.v_has2
        vid = np.concatenate([np.arange(n), np.flatnonzero(has2)])
        started = np.concatenate([self.v_s1, self.v_s2[has2]])
        ended = np.concatenate([self.v_e1, self.v_e2[has2]])
        is_open = np.concatenate([self.v_e1_open, self.v_e2_open[has2]])
        plan = np.concatenate([self.v_plan1, self.v_plan2[has2]])
        order = np.lexsort((vid, started))
        vid, started, ended, is_open, plan = (
            a[order] for a in (vid, started, ended, is_open, plan)
        )
        m = len(vid)
        self.sub_vid, self.sub_start, self.sub_end, self.sub_plan = vid, started, ended, plan
        self.sub_currency = self.country_currency[self.v_country[vid]]
        return _table(
            "fact_subscription",
            {
                "subscription_id": _int(np.arange(1, m + 1), np.int64),
                "viewer_key": _int(self.v_key[vid], np.int64),
                "plan": _labels(_PLANS, plan),
                "started_at": _ts(started),
                "ended_at": _ts(ended, ~is_open),
                "monthly_price": _money(_PRICE_CENTS[self.sub_currency, plan]),
                "currency": _labels(_CURRENCY_CODES, self.sub_currency),
                "updated_at": _ts(np.where(is_open, started, ended)),
            },
        )

    def subscription_charges(self, chunk: int = 50_000) -> Iterator[pa.Table]:
        """Monthly charges on each subscription's anniversary day, inside the window."""
        self.sub_net_month = np.zeros(self.n_months)  # US cents
        month_of_window_start = np.datetime64(self.cfg.start, "M")
        for lo in range(0, len(self.sub_vid), chunk):
            sl = slice(lo, lo + chunk)
            start = self.sub_start[sl]
            stop = self.sub_end[sl]  # charges strictly before the end (the window end if open)
            start_day = (start // DAY).astype("M8[D]")
            m0 = start_day.astype("M8[M]")
            dom = (start_day - m0.astype("M8[D]")).astype(np.int64)
            sod = start % DAY
            first_k = np.maximum((month_of_window_start - m0).astype(np.int64) - 1, 0)
            last_k = ((stop // DAY).astype("M8[D]").astype("M8[M]") - m0).astype(np.int64)
            count = np.maximum(last_k - first_k + 1, 0)
            row = np.repeat(np.arange(len(start)), count)
            k = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count) + first_k[row]
            month = m0[row] + k.astype("m8[M]")
            month_days = (
                (month + np.timedelta64(1, "M")).astype("M8[D]") - month.astype("M8[D]")
            ).astype(np.int64)
            charge_day = month.astype("M8[D]").astype(np.int64) + np.minimum(
                dom[row], month_days - 1
            )
            charge_ts = charge_day * DAY + sod[row]
            keep = (charge_ts >= start[row]) & (charge_ts < stop[row]) & (charge_ts >= self.t0)
            row, charge_ts = row[keep], charge_ts[keep]
            gi = lo + row
            currency = self.sub_currency[gi]
            gross = _PRICE_CENTS[currency, self.sub_plan[gi]]
            fees = self._fees(gross, currency)
            net = gross - fees
            day = (charge_ts - self.t0) // DAY
            self.sub_net_month += np.bincount(
                self.day_month[day], self._usd_cents(net, currency, day), self.n_months
            )
            m = len(row)
            ids = self._revenue_ids(m)
            yield _table(
                "fact_revenue",
                {
                    "revenue_id": _int(ids, np.int64),
                    "occurred_at": _ts(charge_ts),
                    "viewer_key": _int(self.v_key[self.sub_vid[gi]], np.int64),
                    "title_id": pa.nulls(m, pa.int32()),
                    "creator_id": pa.nulls(m, pa.int32()),
                    "stream": _const_text("subscription", m),
                    "gross": _money(gross),
                    "fees": _money(fees),
                    "net": _money(net),
                    "currency": _labels(_CURRENCY_CODES, currency),
                    "updated_at": _ts(charge_ts),
                },
            )

    def _revenue_ids(self, m: int) -> np.ndarray:
        ids = np.arange(self.revenue_id + 1, self.revenue_id + m + 1, dtype=np.int64)
        self.revenue_id += m
        return ids

    # --- views ---------------------------------------------------------------------------------
    def view_batches(self) -> Iterator[tuple[float, list[tuple[str, pa.Table]]]]:
        """Views in time order, batch by batch, each with its purchases and interactions."""
        cfg = self.cfg
        total = self.day_volume.sum()
        counts = (
            _rng(cfg.seed, "day-counts").multinomial(cfg.views, self.day_volume / total)
            if total > 0 and cfg.views
            else np.zeros(self.D, dtype=np.int64)
        )
        C = cfg.n_creators
        self.ad_impressions = np.zeros(self.D * self.T)
        self.watch_month_creator = np.zeros(self.n_months * C)
        self.direct_net_month_creator = np.zeros(self.n_months * C)  # US cents
        self.view_id = 0
        bounds = [0]
        acc = 0
        for d in range(self.D):
            acc += int(counts[d])
            if acc >= cfg.batch_rows:
                bounds.append(d + 1)
                acc = 0
        if bounds[-1] != self.D:
            bounds.append(self.D)
        done = 0
        for b, (d0, d1) in enumerate(itertools.pairwise(bounds)):
            days = np.repeat(np.arange(d0, d1), counts[d0:d1])
            tables = self._view_batch(_rng(cfg.seed, "views", b), days)
            done += len(days)
            yield (done / cfg.views if cfg.views else 1.0), tables

    def _pick_viewers(
        self, rng: np.random.Generator, days: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each view day, a viewer subscribed that day, in proportion to activity x day weight."""
        n = len(days)
        viewer = np.empty(n, dtype=np.int64)
        second = np.zeros(n, dtype=bool)
        pending = np.arange(n)
        for _ in range(10_000):
            if not len(pending):
                return viewer, second
            d = days[pending]
            top = self.cum_act[self.prefix[d] - 1]
            cand = np.searchsorted(self.cum_act, rng.random(len(d)) * top, side="right")
            in1 = (self.s1d[cand] <= d) & (d <= self.e1d[cand])
            in2 = (self.s2d[cand] <= d) & (d <= self.e2d[cand])
            accept = (
                rng.random(len(d)) * self.day_weight_max[d]
                < self.day_weight[self.v_country[cand], d]
            )
            ok = (in1 | in2) & accept
            viewer[pending[ok]] = cand[ok]
            second[pending[ok]] = ~in1[ok]
            pending = pending[~ok]
        raise RuntimeError("demo generator: could not place views on subscribed viewers")

    def _view_batch(self, rng: np.random.Generator, day: np.ndarray) -> list[tuple[str, pa.Table]]:
        n = len(day)
        if n == 0:
            return []
        viewer, second = self._pick_viewers(rng, day)
        title = (
            np.searchsorted(self.title_cum, day + rng.random(n) * (1 - 1e-9), side="right")
            - day * self.T
        )
        country = self.v_country[viewer]
        tz = (
            self.region_offset[self.v_region[viewer]]
            + 60 * self.dst[self.region_rule[self.v_region[viewer]], day]
        )
        weekend = self.weekend_like[country, day]
        hour = np.where(
            weekend,
            _choice(rng, _HOURS_WEEKEND, n),
            _choice(rng, _HOURS_WEEKDAY, n),
        )
        local = self.t0 + day * DAY + hour * 3600 + rng.integers(0, 3600, n)
        ts = local - tz * 60
        # Keep the local hour but stay inside the subscription, after release, inside the window.
        span_s = np.where(second, self.v_s2[viewer], self.v_s1[viewer])
        span_e = np.where(second, self.v_e2[viewer], self.v_e1[viewer])
        lo = np.maximum(np.maximum(span_s, (self.day0 + self.title_release[title]) * DAY), self.t0)
        hi = np.minimum(span_e, self.t_end) - 1
        ts = np.where(ts < lo, ts + DAY, ts)
        ts = np.where(ts > hi, ts - DAY, ts)
        ts = np.clip(ts, lo, hi)

        order = np.argsort(ts, kind="stable")
        viewer, second, title, tz, ts = (a[order] for a in (viewer, second, title, tz, ts))
        country = country[order]

        device = np.where(
            rng.random(n) < 0.7, self.v_device[viewer], _choice(rng, _DEVICE_WEIGHTS, n)
        )
        runtime_s = self.title_runtime[title] * 60
        p_complete = np.clip(
            (0.93 - 0.0042 * self.title_runtime[title])
            * self.title_quality[title] ** 0.5
            * _DEVICE_COMPLETION[device],
            0.05,
            0.95,
        )
        complete = rng.random(n) < p_complete
        watch = np.where(
            complete,
            np.ceil(runtime_s * (0.9 + 0.1 * rng.random(n))),
            np.floor(runtime_s * 0.9 * rng.beta(0.8, 1.5, n)),
        ).astype(np.int64)
        watch = np.clip(watch, 5, runtime_s)
        completed = watch * 10 >= runtime_s * 9

        ids = np.arange(self.view_id + 1, self.view_id + n + 1, dtype=np.int64)
        self.view_id += n
        utc_day = (ts - self.t0) // DAY
        creator = self.title_creator[title]
        C = self.cfg.n_creators
        self.watch_month_creator += np.bincount(
            self.day_month[utc_day] * C + creator, watch, self.n_months * C
        )
        plan = np.where(second, self.v_plan2[viewer], self.v_plan1[viewer])
        ad = plan == _AD_PLAN
        # A pre-roll, then about eight ads per hour watched.
        self.ad_impressions += np.bincount(
            utc_day[ad] * self.T + title[ad], 1 + watch[ad] // 450, self.D * self.T
        )

        out = [
            (
                "fact_view",
                _table(
                    "fact_view",
                    {
                        "view_id": _int(ids, np.int64),
                        "viewer_key": _int(self.v_key[viewer], np.int64),
                        "title_id": _int(title + 1, np.int32),
                        "started_at": _ts(ts),
                        "watch_seconds": _int(watch, np.int32),
                        "device": _labels(_DEVICES, device),
                        "country": _labels(self.country_codes, country),
                        "tz_offset_min": _int(tz, np.int16),
                        "completed": pa.array(completed),
                        "updated_at": _ts(ts + watch),
                    },
                ),
            )
        ]
        out += self._purchases(rng, viewer, title, ts, lo[order])
        out += self._interactions(rng, viewer, title, ts, watch)
        return out

    def _purchases(
        self,
        rng: np.random.Generator,
        viewer: np.ndarray,
        title: np.ndarray,
        ts: np.ndarray,
        lo: np.ndarray,
    ) -> list[tuple[str, pa.Table]]:
        """One pay-per-view purchase per viewer and PPV title in the batch, just before the view."""
        ppv = np.flatnonzero(self.title_ppv[title])
        if not len(ppv):
            return []
        pair = viewer[ppv] * self.T + title[ppv]
        _, first = np.unique(pair, return_index=True)
        first = np.sort(ppv[first])  # rows are in time order, so the first is the earliest
        m = len(first)
        t = title[first]
        at = np.maximum(ts[first] - rng.integers(30, 900, m), lo[first])
        currency = self.country_currency[self.v_country[viewer[first]]]
        gross = self.title_ppv_local[currency, t]
        fees = self._fees(gross, currency)
        net = gross - fees
        creator = self.title_creator[t]
        C = self.cfg.n_creators
        day = (at - self.t0) // DAY
        self.direct_net_month_creator += np.bincount(
            self.day_month[day] * C + creator,
            self._usd_cents(net, currency, day),
            self.n_months * C,
        )
        return [
            (
                "fact_revenue",
                _table(
                    "fact_revenue",
                    {
                        "revenue_id": _int(self._revenue_ids(m), np.int64),
                        "occurred_at": _ts(at),
                        "viewer_key": _int(self.v_key[viewer[first]], np.int64),
                        "title_id": _int(t + 1, np.int32),
                        "creator_id": _int(creator + 1, np.int32),
                        "stream": _const_text("ppv", m),
                        "gross": _money(gross),
                        "fees": _money(fees),
                        "net": _money(net),
                        "currency": _labels(_CURRENCY_CODES, currency),
                        "updated_at": _ts(at),
                    },
                ),
            )
        ]

    def _interactions(
        self,
        rng: np.random.Generator,
        viewer: np.ndarray,
        title: np.ndarray,
        ts: np.ndarray,
        watch: np.ndarray,
    ) -> list[tuple[str, pa.Table]]:
        """Polls, Q&A and reactions: rare during on-demand viewing, common during live events."""
        live = self.title_kind[title] == 2
        count = rng.poisson(np.where(live, 0.6, 0.03))
        row = np.repeat(np.arange(len(title)), count)
        m = len(row)
        if not m:
            return []
        live_row = live[row]
        kind = np.where(
            live_row,
            _choice(rng, (0.35, 0.25, 0.4), m),
            _choice(rng, (0.05, 0.15, 0.8), m),
        )
        t = title[row]
        mood = np.clip((self.title_quality[t] - 0.95) * 1.5 + 0.15, -0.8, 0.8)
        sentiment = np.round(np.clip(mood + rng.normal(0, 0.45, m), -1, 1), 3)
        has_sentiment = kind != 0  # a poll answer is a choice, not a feeling
        at = ts[row] + (rng.random(m) * watch[row]).astype(np.int64)
        order = np.argsort(at, kind="stable")
        at, row, kind, t, sentiment, has_sentiment = (
            a[order] for a in (at, row, kind, t, sentiment, has_sentiment)
        )
        self.interaction_id = getattr(self, "interaction_id", 0)
        ids = np.arange(self.interaction_id + 1, self.interaction_id + m + 1, dtype=np.int64)
        self.interaction_id += m
        return [
            (
                "fact_interaction",
                _table(
                    "fact_interaction",
                    {
                        "interaction_id": _int(ids, np.int64),
                        "occurred_at": _ts(at),
                        "viewer_key": _int(self.v_key[viewer[row]], np.int64),
                        "title_id": _int(t + 1, np.int32),
                        "kind": _labels(("poll", "qa", "reaction"), kind),
                        "sentiment": pa.array(sentiment, mask=~has_sentiment),
                        "updated_at": _ts(at),
                    },
                ),
            )
        ]

    # --- ads and payouts -----------------------------------------------------------------------
    def ads(self, chunk: int = 500_000) -> Iterator[tuple[str, pa.Table]]:
        """Ad delivery per day, title and campaign; ad revenue per day and title."""
        rng = _rng(self.cfg.seed, "ads")
        D = self.D
        # Three ad slots, each running a sequence of campaigns of one to two months.
        n_slots = 3
        slot_campaign = np.empty((n_slots, D), dtype=np.int64)
        names: list[str] = []
        cpm: list[int] = []
        ctr: list[float] = []
        for s in range(n_slots):
            d = -int(rng.integers(0, 30))
            while d < D:
                length = int(rng.integers(30, 62))
                when = self.dates[max(d, 0)]
                brand = _CAMPAIGN_BRANDS[int(rng.integers(len(_CAMPAIGN_BRANDS)))]
                theme = _CAMPAIGN_THEMES[int(rng.integers(len(_CAMPAIGN_THEMES)))]
                names.append(f"{brand} {theme} {when.year} #{len(names) + 1}")
                # Cents per thousand impressions, at connected-TV rates.
                cpm.append(int(rng.integers(1500, 4500)))
                ctr.append(float(rng.uniform(0.003, 0.02)))
                slot_campaign[s, max(d, 0) : min(d + length, D)] = len(names) - 1
                d += length
        cpm_a = np.array(cpm, dtype=np.int64)
        ctr_a = np.array(ctr)
        slot_share = np.array([0.5, 0.3, 0.2])
        cells = np.flatnonzero(self.ad_impressions)
        C = self.cfg.n_creators
        for lo in range(0, len(cells), chunk):
            cell = cells[lo : lo + chunk]
            day, title = cell // self.T, cell % self.T
            imp = self.ad_impressions[cell].astype(np.int64)
            remaining = imp.copy()
            parts = []
            for s in range(n_slots):
                if s == n_slots - 1:
                    k = remaining
                else:
                    k = rng.binomial(remaining, slot_share[s] / slot_share[s:].sum())
                remaining = remaining - k
                parts.append(k)
            k = np.stack(parts)  # slot x cell
            sel_slot, sel_cell = np.nonzero(k)
            # Rows ordered by day, then title, then slot.
            order = np.lexsort((sel_slot, sel_cell))
            sel_slot, sel_cell = sel_slot[order], sel_cell[order]
            camp = slot_campaign[sel_slot, day[sel_cell]]
            impressions = k[sel_slot, sel_cell]
            clicks = rng.binomial(impressions, ctr_a[camp])
            revenue = (impressions * cpm_a[camp] + 500) // 1000
            ad_day = self.day0 + day[sel_cell]
            yield (
                "fact_ad",
                _table(
                    "fact_ad",
                    {
                        "ad_date": _dates(ad_day),
                        "title_id": _int(title[sel_cell] + 1, np.int32),
                        "campaign": _labels(names, camp),
                        "impressions": _int(impressions, np.int64),
                        "clicks": _int(clicks, np.int64),
                        "ad_revenue": _money(revenue),
                        "updated_at": _ts((ad_day + 1) * DAY - 1),
                    },
                ),
            )
            gross = np.bincount(sel_cell, revenue, len(cell)).astype(np.int64)
            has = gross > 0
            g = gross[has]
            fees = np.round(g * 0.3).astype(np.int64)  # the ad-tech take
            net = g - fees
            t = title[has]
            at = (self.day0 + day[has]) * DAY + DAY - 1
            creator = self.title_creator[t]
            self.direct_net_month_creator += np.bincount(
                self.day_month[day[has]] * C + creator, net, self.n_months * C
            )
            r = len(g)
            yield (
                "fact_revenue",
                _table(
                    "fact_revenue",
                    {
                        "revenue_id": _int(self._revenue_ids(r), np.int64),
                        "occurred_at": _ts(at),
                        "viewer_key": pa.nulls(r, pa.int64()),
                        "title_id": _int(t + 1, np.int32),
                        "creator_id": _int(creator + 1, np.int32),
                        "stream": _const_text("ad", r),
                        "gross": _money(g),
                        "fees": _money(fees),
                        "net": _money(net),
                        "currency": _const_text("USD", r),
                        "updated_at": _ts(at),
                    },
                ),
            )

    def payouts(self) -> pa.Table:
        """Monthly creator earnings; paid on the 15th of the next month, the last one estimated."""
        rng = _rng(self.cfg.seed, "payouts")
        C = self.cfg.n_creators
        M = self.n_months
        watch = self.watch_month_creator.reshape(M, C)
        month_watch = watch.sum(axis=1, keepdims=True)
        attributed = np.divide(
            self.sub_net_month[:, None] * watch,
            month_watch,
            out=np.zeros_like(watch),
            where=month_watch > 0,
        )
        earnings = (attributed + self.direct_net_month_creator.reshape(M, C)) * (
            self.creator_share_bp[None, :] / 10_000
        )
        # In US cents; paid in the creator's currency at the rate of the month's last day.
        last_day = np.searchsorted(self.day_month, np.arange(M), side="right") - 1
        currency = np.broadcast_to(self.creator_currency[None, :], (M, C))
        local = earnings / self.fx_rate[currency, (last_day + _RATE_LEAD_DAYS)[:, None]]
        unit = np.where(_WHOLE_UNITS[currency], 100, 1)
        cents = (np.round(local / unit) * unit).astype(np.int64)
        month_idx, creator = np.nonzero(cents > 0)
        amount = cents[month_idx, creator]
        first_month = np.datetime64(self.cfg.start, "M")
        period = (first_month + month_idx.astype("m8[M]")).astype("M8[D]").astype(np.int64)
        payday = (first_month + (month_idx + 1).astype("m8[M]")).astype("M8[D]").astype(
            np.int64
        ) + 14
        end_day = _epoch_day(self.cfg.end)
        last = month_idx == M - 1
        due = payday <= end_day
        held = ~last & (rng.random(len(amount)) < 0.03)
        status = np.where(last, 0, np.where(held, 2, np.where(due, 3, 1)))
        paid = status == 3
        paid_at = payday * DAY + 10 * 3600
        m = len(amount)
        updated = np.where(paid, paid_at, np.minimum(payday * DAY, self.t_end - 1))
        return _table(
            "fact_payout",
            {
                "payout_id": _int(np.arange(1, m + 1), np.int64),
                "creator_id": _int(creator + 1, np.int32),
                "period": _dates(period),
                "amount": _money(amount),
                "currency": _labels(_CURRENCY_CODES, self.creator_currency[creator]),
                "status": _labels(("estimated", "finalised", "held", "paid"), status),
                "paid_at": _ts(paid_at, paid),
                "updated_at": _ts(updated),
            },
        )


def generate(
    config: DemoConfig, pseudonym_key: str | bytes, progress: Progress | None = None
) -> Iterator[tuple[str, pa.Table]]:
    """The demo platform as ``(table name, batch)`` pairs, every table of ``data.schema``.

    Batches of one table may come in several pieces (fact tables), each with exactly the
    schema's columns in order (see ``arrow_schema``). Views come in time order, at most about
    ``config.batch_rows`` per batch, so memory stays bounded whatever the size. ``progress``
    is called with a fraction in [0, 1] and a short message.
    """
    g = _Generator(config, pseudonym_key, progress)
    report = g.progress
    report(0.0, "catalog")
    yield "dim_creator", g.creators()
    yield "dim_title", g.titles()
    report(0.02, "viewers")
    yield "dim_viewer", g.viewers()
    yield "fact_subscription", g.subscriptions()
    report(0.05, "subscription charges")
    for batch in g.subscription_charges():
        yield "fact_revenue", batch
    report(0.1, "views")
    for fraction, tables in g.view_batches():
        yield from tables
        report(0.1 + 0.82 * fraction, f"views {g.view_id:,}")
    report(0.93, "ads")
    yield from g.ads()
    report(0.98, "payouts")
    yield "fact_payout", g.payouts()
    yield "fact_exchange_rate", g.exchange_rates()
    report(1.0, "generated")


def _prefetched(config: DemoConfig, pseudonym_key: str | bytes, depth: int = 2) -> Iterator[tuple]:
    """``generate`` run one step ahead in a thread, so numpy generates while DuckDB inserts.

    Yields ``("batch", name, table)`` and ``("progress", fraction, message)`` in generation
    order, so the output is the same as without the thread; progress is reported from the
    caller's thread (Streamlit elements may only be updated from the script's own thread).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return

    def produce() -> None:
        try:
            for name, table in generate(
                config, pseudonym_key, lambda f, msg: put(("progress", f, msg))
            ):
                put(("batch", name, table))
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))
        put(done)

    worker = threading.Thread(target=produce, name="demo-generator", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not done:
            if item[0] == "error":
                raise item[1]
            yield item
    finally:
        stop.set()
        worker.join()


def build_demo_extract(
    store: ExtractStore,
    config: DemoConfig,
    pseudonym_key: str | bytes,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Generate the demo platform into a new encrypted extract and swap it in.

    Returns ``{"rows": {table: count}, "seconds": total, "insert_seconds": time spent in
    DuckDB inserts}``. The extract's meta records source=demo, the configuration and the
    data window. Derived tables are built before the swap (``data.extract.derived.build_derived``).
    """
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    rows = {t.name: 0 for t in schema.TABLES}
    insert_seconds = 0.0
    with store.build() as con:
        for item in _prefetched(config, pseudonym_key):
            if item[0] == "progress":
                report(0.7 * item[1], item[2])
                continue
            _, name, table = item
            target = schema.TABLES_BY_NAME[name].name  # only schema names reach the SQL text
            t = time.perf_counter()
            con.register("_demo_batch", table)
            try:
                con.execute(f"INSERT INTO {target} SELECT * FROM _demo_batch")
            finally:
                con.unregister("_demo_batch")
            insert_seconds += time.perf_counter() - t
            rows[name] += table.num_rows
        write_meta(
            con,
            {
                "source": "demo",
                "seed": config.seed,
                "viewers": config.viewers,
                "views": config.views,
                "end": config.end.isoformat(),
                "data_start": config.start.isoformat(),
                "data_end": config.end.isoformat(),
                # The extract's clock (what the plausibility rules judge "the future" by): the
                # end of the last day with data.
                "as_of": datetime.combine(config.end, datetime.max.time())
                .replace(microsecond=0)
                .isoformat(),
                "demo_format": DEMO_FORMAT,
                "built_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            },
        )
        report(0.7, "derived tables")
        build_derived(con)
        report(0.95, "writing the encrypted extract")
    report(1.0, "done")
    return {
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
        "insert_seconds": round(insert_seconds, 3),
    }


def demo_outdated(store: ExtractStore) -> bool:
    """Whether the live extract is a demo extract of an older format (built by an earlier
    release: its tables are not what this release's queries read), so it must be built again."""
    if not store.exists():
        return False
    meta = store.read_meta()
    return meta.get("source") == "demo" and meta.get("demo_format") != DEMO_FORMAT


def ensure_demo_extract(
    settings: Settings, progress: Progress | None = None, *, replace_outdated: bool = False
) -> bool:
    """In demo mode, build the default demo extract if there is none (or, with
    ``replace_outdated``, if the live one is a demo extract of an older format); True if it
    built one.

    Safe when several processes start at once: they serialise on a lock file in the data
    folder, and whoever comes second finds the extract already there. With a warehouse
    configured it does nothing (the sync builds the extract).
    """
    if not settings.demo_mode:
        return False
    if settings.extract_path.exists() and not replace_outdated:
        return False
    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The lock is taken before the keys are resolved: on a first start the keys are generated
    # too, and the second process must find them as well as the extract complete.
    with open(data_dir / ".demo-build.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            store = store_from_settings(settings)
            if store.exists() and not (replace_outdated and demo_outdated(store)):
                return False
            config = DemoConfig(
                viewers=int(settings.demo_viewers),
                views=int(settings.demo_views),
                seed=int(settings.demo_seed),
            )
            build_demo_extract(store, config, settings.secret("pseudonym_key"), progress)
            return True
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
