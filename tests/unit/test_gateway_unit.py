"""The gateway's edge side without a cluster: the kernel websocket relay (against a stand-in EG that counts
its connections, which the real one cannot be made to report on demand), the REST calls relayed through
GatewayClient, the JSON body reader, and how GatewaySupervisor hands Enterprise Gateway its token (the
real EG binary from .venv-eg, on a free port)."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from tornado import web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from yardlab.edge import osutil
from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.clients.gateway import GatewayClient, GatewayUnavailable
from yardlab.edge.errors import PublicError
from yardlab.edge.handlers.routes import gateway_routes
from yardlab.edge.kernels import KernelService
from yardlab.edge.ledger import KernelLedger
from yardlab.edge.osutil import write_private
from yardlab.edge.snapshot import AppSnapshot
from yardlab.edge.supervisor import GatewaySupervisor

ROOT = Path(__file__).resolve().parents[2]
EG_TOKEN = "eg-secret-token"
KERNEL_ID = "0b5e3f2c-1d4a-4c6e-9f00-123456789abc"
USERS = {"alice-token": Identity(name="alice", admin=False), "bob-token": Identity(name="bob", admin=False)}


class FakeGateway:
    """EG's kernel websocket, counting connections: greets on open, echoes, hangs up when asked."""

    def __init__(self) -> None:
        self.live: set[websocket.WebSocketHandler] = set()
        self.opened = 0
        self.accept_delay = 0.0


class FakeChannelsHandler(websocket.WebSocketHandler):
    def initialize(self, eg: FakeGateway) -> None:
        self.eg = eg

    async def prepare(self) -> None:
        if self.request.headers.get("Authorization") != f"token {EG_TOKEN}":
            raise web.HTTPError(401)
        await asyncio.sleep(self.eg.accept_delay)

    def open(self, kernel_id: str) -> None:
        self.eg.live.add(self)
        self.eg.opened += 1
        self.write_message(json.dumps({"from": "eg", "kernel": kernel_id}))

    def on_message(self, message: str | bytes) -> None:
        if message == "hang up":
            self.close()
        elif isinstance(message, bytes):
            self.write_message(b"echo:" + message, binary=True)
        else:
            self.write_message(f"echo:{message}")

    def on_close(self) -> None:
        self.eg.live.discard(self)


class FakeRESTHandler(web.RequestHandler):
    """EG's REST answers the relay passes on: its version, a kernel's model, an interrupt."""

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != f"token {EG_TOKEN}":
            raise web.HTTPError(401)

    def get(self, kernel_id: str | None = None) -> None:
        self.finish({"id": kernel_id, "name": "yardlab_python"} if kernel_id else {"version": "3.3.0"})

    def post(self, kernel_id: str) -> None:
        self.set_status(204)


class HubTokens:
    """The identifier: two users' tokens, nothing else (both answered from its "cache")."""

    def cached_identity(self, authorization: str | None) -> Identity:
        token = (authorization or "").removeprefix("token ")
        if token not in USERS:
            raise PublicError(401, "this token is not valid", reason="Unauthorized")
        return USERS[token]

    async def identify(self, authorization: str | None) -> Identity:
        return self.cached_identity(authorization)


@dataclass
class Rig:
    """The edge's /gateway/ routes and a stand-in EG, both listening on loopback."""

    edge: str
    eg: FakeGateway
    channels: dict
    supervisor: GatewaySupervisor
    servers: list[HTTPServer] = field(default_factory=list)

    @property
    def channels_url(self) -> str:
        return f"{self.edge.replace('http', 'ws', 1)}/gateway/api/kernels/{KERNEL_ID}/channels"

    async def connect(self, token: str = "alice-token", **headers: str) -> websocket.WebSocketClientConnection:
        return await websocket.websocket_connect(HTTPRequest(
            self.channels_url, headers={"Authorization": f"token {token}", **headers}, request_timeout=10))


def with_rig(tmp_path: Path, scenario: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        eg = FakeGateway()
        eg_sock, eg_port = bind_unused_port()
        eg_server = HTTPServer(web.Application([
            (r"/api/kernels/([^/]+)/channels", FakeChannelsHandler, {"eg": eg}),
            (r"/api", FakeRESTHandler), (r"/api/kernels/([^/]+)", FakeRESTHandler),
            (r"/api/kernels/([^/]+)/interrupt", FakeRESTHandler)]))
        eg_server.add_sockets([eg_sock])
        supervisor = GatewaySupervisor(port=eg_port)
        supervisor.token = EG_TOKEN
        supervisor.ready.set()
        ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")
        ledger.add(id=KERNEL_ID, user="alice", kernelspec="yardlab_python", environment="builtin", notebook=None,
                   queue="default", need_mb=1024, need_vcores=1)
        kernels = KernelService(supervisor, ledger, AppSnapshot(), AuditLog(path=str(tmp_path / "audit.jsonl")),
                                kernels_dir="")
        channels: dict[str, set] = {}
        edge_sock, edge_port = bind_unused_port()
        edge_server = HTTPServer(web.Application(gateway_routes("/"), identifier=HubTokens(), kernels=kernels,
                                                 channels=channels, base_url="/"))
        edge_server.add_sockets([edge_sock])
        rig = Rig(f"http://127.0.0.1:{edge_port}", eg, channels, supervisor, [edge_server, eg_server])
        try:
            await scenario(rig)
        finally:
            for server in rig.servers:
                server.stop()
                await server.close_all_connections()

    asyncio.run(main())


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# -- the kernel websocket ----------------------------------------------------------------------------


def test_refused_upgrades_open_nothing_on_the_gateway(tmp_path):
    """Plain GETs (400), foreign pages (403) and old protocol versions (426) never reach EG."""

    async def scenario(rig: Rig) -> None:
        http = AsyncHTTPClient()
        url = rig.channels_url.replace("ws", "http", 1)
        for _ in range(50):
            resp = await http.fetch(url, headers={"Authorization": "token alice-token"}, raise_error=False)
            assert resp.code == 400
        for _ in range(20):
            with pytest.raises(HTTPClientError) as refused:
                await rig.connect(Origin="http://evil.example")
            assert refused.value.code == 403
        old_version = {"Authorization": "token alice-token", "Upgrade": "websocket", "Connection": "Upgrade",
                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8"}
        for _ in range(10):
            resp = await http.fetch(url, headers=old_version, raise_error=False)
            assert resp.code == 426
        await asyncio.sleep(0.2)  # a connection made before the refusal would be open by now
        assert rig.eg.opened == 0 and not rig.eg.live
        assert rig.channels == {}

    with_rig(tmp_path, scenario)


def test_other_users_and_missing_tokens_are_refused_before_the_upgrade(tmp_path):
    async def scenario(rig: Rig) -> None:
        for token, code in (("bob-token", 403), ("nobody", 401)):
            with pytest.raises(HTTPClientError) as refused:
                await rig.connect(token)
            assert refused.value.code == code
        assert rig.eg.opened == 0

    with_rig(tmp_path, scenario)


def test_a_real_upgrade_relays_both_ways_and_closing_the_client_closes_the_gateway_side(tmp_path):
    async def scenario(rig: Rig) -> None:
        rig.eg.accept_delay = 0.3  # EG answers slowly: what the client sends at once must still arrive
        client = await rig.connect()
        await client.write_message("first")
        await client.write_message(b"\x00binary", binary=True)
        assert json.loads(await client.read_message()) == {"from": "eg", "kernel": KERNEL_ID}
        assert await client.read_message() == "echo:first"
        assert await client.read_message() == b"echo:\x00binary"  # binary frames stay binary
        assert len(rig.eg.live) == 1 and len(rig.channels[KERNEL_ID]) == 1
        client.close()
        assert await eventually(lambda: not rig.eg.live), "EG's side stayed open after the client left"
        assert await eventually(lambda: rig.channels == {})

    with_rig(tmp_path, scenario)


def test_the_gateway_hanging_up_closes_the_client(tmp_path):
    async def scenario(rig: Rig) -> None:
        client = await rig.connect()
        await client.read_message()  # the greeting
        await client.write_message("hang up")
        assert await client.read_message() is None
        assert await eventually(lambda: not rig.eg.live and rig.channels == {})

    with_rig(tmp_path, scenario)


def test_an_unreachable_gateway_closes_the_websocket_with_a_reason(tmp_path):
    async def scenario(rig: Rig) -> None:
        for server in rig.servers[1:]:  # EG goes away
            server.stop()
            await server.close_all_connections()
        client = await rig.connect()
        assert await client.read_message() is None
        assert client.close_code == 1011 and "could not reach the kernel" in (client.close_reason or "")
        assert await eventually(lambda: rig.channels == {})

    with_rig(tmp_path, scenario)


# -- REST calls relayed to EG ------------------------------------------------------------------------


async def call(rig: Rig, path: str, method: str = "GET", token: str = "alice-token") -> tuple[int, dict | None]:
    resp = await AsyncHTTPClient().fetch(f"{rig.edge}/gateway/api{path}", method=method, raise_error=False,
                                         body=b"{}" if method == "POST" else None,
                                         headers={"Authorization": f"token {token}"})
    return resp.code, json.loads(resp.body) if resp.body else None


def test_eg_answers_are_relayed_to_the_kernels_owner_only(tmp_path):
    async def scenario(rig: Rig) -> None:
        assert await call(rig, "") == (200, {"version": "3.3.0"})
        assert await call(rig, f"/kernels/{KERNEL_ID}") == (200, {"id": KERNEL_ID, "name": "yardlab_python"})
        assert await call(rig, f"/kernels/{KERNEL_ID}/interrupt", "POST") == (204, None)
        for path, method in ((f"/kernels/{KERNEL_ID}", "GET"), (f"/kernels/{KERNEL_ID}/interrupt", "POST")):
            code, body = await call(rig, path, method, token="bob-token")
            assert code == 403 and "another user" in body["message"]
        code, body = await call(rig, "/kernels/not-a-kernel-id")
        assert code == 400

    with_rig(tmp_path, scenario)


def test_while_eg_starts_or_is_gone_calls_are_503_with_a_sentence(tmp_path):
    async def scenario(rig: Rig) -> None:
        rig.supervisor.ready.clear()
        code, body = await call(rig, f"/kernels/{KERNEL_ID}")
        assert code == 503 and "starting" in body["message"]
        assert await rig.supervisor.client.kernel_ids() is None
        rig.supervisor.ready.set()
        for server in rig.servers[1:]:  # EG goes away
            server.stop()
            await server.close_all_connections()
        code, body = await call(rig, f"/kernels/{KERNEL_ID}/interrupt", "POST")
        assert code == 503 and "kernel gateway" in body["message"]

    with_rig(tmp_path, scenario)


def test_the_channels_request_carries_the_query_and_eg_token():
    client = GatewayClient("http://127.0.0.1:1")
    req = client.channels_request(KERNEL_ID, "session_id=x")
    assert req.url == f"ws://127.0.0.1:1/api/kernels/{KERNEL_ID}/channels?session_id=x"
    client.token = EG_TOKEN
    assert client.channels_request(KERNEL_ID).headers["Authorization"] == f"token {EG_TOKEN}"
    with pytest.raises(GatewayUnavailable):
        asyncio.run(client.version())  # not ready: nothing is sent


# -- the JSON body of a kernel start ------------------------------------------------------------------


@pytest.mark.parametrize("body,status,needle", [
    (b"[" * 30000 + b"]" * 30000, 400, "nested too deeply"),
    (b'{"name": "x", "env": {"KERNEL_WORKING_DIR": ' + b"[" * 20000 + b"]" * 20000 + b"}}", 400, "nested too deeply"),
    (b'{"name": "yardlab_python", "env": {"KERNEL_WORKING_DIR": "/home/\\ud800"}}', 400, "lone surrogate"),
    (b"[" * 100000 + b"]" * 100000, 413, "too large"),
    (b"\xff\xfe not utf-8", 400, "not valid JSON"),
], ids=["nested", "nested-in-env", "lone-surrogate", "nested-and-large", "not-utf-8"])
def test_bad_bodies_of_a_kernel_start_are_refused_with_a_sentence(tmp_path, body, status, needle):
    async def scenario(rig: Rig) -> None:
        resp = await AsyncHTTPClient().fetch(f"{rig.edge}/gateway/api/kernels", method="POST", body=body,
                                             headers={"Authorization": "token alice-token"}, raise_error=False)
        assert resp.code == status, resp.body[:300]
        assert needle in json.loads(resp.body)["message"]

    with_rig(tmp_path, scenario)


# -- EG's token ------------------------------------------------------------------------------------------


def test_the_launch_command_line_holds_no_token(tmp_path):
    sup = GatewaySupervisor(state_file=str(tmp_path / "eg.json"), command=["jupyter-enterprisegateway"])
    sup.token = "a-token-that-must-not-show"
    argv = sup.launch_argv()
    assert not any(sup.token in arg or "auth_token" in arg for arg in argv)
    assert f"--config={tmp_path / 'eg-config.json'}" in argv


def test_the_edge_hands_eg_no_credential_from_its_environment(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("EG_AUTH_TOKEN", "stale")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    monkeypatch.setenv("HADOOP_TOKEN_FILE_LOCATION", "/tmp/tokens")
    env = GatewaySupervisor(env={"SPARK_HOME": "/opt/spark"}).launch_env()
    assert not {"JUPYTERHUB_API_TOKEN", "EG_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["HADOOP_TOKEN_FILE_LOCATION"] == "/tmp/tokens" and env["SPARK_HOME"] == "/opt/spark"


def test_under_kerberos_eg_runs_on_the_edges_ticket_cache(tmp_path, monkeypatch):
    from yardlab.edge.kerberos import Kerberos

    monkeypatch.delenv("KRB5CCNAME", raising=False)
    off = GatewaySupervisor(kerberos=Kerberos()).launch_env()
    assert "KRB5CCNAME" not in off and "EG_YARN_ENDPOINT_SECURITY_ENABLED" not in off
    login = Kerberos(keytab=str(tmp_path / "edge.keytab"), principal="yardlab@EXAMPLE.COM",
                     ccache=str(tmp_path / "krb5cc"))
    env = GatewaySupervisor(kerberos=login, env={"SPARK_HOME": "/opt/spark"}).launch_env()
    assert env["KRB5CCNAME"] == f"FILE:{tmp_path / 'krb5cc'}"
    assert env["EG_YARN_ENDPOINT_SECURITY_ENABLED"] == "True"
    # the operator's configured env has the last word
    env = GatewaySupervisor(kerberos=login, env={"KRB5CCNAME": "FILE:/elsewhere"}).launch_env()
    assert env["KRB5CCNAME"] == "FILE:/elsewhere"


def test_private_files_are_0600_from_the_start(tmp_path, monkeypatch):
    """Never written readable and chmod-ed after: the file appears by a rename of a 0600 file."""
    renamed: dict[str, int] = {}
    real_replace = os.replace

    def spy(src, dst):  # noqa: ANN001
        renamed[str(dst)] = stat.S_IMODE(os.stat(src).st_mode)
        real_replace(src, dst)

    monkeypatch.setattr(osutil.os, "replace", spy)
    target = tmp_path / "secret.json"
    target.write_text("old")
    target.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_private(target, '{"token": "t"}')
    finally:
        os.umask(old_umask)
    assert renamed == {str(target): 0o600}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == '{"token": "t"}'
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_enterprise_gateway_takes_its_token_from_the_config_file(tmp_path):
    """The real EG (.venv-eg) on a free port: started, token only in a 0600 file, enforced."""
    eg = ROOT / ".venv-eg" / "bin" / "jupyter-enterprisegateway"
    assert eg.exists(), "Enterprise Gateway is not installed in .venv-eg: run `make install`"

    async def main() -> None:
        sup = GatewaySupervisor(
            command=[str(eg)], port=_free_port(), state_file=str(tmp_path / "eg.json"),
            log_file=str(tmp_path / "eg.log"), cull_interval=60,
            env={"JUPYTER_PATH": str(tmp_path / "share"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
                 "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
                 "EG_RESPONSE_PORT": str(_free_port())})
        try:
            await sup._launch()
            assert sup.ready.is_set(), (tmp_path / "eg.log").read_text()[-2000:]
            cmdline = Path(f"/proc/{sup.pid}/cmdline").read_bytes().decode()
            assert sup.token not in cmdline and f"--config={sup.config_file}" in cmdline.split("\0")
            assert sup.token not in Path(f"/proc/{sup.pid}/environ").read_bytes().decode(errors="replace")
            for path in (sup.config_file, sup.state_file):
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
            assert json.loads(Path(sup.state_file).read_text())["token"] == sup.token
            assert await sup.refuses_strangers()  # the token from the file is enforced
            assert "kernelspecs" in await sup.client.kernelspecs()
        finally:
            await sup.stop(stop_gateway=True)
            if sup.proc is not None:
                sup.proc.wait(timeout=30)

    asyncio.run(main())


def test_an_eg_that_ignores_its_token_is_stopped(tmp_path):
    """If EG ever started without reading the config file, it would serve anyone on loopback."""
    port = _free_port()
    open_eg = ("import sys, http.server\n"
               "class H(http.server.BaseHTTPRequestHandler):\n"
               "    def do_GET(self):\n"
               "        self.send_response(200); self.end_headers(); self.wfile.write(b'{}')\n"
               f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n")

    async def main() -> None:
        sup = GatewaySupervisor(command=[sys.executable, "-c", open_eg, "--"], port=port,
                                state_file=str(tmp_path / "eg.json"), log_file=str(tmp_path / "eg.log"))
        try:
            await sup._launch()
            assert not sup.ready.is_set()
            assert sup.proc is not None and sup.proc.wait(timeout=10) != 0
        finally:
            await sup.stop(stop_gateway=True)

    asyncio.run(main())


def test_kernel_starts_waiting_on_eg_hold_up_none_of_the_edges_other_calls():
    """Twelve kernel starts that EG keeps waiting: meanwhile a call through tornado's shared HTTP
    client (the one the ResourceManager's, WebHDFS's and the hub's calls use) is answered at once.
    With EG's calls on the shared client (10 connections), it waited in line behind them
    (bench/bench_load.py: 20 concurrent starts, 5,010 answers of 503)."""

    class SlowStart(web.RequestHandler):
        async def post(self) -> None:
            await asyncio.sleep(3)
            self.write({"id": KERNEL_ID})

    class Fast(web.RequestHandler):
        def get(self) -> None:
            self.write("ok")

    async def scenario() -> float:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([(r"/api/kernels", SlowStart), (r"/fast", Fast)]))
        server.add_sockets([sock])
        try:
            client = GatewayClient(f"http://127.0.0.1:{port}")
            client.ready.set()
            starts = [asyncio.ensure_future(client.request("POST", "/api/kernels", body={}, timeout=20))
                      for _ in range(12)]
            await asyncio.sleep(0.5)  # every start is waiting on "EG"
            began = asyncio.get_running_loop().time()
            fast = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/fast", request_timeout=10)
            took = asyncio.get_running_loop().time() - began
            assert fast.body == b"ok"
            assert [code for code, _ in await asyncio.gather(*starts)] == [200] * 12
            return took
        finally:
            server.stop()

    took = asyncio.run(scenario())
    assert took < 1.0, f"a call on the shared client waited {took:.1f} s behind kernel starts"
