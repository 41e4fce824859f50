"""Kills through the edge on the real stack: owners and admins only, done as the owner, confirmed on
the RM, audited (refusals at a bounded rate); YARN itself refuses a cross-user kill."""
from __future__ import annotations

import json
import time
from pathlib import Path





from test_jobs import wait_listed


def audit_entries(stack, app_id: str) -> list[dict]:
    path = Path(stack["edge_audit_log"])
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("app") == app_id]


def test_users_see_only_their_own_apps_and_kill_only_their_own(stack, edge_as, yarn_app, rm):
    alice_app = yarn_app("alice")
    bob_app = yarn_app("bob", queue="interactive")
    alice, bob, admin = edge_as("alice"), edge_as("bob"), edge_as("admin")

    listed = wait_listed(alice, alice_app, state="RUNNING")
    assert listed["user"] == "alice"
    assert listed["state"] == "RUNNING"
    for field in ("id", "name", "queue", "finalStatus", "progress", "startedTime", "finishedTime", "elapsedTime",
                  "allocatedMB", "allocatedVCores", "runningContainers", "memorySeconds", "vcoreSeconds",
                  "trackingUrl", "tags"):
        assert field in listed
    assert listed["allocatedMB"] > 0
    assert "/proxy/" in listed["trackingUrl"]
    assert bob_app not in [a["id"] for a in alice.get("/apps").json()["apps"]]
    wait_listed(bob, bob_app, state="RUNNING")
    assert alice_app not in [a["id"] for a in bob.get("/apps").json()["apps"]]
    assert bob.get(f"/apps/{alice_app}").status_code == 403

    # other users' lists are for admins only
    assert alice.get("/apps", params={"user": "bob"}).status_code == 403
    assert alice.get("/apps", params={"user": "*"}).status_code == 403
    everyone = {a["id"]: a for a in admin.get("/apps", params={"user": "*", "limit": 1000}).json()["apps"]}
    assert {alice_app, bob_app} <= set(everyone)
    only_bob = admin.get("/apps", params={"user": "bob"}).json()["apps"]
    assert {a["user"] for a in only_bob} == {"bob"}
    assert [a["id"] for a in admin.get("/apps", params={"user": "*", "queue": "interactive",
                                                        "state": "RUNNING"}).json()["apps"]
            if a["id"] in (alice_app, bob_app)] == [bob_app]

    # bob cannot kill alice's application, and it keeps running on YARN
    denied = bob("DELETE", f"/apps/{alice_app}")
    assert denied.status_code == 403
    assert "another user" in denied.json()["message"]
    time.sleep(2)
    assert rm.app(alice_app)["state"] == "RUNNING"
    assert [e["outcome"] for e in audit_entries(stack, alice_app)] == ["denied"]
    # a loop of refused kills is answered every time but audited at a bounded rate (30 a minute)
    for _ in range(60):
        assert bob("DELETE", f"/apps/{alice_app}").status_code == 403
    denied_lines = [e for e in audit_entries(stack, alice_app) if e["outcome"] == "denied"]
    assert 1 < len(denied_lines) <= 30 and "rate_limited" in denied_lines[-1]

    # alice kills hers: the answer is YARN's final state
    killed = alice("DELETE", f"/apps/{alice_app}")
    assert killed.status_code == 200, killed.text
    assert killed.json()["state"] == "KILLED"
    assert rm.app(alice_app)["state"] == "KILLED"
    again = alice("DELETE", f"/apps/{alice_app}")
    assert again.status_code == 409
    assert "already ended" in again.json()["message"]

    # an admin kills bob's: done as bob (doAs), recorded as the admin's
    by_admin = admin("DELETE", f"/apps/{bob_app}")
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["state"] == "KILLED" and by_admin.json()["killedBy"] == "admin"
    assert "killed by user bob" in rm.app(bob_app)["diagnostics"]
    entries = audit_entries(stack, bob_app)
    assert entries[-1]["actor"] == "admin" and entries[-1]["actor_kind"] == "admin"
    assert entries[-1]["owner"] == "bob" and entries[-1]["outcome"] == "killed"
    alice_entries = audit_entries(stack, alice_app)
    assert [(e["actor"], e["outcome"]) for e in alice_entries][-2:] == [("alice", "killed"),
                                                                       ("alice", "already-finished")]
    # the snapshot reflects the kill straight away
    assert alice.get(f"/apps/{alice_app}").json()["state"] == "KILLED"


def test_yarn_itself_refuses_a_cross_user_kill(stack, yarn_app, rm):
    app = yarn_app("alice")
    r = rm.put(f"/apps/{app}/state", {"state": "KILLED"}, doAs="bob")
    assert r.status_code == 403
    time.sleep(1)
    assert rm.app(app)["state"] == "RUNNING"


def test_kill_of_an_unknown_app_is_404(edge_as):
    r = edge_as("alice")("DELETE", "/apps/application_1700000000000_9999")
    assert r.status_code == 404
    assert "no application" in r.json()["message"]
