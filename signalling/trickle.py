"""Trickle ICE for WHIP/WHEP sessions: the ``PATCH`` body (RFC 9725 section 4.3.1).

A client may send its offer before it has gathered all its candidates and ``PATCH`` the
rest to the session as an ``application/trickle-ice-sdpfrag`` (RFC 8840)::

    a=ice-ufrag:EsAw
    a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
    m=audio 9 UDP/TLS/RTP/SAVPF 111
    a=mid:0
    a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0
    a=end-of-candidates

This module reads and checks such a fragment against the session it is for; nothing is
changed unless the whole fragment is usable. ICE restarts (``If-Match: *``, or new ICE
credentials) are not supported: 422, as the RFC requires of a server that trickles but
does not restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from core.access import Refusal

__all__ = ["CONTENT_TYPE", "Fragment", "check_if_match", "parse_fragment"]

CONTENT_TYPE = "application/trickle-ice-sdpfrag"

_TYPES = {"host", "srflx", "prflx", "relay"}
_PROTOCOLS = {"udp", "tcp"}


@dataclass
class Fragment:
    """What a trickle PATCH carries: ``(mid, candidate attribute value)`` pairs and
    whether the client has sent its last candidate."""

    candidates: list[tuple[str, str]] = field(default_factory=list)
    end: bool = False


def check_if_match(if_match: Optional[str], etag: str) -> None:
    """The ``If-Match`` rules: absent or the session's entity tag trickles; ``*`` asks for
    an ICE restart (422); another tag is a stale or foreign session (412)."""
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" in tags:
        raise Refusal(422, "ice_restart_not_supported",
                            "ICE restarts are not supported; start a new session instead")
    if etag not in tags and etag.removeprefix("W/") not in tags:
        raise Refusal(412, "etag_mismatch",
                            f"If-Match {if_match!r} does not match this session's ETag {etag}")


def _check_candidate(value: str) -> None:
    """Reject what aiortc's candidate parser would choke on or misread."""
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        raise ValueError("expected '<foundation> <component> <transport> <priority> <address> <port> typ <type>'")
    if not (bits[1].isdigit() and bits[3].isdigit() and bits[5].isdigit()):
        raise ValueError("component, priority and port must be numbers")
    if not 0 < int(bits[5]) < 65536:
        raise ValueError(f"port {bits[5]} is out of range")
    if bits[2].lower() not in _PROTOCOLS:
        raise ValueError(f"transport {bits[2]!r} is not udp or tcp")
    if bits[7] not in _TYPES:
        raise ValueError(f"candidate type {bits[7]!r} is not one of {', '.join(sorted(_TYPES))}")


def parse_fragment(body: bytes, ice_ufrag: str, ice_pwd: str, mids: list[str]) -> Fragment:
    """Parse a trickle fragment for the session whose offer had ``ice_ufrag``/``ice_pwd``
    and media sections ``mids``. Raises ``Refusal`` (400 malformed, 422 other ICE
    credentials, i.e. a restart)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "bad_fragment", "the fragment is not UTF-8 text") from None
    fragment = Fragment()
    mid: Optional[str] = None
    in_media = False
    credentials: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("m="):
            in_media, mid = True, None
            continue
        if not line.startswith("a="):
            raise Refusal(400, "bad_fragment", f"line {number}: expected an a= or m= line, got {line[:60]!r}")
        name, _, value = line[2:].partition(":")
        if name in ("ice-ufrag", "ice-pwd"):
            credentials[name] = value.strip()
            if credentials[name] != (ice_ufrag if name == "ice-ufrag" else ice_pwd):
                raise Refusal(
                    422, "ice_restart_not_supported",
                    f"the fragment's {name} is not this session's: ICE restarts are not supported")
        elif name == "mid":
            mid = value.strip()
            if mid not in mids:
                raise Refusal(400, "bad_fragment",
                                    f"line {number}: no media section with mid {mid!r} in this session")
        elif name == "candidate":
            if not in_media or mid is None:
                raise Refusal(400, "bad_fragment",
                                    f"line {number}: a candidate must follow an m= line and its a=mid")
            try:
                _check_candidate(value)
            except ValueError as exc:
                raise Refusal(400, "bad_candidate", f"line {number}: {exc}") from None
            fragment.candidates.append((mid, value.strip()))
        elif name == "end-of-candidates":
            fragment.end = True
        # other attributes (ice-options, group, ...) carry nothing to apply here
    if not fragment.candidates and not fragment.end:
        raise Refusal(400, "bad_fragment", "the fragment has no a=candidate and no a=end-of-candidates")
    return fragment
