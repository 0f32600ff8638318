"""DTLS of one peer connection: the cipher suites GStreamer needs, and why a handshake failed.

aiortc (pinned with ``aiortc_bridge.AIORTC_VERSION``) answers an ``actpass`` offer as the DTLS
client and offers only ECDHE-ECDSA cipher suites, so a peer whose DTLS server holds an RSA
certificate (GStreamer's ``webrtcbin``) fails with "no shared cipher". The watch adds the
ECDHE-RSA suites to the peer connection's DTLS context, and keeps the reason a handshake failed
(the TLS alert, aiortc's own verdict) for the session's log.
"""

from __future__ import annotations

from typing import Any, Callable

from OpenSSL import SSL

__all__ = ["DTLS_CIPHERS", "DtlsWatch"]


#: aiortc's four ECDHE-ECDSA suites, each followed by its ECDHE-RSA twin: a DTLS server
#: with an RSA certificate (GStreamer, older WebRTC stacks) can then pick one
DTLS_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"
)

_TLS_ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
    42: "bad_certificate", 43: "unsupported_certificate", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 90: "user_canceled", 110: "unsupported_extension",
}


class DtlsWatch:
    """One peer connection's DTLS: wider cipher suites, and why a handshake failed.

    Install it right after creating the ``RTCPeerConnection`` (the suites go into the
    SSL context each DTLS transport makes from the connection's certificate), and call
    ``watch_transports`` once negotiation has settled which transports remain.
    """

    def __init__(self, pc: Any) -> None:
        self._pc = pc
        self.events: list[str] = []  #: TLS alerts and aiortc's DTLS verdicts, in order
        self.alerts: list[str] = []  #: names of the fatal TLS alerts, in order
        certificate = pc._RTCPeerConnection__certificates[0]  # type: ignore[attr-defined]
        make_context = certificate._create_ssl_context

        def create_ssl_context(srtp_profiles: list) -> Any:
            ctx = make_context(srtp_profiles)
            ctx.set_cipher_list(DTLS_CIPHERS)
            ctx.set_info_callback(self._on_ssl_info)
            return ctx

        certificate._create_ssl_context = create_ssl_context

    def _on_ssl_info(self, _conn: Any, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_ALERT and len(self.events) < 20:
            level = "fatal" if ret >> 8 == 2 else "warning"
            name = _TLS_ALERTS.get(ret & 0xFF, f"alert {ret & 0xFF}")
            direction = "received from the peer" if where & SSL.SSL_CB_READ else "sent to the peer"
            self.events.append(f"{level} TLS alert {name} ({ret & 0xFF}) {direction}")
            if level == "fatal":
                self.alerts.append(name.replace(" ", "_"))

    def watch_transports(self) -> None:
        """Keep aiortc's own account of a failed handshake (it logs it at debug level only)."""
        for transceiver in self._pc.getTransceivers():
            dtls = transceiver.sender.transport
            if getattr(dtls, "_stagepass_watched", False):
                continue
            dtls._stagepass_watched = True
            log_debug = dtls._RTCDtlsTransport__log_debug  # type: ignore[attr-defined]

            def capture(msg: str, *args: Any, _log: Callable = log_debug, _dtls: Any = dtls) -> None:
                if msg.startswith("x ") and len(self.events) < 20:
                    self.events.append(f"as DTLS {_dtls._role}: " + (msg[2:] % args if args else msg[2:]))
                _log(msg, *args)

            dtls._RTCDtlsTransport__log_debug = capture  # type: ignore[attr-defined]

    def failure_kind(self) -> tuple[str, str]:
        """``(stage, cause)`` of a failed connection, from a small fixed vocabulary (metric
        labels): ``("ice", "no_candidate_pair")``, ``("dtls", <TLS alert name>)``,
        ``("dtls", "handshake")`` or ``("connection", "unknown")``."""
        if self._pc.iceConnectionState == "failed":
            return "ice", "no_candidate_pair"
        if self.alerts:
            return "dtls", self.alerts[0]
        if self.events:
            return "dtls", "handshake"
        return "connection", "unknown"

    def failure_cause(self) -> str:
        """Why the connection failed, in words for the log."""
        pc = self._pc
        if pc.iceConnectionState == "failed":
            return "ICE failed: no candidate pair answered (firewall, or unreachable candidates)"
        if self.events:
            return "DTLS failed: " + "; ".join(self.events)
        return f"ICE {pc.iceConnectionState}, no DTLS error recorded"
