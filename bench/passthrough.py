"""The naive baseline the edge is measured against: one RM request per user request.

``GET /api/v1/apps`` with ``Authorization: token tok-<user>`` takes the user name from the token
itself (no hub call: it is the cheapest possible baseline), asks the RM for
``/ws/v1/cluster/apps?user=<user>`` and returns ``{"apps": [...], "next_cursor": null}``, the
shape of the edge's answer.  No cache, no ETag.  ``GET /health`` answers 200.

    .venv/bin/python bench/passthrough.py --rm-url http://127.0.0.1:PORT [--port 0]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
from urllib.parse import urlencode

import tornado.httpclient
import tornado.web

import server_process

TOKEN = re.compile(r"token\s+tok-([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)
RM_TIMEOUT = 10.0


class PassThroughError(Exception):
    """An error the caller sees, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PassThroughProxy:
    """Forwards each app-list read to the ResourceManager, one RM request each."""

    def __init__(self, rm_url: str, max_clients: int = 200) -> None:
        self.rm_url = rm_url.rstrip("/")
        self.http = tornado.httpclient.AsyncHTTPClient(max_clients=max_clients)

    async def apps_for(self, user: str) -> list[dict]:
        url = f"{self.rm_url}/ws/v1/cluster/apps?{urlencode({'user': user})}"
        try:
            response = await self.http.fetch(url, headers={"Accept": "application/json"},
                                              request_timeout=RM_TIMEOUT)
        except tornado.httpclient.HTTPClientError as e:
            raise PassThroughError(502, f"ResourceManager answered {e.code}") from e
        except OSError as e:
            raise PassThroughError(502, f"ResourceManager unreachable: {e}") from e
        return (json.loads(response.body).get("apps") or {}).get("app") or []


class AppsHandler(tornado.web.RequestHandler):
    """``GET /api/v1/apps``: the caller's applications, straight from the RM."""

    def initialize(self, proxy: PassThroughProxy) -> None:
        self.proxy = proxy

    def compute_etag(self) -> None:
        return None  # naive: no ETag, every poll is a full 200

    async def get(self) -> None:
        try:
            match = TOKEN.fullmatch(self.request.headers.get("Authorization", "").strip())
            if not match:
                raise PassThroughError(403, "a token tok-<user> is required")
            apps = await self.proxy.apps_for(match.group(1))
        except PassThroughError as e:
            self.set_status(e.status)
            self.finish({"message": e.message, "reason": self._reason})
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"apps": apps, "next_cursor": None}))


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish({"status": "ok"})


def make_app(rm_url: str) -> tornado.web.Application:
    proxy = PassThroughProxy(rm_url)
    return tornado.web.Application([
        (r"/api/v1/apps", AppsHandler, {"proxy": proxy}),
        (r"/health", HealthHandler),
    ], log_function=lambda handler: None)


async def serve(args: argparse.Namespace) -> None:
    server = make_app(args.rm_url).listen(args.port, "127.0.0.1")
    server_process.announce_ready(server_process.listen_url(server))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm-url", required=True, help="ResourceManager (or replay) base URL")
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free one)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
