"""Kernels started through Enterprise Gateway run on YARN in cluster mode as the requesting user."""
from __future__ import annotations

from conftest import FINAL_STATES


def test_pyspark_kernel_runs_spark_on_yarn_and_leaves_nothing_after_shutdown(eg_kernel, rm):
    kc = eg_kernel("yardlab_pyspark", user="alice")
    reply = kc.execute("print(spark.range(1000).count())\nprint(spark.sparkContext.sparkUser())")
    assert reply.status == "ok", reply.error
    assert reply.stdout.split() == ["1000", "alice"]
    assert "Traceback" not in reply.stderr

    apps = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    assert len(apps) == 1
    app = apps[0]
    assert app["user"] == "alice"
    assert app["state"] == "RUNNING"
    assert app["name"] == kc.kernel_id
    tags = set(app["applicationTags"].split(","))
    assert {"yardlab", "user:alice", f"kernel:{kc.kernel_id}"} <= tags

    kc.shutdown()
    ended = rm.wait_state(app["id"], FINAL_STATES, timeout=60)
    assert ended["state"] in FINAL_STATES
    assert not [a for a in rm.apps_tagged(f"kernel:{kc.kernel_id}") if a["state"] not in FINAL_STATES]


def test_python_kernel_runs_in_a_yarn_container_without_executors(eg_kernel, rm):
    kc = eg_kernel("yardlab_python", user="bob")
    reply = kc.execute("import os\nprint(os.environ['CONTAINER_ID'].split('_')[0])\n"
                       "print('spark' in globals())\nprint(sum(range(10)))")
    assert reply.status == "ok", reply.error
    assert reply.stdout.split() == ["container", "False", "45"]
    (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    assert app["user"] == "bob"
    assert app["runningContainers"] == 1  # the ApplicationMaster only: no executors
