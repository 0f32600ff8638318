"""A browser's mDNS host candidates, and a network where nobody answers mDNS queries."""

from __future__ import annotations

import asyncio

import aioice.mdns
import pytest


def with_mdns_candidate(sdp: str, name: str = "0b7a4a0e-5b3a-4a8e-9a38-2d1c1f0c9a11.local") -> str:
    """A browser's offer: a host candidate hidden behind an mDNS name, in the first section."""
    candidate = f"a=candidate:9 1 udp 2113937151 {name} 50999 typ host generation 0\r\n"
    head, sep, rest = sdp.partition("a=candidate:")
    assert sep, "the offer has no candidates"
    return head + candidate + sep + rest


@pytest.fixture
def mdns_never_answers(monkeypatch):
    """No mDNS responder on the network: every query waits until the test ends."""
    queried: list[str] = []
    release = asyncio.Event()

    async def resolve(self, hostname, timeout=1.0):
        queried.append(hostname)
        await release.wait()
        return None

    monkeypatch.setattr(aioice.mdns.MDnsProtocol, "resolve", resolve)
    yield queried
    release.set()
