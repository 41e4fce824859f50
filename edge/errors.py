"""The one exception type for errors a user may see: an HTTP status and a sentence."""
from __future__ import annotations


class PublicError(Exception):
    """An error whose message is safe and useful to show to the caller."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
