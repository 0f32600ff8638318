"""The shared UDP port's figures in ``/metrics``: scraped from a live room (a publisher and a
viewer on the mux), with datagrams from a stranger that the mux drops and counts by reason."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from mediaserver.live.collectors import MUX_DROP_REASONS
from signalling.whip import ROOMS
from tests.conftest import KEY, wait_for
from tests.support.live_server import media_server
from tests.support.ops_tools import METRICS_TOKEN as TOKEN, scrape
from tests.support.peers import Publisher, Viewer

pytestmark = pytest.mark.inprocess


async def test_udp_mux_figures_reach_metrics_without_per_peer_labels(aiohttp_server, tmp_path):
    _, base, app = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN, rtmp_port=0, recordings=False)
    mux = app[ROOMS].udp_mux
    before = await scrape(base)
    assert before["stagepass_udp_mux_connections"] == {(): 0}
    assert before["stagepass_udp_sent_datagrams_total"] == {(): 0}
    publisher, viewer = Publisher(base), Viewer(base)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert await publisher.publish("demo", KEY) == 201
        assert await viewer.play("demo") == 201
        await asyncio.wait_for(asyncio.shield(viewer.first_frame), 20)
        live = await scrape(base)
        assert live["stagepass_udp_mux_connections"] == {(): 2}  # the publisher and the viewer
        assert live["stagepass_udp_mux_routes"][()] >= 2
        sent = live["stagepass_udp_sent_datagrams_total"][()]
        calls = live["stagepass_udp_send_calls_total"][()]
        assert sent > 0 and 0 < calls <= sent

        # a stranger's datagrams: dropped by the mux, counted by reason
        target = ("127.0.0.1", mux.port)
        for _ in range(3):
            stranger.sendto(b"\x80" + os.urandom(100), target)  # RTP from an unknown address
        for _ in range(2):
            stranger.sendto(b"\x00\x01" + os.urandom(30), target)  # STUN range, no magic cookie
        await wait_for(lambda: mux.stats.bad_stun >= 2 and mux.stats.unknown_source >= 3, timeout=5)
        await wait_for(lambda: len(viewer.numbers) > 10, timeout=10)
        after = await scrape(base)
        dropped = after["stagepass_udp_mux_dropped_datagrams_total"]
        assert set(dropped) == {(("reason", r),) for r in MUX_DROP_REASONS}
        assert dropped[(("reason", "unknown_source"),)] == live["stagepass_udp_mux_dropped_datagrams_total"][
            (("reason", "unknown_source"),)] + 3
        assert dropped[(("reason", "bad_stun"),)] == live["stagepass_udp_mux_dropped_datagrams_total"][
            (("reason", "bad_stun"),)] + 2
        assert after["stagepass_udp_sent_datagrams_total"][()] > sent  # media keeps flowing, counted
        assert after["stagepass_udp_send_dropped_datagrams_total"] == {(("reason", "error"),): 0,
                                                                       (("reason", "overflow"),): 0}
        assert after["stagepass_udp_send_backlog_bytes"] == {(): 0}
        # one series per figure and per reason: nothing names a peer, a room or an address
        for name, samples in after.items():
            if name.startswith("stagepass_udp_"):
                assert all(set(dict(labels)) <= {"reason"} for labels in samples), (name, samples)

        assert await viewer.delete() == 200
        await wait_for(lambda: len(mux) == 1, timeout=10)
        assert (await scrape(base))["stagepass_udp_mux_connections"] == {(): 1}
    finally:
        stranger.close()
        await viewer.close()
        await publisher.close()


async def test_no_udp_series_while_peers_have_their_own_ports(aiohttp_server, tmp_path):
    _, base, app = await media_server(aiohttp_server, tmp_path, metrics_token=TOKEN, rtmp_port=0, udp_port="off")
    assert app[ROOMS].udp_mux is None
    assert not [name for name in await scrape(base) if name.startswith("stagepass_udp_")]
