"""Fails loudly when aiortc changes under mediaserver/sfu/aiortc_bridge.py."""

import inspect

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender

from mediaserver.sfu.aiortc_bridge import AIORTC_VERSION, IdleTrack, ReceiverTap, SenderPort, check_aiortc_version
import pytest

pytestmark = pytest.mark.inprocess


def test_pinned_version():
    assert aiortc.__version__ == AIORTC_VERSION
    check_aiortc_version()


async def test_private_attributes_the_bridge_relies_on_exist():
    pc = RTCPeerConnection()
    recv = pc.addTransceiver("video", direction="recvonly").receiver
    send = pc.addTransceiver(IdleTrack("video"), direction="sendonly").sender
    for name in (
        "_RTCRtpReceiver__codecs",
        "_RTCRtpReceiver__remote_bitrate_estimator",
        "_RTCRtpReceiver__rtcp_ssrc",
        "_RTCRtpReceiver__remote_streams",
        "_RTCRtpReceiver__rtx_ssrc",
        "_RTCRtpReceiver__nack_generator",
        "_RTCRtpReceiver__decoder_queue",
        "_enabled",
    ):
        assert hasattr(recv, name), name
    for name in (
        "_RTCRtpSender__ntp_timestamp",
        "_RTCRtpSender__rtp_timestamp",
        "_RTCRtpSender__packet_count",
        "_RTCRtpSender__octet_count",
        "_RTCRtpSender__lsr",
        "_RTCRtpSender__lsr_time",
        "_ssrc",
        "_rtx_ssrc",
    ):
        assert hasattr(send, name), name
    dtls = send.transport
    assert hasattr(dtls, "_state") and hasattr(dtls, "_tx_srtp")
    assert hasattr(dtls.transport, "_connection") and hasattr(dtls.transport._connection, "_nominated")
    # the methods we replace, with the signatures we replace them with
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == ["self", "packet", "arrival_time_ms"]
    assert list(inspect.signature(RTCRtpSender._handle_rtcp_packet).parameters) == ["self", "packet"]
    assert list(inspect.signature(RTCRtpReceiver._handle_rtcp_packet).parameters) == ["self", "packet"]
    assert list(inspect.signature(RTCRtpSender._send_rtcp).parameters) == ["self", "packets"]
    for name in ("_send_rtcp_pli", "_send_rtcp_nack", "_send_rtcp"):
        assert callable(getattr(recv, name))
    # and the taps install on instances
    tap = ReceiverTap(recv, lambda *a: None)
    assert recv._handle_rtp_packet == tap._handle_rtp_packet
    assert recv._handle_rtcp_packet == tap._handle_rtcp_packet
    port = SenderPort(send, lambda lost: None, lambda: None)
    assert send._handle_rtcp_packet == port._handle_rtcp_packet and not port.ready()
    assert send._send_rtcp == port._send_rtcp
    assert port.rtt is None and port.jitter == 0
    await pc.close()


async def test_dtls_and_srtp_internals_the_bridge_relies_on_exist():
    from pylibsrtp import Policy, Session

    from mediaserver.sfu.aiortc_bridge import enlarge_srtp_session
    from mediaserver.sfu.dtls_watch import DTLS_CIPHERS, DtlsWatch

    pc = RTCPeerConnection()
    certificate = pc._RTCPeerConnection__certificates[0]
    assert list(inspect.signature(certificate._create_ssl_context).parameters) == ["srtp_profiles"]
    DtlsWatch(pc)
    dtls = pc.addTransceiver("video", direction="recvonly").sender.transport
    ctx = certificate._create_ssl_context(srtp_profiles=dtls._srtp_profiles)
    assert ctx is not None and b"ECDHE-RSA" in DTLS_CIPHERS
    assert callable(dtls._RTCDtlsTransport__log_debug) and hasattr(dtls, "_role")
    session = Session(Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    assert len(session._cdata) == 1500 and hasattr(session, "_buffer")
    enlarge_srtp_session(session)
    assert len(session.protect(bytes([0x80, 96]) + bytes(1498))) > 1500
    await pc.close()
