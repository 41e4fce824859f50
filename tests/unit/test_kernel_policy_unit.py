"""KernelService policy without a cluster: per-user cap, env allow-list, resource arithmetic."""
from __future__ import annotations

import asyncio

import pytest

from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.clients.gateway import GatewayClient
from yardlab.edge.errors import PublicError
from yardlab.edge.kernels import KernelService
from yardlab.edge.kernelspecs import container_mb
from yardlab.edge.supervisor import GatewaySupervisor
from yardlab.edge.ledger import KernelLedger
from yardlab.edge.snapshot import AppSnapshot, cluster_model

SPEC = {"name": "yardlab_pyspark", "spec": {"metadata": {"yardlab": {"visibility": "builtin",
                                                                    "environment": "builtin"}}}}


class ScriptedEG(GatewayClient):
    """Answers like EG would, from memory; records the start requests it got."""

    def __init__(self, url, **kw):
        super().__init__(url, **kw)
        self.ready.set()
        self.started: list[dict] = []

    async def request(self, method, path, body=None, timeout=30.0):
        if path == "/api/kernelspecs":
            return 200, {"default": "yardlab_pyspark", "kernelspecs": {"yardlab_pyspark": SPEC,
                                                                       "foreign": {"name": "foreign", "spec": {}}}}
        if path == "/api/kernels" and method == "GET":
            return 200, [{"id": k["env"]["KERNEL_ID"]} for k in self.started]
        if path == "/api/kernels" and method == "POST":
            self.started.append(body)
            return 201, {"id": body["env"]["KERNEL_ID"], "name": body["name"]}
        raise AssertionError(path)


def kernel_service(tmp_path, client_class: type[GatewayClient]) -> KernelService:
    """A KernelService on ``client_class`` (an EG from memory), a fresh ledger, and a snapshot of one 8 GB node
    and queue ``default``; the cap is 2 kernels per user."""
    gw = GatewaySupervisor(client_class=client_class)
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'l.sqlite'}")
    snap = AppSnapshot()
    snap.last_success = 1.0
    snap.cluster = cluster_model({"totalMB": 8192, "availableMB": 8192}, [
        {"id": "n1", "state": "RUNNING", "usedMemoryMB": 0, "availMemoryMB": 8192}],
        {"queues": {"queue": [{"queueName": "default", "queuePath": "root.default", "absoluteCapacity": 50,
                               "absoluteMaxCapacity": 100, "resourcesUsed": {"memory": 0}}]}})
    return KernelService(gw, ledger, snap, AuditLog(path=str(tmp_path / "audit.jsonl")), kernels_dir="",
                         max_kernels_per_user=2)


@pytest.fixture
def service(tmp_path):
    return kernel_service(tmp_path, ScriptedEG)


alice = Identity(name="alice", admin=False)


def test_env_is_rebuilt_from_the_allow_list(service):
    asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark", "env": {
        "KERNEL_USERNAME": "alice", "KERNEL_ID": "1" * 36,
        "PATH": "/evil", "KERNEL_WORKING_DIR": "/home/alice/work", "KERNEL_LAUNCH_TIMEOUT": "9999.5"}}))
    env = service.client.started[0]["env"]
    assert set(env) == {"KERNEL_USERNAME", "KERNEL_WORKING_DIR", "KERNEL_LAUNCH_TIMEOUT", "KERNEL_ID"}
    assert env["KERNEL_USERNAME"] == "alice" and env["KERNEL_LAUNCH_TIMEOUT"] == "300"
    assert env["KERNEL_ID"] != "1" * 36  # the edge chooses kernel ids
    rec = service.ledger.get(env["KERNEL_ID"])
    assert rec["user"] == "alice" and rec["notebook"] == "/home/alice/work" and rec["state"] == "running"


def test_per_user_cap_is_429(service):
    for _ in range(2):
        asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    with pytest.raises(PublicError) as err:
        asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert err.value.status == 429 and "limit is 2" in err.value.message
    # another user is not affected
    asyncio.run(service.start_kernel(Identity(name="bob", admin=False), {"name": "yardlab_pyspark"}))


def test_only_yardlab_kernelspecs_are_offered(service):
    specs = asyncio.run(service.kernelspecs(alice))
    assert set(specs["kernelspecs"]) == {"yardlab_pyspark"}
    with pytest.raises(PublicError) as err:
        asyncio.run(service.start_kernel(alice, {"name": "foreign"}))
    assert err.value.status == 404


def test_yarn_container_arithmetic():
    assert container_mb(512, None, 256) == 1024     # 512 + 384 overhead, rounded up
    assert container_mb(3072, None, 256) == 3584    # 3072 + 384
    assert container_mb(10240, None, 256) == 11264  # 10 GB + 10 %
    assert container_mb(1024, "1g", 512) == 2048


def test_ledger_survives_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    KernelLedger(db_url=url).add(id="k1", user="alice", kernelspec="s", need_mb=2048)
    again = KernelLedger(db_url=url)
    assert again.get("k1")["user"] == "alice"
    assert [k["id"] for k in again.live_for("alice")] == ["k1"]
    assert again.for_app({"name": "k1", "user": "bob"}) is None  # a name match alone is not ownership


def test_parallel_starts_cannot_pass_the_cap(service):
    """Starts that overlap in time (EG answers slowly) are counted against the cap together."""
    gw = service.client
    real = gw.request

    async def slow(method, path, body=None, timeout=30.0):
        await asyncio.sleep(0.05)
        return await real(method, path, body, timeout)

    gw.request = slow

    async def many():
        return await asyncio.gather(*(service.start_kernel(alice, {"name": "yardlab_pyspark"}) for _ in range(8)),
                                    return_exceptions=True)

    results = asyncio.run(many())
    started = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, PublicError)]
    assert len(started) == 2 and len(refused) == 6 and all(e.status == 429 for e in refused)
    assert len(service.ledger.live_for("alice")) == 2


@pytest.mark.parametrize("var", ["KERNEL_EXTRA_SPARK_OPTS", "KERNEL_SPARK_CONTEXT_INIT_MODE", "KERNEL_GID",
                                 "KERNEL_whatever"])
def test_unknown_kernel_variables_are_400_naming_them(service, var):
    with pytest.raises(PublicError) as err:
        asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark", "env": {var: "x"}}))
    assert err.value.status == 400 and var in err.value.message
    if "SPARK" in var:
        assert "environment" in err.value.message
    assert service.client.started == [] and service.ledger.live_for("alice") == []


def test_a_kernel_the_edge_ended_is_not_listed_while_eg_finishes_with_it(service):
    started = asyncio.run(service.start_kernel(alice, {"name": "yardlab_pyspark"}))
    assert [k["id"] for k in asyncio.run(service.list_kernels(alice))] == [started["id"]]
    service.ledger.end(started["id"], "yarn-killed")  # the reaper's verdict; EG still lists it
    assert asyncio.run(service.list_kernels(alice)) == []
