"""The remote peer's ICE candidates that reach a session after its answer.

Two kinds: a browser's mDNS candidates (``<uuid>.local``, what browsers send by default),
taken out of the offer (``DeferredCandidates.take_from``) because aiortc resolves them
inside ``setRemoteDescription`` and an unanswered mDNS query holds the WHIP/WHEP answer
for a second; and the candidates a client trickles after its offer (WHIP/WHEP ``PATCH``).
ICE connects without either as long as the client reaches one of our candidates (its
checks make peer-reflexive candidates), so both are added off the answer's path, each as
soon as it can be, and the client's end-of-candidates only after all of them
(``RemoteCandidates``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Optional

from core.tasks import TaskOwner

__all__ = ["DeferredCandidates", "RemoteCandidates", "RemoteIce"]


@dataclass(frozen=True)
class RemoteIce:
    """The offer's ICE credentials and its media sections' mids: what a trickled
    fragment must match."""

    ufrag: str
    pwd: str
    mids: tuple[str, ...]

    @classmethod
    def of(cls, sdp: str) -> "RemoteIce":
        ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
        pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M)
        mids = tuple(m.group(1) for m in re.finditer(r"^a=mid:(\S+)", sdp, re.M))
        return cls(ufrag.group(1) if ufrag else "", pwd.group(1) if pwd else "", mids)


class DeferredCandidates:
    """Candidates to add after the answer: ``(m-line index or None, mid, candidate
    attribute value)``, and whether the peer said it has no more (end-of-candidates)."""

    def __init__(self, candidates: Optional[list[tuple[Optional[int], Optional[str], str]]] = None,
                 ended: bool = False) -> None:
        self.candidates = list(candidates or [])
        self.ended = ended

    @classmethod
    def take_from(cls, sdp: str) -> tuple[str, "DeferredCandidates"]:
        """The offer without its mDNS candidates (and without ``end-of-candidates`` if any
        were taken: ICE must not be told it has them all), and what was taken."""
        deferred = cls()
        index, mids, kept = -1, {}, []
        for line in sdp.splitlines():
            if line.startswith("m="):
                index += 1
            elif line.startswith("a=mid:"):
                mids[index] = line[6:].strip()
            elif line.startswith("a=candidate:"):
                fields = line[12:].split()
                if len(fields) > 4 and fields[4].lower().endswith(".local"):
                    deferred.candidates.append((index, None, line[12:]))
                    continue
            kept.append(line)
        if not deferred.candidates:
            return sdp, deferred
        deferred.candidates = [(i, mids.get(i), c) for i, _, c in deferred.candidates]
        deferred.ended = any(line.strip() == "a=end-of-candidates" for line in kept)
        kept = [line for line in kept if line.strip() != "a=end-of-candidates"]
        return "\r\n".join(kept) + "\r\n", deferred

    def __len__(self) -> int:
        return len(self.candidates)

    async def add_to(self, pc: Any, after: tuple[asyncio.Task, ...] = ()) -> None:
        """Add the candidates, concurrently (aioice resolves an mDNS name for up to a
        second), then pass on end-of-candidates once they and the batches ``after``
        (added before this one) are in."""
        from aiortc.sdp import candidate_from_sdp

        async def add(index: Optional[int], mid: Optional[str], value: str) -> None:
            candidate = candidate_from_sdp(value)
            candidate.sdpMLineIndex, candidate.sdpMid = index, mid
            await pc.addIceCandidate(candidate)

        await asyncio.gather(*(add(*c) for c in self.candidates), return_exceptions=True)
        if self.ended:
            if after:
                await asyncio.wait(after)
            if pc.connectionState not in ("closed", "failed"):
                await pc.addIceCandidate(None)


class RemoteCandidates:
    """A session's late remote candidates, batch by batch, each batch in a task of the
    session's (so closing the session stops them); end-of-candidates waits for every
    batch before it. Candidates after end-of-candidates are ignored (RFC 8838)."""

    def __init__(self, pc: Any, tasks: TaskOwner, log: logging.Logger | logging.LoggerAdapter) -> None:
        self._pc = pc
        self._tasks = tasks
        self._log = log
        self._batches: list[asyncio.Task] = []
        #: end-of-candidates came late (after the answer); one in the offer itself is
        #: aiortc's to apply, and aiortc ignores candidates after it
        self.ended = False
        self.added = 0  #: late candidates taken (mDNS ones included, resolved or not)

    def add(self, batch: DeferredCandidates, source: str) -> None:
        if self.ended or not (batch.candidates or batch.ended):
            return
        self.ended = batch.ended
        self.added += len(batch.candidates)
        self._log.debug("%d remote candidate(s) from the %s%s", len(batch), source,
                        ", the last" if batch.ended else "")
        earlier = tuple(t for t in self._batches if not t.done())
        task = self._tasks.spawn(batch.add_to(self._pc, earlier), name=f"remote-candidates-{source}")
        if task is not None:
            self._batches = [*earlier, task]
