"""The Spark UI through the edge: YARN's web proxy (``/proxy/<application id>/``), served under the edge's own
prefix (``<base>proxy/<application id>/``) so a browser reaches it through the hub's proxy with the hub's login.

Who may look is decided here, per request, from the ResourceManager's data (the edge's snapshot, or
the RM itself for an application it does not hold): the application's owner and yardlab admins.  The
URL only names the application.  The path after it is checked before anything is fetched: nothing
but ``/proxy/<that id>/...`` on the ResourceManager can be reached.

A Spark UI is content its owner controls (their driver serves it and their code can change it), so
an admin looking at someone else's UI gets it in a sandbox (``Content-Security-Policy: sandbox``):
its scripts run in an opaque origin, without the hub's cookies, like YARN's own proxy warns its
viewers who are not the owner.  Pages that load their tables by script (executors, a stage's task
list) stay empty there; the server-rendered pages work.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from .errors import PublicError

#: one step of a Spark UI path: no percent-escapes at all (Jetty would decode ``%6bill`` to ``kill``, ``%2e``
#: to a dot) and no ``;`` (Jetty drops ``;params``: ``kill;x`` is ``kill``, ``..;`` is ``..``)
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,=:@-]*$")
#: the first step of every page and resource a Spark UI serves (its tabs, its REST API, its files)
UI_ROOTS = frozenset(("", "jobs", "stages", "storage", "environment", "executors", "SQL", "StreamingQuery",
                      "streaming", "connect", "api", "static"))
#: query parameters that YARN's proxy or Hadoop's login filter would read as who is asking
REFUSED_PARAMS = frozenset(("user.name", "doas", "delegation", "proxyapproved"))
#: response headers passed on from the proxied page; everything else (cookies above all) is dropped
PASSED_HEADERS = ("Content-Type", "Last-Modified", "Content-Disposition")
REWRITTEN_TYPES = ("text/html", "text/javascript", "application/javascript", "text/css")
#: the parts of the Spark UI that change the application: refused (the Jobs panel kills, with its audit)
REFUSED_SEGMENTS = ("kill",)
#: for an admin looking at another user's application
SANDBOX_CSP = "sandbox allow-scripts allow-popups; frame-ancestors 'self'; base-uri 'self'"
OWNER_CSP = "frame-ancestors 'self'; base-uri 'self'; form-action 'self'; object-src 'none'"


@dataclass(frozen=True)
class Target:
    """A checked request for one proxied page."""

    app_id: str
    path: str  # "" or "/..." (raw, still percent-encoded)
    query: str  # raw, without "?"

    @property
    def path_and_query(self) -> str:
        return (self.path or "/") + (f"?{self.query}" if self.query else "")


def check_target(app_id: str, raw_rest: str, raw_query: str) -> Target:
    """The part of the URL after ``proxy/<app id>``, checked while still percent-encoded (so an
    encoded slash or dot cannot turn into a path step after the check); a 400 with a sentence for
    anything that is not a plain path inside the application's UI."""
    if len(raw_rest) > 2000 or len(raw_query) > 4000:
        raise PublicError(400, "the Spark UI address is too long")
    if raw_rest and not raw_rest.startswith("/"):
        raise PublicError(400, "the Spark UI address must continue with / after the application id")
    if "\\" in raw_rest or "//" in raw_rest:
        raise PublicError(400, "the Spark UI address may not contain a backslash or an empty path step")
    segments = raw_rest.split("/")[1:]
    for seg in segments:
        if seg in (".", ".."):
            raise PublicError(400, "the Spark UI address may not contain . or .. steps")
        if not _SEGMENT.fullmatch(seg):
            raise PublicError(400, "the Spark UI address may only hold plain path steps (no percent-escapes, "
                                   "no ;)")
        if seg.lower() in REFUSED_SEGMENTS:
            raise PublicError(403, "killing jobs or stages from the Spark UI is turned off on this platform; "
                                   "kill the application from the Jobs panel", reason="Forbidden")
    if segments and segments[0] not in UI_ROOTS:
        raise PublicError(404, f"a Spark UI has no page /{segments[0][:40]}", reason="Not Found")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in raw_query) or "#" in raw_query:
        raise PublicError(400, "the Spark UI address has control characters in its query")
    for name, _ in parse_qsl(raw_query, keep_blank_values=True):
        if not name.isascii():
            # Hadoop's filters compare names with Java's equalsIgnoreCase, for which 'doaſ' (long s) is 'doas':
            # no Spark UI page has a parameter that is not plain ASCII
            raise PublicError(400, f"the query parameter {name[:40]!r} is not plain ASCII; Spark UI pages have none")
        if name.strip().lower() in REFUSED_PARAMS:
            raise PublicError(400, f"the query parameter {name[:40]!r} is the edge's to set, not the browser's")
    return Target(app_id, raw_rest, raw_query)


class SparkUIProxy(LoggingConfigurable):
    """Settings and rewriting of the proxied Spark UI."""

    max_page_bytes = Integer(
        32 * 1024 * 1024, help="Largest page of a Spark UI passed on (larger ones answer 502 with a sentence).",
    ).tag(config=True)
    timeout = Integer(30, help="Seconds a Spark UI page may take through YARN's proxy.").tag(config=True)
    history_url = Unicode(
        "", help="""The Spark history server's page of a finished application, with ``{app_id}``, e.g.
        ``https://history.example.com/history/{app_id}/jobs/``: the jobs list links it for finished
        applications (which then ``/proxy/`` redirects to).  Empty: none; a finished application's UI
        is gone (410).""",
    ).tag(config=True)

    def __init__(self, prefix: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix.rstrip("/") + "/proxy/"  # e.g. /services/yardlab-edge/proxy/

    def url_for(self, app_id: str) -> str:
        return f"{self.prefix}{app_id}/"

    def history_for(self, app_id: str) -> str | None:
        return self.history_url.format(app_id=app_id) if self.history_url else None

    def _pattern(self, app_id: str) -> re.Pattern:
        # absolute (http://rm:8088/proxy/<id>) or host-relative (/proxy/<id>) references to this app
        return re.compile(r"(?:https?:)?(?://[A-Za-z0-9.\-]+(?::\d+)?)?/proxy/" + re.escape(app_id) + r"(?=[/\"'?#]|$)")

    def rewrite_body(self, app_id: str, body: bytes) -> bytes:
        """References to ``/proxy/<app id>`` (with or without the RM's scheme and host) put under the
        edge's prefix, so every link, script root and form of the page stays on the edge."""
        text = body.decode("utf-8", "surrogateescape")
        out = self._pattern(app_id).sub(self.url_for(app_id).rstrip("/"), text)
        return out.encode("utf-8", "surrogateescape")

    def rewrite_location(self, app_id: str, location: str) -> str | None:
        """Where a redirect of the proxied UI goes, under the edge's prefix; None when it leaves the
        application's UI (YARN sends a finished application to its RM page or a history server)."""
        try:
            parsed = urlsplit(location)
        except ValueError:
            return None
        base = f"/proxy/{app_id}"
        if parsed.path != base and not parsed.path.startswith(base + "/"):
            return None
        rest = parsed.path[len(base):]
        try:
            check_target(app_id, rest, parsed.query)
        except PublicError:
            return None
        return self.url_for(app_id).rstrip("/") + (rest or "/") + (f"?{parsed.query}" if parsed.query else "")


def error_page(status: int, title: str, message: str, hub_home: str) -> str:
    """A small self-contained page for a browser (no script, no outside resource)."""
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)} · yardlab</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:3em auto;max-width:42em;color:#222;padding:0 1em}"
        "h1{font-size:1.4em}p{line-height:1.5}.code{color:#777}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"yl-message\">{html.escape(message)}</p>"
        f"<p class=\"code\">HTTP {status}</p><p><a href=\"{html.escape(hub_home, quote=True)}\">Back to JupyterHub</a>"
        "</p></body></html>")


def error_json(message: str, reason: str) -> str:
    return json.dumps({"message": message, "reason": reason})
