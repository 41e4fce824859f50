"""HTTP handlers of the yardlab server extension: status, and a streaming forwarder to the edge.

Every call is made with this Jupyter server's own hub token, so the edge sees the user who owns
the server and applies its policy; jupyter_server's authentication (and XSRF on every mutating
call) guards the way in.  The edge's JSON error messages pass through unchanged.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

# response headers worth passing back from the edge (lower case: header names are case-insensitive)
PASS_HEADERS = frozenset(("content-type", "content-disposition", "etag", "content-length", "cache-control"))
# the edge paths the sidebar may reach
EDGE_PATHS = ("me", "cluster", "storage", "apps", "files", "environments", "kernels")


class StatusHandler(APIHandler):
    """Report the running yardlab version and the edge service it talks to."""

    @tornado.web.authenticated
    def get(self) -> None:
        self.finish({"version": self.settings["yardlab_version"],
                     "edge_url": self.settings["yardlab_edge_url"]})


class ClientGone(Exception):
    """The browser closed the connection while the edge was still sending."""


@tornado.web.stream_request_body
class EdgeForwardHandler(APIHandler):
    """Forwards /yardlab/api/<edge path> to the edge's /api/v1/<edge path>, streaming both ways."""

    _queue: asyncio.Queue | None = None
    _fetch: asyncio.Future | None = None
    _client_gone = False
    _body_read = False  # set as the method (get, post, ...) forwards

    def write_error(self, status_code: int, **kwargs) -> None:
        if not self._body_read and self.request.method in ("PUT", "POST", "PATCH"):
            # refused in prepare (no XSRF token, no login), before the streamed body was read: tornado
            # closes the connection after this answer, and must say so, or the hub's proxy reuses it
            # for the next request, which then fails ("socket hang up", a 503 page)
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            raise tornado.web.HTTPError(403)
        edge = self.settings.get("yardlab_edge_url")
        if not edge:
            raise tornado.web.HTTPError(503, "no yardlab edge service is configured (YardlabExtension.edge_url)")
        self.request.connection.set_max_body_size(self.settings.get("yardlab_max_upload", 2 * 1024**3) + 1)
        path = "/".join(quote(p, safe="") for p in self.path_args[0].split("/"))
        url = f"{edge.rstrip('/')}/api/v1/{path}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {"Authorization": f"token {self.settings['yardlab_edge_token']}"}
        for name in ("Content-Type", "Content-Length", "If-None-Match"):
            if name in self.request.headers:
                headers[name] = self.request.headers[name]
        has_body = self.request.method in ("PUT", "POST", "PATCH")
        self._queue = asyncio.Queue(maxsize=8) if has_body else None
        self._status_set = False
        req = HTTPRequest(url, method=self.request.method, headers=headers,
                          body_producer=self._produce if has_body else None,
                          streaming_callback=self._stream_back, header_callback=self._header_back,
                          request_timeout=3600, connect_timeout=10, allow_nonstandard_methods=True,
                          decompress_response=False)
        self._fetch = asyncio.ensure_future(AsyncHTTPClient().fetch(req, raise_error=False))

    async def _produce(self, write) -> None:
        assert self._queue is not None
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            await write(chunk)

    async def data_received(self, chunk: bytes) -> None:
        if self._queue is not None:
            await self._queue.put(chunk)

    def _header_back(self, line: str) -> None:
        line = line.strip()
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            self.set_status(int(parts[1]), parts[2] if len(parts) > 2 else None)
            self.clear_header("Content-Type")
            self._status_set = True
            return
        if ":" in line:
            name, value = line.split(":", 1)
            if name.strip().lower() in PASS_HEADERS:
                self.set_header(name.strip(), value.strip())
                if value.strip().startswith("text/event-stream"):
                    # no proxy in between may hold events back
                    self.set_header("X-Accel-Buffering", "no")

    def _stream_back(self, chunk: bytes) -> None:
        if self._client_gone:
            # raising here makes the HTTP client drop the edge connection (an endless event stream)
            raise ClientGone()
        # every chunk is flushed at once: downloads stream, and Server-Sent Events arrive as sent
        self.write(chunk)
        self.flush()

    def on_connection_close(self) -> None:
        self._client_gone = True
        if self._queue is not None and not self._queue.full():
            self._queue.put_nowait(None)  # end an upload the browser abandoned
        super().on_connection_close()

    async def _forward(self) -> None:
        self._body_read = True  # every method forwards, and tornado calls it once the whole body is in
        if self._queue is not None:
            await self._queue.put(None)
        assert self._fetch is not None
        try:
            resp = await self._fetch
        except ClientGone:
            return
        if self._client_gone:
            return
        if resp.code == 599:
            self.clear()
            self.set_status(503)
            self.finish(json.dumps({"message": f"the yardlab edge service is unreachable: {resp.error}",
                                    "reason": "Service Unavailable"}))
            return
        self.finish()

    @tornado.web.authenticated
    async def get(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def put(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def post(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def patch(self, _path: str) -> None:
        await self._forward()

    @tornado.web.authenticated
    async def delete(self, _path: str) -> None:
        await self._forward()


default_handlers: list[tuple[str, type[APIHandler]]] = [
    (r"/yardlab/api/status", StatusHandler),
    (rf"/yardlab/api/((?:{'|'.join(EDGE_PATHS)})(?:/.*)?)", EdgeForwardHandler),
]
