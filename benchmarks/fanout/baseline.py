"""The baseline server: what a newcomer builds with stock aiortc (``--baseline-server PORT``)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from fanout import KEY, ROOM

__all__ = ["baseline_app"]


def baseline_app() -> Any:
    """The relay a newcomer builds with stock aiortc: the publisher's tracks are decoded,
    shared with ``MediaRelay`` and re-encoded by one ``RTCRtpSender`` per viewer."""
    from aiohttp import web
    from aiortc.contrib.media import MediaBlackhole, MediaRelay

    relay = MediaRelay()
    tracks: dict[str, Any] = {}
    pcs: set[RTCPeerConnection] = set()
    viewers: set[RTCPeerConnection] = set()
    sink = MediaBlackhole()  # keeps the relay reading while nobody watches

    def track_pc(pc: RTCPeerConnection, group: set) -> None:
        pcs.add(pc)
        group.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                pcs.discard(pc)
                group.discard(pc)
                await pc.close()

    async def whip(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.Response(status=401)
        pc = RTCPeerConnection()
        track_pc(pc, set())

        @pc.on("track")
        def on_track(track: Any) -> None:
            tracks[track.kind] = track
            sink.addTrack(relay.subscribe(track))

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp", headers={"Location": "/whip/x"})

    async def whep(request: web.Request) -> web.Response:
        if "video" not in tracks:
            return web.Response(status=409, text="not live")
        pc = RTCPeerConnection()
        track_pc(pc, viewers)
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        for kind, track in tracks.items():
            pc.addTrack(relay.subscribe(track))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp", headers={"Location": "/whep/x"})

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"room": ROOM, "live": "video" in tracks,
                                  "viewers": len(viewers)})

    async def shutdown(app: web.Application) -> None:
        await sink.stop()
        await asyncio.gather(*(pc.close() for pc in list(pcs)), return_exceptions=True)

    app = web.Application()
    app.router.add_post(f"/whip/{ROOM}", whip)
    app.router.add_post(f"/whep/{ROOM}", whep)
    app.router.add_get(f"/api/rooms/{ROOM}", status)
    app.on_shutdown.append(shutdown)
    return app
