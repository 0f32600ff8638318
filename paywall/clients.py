"""``client_address``: who a request comes from, for the per-client limits (log-in
failures, sign-ups), also behind a reverse proxy.

Behind a TLS proxy every request comes from the proxy's address, so a per-client limit
would be one limit for everybody. When the peer is one of ``STAGEPASS_TRUSTED_PROXIES``,
the client is taken from ``X-Forwarded-For``: the right-most address that is not itself a
trusted proxy (the left part of that header is whatever the client wrote: never trusted).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Optional, Sequence, Union

from aiohttp import web

__all__ = ["client_address", "parse_networks"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@functools.lru_cache(maxsize=8)
def parse_networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    """``("10.0.0.1", "172.16.0.0/12")`` -> networks (validated by ``Settings``)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _trusted(address: Optional[str], networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: web.Request, trusted: Sequence[str] = ()) -> str:
    """The client's address: the peer, or behind ``trusted`` proxies the forwarded one."""
    peer = request.remote or "?"
    trusted_proxies = parse_networks(tuple(trusted))
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address should be: the proxy is all we know
    return peer
