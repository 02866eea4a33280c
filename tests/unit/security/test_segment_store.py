"""security/segment_store.py on SQLite and PostgreSQL: versioning, who sees and changes which
segment, names unique per owner ignoring case, validation messages, the append-only tables,
duplicates, concurrent saves, the cluster-model registry and the audit records."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from security import segment_store
from security.audit import AuditLog
from security.db import AppDB, IntegrityError
from security.permissions import AccessDenied, Principal
from security.segment_store import (
    MAX_DEFINITION_BYTES,
    ClusterModelVersion,
    SegmentStore,
    SegmentStoreError,
    SegmentVersion,
)
from tests.unit.security.security_support import make_security

NOT_FOUND = "That segment was not found; it may have been deleted."
ANN = Principal("ann", "Ann", {"marketer"})
BEN = Principal("ben", "Ben", {"marketer"})
DANA = Principal("dana", "Dana", {"analyst"})
ROOT = Principal("root", "Root", {"admin"}, mfa_verified=True)
# An admin in a tab restored from the cookie, before 2FA: the segments page opens.
ROOT_PENDING = Principal("root", "Root", {"admin"})
EXEC = Principal("eve", "Eve", {"executive"}, mfa_verified=True)
CORA = Principal("cora", "Cora", {"creator"}, {7}, mfa_verified=True)


def rule(hours: int = 10, genre: str = "drama") -> dict:
    return {
        "version": 1,
        "match": "all",
        "conditions": [{"field": "hours_watched", "op": ">=", "value": hours, "genre": genre}],
    }


@pytest.fixture
def store(tmp_path):
    sec, clock = make_security(tmp_path)
    return sec.segments, sec, clock


def rows(sec, table: str) -> int:
    return sec.db.query(f"SELECT count(*) FROM {table}")[0][0]


# --- versions ------------------------------------------------------------------------------------
def test_each_save_is_a_new_version_and_older_versions_stay_viewable(store):
    segments, sec, clock = store
    first = segments.save(
        ANN, name="  Lapsed   fans ", description="Came back?", definition=rule(1)
    )
    assert isinstance(first, SegmentVersion)
    assert (first.version, first.latest_version, first.name, first.owner) == (
        1,
        1,
        "Lapsed fans",
        "ann",
    )
    assert (
        first.saved_by == "ann" and first.saved_at == clock() and first.saved_at.tzinfo is not None
    )
    clock.advance(minutes=5)
    second = segments.save(
        ANN, name="Lapsed fans", description="", definition=rule(2), segment_id=first.segment_id
    )
    clock.advance(minutes=5)
    third = segments.save(
        ANN,
        name="Lapsed drama fans",
        description="line one\r\nline two",
        definition=rule(3),
        segment_id=first.segment_id,
    )
    assert [second.version, third.version] == [2, 3]
    assert third.segment_id == second.segment_id == first.segment_id
    assert third.description == "line one\nline two", "line breaks are kept, as \\n"

    history = segments.versions(ANN, first.segment_id)
    assert [v.version for v in history] == [3, 2, 1], "newest first"
    assert {v.latest_version for v in history} == {3}
    assert [v.definition for v in history] == [rule(3), rule(2), rule(1)]
    assert [v.name for v in history] == ["Lapsed drama fans", "Lapsed fans", "Lapsed fans"]
    old = segments.get(ANN, first.segment_id, version=1)
    assert (old.version, old.definition, old.description, old.is_latest) == (
        1,
        rule(1),
        "Came back?",
        False,
    )
    assert old.saved_at == first.saved_at
    latest = segments.get(ANN, first.segment_id)
    assert latest == third and latest.is_latest and latest.definition == rule(3)
    with pytest.raises(SegmentStoreError, match="“Lapsed drama fans” has no version 4"):
        segments.get(ANN, first.segment_id, version=4)

    [summary] = segments.list(ANN)
    assert (summary.segment_id, summary.name, summary.description, summary.owner) == (
        first.segment_id,
        "Lapsed drama fans",
        "line one\nline two",
        "ann",
    )
    assert (summary.versions, summary.updated_at, summary.updated_by) == (3, clock(), "ann")
    assert rows(sec, "segment_versions") == 3

    records = sec.audit.list(action="segment.", newest_first=False)
    assert [(r.actor, r.action, r.target) for r in records] == [
        ("ann", "segment.save", f"segment:{first.segment_id}")
    ] * 3
    assert [r.details for r in records] == [
        {"version": 1, "name": "Lapsed fans"},
        {"version": 2, "name": "Lapsed fans"},
        {"version": 3, "name": "Lapsed drama fans"},
    ], "the version and name, never the definition"
    assert sec.audit.verify_chain() == (True, None)


def test_definitions_round_trip_as_json_and_hostile_text_stays_text(store):
    segments, _, _ = store
    hostile = "'; ATTACH DATABASE 'x' AS y; -- \"quoted\" ünïcødé 🎬 %s :p1 ?"
    definition = {"conditions": [{"title": hostile, "values": (1, 2.5, None, True)}], "n": 0}
    saved = segments.save(ANN, name=hostile[:80], description=hostile, definition=definition)
    again = segments.get(ANN, saved.segment_id)
    assert again.name == hostile[:80] and again.description == hostile
    assert again.definition == {
        "conditions": [{"title": hostile, "values": [1, 2.5, None, True]}],
        "n": 0,
    }, "what is stored is JSON: a tuple comes back as a list"
    # Equal and hashable by everything but the definition (a page may use versions as options).
    assert len({again, segments.versions(ANN, saved.segment_id)[0]}) == 1


# --- who sees what -------------------------------------------------------------------------------
def test_marketers_see_their_own_and_analysts_and_admins_see_everyones(store):
    segments, _, clock = store
    a = segments.save(ANN, name="Ann's", description="", definition=rule())
    clock.advance(minutes=1)
    b = segments.save(BEN, name="Ben's", description="", definition=rule())
    assert [s.segment_id for s in segments.list(ANN)] == [a.segment_id]
    assert [s.segment_id for s in segments.list(BEN)] == [b.segment_id]
    for who in (DANA, ROOT, ROOT_PENDING):
        assert [s.segment_id for s in segments.list(who)] == [b.segment_id, a.segment_id], who
        assert segments.get(who, a.segment_id).definition == rule()
        assert [v.version for v in segments.versions(who, b.segment_id)] == [1]
    # Someone else's segment reads exactly as one that does not exist.
    for attempt in (
        lambda: segments.get(ANN, b.segment_id),
        lambda: segments.get(ANN, b.segment_id, version=1),
        lambda: segments.versions(ANN, b.segment_id),
        lambda: segments.get(ANN, 9999),
        lambda: segments.versions(ANN, 9999),
    ):
        with pytest.raises(SegmentStoreError) as refused:
            attempt()
        assert str(refused.value) == NOT_FOUND
    # Newest first: a new version moves a segment to the top.
    clock.advance(minutes=1)
    segments.save(ANN, name="Ann's", description="", definition=rule(5), segment_id=a.segment_id)
    assert [s.segment_id for s in segments.list(DANA)] == [a.segment_id, b.segment_id]


def test_roles_without_the_segments_page_are_refused_before_anything_is_read(store):
    segments, sec, _ = store
    mine = segments.save(ANN, name="Mine", description="", definition=rule())
    for who, reason in ((None, "signed_out"), (EXEC, "not_permitted"), (CORA, "not_permitted")):
        for attempt in (
            lambda p: segments.list(p),
            lambda p: segments.get(p, mine.segment_id),
            lambda p: segments.versions(p, mine.segment_id),
            # The page is checked first, before the (bad) name.
            lambda p: segments.save(p, name="", description="", definition=rule()),
            lambda p: segments.duplicate(p, mine.segment_id, name="Copy"),
            lambda p: segments.delete(p, mine.segment_id),
        ):
            with pytest.raises(AccessDenied) as denied:
                attempt(who)
            assert (denied.value.target, denied.value.reason) == ("segments", reason)
    assert rows(sec, "segments") == 1 and len(sec.audit.list(action="segment.")) == 1


# --- who changes what ----------------------------------------------------------------------------
def test_only_the_owner_adds_versions_and_the_owner_or_an_admin_deletes(store):
    segments, sec, _ = store
    a = segments.save(ANN, name="Ann's", description="", definition=rule())
    change = {"name": "Taken over", "description": "", "definition": rule(99)}
    with pytest.raises(SegmentStoreError) as refused:
        segments.save(BEN, **change, segment_id=a.segment_id)
    assert str(refused.value) == NOT_FOUND, "Ben cannot see it, so it is not found"
    for who in (DANA, ROOT):
        with pytest.raises(SegmentStoreError) as refused:
            segments.save(who, **change, segment_id=a.segment_id)
        assert str(refused.value) == "Only its owner can change this segment."
    assert [v.version for v in segments.versions(ANN, a.segment_id)] == [1]

    with pytest.raises(SegmentStoreError, match=NOT_FOUND):
        segments.delete(BEN, a.segment_id)
    with pytest.raises(SegmentStoreError) as refused:
        segments.delete(DANA, a.segment_id)
    assert str(refused.value) == "Only its owner or an administrator can delete this segment."
    with pytest.raises(SegmentStoreError, match="two-factor code"):
        segments.delete(ROOT_PENDING, a.segment_id)
    assert [s.name for s in segments.list(ANN)] == ["Ann's"]

    segments.delete(ROOT, a.segment_id)
    for who in (ANN, DANA, ROOT):
        assert segments.list(who) == []
        with pytest.raises(SegmentStoreError, match=NOT_FOUND):
            segments.get(who, a.segment_id)
        with pytest.raises(SegmentStoreError, match=NOT_FOUND):
            segments.save(who, **change, segment_id=a.segment_id)
    with pytest.raises(SegmentStoreError, match=NOT_FOUND):
        segments.delete(ROOT, a.segment_id)
    assert rows(sec, "segment_versions") == 1, "a delete keeps the versions"
    [deleted] = sec.db.query("SELECT deleted_at, deleted_by FROM segments")
    assert deleted["deleted_by"] == "root" and deleted["deleted_at"]
    [record] = sec.audit.list(action="segment.delete")
    assert (record.actor, record.target) == ("root", f"segment:{a.segment_id}")
    assert record.details == {"name": "Ann's", "owner": "ann", "versions": 1}

    # Owners delete their own; so does an admin whose tab has not passed 2FA yet.
    b = segments.save(BEN, name="Ben's", description="", definition=rule())
    segments.delete(BEN, b.segment_id)
    r = segments.save(ROOT, name="Root's", description="", definition=rule())
    segments.delete(ROOT_PENDING, r.segment_id)
    assert segments.list(ROOT) == []
    assert sec.audit.verify_chain() == (True, None)


def test_names_are_unique_per_owner_ignoring_case_and_free_again_after_a_delete(store):
    segments, _, _ = store
    first = segments.save(ANN, name="Lapsed fans", description="", definition=rule())
    for clash in ("Lapsed fans", "lapsed FANS", "  Lapsed   fans ", "ＬＡＰＳＥＤ fans"):
        with pytest.raises(SegmentStoreError) as refused:
            segments.save(ANN, name=clash, description="", definition=rule())
        assert str(refused.value) == "You already have a segment called “Lapsed fans”."
    assert segments.save(BEN, name="Lapsed fans", description="", definition=rule()).version == 1
    other = segments.save(ANN, name="Other", description="", definition=rule())
    with pytest.raises(SegmentStoreError, match="already have a segment called “Lapsed fans”"):
        segments.save(
            ANN, name="LAPSED fans", description="", definition=rule(), segment_id=other.segment_id
        )
    recased = segments.save(
        ANN, name="LAPSED FANS", description="", definition=rule(), segment_id=first.segment_id
    )
    assert recased.version == 2, "a segment may take its own name in another case"
    with pytest.raises(SegmentStoreError, match="called “LAPSED FANS”"):
        segments.duplicate(ANN, other.segment_id, name="lapsed fans")

    segments.delete(ANN, first.segment_id)
    again = segments.save(ANN, name="Lapsed fans", description="", definition=rule(7))
    assert again.segment_id != first.segment_id and again.version == 1
    assert sorted(s.name for s in segments.list(ANN)) == ["Lapsed fans", "Other"]


def test_invalid_input_is_refused_with_a_message_and_nothing_is_written(store):
    segments, sec, _ = store
    big = {"blob": "x" * (70 * 1024 - 11)}  # 70 KB of JSON
    assert len(json.dumps(big, separators=(",", ":"))) == 70 * 1024 > MAX_DEFINITION_BYTES
    cases = [
        ({"name": ""}, "Give the segment a name."),
        ({"name": "   "}, "Give the segment a name."),
        ({"name": "x" * 81}, "A segment name has at most 80 characters (this one has 81)."),
        ({"name": "bad\x00name"}, "cannot contain line breaks or control characters"),
        ({"name": "two\nlines"}, "cannot contain line breaks or control characters"),
        ({"name": "tab\tbed"}, "cannot contain line breaks or control characters"),
        ({"name": "evil\u202eexe.txt"}, "cannot contain line breaks or control characters"),
        ({"name": 42}, "A segment name is text."),
        (
            {"description": "d" * 501},
            "A description has at most 500 characters (this one has 501).",
        ),
        ({"description": "bell\x07"}, "A description cannot contain control characters."),
        ({"definition": big}, "A segment definition is too large to save (70 KB; at most 64 KB)"),
        (
            {"definition": ["a", "list"]},
            "A segment definition must be a JSON object (a dict), not list.",
        ),
        ({"definition": '{"as": "text"}'}, "must be a JSON object (a dict), not str."),
        ({"definition": {"x": float("nan")}}, "holds a value JSON cannot hold"),
        ({"definition": {"x": {1, 2}}}, "holds a value JSON cannot hold"),
        ({"definition": {"x": "\ud800"}}, "holds a value JSON cannot hold"),
    ]
    for change, message in cases:
        fields = {"name": "Fine", "description": "", "definition": rule(), **change}
        with pytest.raises(SegmentStoreError) as refused:
            segments.save(ANN, **fields)
        assert message in str(refused.value), change
    assert segments.save(ANN, name="x" * 80, description="d" * 500, definition={}).version == 1
    assert rows(sec, "segment_versions") == 1 and len(sec.audit.list(action="segment.")) == 1
    with pytest.raises(TypeError, match="whole number"):
        segments.get(ANN, "1")  # type: ignore[arg-type]


def test_an_owner_has_a_limited_number_of_live_segments(store, monkeypatch):
    segments, _, _ = store
    monkeypatch.setattr(segment_store, "MAX_SEGMENTS_PER_OWNER", 2)
    one = segments.save(ANN, name="One", description="", definition=rule())
    segments.save(ANN, name="Two", description="", definition=rule())
    with pytest.raises(SegmentStoreError, match=r"You have 2 saved segments; delete one first\."):
        segments.save(ANN, name="Three", description="", definition=rule())
    segments.save(ANN, name="One", description="", definition=rule(2), segment_id=one.segment_id)
    segments.delete(ANN, one.segment_id)
    segments.save(ANN, name="Three", description="", definition=rule())


# --- duplicate -----------------------------------------------------------------------------------
def test_duplicate_copies_the_latest_version_into_a_segment_of_ones_own(store):
    segments, sec, clock = store
    a = segments.save(ANN, name="Ann's", description="v1", definition=rule(1))
    segments.save(ANN, name="Ann's", description="v2", definition=rule(2), segment_id=a.segment_id)
    clock.advance(hours=1)
    copy = segments.duplicate(DANA, a.segment_id, name="Dana's copy")
    assert copy.segment_id != a.segment_id
    assert (copy.owner, copy.version, copy.latest_version, copy.saved_by) == ("dana", 1, 1, "dana")
    assert (copy.name, copy.description, copy.definition) == ("Dana's copy", "v2", rule(2))
    assert copy.saved_at == clock()
    assert [v.version for v in segments.versions(ANN, a.segment_id)] == [2, 1], "source unchanged"
    assert [s.name for s in segments.list(ANN)] == ["Ann's"], "the copy is Dana's"
    with pytest.raises(SegmentStoreError, match=NOT_FOUND):
        segments.duplicate(BEN, a.segment_id, name="Ben's copy")
    mine = segments.duplicate(ANN, a.segment_id, name="Ann's again")
    assert mine.owner == "ann" and mine.definition == rule(2)
    with pytest.raises(SegmentStoreError, match="called “Ann's”"):
        segments.duplicate(ANN, a.segment_id, name="ANN'S")
    [record, _] = sec.audit.list(action="segment.duplicate")[::-1]
    assert (record.actor, record.target) == ("dana", f"segment:{copy.segment_id}")
    assert record.details == {
        "version": 1,
        "name": "Dana's copy",
        "from_segment": a.segment_id,
        "from_version": 2,
    }


# --- the database itself -------------------------------------------------------------------------
def test_versions_and_models_cannot_be_updated_or_deleted(store):
    segments, sec, _ = store
    a = segments.save(ANN, name="Ann's", description="", definition=rule())
    segments.record_model(DANA, params={"k": 4}, data_build="b1", quality={}, summary={})
    before = {
        t: sec.db.query(f"SELECT * FROM {t}")
        for t in ("segment_versions", "cluster_models", "cluster_model_uses")
    }
    truncate = sec.db.dialect == "postgresql"
    for statement in (
        "UPDATE segment_versions SET definition = '{}'",
        "UPDATE segment_versions SET saved_by = 'mallory' WHERE version = 1",
        "DELETE FROM segment_versions",
        *(["TRUNCATE segment_versions"] if truncate else []),
        "UPDATE cluster_models SET quality = '{}'",
        "DELETE FROM cluster_models",
        *(["TRUNCATE cluster_models CASCADE"] if truncate else []),
        "UPDATE cluster_model_uses SET model_id = 1",
        "DELETE FROM cluster_model_uses",
        *(["TRUNCATE cluster_model_uses"] if truncate else []),
    ):
        with pytest.raises(IntegrityError, match="append-only"), sec.db.transaction() as tx:
            tx.execute(statement)
    for table, contents in before.items():
        assert sec.db.query(f"SELECT * FROM {table}") == contents, table
    # One row per (segment, version), in the database itself.
    columns = "segment_id, version, name, description, definition, saved_by, saved_at"
    with pytest.raises(IntegrityError), sec.db.transaction() as tx:
        tx.execute(
            f"INSERT INTO segment_versions ({columns}) SELECT {columns} FROM segment_versions"
        )
    # Two live segments of one owner with one name: refused by the unique index.
    with pytest.raises(IntegrityError), sec.db.transaction() as tx:
        tx.execute(
            "INSERT INTO segments (owner, name, name_key, created_at) "
            "SELECT owner, name, name_key, created_at FROM segments"
        )
    assert rows(sec, "segment_versions") == 1 and segments.get(ANN, a.segment_id).version == 1


def test_a_save_and_its_audit_record_commit_together(store, monkeypatch):
    segments, sec, _ = store

    def audit_fails(*args, **kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(segments.audit, "append", audit_fails)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        segments.save(ANN, name="Ann's", description="", definition=rule())
    with pytest.raises(RuntimeError, match="audit unavailable"):
        segments.record_model(DANA, params={}, data_build="b1", quality={}, summary={})
    for table in ("segments", "segment_versions", "cluster_models", "cluster_model_uses"):
        assert rows(sec, table) == 0, table


# --- concurrency ---------------------------------------------------------------------------------
def test_concurrent_saves_of_one_segment_get_consecutive_versions(store):
    segments, sec, clock = store
    first = segments.save(ANN, name="Busy", description="", definition=rule(0))
    # Four app databases over the same data, as four app processes would have.
    key = sec.settings.secret("audit_key")
    stores = [segments]
    for _ in range(3):
        db = AppDB(sec.db.path or os.environ["SPOTLIGHT_APP_DB"])
        stores.append(SegmentStore(db, AuditLog(db, clock, key=key), clock))
    threads = 8
    barrier = threading.Barrier(threads)

    def attempt(i: int) -> int:
        barrier.wait(10)
        return (
            stores[i % 4]
            .save(
                ANN,
                name="Busy",
                description="",
                definition=rule(i + 1),
                segment_id=first.segment_id,
            )
            .version
        )

    with ThreadPoolExecutor(threads) as pool:
        versions = list(pool.map(attempt, range(threads)))
    assert sorted(versions) == list(range(2, threads + 2)), "no gap, no duplicate"
    history = segments.versions(ANN, first.segment_id)
    assert [v.version for v in history] == list(range(threads + 1, 0, -1))
    assert sorted(v.definition["conditions"][0]["value"] for v in history) == list(
        range(threads + 1)
    )
    assert len(sec.audit.list(action="segment.save")) == threads + 1
    assert sec.audit.verify_chain() == (True, None)


# --- cluster models ------------------------------------------------------------------------------
def test_only_analysts_and_admins_record_and_choose_models(store):
    segments, sec, _ = store
    fit = {"params": {"k": 4}, "data_build": "b1", "quality": {}, "summary": {}}
    for who, reason in (
        (None, "signed_out"),
        (ANN, "not_permitted"),
        (EXEC, "not_permitted"),
        (ROOT_PENDING, "mfa_required"),
    ):
        with pytest.raises(AccessDenied) as denied:
            segments.record_model(who, **fit)
        assert (denied.value.target, denied.value.reason) == ("change_models", reason)
    assert segments.models() == [] and segments.model_in_use() is None
    segments.record_model(ROOT, **fit)
    with pytest.raises(AccessDenied, match="not_permitted"):
        segments.use_model(ANN, 1)
    assert rows(sec, "cluster_models") == 1 and len(sec.audit.list(action="model.")) == 1


def test_models_are_versioned_and_the_latest_fit_or_choice_is_in_use(store):
    segments, sec, clock = store
    summary = {"clusters": [{"id": 0, "share": 0.4, "description": "evening binge-watchers"}]}
    first = segments.record_model(
        DANA,
        params={"k": 4, "seed": 42, "features": ["hours", "sessions"]},
        data_build="extract-2026-01-05-abc123",
        quality={"silhouette": 0.41, "inertia": 1234.5},
        summary=summary,
    )
    assert isinstance(first, ClusterModelVersion)
    assert (first.id, first.version, first.in_use, first.fitted_by) == (1, 1, True, "dana")
    assert first.fitted_at == clock() and first.summary == summary
    clock.advance(hours=1)
    second = segments.record_model(
        ROOT, params={"k": 5}, data_build="b2", quality={"silhouette": 0.38}, summary={}
    )
    assert second.version == 2 and segments.model_in_use() == second
    assert [(m.version, m.in_use) for m in segments.models()] == [(2, True), (1, False)]

    clock.advance(hours=1)
    back = segments.use_model(DANA, 1)
    assert back.version == 1 and back.in_use and back.params["seed"] == 42
    assert segments.model_in_use().version == 1
    assert [(m.version, m.in_use) for m in segments.models()] == [(2, False), (1, True)]
    assert segments.use_model(DANA, 1).in_use, "choosing the model in use changes nothing"
    with pytest.raises(SegmentStoreError, match=r"There is no model version 9\."):
        segments.use_model(DANA, 9)

    clock.advance(hours=1)
    third = segments.record_model(DANA, params={"k": 6}, data_build="b3", quality={}, summary={})
    assert third.version == 3 and segments.model_in_use().version == 3, "a new fit is used"
    assert segments.record_model(
        DANA,
        params={"tol": float("inf")},
        data_build="b4",
        quality={"silhouette": float("nan"), "per_k": [0.3, float("nan")]},
        summary={"clusters": [{"share": float("-inf")}]},
    ).quality == {"silhouette": None, "per_k": [0.3, None]}, "a figure not computed is null"
    assert segments.models(limit=1)[0].params == {"tol": None}
    segments.use_model(DANA, 3)
    assert [(m.version, m.in_use) for m in segments.models(limit=2)] == [(4, False), (3, True)]
    assert (
        segments.model_in_use().quality == {} and segments.models()[-1].quality["inertia"] == 1234.5
    )

    for bad, message in (
        ({"params": []}, "The model parameters must be a JSON object"),
        ({"quality": {"x": object()}}, "holds a value JSON cannot hold"),
        ({"summary": {"x": "y" * 300_000}}, "The model summary is too large"),
        ({"data_build": ""}, "Name the data build"),
        ({"data_build": "bad\nbuild"}, "without control characters"),
    ):
        fields = {"params": {}, "data_build": "b", "quality": {}, "summary": {}, **bad}
        with pytest.raises(SegmentStoreError, match=message):
            segments.record_model(DANA, **fields)
    assert rows(sec, "cluster_models") == 4

    records = sec.audit.list(action="model.", newest_first=False)
    assert [(r.actor, r.action, r.target) for r in records] == [
        ("dana", "model.fit", "model:1"),
        ("root", "model.fit", "model:2"),
        ("dana", "model.use", "model:1"),
        ("dana", "model.fit", "model:3"),
        ("dana", "model.fit", "model:4"),
        ("dana", "model.use", "model:3"),
    ]
    fitted = records[0].details
    assert fitted["version"] == 1 and fitted["data_build"] == "extract-2026-01-05-abc123"
    assert json.loads(fitted["params"]) == {"k": 4, "seed": 42, "features": ["hours", "sessions"]}
    assert json.loads(fitted["quality"]) == {"silhouette": 0.41, "inertia": 1234.5}
    assert "summary" not in fitted and "binge" not in json.dumps([r.details for r in records])
    assert records[2].details == {"version": 1, "previous": 2}
    assert sec.audit.verify_chain() == (True, None)
