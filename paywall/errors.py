"""``PaywallError``: a refusal with an HTTP status, a stable code and a readable message."""

__all__ = ["PaywallError"]


class PaywallError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
