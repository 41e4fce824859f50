"""The framework's ceiling for the edge's hot path: a bare tornado handler doing only what the edge must.

``GET /api/v1/apps`` parses ``Authorization: token <token>`` as strictly as the edge does
(``TokenIdentifier.token_from_header`` in edge/auth.py), looks the token's SHA-256 up in an
in-process dict of ``(expiry, user)`` as ``TokenIdentifier.identify`` does, and answers the
caller's page, serialized once at start, with the headers the edge sends (ETag, Content-Type, the
security headers, X-Snapshot-Age); a matching ``If-None-Match`` gets a 304.  There is no hub call:
a token seen for the first time is ``tok-<user>`` (fake_hub.py's rule) and is kept 60 s, the
edge's longest identity cache.  Any other token is a 401; query parameters are a 400 (only the
default page is kept).  ``GET /health`` answers 200.

The pages are the edge's default ``/apps`` answer: the RM replay is read once at start with the two
queries the edge's snapshot makes (active applications, and those finished in the last 24 h), each
application reduced to the fields ``JobService.public_app`` writes (no kernel record), newest
first, 100 a page, the same JSON separators, with the edge's own ``app_model``, ``PUBLIC_FIELDS``
and ``encode_cursor``; the benchmark compares bytes per response of the two in the same run.
What the edge does beyond this handler
(query parameters, page-cache keys, snapshot freshness, metrics, logging, an async prepare) is what
the ratio edge / bare measures.

    .venv/bin/python bench/bare.py --rm-url http://127.0.0.1:PORT [--port 0]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import secrets
import time
from urllib.parse import urlencode

import tornado.httpclient
import tornado.web
from yardlab.edge.jobs import PUBLIC_FIELDS
from yardlab.edge.snapshot import app_model, encode_cursor

import server_process

# edge/auth.py's header pattern, unchanged
TOKEN_HEADER = re.compile(r"^(?:token|bearer)\s+([\x21-\x7e]{1,512})\s*$", re.IGNORECASE)
BENCH_TOKEN = re.compile(r"tok-([a-z0-9][a-z0-9._-]*)")  # fake_hub.py: tok-<name> is user <name>
IDENTITY_MAX_AGE = 60.0  # TokenIdentifier.cache_max_age's default (and its ceiling)
MAX_CACHED_TOKENS = 100_000  # TokenIdentifier clears its cache past this

# what the edge's snapshot asks the RM (edge/clients/resourcemanager.py, edge/snapshot.py)
ACTIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")
FINISHED_WINDOW_S = 24 * 3600.0  # AppSnapshot.finished_window's default
PAGE_LIMIT = 100  # the edge's default `limit`
RM_TIMEOUT = 60.0

# the edge's default headers (edge/handlers/base.py, BaseHandler.set_default_headers)
DEFAULT_HEADERS = {
    "Content-Type": "application/json; charset=UTF-8",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache, private",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class BareError(Exception):
    """An error the caller sees, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def public_app(raw: dict) -> dict:
    """One RM application as the edge lists it: ``app_model`` then ``public_app`` with no kernel record."""
    model = app_model(raw)
    return {**{k: model[k] for k in PUBLIC_FIELDS}, "kernel": None, "notebook": None, "environment": None,
            "waiting": None}


async def read_applications(rm_url: str, finished_window: float = FINISHED_WINDOW_S) -> list[dict]:
    """The applications the edge's first snapshot poll would hold, read once from the RM (replay)."""
    http = tornado.httpclient.AsyncHTTPClient()
    since = int(time.time() * 1000) - int(finished_window * 1000)
    apps: dict[str, dict] = {}
    for query in ({"states": ",".join(ACTIVE_STATES)},
                  {"states": ",".join(FINAL_STATES), "finishedTimeBegin": str(since)}):
        response = await http.fetch(f"{rm_url.rstrip('/')}/ws/v1/cluster/apps?{urlencode(query)}",
                                    headers={"Accept": "application/json"}, request_timeout=RM_TIMEOUT)
        for raw in (json.loads(response.body).get("apps") or {}).get("app") or []:
            apps[raw["id"]] = raw
    return list(apps.values())


class ApplicationPages:
    """Every user's default ``/apps`` page, serialized once, with an ETag shaped like the edge's."""

    def __init__(self, raw_apps: list[dict]) -> None:
        self.read_at = time.monotonic()
        self.epoch = secrets.token_hex(4)
        by_user: dict[str, list[dict]] = {}
        for raw in raw_apps:
            app = public_app(raw)
            by_user.setdefault(app["user"], []).append(app)
        self.pages = {user: self._page(user, apps) for user, apps in by_user.items()}

    def _page(self, user: str, apps: list[dict]) -> tuple[bytes, str]:
        apps = sorted(apps, key=lambda a: (a["startedTime"], a["id"]), reverse=True)
        page = apps[:PAGE_LIMIT]
        next_cursor = encode_cursor(page[-1]) if len(apps) > PAGE_LIMIT else None
        body = json.dumps({"apps": page, "next_cursor": next_cursor, "user": user}, separators=(",", ":")).encode()
        digest = hashlib.sha256(json.dumps([user, 1, "default page"]).encode()).hexdigest()
        return body, f'W/"{self.epoch}-{digest}"'

    def page(self, user: str) -> tuple[bytes, str]:
        """``user``'s (body, ETag); an empty list for a user with no applications, made on first sight."""
        found = self.pages.get(user)
        if found is None:
            found = self.pages[user] = self._page(user, [])
        return found


class TokenCache:
    """Callers by token hash, kept as ``TokenIdentifier`` keeps them: ``(expiry, user)``, no hub call."""

    def __init__(self, max_age: float = IDENTITY_MAX_AGE) -> None:
        self.max_age = max_age
        self._users: dict[bytes, tuple[float, str]] = {}

    def user_for(self, authorization: str | None) -> str:
        if not authorization:
            raise BareError(401, "a JupyterHub API token is required: send `Authorization: token <token>`")
        match = TOKEN_HEADER.match(authorization)
        if not match:
            raise BareError(401, "the Authorization header must be `token <token>` or `Bearer <token>`")
        token = match.group(1)
        key = hashlib.sha256(token.encode()).digest()
        cached = self._users.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        user = BENCH_TOKEN.fullmatch(token)
        if not user:
            raise BareError(401, "this token is not valid (expired, revoked or mistyped)")
        if len(self._users) > MAX_CACHED_TOKENS:
            self._users.clear()
        self._users[key] = (time.monotonic() + self.max_age, user.group(1))
        return user.group(1)


class AppsHandler(tornado.web.RequestHandler):
    """``GET /api/v1/apps``: the caller's page, found by token hash, bytes ready."""

    def initialize(self, tokens: TokenCache, pages: ApplicationPages) -> None:
        self.tokens = tokens
        self.pages = pages

    def set_default_headers(self) -> None:
        for name, value in DEFAULT_HEADERS.items():
            self.set_header(name, value)

    def compute_etag(self) -> None:
        return None  # the ETag is the page's, set below

    def get(self) -> None:
        try:
            if self.request.query:
                raise BareError(400, "this bare server keeps only the default page: no query parameters")
            user = self.tokens.user_for(self.request.headers.get("Authorization"))
        except BareError as e:
            self.set_status(e.status)
            self.finish({"message": e.message, "reason": self._reason})
            return
        body, etag = self.pages.page(user)
        self.set_header("X-Snapshot-Age", f"{time.monotonic() - self.pages.read_at:.3f}")
        self.set_header("ETag", etag)
        inm = self.request.headers.get("If-None-Match", "")
        if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            self.set_status(304)
            self.finish()
            return
        self.finish(body)


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"status": "ok"})


def make_app(pages: ApplicationPages) -> tornado.web.Application:
    return tornado.web.Application([
        (r"/api/v1/apps", AppsHandler, {"tokens": TokenCache(), "pages": pages}),
        (r"/health", HealthHandler),
    ], log_function=lambda handler: None)


async def serve(args: argparse.Namespace) -> None:
    pages = ApplicationPages(await read_applications(args.rm_url))
    server = make_app(pages).listen(args.port, "127.0.0.1")
    server_process.announce_ready(server_process.listen_url(server))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm-url", required=True, help="ResourceManager (or replay) base URL, read once at start")
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free one)")
    args = parser.parse_args()
    try:
        import uvloop  # the event loop the edge runs on when installed
    except ImportError:
        uvloop = None
    try:
        (uvloop.run if uvloop else asyncio.run)(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
