"""JVM packages in environments on the real stack: Maven coordinates resolved by Maven from Maven
Central, their jars content-addressed on HDFS and named in the kernelspec's class path; an identical
request reuses them, and coordinates that are not one exact artifact are refused.  That the classes
load on the driver and on an executor is checked in test_kafka.py, in the one kernel of the shared
environment whose Maven packages are Spark's Kafka connector and kafka-clients (a kernel start is
the expensive part of these tests)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_environments import delete_if_there, hdfs_status, state_of_everything, wait_env
from yardlab.edge.environments import kernel_name_for as kn

#: small, not in Spark's jars; its two dependencies (commons-io, commons-codec) are, so they are left out
CSV = "org.apache.commons:commons-csv:1.12.0"
BODY = {"kind": "pyspark", "packages": {"maven": [CSV]},
        "resources": {"driver_memory_mb": 1024, "executor_memory_mb": 1024, "executor_instances": 1}}


def jar_path(jar: dict) -> str:
    return "/" + jar["uri"].split("://", 1)[1].lstrip("/")


@pytest.fixture(scope="module")
def csv_env(stack, edge_as):
    alice = edge_as("alice")
    for name in ("csv", "csv-again"):
        delete_if_there(alice, "alice", name)
    r = alice("POST", "/environments", json={"name": "csv", **BODY})
    assert r.status_code == 202, r.text
    env = wait_env(alice, "alice", "csv", timeout=420)
    assert env["status"] == "ready", (env["error"], alice.get("/environments/alice/csv/log").text[-3000:])
    yield env
    for name in ("csv", "csv-again"):
        delete_if_there(alice, "alice", name)


def test_a_maven_package_is_resolved_once_and_kept_on_hdfs_by_content(stack, csv_env, edge_as):
    log = edge_as("alice").get("/environments/alice/csv/log").text
    assert "copy-dependencies" in log and "commons-csv" in log
    # its dependencies are in Spark's own jars: left out, never a second copy on the class path
    assert "left out (Spark's own jars carry them)" in log and "commons-io:commons-io" in log
    (jar,) = csv_env["jars"]
    assert jar["coordinate"] == CSV and jar["file"] == "commons-csv-1.12.0.jar"
    assert jar["uri"] == f"hdfs:///yardlab/envs/jars/{jar['sha256']}.jar"
    st = hdfs_status(stack, jar_path(jar))
    assert st is not None and st["permission"] == "644" and st["length"] > 10_000
    assert hdfs_status(stack, "/yardlab/envs/jars")["permission"] == "755"
    props = (Path(stack["kernels_dir"]) / kn("alice", "csv") / "spark.properties").read_text()
    assert f"spark.yarn.dist.jars {jar['uri']}\n" in props


def test_an_identical_request_reuses_the_resolution_and_the_jars(stack, csv_env, edge_as):
    alice = edge_as("alice")
    r = alice("POST", "/environments", json={"name": "csv-again", **BODY})
    assert r.status_code == 202, r.text
    again = wait_env(alice, "alice", "csv-again", timeout=60)
    assert again["status"] == "ready", again["error"]
    assert again["jars"] == csv_env["jars"] and again["archive"] == csv_env["archive"]
    assert again["build_seconds"] <= 1.0, again["build_seconds"]
    log = alice.get("/environments/alice/csv-again/log").text
    assert "same request as one resolved" in log and "copy-dependencies" not in log and "uploaded" not in log
    assert alice("DELETE", "/environments/alice/csv-again").status_code == 200
    assert hdfs_status(stack, jar_path(csv_env["jars"][0])) is not None  # csv still ships it


REFUSED = [
    ("url", "https://repo1.maven.org/maven2/org/evil/evil/1.0/evil-1.0.jar"),
    ("path", "/tmp/evil.jar"),
    ("relative path", "../../evil:evil:1.0"),
    ("version range", "org.apache.commons:commons-csv:[1.0,2.0)"),
    ("dynamic version", "org.apache.commons:commons-csv:1.+"),
    ("latest", "org.apache.commons:commons-csv:LATEST"),
    ("option", "-Dmaven.repo.local=/etc"),
]


@pytest.mark.parametrize("what,coordinate", REFUSED, ids=[r[0] for r in REFUSED])
def test_coordinates_that_are_not_one_exact_artifact_are_refused(stack, edge_as, what, coordinate):
    before = state_of_everything(stack)
    r = edge_as("alice")("POST", "/environments", json={"name": "jvm-bad", "packages": {"maven": [CSV, coordinate]}})
    assert r.status_code == 400, (what, r.text)
    assert r.json()["field"] == "packages.maven[1]" and r.json()["message"]
    assert state_of_everything(stack) == before


def test_deleting_the_last_environment_that_ships_a_jar_removes_it(stack, csv_env, edge_as):
    alice = edge_as("alice")
    assert alice("DELETE", "/environments/alice/csv").status_code == 200
    assert hdfs_status(stack, jar_path(csv_env["jars"][0])) is None
