"""Whether a request came over HTTPS (for the Secure cookie flag), believed from trusted proxies
only."""

from __future__ import annotations

import pytest

from security.client_address import parse_trusted_proxies, served_over_https

PROXIES = parse_trusted_proxies("127.0.0.1")


@pytest.mark.parametrize(
    ("url", "peer", "proto", "expected"),
    [
        ("https://analytics.example.com/", "203.0.113.9", None, True),
        ("http://localhost:8501/", "127.0.0.1", None, False),
        ("http://app:8501/", "127.0.0.1", "https", True),  # TLS ended at the trusted proxy
        ("http://app:8501/", "127.0.0.1", "https, http", True),
        ("http://app:8501/", "203.0.113.9", "https", False),  # anyone can send the header
        ("http://app:8501/", "127.0.0.1", "http", False),
        (None, None, "https", False),
    ],
)
def test_https_is_what_the_url_or_a_trusted_proxy_says(url, peer, proto, expected):
    assert served_over_https(url, peer, proto, PROXIES) is expected
