"""The viewers process: light viewers that only decrypt and count RTP packets, of the
Janus mountpoint (its HTTP API) or of Stagepass (WHEP)."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from common.children import command_loop
from common.viewers import RtpCounter, connect_all, count_packets, wait_connected
from fanout import ROOM
from side_by_side.janus import MOUNTPOINT


class JanusViewer:
    """A viewer of the Janus mountpoint that only decrypts and counts."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = RtpCounter()

    async def _post(self, http: aiohttp.ClientSession, url: str, body: dict) -> dict:
        body = dict(body, transaction=os.urandom(6).hex())
        async with http.post(url, json=body) as r:
            reply = await r.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply['error']}")
        return reply

    async def play(self, http: aiohttp.ClientSession, base: str) -> None:
        session = (await self._post(http, base, {"janus": "create"}))["data"]["id"]
        url = f"{base}/{session}"
        handle = (await self._post(http, url, {"janus": "attach", "plugin": "janus.plugin.streaming"}))["data"]["id"]
        hurl = f"{url}/{handle}"
        await self._post(http, hurl, {"janus": "message", "body": {"request": "watch", "id": MOUNTPOINT}})
        offer = None
        deadline = time.monotonic() + 15
        while offer is None and time.monotonic() < deadline:
            async with http.get(f"{url}?maxev=1&rid={time.time_ns()}") as r:
                for event in (lambda e: e if isinstance(e, list) else [e])(await r.json(content_type=None)):
                    if event.get("jsep", {}).get("type") == "offer":
                        offer = event["jsep"]["sdp"]
        if offer is None:
            raise RuntimeError("Janus sent no offer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for t in self.pc.getTransceivers():
            count_packets(t.receiver, self.video)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._post(http, hurl, {"janus": "message", "body": {"request": "start"},
                                      "jsep": {"type": "answer", "sdp": self.pc.localDescription.sdp}})
        await wait_connected(self.pc)


class WhepViewer(JanusViewer):
    """The same counting viewer on Stagepass, over WHEP."""

    async def play(self, http: aiohttp.ClientSession, base: str) -> None:
        t = self.pc.addTransceiver("video", direction="recvonly")
        t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                               if c.mimeType in ("video/VP8", "video/rtx")])
        count_packets(t.receiver, self.video)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(f"{base}/whep/{ROOM}", data=self.pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"}) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {r.status}: {body[:200]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        await wait_connected(self.pc)


async def viewers_worker(kind: str, base: str) -> None:
    viewers: list[JanusViewer] = []
    gate = asyncio.Semaphore(5)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40)) as http:

        async def handle(msg: dict) -> dict:
            if msg["cmd"] == "add":
                new = [(JanusViewer if kind == "janus" else WhepViewer)() for _ in range(msg["n"])]
                errors = await connect_all(new, lambda v: v.play(http, base), gate)
                viewers.extend(v for v in new if v.pc.connectionState == "connected")
                return {"connected": len(viewers), "errors": errors[:3]}
            return {"t": time.monotonic(), "packets": [v.video.packets for v in viewers]}

        try:
            await command_loop(handle)
        finally:
            await asyncio.gather(*(v.pc.close() for v in viewers), return_exceptions=True)
