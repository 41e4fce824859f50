"""Pieces of the stack killed outright on the real stack: the edge (SIGKILL) in the middle of an environment
build and in the middle of a kill, Enterprise Gateway (SIGKILL), the hub service (SIGKILL), and the hub
stopped and started again (SIGTERM, as an upgrade does).  While a piece is
away callers get a clear 5xx, never a hang; after it is back no record is lost, none is doubled, and nothing
half-written (a work folder, an HDFS temporary, a build command still running) is left or served as ready.

Every test leaves the stack as it found it: the piece it killed answers again before the test ends (the
``finally`` blocks start the edge again when this session owns the stack; a `make demo` launcher, the hub and
the edge's supervisor restart the rest on their own).  tests/unit/test_restarts_unit.py covers the same
recovery paths without a cluster.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import requests

from conftest import HadoopAuth
from jupyter_ws import KernelConnection
from test_environments import archive_path, delete_if_there, hdfs_list, hdfs_status, wait_env
from test_hub import wait_server_ready
from test_hub_service import wait_for
from test_jobs import wait_listed
from test_kills import audit_entries
from yardlab.edge.osutil import process_start

#: a pin no other test builds (tabulate's 0.8.7 wheel): the build below is this file's own
CRASH_PIN = "tabulate==0.8.7"


def wait_gone(pid: int, timeout: float = 10) -> None:
    wait_for(lambda: process_start(pid) is None, timeout, f"process {pid} to end after SIGKILL", 0.05)


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working folder is in ``folder`` (or was, before it was removed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if (cwd == str(folder) or cwd.startswith(str(folder) + "/")) and process_start(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def edge_db(stack, query: str, *args) -> list[tuple]:
    """Rows of the edge's own database, read as an operator would (the edge writes it meanwhile)."""
    path = Path(stack["state_dir"]) / "edge" / "edge.sqlite"
    for _ in range(50):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
            try:
                return db.execute(query, args).fetchall()
            finally:
                db.close()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            time.sleep(0.05)
    raise AssertionError(f"the edge's database stayed locked: {query}")


def builds_under_way(admin) -> list[str]:
    everyone = admin.get("/environments", params={"owner": "all"}).json()["environments"]
    return [f"{e['owner']}/{e['name']}" for e in everyone if e["status"] in ("queued", "building")]


def through_the_hub_while_the_edge_is_down(stack_control, session, path: str) -> None:
    """With the edge gone (and not yet started again), the hub's proxy answers for it at once with a 5xx."""
    if not stack_control.owned:
        return  # a `make demo` launcher starts the next edge within a second: no window to look into
    started = time.monotonic()
    r = session.get(path, timeout=15)
    assert r.status_code in (502, 503), (r.status_code, r.text[:300])
    assert time.monotonic() - started < 10


# -- 1. the edge killed in the middle of an environment build -----------------------------------------------
def test_an_edge_killed_mid_build_builds_the_environment_after_its_restart_and_leaves_nothing_half_done(
        stack, stack_control, edge_as):
    alice, admin = edge_as("alice"), edge_as("admin")
    for name in ("crash", "crash-twin"):
        delete_if_there(alice, "alice", name)
    work = Path(stack["state_dir"]) / "edge" / "envs" / "work"
    # the shipped environments of a stack just started build first: the build killed here is this test's alone
    wait_for(lambda: not builds_under_way(admin), 600, "the builds under way to end", interval=2)
    r = alice("POST", "/environments", json={"name": "crash", "packages": {"pip": [CRASH_PIN]}})
    assert r.status_code == 202, r.text
    try:
        # killed while uv installs: build commands run in sessions of their own, so they outlive the edge
        def installing() -> list[int]:
            phase = alice.get("/environments/alice/crash").json()["phase"]
            assert phase in ("queued", "resolving", "installing"), f"the build went on to {phase} unseen"
            return [pid for pid in processes_in(work) if b"sync" in cmdline(pid)]

        wait_for(installing, 240, "uv installing the packages", interval=0.1)
        folders = list(work.iterdir())
        old = stack_control.crash_edge()
        assert [pid for folder in folders for pid in processes_in(folder)], "no build command outlived the edge"
        through_the_hub_while_the_edge_is_down(stack_control, edge_as("alice", via_hub=True),
                                               "/environments/alice/crash")
        stack_control.wait_edge_back(old)
        # the next edge stopped what the killed one left running, before it removed their folders
        assert [pid for folder in folders for pid in processes_in(folder)] == []
        # not stuck: built again from the start, and said so
        during = alice.get("/environments/alice/crash").json()
        assert during["status"] in ("queued", "building", "ready"), during
        assert during["status"] == "ready" or during["kernel_name"] is None  # nothing offered before it is ready
        env = wait_env(alice, "alice", "crash", timeout=300)
        assert env["status"] == "ready", env["error"]
        assert "restarted during this build" in alice.get("/environments/alice/crash/log").text
        # nothing half-written: no work folder, no HDFS temporary, and the archive served is whole
        assert os.listdir(work) == []
        assert not [n for n in hdfs_list(stack, "/yardlab/envs") if n.startswith(".")]
        status = hdfs_status(stack, archive_path(env))
        assert status is not None and status["permission"] == "644"
        with HadoopAuth.of(stack).webhdfs(stack).read(archive_path(env), offset=status["length"] - 1024,
                                                      length=1024) as f:
            assert f.read() == bytes(1024), "the archive does not end with tar's end-of-archive blocks"
        # an identical request afterwards reuses the archive at once
        r = alice("POST", "/environments", json={"name": "crash-twin", "packages": {"pip": [CRASH_PIN]}})
        assert r.status_code == 202, r.text
        twin = wait_env(alice, "alice", "crash-twin", timeout=60)
        assert twin["status"] == "ready" and twin["archive"] == env["archive"], twin
        assert twin["build_seconds"] <= 2.0, twin["build_seconds"]
    finally:
        if process_start(stack_control.edge_pid()) is None:
            stack_control.wait_edge_back(stack_control.edge_pid())
        for name in ("crash-twin", "crash"):
            delete_if_there(alice, "alice", name)


# -- 2. the edge killed in the middle of a kill -------------------------------------------------------------
def test_an_edge_killed_mid_kill_finishes_the_kill_after_its_restart_and_audits_it_once(
        stack, stack_control, edge_as, yarn_app, rm):
    app_id = yarn_app("alice")
    alice = edge_as("alice")
    wait_listed(alice, app_id, state="RUNNING")
    answer: dict = {}

    def kill() -> None:
        try:
            answer["response"] = alice("DELETE", f"/apps/{app_id}", timeout=120)
        except requests.RequestException as e:
            answer["error"] = e

    caller = threading.Thread(target=kill, daemon=True)
    caller.start()
    try:
        # the edge notes a kill before it asks YARN: killed from then on, it leaves the kill to the next edge
        wait_for(lambda: edge_db(stack, "select actor from pending_kills where app_id = ?", app_id)
                 or "response" in answer, 60, "the edge to take the kill on", interval=0.01)
        assert "response" not in answer, "the kill ended before the edge could be killed in its middle"
        old = stack_control.crash_edge()
        caller.join(30)
        # the caller saw its connection cut: a failure, never an answer that says it was killed
        assert "error" in answer or answer["response"].status_code >= 500, answer
        through_the_hub_while_the_edge_is_down(stack_control, edge_as("alice", via_hub=True), f"/apps/{app_id}")
        stack_control.wait_edge_back(old)

        assert rm.wait_state(app_id, {"KILLED", "FINISHED", "FAILED"}, timeout=90)["state"] == "KILLED"
        kills = wait_for(lambda: [e for e in audit_entries(stack, app_id) if e["action"] == "kill"], 60,
                         "the kill's audit record")
        assert [(e["actor"], e["owner"], e["outcome"], e.get("resumed")) for e in kills] == [
            ("alice", "alice", "killed", True)]
        assert edge_db(stack, "select actor from pending_kills where app_id = ?", app_id) == []
        # the caller may retry: told it has ended, and the retry is no second kill in the record
        again = alice("DELETE", f"/apps/{app_id}")
        assert again.status_code == 409 and "already ended" in again.json()["message"]
        outcomes = [e["outcome"] for e in audit_entries(stack, app_id) if e["action"] == "kill"]
        assert outcomes == ["killed", "already-finished"]
    finally:
        if process_start(stack_control.edge_pid()) is None:
            stack_control.wait_edge_back(stack_control.edge_pid())


# -- 3. Enterprise Gateway killed -------------------------------------------------------------------------
def test_a_killed_enterprise_gateway_gives_clear_503s_then_kernels_start_again(stack, edge_kernel):
    state_file = Path(stack["eg_state_file"])
    old_pid = json.loads(state_file.read_text())["pid"]
    edge = stack["edge_url"]
    headers = {"Authorization": f"token {stack['user_tokens']['alice']}"}
    os.kill(old_pid, signal.SIGKILL)  # EG only: its kernels' YARN applications are not its children
    wait_gone(old_pid)

    started = time.monotonic()
    r = requests.post(f"{edge}/gateway/api/kernels", json={"name": "yardlab_python"}, headers=headers, timeout=60)
    assert r.status_code == 503, (r.status_code, r.text[:500])
    assert "kernel gateway" in r.json()["message"], r.json()
    assert time.monotonic() - started < 15

    # the edge's supervisor starts EG again; until it answers, every call is a 503 with a sentence
    seen: set[int] = set()

    def back() -> bool:
        health = requests.get(f"{edge}/health", timeout=10).status_code
        specs = requests.get(f"{edge}/gateway/api/kernelspecs", headers=headers, timeout=30)
        seen.update((health, specs.status_code))
        assert specs.status_code in (200, 503), (specs.status_code, specs.text[:300])
        if specs.status_code == 503:
            assert specs.json()["message"]
        saved = json.loads(state_file.read_text())
        return saved["pid"] != old_pid and health == 200 and specs.status_code == 200

    wait_for(back, 120, "Enterprise Gateway to be back", interval=0.2)
    assert 503 in seen, "neither /health nor the kernelspecs ever said the gateway was away"
    kc = edge_kernel("alice", "yardlab_python")
    reply = kc.execute("print(6 * 7)")
    assert reply.status == "ok" and reply.stdout.strip() == "42", (reply.error, reply.stderr[-1000:])


# -- 4. the hub service killed ------------------------------------------------------------------------------
def hub_service_pid(stack) -> int:
    """The managed service's process: `python -m yardlab.hub_service`, in the stack's hub-service folder."""
    folder = str(Path(stack["state_dir"]) / "hub-service")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"yardlab.hub_service" in cmdline and cwd == folder:
            return int(entry.name)
    raise AssertionError(f"no hub service process runs in {folder}")


def test_a_killed_hub_service_is_restarted_by_the_hub_with_every_sample_it_had(stack):
    svc = stack["hub_service_url"].rstrip("/")
    admin = requests.Session()
    admin.headers["Authorization"] = f"token {stack['user_tokens']['admin']}"

    def history() -> list[dict]:
        r = admin.get(f"{svc}/api/v1/history", params={"since": "1h"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["samples"]

    def usage() -> dict[str, int]:
        r = admin.get(f"{svc}/api/v1/usage", params={"since": "30d"}, timeout=30)
        assert r.status_code == 200, r.text
        return {u["user"]: u["windows"]["30d"]["memorySeconds"] for u in r.json()["users"]}

    before = wait_for(lambda: len(history()) >= 2 and history(), 60, "two samples")
    used_before = usage()
    old_pid = hub_service_pid(stack)
    os.kill(old_pid, signal.SIGKILL)
    wait_gone(old_pid)

    statuses: list[int] = []

    def answering() -> bool:
        try:
            r = admin.get(f"{svc}/api/v1/usage", timeout=15)
        except requests.ConnectionError:
            statuses.append(0)  # nothing listens on the service's port between the two processes
            return False
        statuses.append(r.status_code)
        return r.status_code == 200

    wait_for(answering, 90, "the hub to start its service again", interval=0.2)
    assert set(statuses) <= {0, 502, 503, 200}, statuses
    assert hub_service_pid(stack) != old_pid
    # every sample from before is there, and sampling goes on
    after = wait_for(lambda: (h := history()) and h[-1]["ts"] > before[-1]["ts"] and h, 60, "a sample after the restart")
    assert {s["ts"] for s in before} <= {s["ts"] for s in after}
    used_after = usage()
    assert all(used_after.get(user, 0) >= seconds for user, seconds in used_before.items()), (used_before, used_after)


# -- 5. the hub restarted -----------------------------------------------------------------------------------
def test_a_restarted_hub_leaves_labs_kernels_and_routes_up_and_finds_them_again(stack, stack_control, hub):
    """The hub stopped as an upgrade or a crash stops it (SIGTERM), then started again: people's Lab servers,
    their open kernels and the proxy's routes stay up meanwhile (the hub leaves its servers running and the
    proxy runs on its own), what needs the hub says so (the hub's pages 503, the edge 503 with a sentence
    for a token it has not seen), and the new hub finds the running server again: same kernel, same state."""
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    lab = f"{stack['hub_url']}user/alice"
    alice = {"Authorization": f"token {stack['user_tokens']['alice']}"}
    r = requests.post(f"{lab}/api/kernels", headers=alice, json={"name": "yardlab_python"}, timeout=330)
    assert r.status_code == 201, r.text
    kc = KernelConnection(lab, stack["user_tokens"]["alice"], r.json()["id"], "alice")
    kc.connect()
    try:
        assert kc.execute("x = 41").status == "ok"
        fresh = hub("POST", "/users/bob/tokens", json={"note": "made before the hub's restart"})
        assert fresh.status_code == 201, fresh.text
        bob_new = {"Authorization": f"token {fresh.json()['token']}"}
        hub_pid = json.loads(Path(stack["state_dir"], "stack.json").read_text())["pids"]["jupyterhub"]
        os.kill(hub_pid, signal.SIGTERM)
        wait_for(lambda: process_start(hub_pid) is None, 60, "the hub to stop", 0.05)

        if stack_control.owned:  # this session's hub stays down until it is started below
            page = requests.get(f"{stack['hub_url']}hub/home", timeout=30)
            assert page.status_code == 503, page.status_code
            reply = kc.execute("print(x + 1)")  # the open notebook goes on
            assert reply.status == "ok" and reply.stdout.strip() == "42", reply.error
            assert requests.get(f"{lab}/api/kernels/{kc.kernel_id}", headers=alice, timeout=30).status_code == 200
            r = requests.get(f"{stack['edge_url']}/api/v1/apps", headers=bob_new, timeout=60)
            assert r.status_code == 503, (r.status_code, r.text[:300])
            assert r.json()["message"].startswith("JupyterHub could not be asked who this token belongs to"), r.text
            stack_control.stack.restart_piece("jupyterhub")
        # else a `make demo` launcher starts it again at once

        wait_for(lambda: hub("GET", "/").status_code == 200, 120, "the hub to answer again")
        server = wait_server_ready(hub, "alice", timeout=60)
        assert server["ready"]
        kc.connect()
        reply = kc.execute("print(x)")  # the same kernel: not started again, its namespace kept
        assert reply.status == "ok" and reply.stdout.strip() == "41", reply.error
        assert requests.get(f"{lab}/api/kernels/{kc.kernel_id}", headers=alice, timeout=30).status_code == 200
        assert requests.get(f"{stack['edge_url']}/api/v1/apps", headers=bob_new, timeout=60).status_code == 200
        # the hub starts its managed service again
        wait_for(lambda: requests.get(f"{stack['hub_service_url'].rstrip('/')}/health", timeout=10).status_code == 200,
                 90, "the hub service to answer again")
    finally:
        piece = next((p for p in stack_control.stack.pieces if p.name == "jupyterhub"), None)
        if stack_control.owned and piece is not None and piece.proc.poll() is not None:
            stack_control.stack.restart_piece("jupyterhub")  # a failure above left it down
        kc.shutdown()
