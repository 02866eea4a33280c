"""Audience segments (data/queries/segments.py) against an independent pandas filter.

The reference below reads the base tables with pandas (the plausibility rules from
metrics_reference.Reference, which restates them without importing data/) and filters viewers
itself, condition by condition, so a mistake in the SQL compiler, a window bound or a join shows
up as a different set of viewer keys.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data.queries import segments as S
from data.queries.filters import Scope
from data.queries.segments import (
    CONDITION_TYPES,
    SegmentDefinitionError,
    compile_segment,
    describe,
    parse_definition,
    resolve_window,
    segment_funnel,
    segment_members,
    segment_overlap,
    segment_profile,
    segment_size,
)
from tests.unit.data.queries.metrics_reference import Reference

ALL = Scope.everything()
LAST_30 = {"last_days": 30}
RANGE = {"start": "2026-03-01", "end": "2026-05-31"}


# --- the independent reference ------------------------------------------------------------------
class SegmentReference:
    """Viewers matching a definition, worked out in pandas from the base tables."""

    def __init__(self, cursor):
        ref = Reference.load(cursor)
        self.viewers = cursor.execute("SELECT * FROM dim_viewer").df().set_index("viewer_key")
        self.keys = self.viewers.index
        self.views = ref.views
        self.subs = ref.subs.copy()
        self.subs["start_day"] = self.subs["started_at"].dt.normalize()
        self.subs["end_day"] = self.subs["ended_at"].dt.normalize()
        self.revenue = ref.revenue
        inter = cursor.execute("SELECT * FROM fact_interaction").df()
        inter["day"] = inter["occurred_at"].dt.normalize()
        self.interactions = inter
        self.last_day = self.views["day"].max().date()

    def window(self, doc: dict) -> tuple[pd.Timestamp, pd.Timestamp]:
        w = doc["window"]
        if "last_days" in w:
            end = self.last_day
            return pd.Timestamp(end - timedelta(days=w["last_days"] - 1)), pd.Timestamp(end)
        return pd.Timestamp(w["start"]), pd.Timestamp(w["end"])

    def _in(self, frame: pd.DataFrame, day: str, a, b) -> pd.DataFrame:
        return frame[(frame[day] >= a) & (frame[day] <= b)]

    def _per_viewer(self, values: pd.Series) -> pd.Series:
        return values.reindex(self.keys, fill_value=0)

    def measure(self, c: dict, a, b) -> pd.Series:
        t = c["type"]
        if t in ("watch_hours", "sessions", "distinct_titles", "completed", "active_days"):
            v = self._in(self.views, "day", a, b)
            for key in ("genre", "kind", "title_id", "creator_id"):
                if key in c:
                    v = v[v[key] == c[key]]
            g = v.groupby("viewer_key")
            if t == "watch_hours":
                out = g["watch_seconds"].sum() / 3600.0
            elif t == "sessions":
                out = g.size()
            elif t == "distinct_titles":
                out = g["title_id"].nunique()
            elif t == "completed":
                out = g["completed"].sum()
            else:
                out = g["day"].nunique()
            return self._per_viewer(out)
        if t == "ppv_purchases":
            r = self._in(self.revenue, "day", a, b)
            return self._per_viewer(r[r["stream"] == "ppv"].groupby("viewer_key").size())
        assert t == "interactions"
        i = self._in(self.interactions, "day", a, b)
        if "kind" in c:
            i = i[i["kind"] == c["kind"]]
        return self._per_viewer(i.groupby("viewer_key").size())

    def condition(self, c: dict, a, b) -> pd.Series:
        t = c["type"]
        keys = self.keys
        if t in ("country", "region", "age_band", "plan", "acquisition_channel"):
            hit = self.viewers[t].isin(c["any_of"])
        elif t == "signup_date":
            signup = pd.to_datetime(self.viewers["signup_date"])
            hit = pd.Series(True, index=keys)
            if "after" in c:
                hit &= signup >= pd.Timestamp(c["after"])
            if "before" in c:
                hit &= signup <= pd.Timestamp(c["before"])
        elif t == "device":
            v = self._in(self.views, "day", a, b)
            hit = pd.Series(keys.isin(v.loc[v["device"].isin(c["any_of"]), "viewer_key"]), keys)
        elif t in ("subscribed", "resubscribed"):
            s = self._in(self.subs, "start_day", a, b)
            if t == "resubscribed":
                s = s[~s["is_first"]]
            hit = pd.Series(keys.isin(s["viewer_key"]), index=keys)
        elif t == "churned":
            s = self.subs
            ended = s[(s["end_day"] >= a) & (s["end_day"] <= b)]["viewer_key"]
            live = s[(s["start_day"] <= b) & (s["end_day"].isna() | (s["end_day"] > b))]
            hit = pd.Series(keys.isin(ended) & ~keys.isin(live["viewer_key"]), index=keys)
        else:
            m = self.measure(c, a, b)
            hit = pd.Series(True, index=keys)
            if "min" in c:
                hit &= m >= c["min"]
            if "max" in c:
                hit &= m <= c["max"]
        hit = hit.fillna(False).astype(bool)
        return ~hit if c.get("negate") else hit

    def node(self, n: dict, a, b) -> pd.Series:
        if "type" in n:
            return self.condition(n, a, b)
        parts = [self.node(i, a, b) for i in n["items"]]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if n["op"] == "and" else (out | p)
        return ~out if n.get("negate") else out

    def members(self, doc: dict) -> set[int]:
        a, b = self.window(doc)
        hit = self.node(doc["match"], a, b)
        return {int(k) for k in hit.index[hit.to_numpy()]}

    def active(self, doc: dict) -> set[int]:
        a, b = self.window(doc)
        v = self._in(self.views, "day", a, b)
        return {int(k) for k in set(v["viewer_key"]) & set(self.keys)}


@pytest.fixture(scope="module")
def cursor(demo_store):
    return demo_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor) -> SegmentReference:
    return SegmentReference(cursor)


def doc_of(*items: dict, op: str = "and", window: dict | None = None, negate: bool = False):
    match = {"op": op, "items": list(items)}
    if negate:
        match["negate"] = True
    return {"version": 1, "window": window or LAST_30, "match": match}


def keys_of(cursor, doc: dict) -> set[int]:
    frame = segment_members(cursor, parse_definition(doc), ALL)
    return set(frame["viewer_key"].tolist())


# --- every condition type against the reference ------------------------------------------------
CONDITIONS: list[dict] = [
    {"type": "country", "any_of": ["US", "GB"]},
    {"type": "region", "any_of": ["Bavaria", "São Paulo", "Île-de-France"]},
    {"type": "age_band", "any_of": ["18-24"]},
    {"type": "plan", "any_of": ["premium", "basic"]},
    {"type": "acquisition_channel", "any_of": ["search"]},
    {"type": "signup_date", "after": "2025-06-01"},
    {"type": "signup_date", "before": "2023-01-31"},
    {"type": "signup_date", "after": "2024-01-01", "before": "2024-12-31"},
    {"type": "watch_hours", "min": 2},
    {"type": "watch_hours", "max": 0.5},
    {"type": "watch_hours", "min": 0.25, "genre": "Horror"},
    {"type": "watch_hours", "min": 0.1, "kind": "episode"},
    {"type": "watch_hours", "min": 0.01, "creator_id": 3},
    {"type": "sessions", "min": 3},
    {"type": "sessions", "min": 1, "max": 2, "kind": "movie"},
    {"type": "sessions", "min": 1, "genre": "Thriller"},
    {"type": "distinct_titles", "min": 3},
    {"type": "distinct_titles", "min": 1, "genre": "Comedy"},
    {"type": "distinct_titles", "min": 2, "kind": "episode"},
    {"type": "distinct_titles", "min": 1, "creator_id": 5},
    {"type": "completed", "min": 1},
    {"type": "completed", "min": 1, "kind": "movie"},
    {"type": "active_days", "min": 4},
    {"type": "active_days", "max": 1},
    {"type": "ppv_purchases", "min": 1},
    {"type": "interactions", "min": 1},
    {"type": "interactions", "min": 1, "kind": "reaction"},
    {"type": "interactions", "min": 1, "kind": "poll"},
    {"type": "device", "any_of": ["tv"]},
    {"type": "device", "any_of": ["tablet", "console"]},
    {"type": "subscribed"},
    {"type": "churned"},
    {"type": "resubscribed"},
]


def _title_and_creator(cursor) -> tuple[int, int]:
    title, creator = cursor.execute(
        "SELECT title_id, creator_id FROM dv_view WHERE day >= DATE '2026-03-01' "
        "GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT 1"
    ).fetchone()
    return int(title), int(creator)


def test_every_type_is_covered():
    assert {c["type"] for c in CONDITIONS} == set(CONDITION_TYPES)


@pytest.mark.parametrize("window", [LAST_30, RANGE], ids=["last_30", "range"])
def test_each_condition_and_its_negation_match_the_reference(cursor, ref, window):
    title, creator = _title_and_creator(cursor)
    extra = [
        {"type": "watch_hours", "min": 0.1, "title_id": title},
        {"type": "completed", "min": 1, "creator_id": creator},
        {"type": "sessions", "min": 1, "title_id": title},
    ]
    all_keys = set(ref.keys.tolist())
    nonempty = 0
    for cond in CONDITIONS + extra:
        for negate in (False, True):
            c = {**cond, "negate": negate}
            doc = doc_of(c, window=window)
            expected = ref.members(doc)
            assert keys_of(cursor, doc) == expected, (c, window)
            if not negate:
                nonempty += bool(expected)
                # A negated condition is the complement in the population.
                assert ref.members(doc_of({**cond, "negate": True}, window=window)) == (
                    all_keys - expected
                )
    # The cases are not vacuous: almost every condition selects someone.
    assert nonempty >= len(CONDITIONS) + len(extra) - 4


def test_nested_groups_with_negation(cursor, ref):
    doc = doc_of(
        {"type": "device", "any_of": ["tv", "mobile"]},
        {
            "op": "or",
            "items": [
                {"type": "watch_hours", "min": 1, "genre": "Horror"},
                {
                    "op": "and",
                    "negate": True,
                    "items": [
                        {"type": "plan", "any_of": ["premium"]},
                        {"type": "sessions", "max": 3, "negate": True},
                    ],
                },
                {"type": "churned"},
            ],
        },
        {"type": "country", "any_of": ["US"], "negate": True},
    )
    expected = ref.members(doc)
    assert expected
    assert keys_of(cursor, doc) == expected
    assert segment_size(cursor, parse_definition(doc), ALL)["viewers"] == len(expected)
    # A negated top-level OR group (nobody who did any of these), over a date range.
    doc = doc_of(
        {"type": "subscribed"},
        {"type": "interactions", "min": 1},
        {"op": "and", "items": [{"type": "ppv_purchases", "min": 1}]},
        op="or",
        negate=True,
        window=RANGE,
    )
    assert keys_of(cursor, doc) == ref.members(doc)


def test_inactive_viewers_count_as_zero(cursor, ref):
    doc = doc_of({"type": "watch_hours", "max": 0})
    found = keys_of(cursor, doc)
    inactive = set(ref.keys.tolist()) - ref.active(doc)
    assert found == inactive == ref.members(doc)
    size = segment_size(cursor, parse_definition(doc), ALL)
    assert size["active_in_segment"] == 0
    assert size["viewers"] == size["all_viewers"] - size["active_viewers"]


def test_empty_results(cursor):
    for cond in (
        {"type": "watch_hours", "min": 100000},
        {"type": "country", "any_of": ["ZZ"]},
        {"type": "sessions", "min": 1, "genre": "No such genre"},
    ):
        defn = parse_definition(doc_of(cond))
        size = segment_size(cursor, defn, ALL)
        assert size["viewers"] == 0 and size["share_of_all"] == 0.0
        assert segment_members(cursor, defn, ALL).empty
        profile = segment_profile(cursor, defn, ALL)
        assert (profile["country"]["segment_viewers"] == 0).all()
        assert profile["genre"].empty


def test_boundaries_are_inclusive(cursor, ref):
    doc = doc_of({"type": "sessions", "min": 1})
    a, b = ref.window(doc)
    counts = ref.measure({"type": "sessions"}, a, b)
    n = int(counts.max())
    exactly = set(counts.index[counts == n].tolist())
    assert exactly
    assert exactly <= keys_of(cursor, doc_of({"type": "sessions", "min": n}))
    assert exactly <= keys_of(cursor, doc_of({"type": "sessions", "max": n}))
    assert keys_of(cursor, doc_of({"type": "sessions", "min": n, "max": n})) == exactly
    assert not exactly & keys_of(cursor, doc_of({"type": "sessions", "min": n + 1}))
    assert not exactly & keys_of(cursor, doc_of({"type": "sessions", "max": n - 1}))
    # Hours: a viewer's exact hours (seconds / 3600, as a float) is within min and max.
    hours = ref.measure({"type": "watch_hours"}, a, b)
    key = int(hours[hours > 0].sort_values().index[len(hours[hours > 0]) // 2])
    h = float(hours[key])
    assert key in keys_of(cursor, doc_of({"type": "watch_hours", "min": h, "max": h}))
    assert key not in keys_of(cursor, doc_of({"type": "watch_hours", "min": h + 1e-6}))
    # Signup dates: both ends inclusive.
    day = ref.viewers.loc[key, "signup_date"]
    day = pd.Timestamp(day).date().isoformat()
    both = keys_of(cursor, doc_of({"type": "signup_date", "after": day, "before": day}))
    assert key in both


def test_window_days_are_inclusive(cursor, ref):
    # A one-day window on the last day holds exactly that day's viewers.
    last = ref.last_day
    doc = doc_of({"type": "sessions", "min": 1}, window={"last_days": 1})
    day_viewers = set(ref.views.loc[ref.views["day"] == pd.Timestamp(last), "viewer_key"])
    assert keys_of(cursor, doc) == day_viewers & set(ref.keys.tolist())
    iso = last.isoformat()
    same = doc_of({"type": "sessions", "min": 1}, window={"start": iso, "end": iso})
    assert keys_of(cursor, same) == keys_of(cursor, doc)


def test_resolve_window():
    d = parse_definition(doc_of({"type": "subscribed"}, window={"last_days": 7}))
    assert resolve_window(d, date(2026, 10, 31)) == (date(2026, 10, 25), date(2026, 10, 31))
    d = parse_definition(doc_of({"type": "subscribed"}, window=RANGE))
    assert resolve_window(d, date(2026, 10, 31)) == (date(2026, 3, 1), date(2026, 5, 31))


def test_plausibility_rules_apply(messy_store):
    cursor = messy_store.cursor()
    ref = SegmentReference(cursor)
    for cond in (
        {"type": "ppv_purchases", "min": 1},
        {"type": "watch_hours", "min": 5},
        {"type": "sessions", "min": 1},
        {"type": "subscribed"},
        {"type": "churned"},
    ):
        for window in ({"last_days": 3}, {"start": "2026-10-01", "end": "2030-12-31"}):
            doc = doc_of(cond, window=window)
            assert keys_of(cursor, doc) == ref.members(doc), (cond, window)


# --- size, funnel, profile, overlap, members -----------------------------------------------------
def test_size(cursor, ref):
    doc = doc_of({"type": "device", "any_of": ["tv"]}, {"type": "plan", "any_of": ["standard"]})
    size = segment_size(cursor, parse_definition(doc), ALL)
    members, active = ref.members(doc), ref.active(doc)
    assert size["viewers"] == len(members)
    assert size["all_viewers"] == len(ref.keys)
    assert size["active_viewers"] == len(active)
    assert size["active_in_segment"] == len(members & active)
    assert size["share_of_all"] == pytest.approx(len(members) / len(ref.keys))
    assert size["share_of_active"] == pytest.approx(len(members & active) / len(active))


def test_funnel_of_an_and_chain_never_increases(cursor, ref):
    items = [
        {"type": "sessions", "min": 1},
        {"type": "device", "any_of": ["tv", "mobile"]},
        {"type": "country", "any_of": ["US", "GB", "DE"]},
        {"type": "watch_hours", "min": 1},
    ]
    doc = doc_of(*items)
    funnel = segment_funnel(cursor, parse_definition(doc), ALL)
    assert list(funnel.columns) == ["step", "label", "viewers"]
    assert funnel["step"].tolist() == [1, 2, 3, 4]
    viewers = funnel["viewers"].tolist()
    assert viewers == sorted(viewers, reverse=True)
    for k in range(len(items)):
        assert viewers[k] == len(ref.members(doc_of(*items[: k + 1])))
    assert funnel["label"].iloc[1] == "Used a mobile or a TV"


def test_funnel_of_an_or_group(cursor, ref):
    items = [{"type": "subscribed"}, {"type": "ppv_purchases", "min": 1}]
    doc = doc_of(*items, op="or")
    funnel = segment_funnel(cursor, parse_definition(doc), ALL)
    assert funnel["step"].tolist() == [1, 2, 3]
    assert funnel["viewers"].tolist() == [
        len(ref.members(doc_of(items[0]))),
        len(ref.members(doc_of(items[1]))),
        len(ref.members(doc)),
    ]


def test_profile_against_the_reference(cursor, ref):
    doc = doc_of({"type": "watch_hours", "min": 1}, {"type": "plan", "any_of": ["premium"]})
    defn = parse_definition(doc)
    profile = segment_profile(cursor, defn, ALL)
    assert set(profile) == {"country", "plan", "age_band", "device", "genre"}
    members = ref.members(doc)
    active = ref.active(doc)
    for frame in profile.values():
        assert list(frame.columns) == [
            "value",
            "segment_viewers",
            "segment_share",
            "all_share",
            "index",
        ]
    country = profile["country"].set_index("value")
    seg_country = ref.viewers.loc[sorted(members), "country"].value_counts()
    all_country = ref.viewers["country"].value_counts()
    for value, row in country.iterrows():
        assert row["segment_viewers"] == seg_country.get(value, 0)
        assert row["segment_share"] == pytest.approx(seg_country.get(value, 0) / len(members))
        assert row["all_share"] == pytest.approx(all_country[value] / len(ref.keys))
        assert row["index"] == pytest.approx(row["segment_share"] / row["all_share"])
    plan = profile["plan"].set_index("value")
    assert plan.loc["premium", "segment_share"] == 1.0
    assert plan["segment_viewers"].sum() == len(members)
    a, b = ref.window(doc)
    v = ref._in(ref.views, "day", a, b)
    device = profile["device"].set_index("value")
    for value, row in device.iterrows():
        users = set(v.loc[v["device"] == value, "viewer_key"])
        assert row["segment_viewers"] == len(users & members)
        assert row["segment_share"] == pytest.approx(len(users & members) / len(members & active))
        assert row["all_share"] == pytest.approx(len(users & active) / len(active))
    genre = profile["genre"]
    assert len(genre) <= 10
    assert genre["segment_viewers"].tolist() == sorted(genre["segment_viewers"], reverse=True)
    top = genre.iloc[0]
    watched = set(v.loc[v["genre"] == top["value"], "viewer_key"])
    assert top["segment_viewers"] == len(watched & members)


def test_overlap_regions_add_up_to_the_union(cursor, ref):
    docs = {
        "Horror fans": doc_of({"type": "watch_hours", "min": 0.5, "genre": "Horror"}),
        "US": doc_of({"type": "country", "any_of": ["US"]}),
        "TV, 90 days": doc_of({"type": "device", "any_of": ["tv"]}, window={"last_days": 90}),
    }
    defs = {name: parse_definition(d) for name, d in docs.items()}
    overlap = segment_overlap(cursor, defs, ALL)
    assert list(overlap.columns) == ["segments", "label", "viewers", "kind"]
    sets = {name: ref.members(d) for name, d in docs.items()}
    union = set().union(*sets.values())
    regions = overlap[overlap["kind"] == "region"]
    assert len(regions) == 7
    assert regions["viewers"].sum() == len(union)
    assert overlap.loc[overlap["kind"] == "union", "viewers"].item() == len(union)
    names = list(docs)
    for _, row in regions.iterrows():
        inside = set.intersection(*(sets[n] for n in row["segments"]))
        outside = set().union(*(sets[n] for n in names if n not in row["segments"]))
        assert row["viewers"] == len(inside - outside), row["label"]
    totals = overlap[overlap["kind"] == "total"].set_index("label")["viewers"]
    for name in names:
        assert totals[f"{name} (all)"] == len(sets[name])
    labels = regions["label"].tolist()
    assert labels[0] == "Horror fans only"
    assert "Horror fans ∩ US only" in labels
    assert labels[-1] == "Horror fans ∩ US ∩ TV, 90 days"
    with pytest.raises(ValueError, match="2 to 4"):
        segment_overlap(cursor, {"one": defs["US"]}, ALL)


def test_members(cursor, ref):
    doc = doc_of({"type": "sessions", "min": 2}, {"type": "country", "any_of": ["GB"]})
    defn = parse_definition(doc)
    frame = segment_members(
        cursor,
        defn,
        ALL,
        attributes=["plan", "watch_hours_in_window", "sessions_in_window", "last_seen", "region"],
    )
    assert list(frame.columns) == [
        "viewer_key",
        "plan",
        "watch_hours_in_window",
        "sessions_in_window",
        "last_seen",
        "region",
    ]
    expected = sorted(ref.members(doc))
    assert frame["viewer_key"].tolist() == expected
    a, b = ref.window(doc)
    hours = ref.measure({"type": "watch_hours"}, a, b)
    sessions = ref.measure({"type": "sessions"}, a, b)
    np.testing.assert_allclose(frame["watch_hours_in_window"], hours.loc[expected].to_numpy())
    assert frame["sessions_in_window"].tolist() == sessions.loc[expected].tolist()
    assert frame["plan"].tolist() == ref.viewers.loc[expected, "plan"].tolist()
    last_seen = ref.views.groupby("viewer_key")["day"].max()
    assert [pd.Timestamp(x) for x in frame["last_seen"]] == last_seen.loc[expected].tolist()
    limited = segment_members(cursor, defn, ALL, limit=3)
    assert limited["viewer_key"].tolist() == expected[:3]
    with pytest.raises(ValueError, match="unknown member attribute"):
        segment_members(cursor, defn, ALL, attributes=["viewer_key; DROP TABLE x"])


def test_creator_scope_is_refused(cursor):
    defn = parse_definition(doc_of({"type": "subscribed"}))
    for scope in (Scope.creators([1, 2]), Scope.creators([])):
        for call in (segment_size, segment_funnel, segment_profile, segment_members):
            with pytest.raises(PermissionError):
                call(cursor, defn, scope)
        with pytest.raises(PermissionError):
            segment_overlap(cursor, {"a": defn, "b": defn}, scope)


# --- hostile strings --------------------------------------------------------------------------
HOSTILE = [
    "'; ATTACH 'x' AS y; --",
    '" OR 1=1 --',
    "') OR TRUE --",
    "Robert'); DROP TABLE dv_view;",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_matched_literally(cursor, text):
    for cond in (
        {"type": "region", "any_of": [text]},
        {"type": "acquisition_channel", "any_of": [text, "search"]},
        {"type": "watch_hours", "min": 0, "max": 0.5, "genre": text},
        {"type": "sessions", "min": 1, "genre": text},
    ):
        defn = parse_definition(doc_of(cond))
        sql, params = compile_segment(defn, date(2026, 10, 31))
        assert text not in sql and text in params
        found = cursor.execute(sql, params).fetchall()
        literal = segment_size(cursor, defn, ALL)["viewers"]
        assert len(found) == literal
    assert (
        segment_size(cursor, parse_definition(doc_of({"type": "region", "any_of": [text]})), ALL)[
            "viewers"
        ]
        == 0
    )
    # Nothing was attached or dropped: the extract still answers.
    assert cursor.execute("SELECT count(*) FROM dv_view").fetchone()[0] > 0
    assert "y" not in {r[0] for r in cursor.execute("SHOW DATABASES").fetchall()}


def test_unicode_text_matches_literally(cursor, ref):
    doc = doc_of({"type": "region", "any_of": ["São Paulo", "Île-de-France"]})
    expected = ref.members(doc)
    assert expected and keys_of(cursor, doc) == expected


@pytest.mark.parametrize("text", [*HOSTILE, "us", "USA", "U5"])
def test_hostile_text_is_rejected_where_a_format_is_known(text):
    for cond, path in (
        ({"type": "country", "any_of": ["US", text]}, "match.items[0].any_of[1]"),
        ({"type": "device", "any_of": [text]}, "match.items[0].any_of[0]"),
        ({"type": "sessions", "min": 1, "kind": text}, "match.items[0].kind"),
        ({"type": "interactions", "min": 1, "kind": text}, "match.items[0].kind"),
        ({"type": "sessions", "min": 1, "title_id": text}, "match.items[0].title_id"),
        ({"type": text}, "match.items[0].type"),
    ):
        with pytest.raises(SegmentDefinitionError) as err:
            parse_definition(doc_of(cond))
        assert str(err.value).startswith(path + ":"), str(err.value)


# --- validation --------------------------------------------------------------------------------
def _deep(levels: int) -> dict:
    node: dict = {"type": "subscribed"}
    for _ in range(levels):
        node = {"op": "and", "items": [node]}
    return node


VALID = doc_of(
    {"type": "watch_hours", "min": 5, "genre": "Drama"},
    {"type": "device", "any_of": ["tv"]},
)


def _with(path: list, value, doc=VALID) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


INVALID: list[tuple[object, str]] = [
    (
        doc_of({"type": "device", "any_of": ["tv"]}, {"type": "sessions", "min": "abc"}),
        'match.items[1].min: must be a number ≥ 0, got "abc"',
    ),
    (_with(["match", "items", 0, "min"], -1), "match.items[0].min: must be a number ≥ 0"),
    (_with(["match", "items", 0, "min"], True), "match.items[0].min: must be a number"),
    (_with(["match", "items", 0, "max"], 2), "match.items[0].max: must not be less than min"),
    (_with(["match", "items", 0, "colour"], "red"), "match.items[0].colour: unknown field"),
    (_with(["match", "items", 0, "kind"], "movie"), "match.items[0].kind: only one of"),
    (_with(["match", "items", 1, "any_of"], []), "match.items[1].any_of: must hold at least one"),
    (_with(["match", "items", 1, "any_of"], "tv"), "match.items[1].any_of: must be a list"),
    (
        _with(["match", "items", 1, "any_of"], ["tv"] * 501),
        "match.items[1].any_of: must hold at most 500",
    ),
    (_with(["match", "items", 1, "negate"], "yes"), "match.items[1].negate: must be true or false"),
    (
        _with(["match", "items", 0, "type"], "watch_time"),
        "match.items[0].type: unknown condition type",
    ),
    (
        _with(["match", "items", 0, "genre"], "x" * 201),
        "match.items[0].genre: must be at most 200 characters",
    ),
    (_with(["match", "items", 0, "genre"], 7), "match.items[0].genre: must be text"),
    (
        _with(["match", "items", 0, "genre"], "a\x00b"),
        "match.items[0].genre: must not hold control",
    ),
    (_with(["match", "op"], "xor"), 'match.op: must be "and" or "or"'),
    (_with(["match", "items"], []), "match.items: must hold at least one"),
    (
        _with(["match", "items", 1], {"op": "or", "items": []}),
        "match.items[1].items: must hold at least one",
    ),
    (_with(["match", "items", 1], {"any_of": ["tv"]}), "match.items[1]: must be a condition"),
    (_with(["match", "items", 1], ["tv"]), "match.items[1]: must be an object"),
    (_with(["window"], {"last_days": 0}), "window.last_days: must be a whole number"),
    (_with(["window"], {"last_days": 7.5}), "window.last_days: must be a whole number"),
    (
        _with(["window"], {"start": "2026-02-30", "end": "2026-03-01"}),
        "window.start: is not a real date",
    ),
    (
        _with(["window"], {"start": "2026-03-02", "end": "2026-03-01"}),
        "window.end: is before the start",
    ),
    (_with(["window"], {"start": "2026-03-02"}), "window: must hold either"),
    (
        _with(["window"], {"start": "20260302", "end": "2026-03-03"}),
        "window.start: must be a date like",
    ),
    (_with(["window"], {"last_days": 7, "start": "2026-03-02"}), "window.start: unknown field"),
    (_with(["version"], 2), "version: must be 1"),
    (_with(["extra"], 1), "extra: unknown field"),
    ({k: v for k, v in VALID.items() if k != "window"}, "window: is required"),
    ({k: v for k, v in VALID.items() if k != "version"}, "version: is required"),
    (doc_of({"type": "signup_date"}), 'match.items[0]: needs "after", "before" or both'),
    (
        doc_of({"type": "signup_date", "after": "2026-05-01", "before": "2026-04-01"}),
        "match.items[0].before: is before after",
    ),
    (doc_of({"type": "sessions"}), 'match.items[0]: needs "min", "max" or both'),
    (doc_of({"type": "sessions", "min": float("nan")}), "match.items[0].min: must be a number"),
    (
        doc_of({"type": "active_days", "min": 1, "genre": "Drama"}),
        "match.items[0].genre: unknown field",
    ),
    (
        doc_of({"type": "distinct_titles", "min": 1, "title_id": 3}),
        "match.items[0].title_id: unknown field",
    ),
    (doc_of({"type": "subscribed", "min": 1}), "match.items[0].min: unknown field"),
    (
        doc_of({"type": "sessions", "min": 1, "title_id": -3}),
        "match.items[0].title_id: must be a whole number",
    ),
    (
        doc_of(_deep(5)),
        "match.items[0].items[0].items[0].items[0].items[0]: groups are nested too deeply",
    ),
    (doc_of(*[{"type": "subscribed"}] * 51), "match.items[50]: too many conditions"),
    ("not json", "definition: is not valid JSON"),
    ('{"version": 1, "version": 1}', 'definition: the field "version" appears twice'),
    ("[]", "definition: must be an object"),
    (json.dumps(VALID).replace("5", "NaN", 1), "definition: NaN is not a number"),
    ("x" * (64 * 1024 + 1), "definition: is longer than 64 KB"),
]


@pytest.mark.parametrize(("doc", "message"), INVALID, ids=[m[:50] for _, m in INVALID])
def test_invalid_definitions_name_the_field(doc, message):
    with pytest.raises(SegmentDefinitionError) as err:
        parse_definition(doc)
    assert str(err.value).startswith(message), str(err.value)
    assert S.check_definition(doc) == str(err.value)


def test_limits_that_still_validate():
    assert parse_definition(doc_of(_deep(4)))  # 5 levels of groups with the top one
    assert parse_definition(doc_of(*[{"type": "subscribed"}] * 50))
    many = [f"R{i}" for i in range(500)]
    assert (
        len(parse_definition(doc_of({"type": "region", "any_of": many})).conditions[0].any_of)
        == 500
    )
    assert S.check_definition(VALID) is None


# --- round trip, hashing, describe ---------------------------------------------------------------
def test_round_trip_and_hashing():
    doc = doc_of(
        {"type": "device", "any_of": ["tv", "mobile", "tv"]},
        {
            "op": "or",
            "negate": True,
            "items": [
                {"type": "signup_date", "after": "2025-01-01"},
                {"type": "watch_hours", "min": 1.5, "max": 10, "kind": "movie", "negate": True},
                {"type": "interactions", "min": 2, "kind": "qa"},
                {"type": "sessions", "min": 1, "title_id": 12},
            ],
        },
        {"type": "churned"},
        window=RANGE,
    )
    defn = parse_definition(doc)
    canonical = defn.to_json()
    assert canonical["match"]["items"][0] == {
        "type": "device",
        "any_of": ["mobile", "tv"],
        "negate": False,
    }
    assert parse_definition(canonical) == defn
    assert parse_definition(json.dumps(canonical)) == defn
    assert parse_definition(canonical).to_json() == canonical
    assert json.loads(json.dumps(canonical)) == canonical  # plain JSON types only
    assert hash(parse_definition(json.dumps(doc))) == hash(defn)
    assert {defn: 1}[parse_definition(canonical)] == 1
    other = parse_definition(_with(["window"], {"last_days": 31}, doc))
    assert other != defn


def test_describe():
    defn = parse_definition(VALID)
    assert describe(defn) == "Watched at least 5 hours of Drama and used a TV in the last 30 days"
    text = describe(
        parse_definition(
            doc_of(
                {"type": "country", "any_of": ["US", "GB"]},
                {
                    "op": "or",
                    "negate": True,
                    "items": [{"type": "churned"}, {"type": "ppv_purchases", "min": 1}],
                },
                window=RANGE,
            )
        )
    )
    assert text == (
        "From GB or US and not (churned or bought at least 1 pay-per-view) "
        "from 2026-03-01 to 2026-05-31"
    )
    # Negation reads as the opposite bound where there is one.
    text = describe(
        parse_definition(
            doc_of(
                {"type": "watch_hours", "min": 2, "negate": True},
                {"type": "ppv_purchases", "min": 1, "negate": True},
                {"type": "sessions", "max": 3, "negate": True},
                {"type": "active_days", "min": 2, "max": 5, "negate": True},
                {"op": "and", "negate": True, "items": [{"type": "churned"}]},
                window={"last_days": 7},
            )
        )
    )
    assert text == (
        "Watched less than 2 hours and did not buy any pay-per-views and started more than 3 "
        "sessions and was not active on between 2 and 5 days and did not churn in the last 7 days"
    )
    # Viewer properties only: no window.
    assert describe(parse_definition(doc_of({"type": "plan", "any_of": ["premium"]}))) == (
        "On the premium plan"
    )
    for spec in CONDITION_TYPES.values():
        cond: dict = {"type": spec.type}
        if spec.input == "list":
            cond["any_of"] = [spec.choices[0] if spec.choices else "US"]
        elif spec.input == "range":
            cond["min"] = 2
        elif spec.input == "dates":
            cond["after"] = "2025-01-01"
        for negate in (False, True):
            said = describe(parse_definition(doc_of({**cond, "negate": negate})))
            assert said and said[0].isupper()


def test_condition_types_describe_their_forms():
    for name, spec in CONDITION_TYPES.items():
        assert spec.type == name and spec.label
        assert spec.category in ("viewer", "behaviour")
        assert spec.input in ("list", "range", "dates", "flag")
        assert spec.windowed == (spec.category == "behaviour")
        assert set(spec.filters) <= set(spec.fields)
    assert CONDITION_TYPES["interactions"].choices_for("kind") == ("poll", "qa", "reaction")
    assert CONDITION_TYPES["watch_hours"].filters == ("genre", "kind", "title_id", "creator_id")
    assert CONDITION_TYPES["device"].choices == ("tv", "mobile", "web", "tablet", "console")


def test_compiled_sql_is_one_statement_with_bound_values(cursor):
    defn = parse_definition(
        doc_of(
            {"type": "watch_hours", "min": 5, "genre": "Drama"},
            {"type": "device", "any_of": ["tv"]},
            {"type": "ppv_purchases", "min": 1, "negate": True},
            {"type": "churned", "negate": True},
            {"type": "interactions", "max": 3, "kind": "poll"},
            {"type": "resubscribed", "negate": True},
        )
    )
    sql, params = compile_segment(defn, date(2026, 10, 31))
    assert ";" not in sql and "Drama" not in sql and "'tv'" not in sql
    assert "Drama" in params and "tv" in params and "poll" in params
    rows = cursor.execute(sql, params).fetchall()
    keys = [r[0] for r in rows]
    assert keys == sorted(keys)
    assert len(keys) == segment_size(cursor, defn, ALL)["viewers"]


@pytest.mark.parametrize("days", [1, 63, 64, 65, 384, 400])
def test_active_days_over_any_window_length(cursor, ref, days):
    # Up to 6 x 64 days the distinct days are bits of 64-day masks; longer, a distinct count.
    for cond in ({"type": "active_days", "min": 2}, {"type": "active_days", "max": 1}):
        doc = doc_of(cond, window={"last_days": days})
        assert keys_of(cursor, doc) == ref.members(doc), (cond, days)


def test_small_masks_give_the_same_answers(cursor, ref, monkeypatch):
    doc = doc_of({"type": "active_days", "min": 3}, {"type": "sessions", "min": 1}, window=RANGE)
    defn = parse_definition(doc)
    profile = segment_profile(cursor, defn, ALL)
    # Several blocks: 7-day masks for the days, 4-value masks for devices and genres.
    monkeypatch.setattr(S, "_MASK_DAYS", 7)
    monkeypatch.setattr(S, "_MASK_BITS", 4)
    assert keys_of(cursor, doc) == ref.members(doc)
    small = segment_profile(cursor, defn, ALL)
    for dim, frame in profile.items():
        pd.testing.assert_frame_equal(small[dim], frame)
