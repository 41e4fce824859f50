"""Tests of the yardlab jupyter_server extension, against a real in-process Jupyter server."""
from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from tornado.httpclient import HTTPClientError

from yardlab.server_extension import YardlabExtension

pytest_plugins = ["pytest_jupyter.jupyter_server"]

EDGE_URL = "http://edge.example.org:8080"


async def test_status_reports_version_and_edge_url(jp_fetch) -> None:
    response = await jp_fetch("yardlab", "api", "status")

    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"version": version("yardlab"), "edge_url": EDGE_URL}


@pytest.mark.parametrize("authorization", ["", "token not-the-server-token"])
async def test_status_rejects_requests_without_a_valid_token(jp_fetch, authorization) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("yardlab", "api", "status", headers={"Authorization": authorization})

    assert caught.value.code in (401, 403)


def test_edge_url_defaults_to_environment(monkeypatch) -> None:
    monkeypatch.setenv(YardlabExtension.edge_url_env, EDGE_URL)

    assert YardlabExtension().edge_url == EDGE_URL


def test_edge_url_is_empty_without_environment(monkeypatch) -> None:
    monkeypatch.delenv(YardlabExtension.edge_url_env, raising=False)

    assert YardlabExtension().edge_url == ""


# --- the forwarder, against a small edge stand-in on a random port ---------------------------------
# The real edge runs on the local stack (tests/test_ui_sidebar.py goes through it end to end); here a
# stand-in records what arrives and holds an event stream open on demand, which the real one cannot.

import asyncio  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

import tornado.web  # noqa: E402
from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.netutil import bind_sockets  # noqa: E402

SERVER_TOKEN = "hub-token-of-this-server"


class EdgeStandIn:
    """What the stand-in edge saw, and the switch that lets its event stream go on."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.release = asyncio.Event()  # lets the event stream send its next event
        self.finish_stream = asyncio.Event()  # lets it end (after "done")
        self.stream_closed = asyncio.Event()


def edge_app(edge: EdgeStandIn) -> tornado.web.Application:
    class Environments(tornado.web.RequestHandler):
        def record(self) -> None:
            edge.requests.append({"method": self.request.method, "path": self.request.path,
                                  "query": self.request.query, "body": self.request.body,
                                  "authorization": self.request.headers.get("Authorization")})

        def get(self, rest: str) -> None:
            self.record()
            self.finish({"environments": []})

        def post(self, rest: str) -> None:
            self.record()
            body = json.loads(self.request.body)
            if not body.get("name"):
                self.set_status(400)
                self.finish({"message": "name is required", "reason": "Bad Request", "field": "name"})
                return
            self.set_status(202)
            self.finish({**body, "owner": "alice", "status": "queued"})

        def delete(self, rest: str) -> None:
            self.record()
            self.finish({"deleted": True})

    class Events(tornado.web.RequestHandler):
        async def get(self, owner: str, name: str) -> None:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.write('event: progress\ndata: {"status": "building", "progress": 10}\n\n')
            await self.flush()
            await edge.release.wait()  # the first event must reach the browser before this
            self.write('event: log\ndata: {"line": "installing"}\n\n')
            await self.flush()
            await edge.finish_stream.wait()
            self.write('event: done\ndata: {"status": "ready"}\n\n')
            self.finish()

        def on_connection_close(self) -> None:
            edge.stream_closed.set()

    class Apps(tornado.web.RequestHandler):
        def get(self) -> None:
            edge.requests.append({"method": "GET", "path": self.request.path,
                                  "if_none_match": self.request.headers.get("If-None-Match")})
            self.set_header("ETag", '"apps-v1"')
            if self.request.headers.get("If-None-Match") == '"apps-v1"':
                self.set_status(304)
                return
            self.finish({"apps": [], "next_cursor": None})

    return tornado.web.Application([
        (r"/api/v1/apps", Apps),
        (r"/api/v1/environments/([^/]+)/([^/]+)/events", Events),
        (r"/api/v1/environments(/.*)?", Environments),
    ])


@pytest.fixture
def edge_sockets():
    sockets = bind_sockets(0, "127.0.0.1")
    yield sockets
    for s in sockets:
        s.close()


@pytest.fixture
def edge(io_loop, edge_sockets):
    """The stand-in edge, serving on the test's loop at the port the Jupyter server was given."""
    state = EdgeStandIn()
    server = HTTPServer(edge_app(state))
    server.add_sockets(edge_sockets)
    yield state
    server.stop()


@pytest.fixture
def jp_server_config(request) -> dict:
    """The extension on; its edge is the stand-in when the test uses one, else an unreachable name."""
    edge_url = EDGE_URL
    if "edge" in request.fixturenames:
        port = request.getfixturevalue("edge_sockets")[0].getsockname()[1]
        edge_url = f"http://127.0.0.1:{port}"
    return {
        "ServerApp": {"jpserver_extensions": {"yardlab.server_extension": True}},
        "YardlabExtension": {"edge_url": edge_url, "edge_token": SERVER_TOKEN},
    }


async def test_environments_are_forwarded_with_the_server_token(jp_fetch, edge) -> None:
    response = await jp_fetch("yardlab", "api", "environments", params={"owner": "all"})

    assert response.code == 200
    assert json.loads(response.body) == {"environments": []}
    assert edge.requests == [{"method": "GET", "path": "/api/v1/environments", "query": "owner=all",
                              "body": b"", "authorization": f"token {SERVER_TOKEN}"}]


async def test_app_list_etags_pass_both_ways(jp_fetch, edge) -> None:
    first = await jp_fetch("yardlab", "api", "apps")
    assert first.code == 200
    assert first.headers["ETag"] == '"apps-v1"'

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("yardlab", "api", "apps", headers={"If-None-Match": '"apps-v1"'})
    assert caught.value.code == 304
    assert not caught.value.response.body
    assert [r["if_none_match"] for r in edge.requests] == [None, '"apps-v1"']


async def test_edge_validation_errors_pass_through_with_their_field(jp_fetch, edge) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("yardlab", "api", "environments", method="POST", body=json.dumps({"name": ""}))

    assert caught.value.code == 400
    assert json.loads(caught.value.response.body) == {"message": "name is required", "reason": "Bad Request",
                                                      "field": "name"}


async def test_environment_delete_is_forwarded(jp_fetch, edge) -> None:
    response = await jp_fetch("yardlab", "api", "environments", "alice", "tab", method="DELETE")

    assert json.loads(response.body) == {"deleted": True}
    assert edge.requests[-1]["method"] == "DELETE"
    assert edge.requests[-1]["path"] == "/api/v1/environments/alice/tab"


async def test_build_events_stream_through_unbuffered(http_server, jp_base_url, jp_http_port, jp_auth_header, edge) -> None:
    """The first event arrives while the edge still holds the stream open."""
    chunks: list[bytes] = []
    first = asyncio.Event()
    headers: dict[str, str] = {}

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        first.set()

    def on_header(line: str) -> None:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()

    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}yardlab/api/environments/alice/tab/events"
    fetch = asyncio.ensure_future(AsyncHTTPClient().fetch(HTTPRequest(
        url, headers=jp_auth_header, streaming_callback=on_chunk, header_callback=on_header,
        request_timeout=30)))
    await asyncio.wait_for(first.wait(), timeout=10)
    assert not fetch.done()
    assert b"event: progress" in b"".join(chunks)
    assert headers["content-type"].startswith("text/event-stream")

    edge.release.set()
    edge.finish_stream.set()
    response = await asyncio.wait_for(fetch, timeout=10)
    assert response.code == 200
    assert b"".join(chunks).endswith(b'event: done\ndata: {"status": "ready"}\n\n')


async def test_a_closed_event_stream_is_closed_at_the_edge_too(http_server, jp_base_url, jp_http_port,
                                                              jp_auth_header, edge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write((f"GET {jp_base_url}yardlab/api/environments/alice/tab/events HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{jp_http_port}\r\nAuthorization: {jp_auth_header['Authorization']}\r\n"
                  "\r\n").encode())
    received = b""
    while b"event: progress" not in received:
        received += await asyncio.wait_for(reader.read(4096), timeout=10)

    writer.close()  # the browser goes away
    await writer.wait_closed()
    edge.release.set()  # the next event finds nobody listening: the forwarder hangs up on the edge
    await asyncio.wait_for(edge.stream_closed.wait(), timeout=10)
    edge.finish_stream.set()


async def login_cookies(base: str, token: str) -> tuple[dict[str, str], str]:
    """Log in through the login form with the server token: the browser's way (cookies + XSRF)."""
    client = AsyncHTTPClient()
    page = await client.fetch(f"{base}login", follow_redirects=False, raise_error=False)
    cookies = {c.split("=", 1)[0]: c.split("=", 1)[1].split(";", 1)[0]
               for c in page.headers.get_list("Set-Cookie")}
    xsrf = cookies["_xsrf"]
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    login = await client.fetch(f"{base}login", method="POST", follow_redirects=False, raise_error=False,
                               headers={"Cookie": cookie_header},
                               body=urlencode({"_xsrf": xsrf, "password": token}))
    assert login.code == 302, login.body
    for c in login.headers.get_list("Set-Cookie"):
        k, v = c.split("=", 1)
        cookies[k] = v.split(";", 1)[0]
    return cookies, xsrf


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_mutating_calls_need_the_xsrf_token(http_server, jp_serverapp, jp_base_url, jp_http_port, edge,
                                                  method) -> None:
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    cookies, xsrf = await login_cookies(base, jp_serverapp.identity_provider.token)
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    url = f"{base}yardlab/api/environments" + ("" if method == "POST" else "/alice/tab")
    body = json.dumps({"name": "tab"}) if method == "POST" else None
    client = AsyncHTTPClient()

    refused = await client.fetch(url, method=method, body=body, raise_error=False,
                                 allow_nonstandard_methods=True, headers={"Cookie": cookie_header})
    assert refused.code == 403
    assert edge.requests == []

    allowed = await client.fetch(url, method=method, body=body, raise_error=False, allow_nonstandard_methods=True,
                                 headers={"Cookie": cookie_header, "X-XSRFToken": xsrf})
    assert allowed.code in (200, 202), allowed.body
    assert [r["method"] for r in edge.requests] == [method]


async def test_a_body_refused_before_it_was_read_says_the_connection_closes(http_server, jp_serverapp, jp_base_url,
                                                                           jp_http_port, edge) -> None:
    """The forwarding handler streams bodies, so a refusal (here a missing XSRF token) is sent before the
    body is read, and tornado then closes the connection. The answer must say so (`Connection: close`):
    the hub's proxy keeps connections alive, and reused this one for the next request, which failed
    with "socket hang up" and a 503 page (seen on the stack after a refused POST)."""
    import socket

    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    cookies, xsrf = await login_cookies(base, jp_serverapp.identity_provider.token)
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = json.dumps({"name": "tab"}).encode()

    def send(headers: str) -> bytes:
        with socket.create_connection(("127.0.0.1", jp_http_port), timeout=10) as s:
            s.sendall(f"POST {jp_base_url}yardlab/api/environments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Cookie: {cookie_header}\r\nContent-Type: application/json\r\n{headers}"
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += s.recv(65536)
            return answer.split(b"\r\n\r\n", 1)[0].lower()

    refused = await asyncio.get_running_loop().run_in_executor(None, send, "")
    assert refused.startswith(b"http/1.1 403")
    assert b"\r\nconnection: close" in refused, refused.decode()
    assert edge.requests == []
