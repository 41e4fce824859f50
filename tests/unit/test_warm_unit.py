"""Warm kernels without a cluster: who gets them, the cap, nothing run in them before, and when the pool
gives them back (edge/warm.py, KernelService.take_warm/_launch)."""
from __future__ import annotations

import asyncio
import json
import os
import time
import types

import pytest
from traitlets import TraitError

from yardlab.edge.auth import Identity, TokenIdentifier
from yardlab.edge.clients.gateway import GatewayClient
from yardlab.edge.clock import now
from yardlab.edge.errors import PublicError
from yardlab.edge.warm import WarmPool

from test_kernel_policy_unit import kernel_service

SPEC = {"name": "yardlab_pyspark", "spec": {"metadata": {"yardlab": {"visibility": "builtin",
                                                                    "environment": "builtin"}}}}
PY = {"name": "yardlab_python", "spec": {"metadata": {"yardlab": {"visibility": "builtin",
                                                                 "environment": "builtin"}}}}
alice = Identity(name="alice", admin=False)
bob = Identity(name="bob", admin=False)


class ScriptedEG(GatewayClient):
    """EG from memory: starts, lists, shows and shuts down kernels; records what it was asked."""

    def __init__(self, url, **kw):
        super().__init__(url, **kw)
        self.ready.set()
        self.live: dict[str, dict] = {}
        self.started: list[dict] = []
        self.shut: list[str] = []

    async def request(self, method, path, body=None, timeout=30.0):
        if path == "/api/kernelspecs":
            return 200, {"default": "yardlab_pyspark", "kernelspecs": {"yardlab_pyspark": SPEC, "yardlab_python": PY}}
        if path == "/api/kernels" and method == "GET":
            return 200, [{"id": k} for k in self.live]
        if path == "/api/kernels" and method == "POST":
            self.started.append(body)
            kid = body["env"]["KERNEL_ID"]
            self.live[kid] = {"id": kid, "name": body["name"], "execution_state": "idle", "connections": 0,
                                 "user": body["env"]["KERNEL_USERNAME"]}
            return 201, dict(self.live[kid])
        kid = path.rsplit("/", 1)[-1]
        if method == "GET":
            return (200, dict(self.live[kid])) if kid in self.live else (404, {"message": "no such kernel"})
        if method == "DELETE":
            self.shut.append(kid)
            return (204, None) if self.live.pop(kid, None) else (404, None)
        raise AssertionError((method, path))


@pytest.fixture
def service(tmp_path):
    return kernel_service(tmp_path, ScriptedEG)


@pytest.fixture
def pool(service):
    p = WarmPool(service, TokenIdentifier(hub_api_url="http://127.0.0.1:9/hub/api"),
                 kernelspecs={"yardlab_pyspark": {"count": 1, "idle_seconds": 60}}, warm_up_code="",
                 hub_interval=3600)
    p.active = {"alice": (), "bob": ()}
    p.active_read = time.monotonic()  # as read from the hub just now
    return p


def warm_for(service, who=alice, spec="yardlab_pyspark") -> dict:
    """A warm kernel ready to hand out (started, and promoted as the pool does once its driver runs)."""
    rec = asyncio.run(service.start_warm(who, spec, {}))
    assert rec["state"] == "warming"  # EG answered; Spark may still be starting
    return service.ledger.update(rec["id"], state="warm")


def app_for(rec: dict, state: str, containers: int = 1, age: float = 30) -> dict:
    return {"id": f"application_1_{abs(hash(rec['id'])) % 10000:04d}", "name": rec["id"], "user": rec["user"],
            "queue": "root.default", "state": state, "runningContainers": containers,
            "startedTime": int((now() - age) * 1000)}


def test_a_warm_kernel_goes_to_its_users_next_start_once(service):
    warm = warm_for(service)
    assert warm["state"] == "warm" and warm["user"] == "alice"
    env = service.client.started[0]["env"]
    assert env["KERNEL_USERNAME"] == "alice" and set(env) == {"KERNEL_USERNAME", "KERNEL_LAUNCH_TIMEOUT", "KERNEL_ID"}
    model = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark",
                                                     "env": {"KERNEL_WORKING_DIR": "work"}}))
    assert model["id"] == warm["id"] and len(service.client.started) == 1  # nothing new was launched
    rec = service.ledger.get(warm["id"])
    assert rec["state"] == "running" and rec["notebook"] == "work"
    # used once: the next start launches a new kernel
    again = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert again["id"] != warm["id"] and len(service.client.started) == 2


def test_bob_never_gets_alices_warm_kernel(service):
    warm = warm_for(service)
    model = asyncio.run(service.start_kernel(bob, {"name": "yardlab_pyspark"}))
    assert model["id"] != warm["id"]
    assert service.client.started[-1]["env"]["KERNEL_USERNAME"] == "bob"
    assert service.ledger.get(warm["id"])["state"] == "warm"
    for call in (lambda: service.check_kernel(bob, warm["id"]), lambda: service.may_connect(bob, warm["id"])):
        with pytest.raises(PublicError) as err:
            call()
        assert err.value.status == 403
    # a start for another kernelspec does not get it either
    other = asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))
    assert other["id"] != warm["id"] and service.ledger.get(warm["id"])["state"] == "warm"


def test_nobody_connects_to_runs_code_in_or_restarts_a_warm_kernel(service):
    warm = warm_for(service)
    for call in (lambda: service.may_connect(alice, warm["id"]),
                 lambda: asyncio.run(service.kernel_action(alice, warm["id"], "interrupt")),
                 lambda: asyncio.run(service.kernel_action(alice, warm["id"], "restart")),
                 lambda: service.set_session(alice, warm["id"], {"type": "notebook", "path": "a.ipynb"}),
                 lambda: asyncio.run(service.kernel(alice, warm["id"]))):
        with pytest.raises(PublicError) as err:
            call()
        assert err.value.status == 409 and "warm kernel" in err.value.message
    assert asyncio.run(service.list_kernels(alice)) == []  # Lab's kernel list does not offer it
    # its owner may give it back
    assert asyncio.run(service.shutdown_kernel(alice, warm["id"])) == 204
    assert service.ledger.get(warm["id"])["end_reason"] == "warm-shutdown"


def test_the_cap_counts_warm_kernels_and_a_warm_one_makes_room(service):
    warm = warm_for(service)
    asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))  # 1 running + 1 warm = the cap
    with pytest.raises(PublicError) as err:
        warm_for(service)  # the pool never passes the cap
    assert err.value.status == 429
    # a start of another kernelspec at the cap: the warm kernel is given back to make room
    asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))
    assert service.ledger.get(warm["id"])["end_reason"] == "warm-made-room"
    with pytest.raises(PublicError) as err:
        asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))
    assert err.value.status == 429


def test_two_starts_at_once_cannot_both_get_the_warm_kernel(service):
    warm = warm_for(service)
    real = service.client.request

    async def slow(method, path, body=None, timeout=30.0):
        await asyncio.sleep(0.02)
        return await real(method, path, body, timeout)

    service.client.request = slow

    async def both():
        return await asyncio.gather(*(service.start_kernel(alice, {"name": "yardlab_pyspark"}) for _ in range(2)))

    ids = [m["id"] for m in asyncio.run(both())]
    assert ids.count(warm["id"]) == 1 and len(set(ids)) == 2


def test_a_warm_kernel_eg_lost_is_not_handed_out(service):
    warm = warm_for(service)
    service.client.live.pop(warm["id"])  # EG forgot it (restarted)
    model = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert model["id"] != warm["id"]
    assert service.ledger.get(warm["id"])["end_reason"] == "warm-lost"


def test_the_pool_fills_expires_and_gives_back(service, pool):
    async def run():
        await pool.round()
        await asyncio.gather(*pool.starting.values())
        # their drivers run: the next round warms them up and offers them
        service.snapshot.apps = {a["id"]: a for a in (app_for(r, "RUNNING") for r in pool.warm_records())}
        await pool.round()
        await asyncio.gather(*pool.warming_up.values(), *pool.starting.values())
        return [r for r in pool.warm_records() if r["state"] == "warm"]

    (first,) = asyncio.run(run())  # max_starting 1: one at a time
    assert first["user"] == "alice"
    recs = asyncio.run(run())
    assert sorted(r["user"] for r in recs) == ["alice", "bob"]
    assert len(asyncio.run(run())) == 2 and len(pool.warm_records()) == 2  # one each, as the rule asks
    # older than its idle time: expired (and shut down in EG)
    pool.ready_at[first["id"]] -= 61
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(first["id"])["end_reason"] == "warm-expired" and first["id"] in service.client.shut
    # bob's Lab server stopped: his warm kernel goes
    bobs = next(r for r in pool.warm_records() if r["user"] == "bob")
    pool.active = {"alice": ()}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(bobs["id"])["end_reason"] == "warm-released"
    # a hand-out is counted for the Overview
    assert pool.counts["handed_out"] == 0
    (alices,) = asyncio.run(run())  # her expired one's successor
    model = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert model["id"] == alices["id"] and pool.counts["handed_out"] == 1


def test_a_warming_kernel_is_offered_only_once_its_driver_runs(service, pool):
    rec = asyncio.run(service.start_warm(alice, "yardlab_pyspark", {}))
    # EG answered but YARN has not run the driver yet: not offered, and a start gets a cold kernel
    service.snapshot.apps = {"a": app_for(rec, "ACCEPTED", containers=1, age=2)}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(rec["id"])["state"] == "warming"
    # waiting without even its ApplicationMaster's container: it would make others wait; given back
    service.snapshot.apps = {"a": app_for(rec, "ACCEPTED", containers=0, age=30)}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(rec["id"])["end_reason"] == "warm-given-back"
    # a start whose application failed is not offered either
    rec = asyncio.run(service.start_warm(alice, "yardlab_pyspark", {}))
    service.snapshot.apps = {"a": app_for(rec, "FAILED")}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(rec["id"])["end_reason"] == "warm-lost"


def test_someone_waiting_in_the_queue_gets_the_warm_kernels_room(service, pool):
    warm = warm_for(service)
    started = int((now() - 30) * 1000)
    service.snapshot.apps = {"application_1_0009": {
        "id": "application_1_0009", "name": "theirs", "user": "bob", "queue": "root.default", "state": "ACCEPTED",
        "runningContainers": 0, "startedTime": started}}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(warm["id"])["end_reason"] == "warm-given-back"
    # and no warm kernel starts into that queue while someone waits there
    with pytest.raises(PublicError) as err:
        asyncio.run(service.start_warm(alice, "yardlab_pyspark", pool.pressure()))
    assert err.value.status == 409


def test_an_application_that_is_only_starting_is_not_pressure(service, pool):
    warm = warm_for(service)
    # ACCEPTED with its ApplicationMaster's container running: a driver starting, not someone waiting
    service.snapshot.apps = {"application_1_0009": {
        "id": "application_1_0009", "name": "theirs", "user": "bob", "queue": "root.default", "state": "ACCEPTED",
        "runningContainers": 1, "startedTime": int((now() - 30) * 1000)}}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(warm["id"])["state"] == "warm"


def test_group_rules(pool):
    pool.groups = {"students": {"yardlab_pyspark": {"count": 0}},
                   "staff": {"yardlab_pyspark": {"count": 2, "idle_seconds": 1200}}}
    assert pool.rules_for(()) == {"yardlab_pyspark": {"count": 1, "idle_seconds": 60.0}}
    assert pool.rules_for(("students",)) == {}
    assert pool.rules_for(("students", "staff")) == {"yardlab_pyspark": {"count": 2, "idle_seconds": 1200.0}}


@pytest.mark.parametrize("rule", [{"idle_seconds": 60}, {"count": -1}, {"count": 5}, {"count": "1"}, {"count": True}, {"cnt": 1},
                                  {"count": 1, "idle_seconds": 1}, {"count": 1, "idle_seconds": float("nan")}, []])
def test_bad_rules_are_refused_with_a_sentence(pool, rule):
    with pytest.raises(TraitError) as err:
        pool.kernelspecs = {"yardlab_pyspark": rule}
    assert "WarmPool.kernelspecs['yardlab_pyspark']" in str(err.value)


def test_a_kernel_shut_down_while_it_starts_does_not_run_on_outside_the_ledger(service):
    """A user's DELETE while EG still launches (EG answers 404, the ledger ends it): when EG's start returns,
    the edge shuts the kernel down instead of leaving it running uncounted."""
    real = service.client.request

    async def scenario():
        gate = asyncio.Event()

        async def slow(method, path, body=None, timeout=30.0):
            if path == "/api/kernels" and method == "POST":
                await gate.wait()
            return await real(method, path, body, timeout)

        service.client.request = slow
        start = asyncio.ensure_future(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
        await asyncio.sleep(0.01)
        (rec,) = service.ledger.live_for("alice")
        assert await service.shutdown_kernel(alice, rec["id"]) == 404  # EG does not have it yet
        gate.set()
        with pytest.raises(PublicError) as err:
            await start
        return rec, err.value

    rec, err = asyncio.run(scenario())
    assert err.status == 409 and "shut down while it started" in err.message
    assert rec["id"] in service.client.shut and rec["id"] not in service.client.live
    assert service.ledger.live_for("alice") == []


def test_a_warm_kernel_still_starting_makes_room_at_the_cap(service):
    rec = asyncio.run(service.start_warm(alice, "yardlab_pyspark", {}))  # warming
    asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))  # 1 running + 1 warming = the cap
    asyncio.run(service.start_kernel(alice, {"name": "yardlab_python"}))
    assert service.ledger.get(rec["id"])["end_reason"] == "warm-made-room"


def test_someone_waiting_in_another_queue_gets_the_oldest_warm_kernel(service, pool):
    warm = warm_for(service)
    service.snapshot.apps = {"application_1_0009": {
        "id": "application_1_0009", "name": "theirs", "user": "bob", "queue": "root.other", "state": "ACCEPTED",
        "runningContainers": 0, "startedTime": int((now() - 30) * 1000)}}
    asyncio.run(pool.give_back(set(service.client.live)))
    assert service.ledger.get(warm["id"])["end_reason"] == "warm-given-back"
    assert len(service.client.started) == 1
    pool.fill()  # and nothing new starts while anyone waits
    assert pool.starting == {}


def test_a_failed_warm_up_is_not_offered(service, pool):
    rec = asyncio.run(service.start_warm(alice, "yardlab_pyspark", {}))
    service.snapshot.apps = {"a": app_for(rec, "RUNNING")}
    pool.warm_up_code = "spark.range(1).count()"

    async def failing(kernel_id, code, timeout=180):
        return "timed out"

    service.warm_up = failing

    async def run():
        await pool.give_back(set(service.client.live))
        await asyncio.gather(*pool.warming_up.values())
        await asyncio.sleep(0)

    asyncio.run(run())
    assert service.ledger.get(rec["id"])["end_reason"] == "warm-up-failed"
    assert "timed out" in pool.failed[("alice", "yardlab_pyspark")][1]


def test_a_warm_kernel_of_a_kernelspec_written_again_is_not_handed_out(service, tmp_path):
    spec_dir = tmp_path / "specs" / "yardlab_pyspark"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text("{}")
    service.kernels_dir = str(tmp_path / "specs")
    warm = warm_for(service)
    assert not service.spec_changed_since("yardlab_pyspark", warm["created"])
    later = warm["created"] + 5
    os.utime(spec_dir / "kernel.json", (later, later))  # an environment rebuilt: its kernelspec written again
    model = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert model["id"] != warm["id"] and service.ledger.get(warm["id"])["end_reason"] == "warm-outdated"


class FakeResponse:
    def __init__(self, body):
        self.body = json.dumps(body).encode()


def test_the_pool_never_acts_as_a_reserved_account(pool):
    pool.identifier.reserved_names = ["hdfs", "yarn"]
    pages = [{"items": [{"name": "alice", "groups": ["g"]}, {"name": "HDFS"}, {"name": "Yarn"}],
              "_pagination": {"next": {"offset": 3}}},
             {"items": [{"name": "bob"}], "_pagination": {"next": {"offset": 3}}}]  # a next that does not advance

    async def fetch(request):
        return FakeResponse(pages.pop(0))

    pool.http = types.SimpleNamespace(fetch=fetch)  # not the shared AsyncHTTPClient
    assert asyncio.run(pool.read_active()) == {"alice": ("g",), "bob": ()}
