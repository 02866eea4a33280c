"""The HAProxy configuration for N app replicas, from deploy/haproxy.cfg.template.

    python -m deploy.haproxy --bind 0.0.0.0:8500 --server 10.0.0.11:8501 --server 10.0.0.12:8501
    python -m deploy.haproxy --bind ':443 ssl crt /etc/haproxy/spotlight.pem' --https ... \\
        > /etc/haproxy/haproxy.cfg && haproxy -c -f /etc/haproxy/haproxy.cfg

Used by scripts/replicas.sh and by the replicas end-to-end test, so the test runs the config an
operator deploys.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).with_name("haproxy.cfg.template")
AFFINITY_COOKIE = "spotlight_replica"
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


class ConfigError(ValueError):
    """A replica address or option that cannot go into the configuration."""


def _server_address(text: str) -> str:
    match = _HOST_PORT.match(text.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"replica address {text!r} is not host:port (e.g. 10.0.0.11:8501)")
    host = match.group(1).strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host.startswith("-") or ".." in host:
            raise ConfigError(f"replica host {host!r} is not a host name") from None
    return text.strip()


def render(
    bind: str,
    servers: list[str],
    *,
    https: bool = False,
    maxconn_per_replica: int = 500,
    global_extra: str = "",
) -> str:
    """The configuration text: ``bind`` is HAProxy's bind argument (``0.0.0.0:8500``, or with
    ``ssl crt …`` when HAProxy terminates TLS, then ``https=True``); ``servers`` host:port each."""
    if not servers:
        raise ConfigError("at least one replica (--server host:port)")
    if "\n" in bind or not bind.strip():
        raise ConfigError("bind must be one HAProxy bind argument, e.g. 0.0.0.0:8500")
    lines = [
        f"    server replica{i} {_server_address(address)} cookie replica{i}"
        for i, address in enumerate(servers, start=1)
    ]
    return Template(TEMPLATE.read_text()).substitute(
        bind=bind.strip(),
        scheme="https" if https else "http",
        affinity_cookie=AFFINITY_COOKIE,
        cookie_secure=" secure" if https else "",
        maxconn_per_replica=int(maxconn_per_replica),
        global_extra=global_extra,
        servers="\n".join(lines),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", required=True, help="e.g. 0.0.0.0:8500")
    parser.add_argument("--server", action="append", required=True, help="replica host:port")
    parser.add_argument(
        "--https", action="store_true", help="HAProxy terminates TLS (bind ... ssl crt ...)"
    )
    parser.add_argument("--maxconn-per-replica", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        text = render(
            args.bind, args.server, https=args.https, maxconn_per_replica=args.maxconn_per_replica
        )
    except ConfigError as exc:
        parser.error(str(exc))
    print(text, end="")


if __name__ == "__main__":
    main()
