"""SDP offers from a real aiortc peer, for HTTP-level tests."""

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
