"""Spark from the pyspark wheel submits to the stack's YARN in cluster mode as the proxied user."""
from __future__ import annotations

import uuid

JOB = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
assert spark.range(1000).count() == 1000
spark.stop()
"""


def test_spark_submit_cluster_mode_runs_as_alice(spark_submit, rm, stack):
    name = f"yl-submit-{uuid.uuid4().hex[:8]}"
    done = spark_submit("alice", JOB, name)
    assert done.returncode == 0, done.stderr[-3000:]
    apps = [a for a in rm.apps() if a["name"] == name]
    assert len(apps) == 1
    app = apps[0]
    assert app["user"] == "alice"
    assert app["user"] != stack["service_user"]
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")
    assert app["applicationType"] == "SPARK"
    # Spark's jars come from the node (spark.yarn.jars=local:...), never uploaded per submit
    assert "Neither spark.yarn.jars nor spark.yarn.archive is set" not in done.stderr
    assert "__spark_libs__" not in done.stderr
