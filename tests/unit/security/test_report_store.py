"""security/report_store.py on SQLite and PostgreSQL: versioning, who sees, opens and changes
which report, sharing with users and roles (a creator sees what is shared with them and nothing
else), share validation, names unique per owner ignoring case, validation messages, the
append-only versions, duplicates, concurrent saves and the audit records."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from security import report_store
from security.audit import AuditLog
from security.clock import to_db
from security.db import AppDB, IntegrityError
from security.permissions import AccessDenied, Principal
from security.report_store import (
    BUILD,
    MAX_DEFINITION_BYTES,
    ReportStore,
    ReportStoreError,
    ReportSummary,
    ReportVersion,
)
from tests.unit.security.security_support import make_security

NOT_FOUND = "That report was not found; it may have been deleted."
NOT_OWNER = "Only its owner can change this report."
ANN = Principal("ann", "Ann", {"manager"})
BEN = Principal("ben", "Ben", {"analyst"})
EVE = Principal("eve", "Eve", {"executive"}, mfa_verified=True)
ROOT = Principal("root", "Root", {"admin"}, mfa_verified=True)
# An admin in a tab restored from the cookie, before 2FA.
ROOT_PENDING = Principal("root", "Root", {"admin"})
CORA = Principal("cora", "Cora", {"creator"}, {7}, mfa_verified=True)
CODY = Principal("cody", "Cody", {"creator"}, {8}, mfa_verified=True)
MIA = Principal("mia", "Mia", {"marketer"})
EVERYONE = (ANN, BEN, EVE, ROOT, CORA, CODY, MIA)


def pivot(n: int = 1, metric: str = "watch_hours") -> dict:
    return {
        "version": 1,
        "rows": ["genre"],
        "columns": ["month"],
        "values": [{"metric": metric, "agg": "sum"}],
        "filters": {"country": ["DE", "FR"]},
        "top_n": n,
    }


@pytest.fixture
def store(tmp_path):
    sec, clock = make_security(tmp_path)
    # The accounts shares name, in one transaction (sec.users.add would take one each).
    with sec.db.transaction() as tx:
        for who in EVERYONE:
            tx.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, creator_ids, "
                "created_at, updated_at) VALUES (?, ?, '-', ?, ?, ?, ?)",
                (
                    who.username,
                    who.display_name,
                    json.dumps(sorted(who.roles)),
                    json.dumps(sorted(who.creator_ids)),
                    to_db(clock()),
                    to_db(clock()),
                ),
            )
    return sec.reports, sec, clock


def rows(sec, table: str) -> int:
    return sec.db.query(f"SELECT count(*) FROM {table}")[0][0]


def ids(summaries: list[ReportSummary]) -> list[int]:
    return [s.report_id for s in summaries]


def refused(attempt, message: str = NOT_FOUND) -> None:
    with pytest.raises(ReportStoreError) as caught:
        attempt()
    assert str(caught.value) == message


# --- versions ------------------------------------------------------------------------------------
def test_each_save_is_a_new_version_and_older_versions_stay_viewable(store):
    reports, sec, clock = store
    first = reports.save(ANN, name="  Weekly   genres ", description="Top", definition=pivot(1))
    assert isinstance(first, ReportVersion)
    assert (first.version, first.latest_version, first.name, first.owner, first.saved_by) == (
        1,
        1,
        "Weekly genres",
        "ann",
        "ann",
    )
    assert first.saved_at == clock() and first.saved_at.tzinfo is not None
    assert (first.shared_with_users, first.shared_with_roles) == ((), ())
    clock.advance(minutes=5)
    second = reports.save(
        ANN, name="Weekly genres", description="", definition=pivot(2), report_id=first.report_id
    )
    clock.advance(minutes=5)
    third = reports.save(
        ANN,
        name="Weekly genres by month",
        description="line one\r\nline two",
        definition=pivot(3),
        report_id=first.report_id,
    )
    assert [second.version, third.version] == [2, 3]
    assert third.report_id == second.report_id == first.report_id
    assert third.description == "line one\nline two"

    history = reports.versions(ANN, first.report_id)
    assert [v.version for v in history] == [3, 2, 1], "newest first"
    assert {v.latest_version for v in history} == {3}
    assert [v.definition for v in history] == [pivot(3), pivot(2), pivot(1)]
    old = reports.get(ANN, first.report_id, version=1)
    assert (old.version, old.definition, old.description, old.is_latest) == (
        1,
        pivot(1),
        "Top",
        False,
    )
    latest = reports.get(ANN, first.report_id)
    assert latest == third and latest.is_latest and latest.definition == pivot(3)
    refused(
        lambda: reports.get(ANN, first.report_id, version=4),
        "“Weekly genres by month” has no version 4.",
    )

    [summary] = reports.list(ANN)
    assert (summary.report_id, summary.name, summary.owner, summary.versions) == (
        first.report_id,
        "Weekly genres by month",
        "ann",
        3,
    )
    assert (summary.updated_at, summary.updated_by, summary.shared) == (clock(), "ann", False)
    assert rows(sec, "report_versions") == 3

    records = sec.audit.list(action="report.", newest_first=False)
    assert [(r.actor, r.action, r.target) for r in records] == [
        ("ann", "report.save", f"report:{first.report_id}")
    ] * 3
    assert [r.details for r in records] == [
        {"version": 1, "name": "Weekly genres"},
        {"version": 2, "name": "Weekly genres"},
        {"version": 3, "name": "Weekly genres by month"},
    ], "the version and name, never the definition"
    assert sec.audit.verify_chain() == (True, None)


def test_definitions_round_trip_as_json_and_carry_nothing_of_the_author(store):
    reports, _, _ = store
    hostile = '\'; DROP TABLE reports; -- "q" ünïcødé 📊 %s :p1 ? =HYPERLINK("x")'
    definition = {"rows": [{"label": hostile, "values": (1, 2.5, None, True)}], "n": 0}
    saved = reports.save(EVE, name=hostile[:80], description=hostile, definition=definition)
    again = reports.get(EVE, saved.report_id)
    assert again.name == hostile[:80] and again.description == hostile
    assert again.definition == {
        "rows": [{"label": hostile, "values": [1, 2.5, None, True]}],
        "n": 0,
    }, "what is stored is JSON: a tuple comes back as a list"
    assert len({again, reports.versions(EVE, saved.report_id)[0]}) == 1, "hashable"
    # What a reader gets is the definition and who wrote it, never the author's scope or rights.
    names = {f.name for f in dataclasses.fields(ReportVersion)}
    assert not names & {"roles", "scope", "creator_ids", "principal", "see_money"}


# --- who sees what -------------------------------------------------------------------------------
def test_own_reports_shared_ones_and_admins_see_everything(store):
    reports, _, clock = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    clock.advance(minutes=1)
    b = reports.save(BEN, name="Ben's", description="", definition=pivot())
    clock.advance(minutes=1)
    e = reports.save(EVE, name="Eve's", description="", definition=pivot())
    assert ids(reports.list(ANN)) == [a.report_id]
    assert ids(reports.list(BEN)) == [b.report_id]
    assert ids(reports.list(ROOT)) == [e.report_id, b.report_id, a.report_id], "admins: all"
    assert not any(s.shared for s in reports.list(ROOT)), "an admin's view is not a share"
    assert reports.list_shared(ANN) == [] and reports.list_shared(ROOT) == []
    for attempt in (
        lambda: reports.get(ANN, b.report_id),
        lambda: reports.get(ANN, b.report_id, version=1),
        lambda: reports.versions(ANN, b.report_id),
        lambda: reports.get(ANN, 9999),
        lambda: reports.versions(ANN, 9999),
        lambda: reports.get(CORA, a.report_id),
    ):
        refused(attempt)

    # Shared with Ann by name, and with the analyst role (Ben): each sees it, flagged shared.
    reports.share(EVE, e.report_id, users=["ann"])
    reports.share(ANN, a.report_id, roles=["analyst"])
    assert ids(reports.list(ANN)) == [e.report_id, a.report_id]
    assert [s.shared for s in reports.list(ANN)] == [True, False]
    assert ids(reports.list_shared(ANN)) == [e.report_id]
    assert ids(reports.list(BEN)) == [b.report_id, a.report_id]
    assert [s.shared for s in reports.list(BEN)] == [False, True]
    assert ids(reports.list_shared(BEN)) == [a.report_id]
    assert reports.get(BEN, a.report_id).definition == pivot()
    assert [v.version for v in reports.versions(ANN, e.report_id)] == [1]
    refused(lambda: reports.get(BEN, e.report_id))
    assert ids(reports.list(EVE)) == [e.report_id], "Eve's role is not shared with"

    # Newest first: a new version moves a report to the top.
    clock.advance(minutes=1)
    reports.save(ANN, name="Ann's", description="", definition=pivot(5), report_id=a.report_id)
    assert ids(reports.list(ROOT)) == [a.report_id, e.report_id, b.report_id]


def test_a_creator_sees_what_is_shared_with_the_creator_role_or_their_name_and_nothing_else(
    store,
):
    reports, _, clock = store
    unshared = reports.save(ANN, name="Internal", description="", definition=pivot(1))
    by_role = reports.save(ANN, name="For creators", description="", definition=pivot(2))
    by_name = reports.save(BEN, name="For Cora", description="", definition=pivot(3))
    to_partner = reports.save(BEN, name="For partners", description="", definition=pivot(4))
    reports.share(ANN, by_role.report_id, users=["ben", "eve"], roles=["creator", "manager"])
    reports.share(BEN, by_name.report_id, users=["cora"])
    reports.share(BEN, to_partner.report_id, roles=["partner"])
    clock.advance(minutes=1)

    shared = reports.list_shared(CORA)
    assert ids(shared) == [by_name.report_id, by_role.report_id]
    assert all(s.shared for s in shared)
    # Cora is told what reaches her, not who else has the report.
    assert [(s.shared_with_users, s.shared_with_roles) for s in shared] == [
        (("cora",), ()),
        ((), ("creator",)),
    ]
    opened = reports.get(CORA, by_role.report_id)
    assert opened.definition == pivot(2) and opened.owner == "ann"
    assert (opened.shared_with_users, opened.shared_with_roles) == ((), ("creator",))
    assert [v.version for v in reports.versions(CORA, by_name.report_id)] == [1]
    for hidden in (unshared, to_partner):
        refused(lambda hidden=hidden: reports.get(CORA, hidden.report_id))
        refused(lambda hidden=hidden: reports.versions(CORA, hidden.report_id))
    # Another creator gets the role's report, not the one shared with Cora by name.
    assert ids(reports.list_shared(CODY)) == [by_role.report_id]
    refused(lambda: reports.get(CODY, by_name.report_id))
    # Where the reports page opens for creators, its list is exactly what is shared with them.
    if CORA.can_open("reports"):
        assert reports.list(CORA) == shared
    else:
        with pytest.raises(AccessDenied):
            reports.list(CORA)
    # The owner sees the whole share list.
    assert (reports.get(ANN, by_role.report_id).shared_with_users) == ("ben", "eve")
    assert reports.get(ROOT, by_role.report_id).shared_with_roles == ("creator", "manager")
    assert reports.get(BEN, by_role.report_id).shared_with_users == ("ben",)


def test_readers_are_signed_in_and_only_builders_save_duplicate_share_or_delete(store):
    reports, sec, _ = store
    mine = reports.save(ANN, name="Mine", description="", definition=pivot())
    reports.share(ANN, mine.report_id, roles=["creator", "marketer"])
    for attempt in (
        lambda: reports.list(None),
        lambda: reports.list_shared(None),
        lambda: reports.get(None, mine.report_id),
        lambda: reports.versions(None, mine.report_id),
    ):
        with pytest.raises(AccessDenied) as denied:
            attempt()
        assert (denied.value.target, denied.value.reason) == ("reports", "signed_out")
    for who, reason in ((None, "signed_out"), (CORA, "not_permitted"), (MIA, "not_permitted")):
        for attempt in (
            # The right is checked first, before the (bad) name.
            lambda p: reports.save(p, name="", description="", definition=pivot()),
            lambda p: reports.save(
                p, name="Mine", description="", definition=pivot(), report_id=mine.report_id
            ),
            lambda p: reports.duplicate(p, mine.report_id, name="Copy"),
            lambda p: reports.share(p, mine.report_id, users=["cora"]),
            lambda p: reports.delete(p, mine.report_id),
        ):
            with pytest.raises(AccessDenied) as denied:
                attempt(who)
            assert (denied.value.target, denied.value.reason) == (BUILD, reason)
    # Yet the marketer and the creator open the report shared with them.
    assert reports.get(MIA, mine.report_id).name == reports.get(CORA, mine.report_id).name
    assert rows(sec, "reports") == 1 and len(sec.audit.list(action="report.")) == 2


# --- who changes what ----------------------------------------------------------------------------
def test_only_the_owner_adds_versions_and_the_owner_or_an_admin_shares_and_deletes(store):
    reports, sec, _ = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    reports.share(ANN, a.report_id, users=["ben"])
    change = {"name": "Taken over", "description": "", "definition": pivot(99)}
    refused(lambda: reports.save(EVE, **change, report_id=a.report_id))  # not visible to Eve
    for who in (BEN, ROOT):  # shared with Ben; everyone's for an admin
        refused(lambda who=who: reports.save(who, **change, report_id=a.report_id), NOT_OWNER)
    assert [v.version for v in reports.versions(ANN, a.report_id)] == [1]

    refused(lambda: reports.share(EVE, a.report_id, users=["eve"]))
    refused(
        lambda: reports.share(BEN, a.report_id, users=["ben", "eve"]),
        "Only its owner or an administrator can share this report.",
    )
    refused(lambda: reports.delete(EVE, a.report_id))
    refused(
        lambda: reports.delete(BEN, a.report_id),
        "Only its owner or an administrator can delete this report.",
    )
    # An admin before 2FA in this tab changes nobody else's report.
    for attempt in (
        lambda: reports.share(ROOT_PENDING, a.report_id, users=[]),
        lambda: reports.delete(ROOT_PENDING, a.report_id),
    ):
        with pytest.raises((ReportStoreError, AccessDenied), match=r"two-factor|mfa_required"):
            attempt()
    assert reports.get(ANN, a.report_id).shared_with_users == ("ben",)

    shared = reports.share(ROOT, a.report_id, users=["eve"], roles=["finance"])
    assert (shared.owner, shared.shared_with_users, shared.shared_with_roles) == (
        "ann",
        ("eve",),
        ("finance",),
    )
    assert ids(reports.list_shared(EVE)) == [a.report_id] and reports.list_shared(BEN) == []
    [record] = sec.audit.list(action="report.share", limit=1)
    assert (record.actor, record.target) == ("root", f"report:{a.report_id}")
    assert record.details == {
        "name": "Ann's",
        "owner": "ann",
        "users": ["eve"],
        "roles": ["finance"],
        "previous_users": ["ben"],
        "previous_roles": [],
    }
    reports.delete(ROOT, a.report_id)
    [record] = sec.audit.list(action="report.delete")
    assert (record.actor, record.target) == ("root", f"report:{a.report_id}")
    assert record.details == {
        "name": "Ann's",
        "owner": "ann",
        "versions": 1,
        "shared_with_users": ["eve"],
        "shared_with_roles": ["finance"],
    }
    assert sec.audit.verify_chain() == (True, None)


def test_a_delete_removes_the_report_from_every_list_including_the_shared_ones(store):
    reports, sec, _ = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    keep = reports.save(ANN, name="Kept", description="", definition=pivot())
    reports.share(ANN, a.report_id, users=["ben", "cora"], roles=["executive"])
    reports.share(ANN, keep.report_id, roles=["creator"])
    assert ids(reports.list_shared(CORA)) == [keep.report_id, a.report_id]
    reports.delete(ANN, a.report_id)
    for who in (ANN, BEN, EVE, ROOT, CORA):
        if who.can_open("reports"):
            assert a.report_id not in ids(reports.list(who))
        assert a.report_id not in ids(reports.list_shared(who))
        refused(lambda who=who: reports.get(who, a.report_id))
        refused(lambda who=who: reports.versions(who, a.report_id))
    assert ids(reports.list_shared(CORA)) == [keep.report_id]
    for attempt in (
        lambda: reports.save(
            ANN, name="Ann's", description="", definition={}, report_id=a.report_id
        ),
        lambda: reports.share(ANN, a.report_id, users=["ben"]),
        lambda: reports.duplicate(BEN, a.report_id, name="Copy"),
        lambda: reports.delete(ROOT, a.report_id),
    ):
        refused(attempt)
    assert rows(sec, "report_versions") == 2, "a delete keeps the versions"
    [deleted] = sec.db.query(
        "SELECT deleted_at, deleted_by FROM reports WHERE id = ?", (a.report_id,)
    )
    assert deleted["deleted_by"] == "ann" and deleted["deleted_at"]
    again = reports.save(ANN, name="ann's", description="", definition=pivot())
    assert again.report_id != a.report_id and again.shared_with_users == (), "name free, unshared"


# --- sharing -------------------------------------------------------------------------------------
def test_share_replaces_the_whole_list_and_checks_every_name(store):
    reports, sec, _ = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    first = reports.share(
        ANN, a.report_id, users=[" BEN ", "cora", "ben", "ann", ""], roles=["Creator", "analyst"]
    )
    assert first.shared_with_users == ("ben", "cora"), "normalised, once each, owner left out"
    assert first.shared_with_roles == ("analyst", "creator")
    assert (first.version, first.definition) == (1, pivot()), "sharing is not a new version"
    second = reports.share(ANN, a.report_id, roles=["executive"])
    assert (second.shared_with_users, second.shared_with_roles) == ((), ("executive",))
    assert reports.list_shared(CORA) == [] and ids(reports.list_shared(EVE)) == [a.report_id]
    shares = sec.db.query("SELECT kind, name, shared_by FROM report_shares")
    assert [tuple(r) for r in shares] == [("role", "executive", "ann")]

    for users, roles, message in (
        (["nobody"], [], "There is no user called “nobody”."),
        (["ben", "zed", "amy"], [], "There are no users called “amy”, “zed”."),
        ([], ["wizard"], "“wizard” is not a role; roles: admin, executive, manager, analyst,"),
        ([], ["wizard", "boss"], "“boss”, “wizard” are not roles; roles:"),
        ([42], [], "Share with users given by name (text)."),
    ):
        with pytest.raises(ReportStoreError) as caught:
            reports.share(ANN, a.report_id, users=users, roles=roles)
        assert message in str(caught.value), (users, roles)
    with pytest.raises(TypeError, match="list of names"):
        reports.share(ANN, a.report_id, users="ben")
    assert reports.get(ANN, a.report_id).shared_with_roles == ("executive",), "list unchanged"

    cleared = reports.share(ANN, a.report_id)
    assert (cleared.shared_with_users, cleared.shared_with_roles) == ((), ())
    assert reports.list_shared(EVE) == [] and rows(sec, "report_shares") == 0
    records = sec.audit.list(action="report.share", newest_first=False)
    assert [(r.details["users"], r.details["roles"]) for r in records] == [
        (["ben", "cora"], ["analyst", "creator"]),
        ([], ["executive"]),
        ([], []),
    ]
    assert records[-1].details["previous_roles"] == ["executive"]
    # A disabled account still exists: it may be enabled again.
    sec.users.disable("mia", actor="root")
    assert reports.share(ANN, a.report_id, users=["mia"]).shared_with_users == ("mia",)


# --- names and input -----------------------------------------------------------------------------
def test_names_are_unique_per_owner_ignoring_case_and_free_again_after_a_delete(store):
    reports, _, _ = store
    first = reports.save(ANN, name="Weekly", description="", definition=pivot())
    for clash in ("Weekly", "weekly", "  WEEKLY ", "ＷＥＥＫＬＹ"):
        refused(
            lambda clash=clash: reports.save(ANN, name=clash, description="", definition={}),
            "You already have a report called “Weekly”.",
        )
    assert reports.save(BEN, name="Weekly", description="", definition={}).version == 1
    other = reports.save(ANN, name="Other", description="", definition={})
    refused(
        lambda: reports.save(
            ANN, name="WEEKLY", description="", definition={}, report_id=other.report_id
        ),
        "You already have a report called “Weekly”.",
    )
    recased = reports.save(
        ANN, name="WEEKLY", description="", definition={}, report_id=first.report_id
    )
    assert recased.version == 2, "a report may take its own name in another case"
    refused(
        lambda: reports.duplicate(ANN, other.report_id, name="weekly"),
        "You already have a report called “WEEKLY”.",
    )
    reports.delete(ANN, first.report_id)
    assert reports.save(ANN, name="Weekly", description="", definition={}).version == 1


def test_invalid_input_is_refused_with_a_message_and_nothing_is_written(store):
    reports, sec, _ = store
    big = {"blob": "x" * (70 * 1024 - 11)}
    assert len(json.dumps(big, separators=(",", ":"))) == 70 * 1024 > MAX_DEFINITION_BYTES
    cases = [
        ({"name": ""}, "Give the report a name."),
        ({"name": "x" * 81}, "A report name has at most 80 characters (this one has 81)."),
        ({"name": "two\nlines"}, "cannot contain line breaks or control characters"),
        ({"name": "evil\u202eslx.exe"}, "cannot contain line breaks or control characters"),
        ({"name": 42}, "A report name is text."),
        (
            {"description": "d" * 501},
            "A description has at most 500 characters (this one has 501).",
        ),
        ({"description": "bell\x07"}, "A description cannot contain control characters."),
        ({"definition": big}, "A report definition is too large to save (70 KB; at most 64 KB)"),
        ({"definition": ["rows"]}, "A report definition must be a JSON object (a dict), not list."),
        ({"definition": '{"rows": []}'}, "must be a JSON object (a dict), not str."),
        ({"definition": {"x": float("inf")}}, "holds a value JSON cannot hold"),
        ({"definition": {"x": object()}}, "holds a value JSON cannot hold"),
    ]
    for change, message in cases:
        fields = {"name": "Fine", "description": "", "definition": pivot(), **change}
        with pytest.raises(ReportStoreError) as caught:
            reports.save(ANN, **fields)
        assert message in str(caught.value), change
    assert reports.save(ANN, name="x" * 80, description="d" * 500, definition={}).version == 1
    assert rows(sec, "report_versions") == 1 and len(sec.audit.list(action="report.")) == 1
    with pytest.raises(TypeError, match="whole number"):
        reports.get(ANN, "1")  # type: ignore[arg-type]


def test_an_owner_has_a_limited_number_of_live_reports(store, monkeypatch):
    reports, _, _ = store
    monkeypatch.setattr(report_store, "MAX_REPORTS_PER_OWNER", 2)
    one = reports.save(ANN, name="One", description="", definition={})
    reports.save(ANN, name="Two", description="", definition={})
    for attempt in (
        lambda: reports.save(ANN, name="Three", description="", definition={}),
        lambda: reports.duplicate(ANN, one.report_id, name="Three"),
    ):
        refused(attempt, "You have 2 saved reports; delete one first.")
    reports.save(ANN, name="One", description="", definition={"n": 2}, report_id=one.report_id)
    reports.delete(ANN, one.report_id)
    assert reports.save(ANN, name="Three", description="", definition={}).version == 1


# --- duplicate -----------------------------------------------------------------------------------
def test_duplicate_copies_the_latest_version_into_an_unshared_report_of_ones_own(store):
    reports, sec, clock = store
    a = reports.save(ANN, name="Ann's", description="v1", definition=pivot(1))
    reports.save(ANN, name="Ann's", description="v2", definition=pivot(2), report_id=a.report_id)
    reports.share(ANN, a.report_id, users=["ben"], roles=["executive"])
    clock.advance(hours=1)
    copy = reports.duplicate(BEN, a.report_id, name="Ben's copy")
    assert copy.report_id != a.report_id
    assert (copy.owner, copy.version, copy.latest_version, copy.saved_by) == ("ben", 1, 1, "ben")
    assert (copy.name, copy.description, copy.definition) == ("Ben's copy", "v2", pivot(2))
    assert (copy.shared_with_users, copy.shared_with_roles) == ((), ()), "shares are not copied"
    assert copy.saved_at == clock()
    assert [v.version for v in reports.versions(ANN, a.report_id)] == [2, 1], "source unchanged"
    assert ids(reports.list(ANN)) == [a.report_id], "the copy is Ben's"
    assert reports.list_shared(EVE)[0].report_id == a.report_id
    refused(lambda: reports.duplicate(EVE, 9999, name="x"))
    [record] = sec.audit.list(action="report.duplicate")
    assert (record.actor, record.target) == ("ben", f"report:{copy.report_id}")
    assert record.details == {
        "version": 1,
        "name": "Ben's copy",
        "from_report": a.report_id,
        "from_version": 2,
    }


# --- the database itself -------------------------------------------------------------------------
def test_versions_cannot_be_updated_or_deleted_and_shares_are_checked(store):
    reports, sec, _ = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    before = sec.db.query("SELECT * FROM report_versions")
    truncate = sec.db.dialect == "postgresql"
    for statement in (
        "UPDATE report_versions SET definition = '{}'",
        "UPDATE report_versions SET saved_by = 'mallory' WHERE version = 1",
        "DELETE FROM report_versions",
        *(["TRUNCATE report_versions"] if truncate else []),
    ):
        with pytest.raises(IntegrityError, match="append-only"), sec.db.transaction() as tx:
            tx.execute(statement)
    assert sec.db.query("SELECT * FROM report_versions") == before
    columns = "report_id, version, name, description, definition, saved_by, saved_at"
    with pytest.raises(IntegrityError), sec.db.transaction() as tx:
        tx.execute(f"INSERT INTO report_versions ({columns}) SELECT {columns} FROM report_versions")
    with pytest.raises(IntegrityError), sec.db.transaction() as tx:
        tx.execute(
            "INSERT INTO reports (owner, name, name_key, created_at) "
            "SELECT owner, name, name_key, created_at FROM reports"
        )
    for kind, report_id in (("group", a.report_id), ("user", 9999)):
        with pytest.raises(IntegrityError), sec.db.transaction() as tx:
            tx.execute(
                "INSERT INTO report_shares (report_id, kind, name, shared_by, shared_at) "
                "VALUES (?, ?, 'ben', 'ann', 'now')",
                (report_id, kind),
            )
    assert rows(sec, "report_shares") == 0 and reports.get(ANN, a.report_id).version == 1


def test_each_change_and_its_audit_record_commit_together(store, monkeypatch):
    reports, sec, _ = store
    a = reports.save(ANN, name="Ann's", description="", definition=pivot())
    reports.share(ANN, a.report_id, users=["ben"])
    state = {t: sec.db.query(f"SELECT * FROM {t}") for t in ("reports", "report_versions")}
    records = len(sec.audit.list(action="report."))

    def audit_fails(*args, **kwargs):
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr(reports.audit, "append", audit_fails)
    for attempt in (
        lambda: reports.save(ANN, name="New", description="", definition=pivot()),
        lambda: reports.save(
            ANN, name="Renamed", description="", definition={}, report_id=a.report_id
        ),
        lambda: reports.duplicate(BEN, a.report_id, name="Copy"),
        lambda: reports.share(ANN, a.report_id, users=["eve"], roles=["creator"]),
        lambda: reports.delete(ANN, a.report_id),
    ):
        with pytest.raises(RuntimeError, match="audit unavailable"):
            attempt()
    monkeypatch.undo()
    for table, contents in state.items():
        assert sec.db.query(f"SELECT * FROM {table}") == contents, table
    assert reports.get(BEN, a.report_id).shared_with_users == ("ben",), "the old list stays"
    assert len(sec.audit.list(action="report.")) == records


# --- concurrency ---------------------------------------------------------------------------------
def test_concurrent_saves_of_one_report_get_consecutive_versions(store):
    reports, sec, clock = store
    first = reports.save(ANN, name="Busy", description="", definition=pivot(0))
    # Four app databases over the same data, as four app processes would have.
    key = sec.settings.secret("audit_key")
    stores = [reports]
    for _ in range(3):
        db = AppDB(sec.db.path or os.environ["SPOTLIGHT_APP_DB"])
        stores.append(ReportStore(db, AuditLog(db, clock, key=key), clock))
    threads = 8
    barrier = threading.Barrier(threads)

    def attempt(i: int) -> int:
        barrier.wait(10)
        store = stores[i % 4]
        if i % 2:  # shares interleave with the saves without disturbing them
            store.share(ANN, first.report_id, users=["ben"] if i % 4 == 1 else ["eve"])
        return store.save(
            ANN, name="Busy", description="", definition=pivot(i + 1), report_id=first.report_id
        ).version

    with ThreadPoolExecutor(threads) as pool:
        versions = list(pool.map(attempt, range(threads)))
    assert sorted(versions) == list(range(2, threads + 2)), "no gap, no duplicate"
    history = reports.versions(ANN, first.report_id)
    assert [v.version for v in history] == list(range(threads + 1, 0, -1))
    assert sorted(v.definition["top_n"] for v in history) == list(range(threads + 1))
    assert len(reports.get(ANN, first.report_id).shared_with_users) == 1, "one whole list won"
    assert len(sec.audit.list(action="report.save")) == threads + 1
    assert sec.audit.verify_chain() == (True, None)
