"""JobService.kill without a cluster: every outcome a caller can get, and what YARN was asked to do.

The owner kills (as themselves), another user is refused before YARN is asked anything, an admin
kills as the owner (doAs the owner, never as the admin), an ended application is 409, an unknown id
404, an unreachable ResourceManager 503, a kill the ResourceManager refuses 502, a kill YARN never
confirms 504. A scripted ResourceManagerClient answers; the audit log is the real one.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.clients.resourcemanager import RMError, RMUnavailable
from yardlab.edge.errors import PublicError
from yardlab.edge.jobs import JobService
from yardlab.edge.snapshot import AppSnapshot

from test_snapshot_unit import ScriptedRM, raw_app

ALICE, BOB = Identity("alice", admin=False), Identity("bob", admin=False)
ADMIN = Identity("admin", admin=True)
RUNNING_APP = raw_app(1, "alice", name="alice-job")["id"]
ENDED_APP = raw_app(2, "alice", state="FINISHED")["id"]
UNKNOWN_APP = "application_1700000000000_9999"


def make_jobs(rm: ScriptedRM, snapshot: AppSnapshot, audit: AuditLog, **settings) -> JobService:
    """The one place that knows how JobService is built (its constructor is moving to traits):
    the clients it acts through, and settings such as kill_timeout and kill_poll."""
    return JobService(rm=rm, snapshot=snapshot, audit=audit, **settings)


class KillRM(ScriptedRM):
    """The scripted RM, plus what a kill uses: one application, its state, the kill (recorded with the
    user it was done as). ``state`` is what YARN says now; failures are switched on per call."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, str] = {}
        self.kills: list[tuple[str, str]] = []
        self.down_for: set[str] = set()  # calls that find no ResourceManager: "app_state", "kill"
        self.refuse_kill = False
        self.kill_ends_app = True  # False: YARN accepts the kill but the application keeps running

    def _known(self, app_id: str) -> dict:
        for a in self.active + self.finished:
            if a["id"] == app_id:
                return {**a, "state": self.state.get(app_id, a["state"])}
        raise RMError(404, f"application {app_id} not found")

    async def app(self, app_id):
        return self._known(app_id)

    async def app_state(self, app_id):
        self.calls.append("app_state")
        if "app_state" in self.down_for:
            raise RMUnavailable("connection refused")
        return self._known(app_id)["state"]

    async def kill(self, app_id, as_user):
        self.calls.append("kill")
        if "kill" in self.down_for:
            raise RMUnavailable("connection refused")
        if self.refuse_kill:
            raise RMError(403, f"user {as_user} may not kill {app_id}")
        self.kills.append((app_id, as_user))
        if self.kill_ends_app:
            self.state[app_id] = "KILLED"
        return "ACCEPTED"


@pytest.fixture
def world(tmp_path):
    """A snapshot that knows alice's running and ended applications, and a JobService over it that
    gives up on an unconfirmed kill quickly."""
    rm = KillRM()
    rm.active = [raw_app(1, "alice", name="alice-job"), raw_app(3, "bob")]
    rm.finished = [raw_app(2, "alice", state="FINISHED", finished=1_700_000_050_000)]
    snap = AppSnapshot(rm=rm)
    asyncio.run(snap.poll_once())
    audit_path = tmp_path / "audit.jsonl"
    jobs = make_jobs(rm, snap, AuditLog(path=str(audit_path)), kill_timeout=0.3, kill_poll=0.01)
    return rm, jobs, audit_path


def kill(jobs: JobService, who: Identity, app_id: str) -> dict:
    return asyncio.run(jobs.kill(who, app_id))


def refused(jobs: JobService, who: Identity, app_id: str) -> PublicError:
    with pytest.raises(PublicError) as e:
        kill(jobs, who, app_id)
    return e.value


def audited(path: Path) -> list[dict]:
    """The kill lines of the audit log: who, what outcome, as which kind of actor."""
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return [{"actor": x["actor"], "outcome": x["outcome"], "actor_kind": x["actor_kind"]}
            for x in lines if x.get("action") == "kill"]


def test_the_owner_kills_their_own_application_as_themselves(world):
    rm, jobs, audit = world
    done = kill(jobs, ALICE, RUNNING_APP)
    assert done["killed"] is True and done["state"] == "KILLED"
    assert done["user"] == "alice" and done["killedBy"] == "alice"
    assert rm.kills == [(RUNNING_APP, "alice")]
    assert audited(audit) == [{"actor": "alice", "outcome": "killed", "actor_kind": "owner"}]


def test_another_user_is_refused_before_yarn_is_asked_anything(world):
    rm, jobs, audit = world
    rm.calls.clear()
    e = refused(jobs, BOB, RUNNING_APP)
    assert e.status == 403 and "another user" in e.message
    assert rm.calls == [] and rm.kills == []
    assert audited(audit) == [{"actor": "bob", "outcome": "denied", "actor_kind": "other"}]


def test_an_admin_kills_as_the_owner_not_as_themselves(world):
    rm, jobs, audit = world
    done = kill(jobs, ADMIN, RUNNING_APP)
    assert done["killed"] is True and done["user"] == "alice" and done["killedBy"] == "admin"
    assert rm.kills == [(RUNNING_APP, "alice")]  # doAs the owner: YARN's ACLs see alice
    assert audited(audit) == [{"actor": "admin", "outcome": "killed", "actor_kind": "admin"}]


def test_an_ended_application_is_409_and_nothing_is_killed(world):
    rm, jobs, audit = world
    e = refused(jobs, ALICE, ENDED_APP)
    assert e.status == 409 and "FINISHED" in e.message
    assert rm.kills == []
    assert audited(audit) == [{"actor": "alice", "outcome": "already-finished", "actor_kind": "owner"}]


def test_an_application_that_ended_since_the_last_poll_is_409_too(world):
    """The snapshot may be a poll behind: YARN's own state decides, not the snapshot's."""
    rm, jobs, _ = world
    rm.state[RUNNING_APP] = "FAILED"
    e = refused(jobs, ADMIN, RUNNING_APP)
    assert e.status == 409 and "FAILED" in e.message
    assert rm.kills == []


def test_an_unknown_id_is_404_and_nothing_is_killed(world):
    rm, jobs, _ = world
    e = refused(jobs, ADMIN, UNKNOWN_APP)
    assert e.status == 404 and UNKNOWN_APP in e.message
    assert rm.kills == []


@pytest.mark.parametrize("call", ["app_state", "kill"])
def test_an_unreachable_resourcemanager_is_503(world, call):
    rm, jobs, audit = world
    rm.down_for = {call}
    e = refused(jobs, ALICE, RUNNING_APP)
    assert e.status == 503 and "unreachable" in e.message
    assert rm.kills == []
    assert audited(audit) == [{"actor": "alice", "outcome": "rm-unavailable", "actor_kind": "owner"}]


def test_a_kill_the_resourcemanager_refuses_is_502_with_its_reason(world):
    rm, jobs, audit = world
    rm.refuse_kill = True
    e = refused(jobs, ADMIN, RUNNING_APP)
    assert e.status == 502 and "may not kill" in e.message
    assert rm.state.get(RUNNING_APP) is None  # still running
    assert audited(audit) == [{"actor": "admin", "outcome": "refused", "actor_kind": "admin"}]


def test_a_kill_yarn_never_confirms_is_504_after_the_timeout(world):
    rm, jobs, audit = world
    rm.kill_ends_app = False
    e = refused(jobs, ALICE, RUNNING_APP)
    assert e.status == 504 and "RUNNING" in e.message
    assert rm.kills == [(RUNNING_APP, "alice")]
    assert audited(audit) == [{"actor": "alice", "outcome": "timeout", "actor_kind": "owner"}]
