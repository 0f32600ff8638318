"""The live path's Prometheus collectors: ``LiveCollector`` (rooms, fanouts, viewers) and
``UdpMuxCollector`` (the shared UDP port), read at scrape time from the counters the live
path keeps anyway, so collection adds nothing per forwarded packet.

One process registers them in its registry (``ops.metrics.Metrics``); each media worker
in its own (``mediaserver.workers.worker_metrics``), whose samples the control plane
serves labelled by worker.

Room labels stay bounded: a room appears while it has a publisher, viewers or an open
broadcast, and disappears with them. Counters summed over rooms only grow: a room keeps
the totals of the viewers that left, and rooms are never dropped from the registry while
the process runs.

``UdpMuxCollector``: datagrams the mux dropped, by reason (``MuxStats``); datagrams the
kernel took, send calls, partial batches, a full socket, datagrams lost (``SenderStats``).
The only label is ``reason``, never a peer, room or address. Nothing is exported while
peers have their own ports (``STAGEPASS_UDP_PORT=off``).
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediaserver.live.adaptation import RENDITIONS
from mediaserver.live.room import Room, RoomRegistry

__all__ = ["KINDS", "LiveCollector", "MUX_DROP_REASONS", "UdpMuxCollector", "on_air"]

KINDS = ("audio", "video")


def on_air(room: Room) -> bool:
    """A room counts (and has labels) while it has a publisher, viewers or an open broadcast."""
    return room.publisher is not None or bool(room.subscribers) or room.broadcast is not None


class LiveCollector(Collector):
    """The live rooms' figures, read at scrape time from the counters the live path keeps."""

    def __init__(self, rooms: RoomRegistry) -> None:
        self._rooms = rooms

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known by collecting; the registry does not need them

    def collect(self) -> Iterable[Metric]:
        viewers = GaugeMetricFamily("stagepass_viewers", "Viewers connected to a live room", labels=["room"])
        publishers = GaugeMetricFamily("stagepass_publishers", "The creator's publisher of a live room, connected "
                                       "here (0 or 1; 0 where the room is relayed from another worker or node)",
                                       labels=["room"])
        rooms_live = GaugeMetricFamily("stagepass_rooms_live", "Rooms with a publisher, viewers or an open broadcast")
        received = CounterMetricFamily("stagepass_received_packets", "RTP packets received from publishers",
                                       labels=["kind"])
        forwarded = CounterMetricFamily("stagepass_forwarded_packets", "RTP packets forwarded to viewers",
                                        labels=["kind"])
        forwarded_bytes = CounterMetricFamily("stagepass_forwarded_bytes",
                                              "RTP payload bytes sent to viewers (retransmissions not counted)",
                                              labels=["kind"])
        dropped = CounterMetricFamily("stagepass_dropped_packets", "Packets not delivered to a viewer",
                                      labels=["kind", "reason"])
        nacks = CounterMetricFamily("stagepass_nacks", "Sequence numbers viewers reported lost (RTCP NACK)",
                                    labels=["kind"])
        rtx = CounterMetricFamily("stagepass_rtx_sent", "Packets retransmitted to viewers after a NACK",
                                  labels=["kind"])
        kf_requested = CounterMetricFamily("stagepass_keyframe_requests",
                                           "Keyframe requests (joins, PLI/FIR from viewers, skips, recorder)")
        kf_sent = CounterMetricFamily("stagepass_keyframe_requests_sent",
                                      "PLIs sent to publishers after rate limiting")
        recording_bytes = GaugeMetricFamily("stagepass_recording_bytes", "Bytes written for a live room's recording",
                                            labels=["room"])
        recording_gaps = GaugeMetricFamily("stagepass_recording_gaps", "Gaps in a live room's recording",
                                           labels=["room"])
        renditions = GaugeMetricFamily("stagepass_viewers_by_rendition",
                                       "Viewers by the video they get (full, low rendition, audio only)",
                                       labels=["rendition"])
        encoding = GaugeMetricFamily("stagepass_low_renditions_encoding",
                                     "Rooms whose low rendition is being encoded (a viewer watches it)")
        switches = CounterMetricFamily("stagepass_rendition_switches",
                                       "Viewers moved between renditions by their receiver feedback",
                                       labels=["direction"])
        holds = CounterMetricFamily("stagepass_rendition_holds",
                                    "Steps down not taken: half a room's viewers struggled at once")
        by_rendition = dict.fromkeys(RENDITIONS, 0)
        moved = {"down": 0, "up": 0}
        held = running = 0

        totals = {name: dict.fromkeys(KINDS, 0) for name in
                  ("in", "out", "bytes", "backed_up", "send_error", "duplicate", "too_late", "nacks", "rtx")}
        requested = sent = live = 0
        for room in list(self._rooms):
            for kind, fanout in room.fanouts.items():
                stats = fanout.stats
                totals["in"][kind] += stats.packets_in
                totals["out"][kind] += stats.packets_out
                totals["backed_up"][kind] += stats.dropped
                totals["send_error"][kind] += stats.send_errors
                totals["duplicate"][kind] += getattr(stats, "duplicates", 0)
                totals["too_late"][kind] += getattr(stats, "too_late", 0)
                totals["rtx"][kind] += stats.retransmitted
                if fanout.keyframes is not None:
                    requested += fanout.keyframes.requested
                    sent += fanout.keyframes.sent
            for kind, n in room.departed_octets.items():
                totals["bytes"][kind] += n
            for kind, n in room.departed_nacked.items():
                totals["nacks"][kind] += n
            for subscriber in list(room.subscribers.values()):
                for kind, n in subscriber.octets_sent().items():
                    totals["bytes"][kind] += n
                for kind, n in subscriber.nacked.items():
                    totals["nacks"][kind] += n
            if room.switcher is not None:
                for direction, n in room.switcher.switches.items():
                    moved[direction] += n
                held += room.switcher.held
            running += room.low is not None and room.low.running
            if not on_air(room):
                continue
            live += 1
            for subscriber in list(room.subscribers.values()):
                if not subscriber.relay:
                    by_rendition[subscriber.rendition] = by_rendition.get(subscriber.rendition, 0) + 1
            viewers.add_metric([room.name], room.viewer_count())
            # a relay (edge source, worker pipe) feeds the room here but is not its publisher:
            # summed over workers and nodes, each room counts its one publisher once
            publishers.add_metric([room.name], 1 if room.publisher is not None and room.origin is None else 0)
            if room.recorder is not None:
                state = room.recorder.state()
                recording_bytes.add_metric([room.name], state["bytes"] or 0)
                recording_gaps.add_metric([room.name], state["gaps"])
        rooms_live.add_metric([], live)
        for kind in KINDS:
            received.add_metric([kind], totals["in"][kind])
            forwarded.add_metric([kind], totals["out"][kind])
            forwarded_bytes.add_metric([kind], totals["bytes"][kind])
            dropped.add_metric([kind, "viewer_backed_up"], totals["backed_up"][kind])
            dropped.add_metric([kind, "send_error"], totals["send_error"][kind])
            dropped.add_metric([kind, "duplicate"], totals["duplicate"][kind])
            dropped.add_metric([kind, "too_late"], totals["too_late"][kind])
            nacks.add_metric([kind], totals["nacks"][kind])
            rtx.add_metric([kind], totals["rtx"][kind])
        kf_requested.add_metric([], requested)
        kf_sent.add_metric([], sent)
        for rendition, n in by_rendition.items():
            renditions.add_metric([rendition], n)
        encoding.add_metric([], running)
        for direction, n in moved.items():
            switches.add_metric([direction], n)
        holds.add_metric([], held)
        yield from (viewers, publishers, rooms_live, received, forwarded, forwarded_bytes, dropped, nacks, rtx,
                    kf_requested, kf_sent, recording_bytes, recording_gaps, renditions, encoding, switches, holds)


#: ``MuxStats`` fields that count dropped datagrams (``address_limit`` counts addresses)
MUX_DROP_REASONS = ("unknown_source", "bad_stun", "unknown_ufrag", "unmatched_response", "ignored_stun")


class UdpMuxCollector(Collector):
    def __init__(self, rooms: RoomRegistry) -> None:
        self._rooms = rooms

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        mux = self._rooms.udp_mux
        if mux is None or mux.sender is None:
            return
        stats, sent = mux.stats, mux.sender.stats
        yield GaugeMetricFamily("stagepass_udp_mux_connections",
                                "ICE connections (publishers, viewers, edges) on the shared UDP port", value=len(mux))
        yield GaugeMetricFamily("stagepass_udp_mux_routes",
                                "Remote addresses the shared UDP port routes to a connection", value=mux.routes())
        dropped = CounterMetricFamily("stagepass_udp_mux_dropped_datagrams",
                                      "Datagrams the shared UDP port dropped on receipt", labels=["reason"])
        for reason in MUX_DROP_REASONS:
            dropped.add_metric([reason], getattr(stats, reason))
        yield dropped
        yield CounterMetricFamily("stagepass_udp_mux_addresses_refused",
                                  "Remote addresses not routed: their connection had too many",
                                  value=stats.address_limit)
        yield CounterMetricFamily("stagepass_udp_sent_datagrams",
                                  "Media datagrams (first sends and retransmissions) the kernel took from the "
                                  "shared port's batches", value=sent.datagrams)
        yield CounterMetricFamily("stagepass_udp_send_calls",
                                  "Send system calls for those batches (sendmmsg, or sendto where it is missing)",
                                  value=sent.syscalls)
        yield CounterMetricFamily("stagepass_udp_send_partial_batches",
                                  "Batches the kernel took only in part (continued at once)", value=sent.partial)
        yield CounterMetricFamily("stagepass_udp_send_blocked",
                                  "Times the shared socket was full (EAGAIN): the rest waited for it to drain",
                                  value=sent.blocked)
        lost = CounterMetricFamily("stagepass_udp_send_dropped_datagrams",
                                   "Media datagrams not sent: an error about their destination, or the backlog "
                                   "of a full socket over its limit", labels=["reason"])
        lost.add_metric(["error"], sent.errors)
        lost.add_metric(["overflow"], sent.overflow)
        yield lost
        yield GaugeMetricFamily("stagepass_udp_send_backlog_bytes",
                                "Bytes waiting for the full shared socket to drain", value=mux.sender.backlog())
