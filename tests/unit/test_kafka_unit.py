"""The edge's view of Kafka without a broker: no Kafka configured, and brokers that do not answer."""
from __future__ import annotations

import asyncio
import socket
import threading

from yardlab.edge.jobs import JobService
from yardlab.edge.kafka import KafkaService


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_site_without_kafka_shows_nothing_and_asks_nobody():
    kafka = KafkaService()
    assert not kafka.configured and kafka.view() is None and kafka.etag_part() == ""
    kafka.start()  # no loop needed: nothing is started
    assert not kafka._task.running


def test_unreachable_brokers_are_reported_with_the_reason_and_the_cache_answers_until_the_next_check():
    kafka = KafkaService(bootstrap_servers=f"127.0.0.1:{closed_port()}", timeout=1.0)
    assert kafka.view()["up"] is None  # not asked yet: the capacity line says nothing of Kafka
    asyncio.run(kafka.check())
    view = kafka.view()
    assert view["up"] is False and view["brokers"] == 0 and view["checked"]
    assert view["reason"].startswith(f"no broker answered at {kafka.bootstrap_servers}")
    threads = threading.active_count()
    for _ in range(3):  # kafka-python 3.0 leaves a failed client's network thread running; ours stop theirs
        asyncio.run(kafka.check())
    assert threading.active_count() <= threads
    before = kafka.etag_part()
    kafka.up, kafka.reason, kafka.brokers = True, None, 1
    assert kafka.etag_part() != before  # a change of state changes the cluster view's ETag


def test_the_cluster_view_carries_kafka_only_when_configured():
    class Snap:
        cluster = {"memory": {}, "vcores": {}}
        age = 0.1

        def counts_by_state(self):
            return {}

        def cluster_etag(self):
            return "e"

    jobs = JobService.__new__(JobService)
    jobs.snapshot, jobs.kafka = Snap(), None
    who = type("Who", (), {"admin": False})()
    assert "kafka" not in jobs.cluster_view(who)
    jobs.kafka = KafkaService(bootstrap_servers="127.0.0.1:9092")
    assert jobs.cluster_view(who)["kafka"]["bootstrap_servers"] == "127.0.0.1:9092"
