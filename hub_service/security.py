"""Security helpers of the hub service: redirect targets and response headers."""
from __future__ import annotations

from urllib.parse import unquote, urlparse

#: no inline script or style anywhere: every script is a static file of this service
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def safe_next(target: str | None, prefix: str) -> str | None:
    """``target`` if it is a path inside this service (under ``prefix``), else None.

    Refused: anything with a scheme or host (``https://evil``, ``//evil``, ``///evil``), any
    backslash (browsers read ``/\\evil`` and ``\\\\evil`` as ``//evil``), whitespace or control
    characters (browsers drop tabs and newlines, which can join ``/`` and ``/evil``), and paths
    outside the service.
    """
    if not target or len(target) > 2000:
        return None
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc:
        return None
    path = parsed.path
    decoded = unquote(path) + "/"
    if "/../" in decoded or "/./" in decoded or "\\" in decoded or "//" in unquote(path):
        return None
    base = "/" + prefix.strip("/") + "/"
    if not (path + "/").startswith(base) and path != base.rstrip("/"):
        return None
    return target
