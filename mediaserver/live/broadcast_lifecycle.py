"""``BroadcastLifecycle``: a room's broadcast from the POST that opens it to its end.

A broadcast opens with the POST that is accepted (so the studio, chat and recorder have
its id at once) but only counts once media arrives: until then the room is not live and
keeps its phase, and if the publisher whose POST opened it leaves without sending any
(ICE or DTLS failed, it never connected, or it sent nothing for ``connect_timeout`` after
its POST was accepted and was closed for it) the broadcast is discarded, the room stays in
its previous phase (never "reconnecting"), the empty recording is removed instead of
packaged, and the end listeners are told with ``Broadcast.discarded`` set. Its first
media confirms it: the confirm listeners are told then, once (the publisher's
``first_media`` future says when; nothing polls). The lifecycle records each broadcast
(unless recordings are off) and tells the room's listeners as it opens, is confirmed and
ends; which publisher the room has is the room's business (``mediaserver.live.room``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any, Optional

from core.settings import Settings
from core.tasks import TaskOwner
from mediaserver.live.broadcast import Broadcast, BroadcastListener, tell
from mediaserver.live.publisher import LivePublisher
from mediaserver.recording.recorder import Recorder
from mediaserver.sfu.fanout import Fanout

__all__ = ["BroadcastLifecycle"]


class BroadcastLifecycle:
    """The open broadcast of one room, the last one that ended, its recording and the
    listeners told of each; ``room`` is what the listeners are called with."""

    def __init__(self, room: Any, name: str, settings: Settings, fanouts: dict[str, Fanout],
                 tasks: TaskOwner, log: logging.LoggerAdapter) -> None:
        self.room = room
        self.name = name
        self.settings = settings
        self.fanouts = fanouts
        self.tasks = tasks
        self.log = log
        self.broadcast: Optional[Broadcast] = None
        self.recorder: Optional[Recorder] = None  #: the current broadcast's recording
        #: the last broadcast that ended, until a new one starts ("ended" phase)
        self.ended_broadcast: Optional[Broadcast] = None
        #: called with (room, broadcast) when a broadcast opens (its POST), is confirmed (its
        #: first media: "live now"), ends (paid-question refunds...)
        self.started: list[BroadcastListener] = []
        self.confirmed: list[BroadcastListener] = []
        self.ended: list[BroadcastListener] = []
        #: (publisher, ended_broadcast before it) while the broadcast that publisher's POST
        #: opened has seen no media: discarded if it leaves without sending any
        self._unconfirmed: Optional[tuple[LivePublisher, Optional[Broadcast]]] = None
        #: closes the unconfirmed broadcast's publisher if it sends nothing (``connect_timeout``)
        self._silence: Optional[asyncio.TimerHandle] = None

    def awaiting_first_media(self, publisher: Optional[LivePublisher]) -> bool:
        """The broadcast was opened by ``publisher``'s POST (the room's current one) and
        no media came yet."""
        unconfirmed = self._unconfirmed
        return (unconfirmed is not None and unconfirmed[0] is publisher
                and unconfirmed[0].last_media() is None)

    def phase_off_air(self, publisher: Optional[LivePublisher]) -> str:
        """The room's phase while it is not live: "reconnecting" (the broadcast is open but
        its publisher dropped), "ended" or "idle". A broadcast whose first media has not
        come yet does not count: the room stays in the phase it was in."""
        awaiting = self.awaiting_first_media(publisher)
        if self.broadcast is not None and not awaiting:
            return "reconnecting"
        if awaiting:
            return "ended" if self._unconfirmed[1] is not None else "idle"  # type: ignore[index]
        return "ended" if self.ended_broadcast is not None else "idle"

    def publisher_accepted(self, publisher: LivePublisher, previous: Optional[LivePublisher]) -> Optional[Broadcast]:
        """``publisher`` became the room's in place of ``previous``: open a broadcast (and
        record it) if none is open, or hand it the wait for first media if ``previous``
        opened the broadcast and sent none. The broadcast it opened, if it did (the room
        tells the start listeners once its publish lock is released)."""
        if self.broadcast is None:
            self._unconfirmed = (publisher, self.ended_broadcast)
            started = self.broadcast = Broadcast()
            self.ended_broadcast = None
            self.log.info("broadcast %s started", started.id)
            self.start_recorder(started, publisher.codecs)
            self._confirm_at_first_media(publisher, started)
            return started
        if self._unconfirmed is not None and self._unconfirmed[0] is previous:
            self._unconfirmed = (publisher, self._unconfirmed[1])  # still no media
            self._confirm_at_first_media(publisher, self.broadcast)
        return None

    async def publisher_left(self, publisher: LivePublisher) -> None:
        """The room's publisher left: if its POST opened the broadcast and it never sent
        media, there was no broadcast (discarded)."""
        if self._unconfirmed is not None and self._unconfirmed[0] is publisher:
            await self._discard_unconfirmed(publisher)

    async def tell_started(self, broadcast: Broadcast) -> None:
        await tell(self.started, self.room, broadcast, "broadcast-start", self.log)

    async def end(self) -> None:
        """The creator ended the live session (the publisher's WHIP DELETE)."""
        ended, self.broadcast = self.broadcast, None
        if ended is None:
            return
        self._unconfirmed = None  # its publisher leaving now does not undo this end
        self.ended_broadcast = ended
        self.log.info("broadcast %s ended after %d s", ended.id, ended.t_ms() // 1000)
        await self.stop_recorder("broadcast_end")
        for fanout in self.fanouts.values():
            fanout.release()
        await tell(self.ended, self.room, ended, "broadcast-end", self.log)

    def _confirm_at_first_media(self, publisher: LivePublisher, broadcast: Broadcast) -> None:
        """Confirm ``broadcast`` when ``publisher``'s first media arrives, if the broadcast
        is still the room's and still waits for that publisher's media by then (a stale
        publisher replaced before sending any hands the wait on to its successor). A
        publisher that sent nothing ``connect_timeout`` after it was accepted (connected
        but silent) is closed, which discards the broadcast."""
        timeout = self.settings.media.connect_timeout

        def waiting() -> bool:
            unconfirmed = self._unconfirmed
            return (self.broadcast is broadcast and not broadcast.confirmed
                    and unconfirmed is not None and unconfirmed[0] is publisher)

        def arrived(first_media: asyncio.Future) -> None:
            silence.cancel()
            if not first_media.cancelled() and waiting():
                self.tasks.spawn(self._confirm(broadcast), name=f"confirm-{broadcast.id}")

        def silent() -> None:
            if waiting() and not publisher.closed:
                publisher.log.warning("no media %.0f s after it was accepted, closing", timeout)
                self.tasks.spawn(publisher.close(), name=f"close-silent-{publisher.id[:8]}")

        if self._silence is not None:  # the publisher it was set for was replaced
            self._silence.cancel()
        silence = self._silence = asyncio.get_running_loop().call_later(timeout, silent)
        publisher.first_media.add_done_callback(arrived)

    async def _confirm(self, broadcast: Broadcast) -> None:
        if broadcast.confirmed:
            return
        broadcast.confirmed = True
        self._unconfirmed = None
        self.log.info("broadcast %s confirmed: its first media arrived", broadcast.id)
        await tell(self.confirmed, self.room, broadcast, "broadcast-confirm", self.log)

    async def _discard_unconfirmed(self, publisher: LivePublisher) -> None:
        """The publisher whose POST opened the broadcast left without ever sending media
        (ICE or DTLS failed, it never connected, or it was closed for sending nothing):
        there was no broadcast. The room goes
        back to what it was, and the empty recording is removed, not packaged."""
        if publisher.last_media() is not None:  # it left before its ``first_media`` callback ran
            if self.broadcast is not None:
                await self._confirm(self.broadcast)
            self._unconfirmed = None
            return
        broadcast, (_, self.ended_broadcast) = self.broadcast, self._unconfirmed
        self._unconfirmed = None
        self.broadcast = None
        recorder, self.recorder = self.recorder, None
        self.log.info("broadcast %s discarded: its publisher left without sending media",
                      broadcast.id if broadcast else "?")
        if recorder is not None:
            try:
                await recorder.stop("no_media")
                await asyncio.to_thread(shutil.rmtree, recorder.directory, True)
            except Exception:
                self.log.exception("removing the empty recording failed")
        if broadcast is not None:  # its start listeners were told at the POST
            broadcast.discarded = True
            await tell(self.ended, self.room, broadcast, "broadcast-end", self.log)

    def start_recorder(self, broadcast: Broadcast, codecs: dict[str, str]) -> None:
        """Record the broadcast (unless recordings are off); the live path never waits
        for it and goes on if it cannot start."""
        if not self.settings.recording.recordings or not codecs:
            return
        try:
            recorder = Recorder(
                self.name, broadcast, codecs, self.settings.server.data_dir, self.log,
                request_keyframe=lambda kind: self.fanouts[kind].request_keyframe(),
                keyframe_interval=self.settings.recording.recording_keyframe_interval,
            )
            recorder.start()
            recorder.attach(self.fanouts)
        except Exception:
            self.log.exception("broadcast %s: the recorder did not start", broadcast.id)
            return
        self.recorder = recorder

    async def stop_recorder(self, ended_by: str) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                await recorder.stop(ended_by)
            except Exception:
                self.log.exception("stopping the recorder failed")

    def stop_waiting(self) -> None:
        """The room is closing: no silent publisher is closed for it any more."""
        if self._silence is not None:
            self._silence.cancel()
