"""security/sso.py: ID-token claims to an identity, and the settings that describe the mapping."""

from __future__ import annotations

import pytest

from security.sso import (
    SsoConfig,
    SsoRefused,
    identity_from_claims,
    parse_role_map,
    session_token,
    sso_config,
)
from settings import SettingsError, load_settings

ROLE_MAP = parse_role_map(
    "sp-analysts=analyst, sp-managers=manager, sp-finance=finance, sp-creators=creator, "
    "sp-leads=executive, sp-leads=finance"
)
CONFIG = SsoConfig(role_map=ROLE_MAP, mfa_amr=frozenset({"mfa", "otp", "hwk"}))


def claims(**extra):
    return {
        "iss": "https://idp.example",
        "sub": "abc123",
        "email": "Ana@Example.com",
        "email_verified": True,
        **extra,
    }


def refused(c, config=CONFIG) -> SsoRefused:
    with pytest.raises(SsoRefused) as info:
        identity_from_claims(c, config)
    return info.value


def test_one_group_maps_to_its_role_and_the_username_is_normalised():
    who = identity_from_claims(claims(groups=["sp-analysts"], name="Ana Diaz"), CONFIG)
    assert who.username == "ana@example.com"
    assert who.display_name == "Ana Diaz"
    assert who.roles == {"analyst"}
    assert who.creator_ids == frozenset()
    assert who.provider_mfa is False


def test_several_groups_give_every_role_they_map_to():
    who = identity_from_claims(claims(groups=["sp-analysts", "sp-managers", "sp-leads"]), CONFIG)
    assert who.roles == {"analyst", "manager", "executive", "finance"}


def test_unknown_groups_are_ignored_beside_a_mapped_one():
    who = identity_from_claims(claims(groups=["everyone", "sp-managers", "vpn-users"]), CONFIG)
    assert who.roles == {"manager"}


def test_only_unknown_groups_is_no_access_never_a_default_role():
    r = refused(claims(groups=["everyone", "Sp-Analysts"]))  # case counts
    assert r.reason == "unmapped"
    assert "Sp-Analysts" in r.detail


def test_missing_groups_claim_is_no_access_and_says_which_claim():
    r = refused(claims())
    assert r.reason == "unmapped"
    assert "'groups'" in r.detail


@pytest.mark.parametrize("value", [[], "", None, 42, {"a": 1}, [1, 2]])
def test_empty_or_unusable_groups_claims_are_no_access(value):
    assert refused(claims(groups=value)).reason == "unmapped"


def test_a_single_string_is_one_group():
    assert identity_from_claims(claims(groups="sp-finance"), CONFIG).roles == {"finance"}
    # Not split on spaces or commas: group names may hold them.
    assert refused(claims(groups="sp-finance sp-analysts")).reason == "unmapped"


@pytest.mark.parametrize(
    "group", [" sp-analysts", "sp-analysts\t", " sp-analysts\t", "sp-analysts "]
)
def test_group_names_match_exactly_spaces_count(group):
    r = refused(claims(groups=[group]))
    assert r.reason == "unmapped" and repr(group) in r.detail
    assert refused(claims(groups=group)).reason == "unmapped"


def test_a_json_role_map_keeps_spaces_in_group_names():
    config = SsoConfig(role_map=parse_role_map('{" padded ": "analyst"}'))
    assert identity_from_claims(claims(groups=[" padded "]), config).roles == {"analyst"}
    assert refused(claims(groups=["padded"]), config).reason == "unmapped"


@pytest.mark.parametrize("verified", [False, "true", 1, None, "missing"])
def test_an_email_username_needs_email_verified_true(verified):
    c = claims(groups=["sp-analysts"])
    if verified == "missing":
        del c["email_verified"]
    else:
        c["email_verified"] = verified
    r = refused(c)
    assert r.reason == "unverified_email"
    assert "ana@example.com" in r.detail.lower() and "sso_username_claim" in r.detail


def test_a_stable_username_claim_needs_no_verified_email():
    config = SsoConfig(role_map=ROLE_MAP, username_claim="sub")
    c = claims(groups=["sp-analysts"], email_verified=False)
    assert identity_from_claims(c, config).username == "abc123"


def test_internal_and_external_groups_together_are_refused():
    r = refused(claims(groups=["sp-analysts", "sp-creators"], creator_ids=[3]))
    assert r.reason == "conflicting_roles"


@pytest.mark.parametrize(
    ("value", "expected"),
    [([4, 7], {4, 7}), (["4", "7"], {4, 7}), ("4, 7", {4, 7}), (9, {9}), (None, set())],
)
def test_creator_scope_claim_forms(value, expected):
    extra = {} if value is None else {"creator_ids": value}
    who = identity_from_claims(claims(groups=["sp-creators"], **extra), CONFIG)
    assert who.roles == {"creator"}
    assert who.creator_ids == expected


@pytest.mark.parametrize(
    "value", ["4;7", ["x"], [True], [4.5], {"ids": [4]}, ["-3"], ["１２"], [[4]], True]
)
def test_malformed_creator_scope_is_refused_not_widened(value):
    r = refused(claims(groups=["sp-creators"], creator_ids=value))
    assert r.reason == "bad_creator_scope"
    assert "creator_ids" in r.detail


def test_creator_scope_claim_is_ignored_for_internal_roles():
    who = identity_from_claims(claims(groups=["sp-analysts"], creator_ids="garbage"), CONFIG)
    assert who.creator_ids == frozenset()


@pytest.mark.parametrize("bad", [None, "", "   ", "x", "has space@example.com", 17])
def test_missing_or_unusable_username_is_refused(bad):
    c = claims(groups=["sp-analysts"])
    c["email"] = bad
    assert refused(c).reason == "no_username"


@pytest.mark.parametrize(
    ("amr", "expected"),
    [(["pwd", "mfa"], True), ("otp", True), (["HWK"], True), (["pwd"], False), (None, False)],
)
def test_provider_mfa_from_the_amr_claim(amr, expected):
    c = claims(groups=["sp-finance"], **({} if amr is None else {"amr": amr}))
    assert identity_from_claims(c, CONFIG).provider_mfa is expected


def test_amr_counts_for_nothing_when_no_values_are_configured():
    config = SsoConfig(role_map=ROLE_MAP)
    assert not identity_from_claims(claims(groups=["sp-finance"], amr=["mfa"]), config).provider_mfa


def test_role_map_as_json_and_its_errors():
    assert parse_role_map('{"Finance, EU": ["finance"], "a=b": "analyst"}') == {
        "Finance, EU": {"finance"},
        "a=b": {"analyst"},
    }
    for bad in ("sp-x", "sp-x=", "=analyst", "sp-x=wizard", "{bad json", "[1]", '{"g": [1]}'):
        with pytest.raises(SettingsError, match="SPOTLIGHT_SSO_ROLE_MAP"):
            parse_role_map(bad)
    assert parse_role_map("") == {}


def test_settings_refuse_sso_without_a_role_map_or_an_unknown_method(tmp_path):
    def settings(**env):
        values = {f"SPOTLIGHT_{k.upper()}": v for k, v in env.items()}
        return load_settings(env=values, secrets_path=tmp_path / "none.toml")

    assert sso_config(settings()).role_map == {}  # local only: no map needed
    with pytest.raises(SettingsError, match="SSO_ROLE_MAP is empty"):
        sso_config(settings(sign_in_methods="sso"))
    with pytest.raises(SettingsError, match="SIGN_IN_METHODS must be one of"):
        sso_config(settings(sign_in_methods="ldap"))
    config = sso_config(
        settings(sign_in_methods="both", sso_role_map="g=analyst", sso_mfa_amr="MFA, otp")
    )
    assert config.mfa_amr == {"mfa", "otp"}


def test_session_token_is_per_sign_in_and_keyed():
    key = "k" * 40
    first = session_token(claims(nonce="n1", iat=100), key)
    assert first and first == session_token(claims(nonce="n1", iat=100, groups=["x"]), key)
    assert first != session_token(claims(nonce="n2", iat=100), key)
    assert first != session_token(claims(nonce="n1", iat=100), "j" * 40)
    assert session_token({"iss": "x", "sub": "y"}, key) is None
