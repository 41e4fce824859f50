"""Kernels through the edge on the real stack, as Lab uses them over time: a restart from Lab keeps
the kernel (the ledger follows it onto its new YARN application), and the per-user kernel cap
holds when starts arrive together."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from conftest import FINAL_STATES
from jupyter_ws import KernelConnection
from test_hub import wait_server_ready


def audit(stack) -> list[dict]:
    return [json.loads(line) for line in Path(stack["edge_audit_log"]).read_text().splitlines()]


def test_restart_from_lab_keeps_the_kernel_past_the_reapers_grace(stack, hub, rm):
    """Lab's restart (POST /api/kernels/<id>/restart on the Lab server, which forwards it to the
    edge): EG ends the YARN application and submits a new one with the same name.  The kernel must
    still execute a minute later, after the reaper's grace (30 s on the local stack)."""
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    base = f"{stack['hub_url']}user/alice"
    token = stack["user_tokens"]["alice"]
    h = {"Authorization": f"token {token}"}
    r = requests.post(f"{base}/api/kernels", headers=h, json={"name": "yardlab_python"}, timeout=330)
    assert r.status_code == 201, r.text
    kc = KernelConnection(base, token, r.json()["id"], "alice")
    kc.connect()
    try:
        assert kc.execute("x = 41").status == "ok"
        (first,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
        restart = requests.post(f"{base}/api/kernels/{kc.kernel_id}/restart", headers=h, timeout=330)
        assert restart.status_code == 200, restart.text
        old = rm.wait_state(first["id"], FINAL_STATES, timeout=60)
        assert old["state"] in ("KILLED", "FINISHED")
        apps = [a for a in rm.apps_tagged(f"kernel:{kc.kernel_id}") if a["id"] != first["id"]]
        assert len(apps) == 1 and apps[0]["name"] == kc.kernel_id and apps[0]["user"] == "alice"
        # past the reaper's grace (30 s) and three of its rounds (5 s)
        time.sleep(45)
        kc.connect()
        reply = kc.execute("print('still here', 'x' in dir())")
        assert reply.status == "ok", reply.error
        assert reply.stdout.split() == ["still", "here", "False"]  # a restarted kernel: fresh namespace
        assert requests.get(f"{base}/api/kernels/{kc.kernel_id}", headers=h, timeout=30).status_code == 200
        assert rm.app(apps[0]["id"])["state"] == "RUNNING"
        entries = [e for e in audit(stack) if e.get("kernel") == kc.kernel_id]
        assert not [e for e in entries if e["action"] in ("kernel-dead", "reap")], entries
        assert [e["outcome"] for e in entries if e["action"] == "restart"] == ["done"]
        # the jobs list links both applications to the kernel
        mine = {a["id"]: a for a in requests.get(f"{stack['edge_url']}/api/v1/apps", headers=h,
                                                 timeout=30).json()["apps"]}
        assert mine[apps[0]["id"]]["kernel"] == kc.kernel_id
    finally:
        kc.shutdown()


def test_parallel_kernel_starts_cannot_pass_the_cap(stack, rm):
    """Six starts at once against a cap of four: four start, two are 429, nothing extra on YARN."""
    gw = stack["edge_url"] + "/gateway/api/kernels"
    h = {"Authorization": f"token {stack['user_tokens']['bob']}"}
    mine = requests.get(gw, headers=h, timeout=60).json()
    for k in mine:  # a clean slate for bob
        requests.delete(f"{gw}/{k['id']}", headers=h, timeout=120)

    def start(_):
        return requests.post(gw, headers=h, json={"name": "yardlab_python"}, timeout=400)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(start, range(6)))
    started = [r.json()["id"] for r in answers if r.status_code == 201]
    try:
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 4 + [429] * 2, [(r.status_code, r.text[:200]) for r in answers]
        assert all("limit is 4" in r.json()["message"] for r in answers if r.status_code == 429)
        time.sleep(3)
        live = [a for a in rm.apps(states="NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING")
                if a["user"] == "bob" and a["name"] in started]
        assert len(live) == 4
    finally:
        for kid in started:
            requests.delete(f"{gw}/{kid}", headers=h, timeout=120)
