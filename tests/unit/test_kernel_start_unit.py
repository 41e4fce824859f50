"""The kernel start waterfall without a cluster: process start times from /proc text, the launcher's
marks in YARDLAB_START_MARKS (never failing a start), run.sh passing its start time, and the bench's
phase arithmetic, parsing and summaries."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import types
from pathlib import Path

import pytest

from yardlab.edge import kernelspecs
from yardlab.edge.kernel_launcher import yardlab_kernel as yk

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_kernel_start", ROOT / "bench" / "bench_kernel_start.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _bench()


def stat_line(pid: int, comm: str, ppid: int, starttime: int) -> str:
    # fields 3.. after "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize ...
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(starttime), "123456", "789"]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


# -- /proc --------------------------------------------------------------------------------------------------
def test_proc_start_time_from_ticks_and_uptime():
    stat = stat_line(4242, "java", 4200, starttime=150_000)  # 1500 s after boot at 100 ticks/s
    # now is 2000 s after boot: the process started 500 s ago
    assert yk.proc_start_time(stat, "2000.00 3500.12\n", now=1_800_000_000.0, clk_tck=100) == pytest.approx(
        1_800_000_000.0 - 500.0)


def test_proc_comm_with_spaces_and_parentheses():
    stat = stat_line(7, "we ird) (name", 3, starttime=250)
    assert yk.proc_parent(stat) == ("we ird) (name", 3)
    assert yk.proc_start_time(stat, "10.0 0", now=100.0, clk_tck=100) == pytest.approx(92.5)


def test_process_marks_of_this_process_are_plausible():
    procs = yk.process_marks(depth=2)
    assert procs and procs[0]["pid"] == os.getpid()
    # this test process started before now and not before the machine booted
    assert time.time() - 7 * 86400 * 52 < procs[0]["start"] <= time.time() + 0.05
    if len(procs) > 1:
        assert procs[1]["pid"] == os.getppid()
        assert procs[1]["start"] <= procs[0]["start"] + 0.02


def test_proc_start_time_agrees_with_a_child_we_start():
    import subprocess

    before = time.time()
    child = subprocess.Popen(["sleep", "5"])
    try:
        procs = yk.process_marks(child.pid, depth=1)
        assert procs[0]["comm"] == "sleep"
        assert abs(procs[0]["start"] - before) < 0.5
    finally:
        child.kill()
        child.wait()


# -- marks -----------------------------------------------------------------------------------------------------
@pytest.fixture
def clean_marks(monkeypatch):
    monkeypatch.setattr(yk, "_marks", {})
    monkeypatch.delenv(yk.MARKS_ENV, raising=False)
    monkeypatch.delenv("YARDLAB_T_RUNSH", raising=False)
    return yk._marks


def test_marks_are_json_in_the_environment(clean_marks):
    yk.mark("listener", 1_800_000_010.12345)
    yk.mark("kernel_init")
    marks = json.loads(os.environ[yk.MARKS_ENV])
    assert marks["listener"] == 1_800_000_010.123
    assert abs(marks["kernel_init"] - time.time()) < 5


def test_first_marks_take_run_sh_and_the_processes(clean_marks, monkeypatch):
    monkeypatch.setenv("YARDLAB_T_RUNSH", "1800000000.123456789")
    fake = [{"pid": 3, "comm": "python", "start": 1_800_000_005.0},
            {"pid": 2, "comm": "java", "start": 1_800_000_003.0},
            {"pid": 1, "comm": "bash", "start": 1_800_000_002.5}]
    monkeypatch.setattr(yk, "process_marks", lambda *a, **k: fake)
    yk.first_marks()
    marks = json.loads(os.environ[yk.MARKS_ENV])
    assert marks["runsh"] == 1_800_000_000.123
    assert marks["python"] == 1_800_000_005.0 and marks["jvm"] == 1_800_000_003.0
    assert marks["launcher"] == round(yk.LAUNCHER_T0, 3)
    assert marks["procs"] == fake


def test_marks_never_fail_a_start(clean_marks, monkeypatch):
    monkeypatch.setenv("YARDLAB_T_RUNSH", "not a number")

    def broken(*_a, **_k):
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(yk, "process_marks", broken)
    yk.first_marks()  # no exception
    monkeypatch.setattr(yk.json, "dumps", broken)
    yk.mark("listener")  # no exception


def test_watch_spark_marks_when_the_session_thread_is_done(clean_marks):
    release = threading.Event()

    class Placeholder:
        def __init__(self, thread):
            self._init_thread = thread

    def initialize_namespace(namespace, cluster_type="spark"):
        thread = threading.Thread(target=release.wait)
        thread.exc = None
        namespace["spark"] = Placeholder(thread)
        thread.start()

    gp = types.SimpleNamespace(initialize_namespace=initialize_namespace)
    yk.watch_spark(gp)
    ns: dict = {}
    gp.initialize_namespace(ns, cluster_type="spark")
    assert "spark_start" in json.loads(os.environ[yk.MARKS_ENV])
    assert "spark_ready" not in json.loads(os.environ[yk.MARKS_ENV])
    release.set()
    deadline = time.monotonic() + 5
    while "spark_ready" not in json.loads(os.environ[yk.MARKS_ENV]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "spark_ready" in json.loads(os.environ[yk.MARKS_ENV])


def test_watch_spark_leaves_other_cluster_types_alone(clean_marks):
    calls = []
    gp = types.SimpleNamespace(initialize_namespace=lambda ns, cluster_type="spark": calls.append(cluster_type))
    yk.watch_spark(gp)
    gp.initialize_namespace({}, cluster_type="none")
    assert calls == ["none"]


def test_run_sh_passes_its_start_time_to_the_application_master():
    assert 't_runsh="$(date +%s.%N)"' in kernelspecs.RUN_SH
    assert '--conf "spark.yarn.appMasterEnv.YARDLAB_T_RUNSH=$t_runsh"' in kernelspecs.RUN_SH
    # taken before anything else the script does
    assert kernelspecs.RUN_SH.index("t_runsh=") < kernelspecs.RUN_SH.index("SPEC_DIR=")


# -- the bench's arithmetic ------------------------------------------------------------------------------------
def test_phases_chain_and_spans():
    marks = {"post": 100.0, "runsh": 100.5, "rm_started": 106.0, "rm_launched": 107.0, "jvm": 108.0,
             "python": 110.0, "imports": 110.4, "hdfs_token": 110.8, "listener": 111.0, "posted": 111.5,
             "reply": 111.6, "action": 120.0, "spark_start": 111.2, "spark_ready": 117.2}
    ph = bench.phases(marks)
    assert ph["edge+EG -> run.sh"] == 0.5
    assert ph["spark-submit -> submit"] == 5.5
    assert ph["listener -> POST"] == 0.5
    assert ph["SparkContext creation"] == 6.0
    assert ph["Spark ready - 1+1 reply"] == pytest.approx(5.6)
    # the chain adds up to the totals
    chain = sum(ph[name] for name, _, _ in bench.PHASES)
    assert chain == pytest.approx(ph["total: POST -> spark action"])


def test_phases_skip_missing_marks():
    ph = bench.phases({"post": 1.0, "posted": 12.0, "reply": 12.5})
    assert ph == {"POST -> 1+1 reply": 0.5, "total: POST -> 1+1 reply": 11.5}


def test_parse_marks_from_stdout():
    assert bench.parse_marks('{"jvm": 1.5, "procs": []}\n') == {"jvm": 1.5, "procs": []}
    assert bench.parse_marks("\n") == {}
    assert bench.parse_marks("{not json\n") == {}
    assert bench.parse_marks("warning\n[1]\n") == {}


def test_percentile_and_summary():
    assert bench.percentile([1.0], 90) == 1.0
    assert bench.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert bench.percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    runs = [{"phases": {"POST -> 1+1 reply": v}} for v in (0.1, 0.3, 0.2)] + [{"phases": {}}]
    s = bench.summarize(runs)
    assert s == {"POST -> 1+1 reply": {"p50": 0.2, "p90": pytest.approx(0.28), "n": 3}}
    text = bench.table({"eg:x": s, "edge:x": {}})
    assert "POST -> 1+1 reply" in text and "0.20 / 0.28" in text


# -- run.sh's faster start ---------------------------------------------------------------------------------------
def run_sh(tmp_path, properties: str, extra_env: dict | None = None) -> tuple[list[str], dict]:
    """Run RUN_SH against a fake spark-submit; return the arguments and environment it was given."""
    import subprocess

    spark = tmp_path / "spark"
    (spark / "bin").mkdir(parents=True, exist_ok=True)
    (spark / "python" / "lib").mkdir(parents=True, exist_ok=True)
    (spark / "python" / "lib" / "pyspark.zip").write_bytes(b"")
    (spark / "python" / "lib" / "py4j-0.10.9.9-src.zip").write_bytes(b"")
    out = tmp_path / "out.json"
    fake = spark / "bin" / "spark-submit"
    fake.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                    f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(out)!r}, 'w'))\n")
    fake.chmod(0o755)
    spec = tmp_path / "spec"
    (spec / "bin").mkdir(parents=True, exist_ok=True)
    (spec / "bin" / "run.sh").write_text(kernelspecs.RUN_SH)
    (spec / "bin" / "run.sh").chmod(0o755)
    (spec / "spark.properties").write_text(properties)
    env = {"PATH": os.environ["PATH"], "SPARK_HOME": str(spark), "SPARK_CONF_DIR": str(tmp_path / "conf"),
           "HADOOP_CONF_DIR": str(tmp_path / "hconf"), "KERNEL_ID": "k-1", "KERNEL_USERNAME": "guest",
           "YARDLAB_WEBHDFS_URL": "http://nn:9870", "YARDLAB_KERNEL_KIND": "pyspark",
           "YARDLAB_ENVIRONMENT": "builtin", "TMPDIR": str(tmp_path), "EG_IMPERSONATION_ENABLED": "True"}
    env.update(extra_env or {})
    subprocess.run([str(spec / "bin" / "run.sh"), "--kernel-id", "k-1"], env=env, check=True, timeout=30)
    got = json.loads(out.read_text())
    return got["argv"], got["env"]


def test_run_sh_fast_start_on_a_site_with_local_spark(tmp_path):
    before = time.time()
    argv, env = run_sh(tmp_path, "spark.yarn.jars local:/opt/spark/jars/*\nspark.driver.memory 512m\n",
                       {"SPARK_SUBMIT_OPTS": "-Dsite=1"})
    lib = tmp_path / "spark" / "python" / "lib"
    assert env["PYSPARK_ARCHIVES_PATH"] == f"local:{lib}/pyspark.zip,local:{lib}/py4j-0.10.9.9-src.zip"
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.security.credentials.hive.enabled=false" in confs
    assert "spark.scheduler.minRegisteredResourcesRatio=0" in confs
    runsh = next(c for c in confs if c.startswith("spark.yarn.appMasterEnv.YARDLAB_T_RUNSH="))
    assert before - 1 < float(runsh.split("=", 1)[1]) < time.time() + 1
    assert argv[argv.index("--proxy-user") + 1] == "guest"
    # the client JVMs start light; what the site put in SPARK_SUBMIT_OPTS stays
    assert env["SPARK_SUBMIT_OPTS"] == "-Dsite=1 -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    assert env["SPARK_LAUNCHER_OPTS"].split() == ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    assert argv[-5:] == [str(tmp_path / "spec" / "scripts" / "yardlab_kernel.py"), "--kind", "pyspark",
                         "--kernel-id", "k-1"]


def test_run_sh_leaves_what_the_kernelspec_or_site_sets(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "hive-site.xml").write_text("<configuration/>")
    argv, env = run_sh(tmp_path, "spark.yarn.jars hdfs:///spark/jars/*\n"
                                 "spark.scheduler.minRegisteredResourcesRatio 0.8\n")
    assert "PYSPARK_ARCHIVES_PATH" not in env  # Spark is not installed on the nodes: upload as before
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert not [c for c in confs if c.startswith(("spark.security.credentials.hive",
                                                  "spark.scheduler.minRegisteredResourcesRatio"))]
    argv, env = run_sh(tmp_path, "spark.yarn.jars local:/x/*\n", {"PYSPARK_ARCHIVES_PATH": "hdfs:///a.zip"})
    assert env["PYSPARK_ARCHIVES_PATH"] == "hdfs:///a.zip"
