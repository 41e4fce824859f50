"""Kafka on the real stack: the local KRaft broker, the edge's word on it, and a kernel of the shared
"data science" environment on YARN reading a topic with Spark Structured Streaming (the connector's
jars from the environment) and with the plain Python client; shutting the kernel down leaves no YARN
application and no consumer-group member behind.  One kernel serves every check (in file order)."""
from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from conftest import FINAL_STATES
from jupyter_ws import KernelConnection
from test_environments import wait_env

RUN = uuid.uuid4().hex[:8]
STREAM_TOPIC = f"yl-test-stream-{RUN}"
PLAIN_TOPIC = f"yl-test-plain-{RUN}"
#: the streaming query's consumers get group ids with this prefix (Spark's groupIdPrefix option)
SPARK_GROUPS = f"yl-test-spark-{RUN}"
#: the group the plain client in the kernel joins (subscribe(): a real member, until the kernel ends)
KERNEL_GROUP = f"yl-test-kernel-{RUN}"
RECORDS = 25


@pytest.fixture(scope="module")
def admin(stack):
    client = KafkaAdminClient(bootstrap_servers=stack["kafka_bootstrap"], client_id="yardlab-tests")
    client.create_topics([NewTopic(STREAM_TOPIC, 1, 1), NewTopic(PLAIN_TOPIC, 1, 1)])
    yield client
    client.delete_topics([STREAM_TOPIC, PLAIN_TOPIC])
    client.close()


def members(admin, prefix: str) -> dict[str, list]:
    """The members of every consumer group the broker knows whose id starts with ``prefix``."""
    ids = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
    return {gid: desc.get("members") or [] for gid, desc in admin.describe_groups(ids).items()} if ids else {}


@pytest.fixture(scope="module")
def ds_kernel(stack, edge_as, admin):
    """alice's kernel of the shared environment yardlab/data-science (built by the edge at its start)."""
    env = wait_env(edge_as("alice"), "yardlab", "data-science", timeout=600)
    assert env["status"] == "ready", env["error"]
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], env["kernel_name"],
                                username="alice")
    yield kc
    kc.shutdown()


def test_the_broker_answers_and_the_edge_says_kafka_is_up(stack, edge_as, admin):
    assert stack["kafka_bootstrap"] == "127.0.0.1:9092"
    assert len(admin.describe_cluster()["brokers"]) == 1
    deadline = time.monotonic() + 30
    while True:  # the edge asks every 10 s here: the first answer may still be on its way
        kafka = edge_as("alice").get("/cluster").json().get("kafka")
        if kafka and kafka["up"] is not None:
            break
        assert time.monotonic() < deadline, kafka
        time.sleep(1)
    assert kafka == {**kafka, "bootstrap_servers": "127.0.0.1:9092", "up": True, "reason": None, "brokers": 1}


def test_the_environments_maven_packages_load_on_the_driver_and_on_an_executor(ds_kernel):
    # kafka-clients came with the connector (packages.maven); Spark's own jars have no Kafka classes.
    # reflect() is nondeterministic, so Spark evaluates it in the task on the executor, not when planning
    reply = ds_kernel.execute(
        "row = spark.range(1).selectExpr(\"reflect('org.apache.kafka.common.utils.AppInfoParser', 'getVersion')\")"
        ".first()\n"
        "print(row[0], spark._jvm.org.apache.kafka.common.utils.AppInfoParser.getVersion())")
    assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
    assert reply.stdout.split()[-2:] == ["3.9.1", "3.9.1"], reply.stdout


def test_structured_streaming_on_yarn_reads_what_the_test_produces(stack, ds_kernel, admin):
    started = ds_kernel.execute(
        "import os\n"
        "stream = (spark.readStream.format('kafka')\n"
        "          .option('kafka.bootstrap.servers', os.environ['KAFKA_BOOTSTRAP_SERVERS'])\n"
        f"          .option('subscribe', '{STREAM_TOPIC}').option('startingOffsets', 'earliest')\n"
        f"          .option('groupIdPrefix', '{SPARK_GROUPS}').load()\n"
        "          .selectExpr('CAST(value AS STRING) AS v')\n"
        "          .writeStream.format('memory').queryName('yl_stream').trigger(processingTime='1 second').start())\n"
        "print(stream.isActive)")
    assert started.status == "ok", (started.error, started.stderr[-3000:])
    assert started.stdout.strip().endswith("True")
    producer = KafkaProducer(bootstrap_servers=stack["kafka_bootstrap"])
    t0 = time.monotonic()
    for i in range(RECORDS):
        producer.send(STREAM_TOPIC, f"reading {i}".encode())
    producer.flush(10)
    producer.close()
    deadline = t0 + 90
    while True:
        reply = ds_kernel.execute("print(spark.sql('SELECT count(*) FROM yl_stream').first()[0], "
                                  "stream.exception())")
        assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
        count, error = reply.stdout.split(maxsplit=1)
        assert error.strip() == "None", error
        if int(count) >= RECORDS:
            break
        assert time.monotonic() < deadline, f"{count} of {RECORDS} records after 90 s"
        time.sleep(2)
    assert int(count) == RECORDS
    print(f"{RECORDS} records streamed in {time.monotonic() - t0:.1f} s")
    seen = ds_kernel.execute("print(sorted(r.v for r in spark.sql('SELECT v FROM yl_stream').collect())[:2])")
    assert seen.stdout.strip() == "['reading 0', 'reading 1']"
    # the source's consumers assign() their partitions: no group member, now or later
    assert all(not m for m in members(admin, SPARK_GROUPS).values()), members(admin, SPARK_GROUPS)


def test_the_plain_python_client_works_in_the_kernel(stack, ds_kernel, admin):
    reply = ds_kernel.execute(
        "import os, kafka\n"
        "from kafka import KafkaProducer, KafkaConsumer\n"
        "boot = os.environ['KAFKA_BOOTSTRAP_SERVERS']\n"
        "p = KafkaProducer(bootstrap_servers=boot)\n"
        f"p.send('{PLAIN_TOPIC}', b'from the kernel').get(timeout=30); p.close()\n"
        f"consumer = KafkaConsumer('{PLAIN_TOPIC}', bootstrap_servers=boot, group_id='{KERNEL_GROUP}',\n"
        "                         auto_offset_reset='earliest', session_timeout_ms=10000)\n"
        "got = []\n"
        "for _ in range(30):\n"
        "    got += [r.value for rs in consumer.poll(timeout_ms=1000).values() for r in rs]\n"
        "    if got: break\n"
        "print(kafka.__version__, got)", timeout=120)
    assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
    assert reply.stdout.strip().endswith("[b'from the kernel']"), reply.stdout
    outside = KafkaConsumer(PLAIN_TOPIC, bootstrap_servers=stack["kafka_bootstrap"], auto_offset_reset="earliest",
                            consumer_timeout_ms=10000)
    assert [r.value for r in outside][:1] == [b"from the kernel"]
    outside.close()
    # the kernel's consumer is a member of its group while the kernel runs
    assert len(members(admin, KERNEL_GROUP).get(KERNEL_GROUP, [])) == 1


def test_shutting_the_kernel_down_leaves_no_application_and_no_group_member(stack, ds_kernel, admin, rm):
    (app,) = rm.apps_tagged(f"kernel:{ds_kernel.kernel_id}")
    ds_kernel.shutdown()
    assert rm.wait_state(app["id"], FINAL_STATES, timeout=60)["state"] in FINAL_STATES
    assert not [a for a in rm.apps_tagged(f"kernel:{ds_kernel.kernel_id}") if a["state"] not in FINAL_STATES]
    # a member whose process ended is gone once the broker notices (its session timeout, 10 s, at most)
    deadline = time.monotonic() + 30
    while any(members(admin, KERNEL_GROUP).values()) or any(members(admin, SPARK_GROUPS).values()):
        assert time.monotonic() < deadline, (members(admin, KERNEL_GROUP), members(admin, SPARK_GROUPS))
        time.sleep(1)
