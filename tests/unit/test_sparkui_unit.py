"""The Spark UI proxy's pure parts (path checks, link and redirect rewriting) and the progress feed's
filtering and caching, against a fake of YARN's web proxy."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from yardlab.edge.errors import PublicError
from yardlab.edge.progress import SparkProgress
from yardlab.edge.sparkui import SparkUIProxy, check_target

APP = "application_1700000000000_0007"


@pytest.mark.parametrize("rest", ["", "/", "/jobs/", "/stages/stage/", "/static/webui.css",
                                  f"/api/v1/applications/{APP}/jobs", "/SQL/execution/", "/environment/"])
def test_plain_paths_inside_the_ui_pass(rest):
    t = check_target(APP, rest, "id=1&attempt=0")
    assert t.path_and_query == (rest or "/") + "?id=1&attempt=0"


@pytest.mark.parametrize("rest, status", [
    ("/../x", 400), ("/./x", 400), ("/jobs/..", 400), ("/%2e%2e/x", 400), ("/%2E%2e/x", 400),
    ("%2F..", 400), ("/%2f%2fevil/", 400), ("//evil.example.com/", 400), ("/a\\b", 400), ("/%5c", 400),
    ("/%252e%252e/", 400), ("/%00", 400), ("x", 400), ("/a b", 400), ("/a\nb", 400), ("/" + "a" * 2001, 400),
    ("/jobs/job/kill/", 403), ("/stages/stage/KILL", 403),
    # Jetty drops ;params and decodes escapes: kill;x and %6bill are kill, ..; is ..
    ("/jobs/job/kill;x/", 400), ("/jobs/job/%6bill/", 400), ("/..;/application_2_2/", 400), ("/jobs;/", 400),
    ("/a%20b/", 400),
    # only what a Spark UI serves
    ("/cluster/apps", 404), ("/ws/v1/cluster/apps", 404), ("/conf", 404), ("/logs/", 404),
])
def test_anything_that_could_leave_the_ui_or_change_the_application_is_refused(rest, status):
    with pytest.raises(PublicError) as e:
        check_target(APP, rest, "")
    assert e.value.status == status


@pytest.mark.parametrize("query", ["a=1\r\nX-Injected: 1", "a=1#frag", "a=\x00", "x" * 4001,
                                   "user.name=alice", "id=1&doAs=alice", "DoAs=x", "%75ser.name=x", "delegation=t",
                                   "proxyapproved=true"])
def test_queries_with_control_characters_are_refused(query):
    with pytest.raises(PublicError):
        check_target(APP, "/jobs/", query)


def proxy() -> SparkUIProxy:
    return SparkUIProxy("/services/yardlab-edge/")


def test_links_to_the_application_are_put_under_the_edge_and_others_are_left_alone():
    body = (f'<a href="/proxy/{APP}/jobs/">j</a><script>setUIRoot("/proxy/{APP}")</script>'
            f'<a href="http://rm.example:8088/proxy/{APP}/stages/">s</a>'
            f'<a href="/proxy/{APP}0/">another app</a><a href="/proxy/application_1_1/">other</a>'
            f'<a href="https://example.org/">outside</a>').encode()
    out = proxy().rewrite_body(APP, body).decode()
    base = f"/services/yardlab-edge/proxy/{APP}"
    assert f'href="{base}/jobs/"' in out and f'setUIRoot("{base}")' in out and f'href="{base}/stages/"' in out
    assert "rm.example" not in out
    assert f'href="/proxy/{APP}0/"' in out and 'href="/proxy/application_1_1/"' in out
    assert 'href="https://example.org/"' in out


def test_bodies_that_are_not_utf8_pass_through_unchanged_around_the_links():
    body = b"\xff\xfe" + f"/proxy/{APP}/x".encode() + b"\x80"
    out = proxy().rewrite_body(APP, body)
    assert out.startswith(b"\xff\xfe") and out.endswith(b"\x80")
    assert f"/services/yardlab-edge/proxy/{APP}/x".encode() in out


@pytest.mark.parametrize("location, expected", [
    (f"http://127.0.0.1:8088/proxy/{APP}/jobs/", f"/services/yardlab-edge/proxy/{APP}/jobs/"),
    (f"/proxy/{APP}", f"/services/yardlab-edge/proxy/{APP}/"),
    (f"/proxy/{APP}/stages/?id=1", f"/services/yardlab-edge/proxy/{APP}/stages/?id=1"),
    (f"http://127.0.0.1:8088/cluster/app/{APP}", None),
    ("https://evil.example.com/", None),
    (f"/proxy/{APP}0/", None),
    ("/proxy/application_1_1/", None),
    (f"/proxy/{APP}/../../hub/spawn", None),
    (f"/proxy/{APP}/jobs/job/kill/?id=1", None),
    ("http://[", None),
])
def test_redirects_stay_in_the_applications_ui_or_end_it(location, expected):
    assert proxy().rewrite_location(APP, location) == expected


class FakeYarnProxy:
    """YARN's web proxy in front of one driver's REST API, counting calls."""

    def __init__(self, jobs: list[dict], stages: dict[int, list[dict]]) -> None:
        self.jobs, self.stages, self.calls = jobs, stages, []

    async def web_proxy(self, app_id, path_and_query, accept="*/*", timeout=None):  # noqa: ANN001
        self.calls.append(path_and_query)
        await asyncio.sleep(0.01)
        base = f"/api/v1/applications/{app_id}"
        if path_and_query == base + "/jobs":
            body = self.jobs
        else:
            sid = int(path_and_query[len(base + "/stages/"):].split("?")[0])
            body = self.stages.get(sid)
            if body is None:
                return SimpleNamespace(code=404, body=b"no such stage", headers={})
        return SimpleNamespace(code=200, body=json.dumps(body).encode(), headers={})


def job(jid: int, tags: list[str], stages: list[int], status: str = "RUNNING") -> dict:
    return {"jobId": jid, "name": f"job {jid}", "status": status, "jobTags": tags, "stageIds": stages,
            "numTasks": 4, "numCompletedTasks": 1}


def stage(sid: int, status: str, attempt: int = 0) -> dict:
    return {"stageId": sid, "attemptId": attempt, "status": status, "name": f"s{sid}", "numTasks": 4,
            "numCompleteTasks": 4 if status == "COMPLETE" else 1, "numActiveTasks": 0}


def feed(fake: FakeYarnProxy) -> SparkProgress:
    ui = SparkUIProxy("/services/yardlab-edge/")
    return SparkProgress(fake, ui.url_for, share_for=0.2)


RUNNING = {"id": APP, "state": "RUNNING"}


def test_only_the_cells_jobs_are_reported_with_their_stages():
    fake = FakeYarnProxy([job(1, ["yardlab-cell-aaa"], [1, 2]), job(2, ["yardlab-cell-bbb"], [3]),
                          job(3, ["spark-session-x", "yardlab-cell-aaa"], [4])],
                         {1: [stage(1, "COMPLETE")], 2: [stage(2, "ACTIVE")], 3: [stage(3, "ACTIVE")],
                          4: [stage(4, "FAILED"), stage(4, "ACTIVE", attempt=1)]})
    out = asyncio.run(feed(fake).for_cell(RUNNING, "aaa"))
    assert [j["id"] for j in out["jobs"]] == [1, 3]
    assert [s["id"] for s in out["jobs"][0]["stages"]] == [1, 2]
    retry = out["jobs"][1]["stages"][0]
    assert (retry["attempt"], retry["status"]) == (1, "ACTIVE")  # the newest attempt
    assert retry["url"] == f"/services/yardlab-edge/proxy/{APP}/stages/stage/?id=4&attempt=1"
    assert out["ui"] == f"/services/yardlab-edge/proxy/{APP}/"
    assert not any("/stages/3" in c for c in fake.calls)  # another cell's stages are not read


def test_finished_stages_are_read_once_and_answers_are_shared_briefly():
    fake = FakeYarnProxy([job(1, ["yardlab-cell-aaa"], [1, 2])], {1: [stage(1, "COMPLETE")], 2: [stage(2, "ACTIVE")]})
    progress = feed(fake)

    async def scenario():
        # concurrent polls of one cell make one read
        await asyncio.gather(*(progress.for_cell(RUNNING, "aaa") for _ in range(5)))
        first = len(fake.calls)
        await asyncio.sleep(0.25)
        await progress.for_cell(RUNNING, "aaa")
        return first, fake.calls[first:]

    first, later = asyncio.run(scenario())
    assert first == 3  # jobs, stage 1, stage 2
    assert not any("/stages/1?" in c for c in later) and any("/stages/2?" in c for c in later)


@pytest.mark.parametrize("cell", ["", "../x", "a b", "a" * 101, "ü"])
def test_cell_ids_are_checked(cell):
    with pytest.raises(PublicError) as e:
        asyncio.run(feed(FakeYarnProxy([], {})).for_cell(RUNNING, cell))
    assert e.value.status == 400


def test_an_application_that_is_not_running_has_no_jobs_and_no_ui_link():
    fake = FakeYarnProxy([job(1, ["yardlab-cell-aaa"], [1])], {})
    out = asyncio.run(feed(fake).for_cell({"id": APP, "state": "FINISHED"}, "aaa"))
    assert out == {"app": APP, "state": "FINISHED", "ui": None, "jobs": []} and fake.calls == []


def test_a_driver_that_has_gone_is_a_410():
    class Gone(FakeYarnProxy):
        async def web_proxy(self, app_id, path_and_query, accept="*/*", timeout=None):  # noqa: ANN001
            return SimpleNamespace(code=302, body=b"", headers={"Location": f"/cluster/app/{app_id}"})

    with pytest.raises(PublicError) as e:
        asyncio.run(feed(Gone([], {})).for_cell(RUNNING, "aaa"))
    assert e.value.status == 410


def test_a_standby_rm_sends_the_proxy_to_the_active_one_and_a_slow_page_is_a_504_without_failover():
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port
    from tornado.web import Application, RequestHandler

    from yardlab.edge.clients.resourcemanager import ProxyPageError, ResourceManagerClient

    async def scenario():
        hits: list[str] = []
        servers, urls = [], []
        for role in ("standby", "active", "slow"):
            sock, port = bind_unused_port()
            urls.append(f"http://127.0.0.1:{port}")

            class Handler(RequestHandler):
                role_name = role

                async def get(self) -> None:
                    hits.append(self.role_name)
                    assert self.request.headers.get("Cookie", "").startswith(f"checked_{APP}=true")
                    if self.role_name == "standby":
                        self.redirect(urls[1] + self.request.uri, status=307)
                    elif self.role_name == "slow":
                        await asyncio.sleep(3)
                    else:
                        self.finish("the page")

            server = HTTPServer(Application([(r"/.*", Handler)]))
            server.add_sockets([sock])
            servers.append(server)
        rm = ResourceManagerClient(urls=urls[:2], service_user="edge")
        resp = await rm.web_proxy(APP, "/jobs/")
        assert (resp.code, resp.body, rm._active) == (200, b"the page", 1)
        assert hits == ["standby", "active"]
        hits.clear()
        slow = ResourceManagerClient(urls=[urls[2], urls[1]], service_user="edge")
        with pytest.raises(ProxyPageError) as e:
            await slow.web_proxy(APP, "/jobs/", timeout=0.5)
        assert e.value.status == 504 and hits == ["slow"]  # the driver is slow: no other RM is tried
        for server in servers:
            server.stop()

    asyncio.run(scenario())


def test_every_kernel_websocket_gets_a_session_id_of_its_own_for_eg():
    from urllib.parse import parse_qs

    from yardlab.edge.handlers.gateway import own_session

    a = parse_qs(own_session("session_id=abc-123"))
    b = parse_qs(own_session("session_id=abc-123"))
    assert a["session_id"][0].startswith("abc-123-") and a["session_id"] != b["session_id"]
    assert set(parse_qs(own_session("x=1&session_id=s"))) == {"x", "session_id"}
    assert parse_qs(own_session(""))["session_id"][0]  # a client that sent none gets one too
    assert len(parse_qs(own_session("session_id=" + "s" * 5000))["session_id"][0]) <= 113
