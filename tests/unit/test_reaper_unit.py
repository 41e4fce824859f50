"""The reaper and the ledger without a cluster: a kernel is followed across restarts (an ended
earlier application is history, not death), real deaths and orphans are still acted on."""
from __future__ import annotations

import asyncio

import pytest

from yardlab.edge.audit import AuditLog
from yardlab.edge.clients.gateway import GatewayClient
from yardlab.edge.supervisor import GatewaySupervisor
from yardlab.edge.ledger import KernelLedger, app_order
from yardlab.edge.reaper import Reaper
from yardlab.edge.snapshot import AppSnapshot, app_model

KID = "0b7c3c4e-1111-4222-8333-444455556666"


class FakeEG(GatewayClient):
    """EG as the reaper sees it: the kernels it lists, and the shutdowns it receives."""

    def __init__(self, url, **kw):
        super().__init__(url, **kw)
        self.ready.set()
        self.live: set[str] = set()
        self.deleted: list[str] = []

    async def kernel_ids(self):
        return set(self.live)

    async def shutdown_kernel(self, kernel_id, timeout=120):
        self.deleted.append(kernel_id)
        self.live.discard(kernel_id)
        return 204


class FakeRM:
    def __init__(self) -> None:
        self.killed: list[str] = []

    async def kill(self, app_id, as_user):
        self.killed.append(app_id)
        return "KILLED"


def app(seq: int, state: str, kernel: str = KID, user: str = "alice") -> dict:
    return app_model({"id": f"application_1700000000000_{seq:04d}", "name": kernel, "user": user, "state": state,
                      "startedTime": 1_700_000_000_000 + seq, "applicationTags": f"yardlab,user:{user},kernel:{kernel}"})


@pytest.fixture
def world(tmp_path):
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'edge.sqlite'}")
    ledger.add(id=KID, user="alice", kernelspec="yardlab_pyspark", state="running")
    snap = AppSnapshot()
    snap.last_success = 1.0
    gw = GatewaySupervisor(client_class=FakeEG)
    gw.client.live.add(KID)
    rm = FakeRM()
    reaper = Reaper(rm, snap, ledger, gw, AuditLog(path=str(tmp_path / "audit.jsonl")), grace=0.0)
    dead: list[str] = []
    reaper.on_dead_kernel.append(dead.append)

    class World:
        pass

    w = World()
    w.ledger, w.snap, w.gw, w.rm, w.reaper, w.dead, w.path = ledger, snap, gw, rm, reaper, dead, tmp_path
    w.show = lambda *apps: setattr(snap, "apps", {a["id"]: a for a in apps})
    w.round = lambda: asyncio.run(reaper.round())
    return w


def test_app_ids_order_by_submission():
    assert app_order("application_1700000000000_0010") > app_order("application_1700000000000_0009")
    assert app_order("application_1800000000000_0001") > app_order("application_1700000000000_9999")


def test_a_restarted_kernel_lives_on_its_new_application(world):
    world.show(app(1, "RUNNING"))
    world.round()
    assert world.ledger.get(KID)["app_id"].endswith("_0001")
    # Lab's restart through the edge: EG ends the application and submits the next, same name
    world.ledger.begin_restart(KID)
    world.show(app(1, "KILLED"))
    world.round()  # while the restart is in flight
    world.ledger.end_restart(KID, [app(1, "KILLED"), app(2, "RUNNING")])
    world.show(app(1, "KILLED"), app(2, "RUNNING"))
    for _ in range(3):
        world.round()
    rec = world.ledger.get(KID)
    assert rec["state"] == "running" and rec["app_id"].endswith("_0002")
    assert world.dead == [] and world.gw.client.deleted == [] and world.rm.killed == []
    assert world.ledger.is_history(KID, "application_1700000000000_0001")


def test_a_restart_seen_only_through_yarn_is_followed_too(world):
    """EG restarting on its own: the newer application with the kernel's name replaces the old one,
    whatever order the snapshot lists them in."""
    world.show(app(1, "RUNNING"))
    world.round()
    world.snap.apps = {a["id"]: a for a in (app(2, "RUNNING"), app(1, "KILLED"))}
    world.round()
    assert world.ledger.get(KID)["app_id"].endswith("_0002") and world.dead == []


def test_history_survives_an_edge_restart(world):
    world.show(app(1, "RUNNING"))
    world.round()
    world.ledger.begin_restart(KID)
    # the edge dies mid-restart; a new one loads the ledger
    again = KernelLedger(db_url=f"sqlite:///{world.path / 'edge.sqlite'}")
    assert again.get(KID)["state"] == "running"  # an in-flight restart does not outlive the edge
    assert again.is_history(KID, "application_1700000000000_0001")


def test_the_current_application_ending_is_still_death(world):
    world.show(app(1, "RUNNING"))
    world.round()
    world.ledger.begin_restart(KID)
    world.ledger.end_restart(KID, [app(1, "KILLED"), app(2, "RUNNING")])
    world.show(app(1, "KILLED"), app(2, "KILLED"))  # the new one dies too
    world.round()
    assert world.dead == [KID] and world.gw.client.deleted == [KID]
    assert world.ledger.get(KID)["end_reason"] == "yarn-killed"


def test_an_earlier_application_left_running_is_reaped_without_ending_the_kernel(world):
    world.show(app(1, "RUNNING"))
    world.round()
    world.ledger.begin_restart(KID)
    world.ledger.end_restart(KID, [app(1, "RUNNING"), app(2, "RUNNING")])
    world.show(app(1, "RUNNING"), app(2, "RUNNING"))  # EG failed to end the old one
    world.round()
    assert world.rm.killed == ["application_1700000000000_0001"]
    world.show(app(1, "KILLED"), app(2, "RUNNING"))
    world.round()
    assert world.ledger.get(KID)["state"] == "running" and world.dead == []


def test_someone_elses_application_named_like_the_kernel_is_ignored(world):
    world.show(app(1, "RUNNING"))
    world.round()
    world.show(app(1, "RUNNING"), app(5, "KILLED", user="mallory"))
    world.round()
    assert world.ledger.get(KID)["app_id"].endswith("_0001") and world.dead == []
