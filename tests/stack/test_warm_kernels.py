"""Warm kernels on the real stack (edge/warm.py): kernels started ahead, as their user, for users with a Lab
server running, handed to that user's next notebook once, never to anyone else; given back when idle, when
someone waits in the queue, and kept across an edge restart without orphans.

The test suite's stack gives warm kernels only to members of the hub groups ``warm-pool`` (idle time 600 s)
and ``warm-short`` (25 s) (dev/edge_config.py, YARDLAB_WARM_POOL=group); each test adds its users and takes
them out again, and waits until their warm kernels and YARN applications are gone.
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

from conftest import FINAL_STATES
from jupyter_ws import KernelConnection
from test_hub import wait_server_ready

POOL, SHORT = "warm-pool", "warm-short"
NOT_USED = ("import IPython; ip = IPython.get_ipython(); "
            "print(ip.execution_count, len(ip.history_manager.input_hist_raw), len(ip.user_ns.get('Out', {})))")


def auth(stack, user: str) -> dict:
    return {"Authorization": f"token {stack['user_tokens'][user]}"}


def warm_kernels(edge_as, user: str) -> list[dict]:
    r = edge_as(user).get("/kernels/warm")
    assert r.status_code == 200, r.text
    kernels = r.json()["kernels"]
    for k in kernels:  # every warm kernel a test saw must have no YARN application left at the end
        if k["id"] not in _warm_seen.setdefault(user, []):
            _warm_seen[user].append(k["id"])
    return kernels


def wait_warm(edge_as, user: str, exclude: tuple[str, ...] = (), timeout: float = 180) -> dict:
    """The user's next warm kernel that is ready (not one of ``exclude``)."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = warm_kernels(edge_as, user)
        ready = [k for k in seen if k["state"] == "warm" and k["id"] not in exclude]
        if ready:
            return ready[0]
        time.sleep(1)
    raise AssertionError(f"no warm kernel for {user} within {timeout:.0f} s (pool: {seen})")


def audit(stack, kernel_id: str) -> list[dict]:
    lines = Path(stack["edge_audit_log"]).read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("kernel") == kernel_id]


def leave_and_drain(hub, edge_as, rm, group: str, user: str) -> None:
    """Take ``user`` out of ``group``; wait until the pool gave their warm kernels back and YARN ended them."""
    hub("DELETE", f"/groups/{group}/users", json={"users": [user]})
    deadline = time.monotonic() + 90
    left: list[dict] = []
    while time.monotonic() < deadline:
        left = warm_kernels(edge_as, user)
        if not left:
            break
        time.sleep(1)
    assert not left, f"{user}'s warm kernels were not given back: {left}"
    # every warm kernel's application has ended (none is left behind as an orphan)
    for kernel in _warm_seen.pop(user, []):
        for app in rm.apps_tagged(f"kernel:{kernel}"):
            rm.wait_state(app["id"], FINAL_STATES, timeout=90)


_warm_seen: dict[str, list[str]] = {}


def remember(user: str, kernel: dict) -> dict:
    if kernel["id"] not in _warm_seen.setdefault(user, []):
        _warm_seen[user].append(kernel["id"])
    return kernel


@pytest.fixture(scope="module")
def alice_pool(stack, hub, edge_as, rm):
    """alice with her Lab server running, in the warm-pool group, for the tests of this module that use
    her pool (in order, each using the warm kernel the pool has then)."""
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    r = hub("POST", f"/groups/{POOL}/users", json={"users": ["alice"]})
    assert r.status_code == 200, r.text
    yield
    leave_and_drain(hub, edge_as, rm, POOL, "alice")


def test_bob_never_gets_alices_warm_kernel(stack, hub, rm, edge_as, edge_kernel, alice_pool):
    warm = remember("alice", wait_warm(edge_as, "alice"))
    gw = stack["edge_url"] + "/gateway"
    bob = auth(stack, "bob")
    kid = warm["id"]
    assert requests.get(f"{gw}/api/kernels/{kid}", headers=bob, timeout=30).status_code == 403
    assert requests.delete(f"{gw}/api/kernels/{kid}", headers=bob, timeout=30).status_code == 403
    assert requests.post(f"{gw}/api/kernels/{kid}/restart", headers=bob, timeout=30).status_code == 403
    api = stack["edge_url"] + "/api/v1"
    assert requests.put(f"{api}/kernels/{kid}/session", headers=bob, timeout=30,
                        json={"type": "notebook", "path": "x.ipynb"}).status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(gw.replace("http", "ws", 1) + f"/api/kernels/{kid}/channels",
                                    header=[f"Authorization: token {stack['user_tokens']['bob']}"], timeout=30)
    assert err.value.status_code == 403
    # alice herself cannot connect to it or run code in it before a start hands it out
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        websocket.create_connection(gw.replace("http", "ws", 1) + f"/api/kernels/{kid}/channels",
                                    header=[f"Authorization: token {stack['user_tokens']['alice']}"], timeout=30)
    assert err.value.status_code == 409
    r = requests.post(f"{gw}/api/kernels/{kid}/interrupt", headers=auth(stack, "alice"), timeout=30)
    assert r.status_code == 409 and "warm kernel" in r.json()["message"]
    # bob asking for alice's name gets nothing of hers either
    r = requests.post(f"{gw}/api/kernels", headers=bob, timeout=60,
                      json={"name": "yardlab_pyspark", "env": {"KERNEL_USERNAME": "alice"}})
    assert r.status_code == 403
    # bob starts the same kernelspec while alice's warm kernel waits: he gets a kernel of his own, and while it
    # starts the edge tells him (only him) which phase it is in
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = pool.submit(edge_kernel, "bob")
        phases: list[str] = []
        while not started.done():
            for k in edge_as("bob").get("/kernels/starting").json()["kernels"]:
                if not phases or phases[-1] != k["phase"]:
                    phases.append(k["phase"])
            assert edge_as("alice").get("/kernels/starting").json()["kernels"] == []
            time.sleep(0.3)
        kc = started.result()
    assert kc.kernel_id != kid
    assert phases and set(phases) <= {"submitting", "queued", "driver", "kernel"}, phases
    order = ["submitting", "queued", "driver", "kernel"]  # in order, never back
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases), phases
    reply = kc.execute("print(spark.sparkContext.sparkUser())")
    assert reply.status == "ok" and reply.stdout.strip() == "bob", reply
    assert [k["id"] for k in warm_kernels(edge_as, "alice") if k["state"] == "warm"] == [kid]
    assert warm_kernels(edge_as, "bob") == []


def test_alices_next_notebook_gets_her_warm_kernel_at_once_and_runs_spark_as_alice(stack, hub, rm, edge_as,
                                                                                     alice_pool):
    warm = remember("alice", wait_warm(edge_as, "alice"))
    (app,) = rm.apps_tagged(f"kernel:{warm['id']}")
    # an ordinary kernel of alice's: YARN runs it as alice, with her tags
    assert app["user"] == "alice" and app["state"] == "RUNNING"
    assert {"yardlab", "user:alice", f"kernel:{warm['id']}"} <= set(app["applicationTags"].split(","))
    # her jobs list shows it as warm; bob's does not show it at all
    mine = {a["id"]: a for a in edge_as("alice").get("/apps").json()["apps"]}
    assert mine[app["id"]]["warm"] is True and mine[app["id"]]["kernel"] == warm["id"]
    assert app["id"] not in {a["id"] for a in edge_as("bob").get("/apps").json()["apps"]}
    # the pool's state: admins see everyone's warm kernels (the hub service's Overview reads it through its
    # API), a user only their own
    svc = stack["hub_service_url"].rstrip("/") + "/api/v1/warm"
    admin_view = requests.get(svc, headers=auth(stack, "admin"), timeout=30).json()
    assert warm["id"] in {k["id"] for k in admin_view["kernels"] if k["user"] == "alice"}
    assert admin_view["rules"]["groups"][POOL]["yardlab_pyspark"]["count"] == 1 and admin_view["activeUsers"] >= 1
    bob_view = requests.get(svc, headers=auth(stack, "bob"), timeout=30).json()
    assert bob_view["kernels"] == [] and "groups" not in bob_view["rules"]
    # Lab's kernel list does not offer it: nobody connects to it before a start hands it out
    base = f"{stack['hub_url']}user/alice"
    h = auth(stack, "alice")
    assert warm["id"] not in {k["id"] for k in requests.get(f"{base}/api/kernels", headers=h, timeout=60).json()}

    # alice opens a notebook: her Lab server's start gets the warm kernel
    requests.put(f"{base}/api/contents/work", json={"type": "directory"}, headers=h, timeout=60)
    t0 = time.monotonic()
    session = requests.post(f"{base}/api/sessions", headers=h, timeout=330, json={
        "path": "work/warm.ipynb", "name": "warm.ipynb", "type": "notebook", "kernel": {"name": "yardlab_pyspark"}})
    took = time.monotonic() - t0
    assert session.status_code == 201, session.text
    kernel_id = session.json()["kernel"]["id"]
    try:
        assert kernel_id == warm["id"], "the start did not get alice's warm kernel"
        kc = KernelConnection(base, stack["user_tokens"]["alice"], kernel_id, "alice")
        kc.connect()
        # nothing ran in it before this notebook (no history, no outputs)
        reply = kc.execute(NOT_USED)
        assert reply.status == "ok", reply.error
        assert reply.stdout.split() == ["1", "1", "0"], reply.stdout
        reply = kc.execute("print(spark.sparkContext.sparkUser()); print(spark.range(10).count())")
        assert reply.status == "ok", reply.error
        assert reply.stdout.split() == ["alice", "10"]
        kc.ws.close()
        # no longer warm: the jobs list names the notebook it serves
        deadline = time.monotonic() + 20
        while True:
            entry = {a["id"]: a for a in edge_as("alice").get("/apps").json()["apps"]}[app["id"]]
            if entry["warm"] is False and entry["notebook"] == "work/warm.ipynb":
                break
            assert time.monotonic() < deadline, entry
            time.sleep(0.5)
        assert [e["warm"] for e in audit(stack, kernel_id) if e["action"] == "launch"] == [True, "handed-out"]
        # and the pool starts its successor behind it
        remember("alice", wait_warm(edge_as, "alice", exclude=(warm["id"],)))
    finally:
        requests.delete(f"{base}/api/sessions/{session.json()['id']}", headers=h, timeout=120)
    rm.wait_state(app["id"], FINAL_STATES, timeout=90)
    # the session's start took what a warm kernel takes, not a cold start (~10 s and more here)
    assert took < 5, f"the session with a warm kernel took {took:.1f} s"


def test_an_edge_restart_keeps_warm_kernels_and_leaves_no_orphan(stack, stack_control, hub, rm, edge_as,
                                                                alice_pool):
    warm = remember("alice", wait_warm(edge_as, "alice"))
    stack_control.restart_edge()
    # the new edge finds the warm kernel in its ledger and in EG, and hands it out
    after = wait_warm(edge_as, "alice", timeout=60)
    assert after["id"] == warm["id"]
    t0 = time.monotonic()
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], "yardlab_pyspark",
                                username="alice")
    try:
        assert kc.kernel_id == warm["id"] and time.monotonic() - t0 < 5
        reply = kc.execute("print(spark.sparkContext.sparkUser())")
        assert reply.status == "ok" and reply.stdout.strip() == "alice", reply
    finally:
        kc.shutdown()
    remember("alice", wait_warm(edge_as, "alice", exclude=(warm["id"],)))


def test_the_cap_counts_warm_kernels_and_a_warm_one_makes_room(stack, rm, edge_as, edge_kernel, alice_pool):
    warm = remember("alice", wait_warm(edge_as, "alice"))
    cap = 4  # KernelService.max_kernels_per_user on the local stack (the default)
    # plain Python kernels (a 1 GB driver, no executors): with the warm one, alice is at her cap
    for _ in range(cap - 1):
        edge_kernel("alice", "yardlab_python")
    assert [k["id"] for k in warm_kernels(edge_as, "alice")] == [warm["id"]]
    # one more start: the warm kernel is given back to make room, and the start goes through
    extra = edge_kernel("alice", "yardlab_python")
    assert extra.kernel_id != warm["id"]
    assert [e["outcome"] for e in audit(stack, warm["id"]) if e["action"] == "warm-release"] == ["warm-made-room"]
    # and the next is refused: four kernels and no warm one left to give back
    r = requests.post(stack["edge_url"] + "/gateway/api/kernels", headers=auth(stack, "alice"), timeout=60,
                      json={"name": "yardlab_python"})
    assert r.status_code == 429 and "limit is 4" in r.json()["message"], r.text
    # the pool does not start a warm kernel past her cap either
    time.sleep(5)
    assert warm_kernels(edge_as, "alice") == []
    (app,) = rm.apps_tagged(f"kernel:{warm['id']}")
    rm.wait_state(app["id"], FINAL_STATES, timeout=90)


def test_someone_waiting_in_the_queue_gets_the_room_of_warm_kernels(stack, hub, rm, edge_as, yarn_app, alice_pool):
    warm = remember("alice", wait_warm(edge_as, "alice"))
    # fill the cluster so that what is left is less than an ApplicationMaster needs: bob's application holds
    # executors sized to the free memory (the warm kernel keeps its 2 GB)
    free = rm.get("/metrics")["clusterMetrics"]["availableMB"]
    rest = free - 1024  # bob's first ApplicationMaster: 512 MB + 384 overhead, in 256 MB steps
    executors = max(1, math.ceil(rest / 4096))
    size = (rest // executors) // 256 * 256
    assert size - 384 >= 256, f"the cluster is too full for this test ({free} MB free)"
    filler = yarn_app("bob", extra=["--conf", "spark.driver.memory=512m",
                                    "--conf", "spark.dynamicAllocation.enabled=false",
                                    "--conf", f"spark.executor.instances={executors}",
                                    "--conf", f"spark.executor.memory={size - 384}m"])
    deadline = time.monotonic() + 120
    while rm.app(filler).get("runningContainers", 0) < 1 + executors:
        assert time.monotonic() < deadline, rm.app(filler)
        time.sleep(1)
    # bob's next application cannot get even its ApplicationMaster's container: it waits in ACCEPTED, and the
    # pool gives alice's warm kernel back (after pressure_after, 5 s) so that it runs
    waiting = yarn_app("bob", name=f"yl-warm-wait-{uuid.uuid4().hex[:6]}", wait="",
                       extra=["--conf", "spark.driver.memory=512m"])
    t0 = time.monotonic()
    rm.wait_state(waiting, {"RUNNING"}, timeout=120)
    assert time.monotonic() - t0 < 60
    assert [e["outcome"] for e in audit(stack, warm["id"]) if e["action"] == "warm-release"] == ["warm-given-back"]
    assert warm["id"] not in {k["id"] for k in warm_kernels(edge_as, "alice")}


def test_a_warm_kernel_expires_after_its_idle_time_and_leaves_no_yarn_application(stack, hub, rm, edge_as):
    hub("POST", "/users/bob/server")
    wait_server_ready(hub, "bob")
    assert hub("POST", f"/groups/{SHORT}/users", json={"users": ["bob"]}).status_code == 200
    try:
        warm = remember("bob", wait_warm(edge_as, "bob"))
        assert warm["expiresIn"] <= 10
        (app,) = rm.apps_tagged(f"kernel:{warm['id']}")
        # idle for 10 s (from when it was offered): given back, and its YARN application ends
        final = rm.wait_state(app["id"], FINAL_STATES, timeout=120)
        assert final["state"] in FINAL_STATES
        releases = [e for e in audit(stack, warm["id"]) if e["action"] == "warm-release"]
        assert [e["outcome"] for e in releases] == ["warm-expired"]
        assert warm["id"] not in {k["id"] for k in warm_kernels(edge_as, "bob")}
    finally:
        leave_and_drain(hub, edge_as, rm, SHORT, "bob")
