"""The client's address: the peer, or behind trusted reverse proxies the address they forwarded.

``X-Forwarded-For`` is a list each proxy appends to; anyone can send one, so it is believed only
from a peer listed in the ``trusted_proxies`` setting, and then read from the right: the first
address that is not itself a trusted proxy is the client (the leftmost entries are whatever the
client claimed). Without trusted proxies the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxySettingError(ValueError):
    """The trusted-proxies setting holds something that is not an address or network."""


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """Networks from a comma-separated list of addresses or CIDR networks; ProxySettingError names
    the first bad entry."""
    networks = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ProxySettingError(
                f"SPOTLIGHT_TRUSTED_PROXIES: {item!r} is not an address or network "
                "(e.g. 127.0.0.1, 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[Network]
) -> bool:
    return any(address in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Iterable[Network]) -> str:
    """The client's address as text ("local" when nothing is known)."""
    proxies = tuple(proxies)
    peer_address = _address(peer or "")
    if peer_address is None:
        return peer or "local"
    if not proxies or not forwarded_for or not _trusted(peer_address, proxies):
        return str(peer_address)
    hops = [_address(part) for part in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop is None:
            # A malformed entry: nothing to its left can be trusted either; the last good hop is
            # the best we know.
            break
        if not _trusted(hop, proxies):
            return str(hop)
        peer_address = hop
    return str(peer_address)


def served_over_https(
    url: str | None, peer: str | None, forwarded_proto: str | None, proxies: Iterable[Network]
) -> bool:
    """True when the browser reached the app over HTTPS: the page's own URL says so, or a
    trusted proxy in front of the app says it terminated TLS (``X-Forwarded-Proto: https``)."""
    if url and url.lower().startswith("https://"):
        return True
    peer_address = _address(peer or "")
    if peer_address is None or not forwarded_proto or not _trusted(peer_address, tuple(proxies)):
        return False
    return forwarded_proto.split(",")[0].strip().lower() == "https"
