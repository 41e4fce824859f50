"""The single-node Hadoop of the local stack: YARN REST, the NodeManager, queues, WebHDFS doAs."""
from __future__ import annotations

import uuid

import pytest
from hdfs import HdfsError


def test_resourcemanager_rest_answers(rm):
    info = rm.get("/info")["clusterInfo"]
    assert info["state"] == "STARTED"
    assert info["haState"] == "ACTIVE"
    assert info["hadoopVersion"].startswith("3.4.")


def test_nodemanager_is_running_with_its_configured_size(rm):
    nodes = rm.get("/nodes")["nodes"]["node"]
    assert len(nodes) == 1
    node = nodes[0]
    assert node["state"] == "RUNNING"
    assert node["nodeHostName"] in ("127.0.0.1", "localhost")
    assert node["usedMemoryMB"] + node["availMemoryMB"] == 8192


def test_capacity_scheduler_has_default_and_interactive_queues(rm):
    root = rm.get("/scheduler")["scheduler"]["schedulerInfo"]
    assert root["type"] == "capacityScheduler"
    queues = {q["queueName"]: q for q in root["queues"]["queue"]}
    assert set(queues) == {"default", "interactive"}
    for q in queues.values():
        assert q["capacity"] == pytest.approx(50.0)
        assert q["maxCapacity"] == pytest.approx(100.0)
        # several kernels (each its own ApplicationMaster) must fit at once
        assert q["configuredMaxAMResourceLimit"] == pytest.approx(0.8)


def test_webhdfs_write_as_proxied_user_is_owned_by_that_user(stack, hadoop):
    path = f"/user/alice/yl-test-{uuid.uuid4().hex[:8]}.txt"
    alice = hadoop.webhdfs(stack, proxy="alice")
    alice.write(path, b"written through doAs\n")
    try:
        status = alice.status(path)
        assert status["owner"] == "alice"
        assert status["owner"] != stack["service_user"]
        with alice.read(path) as reader:
            assert reader.read() == b"written through doAs\n"
        # the home folder is private: HDFS itself refuses bob
        bob = hadoop.webhdfs(stack, proxy="bob")
        with pytest.raises(HdfsError, match="Permission denied"):
            bob.status(path)
    finally:
        alice.delete(path)
