"""Jobs through the edge on the real stack: own-apps views, filters, ETags and 304s, pages no other
user can reach, the cluster view, finished applications."""
from __future__ import annotations

import json
import time

import pytest

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
