"""``UdpMuxCollector``: the process's UDP mux and its batched sender, for ``/metrics``.

Read at scrape time from the counters the mux keeps anyway (``MuxStats``: datagrams it
dropped, by reason; ``SenderStats``: datagrams the kernel took, send calls, partial
batches, a full socket, datagrams lost), so nothing is added per packet. One set of series
per process (each node, and later each media worker, serves its own): the only label is
``reason``, never a peer, room or address. Nothing is exported while peers have their own
ports (``STAGEPASS_UDP_PORT=off``).
"""

from __future__ import annotations

from typing import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediaserver.live.room import RoomRegistry

__all__ = ["MUX_DROP_REASONS", "UdpMuxCollector"]

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
