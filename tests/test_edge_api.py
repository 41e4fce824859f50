"""The edge service on the real stack: identity from hub tokens, own-apps views, confirmed kills, bad input."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from conftest import FINAL_STATES


def wait_listed(session, app_id: str, timeout: float = 30, **params) -> dict:
    """The snapshot polls every 2 s: wait until the app shows up in the caller's list."""
    deadline = time.monotonic() + timeout
    while True:
        r = session.get("/apps", params=params)
        assert r.status_code == 200, r.text
        found = [a for a in r.json()["apps"] if a["id"] == app_id]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{app_id} not listed within {timeout} s")
        time.sleep(0.5)


def audit_entries(stack, app_id: str) -> list[dict]:
    path = Path(stack["edge_audit_log"])
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("app") == app_id]


def test_me_resolves_the_token_owner(edge_as):
    alice = edge_as("alice").get("/me")
    assert alice.status_code == 200
    assert alice.json()["name"] == "alice" and alice.json()["admin"] is False
    admin = edge_as("admin").get("/me").json()
    assert admin["name"] == "admin" and admin["admin"] is True


def test_scripts_reach_the_edge_through_the_hub_proxy(edge_as):
    r = edge_as("bob", via_hub=True).get("/me")
    assert r.status_code == 200
    assert r.json()["name"] == "bob"


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
    r = requests.put(f"{rm.base}/apps/{app}/state", params={"user.name": stack["service_user"], "doAs": "bob"},
                     json={"state": "KILLED"}, timeout=30)
    assert r.status_code == 403
    time.sleep(1)
    assert rm.app(app)["state"] == "RUNNING"


def test_identity_never_comes_from_the_query(stack, edge_as, yarn_app):
    alice_app = yarn_app("alice")
    bob = edge_as("bob")
    wait_listed(edge_as("alice"), alice_app)
    for params in ({"user.name": "alice"}, {"doAs": "alice"}, {"user.name": "admin", "doAs": "admin"}):
        assert bob.get("/me", params=params).json()["name"] == "bob"
        ids = [a["id"] for a in bob.get("/apps", params=params).json()["apps"]]
        assert alice_app not in ids
        assert bob("DELETE", f"/apps/{alice_app}", params=params).status_code == 403
    # a username header is not identity either
    assert bob.get("/me", headers={"X-Forwarded-User": "alice", "REMOTE_USER": "alice"}).json()["name"] == "bob"


@pytest.mark.parametrize("app_id", ["..%2Fx", "application_1_2;rm", "application_1_2%00", "x" * 10_000,
                                    "application_abc_1", "%2e%2e%2f%2e%2e%2fetc"])
def test_bad_application_ids_are_400(edge_as, app_id):
    alice = edge_as("alice")
    for method in ("GET", "DELETE"):
        r = alice(method, f"/apps/{app_id}")
        assert r.status_code == 400, (method, app_id, r.status_code, r.text[:200])
        assert "not a YARN application id" in r.json()["message"]


@pytest.mark.parametrize("params,needle", [
    ({"state": "SLEEPING"}, "unknown state"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "whole number"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"queue": "a b;c"}, "queue"),
    ({"search": "x" * 5000}, "longer than"),
])
def test_bad_filters_are_400(edge_as, params, needle):
    r = edge_as("alice").get("/apps", params=params)
    assert r.status_code == 400
    assert needle in r.json()["message"]


def test_missing_garbage_or_narrow_tokens(stack, edge_as, hub):
    anon = edge_as(None)
    assert anon.get("/me").status_code == 401
    assert anon("DELETE", "/apps/application_1_1").status_code == 401
    garbage = requests.get(f"{stack['edge_url']}/api/v1/apps", headers={"Authorization": "token garbage"}, timeout=30)
    assert garbage.status_code == 401
    assert "not valid" in garbage.json()["message"]
    assert requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": "Basic YWxpY2U6YWxpY2U="},
                        timeout=30).status_code == 401
    # a token in the URL is not accepted (it would end up in logs)
    tok = stack["user_tokens"]["alice"]
    assert requests.get(f"{stack['edge_url']}/api/v1/me", params={"token": tok}, timeout=30).status_code == 401
    # Bearer works like token
    assert requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": f"Bearer {tok}"},
                        timeout=30).json()["name"] == "alice"
    # a valid token without the scope to use yardlab: 403
    narrow = hub("POST", "/users/alice/tokens", json={"note": "narrow", "expires_in": 600,
                                                       "scopes": ["read:users:name!user=alice"]})
    assert narrow.status_code == 201, narrow.text
    r = requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": f"token {narrow.json()['token']}"},
                     timeout=30)
    assert r.status_code == 403
    assert "access:services!service=yardlab-edge" in r.json()["message"]


def test_apps_etag_answers_304(edge_as):
    alice = edge_as("alice")
    first = alice.get("/apps")
    etag = first.headers["ETag"]
    assert alice.get("/apps", headers={"If-None-Match": etag}).status_code == 304
    other_query = alice.get("/apps", params={"state": "RUNNING"}, headers={"If-None-Match": etag})
    assert other_query.status_code == 200


def test_cluster_view(edge_as):
    r = edge_as("guest").get("/cluster")
    assert r.status_code == 200
    c = r.json()
    assert c["memory"]["totalMB"] == 8192
    assert c["vcores"]["total"] == 8
    # users get capacity, use and queues (the sidebar's capacity line, why a job waits); node host
    # names and health reports are for admins
    assert c["nodes"]["active"] == 1 and "list" not in c["nodes"]
    admin = edge_as("admin").get("/cluster")
    assert admin.json()["nodes"]["list"][0]["healthy"] is True
    assert admin.headers["ETag"] != r.headers["ETag"]
    assert edge_as("guest").get("/cluster", headers={"If-None-Match": admin.headers["ETag"]}).status_code == 200
    queues = {q["name"]: q for q in c["queues"]}
    assert set(queues) == {"default", "interactive"}
    assert queues["default"]["capacity"] == 50.0 and queues["default"]["maxMB"] == 8192
    assert c["snapshotAge"] < 10
    assert isinstance(c["appsByState"], dict)
    assert edge_as("guest").get("/cluster", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304


def test_health_needs_no_token_and_shows_no_data(stack):
    r = requests.get(f"{stack['edge_url']}/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_metrics_are_for_admins(stack, edge_as):
    url = f"{stack['edge_url']}/metrics"
    assert requests.get(url, timeout=10).status_code == 401
    assert edge_as("alice").session.get(url, timeout=10).status_code == 403
    r = edge_as("admin").session.get(url, timeout=10)
    assert r.status_code == 200
    for name in ("yardlab_edge_request_duration_seconds", "yardlab_edge_rm_call_duration_seconds",
                 "yardlab_edge_snapshot_age_seconds", "yardlab_edge_kills_total"):
        assert name in r.text


def test_unknown_routes_are_json_404(edge_as):
    r = edge_as("alice").get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["message"]


def test_kill_of_an_unknown_app_is_404(edge_as):
    r = edge_as("alice")("DELETE", "/apps/application_1700000000000_9999")
    assert r.status_code == 404
    assert "no application" in r.json()["message"]


def test_finished_apps_stay_listed(edge_as, spark_submit):
    job = "from pyspark.sql import SparkSession\nSparkSession.builder.getOrCreate().stop()\n"
    done = spark_submit("bob", job, "yl-finished-quick")
    assert done.returncode == 0, done.stderr[-2000:]
    bob = edge_as("bob")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        apps = [a for a in bob.get("/apps", params={"search": "yl-finished-quick"}).json()["apps"]]
        if apps and apps[0]["state"] in FINAL_STATES:
            break
        time.sleep(0.5)
    assert apps and apps[0]["state"] == "FINISHED" and apps[0]["finalStatus"] == "SUCCEEDED"
    assert apps[0]["finishedTime"] >= apps[0]["startedTime"]


def test_no_query_or_cursor_reaches_another_users_list(stack, edge_as, yarn_app):
    """The review's leak: bob polling with cursors and filters of his choosing while alice's sidebar
    polls must never get her list, whatever his key hashes to; forged cursors are refused."""
    alice_app = yarn_app("alice")
    alice, bob = edge_as("alice"), edge_as("bob")
    wait_listed(alice, alice_app)
    alice_etags = set()
    for params in ({}, {"limit": "1"}, {"limit": "100"}):
        r = alice.get("/apps", params=params)
        assert r.status_code == 200 and r.json()["user"] == "alice"
        alice_etags.add(r.headers["ETag"])
    from base64 import urlsafe_b64encode

    def cursor(started, app_id):
        return urlsafe_b64encode(json.dumps([started, app_id]).encode()).decode().rstrip("=")

    tries = [{"limit": "1", "cursor": cursor(2**62, "z")}, {"limit": "1", "cursor": cursor(0, alice_app)},
             {"cursor": cursor(2**62, alice_app)}, {"search": alice_app}, {"limit": "1"}, {}]
    for params in tries:
        for etag in alice_etags:  # presenting alice's ETags gets bob no 304 and no data of hers
            r = bob.get("/apps", params=params, headers={"If-None-Match": etag})
            assert r.status_code == 200, (params, r.status_code, r.text)
            body = r.json()
            assert body["user"] == "bob" and all(a["user"] == "bob" for a in body["apps"]), params
            assert alice_app not in r.text and r.headers["ETag"] not in alice_etags
    for forged in ("%%%", "W10", "bnVsbA", "WzEsMiwzXQ", cursor("x", alice_app), cursor(1, "a" * 100), "A" * 199):
        r = bob.get("/apps", params={"cursor": forged})
        assert r.status_code == 400 and "cursor" in r.json()["message"], (forged, r.text)


def test_hub_users_named_like_service_accounts_are_refused(stack, hub, edge_as):
    """A hub account called like a Hadoop service (or the edge's own account) would act with its
    powers through doAs: the edge refuses it with a sentence."""
    for name in ("hdfs", stack["service_user"]):
        r = hub("POST", f"/users/{name}")
        assert r.status_code in (201, 409), r.text
        try:
            token = hub("POST", f"/users/{name}/tokens", json={"scopes": ["access:services!service=yardlab-edge"]})
            assert token.status_code in (200, 201), token.text
            me = requests.get(f"{stack['edge_url']}/api/v1/me", timeout=30,
                              headers={"Authorization": f"token {token.json()['token']}"})
            assert me.status_code == 403, me.text
            assert "reserved for a Hadoop service account" in me.json()["message"]
            files = requests.get(f"{stack['edge_url']}/api/v1/storage", timeout=30,
                                 headers={"Authorization": f"token {token.json()['token']}"})
            assert files.status_code == 403
        finally:
            hub("DELETE", f"/users/{name}")
