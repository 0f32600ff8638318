"""Domain errors; signalling/ maps each to an HTTP status."""

__all__ = ["MediaError", "RoomBusy", "CodecMismatch", "NegotiationFailed", "SessionClosed"]


class MediaError(Exception):
    """Base class: the message is safe to show to the client."""


class RoomBusy(MediaError):
    """The room already has a live publisher."""


class CodecMismatch(MediaError):
    """The peer cannot send or receive any codec the room forwards."""


class NegotiationFailed(MediaError):
    """aiortc refused the offer (bad ICE/DTLS parameters, inconsistent SDP...)."""


class SessionClosed(MediaError):
    """The session ended while it was being set up."""
