"""/gateway/: the kernel gateway API (as jupyter_server's GatewayClient uses it), with policy applied."""
from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import parse_qsl, urlencode
from typing import Any

from tornado import websocket
from tornado.log import app_log

from ..errors import PublicError
from ..kernels import KernelService
from .base import AuthenticatedHandler


class GatewayHandler(AuthenticatedHandler):
    """Base: the kernel service and a JSON body reader."""

    @property
    def kernels(self) -> KernelService:
        return self.settings["kernels"]

    def json_body(self, empty: Any = None, max_bytes: int | None = 64 * 1024) -> Any:
        return super().json_body({} if empty is None else empty, max_bytes)

    def relay(self, code: int, data: Any) -> None:
        """EG's answer, as it gave it (no body when it sent none)."""
        if code == 204 or data is None:
            self.set_status(code)
            self.finish()
        else:
            self.write_json(data, code)


class GatewayRootHandler(GatewayHandler):
    """GET /gateway/api: version information (GatewayClient probes it)."""

    async def get(self) -> None:
        code, data = await self.kernels.version()
        self.write_json(data or {}, code if code < 500 else 502)


class KernelSpecsHandler(GatewayHandler):
    """GET /gateway/api/kernelspecs: only the specs this user may use."""

    async def get(self) -> None:
        self.write_json(await self.kernels.kernelspecs(self.me))


class KernelSpecHandler(GatewayHandler):
    """GET /gateway/api/kernelspecs/<name>."""

    async def get(self, name: str) -> None:
        self.write_json(await self.kernels.kernelspec(self.me, name))


class KernelSpecResourceHandler(GatewayHandler):
    """GET /gateway/kernelspecs/<name>/<file>: logos and the like, for specs the user may use."""

    async def get(self, name: str, resource: str) -> None:
        await self.kernels.kernelspec_resource(self.me, name, resource)


class KernelsHandler(GatewayHandler):
    """GET: the caller's kernels; POST: start one, as the caller."""

    async def get(self) -> None:
        self.write_json(await self.kernels.list_kernels(self.me))

    async def post(self) -> None:
        data = await self.kernels.start_kernel(self.me, self.json_body())
        self.set_header("Location", f"{self.settings['base_url']}gateway/api/kernels/{data['id']}")
        self.write_json(data, 201)


class KernelHandler(GatewayHandler):
    """GET /gateway/api/kernels/<id>: own kernels (admins: any); DELETE: shut down (owner or admin)."""

    async def get(self, kernel_id: str) -> None:
        code, data = await self.kernels.kernel(self.me, kernel_id)
        self.write_json(data or {"message": "no such kernel"}, code)

    async def delete(self, kernel_id: str) -> None:
        code = await self.kernels.shutdown_kernel(self.me, kernel_id)
        self.set_status(204 if code in (204, 404) else 502)
        self.finish()


class KernelSessionHandler(GatewayHandler):
    """PUT /api/v1/kernels/<id>/session: the owner's Lab server says which notebook the kernel serves."""

    async def put(self, kernel_id: str) -> None:
        self.write_json(self.kernels.set_session(self.me, kernel_id, self.json_body(max_bytes=8192)))


class WarmPoolHandler(GatewayHandler):
    """GET /api/v1/kernels/warm: the warm kernel pool: for admins all of it (rules, every user's warm kernels,
    counters); for a user their own warm kernels and the rules that apply to them."""

    def get(self) -> None:
        pool = self.settings["warm_pool"]
        state = pool.state()
        if not self.me.admin:
            groups = (pool.active or {}).get(self.me.name, self.me.groups)
            state = {"enabled": state["enabled"], "rules": pool.rules_for(groups),
                     "kernels": [k for k in state["kernels"] if k["user"] == self.me.name]}
        self.set_header("Cache-Control", "no-store")
        self.write_json(state)


class KernelStartsHandler(GatewayHandler):
    """GET /api/v1/kernels/starting: the caller's kernel starts in flight and their phase (submitting, queued
    in YARN with the reason, starting the driver, connecting the kernel): the notebook's kernel indicator."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write_json({"kernels": self.kernels.starting(self.me)})


class KernelProgressHandler(GatewayHandler):
    """GET /api/v1/kernels/<id>/progress?cell=<execute request id>: that cell's Spark jobs and stages, live
    (the owner only; see edge/progress.py)."""

    async def get(self, kernel_id: str) -> None:
        rec = self.kernels.check_kernel(self.me, kernel_id)
        cell = self.arg("cell", 100) or ""
        app_id = rec.get("app_id")
        if not app_id:
            self.write_json({"app": None, "state": rec.get("state") or "", "ui": None, "jobs": []})
            return
        app = await self.jobs.app_for(self.me, app_id)
        self.write_json(await self.settings["progress"].for_cell(app, cell))


class KernelActionHandler(GatewayHandler):
    """POST /gateway/api/kernels/<id>/(interrupt|restart): the owner only."""

    async def post(self, kernel_id: str, action: str) -> None:
        self.relay(*await self.kernels.kernel_action(self.me, kernel_id, action))


def own_session(query: str) -> str:
    """The query for EG with a session id of this connection's own (the client's, plus a suffix).

    EG keys a kernel's websocket connections by session id: a new connection with the id of one
    still open "replaces" it and restores that one's channels.  JupyterLab's first connection
    through a Lab server fails in the browser (it asks for a subprotocol the gateway client does not
    select) while the Lab server's own connection to the edge is left open; the second one, with
    the same id, then never got the reply to its kernel_info request, and Lab waited for that reply
    forever before sending the cell (found with a notebook run in Chromium).  One id per
    connection gives up EG's replay of messages to a reconnecting client, which Lab does not rely
    on: it asks the kernel for its state when it reconnects."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "session_id"]
    client = dict(parse_qsl(query)).get("session_id", "")[:100]
    pairs.append(("session_id", f"{client}-{uuid.uuid4().hex[:12]}" if client else uuid.uuid4().hex))
    return urlencode(pairs)


class KernelChannelsHandler(websocket.WebSocketHandler):
    """The kernel's websocket (/gateway/api/kernels/<id>/channels), relayed to EG for the owner only.

    EG is reached only once the client's upgrade is accepted (in :meth:`open`): tornado refuses some
    upgrades after ``get`` runs (no Upgrade header, a foreign Origin, an old protocol version), and a
    connection made for those would stay open, and keep its kernel from ever being culled.  Tornado
    reads no message from the client until ``open`` returns, so nothing needs buffering meanwhile.
    Every way out (client gone, EG gone, an error either side) closes both connections.
    """

    upstream: websocket.WebSocketClientConnection | None = None
    kernel_id = ""
    _pump_task: asyncio.Task | None = None
    _closed = False

    @property
    def kernels(self) -> KernelService:
        return self.settings["kernels"]

    async def get(self, kernel_id: str) -> None:
        try:
            who = await self.settings["identifier"].identify(self.request.headers.get("Authorization"))
            self.kernels.may_connect(who, kernel_id)
        except PublicError as e:
            self.set_status(e.status)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"message": e.message, "reason": e.reason or ""}))
            return
        self.kernel_id = kernel_id
        await super().get(kernel_id)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return None  # EG 3.3 speaks the original JSON protocol only

    async def open(self, kernel_id: str) -> None:
        try:
            upstream = await self.kernels.connect(kernel_id, own_session(self.request.query))
        except PublicError as e:  # EG refused or is down: tell the client plainly
            app_log.warning("kernel %s: %s", kernel_id, e.message)
            self.close(1011, "could not reach the kernel on the gateway")
            return
        if self._closed:  # the client left while EG was being reached
            upstream.close()
            return
        self.upstream = upstream
        self.settings["channels"].setdefault(kernel_id, set()).add(self)
        self._pump_task = asyncio.ensure_future(self._pump(upstream))

    async def _pump(self, upstream: websocket.WebSocketClientConnection) -> None:
        """EG -> client, until either side ends; then both are closed."""
        try:
            while True:
                msg = await upstream.read_message()
                if msg is None:
                    break
                await self.write_message(msg, binary=isinstance(msg, bytes))
        except websocket.WebSocketClosedError:
            pass
        except Exception:  # noqa: BLE001 - one relay failing must not leave its connections open
            app_log.exception("kernel %s: relaying from the gateway failed", self.kernel_id)
        finally:
            upstream.close()
            self.close()

    async def on_message(self, message: str | bytes) -> None:
        if self.upstream is None:
            return
        try:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            self.close(1011, "the kernel's connection on the gateway closed")

    def on_close(self) -> None:
        self._closed = True
        if self.upstream is not None:
            self.upstream.close()
        handlers = self.settings["channels"].get(self.kernel_id)
        if handlers is not None:
            handlers.discard(self)
            if not handlers:
                self.settings["channels"].pop(self.kernel_id, None)

    def report_dead(self) -> None:
        """Tell the client its kernel is dead (its YARN application ended), then close."""
        status = {"header": {"msg_type": "status", "msg_id": f"yardlab-dead-{self.kernel_id}", "username": "",
                             "session": "", "date": "", "version": "5.3"},
                  "msg_id": f"yardlab-dead-{self.kernel_id}", "msg_type": "status", "parent_header": {},
                  "metadata": {}, "content": {"execution_state": "dead"}, "buffers": [], "channel": "iopub"}
        try:
            self.write_message(json.dumps(status))
        except websocket.WebSocketClosedError:
            pass
        self.close(1000, "kernel died: its YARN application ended")
