"""The edge's Kerberos login against a real KDC (the stack's MiniKdc process, no Hadoop): the ticket
cache written 0600 with a TGT, SPNEGO headers an HTTP service accepts as the edge's principal, clear
start errors for a wrong keytab, the RM client's SPNEGO + hadoop.auth cookie (doAs kept, no
user.name), WebHDFS sessions with doas and no user.name, and /health's 503 while the KDC is away.

MIT krb5 reads KRB5_CONFIG when it makes a context, so the module points it at its own krb5.conf
(the KDC on a free port) before the first gssapi call, and puts it back after.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import gssapi
import pytest
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from yardlab.edge.app import EdgeApp
from yardlab.edge.clients.resourcemanager import ResourceManagerClient, RMUnavailable
from yardlab.edge.clients.webhdfs import WebHDFSClient, WebHDFSUnavailable
from yardlab.edge.handlers.ops import HealthHandler
from yardlab.edge.kerberos import Kerberos, KerberosError

ROOT = Path(__file__).resolve().parents[2]
REALM = "EXAMPLE.COM"
EDGE = f"yardlab@{REALM}"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kdc:
    """dev/kdc/YardlabKdc.java as a child process; restarting it re-creates the keytabs with new keys."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.keytab = root / "keytabs" / "edge.keytab"
        self.http_keytab = root / "keytabs" / "http.keytab"
        self.other_keytab = root / "keytabs" / "other.keytab"
        self.spec = root / "spec"
        self.spec.write_text(f"{self.keytab} yardlab\n{self.http_keytab} HTTP/127.0.0.1 HTTP/localhost\n"
                             f"{self.other_keytab} someone\n")
        self.krb5_conf = root / "krb5.conf"
        self.krb5_conf.write_text(f"""[libdefaults]
  default_realm = {REALM}
  udp_preference_limit = 1
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{self.port}
  }}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        work = self.root / "work"
        (work / "ready.json").unlink(missing_ok=True)
        log = open(self.root / "kdc.log", "ab")
        self.proc = subprocess.Popen(["java", "-cp", str(ROOT / "dev/hadoop/lib/*"), str(ROOT / "dev/kdc/YardlabKdc.java"),
                                      str(work), str(self.port), str(self.spec)], stdout=log, stderr=log)
        deadline = time.monotonic() + 90
        while not (work / "ready.json").exists():
            assert self.proc.poll() is None, (self.root / "kdc.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the KDC did not start in 90 s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    kdc = Kdc(tmp_path_factory.mktemp("kdc"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KRB5_CONFIG", str(kdc.krb5_conf))
        mp.setenv("KRB5RCACHETYPE", "none")  # the test acceptors need no replay cache in /var/tmp
        mp.delenv("KRB5CCNAME", raising=False)
        kdc.start()
        try:
            yield kdc
        finally:
            kdc.stop()


def login(kdc: Kdc, tmp_path: Path, **kw) -> Kerberos:
    return Kerberos(keytab=str(kw.pop("keytab", kdc.keytab)), principal=kw.pop("principal", EDGE),
                    ccache=str(tmp_path / "edge.ccache"), **kw)


def accept(kdc: Kdc, header: str) -> str:
    """What an HTTP service with the HTTP keytab makes of an Authorization header: the initiator."""
    assert header.startswith("Negotiate ")
    creds = gssapi.Credentials(usage="accept", store={"keytab": str(kdc.http_keytab)})
    ctx = gssapi.SecurityContext(creds=creds, usage="accept")
    ctx.step(base64.b64decode(header.split(" ", 1)[1]))
    assert ctx.complete
    return str(ctx.initiator_name)


def test_login_fills_a_private_ticket_cache_with_a_tgt(kdc, tmp_path):
    async def main() -> None:
        k = login(kdc, tmp_path)
        await k.start()
        try:
            assert k.enabled and k.last_error is None
        finally:
            await k.stop()

    asyncio.run(main())
    ccache = tmp_path / "edge.ccache"
    assert stat.S_IMODE(ccache.stat().st_mode) == 0o600
    out = subprocess.run(["klist", "-c", str(ccache)], capture_output=True, text=True, check=True).stdout
    assert f"Default principal: {EDGE}" in out and f"krbtgt/{REALM}@{REALM}" in out
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_spnego_header_is_accepted_as_the_edge_principal(kdc, tmp_path):
    async def main() -> tuple[str, str]:
        k = login(kdc, tmp_path)
        await k.start()
        try:
            return await k.authorization("http://127.0.0.1:8088/ws/v1/cluster"), k.negotiate_header("localhost")
        finally:
            await k.stop()

    for header in asyncio.run(main()):
        assert accept(kdc, header) == EDGE


def test_a_check_asks_the_kdc_and_replaces_the_cache_only_when_due(kdc, tmp_path):
    """Each check is a fresh AS exchange; a full ticket stays in place (same file), a missing cache is
    written again."""
    async def main() -> None:
        k = login(kdc, tmp_path)
        await k.start()
        ccache = tmp_path / "edge.ccache"
        try:
            before = ccache.stat().st_ino
            assert await k.check() is True
            assert ccache.stat().st_ino == before
            ccache.unlink()
            assert await k.check() is True
            assert stat.S_IMODE(ccache.stat().st_mode) == 0o600
            assert accept(kdc, k.negotiate_header("127.0.0.1")) == EDGE
        finally:
            await k.stop()

    asyncio.run(main())


@pytest.mark.parametrize("case", ["other keytab", "missing keytab", "no principal"])
def test_a_wrong_keytab_fails_start_with_a_sentence_naming_both(kdc, tmp_path, case):
    keytab = {"other keytab": kdc.other_keytab, "missing keytab": tmp_path / "nope.keytab",
              "no principal": kdc.keytab}[case]
    principal = f"ghost@{REALM}" if case == "no principal" else EDGE

    async def main() -> None:
        k = login(kdc, tmp_path, keytab=keytab, principal=principal)
        try:
            await k.start()
        finally:
            await k.stop()

    with pytest.raises(KerberosError) as e:
        asyncio.run(main())
    message = str(e.value)
    assert principal in message and str(keytab) in message, message
    assert {"other keytab": "has no key for", "missing keytab": "does not exist",
            "no principal": "has no key for"}[case] in message, message
    assert "Major (" not in message


def test_a_keytab_with_a_wrong_key_fails_start_with_a_sentence(kdc, tmp_path):
    """The principal is in the keytab, but its key is not the KDC's (the keytab of an older export)."""
    wrong = tmp_path / "wrong.keytab"
    subprocess.run(["ktutil"], input=f"addent -password -p {EDGE} -k 1 -e aes128-cts-hmac-sha1-96\n"
                   f"not-the-password\nwkt {wrong}\nquit\n", text=True, capture_output=True, check=True)

    async def main() -> None:
        k = login(kdc, tmp_path, keytab=wrong)
        try:
            await k.start()
        finally:
            await k.stop()

    with pytest.raises(KerberosError, match=f"the keytab {wrong} has a wrong key for {EDGE}"):
        asyncio.run(main())


def test_the_edge_start_stops_with_the_sentence_not_a_traceback(kdc, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    app = EdgeApp()
    app.initialize([f"--Kerberos.keytab={kdc.other_keytab}", f"--Kerberos.principal={EDGE}",
                    f"--Kerberos.ccache={tmp_path / 'cc'}", f"--AuditLog.path={tmp_path / 'audit.jsonl'}",
                    "--GatewaySupervisor.enabled=False", f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}",
                    f"--KernelService.kernels_dir={tmp_path / 'kernels'}"])
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    app.log.addHandler(handler)
    try:
        with pytest.raises(SystemExit) as e:
            app.start()
    finally:
        app.log.removeHandler(handler)
    assert e.value.code == 1
    said = "\n".join(seen)
    assert EDGE in said and str(kdc.other_keytab) in said and "has no key for" in said, said
    assert "Traceback" not in said + capsys.readouterr().err


class FakeRM(web.RequestHandler):
    """The ResourceManager's REST API as far as authentication goes: SPNEGO (checked with the HTTP
    keytab) or a hadoop.auth cookie it issued; 401 with a Negotiate challenge otherwise."""

    def initialize(self, state: dict) -> None:
        self.state = state

    def prepare(self) -> None:
        state = self.state
        args = {k: [v.decode() for v in vs] for k, vs in self.request.arguments.items()}
        cookie = self.request.headers.get("Cookie", "")
        auth = self.request.headers.get("Authorization", "")
        state["seen"].append({"args": args, "cookie": cookie, "auth": bool(auth)})
        if cookie and cookie in state["valid"]:
            return
        if auth:
            user = accept(state["kdc"], auth)
            state["exchanges"] += 1
            token = f'"u={user.split("@")[0]}&p={user}&t=kerberos&e=9999999999999&s={state["exchanges"]}"'
            state["valid"].add(f"hadoop.auth={token}")
            self.add_header("Set-Cookie", f"hadoop.auth={token}; Path=/; HttpOnly")
            return
        self.set_status(401)
        self.set_header("WWW-Authenticate", "Negotiate")
        self.finish()

    def get(self, path: str) -> None:
        self.finish({"apps": {"app": []}} if path == "apps" else {})

    def put(self, path: str) -> None:
        self.finish({"state": "KILLED"})


def test_the_rm_client_authenticates_by_spnego_then_by_cookie(kdc, tmp_path):
    state: dict = {"kdc": kdc, "seen": [], "valid": set(), "exchanges": 0}

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([(r"/ws/v1/cluster/(.*)", FakeRM, {"state": state})]))
        server.add_sockets([sock])
        k = login(kdc, tmp_path)
        await k.start()
        try:
            rm = ResourceManagerClient(urls=[f"http://127.0.0.1:{port}"], service_user="svc", kerberos=k, retries=0)
            assert await rm.apps() == []
            assert await rm.apps() == []
            assert await rm.kill("application_1_0001", as_user="alice") == "KILLED"
            assert state["exchanges"] == 1, state["seen"]
            state["valid"].clear()  # the cookie expires: one 401, then a fresh token
            assert await rm.apps() == []
            assert state["exchanges"] == 2
            assert await rm.apps() == []
            assert state["exchanges"] == 2
        finally:
            await k.stop()
            server.stop()

    asyncio.run(main())
    seen = state["seen"]
    assert all("user.name" not in s["args"] for s in seen), seen
    assert seen[0]["auth"] and not seen[0]["cookie"]
    assert seen[1]["cookie"] and not seen[1]["auth"]
    assert seen[2]["args"]["doAs"] == ["alice"] and seen[2]["cookie"]
    assert [s["auth"] for s in seen[3:]] == [False, True, False]  # cookie refused, new token, new cookie


def test_the_rm_client_without_kerberos_is_as_before():
    """Off: user.name, no Authorization, nothing remembered."""
    seen: list = []

    class Plain(web.RequestHandler):
        def get(self, path: str) -> None:
            seen.append((self.get_query_argument("user.name"), self.request.headers.get("Authorization")))
            self.add_header("Set-Cookie", 'hadoop.auth="x"')
            self.finish({"apps": {"app": []}})

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([(r"/ws/v1/cluster/(.*)", Plain)]))
        server.add_sockets([sock])
        try:
            rm = ResourceManagerClient(urls=[f"http://127.0.0.1:{port}"], service_user="svc", kerberos=Kerberos())
            await rm.apps()
            await rm.apps()
            assert rm._auth_cookies == {}
        finally:
            server.stop()

    asyncio.run(main())
    assert seen == [("svc", None), ("svc", None)]


class FakeNameNode(web.RequestHandler):
    def initialize(self, seen: list, kdc: Kdc) -> None:
        self.seen, self.kdc = seen, kdc

    def get(self, path: str) -> None:
        args = {k: [v.decode() for v in vs] for k, vs in self.request.arguments.items()}
        auth = self.request.headers.get("Authorization", "")
        self.seen.append({"path": path, "args": args, "who": accept(self.kdc, auth) if auth else None})
        self.finish({"FileStatus": {"type": "DIRECTORY", "owner": "alice", "length": 0}})


def test_webhdfs_sessions_send_spnego_and_doas_but_no_user_name(kdc, tmp_path):
    seen: list = []

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([(r"/webhdfs/v1/(.*)", FakeNameNode, {"seen": seen, "kdc": kdc})]))
        server.add_sockets([sock])
        k = login(kdc, tmp_path)
        await k.start()
        try:
            client = WebHDFSClient(url=f"http://127.0.0.1:{port}", service_user="svc", kerberos=k)
            assert (await client.status("/user/alice", user="alice"))["owner"] == "alice"
            await client.status("/shared")
        finally:
            await k.stop()
            server.stop()

    asyncio.run(main())
    assert [s["path"] for s in seen] == ["user/alice", "shared"]
    for s in seen:
        assert "user.name" not in s["args"] and s["who"] == EDGE, s
    assert seen[0]["args"]["doas"] == ["alice"] and "doas" not in seen[1]["args"]


async def health(port: int) -> tuple[int, dict]:
    resp = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/health", raise_error=False)
    return resp.code, json.loads(resp.body)


async def until(condition, seconds: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.1)


def test_a_stopped_kdc_turns_health_503_with_the_reason_and_it_recovers(kdc, tmp_path):
    """Frozen (it takes connections, answers nothing) and stopped (refused), /health says so within a
    check or two; Hadoop calls needing a new ticket fail as unavailable with that sentence; the KDC back
    (a restarted MiniKdc may hand out new keys), the next check clears it and the edge's tickets work again.
    This test restarts the module's KDC: it runs last."""

    async def main() -> None:
        k = login(kdc, tmp_path, renew_interval=0.2, kdc_timeout=1.0)
        await k.start()
        snapshot = SimpleNamespace(last_success=1.0, last_error=None)
        app = web.Application([(r"/health", HealthHandler)], jobs=SimpleNamespace(snapshot=snapshot), kerberos=k)
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        try:
            assert await health(port) == (200, {"status": "ok"})

            async def unavailable() -> bool:
                return (await health(port))[0] == 503

            async def ok() -> bool:
                return await health(port) == (200, {"status": "ok"})

            kdc.proc.send_signal(signal.SIGSTOP)  # frozen: MIT would wait about a minute
            try:
                await until(unavailable, 10, "503 for a frozen KDC")
                assert (await health(port))[1] == {
                    "status": "unavailable", "reason": f"the KDC at 127.0.0.1:{kdc.port} has not answered in 1 s"}
            finally:
                kdc.proc.send_signal(signal.SIGCONT)
            await until(ok, 60, "200 once the KDC answers again")

            kdc.stop()
            await until(unavailable, 10, "503 for a stopped KDC")
            code, body = await health(port)
            reason = body["reason"]
            assert body["status"] == "unavailable"
            assert reason.startswith(f"the KDC at 127.0.0.1:{kdc.port} is unreachable: Cannot contact any KDC"), body
            assert "Negotiate" not in reason and "Traceback" not in reason
            # a service the edge has no ticket for yet needs the KDC: unavailable, with the sentence
            rm = ResourceManagerClient(urls=[f"http://localhost:{port}"], kerberos=k, retries=0)
            with pytest.raises(RMUnavailable, match="is unreachable: Cannot contact any KDC"):
                await rm.apps()
            hdfs = WebHDFSClient(url=f"http://localhost:{port}", kerberos=k)
            with pytest.raises(WebHDFSUnavailable, match="the KDC at .* is unreachable"):
                await hdfs.status("/user/alice", user="alice")

            kdc.start()  # maybe new keys: the cache is replaced on the first good check after a failure
            await until(ok, 30, "200 once the KDC is back")
            assert k.last_error is None
            assert accept(kdc, await k.authorization(f"http://localhost:{port}")) == EDGE
        finally:
            await k.stop()
            server.stop()

    asyncio.run(main())
