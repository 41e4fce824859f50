"""Spark from the pyspark wheel submits to the stack's YARN in cluster mode as the proxied user."""
from __future__ import annotations

import json
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


BASE_ON_EXECUTORS = """
import json, os, sys
import pandas as pd
from pyspark.sql.functions import pandas_udf

ids = spark.range(4)  # first use of `spark` waits for the session (a "string" type is parsed by it)

@pandas_udf("string")
def where(ids: pd.Series) -> pd.Series:
    import os, sys, pyarrow
    return ids.map(lambda _: f"{sys.executable}|{os.path.realpath('env')}|{pyarrow.__version__}")

rows = ids.select(where("id").alias("w")).distinct().collect()
pdf = spark.range(5).selectExpr("id", "id * 2 AS twice").toPandas()
print(json.dumps({"executors": [r.w for r in rows], "driver": sys.executable, "type": type(pdf).__module__,
                  "sum": int(pdf["twice"].sum()), "pandas": pd.__version__}))
"""


def test_the_default_pyspark_kernel_carries_the_base_on_driver_and_executors(stack, edge_kernel):
    """A pandas UDF runs on an executor and toPandas() gives a pandas DataFrame in "PySpark on YARN": both
    sides run the base environment's archive, which the NodeManager cached as a PUBLIC resource."""
    kc = edge_kernel("bob")
    reply = kc.execute(BASE_ON_EXECUTORS, timeout=240)
    assert reply.status == "ok", reply.error + reply.stderr[-2000:]
    out = json.loads(reply.stdout.strip().splitlines()[-1])
    assert out["type"].startswith("pandas") and out["sum"] == 20, out
    assert out["driver"].endswith("/env/bin/python"), out  # the archive, not the edge's Python
    (executor,) = out["executors"]
    python, env, _pyarrow = executor.split("|")
    assert python.endswith("/env/bin/python"), executor
    # PUBLIC: unpacked once under the NodeManager's filecache/, not under usercache/bob/
    assert "/filecache/" in env and "/usercache/" not in env, env


def test_the_default_python_kernel_imports_pandas_and_matplotlib(stack, edge_kernel):
    kc = edge_kernel("bob", "yardlab_python")
    reply = kc.execute("import io, pandas, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                       "plt.plot(pandas.Series([1, 3, 2]))\nbuf = io.BytesIO()\nplt.savefig(buf, format='png')\n"
                       "print(buf.getvalue()[:4] == b'\\x89PNG', pandas.__version__)", timeout=180)
    assert reply.status == "ok", reply.error + reply.stderr[-2000:]
    assert reply.stdout.split()[0] == "True", reply.stdout
