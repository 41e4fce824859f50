"""AppSnapshot logic without a cluster: indexing, per-user ETags, finished window, paging, failures."""
from __future__ import annotations

import asyncio

import pytest

from yardlab.edge import snapshot as snapmod
from yardlab.edge.errors import PublicError
from yardlab.edge.snapshot import AppSnapshot
from yardlab.edge.clients.resourcemanager import ResourceManagerClient, RMUnavailable


def raw_app(n: int, user: str, state: str = "RUNNING", started: int = 0, finished: int = 0, queue: str = "root.default",
            name: str | None = None) -> dict:
    return {"id": f"application_1700000000000_{n:04d}", "user": user, "state": state, "queue": queue,
            "name": name or f"job-{n}", "startedTime": started or 1_700_000_000_000 + n, "finishedTime": finished,
            "finalStatus": "UNDEFINED" if state == "RUNNING" else "SUCCEEDED", "allocatedMB": 1024,
            "applicationTags": "yardlab,user:" + user}


class ScriptedRM(ResourceManagerClient):
    """Answers the snapshot's calls from lists the test sets; counts calls (no network)."""

    def __init__(self) -> None:
        super().__init__()
        self.active: list[dict] = []
        self.finished: list[dict] = []
        self.calls: list[str] = []
        self.down = False

    async def apps(self, states=None, **params):
        self.calls.append("apps")
        if self.down:
            raise RMUnavailable("connection refused")
        if "RUNNING" in (states or ()):
            return list(self.active)
        since = params.get("finishedTimeBegin", 0)
        return [a for a in self.finished if a["finishedTime"] >= since]

    async def metrics(self):
        self.calls.append("metrics")
        return {"totalMB": 8192, "allocatedMB": 1024, "availableMB": 7168, "activeNodes": 1}

    async def nodes(self):
        self.calls.append("nodes")
        return [{"id": "n1", "state": "RUNNING", "usedMemoryMB": 1024, "availMemoryMB": 7168}]

    async def scheduler(self):
        self.calls.append("scheduler")
        return {"type": "capacityScheduler", "queues": {"queue": [
            {"queueName": "default", "queuePath": "root.default", "absoluteCapacity": 50.0,
             "absoluteMaxCapacity": 100.0, "resourcesUsed": {"memory": 1024, "vCores": 1}}]}}


@pytest.fixture
def clock(monkeypatch):
    t = {"ms": 1_700_000_100_000, "mono": 1000.0}
    monkeypatch.setattr(snapmod, "now_ms", lambda: t["ms"])
    monkeypatch.setattr(snapmod, "monotonic", lambda: t["mono"])
    return t


def make(rm: ScriptedRM) -> AppSnapshot:
    return AppSnapshot(poll_interval=2.0, cluster_poll_interval=10.0, finished_window=3600.0, rm=rm)


def poll(snap: AppSnapshot) -> None:
    asyncio.run(snap.poll_once())


def test_per_user_views_and_etags_change_only_for_that_user(clock):
    rm = ScriptedRM()
    rm.active = [raw_app(1, "alice"), raw_app(2, "bob"), raw_app(3, "alice")]
    snap = make(rm)
    poll(snap)
    assert [a["id"][-4:] for a in snap.apps_for("alice")] == ["0003", "0001"]
    alice_tag, bob_tag = snap.etag("alice", "q"), snap.etag("bob", "q")
    rm.active[1] = {**rm.active[1], "progress": 50.0}  # only bob's job moves
    poll(snap)
    assert snap.etag("alice", "q") == alice_tag
    assert snap.etag("bob", "q") != bob_tag
    assert snap.etag("alice", "other query") != alice_tag


def test_finished_apps_are_kept_for_the_window_then_dropped(clock):
    rm = ScriptedRM()
    rm.active = [raw_app(1, "alice")]
    snap = make(rm)
    poll(snap)
    # it finishes: it leaves the active list and shows up in the finished query
    rm.active = []
    rm.finished = [raw_app(1, "alice", state="FINISHED", finished=clock["ms"])]
    clock["ms"] += 2000
    poll(snap)
    assert snap.apps["application_1700000000000_0001"]["state"] == "FINISHED"
    # later polls only ask for recently finished apps; the app stays until the window passes
    clock["ms"] += 1800 * 1000
    poll(snap)
    assert "application_1700000000000_0001" in snap.apps
    clock["ms"] += 1801 * 1000
    poll(snap)
    assert "application_1700000000000_0001" not in snap.apps
    assert snap.apps_for("alice") == []


def test_filters_and_cursor_paging(clock):
    rm = ScriptedRM()
    rm.active = [raw_app(i, "alice", queue="root.interactive" if i % 2 else "root.default",
                         name=f"Spark job {i}") for i in range(1, 8)]
    snap = make(rm)
    poll(snap)
    page1, cursor = snap.query("alice", limit=3)
    page2, cursor2 = snap.query("alice", limit=3, cursor=cursor)
    page3, cursor3 = snap.query("alice", limit=3, cursor=cursor2)
    ids = [a["id"][-1] for a in page1 + page2 + page3]
    assert ids == ["7", "6", "5", "4", "3", "2", "1"] and cursor3 is None
    assert {a["queue"] for a in snap.query("alice", queue="interactive")[0]} == {"root.interactive"}
    assert [a["name"] for a in snap.query("alice", search="JOB 7")[0]] == ["Spark job 7"]
    with pytest.raises(PublicError) as err:
        snap.query("alice", cursor="%%%")
    assert err.value.status == 400


def test_cluster_is_polled_on_its_own_slower_interval(clock):
    rm = ScriptedRM()
    snap = make(rm)
    for _ in range(5):  # 5 polls, 2 s apart: the cluster is read at t=0 and t=10 only
        poll(snap)
        clock["mono"] += 2.0
    assert rm.calls.count("apps") == 10
    assert rm.calls.count("metrics") == 1
    clock["mono"] += 2.0
    poll(snap)
    assert rm.calls.count("metrics") == 2
    assert snap.cluster["queues"][0]["maxMB"] == 8192


def test_rm_failure_makes_reads_refuse_with_a_reason_once_the_snapshot_is_older_than_its_grace(clock):
    rm = ScriptedRM()
    snap = make(rm)
    with pytest.raises(PublicError) as err:
        snap.require_fresh()
    assert err.value.status == 503 and "waiting for the first answer" in err.value.message
    poll(snap)
    snap.require_fresh()
    rm.down = True

    async def one_failed_round():
        snap.poll_interval = 0.01
        snap.max_backoff = 0.01
        snap.start()
        await asyncio.sleep(0.05)
        await snap.stop()

    asyncio.run(one_failed_round())
    snap.require_fresh()  # a snapshot confirmed within the grace is still answered from
    clock["mono"] += snap.stale_grace + 0.5
    with pytest.raises(PublicError) as err:
        snap.require_fresh()
    assert err.value.status == 503 and "unreachable" in err.value.message
    snap.stale_grace = 0  # a site that wants the 503 from the first failed poll
    clock["mono"] = snap.last_success + 0.1
    with pytest.raises(PublicError):
        snap.require_fresh()
    rm.down = False
    poll(snap)
    snap.require_fresh()
