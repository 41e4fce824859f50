"""Unit tests of the hub service's pure parts: redirect targets, usage deltas and windows, the sample store,
the edge's view of the service's token, and the byte-for-byte relay of the edge client it talks through."""
from __future__ import annotations

import asyncio

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from yardlab.edge.auth import TokenIdentifier
from yardlab.edge.client import AsyncEdgeClient, EdgeAPIError
from yardlab.edge.errors import PublicError
from yardlab.edge.handlers import routes as handlers
from yardlab.edge.handlers.routes import gateway_routes
from yardlab.hub_service.app import YardlabHubOAuth
from yardlab.hub_service.security import CONTENT_SECURITY_POLICY, safe_next
from yardlab.hub_service.store import UsageStore
from yardlab.hub_service.usage import parse_since, usage_deltas

PREFIX = "/services/yardlab/"


@pytest.mark.parametrize("target", [
    "//evil.example", "///evil.example", "\\\\evil.example", "/\\evil.example", "\\/evil.example",
    "https://evil.example/services/yardlab/", "http:/services/yardlab/", "javascript:alert(1)",
    "/\t/evil.example", "/services/yardlab/\n//evil", " /services/yardlab/", "evil.example",
    "/hub/admin", "/services/yardlab-edge/api/v1/apps", "/services/yardlab/../../hub/admin",
    "/services/yardlab/%2e%2e/%2e%2e/hub", "/services/yardlab//evil.example", "", None,
])
def test_unsafe_next_targets_are_refused(target):
    assert safe_next(target, PREFIX) is None


@pytest.mark.parametrize("target", ["/services/yardlab/", "/services/yardlab", "/services/yardlab/jobs",
                                    "/services/yardlab/jobs?state=RUNNING&user=bob"])
def test_paths_of_the_service_are_kept(target):
    assert safe_next(target, PREFIX) == target


@pytest.mark.parametrize("evil", ["//evil.example", "///evil.example", "\\\\evil.example"])
def test_oauth_callback_redirect_never_leaves_the_service(evil):
    auth = YardlabHubOAuth(api_token="x", api_url="http://127.0.0.1:1/hub/api", base_url=PREFIX,
                           oauth_client_id="service-yardlab", oauth_redirect_uri="http://h/services/yardlab/oauth_callback")
    state = auth.generate_state(next_url=evil)
    assert auth.get_next_url(state) == PREFIX
    good = auth.generate_state(next_url="/services/yardlab/history")
    assert auth.get_next_url(good) == "/services/yardlab/history"


def test_csp_allows_no_inline_script_or_style():
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_parse_since():
    assert parse_since("90m") == 5400 and parse_since("24h") == 86400 and parse_since("2w") == 14 * 86400
    for bad in ("", "7", "d7", "-1d", "0h", "400d", "7 days", "1e3s"):
        with pytest.raises(ValueError):
            parse_since(bad)


def app(app_id, user, ms, vs, state="RUNNING", mb=0, vc=0):
    return {"id": app_id, "user": user, "memorySeconds": ms, "vcoreSeconds": vs, "state": state,
            "allocatedMB": mb, "allocatedVCores": vc}


def test_usage_deltas_count_new_apps_in_full_then_only_growth():
    first = usage_deltas({}, [app("a1", "alice", 1000, 10, mb=1024, vc=1), app("b1", "bob", 500, 5, "ACCEPTED"),
                              app("a2", "alice", 300, 3, "FINISHED")])
    assert first.users["alice"].memory_seconds == 1300 and first.users["alice"].vcore_seconds == 13
    assert first.users["alice"].running == 1 and first.users["alice"].allocated_mb == 1024
    assert first.users["bob"].pending == 1 and first.users["bob"].memory_seconds == 500
    second = usage_deltas(first.counters, [app("a1", "alice", 1600, 16), app("b1", "bob", 500, 5),
                                           app("a2", "alice", 300, 3, "FINISHED")])
    assert second.users["alice"].memory_seconds == 600 and second.users["alice"].vcore_seconds == 6
    assert second.users["bob"].memory_seconds == 0
    # a counter that went backwards (the RM forgot it) counts from zero, never negative
    third = usage_deltas(second.counters, [app("a1", "alice", 200, 2)])
    assert third.users["alice"].memory_seconds == 200


def test_store_sums_usage_per_window_and_prunes(tmp_path):
    store = UsageStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    cluster = {"memory": {"usedMB": 2048, "totalMB": 8192}, "vcores": {"used": 2, "total": 8},
               "appsByState": {"RUNNING": 2, "ACCEPTED": 1}, "nodes": {"active": 1, "unhealthy": 0}}
    day = 86400.0
    now = 100 * day
    counters: dict = {}
    # alice: 1000 MB-s ten days ago, 500 two days ago, 100 an hour ago; bob: 40 days ago only
    for ts, apps in [(now - 40 * day, [app("b", "bob", 7000, 70)]),
                     (now - 10 * day, [app("a", "alice", 1000, 10)]),
                     (now - 2 * day, [app("a", "alice", 1500, 15)]),
                     (now - 3600, [app("a", "alice", 1600, 16, mb=512, vc=1)])]:
        delta = usage_deltas(counters, apps)
        store.record(ts, cluster, delta)
        counters.update(delta.counters)
    windows = {"24h": day, "7d": 7 * day, "30d": 30 * day}
    usage = store.usage(windows, now)
    alice = usage["alice"]["windows"]
    assert alice["24h"]["memorySeconds"] == 100 and alice["7d"]["memorySeconds"] == 600
    assert alice["30d"]["memorySeconds"] == 1600 and alice["30d"]["vcoreSeconds"] == 16
    assert usage["alice"]["current"] == {"running": 1, "pending": 0, "allocatedMB": 512, "allocatedVCores": 1}
    assert "bob" not in usage  # nothing within 30 days
    assert store.usage(windows, now, user="bob")["bob"]["windows"]["30d"]["memorySeconds"] == 0
    assert len(store.history(now - 3 * day)) == 2
    assert store.history(0)[0]["memoryUsedMB"] == 2048 and store.history(0)[0]["appsPending"] == 1
    # windows that start mid-hour take the whole hours from the hourly sums and the rest from raw samples
    assert store.usage({"90m": 5400.0}, now + 1800)["alice"]["windows"]["90m"]["memorySeconds"] == 100
    store.prune(before=now - 30 * day, counters_before=now - 3 * day, samples_before=now - 2 * day)
    assert store.sample_count() == 3 and set(store.counters()) == {"a"}
    # raw samples older than two days are gone; the hourly sums still answer the long windows
    after = store.usage(windows, now)["alice"]["windows"]
    assert after["7d"]["memorySeconds"] == 600 and after["30d"]["memorySeconds"] == 1600


def test_history_is_averaged_into_equal_buckets(tmp_path):
    store = UsageStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    delta = usage_deltas({}, [])
    for i in range(50):
        store.record(float(i), {"memory": {"usedMB": i, "totalMB": 100}}, delta)
    assert [p["memoryUsedMB"] for p in store.history(40)] == [40, 41, 42, 43, 44, 45, 46, 47, 48, 49]
    points = store.history(0, max_points=10)
    # ten buckets of five samples: each stamped with its last sample, values averaged
    assert [p["ts"] for p in points] == [4.0 + 5 * k for k in range(10)]
    assert [p["memoryUsedMB"] for p in points] == [2.0 + 5 * k for k in range(10)]
    assert all(p["memoryTotalMB"] == 100 for p in points)


# --- the edge's side: an admin-scoped hub service (the sampler) may read, nothing else --------------

def _identifier(model):
    ident = TokenIdentifier(hub_api_url="http://127.0.0.1:1/hub/api", hub_api_token="x")

    async def user_for_token(token, use_cache=True, sync=False):  # noqa: ARG001
        return model

    ident.hub_auth.user_for_token = user_for_token
    return lambda: asyncio.run(ident.identify("token tok"))


def test_edge_accepts_a_hub_service_only_with_the_admin_scope():
    access = "access:services!service=yardlab-edge"
    who = _identifier({"kind": "service", "name": "yardlab", "scopes": [access, "custom:yardlab:admin"]})()
    assert who.kind == "service" and who.admin and who.name == "yardlab"
    with pytest.raises(PublicError) as e:
        _identifier({"kind": "service", "name": "other", "scopes": [access]})()
    assert e.value.status == 403


def test_edge_lets_services_read_only_cluster_and_apps():
    readable = {cls.__name__ for _, cls, *_ in handlers.routes("/x/") if getattr(cls, "services_may_read", False)}
    assert readable == {"MeHandler", "ClusterHandler", "AppsHandler", "AppHandler"}
    assert not any(getattr(r[1], "services_may_read", False) for r in gateway_routes("/x/"))


# --- AsyncEdgeClient.relay: what the hub service passes on is the edge's answer, byte for byte --------

# spacing and key order json.dumps would not keep: proves the body is not parsed and encoded again
EDGE_BODY = b'{ "apps" :[ {"id":"application_1_0001", "name":"x"} ],"next_cursor":null }'
ETAG = '"sha256-abc"'


class StandInEdge(web.RequestHandler):
    """Answers like the edge's /apps: an ETag, a 304 for it, the caller's token and query recorded."""

    seen: list[dict] = []

    def check_etag_header(self) -> bool:
        return False

    def get(self) -> None:
        StandInEdge.seen.append({"authorization": self.request.headers.get("Authorization"),
                                 "query": self.request.query,
                                 "if_none_match": self.request.headers.get("If-None-Match")})
        self.set_header("ETag", ETAG)
        self.set_header("X-Edge-Internal", "not relayed")
        if self.request.headers.get("If-None-Match") == ETAG:
            self.set_status(304)
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(EDGE_BODY)

    def delete(self) -> None:
        self.set_status(502)
        self.set_header("Content-Type", "text/html")
        self.write(b"<html>bad gateway</html>")


async def _with_stand_in(go):
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([(r"/api/v1/apps.*", StandInEdge)]))
    server.add_sockets([sock])
    try:
        return await go(AsyncEdgeClient(f"http://127.0.0.1:{port}", "service-token", timeout=10))
    finally:
        server.stop()


def test_relay_passes_status_etag_and_body_bytes_unchanged():
    StandInEdge.seen = []

    async def go(edge):
        fresh = await edge.relay("GET", "/apps", token="alice-token", user="*", cursor=None, limit=5)
        again = await edge.relay("GET", "/apps", token="alice-token", if_none_match=ETAG)
        broken = await edge.relay("DELETE", "/apps/x", token="alice-token")
        return fresh, again, broken

    fresh, again, broken = asyncio.run(_with_stand_in(go))
    assert fresh.status == 200 and fresh.body == EDGE_BODY
    assert fresh.headers == {"Content-Type": "application/json; charset=UTF-8", "ETag": ETAG}
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == ETAG
    assert broken.status == 502 and broken.headers["Content-Type"] == "text/html"
    first, second = StandInEdge.seen
    assert first == {"authorization": "token alice-token", "query": "user=%2A&limit=5", "if_none_match": None}
    assert second["if_none_match"] == ETAG


def test_relay_never_lends_the_services_own_token_to_a_caller_without_one():
    StandInEdge.seen = []
    asyncio.run(_with_stand_in(lambda edge: edge.relay("GET", "/apps", token="")))
    # no token at all (the edge refuses it), never the service's own
    assert StandInEdge.seen[0]["authorization"].strip() == "token"


def test_relay_to_an_unreachable_edge_is_a_503_with_a_sentence():
    sock, port = bind_unused_port()
    sock.close()  # nothing listens there any more

    async def go():
        edge = AsyncEdgeClient(f"http://127.0.0.1:{port}", "service-token", timeout=5)
        return await edge.relay("GET", "/apps", token="alice-token")

    with pytest.raises(EdgeAPIError) as e:
        asyncio.run(go())
    assert e.value.status == 503 and "unreachable" in e.value.message
