"""The one exception type for errors a user may see: an HTTP status and a sentence."""
from __future__ import annotations


class PublicError(Exception):
    """An error whose message is safe and useful to show to the caller."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def query_arg(arguments: dict[str, list[bytes]], name: str, max_len: int = 200) -> str | None:
    """One query parameter, given at most once, UTF-8, bounded, without NUL; a 400 otherwise."""
    values = arguments.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise PublicError(400, f"give `{name}` once")
    try:
        value = values[0].decode("utf-8")
    except UnicodeDecodeError as e:
        raise PublicError(400, f"`{name}` is not valid UTF-8") from e
    if len(value) > max_len:
        raise PublicError(400, f"`{name}` is longer than {max_len} characters")
    if "\x00" in value:
        raise PublicError(400, f"`{name}` contains a NUL character")
    return value
