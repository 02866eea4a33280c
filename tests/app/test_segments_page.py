"""The Segments page as a marketer, an analyst and an admin meet it: build with a live size,
save, reopen, version, overlap, JSON editing with clear errors, visibility between owners, and the
CRM hand-off behind step-up."""

from __future__ import annotations

import json

import pyotp
import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from security.demo import DEMO_PASSWORD
from security.permissions import Principal
from tests.app.conftest import CLOCK, SECRETS, new_app, sign_in, signed_in_app, texts, widget

pytestmark = pytest.mark.xdist_group("app-segments")
OTHER_PASSWORD = "quiet harbour lamp 92"


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _segments(at: AppTest) -> AppTest:
    return _ok(at.switch_page("app_pages/segments.py").run())


def _view(at: AppTest, view: str) -> AppTest:
    return _ok(at.segmented_control(key="segments-view").set_value(view).run())


def _add(at: AppTest, kind: str) -> AppTest:
    adder = next(s for s in at.selectbox if s.label == "Add a condition")
    _ok(adder.set_value(kind).run())
    return _ok(next(b for b in at.button if b.label == "➕ Add").click().run())


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _save(at: AppTest, name: str) -> AppTest:
    widget(at, "text_input", "Name", form="segment-save").input(name)
    button = next(b for b in at.button if b.form_id == "segment-save")
    return _ok(button.click().run())


def test_a_marketer_builds_a_segment_and_watches_its_size_change():
    at = _segments(signed_in_app("marketer"))
    assert any("Add a condition" in t for t in texts(at, "info"))
    at = _add(at, "country")
    first = int(_metric(at, "Viewers in the segment").replace(",", ""))
    assert first > 0
    at = _add(at, "watch_hours")
    second = int(_metric(at, "Viewers in the segment").replace(",", ""))
    assert 0 < second <= first, "an AND of two conditions is no larger than the first alone"
    assert any("Data table: How each condition narrows" in e.label for e in at.expander)
    # Negating the second condition gives the rest of the first.
    not_box = [c for c in at.checkbox if c.label == "Not"][1]
    _ok(not_box.check().run())
    negated = int(_metric(at, "Viewers in the segment").replace(",", ""))
    assert negated + second == first
    at = _save(at, "Lapsed fans")
    assert any("Editing" in t and "Lapsed fans" in t for t in texts(at, "info"))
    # A second save is version 2; both are listed.
    at = _save(at, "Lapsed fans")
    at = _view(at, "saved")
    versions = at.selectbox(
        key=next(k for k in at.session_state if str(k).startswith("saved-version-"))
    )
    assert len(versions.options) == 2


def test_json_editing_names_the_bad_field_and_accepts_nested_groups():
    at = _segments(signed_in_app("marketer"))
    area = next(t for t in at.text_area if t.label == "Definition")
    bad = {
        "version": 1,
        "window": {"last_days": 30},
        "match": {"op": "and", "items": [{"type": "watch_hours", "min": "lots"}]},
    }
    _ok(area.input(json.dumps(bad)).run())
    _ok(next(b for b in at.button if b.label == "Apply the JSON").click().run())
    errors = " ".join(texts(at, "error")).replace("\\", "")
    assert "match.items[0].min: must be a number" in errors
    nested = {
        "version": 1,
        "window": {"last_days": 60},
        "match": {
            "op": "and",
            "items": [
                {"type": "sessions", "min": 1},
                {
                    "op": "or",
                    "items": [
                        {"type": "device", "any_of": ["tv"]},
                        {"type": "plan", "any_of": ["premium"]},
                    ],
                },
            ],
        },
    }
    area = next(t for t in at.text_area if t.label == "Definition")
    _ok(area.input(json.dumps(nested)).run())
    _ok(next(b for b in at.button if b.label == "Apply the JSON").click().run())
    assert int(_metric(at, "Viewers in the segment").replace(",", "")) > 0
    assert any(b.label == "Remove this group" for b in at.button)


def test_owners_see_their_own_and_analysts_see_everyone():
    security = app_context().security
    if security.users.get("marketer-two") is None:
        security.users.add("marketer-two", OTHER_PASSWORD, ["marketer"], actor="test")
    owner = _segments(signed_in_app("marketer"))
    owner = _add(owner, "subscribed")
    owner = _save(owner, "Owner only audience")
    other = _view(_segments(sign_in(new_app().run(), "marketer-two", OTHER_PASSWORD)), "saved")
    listed = " ".join(str(f.value["Name"].tolist()) for f in other.dataframe if "Name" in f.value)
    assert "Owner only audience" not in listed
    analyst = _view(_segments(signed_in_app("analyst")), "saved")
    listed = " ".join(str(f.value["Name"].tolist()) for f in analyst.dataframe if "Name" in f.value)
    assert "Owner only audience" in listed


def test_overlap_of_two_saved_segments():
    at = _segments(signed_in_app("marketer"))
    for name, kind in (("Overlap A", "subscribed"), ("Overlap B", "churned")):
        at = _view(at, "build")
        if any(b.label == "Start a new segment" for b in at.button):
            _ok(next(b for b in at.button if b.label == "Start a new segment").click().run())
        at = _add(at, kind)
        at = _save(at, name)
    at = _view(at, "overlap")
    picker = at.multiselect(key="overlap-segments")
    assert {"Overlap A", "Overlap B"} <= set(picker.options), picker.options
    marketer = Principal(
        username="marketer", display_name="m", roles={"marketer"}, mfa_verified=True
    )
    ids = [
        s.segment_id
        for s in app_context().security.segments.list(marketer)
        if s.name in ("Overlap A", "Overlap B")
    ]
    _ok(picker.set_value(ids).run())
    [table] = [f.value for f in at.dataframe if "kind" in f.value.columns]
    regions = table[table["kind"] == "region"]
    union = table.loc[table["kind"] == "union", "viewers"].iloc[0]
    assert regions["viewers"].sum() == union
    totals = dict(
        zip(
            table.loc[table["kind"] == "total", "label"],
            table.loc[table["kind"] == "total", "viewers"],
            strict=True,
        )
    )
    assert len(totals) == 2 and union <= sum(totals.values())


def test_crm_export_needs_an_admin_and_a_step_up():
    marketer = _segments(signed_in_app("marketer"))
    marketer = _add(marketer, "subscribed")
    marketer = _save(marketer, "For the CRM")
    marketer = _view(marketer, "saved")
    assert any("personal data" in c for c in texts(marketer, "caption"))
    assert not [b for b in marketer.get("download_button")]
    admin = _view(_segments(signed_in_app("admin")), "saved")
    assert any("confirm it is you" in t for t in texts(admin, "info"))
    widget(admin, "text_input", "Password", form="step-up-crm").input(DEMO_PASSWORD)
    CLOCK.advance(seconds=31)
    code = pyotp.TOTP(SECRETS["admin"]).at(CLOCK())
    widget(admin, "text_input", "6-digit code", form="step-up-crm").input(code)
    admin = _ok(widget(admin, "button", "Confirm", form="step-up-crm").click().run())
    buttons = [b for b in admin.get("download_button")]
    assert buttons, "after the step-up the CSV button is offered"


def test_an_analyst_fits_clusters_and_turns_one_into_a_rule_segment():
    analyst = _view(_segments(signed_in_app("analyst")), "clusters")
    form = "fit-clusters"
    next(s for s in analyst.selectbox if s.form_id == form and s.label == "Clusters").set_value(2)
    analyst = _ok(next(b for b in analyst.button if b.form_id == form).click().run())
    security = app_context().security
    in_use = security.segments.model_in_use()
    assert in_use is not None and in_use.params["k"] == 2
    [record] = security.audit.list(action="model.fit", actor="analyst", limit=1)
    assert record.outcome == "ok"
    assert any(f"version {in_use.id}" in m.lower() for m in texts(analyst, "markdown"))
    analyst = _ok(next(b for b in analyst.button if b.label == "Find the rule").click().run())
    assert any("Precision" in c for c in texts(analyst, "caption"))
    analyst = _ok(next(b for b in analyst.button if b.label == "Open in the builder").click().run())
    assert analyst.segmented_control(key="segments-view").value == "build"
    assert int(_metric(analyst, "Viewers in the segment").replace(",", "")) > 0


def test_a_marketer_sees_the_clusters_but_cannot_fit_them():
    marketer = _view(_segments(signed_in_app("marketer")), "clusters")
    assert not [b for b in marketer.button if b.form_id == "fit-clusters"]
