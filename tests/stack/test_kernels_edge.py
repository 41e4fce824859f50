"""Kernels through the edge on the real stack: identity enforced, own kernels only, queue-aware starts,
the reaper after Enterprise Gateway dies.  Lab servers' GatewayClient points at the edge."""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

from conftest import FINAL_STATES, eg_token
from jupyter_ws import KernelConnection
from test_hub import wait_server_ready


def gw(stack) -> str:
    return stack["edge_url"] + "/gateway"


def auth(stack, user: str) -> dict:
    return {"Authorization": f"token {stack['user_tokens'][user]}"}


def test_alice_runs_spark_through_her_lab_server_and_the_edge(stack, hub, rm, edge_as):
    """The real path: browser -> Lab server (GatewayClient) -> edge /gateway/ -> EG -> YARN."""
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    base = f"{stack['hub_url']}user/alice"
    h = auth(stack, "alice")
    requests.put(f"{base}/api/contents/work", json={"type": "directory"}, headers=h, timeout=60)
    # as JupyterLab opens a notebook: a session for its path, whose kernel starts in its folder
    session = requests.post(f"{base}/api/sessions", headers=h, timeout=330, json={
        "path": "work/analysis.ipynb", "name": "analysis.ipynb", "type": "notebook",
        "kernel": {"name": "yardlab_pyspark"}})
    assert session.status_code == 201, session.text
    kc = KernelConnection(base, stack["user_tokens"]["alice"], session.json()["kernel"]["id"], "alice")
    kc.connect()
    try:
        reply = kc.execute("print(spark.range(1000).count())\nprint(spark.sparkContext.sparkUser())")
        assert reply.status == "ok", reply.error
        assert reply.stdout.split() == ["1000", "alice"]
        (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
        assert app["user"] == "alice" and app["state"] == "RUNNING"
        assert {"yardlab", "user:alice", f"kernel:{kc.kernel_id}", "env:builtin"} <= set(app["applicationTags"].split(","))
        # the jobs API links the application to its kernel and where it was started
        deadline = time.monotonic() + 20
        while True:
            apps = {a["id"]: a for a in edge_as("alice").get("/apps").json()["apps"]}
            if app["id"] in apps:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert apps[app["id"]]["kernel"] == kc.kernel_id
        assert apps[app["id"]]["environment"] == "builtin"
        # the Lab server told the edge which notebook the kernel serves (not only its folder)
        assert (apps[app["id"]]["notebook"], apps[app["id"]]["session"]) == ("work/analysis.ipynb", "notebook")
        # renamed in Lab: the jobs list follows
        r = requests.patch(f"{base}/api/sessions/{session.json()['id']}", headers=h, timeout=60,
                           json={"path": "work/renamed.ipynb", "name": "renamed.ipynb"})
        assert r.status_code == 200, r.text
        assert wait_app_field(edge_as("alice"), app["id"], "notebook", "work/renamed.ipynb")
    finally:
        requests.delete(f"{base}/api/sessions/{session.json()['id']}", headers=h, timeout=120)
        kc.shutdown()
    rm.wait_state(app["id"], FINAL_STATES, timeout=60)


def wait_app_field(session, app_id: str, field: str, value, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = {a["id"]: a for a in session.get("/apps").json()["apps"]}
        if app_id in apps and apps[app_id][field] == value:
            return True
        time.sleep(0.5)
    raise AssertionError(f"{app_id}'s {field} is {apps.get(app_id, {}).get(field)!r}, not {value!r}")


def test_a_console_kernel_says_it_serves_no_notebook(stack, hub, rm, edge_as):
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    base = f"{stack['hub_url']}user/alice"
    h = auth(stack, "alice")
    session = requests.post(f"{base}/api/sessions", headers=h, timeout=330, json={
        "path": "console-1-3f2a", "name": "Console 1", "type": "console", "kernel": {"name": "yardlab_python"}})
    assert session.status_code == 201, session.text
    kernel_id = session.json()["kernel"]["id"]
    try:
        (app,) = rm.apps_tagged(f"kernel:{kernel_id}")
        assert wait_app_field(edge_as("alice"), app["id"], "session", "console")
        assert {a["id"]: a for a in edge_as("alice").get("/apps").json()["apps"]}[app["id"]]["notebook"] is None
        # bob cannot rename alice's kernel's notebook through the edge
        r = edge_as("bob")("PUT", f"/kernels/{kernel_id}/session", json={"type": "notebook", "path": "pwned.ipynb"})
        assert r.status_code == 403 and "another user" in r.json()["message"]
        assert wait_app_field(edge_as("alice"), app["id"], "notebook", None)
    finally:
        requests.delete(f"{base}/api/sessions/{session.json()['id']}", headers=h, timeout=120)


def test_spoofed_kernel_username_is_refused_and_starts_nothing(stack, rm):
    before = {a["id"] for a in rm.apps()}
    r = requests.post(f"{gw(stack)}/api/kernels", headers=auth(stack, "bob"), timeout=60,
                      json={"name": "yardlab_pyspark", "env": {"KERNEL_USERNAME": "alice"}})
    assert r.status_code == 403
    assert "is not you" in r.json()["message"]
    time.sleep(3)
    assert {a["id"] for a in rm.apps()} == before


def test_users_reach_only_their_own_kernels(stack, edge_kernel):
    kc = edge_kernel("alice")
    bob = auth(stack, "bob")
    base = f"{gw(stack)}/api/kernels/{kc.kernel_id}"
    assert requests.get(base, headers=bob, timeout=30).status_code == 403
    assert requests.post(f"{base}/interrupt", headers=bob, timeout=30).status_code == 403
    assert requests.post(f"{base}/restart", headers=bob, timeout=30).status_code == 403
    assert requests.delete(base, headers=bob, timeout=30).status_code == 403
    with pytest.raises(Exception, match="403"):
        KernelConnection(gw(stack), stack["user_tokens"]["bob"], kc.kernel_id).connect()
    assert kc.kernel_id not in [k["id"] for k in requests.get(f"{gw(stack)}/api/kernels", headers=bob,
                                                               timeout=30).json()]
    assert kc.kernel_id in [k["id"] for k in requests.get(f"{gw(stack)}/api/kernels", headers=auth(stack, "alice"),
                                                           timeout=30).json()]
    # no token at all
    assert requests.get(base, timeout=30).status_code == 401
    # alice still has her kernel, and an admin may shut it down
    assert kc.execute("print(6 * 7)").stdout.strip() == "42"
    r = requests.delete(base, headers=auth(stack, "admin"), timeout=120)
    assert r.status_code == 204


@pytest.mark.parametrize("body,status,needle", [
    ("not json", 400, "not valid JSON"),
    ({"name": "../../etc/passwd"}, 400, "not a kernelspec name"),
    ({"name": "no_such_spec"}, 404, "no kernelspec"),
    ({"name": "yardlab_pyspark", "env": {"KERNEL_LAUNCH_TIMEOUT": "soon"}}, 400, "KERNEL_LAUNCH_TIMEOUT"),
    ({"name": "yardlab_pyspark", "env": {"KERNEL_LAUNCH_TIMEOUT": "-5"}}, 400, "KERNEL_LAUNCH_TIMEOUT"),
    ({"name": "yardlab_pyspark", "env": {"KERNEL_WORKING_DIR": 5}}, 400, "strings"),
    ({"name": "yardlab_pyspark", "env": ["KERNEL_USERNAME"]}, 400, "strings"),
    # unknown KERNEL_* variables are named, not dropped silently
    ({"name": "yardlab_pyspark", "env": {"KERNEL_EXTRA_SPARK_OPTS": "--conf spark.x=1"}}, 400,
     "KERNEL_EXTRA_SPARK_OPTS cannot be set"),
])
def test_bad_kernel_requests(stack, body, status, needle):
    data = body if isinstance(body, str) else json.dumps(body)
    r = requests.post(f"{gw(stack)}/api/kernels", headers=auth(stack, "guest"), data=data, timeout=30)
    assert r.status_code == status, r.text
    assert needle in r.json()["message"]


def test_kernelspecs_list_only_what_the_user_may_use(stack):
    specs = requests.get(f"{gw(stack)}/api/kernelspecs", headers=auth(stack, "bob"), timeout=30).json()
    assert set(specs["kernelspecs"]) >= {"yardlab_pyspark", "yardlab_python"}
    assert specs["default"] in specs["kernelspecs"]


@pytest.fixture
def big_kernelspec(stack):
    """A kernelspec asking for more than the queue can ever hold (4 x 3 GB executors)."""
    from yardlab.edge.kernelspecs import KernelSpecRequest, write_kernelspec

    src = json.loads(Path(stack["kernels_dir"], "yardlab_pyspark", "kernel.json").read_text())
    name = f"yltest_big_{uuid.uuid4().hex[:6]}"
    site = _site_from(stack, src)
    path = write_kernelspec(stack["kernels_dir"], site, KernelSpecRequest(
        name=name, display_name="too big", spark_conf={"spark.executor.memory": "3g",
                                                       "spark.executor.instances": "4"}))
    # installed the way a site installs one: owned by the account the edge and EG run as
    owner = Path(stack["kernels_dir"]).stat()
    for p in (path, *Path(path).rglob("*")):
        os.chown(p, owner.st_uid, owner.st_gid)
    yield name
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _site_from(stack, spec: dict):
    from yardlab.edge.kernelspecs import KernelSite

    env = spec["env"]
    launchers = next(Path(stack["state_dir"]).parent.glob(".venv-eg/lib/python3*/site-packages/gateway_provisioners/"
                                                          "kernel-launchers"), None)
    return KernelSite(spark_home=env["SPARK_HOME"], java_home=env["JAVA_HOME"], hadoop_conf_dir=env["HADOOP_CONF_DIR"],
                      yarn_endpoint=spec["metadata"]["process_proxy"]["config"]["yarn_endpoint"],
                      launchers_dir=str(launchers), python=env["PYSPARK_PYTHON"], kernel_ip="127.0.0.1",
                      webhdfs_url=env.get("YARDLAB_WEBHDFS_URL", ""),
                      spark_conf={"spark.yarn.jars": f"local:{env['SPARK_HOME']}/jars/*",
                                  "spark.yarn.appMasterEnv.SPARK_LOCAL_IP": "127.0.0.1",
                                  "spark.executorEnv.SPARK_LOCAL_IP": "127.0.0.1",
                                  "spark.driver.bindAddress": "127.0.0.1"})


def test_a_kernel_too_big_for_its_queue_is_refused_with_numbers(stack, rm, big_kernelspec):
    before = {a["id"] for a in rm.apps()}
    r = requests.post(f"{gw(stack)}/api/kernels", headers=auth(stack, "alice"), timeout=60,
                      json={"name": big_kernelspec})
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert re.search(r"needs 15\.0 GB in queue default .* never hold more than 8\.0 GB", message), message
    assert {a["id"] for a in rm.apps()} == before


FILLER = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
time.sleep(900)
"""


def test_full_queue_shows_accepted_with_the_reason_then_runs(stack, spark_env, rm, edge_as, edge_kernel, tmp_path):
    """Fill the cluster (8 GB) with one application, start a kernel: it waits in ACCEPTED, visibly."""
    script = tmp_path / "filler.py"
    script.write_text(FILLER)
    # 1 GB ApplicationMaster + 2 x (3200 MB + 384 MB overhead = 3.5 GB) executors = all 8 GB
    cmd = [f"{stack['spark_home']}/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
           "--proxy-user", "bob", "--name", "yl-filler", "--conf", "spark.executor.instances=2",
           "--conf", "spark.executor.memory=3200m", "--conf", "spark.yarn.submit.waitAppCompletion=false",
           str(script)]
    done = subprocess.run(cmd, env=spark_env, capture_output=True, text=True, timeout=300)
    filler = re.findall(r"application_\d+_\d+", done.stderr)[0]
    try:
        deadline = time.monotonic() + 180
        while rm.get("/metrics")["clusterMetrics"]["availableMB"] > 512:
            assert time.monotonic() < deadline, "the filler never took the whole cluster"
            time.sleep(1)
        started: dict = {}

        def start() -> None:
            try:
                started["kc"] = edge_kernel("alice")
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                started["error"] = e

        t = threading.Thread(target=start)
        t.start()
        waiting = None
        deadline = time.monotonic() + 120
        while waiting is None:
            assert time.monotonic() < deadline, "no ACCEPTED kernel application with a reason"
            for app in edge_as("alice").get("/apps", params={"state": "ACCEPTED"}).json()["apps"]:
                if app.get("waiting"):
                    waiting = app
            time.sleep(1)
        assert re.match(r"waiting in queue default \(ACCEPTED\): needs 2\.0 GB, \d+\.\d GB free", waiting["waiting"])
        assert waiting["kernel"]
        rm.kill(filler)
        t.join(timeout=300)
        assert "error" not in started, started.get("error")
        kc = started["kc"]
        assert kc.kernel_id == waiting["kernel"]
        assert kc.execute("print(spark.range(10).count())").stdout.strip() == "10"
    finally:
        rm.kill(filler)


def test_enterprise_gateway_killed_is_restarted_and_orphans_are_reaped(stack, edge_kernel, rm):
    kc = edge_kernel("bob", "yardlab_python")
    reply = kc.execute("print(1)")
    assert reply.stdout.strip() == "1", (reply.status, reply.stdout, reply.stderr[-1000:], reply.error)
    apps = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    assert len(apps) == 1, apps
    app = apps[0]
    state_file = Path(stack["eg_state_file"])
    old = json.loads(state_file.read_text())
    os.kill(old["pid"], signal.SIGKILL)
    # the edge notices and starts a new Enterprise Gateway
    deadline = time.monotonic() + 60
    while True:
        new = json.loads(state_file.read_text())
        if new["pid"] != old["pid"] and requests.get(f"{gw(stack)}/api/kernelspecs", headers=auth(stack, "bob"),
                                                     timeout=10).status_code == 200:
            break
        assert time.monotonic() < deadline, "Enterprise Gateway was not restarted"
        time.sleep(1)
    # the kernel's YARN application outlived EG; the reaper kills it after its grace period (30 s here)
    # grace 30 s + one reaper round (5 s) + one snapshot poll (2 s), counted from EG's return, + slack
    ended = rm.wait_state(app["id"], FINAL_STATES, timeout=30 + 5 + 2 + 30)
    assert ended["state"] == "KILLED"
    audit = [json.loads(line) for line in Path(stack["edge_audit_log"]).read_text().splitlines()]
    assert any(e["action"] == "reap" and e["app"] == app["id"] and e["owner"] == "bob" for e in audit)
    # new kernels work on the new gateway
    kc2 = edge_kernel("bob", "yardlab_python")
    assert kc2.execute("print(2)").stdout.strip() == "2"


def test_restarting_the_edge_kills_no_kernel(stack, stack_control, edge_kernel, rm):
    kc = edge_kernel("alice", "yardlab_python")
    assert kc.execute("x = 20").status == "ok"
    (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    stack_control.restart_edge()
    # the same kernel, same state, same YARN application, reached through the new edge
    kc.connect()
    assert kc.execute("print(x + 22)").stdout.strip() == "42"
    assert rm.app(app["id"])["state"] == "RUNNING"


def test_a_kernel_whose_yarn_application_died_is_reported_dead(stack, edge_kernel, rm):
    kc = edge_kernel("alice", "yardlab_python")
    assert kc.execute("print('up')").stdout.strip() == "up"
    (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    # the application dies under the kernel (killed on the RM directly, as an operator might)
    rm.kill(app["id"])
    # the client hears "dead" on its websocket, which is then closed
    assert kc.ws is not None
    kc.ws.settimeout(60)
    dead = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            msg = json.loads(kc.ws.recv())
        except Exception:  # noqa: BLE001 - the close that follows the report
            break
        if msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "dead":
            dead = True
            break
    assert dead, "no execution_state=dead reached the client"
    # and the kernel is gone from the gateway and the ledger
    deadline = time.monotonic() + 30
    while kc.kernel_id in [k["id"] for k in requests.get(f"{gw(stack)}/api/kernels", headers=auth(stack, "alice"),
                                                         timeout=30).json()]:
        assert time.monotonic() < deadline, "the dead kernel is still listed"
        time.sleep(1)
    audit = [json.loads(line) for line in Path(stack["edge_audit_log"]).read_text().splitlines()]
    assert any(e["action"] == "kernel-dead" and e["kernel"] == kc.kernel_id for e in audit)


def eg_kernel_model(stack, kernel_id: str) -> dict:
    """The kernel as Enterprise Gateway itself reports it (with its count of websocket connections)."""
    r = requests.get(f"{stack['eg_url']}/api/kernels/{kernel_id}", headers={"Authorization": f"token {eg_token(stack)}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_connections(stack, kernel_id: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (now := eg_kernel_model(stack, kernel_id)["connections"]) != count:
        assert time.monotonic() < deadline, f"EG counts {now} connections to {kernel_id}, not {count}"
        time.sleep(0.5)


def test_refused_websocket_upgrades_leave_no_connection_on_the_gateway(stack, edge_kernel):
    """Each plain GET or foreign-origin upgrade on .../channels used to leave a connection open on EG, and a
    kernel with connections is never culled."""
    kc = edge_kernel("alice", "yardlab_python")
    wait_connections(stack, kc.kernel_id, 1)  # the factory's own websocket
    assert kc.ws is not None
    kc.ws.close()
    kc.ws = None
    wait_connections(stack, kc.kernel_id, 0)
    url = f"{gw(stack)}/api/kernels/{kc.kernel_id}/channels"
    with requests.Session() as s:
        for _ in range(200):
            assert s.get(url, headers=auth(stack, "alice"), timeout=30).status_code == 400
    for _ in range(20):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url.replace("http", "ws", 1), origin="http://evil.example", timeout=30,
                                        header=[f"Authorization: token {stack['user_tokens']['alice']}"])
        assert refused.value.status_code == 403
    time.sleep(1)  # EG counts a connection when its handler opens: give any made for these the time to show
    assert eg_kernel_model(stack, kc.kernel_id)["connections"] == 0
    # a real client still gets through, and EG sees it leave
    kc.connect()
    assert kc.execute("print(6 * 7)").stdout.strip() == "42"
    wait_connections(stack, kc.kernel_id, 1)
    kc.ws.close()
    kc.ws = None
    wait_connections(stack, kc.kernel_id, 0)


def _processes() -> dict[int, tuple[int, bytes]]:
    """Every process this account can see: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes())
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return found


def _descendants(procs: dict[int, tuple[int, bytes]], roots: set[int]) -> set[int]:
    tree = set(roots) & set(procs)
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


SECRET_VARIABLE = re.compile(r"TOKEN|SECRET|PASSWORD", re.IGNORECASE)


def test_no_secret_is_on_any_command_line(stack, hub, edge_kernel):
    """`ps` shows every command line to every account on the edge node: tokens go in 0600 files or environments."""
    hub("POST", "/users/alice/server")  # a Lab server (hub token, gateway token) and a kernel on YARN running
    wait_server_ready(hub, "alice")
    kc = edge_kernel("alice", "yardlab_python")
    assert kc.execute("print(1)").stdout.strip() == "1"
    state = json.loads(Path(stack["eg_state_file"]).read_text())
    argv = Path(f"/proc/{state['pid']}/cmdline").read_bytes().split(b"\0")
    assert not any(state["token"].encode() in arg for arg in argv), "EG's token is on its command line"
    config = next(arg.split(b"=", 1)[1].decode() for arg in argv if arg.startswith(b"--config="))
    for path in (config, stack["eg_state_file"], Path(stack["state_dir"]) / "stack.json",
                 Path(stack["state_dir"]) / "secrets.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    known = {state["token"], stack["eg_token"], stack["edge_service_token"], stack["hub_service_token"],
             *stack["user_tokens"].values()}
    # and what the stack's processes were handed in their environments (the proxy's, Lab servers' tokens)
    procs = _processes()
    handed: set[str] = set()
    for pid in _descendants(procs, {*stack["pids"].values(), state["pid"]}):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for var in environ:
            name, _, value = var.decode(errors="replace").partition("=")
            if SECRET_VARIABLE.search(name) and len(value) >= 16:
                handed.add(value)
    assert handed, "no token in the environment of any stack process: the scan looked in the wrong place"
    known |= handed
    for pid, (_, cmdline) in procs.items():
        shown = cmdline.decode(errors="replace")
        leaked = [f"{t[:4]}..." for t in known if t and t in shown]
        assert not leaked, f"pid {pid} has a secret on its command line ({leaked}): {shown[:200]!r}"



@pytest.mark.parametrize("body,status,needle", [
    ("[" * 30000 + "]" * 30000, 400, "nested too deeply"),
    ('{"name": "yardlab_python", "env": {"KERNEL_WORKING_DIR": ' + "[" * 20000 + "]" * 20000 + "}}", 400,
     "nested too deeply"),
    ("[" * 100000 + "]" * 100000, 413, "too large"),
    ('{"name": "yardlab_python", "env": {"KERNEL_WORKING_DIR": "/home/\\ud800"}}', 400, "lone surrogate"),
], ids=["nested", "nested-in-env", "nested-and-large", "lone-surrogate"])
def test_kernel_starts_with_bodies_json_cannot_hold_are_refused(stack, body, status, needle):
    r = requests.post(f"{gw(stack)}/api/kernels", headers=auth(stack, "guest"), data=body, timeout=30)
    assert r.status_code == status, r.text[:300]
    assert needle in r.json()["message"]


def test_a_browsers_failed_first_connection_does_not_keep_lab_from_the_kernel(stack, hub):
    """Chromium asks the Lab server for the v1 kernel protocol; the gateway client selects none, so
    that first websocket fails in the browser while the Lab server's connection to the edge stays
    open.  JupyterLab then connects again with the same session id and waits for its kernel_info
    reply before sending any cell: that reply must arrive (it did not, before the edge gave every
    connection a session id of its own)."""
    from jupyter_client.session import Session

    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    base = f"{stack['hub_url']}user/alice"
    h = auth(stack, "alice")
    kernel = requests.post(f"{base}/api/kernels", json={"name": "yardlab_python"}, headers=h, timeout=330)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]
    try:
        sid = str(uuid.uuid4())
        url = base.replace("http", "ws", 1) + f"/api/kernels/{kid}/channels?session_id={sid}"
        header = [f"Authorization: token {stack['user_tokens']['alice']}"]
        with pytest.raises(websocket.WebSocketException):  # what the browser sees the first time
            websocket.create_connection(url, header=header, subprotocols=["v1.kernel.websocket.jupyter.org"],
                                        timeout=30)
        ws = websocket.create_connection(url, header=header, timeout=30)
        session = Session(session=sid, username="alice")
        msg = session.msg("kernel_info_request", {})
        msg["channel"] = "shell"
        ws.send(json.dumps(msg, default=str))
        deadline = time.monotonic() + 30
        reply = None
        while time.monotonic() < deadline and reply is None:
            ws.settimeout(max(1.0, deadline - time.monotonic()))
            m = json.loads(ws.recv())
            if m["msg_type"] == "kernel_info_reply" and m["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                reply = m
        ws.close()
        assert reply is not None and reply["content"]["status"] == "ok"
    finally:
        requests.delete(f"{base}/api/kernels/{kid}", headers=h, timeout=120)
