"""Everything Stagepass needs from aiortc's internals, behind one door.

Targets **aiortc 1.16.0** exactly (``AIORTC_VERSION``); ``tests/mediaserver/sfu/test_aiortc_bridge.py``
fails loudly if the attributes used here move. What we change, and why:

* **Receive side** (``ReceiverTap``): aiortc's ``RTCRtpReceiver._handle_rtp_packet``
  depayloads every packet, reassembles frames in a jitter buffer and decodes them in a
  thread. A forwarding server needs none of that. The tap replaces the method on the
  receiver *instance*: it keeps what the publisher relies on (RTCP receiver statistics,
  REMB bandwidth estimates, RTX unwrapping, NACKs for lost packets) and hands the parsed
  RTP packet, payload untouched, to the room's ``Fanout``, inside a ``batched_send.hold``:
  the copies it queues on the UDP mux leave when the fanout returns, without an event-loop
  iteration of their own. The decoder thread aiortc
  starts stays idle (it is only fed by the method we replaced). NACKs go out after a
  short reorder window (``retransmission.NackRequester``, run by ``run_nacks``) instead
  of aiortc's NACK at the first gap, and the publisher's sender reports (its NTP/RTP
  pair) are passed on (``on_sender_report``) for the viewers' own.
* **Send side** (``SenderPort``): an ``RTCRtpSender`` negotiates SSRCs, payload types and
  RTCP as usual, but its track (``IdleTrack``) never yields a frame, so aiortc's encode
  loop waits forever and never creates an encoder. The ``Fanout`` writes ready-made RTP
  through ``SenderPort.send``: SRTP protect and ``sendto`` on the ICE pair, synchronously,
  no task switch per packet. On the process's UDP mux (``udp_mux``) the packet is
  protected by libsrtp in place in the mux's ``sendmmsg`` batch (``batched_send``) instead:
  the SRTP packet never exists as a Python object. The port keeps the sender's SR
  counters right (packet and octet counts, the NTP/RTP timestamp pair browsers use for
  lip sync, which the fanout derives from the publisher's) and intercepts the viewer's
  RTCP: NACK and PLI/FIR go to the fanout, the rest to aiortc; on the way the port reads the viewer's receiver reports
  (``rtt``, ``jitter``, ``fraction_lost``) and bandwidth estimates (``remb``); it also wraps
  the sender's ``_send_rtcp`` to keep the send times of its last few sender reports, so a
  receiver report answering an older one still measures a round trip (``sender_reports``). Retransmissions (``retransmit``) leave the sender report alone
  and take the same one way out as first sends (``_emit``: the mux's batch when on it).
  aiortc's SRTP sessions reserve 144 of their 1,500 buffer bytes for the trailer, so they
  refuse RTP over 1,356 bytes ("packet is too long"); the port gives its session a buffer
  for packets up to ``MAX_RTP_PACKET`` (the 1,500-byte Ethernet limit plus our header).
* **DTLS**: ``dtls_watch.DtlsWatch`` (wider cipher suites, why a handshake failed).

The parts live beside this module, one concept each: ``receiver_tap`` (receive side),
``sender_port`` (send side, ``IdleTrack``), ``negotiated_stream`` (what a transceiver
agreed), ``srtp_buffers`` (``MAX_RTP_PACKET``); import them from here.
"""

from __future__ import annotations

import aiortc

from mediaserver.sfu.negotiated_stream import ABS_SEND_TIME_URI, MID_URI, NegotiatedStream, codec_key, negotiated_stream
from mediaserver.sfu.receiver_tap import ReceiverTap, enlarge_receive_buffer
from mediaserver.sfu.sender_port import IdleTrack, SenderPort
from mediaserver.sfu.srtp_buffers import MAX_RTP_PACKET, enlarge_srtp_buffers, enlarge_srtp_session

__all__ = [
    "ABS_SEND_TIME_URI",
    "AIORTC_VERSION",
    "MAX_RTP_PACKET",
    "MID_URI",
    "IdleTrack",
    "NegotiatedStream",
    "ReceiverTap",
    "SenderPort",
    "check_aiortc_version",
    "codec_key",
    "enlarge_receive_buffer",
    "enlarge_srtp_buffers",
    "enlarge_srtp_session",
    "negotiated_stream",
]

AIORTC_VERSION = "1.16.0"


def check_aiortc_version() -> None:
    """Refuse to run against an aiortc this module was not written for."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(
            f"mediaserver.sfu.aiortc_bridge targets aiortc {AIORTC_VERSION}, "
            f"found {aiortc.__version__}: re-check the internals it uses"
        )
