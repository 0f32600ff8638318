"""SDP offers from a real aiortc peer, and a plain HTTP POST of them, for HTTP-level tests."""

import aiohttp
from aiortc import RTCPeerConnection

from tests.support.peers import prefer


async def make_offer(kinds=("video", "audio"), direction="sendonly", codec=None) -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        t = pc.addTransceiver(kind, direction=direction)
        if codec and kind == "video":
            prefer(t, codec)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def post(base, path, body, content_type="application/sdp", token=None, **headers):
    """POST ``body`` to ``base + path``: (status, JSON or text, headers)."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers["Content-Type"] = content_type
    async with aiohttp.ClientSession() as http:
        async with http.post(base + path, data=body, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text()), r.headers
