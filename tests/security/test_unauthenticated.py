"""Every door of the edge, the hub service and the Lab server extension refuses a caller without
credentials, or with forged ones, except the few meant to be open.

The routes come from the code (``edge.handlers.routes``, ``hub_service.handlers.routes``, the
server extension's ``default_handlers``), and so do the HTTP methods each handler implements: a
handler added tomorrow is tried here without anyone editing this file.  Each route pattern becomes
a concrete path (its groups filled with plausible values) and each method is sent to the running
stack twice, once with no credentials and once with a forged token and cookie.  The answer must be
a refusal: 401 or 403 for an API, or a redirect to the hub's login for a browser page.  Nothing
else, and never a body with data.
"""
from __future__ import annotations

import re
import secrets
import time
from urllib.parse import urlsplit

import pytest
import requests
from tornado import web, websocket

from yardlab.edge.handlers import base as edge_base
from yardlab.edge.handlers import ops as edge_ops
from yardlab.edge.handlers import sparkui as edge_sparkui
from yardlab.edge.handlers.routes import routes as edge_routes
from yardlab.hub_service import handlers as hub_handlers
from yardlab.server_extension.handlers import EDGE_PATHS, default_handlers

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: handlers open on purpose, with why
OPEN = {
    edge_ops.HealthHandler: "the edge's liveness check: {'status': 'ok'} and nothing else",
    edge_base.NotFoundHandler: "a JSON 404 for unknown paths, the same for everyone",
    hub_handlers.HealthHandler: "the hub service's liveness check",
    hub_handlers.LoginHandler: "starts the hub's OAuth login: a redirect to the hub",
    hub_handlers.NotFoundHandler: "the hub service's JSON 404 for unknown API paths",
    hub_handlers.PageNotFoundHandler: "the hub service's 404 page for unknown paths",
}
#: handlers that finish an OAuth login: open by nature, they must refuse a callback without a valid state
CALLBACKS = (edge_sparkui.OAuthCallbackHandler, hub_handlers.CallbackHandler)
#: browser pages: an anonymous visitor is sent to the hub's login
PAGES = (edge_sparkui.SparkUIHandler, hub_handlers.PageHandler, hub_handlers.RootHandler)
#: plausible values for a route's groups (the refusal must come before any of them is looked at)
GROUP_VALUES = ["alice", "spark-pandas", "application_1700000000000_0001"]
#: what a wildcard step gets: a path that passes the Spark UI proxy's syntax check (application id, UI root)
WILDCARD = "application_1700000000000_0001/jobs/"


def concrete(pattern: str) -> str:
    """A path the route pattern matches: groups filled in, optional slashes dropped, wildcards given a step."""
    path = pattern.rstrip("$")
    path = re.sub(r"\(\?:([A-Za-z_-]+)(\|[^)]*)?\)", r"\1", path)  # (?:status|apps|...) -> status
    path = re.sub(r"\(([A-Za-z_-]+)\|[^)]*\)", r"\1", path)       # (interrupt|restart) -> interrupt
    path = path.replace("(?:/.*)?", "")
    path = re.sub(r"\(([A-Za-z_-]+)\)", r"\1", path)                # ((?:me|...)) -> (me) -> me
    n = iter(range(100))
    path = re.sub(r"\(\[\^/\]\+\)", lambda _: GROUP_VALUES[min(next(n), len(GROUP_VALUES) - 1)], path)
    path = re.sub(r"\(\.[*+]\)|\?\(\.\*\)", WILDCARD, path)
    path = path.replace("/?", "").replace(".*", WILDCARD)
    assert not re.search(r"[()\[\]*+?|\\]", path), f"cannot make a path of the route {pattern!r}: {path!r}"
    return path


def implemented(handler: type) -> list[str]:
    """The HTTP methods a handler implements itself (RequestHandler's own answer 405)."""
    found = [m for m in METHODS if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]
    if "GET" in found and "HEAD" not in found:
        found.append("HEAD")  # tornado answers HEAD with 405 then; asked anyway, it must not open a door
    return found


def doors(routes: list[tuple], origin: str) -> list[tuple[str, type, str]]:
    out = []
    for route in routes:
        pattern, handler = route[0], route[1]
        for method in implemented(handler):
            out.append((method, handler, origin + concrete(pattern)))
    return out


def edge_doors(stack) -> list[tuple[str, type, str]]:
    base = urlsplit(stack["edge_url"]).path.rstrip("/") + "/"
    origin = stack["edge_url"][: -len(base.rstrip("/"))] if base != "/" else stack["edge_url"].rstrip("/")
    return doors(edge_routes(base), origin)


def hub_service_doors(stack) -> list[tuple[str, type, str]]:
    url = stack["hub_service_url"].rstrip("/")
    base = urlsplit(url).path + "/"
    return doors(hub_handlers.routes(base), url[: -len(urlsplit(url).path)])


def lab_doors(stack, user: str) -> list[tuple[str, type, str]]:
    prefix = f"{stack['hub_url'].rstrip('/')}/user/{user}"
    return doors([(prefix + p, h) for p, h in default_handlers], "")


def refusal(stack, method: str, handler: type, url: str, forged: bool) -> tuple[bool, str]:
    """Whether the stack refused this anonymous (or forged) request, and what it answered."""
    headers = {}
    cookies = {}
    if forged:
        headers["Authorization"] = f"token {secrets.token_hex(16)}"
        cookies = {name: secrets.token_urlsafe(24) for name in
                   ("jupyterhub-session-id", "jupyterhub-hub-login", "yardlab-edge", "yardlab",
                    "jupyterhub-user-alice", "jupyterhub-services")}
    if issubclass(handler, websocket.WebSocketHandler):
        headers.update({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    body = b'{"name": "x", "kernel": {"name": "yardlab_pyspark"}}' if method in ("POST", "PUT", "PATCH") else None
    r = requests.request(method, url, headers=headers, cookies=cookies, data=body, allow_redirects=False,
                         timeout=30)
    said = f"{method} {url} ({handler.__name__}, {'forged' if forged else 'anonymous'}) -> {r.status_code} " \
           f"{r.headers.get('Location', '')} {r.text[:200]!r}"
    if r.status_code in (401, 403):
        return True, said
    if r.status_code in (301, 302, 303, 307) and issubclass(handler, PAGES):
        where = r.headers.get("Location", "")
        return ("/hub/api/oauth2/authorize" in where or "/hub/login" in where or "/login" in where), said
    if issubclass(handler, CALLBACKS):
        return 400 <= r.status_code < 500, said
    if r.status_code == 405:
        return True, said  # the method is not served at all
    return False, said


@pytest.fixture(scope="module")
def lab_user(stack, hub):
    """A running Lab server to knock on (the hub sends anonymous visitors of a stopped one to the hub)."""
    user = "guest"
    if not (hub("GET", f"/users/{user}").json().get("servers") or {}).get(""):
        hub("POST", f"/users/{user}/server")
    deadline = time.monotonic() + 180
    while not ((hub("GET", f"/users/{user}").json().get("servers") or {}).get("") or {}).get("ready"):
        assert time.monotonic() < deadline, f"{user}'s Lab server did not start"
        time.sleep(1)
    return user


def test_the_routes_are_read_from_the_code(stack, lab_user):
    """The door list is not empty and covers the three services and every API family."""
    edge = edge_doors(stack)
    svc = hub_service_doors(stack)
    lab = lab_doors(stack, lab_user)
    paths = " ".join(u for _, _, u in edge + svc + lab)
    for part in ("/gateway/api/kernels", "/api/v1/apps", "/api/v1/environments", "/api/v1/files",
                 "/api/v1/kernels/warm", "/proxy/", "/services/yardlab/api/v1/usage", "/yardlab/api/status",
                 f"/yardlab/api/{EDGE_PATHS[0]}"):
        assert part in paths, part
    assert len(edge) >= 30 and len(svc) >= 15 and len(lab) >= 6, (len(edge), len(svc), len(lab))


@pytest.mark.parametrize("forged", [False, True], ids=["anonymous", "forged-token"])
def test_every_door_refuses_a_stranger(stack, lab_user, forged):
    open_doors = []
    for method, handler, url in edge_doors(stack) + hub_service_doors(stack) + lab_doors(stack, lab_user):
        if handler in OPEN:
            continue
        ok, said = refusal(stack, method, handler, url, forged)
        if not ok:
            open_doors.append(said)
    assert not open_doors, "answered without credentials:\n" + "\n".join(open_doors)


def test_the_open_doors_give_nothing_away(stack):
    """Health answers say only that the service is up; the 404 names no route and no user."""
    edge = stack["edge_url"].rstrip("/")
    assert requests.get(f"{edge}/health", timeout=10).json() == {"status": "ok"}
    r = requests.get(f"{edge}/no/such/thing", timeout=10)
    assert r.status_code == 404 and set(r.json()) <= {"message", "reason"}
    h = requests.get(f"{stack['hub_service_url'].rstrip('/')}/health", timeout=10)
    assert h.status_code == 200
    for secret in (*stack["user_tokens"].values(), stack.get("edge_service_token", "-")):
        assert secret not in h.text and secret not in r.text
