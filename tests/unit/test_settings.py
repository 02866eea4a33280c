from __future__ import annotations

import os
import re
import stat

import pytest

import settings
from settings import PROJECT_ROOT, SETTINGS, SettingsError, load_settings


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, flags=re.MULTILINE))
    missing = [s.name for s in SETTINGS if s.name not in documented]
    assert not missing, f"settings missing from the README's settings table: {missing}"
    stale = documented - {s.name for s in SETTINGS}
    assert not stale, f"README documents settings that do not exist: {sorted(stale)}"


def test_every_setting_has_help_text():
    assert all(s.help.strip() for s in SETTINGS)


def test_environment_overrides_secrets_file_overrides_default(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[spotlight]\ndemo_views = 1234\nreporting_currency = "EUR"\n')
    resolved = load_settings(env={"SPOTLIGHT_DEMO_VIEWS": "99"}, secrets_path=secrets)
    assert resolved.demo_views == 99
    assert resolved.reporting_currency == "EUR"
    assert resolved.demo_seed == 7
    assert load_settings(env={}, secrets_path=tmp_path / "none").reporting_currency == "USD"


def test_no_setting_promises_what_nothing_reads():
    """Periods are UTC days; there was a time zone setting that nothing read (issue 11)."""
    names = {s.name for s in SETTINGS}
    assert "timezone" not in names
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "SPOTLIGHT_TIMEZONE" not in readme
    assert "UTC days" in readme


def test_bad_number_names_the_variable():
    with pytest.raises(SettingsError, match="SPOTLIGHT_DEMO_VIEWS"):
        load_settings(env={"SPOTLIGHT_DEMO_VIEWS": "lots"}, secrets_path=PROJECT_ROOT / "missing")


def test_malformed_secrets_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "secrets.toml"
    bad.write_text("[spotlight\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={}, secrets_path=bad)


def test_demo_mode_generates_an_owner_only_key_outside_the_data_folder(tmp_path):
    s = load_settings(
        env={"SPOTLIGHT_KEY_DIR": str(tmp_path / "keys")}, secrets_path=tmp_path / "none"
    )
    key = s.secret("extract_key")
    assert len(key) >= settings.MIN_KEY_LENGTH
    assert s.secret("extract_key") == key, "the generated key is kept, not regenerated"
    path = tmp_path / "keys" / "extract_key.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    assert s.secret("cookie_key") != key, "each purpose gets its own key"


@pytest.mark.parametrize("bad", ["short", "some_signature_key", "   "])
def test_weak_or_sample_keys_are_refused(tmp_path, bad):
    s = load_settings(env={"SPOTLIGHT_COOKIE_KEY": bad}, secrets_path=tmp_path / "none")
    with pytest.raises(SettingsError):
        s.secret("cookie_key")


def test_a_warehouse_without_an_extract_key_is_refused(tmp_path):
    s = load_settings(
        env={"SPOTLIGHT_WAREHOUSE_URL": "postgresql://u@h/db", "SPOTLIGHT_KEY_DIR": str(tmp_path)},
        secrets_path=tmp_path / "none",
    )
    assert not s.demo_mode
    with pytest.raises(SettingsError, match="SPOTLIGHT_EXTRACT_KEY is not set"):
        s.secret("extract_key")
    assert not list(tmp_path.iterdir()), "no key is generated when a warehouse is configured"


def test_settings_survive_pickling_for_worker_processes(tmp_path):
    import pickle

    s = load_settings(env={"SPOTLIGHT_DEMO_VIEWS": "123"}, secrets_path=tmp_path / "none")
    assert pickle.loads(pickle.dumps(s)).demo_views == 123  # noqa: S301 - our own bytes
