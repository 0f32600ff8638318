"""Validating an SDP offer before any state is created for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aiortc import sdp

from core.access import Refusal
from mediaserver.sfu.codecs import FORWARDED_CODECS, offered_codecs

__all__ = ["Offer", "parse_offer"]

_SENDING = {"sendonly", "sendrecv"}
_RECEIVING = {"recvonly", "sendrecv"}


@dataclass
class Offer:
    sdp: str
    #: media kind -> codec keys offered that Stagepass forwards, in our preference order
    codecs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return list(self.codecs)

    def publish_plan(self) -> dict[str, str]:
        """The codec each published kind will use: our first preference the peer offers."""
        return {kind: names[0] for kind, names in self.codecs.items()}


def parse_offer(body: bytes, role: Literal["publish", "play"]) -> Offer:
    """The validated offer; ``Refusal`` 400 ``bad_offer`` (malformed) or 406
    ``no_common_codec`` otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "bad_offer", "the offer is not UTF-8 text") from None
    if not text.lstrip().startswith("v=0"):
        raise Refusal(400, "bad_offer", "the body is not an SDP offer (it must start with 'v=0')")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises ValueError, KeyError, IndexError...
        raise Refusal(400, "bad_offer", f"unparsable SDP: {exc!r}") from None

    wanted = _SENDING if role == "publish" else _RECEIVING
    codecs: dict[str, list[str]] = {}
    for media in description.media:
        if media.kind not in FORWARDED_CODECS:
            raise Refusal(400, "bad_offer", f"unsupported media section {media.kind!r}: only audio and video")
        if media.kind in codecs:
            raise Refusal(400, "bad_offer", f"more than one {media.kind} section; send one audio and one video")
        if media.direction not in wanted:
            verb = "send" if role == "publish" else "receive"
            raise Refusal(
                400, "bad_offer", f"the {media.kind} section is {media.direction}; it must {verb} media"
            )
        if not (media.ice.usernameFragment and media.ice.password):
            raise Refusal(400, "bad_offer", f"the {media.kind} section has no ICE credentials")
        if not media.dtls or not media.dtls.fingerprints:
            raise Refusal(400, "bad_offer", f"the {media.kind} section has no DTLS fingerprint")
        names = [n for n in offered_codecs(media.rtp.codecs) if n in FORWARDED_CODECS[media.kind]]
        if not names:
            h264_mode_0 = any(c.mimeType.lower() == "video/h264" for c in media.rtp.codecs)
            raise Refusal(
                406, "no_common_codec",
                f"no usable {media.kind} codec offered; Stagepass forwards "
                f"{' or '.join(FORWARDED_CODECS[media.kind])}"
                + (" (H264 with packetization-mode=1 only)" if h264_mode_0 else ""),
            )
        codecs[media.kind] = names
    if not codecs:
        raise Refusal(400, "bad_offer", "the offer has no audio or video section")
    return Offer(sdp=text, codecs=codecs)
