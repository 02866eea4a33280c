"""The HAProxy configuration scripts/replicas.sh deploys (deploy/haproxy.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deploy.haproxy import AFFINITY_COOKIE, ConfigError, render


def test_every_replica_is_health_checked_and_pinned_by_cookie():
    text = render("0.0.0.0:8500", ["10.0.0.11:8501", "10.0.0.12:8501", "app-3.internal:8501"])
    assert "option httpchk GET /_stcore/health" in text
    assert f"cookie {AFFINITY_COOKIE} insert indirect nocache httponly" in text
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [
        ["server", f"replica{i}", address, "cookie", f"replica{i}"]
        for i, address in enumerate(
            ["10.0.0.11:8501", "10.0.0.12:8501", "app-3.internal:8501"], start=1
        )
    ]
    # The app's cookie_secure=auto and client address depend on these two headers.
    assert "http-request set-header X-Forwarded-Proto http\n" in text
    assert "option forwardfor" in text
    assert " secure" not in text.split(f"cookie {AFFINITY_COOKIE}", 1)[1].splitlines()[0]


def test_behind_tls_the_cookie_is_secure_and_the_app_is_told_https():
    text = render(":443 ssl crt /etc/haproxy/spotlight.pem", ["10.0.0.11:8501"], https=True)
    assert "http-request set-header X-Forwarded-Proto https\n" in text
    assert 'attr "SameSite=Lax" secure' in text


@pytest.mark.parametrize(
    "servers",
    [[], ["10.0.0.11"], ["10.0.0.11:0"], ["10.0.0.11:70000"], ["a b:80"], ["x:80\n  bind :1"]],
)
def test_a_bad_replica_address_is_refused_with_a_clear_error(servers):
    with pytest.raises(ConfigError, match="replica"):
        render("0.0.0.0:8500", servers)


def test_a_bind_spanning_lines_is_refused():
    with pytest.raises(ConfigError, match="bind"):
        render("0.0.0.0:8500\nlisten evil", ["10.0.0.11:8501"])


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="scripts/test.sh installs haproxy")
def test_haproxy_accepts_the_rendered_configuration(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render("127.0.0.1:18500", ["127.0.0.1:18501", "127.0.0.1:18502"]))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "WARNING" not in check.stderr, check.stderr
