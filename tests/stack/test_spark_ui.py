"""The Spark UI through the edge and the live progress of a cell's Spark jobs (real stack: a PySpark
kernel on YARN through the edge, YARN's web proxy, the driver's Spark UI)."""
from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from jupyter_ws import KernelConnection

#: three stages (two shuffles), a few seconds on the local stack
MULTI_STAGE = ("import time\n"
               "rdd = sc.parallelize(range(16), 8).map(lambda x: (x % 4, time.sleep(0.4) or x))\n"
               "rdd.reduceByKey(lambda a, b: a + b).map(lambda kv: (kv[0] % 2, kv[1]))"
               ".reduceByKey(lambda a, b: a + b).collect()")


def auth(stack, user: str) -> dict:
    return {"Authorization": f"token {stack['user_tokens'][user]}"}


@pytest.fixture(scope="module")
def alice_spark(stack):
    """A PySpark kernel of alice's through the edge, which has run one multi-stage job: (kernel, app id)."""
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], "yardlab_pyspark",
                                username="alice")
    reply = kc.execute("print(sc.applicationId)\n" + MULTI_STAGE)
    assert reply.status == "ok", reply
    app_id = reply.stdout.strip().splitlines()[0]
    yield kc, app_id
    kc.shutdown()
    requests.delete(f"{stack['edge_url']}/gateway/api/kernels/{kc.kernel_id}", headers=auth(stack, "alice"),
                    timeout=120)


def ui(stack, app_id: str, rest: str = "/") -> str:
    return f"{stack['edge_public_url']}/proxy/{app_id}{rest}"


def test_the_owner_gets_her_spark_ui_through_the_hub_with_links_kept_under_the_prefix(stack, alice_spark):
    _, app_id = alice_spark
    r = requests.get(ui(stack, app_id, "/jobs/"), headers=auth(stack, "alice"), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert "Spark Jobs" in r.text
    prefix = urlsplit(ui(stack, app_id, "/")).path
    # every reference to the application's UI points under the edge's prefix, none at YARN's proxy
    assert f'"/proxy/{app_id}' not in r.text and "127.0.0.1:8088" not in r.text
    assert f'href="{prefix}jobs/job/?id=' in r.text or f"href='{prefix}jobs/job/?id=" in r.text
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors 'self'")
    assert "Set-Cookie" not in r.headers  # YARN's and the driver's cookies stay behind the edge
    # a stage page and the REST API the UI's scripts call
    stage = requests.get(ui(stack, app_id, "/stages/stage/?id=1&attempt=0"), headers=auth(stack, "alice"),
                         timeout=60)
    assert stage.status_code == 200 and "Details for Stage 1" in stage.text
    api = requests.get(ui(stack, app_id, f"/api/v1/applications/{app_id}/jobs"), headers=auth(stack, "alice"),
                       timeout=60)
    assert api.status_code == 200 and api.json()[0]["status"] == "SUCCEEDED"
    # a redirect of the UI (no trailing slash) stays on the edge
    r = requests.get(ui(stack, app_id, "/jobs"), headers=auth(stack, "alice"), timeout=60, allow_redirects=False)
    if r.status_code in (301, 302, 307):
        assert urlsplit(r.headers["Location"]).path.startswith(prefix)


def test_another_user_gets_403_and_an_admin_gets_the_ui_sandboxed(stack, alice_spark):
    _, app_id = alice_spark
    r = requests.get(ui(stack, app_id, "/jobs/"), headers=auth(stack, "bob"), timeout=60)
    assert r.status_code == 403
    assert "belongs to another user" in r.json()["message"]
    html = requests.get(ui(stack, app_id, "/jobs/"), timeout=60,
                        headers={**auth(stack, "bob"), "Accept": "text/html"})
    assert html.status_code == 403 and "another user" in html.text and "<script" not in html.text
    admin = requests.get(ui(stack, app_id, "/jobs/"), headers=auth(stack, "admin"), timeout=60)
    assert admin.status_code == 200 and "Spark Jobs" in admin.text
    # another user's UI is content its owner controls: an admin's browser runs it in an opaque origin
    assert admin.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "allow-same-origin" not in admin.headers["Content-Security-Policy"]


def test_no_login_is_401_for_scripts_and_a_hub_login_for_browsers(stack, alice_spark):
    _, app_id = alice_spark
    r = requests.get(ui(stack, app_id, "/jobs/"), timeout=60)
    assert r.status_code == 401 and "log in" in r.json()["message"]
    r = requests.get(ui(stack, app_id, "/jobs/"), timeout=60, allow_redirects=False,
                     headers={"Accept": "text/html"})
    assert r.status_code == 302
    location = r.headers["Location"]
    assert urlsplit(location).path.endswith("/hub/api/oauth2/authorize")
    assert "client_id=service-yardlab-edge" in location
    r = requests.get(ui(stack, app_id, "/jobs/"), timeout=60, headers={"Authorization": "token not-a-token"})
    assert r.status_code == 401


def test_unknown_and_finished_applications_get_404_and_410(stack, rm):
    h = auth(stack, "alice")
    r = requests.get(ui(stack, "application_1_9999", "/jobs/"), headers=h, timeout=60)
    assert r.status_code == 404 and "no application" in r.json()["message"]
    finished = [a for a in rm.apps() if a.get("user") == "alice" and a["state"] in ("FINISHED", "KILLED", "FAILED")]
    if not finished:
        kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"],
                                    "yardlab_python", username="alice")
        kc.shutdown()
        requests.delete(f"{stack['edge_url']}/gateway/api/kernels/{kc.kernel_id}", headers=h, timeout=120)
        (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
        rm.wait_state(app["id"], {"FINISHED", "KILLED", "FAILED"})
        finished = [app]
    app_id = finished[0]["id"]
    deadline = time.monotonic() + 30
    while True:  # the edge's snapshot follows the RM within its poll interval
        r = requests.get(ui(stack, app_id, "/jobs/"), headers={**h, "Accept": "text/html"}, timeout=60)
        if r.status_code == 410 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 410, r.text[:300]
    assert "has ended" in r.text and "<h1>" in r.text
    # the jobs list says the UI is gone instead of linking it
    app = requests.get(f"{stack['edge_url']}/api/v1/apps/{app_id}", headers=h, timeout=60).json()
    assert app["sparkUi"] is None and app["sparkUiNote"] == "the Spark UI ended with the application"


@pytest.mark.parametrize("raw", [
    "/../../api/v1/apps",
    "/%2e%2e/%2e%2e/api/v1/apps",
    "%2F..%2F..%2Fapi%2Fv1%2Fapps",
    "/%2F%2Fevil.example.com/",
    "//evil.example.com/",
    "/..%5c..%5capi",
    "/jobs/%252e%252e/",
    "/jobs/\\..\\",
    "/jobs/job/kill;x/?id=0",
    "/jobs/job/%6bill/?id=0",
    "/..;/application_1_1/",
    "/jobs/?user.name=alice",
    "/jobs/?doAs=bob",
    "/ws/v1/cluster/apps",
])
def test_path_tricks_never_leave_the_applications_ui(stack, alice_spark, raw):
    """Sent as raw bytes straight to the edge (no client or proxy normalizes them first)."""
    _, app_id = alice_spark
    edge = urlsplit(stack["edge_url"])
    conn = http.client.HTTPConnection(edge.hostname, edge.port, timeout=30)
    conn.putrequest("GET", f"{edge.path}/proxy/{app_id}{raw}", skip_accept_encoding=True)
    conn.putheader("Authorization", f"token {stack['user_tokens']['alice']}")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status in (400, 403, 404), (resp.status, body[:300])
    assert set(json.loads(body)) == {"message", "reason"}  # the edge's own refusal, nothing fetched


@pytest.mark.parametrize("app_part", ["http://evil.example.com", "application_1_1@evil", "..", "%2e%2e"])
def test_anything_but_an_application_id_after_proxy_is_refused(stack, app_part):
    r = requests.get(f"{stack['edge_url']}/proxy/{app_part}/", headers=auth(stack, "alice"), timeout=30)
    assert r.status_code in (400, 404), r.text
    assert "not a YARN application id" in r.text or "no such" in r.text


def test_the_spark_ui_is_read_only(stack, alice_spark):
    _, app_id = alice_spark
    h = auth(stack, "alice")
    r = requests.post(ui(stack, app_id, "/jobs/job/kill/"), data={"id": "0"}, headers=h, timeout=30)
    assert r.status_code == 405 and "read-only" in r.json()["message"]
    r = requests.get(ui(stack, app_id, "/stages/stage/kill/?id=1"), headers=h, timeout=30)
    assert r.status_code == 403 and "Jobs panel" in r.json()["message"]


def test_the_jobs_list_links_the_spark_ui_through_the_edge(stack, alice_spark):
    _, app_id = alice_spark
    app = requests.get(f"{stack['edge_url']}/api/v1/apps/{app_id}", headers=auth(stack, "alice"), timeout=30).json()
    assert app["sparkUi"] == urlsplit(ui(stack, app_id, "/")).path
    assert app["sparkUiNote"] is None


def test_a_cells_spark_jobs_and_stages_are_reported_live_and_only_to_the_owner(stack, alice_spark):
    kc, app_id = alice_spark
    cell = str(uuid.uuid4())
    url = f"{stack['edge_url']}/api/v1/kernels/{kc.kernel_id}/progress"
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(reply=kc.execute(MULTI_STAGE, msg_id=cell)))
    worker.start()
    seen: list[dict] = []
    while worker.is_alive():
        r = requests.get(url, params={"cell": cell}, headers=auth(stack, "alice"), timeout=30)
        assert r.status_code == 200, r.text
        seen.append(r.json())
        time.sleep(0.3)
    worker.join()
    assert done["reply"].status == "ok"
    # Spark's status store follows its listener bus: the job is seen ended shortly after the cell
    deadline = time.monotonic() + 15
    while True:
        final = requests.get(url, params={"cell": cell}, headers=auth(stack, "alice"), timeout=30).json()
        if all(j["status"] != "RUNNING" for j in final["jobs"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert final["app"] == app_id and final["ui"] == urlsplit(ui(stack, app_id, "/")).path
    (job,) = final["jobs"]
    assert job["status"] == "SUCCEEDED" and len(job["stages"]) == 3
    assert all(s["status"] == "COMPLETE" and s["numCompleteTasks"] == s["numTasks"] for s in job["stages"])
    assert job["url"].startswith(final["ui"] + "jobs/job/?id=")
    # it was watched while running: some poll saw the job unfinished
    running = [p for p in seen if p["jobs"] and p["jobs"][0]["status"] == "RUNNING"]
    assert running, f"no poll saw the job running ({len(seen)} polls)"
    # only this cell's jobs: the fixture's earlier job is not in it, another cell id sees nothing
    other = requests.get(url, params={"cell": str(uuid.uuid4())}, headers=auth(stack, "alice"), timeout=30)
    assert other.status_code == 200 and other.json()["jobs"] == []
    # bob may not read alice's kernel; nonsense cell ids are refused
    r = requests.get(url, params={"cell": cell}, headers=auth(stack, "bob"), timeout=30)
    assert r.status_code == 403
    for bad in ("", "../x", "a" * 101, "x y"):
        r = requests.get(url, params={"cell": bad}, headers=auth(stack, "alice"), timeout=30)
        assert r.status_code == 400, (bad, r.text)
