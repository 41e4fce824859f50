"""What an edge killed outright (SIGKILL, the OOM killer) leaves behind, and how the next edge finishes it,
without a cluster: a kill it was in the middle of (the kill journal) and the build commands it left running.
The stack's own test of the same faults is tests/stack/test_faults_restarts.py."""
from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.db import open_database
from yardlab.edge.environments import EnvironmentService
from yardlab.edge.jobs import JobService
from yardlab.edge.kills import KillJournal
from yardlab.edge.ledger import KernelLedger
from yardlab.edge.osutil import process_start
from yardlab.edge.snapshot import AppSnapshot

from test_environments_unit import _DownStorage, _Snapshot, _site
from test_kills_unit import RUNNING_APP, KillRM
from test_snapshot_unit import raw_app

ALICE, ADMIN = Identity("alice", admin=False), Identity("admin", admin=True)


@pytest.fixture
def edge(tmp_path):
    """A factory of JobServices over one database and audit log: each call is the next edge's start."""
    rm = KillRM()
    rm.active = [raw_app(1, "alice", name="alice-job")]
    engine = open_database(f"sqlite:///{tmp_path / 'edge.sqlite'}")
    audit_path = tmp_path / "audit.jsonl"

    def start() -> JobService:
        snap = AppSnapshot(rm=rm)
        asyncio.run(snap.poll_once())
        return JobService(rm=rm, snapshot=snap, audit=AuditLog(path=str(audit_path)), journal=KillJournal(engine),
                          kill_timeout=0.3, kill_poll=0.01)

    return rm, start, audit_path


def kills_audited(path: Path) -> list[dict]:
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return [{k: x.get(k) for k in ("actor", "outcome", "owner", "resumed")} for x in lines if x["action"] == "kill"]


def test_a_finished_kill_leaves_no_note(edge):
    rm, start, audit = edge
    jobs = start()
    assert asyncio.run(jobs.kill(ALICE, RUNNING_APP))["killed"] is True
    assert jobs.journal.unfinished() == []
    asyncio.run(start().resume_kills())  # the next edge has nothing to finish
    assert rm.kills == [(RUNNING_APP, "alice")]
    assert kills_audited(audit) == [{"actor": "alice", "outcome": "killed", "owner": "alice", "resumed": None}]


def test_a_kill_the_edge_died_in_before_yarn_ended_the_app_is_done_by_the_next_edge_and_audited_once(edge):
    rm, start, audit = edge
    # the first edge noted an admin's kill of alice's application, then died before (or just after) asking YARN
    start().journal.begin(RUNNING_APP, "admin", True, "admin", "alice")
    jobs = start()
    asyncio.run(jobs.resume_kills())
    assert rm.kills == [(RUNNING_APP, "alice")]  # as the owner, as the first edge would have
    assert rm.state[RUNNING_APP] == "KILLED"
    assert kills_audited(audit) == [{"actor": "admin", "outcome": "killed", "owner": "alice", "resumed": True}]
    assert jobs.journal.unfinished() == []
    asyncio.run(start().resume_kills())
    assert len(kills_audited(audit)) == 1


def test_a_kill_yarn_carried_out_after_the_edge_died_is_only_audited(edge):
    rm, start, audit = edge
    start().journal.begin(RUNNING_APP, "alice", False, "owner", "alice")
    rm.state[RUNNING_APP] = "KILLED"  # YARN had the request and ended the application
    asyncio.run(start().resume_kills())
    assert rm.kills == []
    assert kills_audited(audit) == [{"actor": "alice", "outcome": "killed", "owner": "alice", "resumed": True}]


def test_a_resumed_kill_waits_for_the_resourcemanager(edge, monkeypatch):
    rm, start, audit = edge
    start().journal.begin(RUNNING_APP, "alice", False, "owner", "alice")
    rm.down_for = {"app_state"}
    pauses: list[float] = []

    async def pause(seconds):  # the RM comes back during the first pause
        pauses.append(seconds)
        rm.down_for = set()

    jobs = start()
    monkeypatch.setattr("yardlab.edge.jobs.asyncio.sleep", pause)
    asyncio.run(jobs.resume_kills())
    assert pauses[:1] == [1.0]
    assert rm.kills == [(RUNNING_APP, "alice")]
    assert [k["outcome"] for k in kills_audited(audit)] == ["killed"]
    assert jobs.journal.unfinished() == []


def test_a_later_kill_of_the_same_app_keeps_its_own_note(edge, monkeypatch):
    """Two kills of one application side by side: the first to end clears its own note, not the other's."""
    _, start, _ = edge
    journal = start().journal
    times = iter([100.0, 101.0])
    monkeypatch.setattr("yardlab.edge.kills.now", lambda: next(times))
    first = journal.begin(RUNNING_APP, "alice", False, "owner", "alice")
    second = journal.begin(RUNNING_APP, "admin", True, "admin", "alice")
    journal.finish(first)
    assert [n["actor"] for n in journal.unfinished()] == ["admin"]
    journal.finish(second)
    assert journal.unfinished() == []


# -- build commands --------------------------------------------------------------------------------------
def _builder(tmp_path):
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    svc = EnvironmentService(ledger, storage=_DownStorage(), snapshot=_Snapshot(),
                             audit=AuditLog(path=str(tmp_path / "a.jsonl")), kernels_dir=str(tmp_path / "k"),
                             builds_dir=str(tmp_path / "b"), kernel_site=_site(tmp_path).__dict__)
    return svc.builder


def test_build_commands_a_killed_edge_left_running_are_stopped_by_the_next_one(tmp_path):
    # what a build command is: its own session, with a child of its own (uv runs Python workers)
    orphan = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a later process given a noted pid
    try:
        first = _builder(tmp_path)
        first._note_command(orphan.pid)
        (first.commands_dir / str(stranger.pid)).write_text(str(int(process_start(stranger.pid)) - 1))
        work = tmp_path / "b" / "work" / "abc123"
        work.mkdir(parents=True)

        async def next_edge():
            builder = _builder(tmp_path)
            await builder.start()
            await builder.stop()

        asyncio.run(next_edge())
        assert orphan.wait(timeout=5) == -9
        assert stranger.poll() is None  # not the process that was noted: left alone
        assert list((tmp_path / "b" / "commands").iterdir()) == []
        assert list((tmp_path / "b" / "work").iterdir()) == []
    finally:
        for p in (orphan, stranger):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_build_command_that_ends_takes_its_mark_with_it(tmp_path):
    builder = _builder(tmp_path)
    (tmp_path / "w").mkdir()

    async def run():
        await builder._run(("alice", "tab"), ["true"], tmp_path / "w", "a command")

    asyncio.run(run())
    assert list(builder.commands_dir.iterdir()) == []
