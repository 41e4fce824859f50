"""The Enterprise Gateway client: EG's REST API and a kernel's websocket, as the edge (with EG's token).

EG listens on loopback and trusts its token alone; :attr:`GatewayClient.headers` is the one place
that token is put on a request.  Errors come out as :class:`GatewayUnavailable` (EG is starting or
did not answer) or :class:`GatewayError` (EG answered, but not with what was asked); the services
decide what a user is told.  Every EG path the edge uses is built here.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from tornado import websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

#: EG's status and JSON body (None when there is none), for answers the edge relays as they are
Reply = tuple[int, Any]


class GatewayUnavailable(Exception):
    """Enterprise Gateway is starting, or did not answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GatewayError(Exception):
    """Enterprise Gateway answered, but not with what was asked: its status and its reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class GatewayClient(LoggingConfigurable):
    """Enterprise Gateway's REST API and kernel websockets on loopback, with EG's token."""

    connect_timeout = Float(5.0, help="Seconds to wait for a connection to Enterprise Gateway.").tag(config=True)
    request_timeout = Float(
        30.0, help="Seconds to wait for Enterprise Gateway's answer to a call (kernel starts and restarts wait "
                   "for the launch instead: GatewaySupervisor.launch_timeout).").tag(config=True)

    max_clients = Integer(
        100, help="""Calls to Enterprise Gateway in flight at once (more wait in line).

        A kernel start's call waits for the launch, a minute or more on a busy cluster, so EG's calls have
        an HTTP client of their own: with tornado's shared one (10 connections), ten starts held every
        connection and the edge's calls to the ResourceManager, WebHDFS and the hub timed out behind them
        (measured with bench/bench_load.py: 20 concurrent starts, 5,010 answers of 503).""").tag(config=True)

    def __init__(self, url: str, ready: asyncio.Event | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.token = ""
        #: set while EG is up and holds ``token`` (the supervisor's to set); calls wait for nothing
        self.ready = ready if ready is not None else asyncio.Event()
        self.http = AsyncHTTPClient(force_instance=True, max_clients=self.max_clients)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    # -- transport -------------------------------------------------------------------------------------
    async def probe(self, with_token: bool = True) -> int | None:
        """EG's status for a listing of kernelspecs (None: no answer), ready or not: the health check."""
        req = HTTPRequest(f"{self.url}/api/kernelspecs", headers=self.headers if with_token else None,
                          request_timeout=5, connect_timeout=2)
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except (HTTPClientError, OSError, asyncio.TimeoutError):
            return None
        return resp.code

    async def request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Reply:
        """One call to EG's REST API; (status, JSON or None).  GatewayUnavailable when EG cannot answer."""
        if not self.ready.is_set():
            raise GatewayUnavailable("the kernel gateway is starting; try again in a few seconds")
        req = HTTPRequest(f"{self.url}{path}", method=method,
                          headers={**self.headers, "Content-Type": "application/json"},
                          body=json.dumps(body) if body is not None else None,
                          request_timeout=timeout or self.request_timeout, connect_timeout=self.connect_timeout,
                          allow_nonstandard_methods=True)
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except (HTTPClientError, OSError, asyncio.TimeoutError) as e:
            raise GatewayUnavailable(f"the kernel gateway did not answer: {e}") from e
        if resp.code == 599:
            raise GatewayUnavailable(f"the kernel gateway is unreachable: {resp.error}")
        try:
            data = json.loads(resp.body) if resp.body else None
        except ValueError:
            data = None
        return resp.code, data

    # -- the API ---------------------------------------------------------------------------------------
    async def version(self) -> Reply:
        return await self.request("GET", "/api")

    async def kernelspecs(self) -> dict:
        """EG's kernelspecs listing: {"default": name, "kernelspecs": {name: spec}}."""
        code, data = await self.request("GET", "/api/kernelspecs")
        if code != 200 or not isinstance(data, dict):
            raise GatewayError(code, _reason(data, code))
        return data

    async def kernels(self, timeout: float | None = None) -> list[dict]:
        """Every kernel EG runs (EG's models)."""
        code, data = await self.request("GET", "/api/kernels", timeout=timeout)
        if code != 200 or not isinstance(data, list):
            raise GatewayError(code, _reason(data, code))
        return [k for k in data if isinstance(k, dict)]

    async def kernel_ids(self) -> set[str] | None:
        """Ids of the kernels EG knows right now, or None when EG cannot be asked."""
        if not self.ready.is_set():
            return None
        try:
            return {k["id"] for k in await self.kernels(10) if "id" in k}
        except (GatewayUnavailable, GatewayError):
            return None

    async def kernel(self, kernel_id: str) -> Reply:
        return await self.request("GET", _kernel_path(kernel_id))

    async def start_kernel(self, name: str, env: dict[str, str], timeout: float) -> dict:
        """Start a kernel of kernelspec ``name``; EG's model of it (201), else GatewayError with EG's reason."""
        code, data = await self.request("POST", "/api/kernels", {"name": name, "env": env}, timeout=timeout)
        if code != 201 or not isinstance(data, dict):
            raise GatewayError(code, _reason(data, code))
        return data

    async def restart_kernel(self, kernel_id: str, timeout: float) -> Reply:
        return await self.request("POST", f"{_kernel_path(kernel_id)}/restart", {}, timeout=timeout)

    async def interrupt_kernel(self, kernel_id: str) -> Reply:
        return await self.request("POST", f"{_kernel_path(kernel_id)}/interrupt", {})

    async def shutdown_kernel(self, kernel_id: str, timeout: float = 120) -> int:
        """Shut a kernel down; EG's status (204, or 404 when it had no such kernel)."""
        code, _ = await self.request("DELETE", _kernel_path(kernel_id), timeout=timeout)
        return code

    # -- websockets ------------------------------------------------------------------------------------
    def channels_request(self, kernel_id: str, query: str = "") -> HTTPRequest:
        """The request that opens a kernel's channels websocket on EG (``query`` passed on as it came)."""
        url = self.url.replace("http", "ws", 1) + f"{_kernel_path(kernel_id)}/channels"
        if query:
            url += "?" + query
        return HTTPRequest(url, headers=self.headers, connect_timeout=10, request_timeout=60)

    async def connect_channels(self, kernel_id: str, query: str = "") -> websocket.WebSocketClientConnection:
        """A kernel's channels on EG; GatewayUnavailable when EG refuses or does not answer."""
        try:
            return await websocket.websocket_connect(self.channels_request(kernel_id, query),
                                                     max_message_size=256 * 1024 * 1024)
        except Exception as e:  # noqa: BLE001 - refused, unreachable, timed out: all one to the caller
            raise GatewayUnavailable(f"could not reach kernel {kernel_id} on the gateway: {e}") from e


def _kernel_path(kernel_id: str) -> str:
    return f"/api/kernels/{quote(kernel_id, safe='')}"


def _reason(data: Any, code: int) -> str:
    """EG's own words for a failure (its reason, or message), else the status."""
    if isinstance(data, dict):
        reason = data.get("reason") or data.get("message")
        if reason:
            return str(reason)
    return f"HTTP {code}"
