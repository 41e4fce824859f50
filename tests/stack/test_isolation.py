"""The split stack's OS accounts: a user's kernel or Lab terminal cannot read what makes someone else.

On the Kerberized stack started as root, each piece runs as an account of its own
(dev/accounts.py): the Hadoop daemons, the NodeManager with every YARN container, the edge with
Enterprise Gateway, and each user's Lab server.  These tests play bob, with the two places he can
run code, and try to read the keytabs, the ticket cache, the stack's tokens and alice's files.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import sysconfig
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

from jupyter_ws import KernelConnection
from test_hub import wait_server_ready


@pytest.fixture(scope="module", autouse=True)
def split(stack):
    # not a skip: the launcher splits the Kerberized stack whenever it runs as root (CI does)
    assert (stack.get("accounts") or {}).get("split"), (
        "these tests need the stack split into OS accounts: the Kerberized stack started as root")


def secret_paths(stack) -> dict[str, str]:
    state = Path(stack["state_dir"])
    return {
        "the edge's keytab": stack["service_keytab"],
        "the Hadoop daemons' keytab": stack["hadoop_keytab"],
        "the KDC's passwords": str(state / "kdc" / "work" / "passwords.properties"),
        "the edge's ticket cache": stack["edge_ccache"],
        "stack.json (demo and service tokens)": str(state / "stack.json"),
        "secrets.json": str(state / "secrets.json"),
        "the hub's database": str(state / "hub" / "jupyterhub.sqlite"),
        "the hub's cookie secret": str(state / "hub" / "jupyterhub_cookie_secret"),
        "the edge's ledger": str(state / "edge" / "edge.sqlite"),
        "the web endpoints' signing secret": str(state / "hadoop" / "http-signature-secret"),
        "the NameNode's metadata": str(state / "hadoop" / "dfs" / "name" / "current" / "VERSION"),
    }


def account_of(pid: int) -> str:
    uid = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:")).split()[1])
    return pwd.getpwuid(uid).pw_name


def test_each_piece_runs_as_its_own_account(stack):
    acc = stack["accounts"]
    # now, not at the session's start: a test before may have restarted the edge
    pids = json.loads((Path(stack["state_dir"]) / "stack.json").read_text())["pids"]
    eg = json.loads(Path(stack["eg_state_file"]).read_text())["pid"]
    seen = {name: account_of(pid) for name, pid in {**pids, "enterprise-gateway": eg}.items()
            if name in ("namenode", "datanode", "resourcemanager", "nodemanager", "edge", "enterprise-gateway",
                        "jupyterhub", "kdc", "kafka")}
    assert seen == {"namenode": acc["hadoop"], "datanode": acc["hadoop"], "resourcemanager": acc["hadoop"],
                    "nodemanager": acc["yarn"], "edge": acc["service"], "enterprise-gateway": acc["service"],
                    "jupyterhub": "root", "kdc": "root", "kafka": acc["kafka"]}
    assert acc["kafka"] not in (acc["hadoop"], acc["yarn"], acc["service"], "root")
    logs = Path(stack["logs"])
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in logs.glob("*.log")} == \
        {p.name: "0o600" for p in logs.glob("*.log")}
    assert logs.stat().st_mode & 0o777 == 0o711
    owners = {name: (Path(stack["state_dir"]) / "kdc" / name).owner() for name in
              ("hadoop.keytab", "nm.keytab", "service.keytab")}
    assert owners == {"hadoop.keytab": acc["hadoop"], "nm.keytab": acc["yarn"], "service.keytab": acc["service"]}


@pytest.fixture
def alices_file(stack, hub):
    """A file in alice's Lab home, written by her own Lab server."""
    hub("POST", "/users/alice/server")
    wait_server_ready(hub, "alice")
    name = f"yl-private-{uuid.uuid4().hex[:8]}.txt"
    r = requests.put(f"{stack['hub_url']}user/alice/api/contents/{name}",
                     headers={"Authorization": f"token {stack['user_tokens']['alice']}"},
                     json={"type": "file", "format": "text", "content": "alice's notes\n"}, timeout=30)
    assert r.status_code == 201, r.text
    path = Path(stack["state_dir"]) / "home" / "alice" / name
    assert path.owner() == "alice" and path.read_text() == "alice's notes\n"
    yield str(path)
    path.unlink(missing_ok=True)


def test_bobs_kernel_reads_no_secret_and_the_nodemanagers_key_opens_nothing(stack, edge_as, alices_file):
    """bob's kernel runs in a YARN container as the NodeManager's account: every keytab but the
    NodeManager's own, the ticket cache, the tokens and alice's files are out of reach, and the one
    key it can read (nm/ and the NodeManager's HTTP/localhost) is no key to anyone's data."""
    paths = {**secret_paths(stack), "alice's Lab file": alices_file}
    acc = stack["accounts"]
    code = f"""
import json, os, pwd
out = {{"whoami": pwd.getpwuid(os.getuid()).pw_name, "files": {{}}}}
for what, path in {paths!r}.items():
    try:
        with open(path, "rb") as f:
            f.read(1)
        out["files"][what] = "read"
    except OSError as e:
        out["files"][what] = type(e).__name__
# the NodeManager's keytab is the one a container can read (they share its account)
os.environ["KRB5_CONFIG"] = {stack['krb5_conf']!r}
# a Kerberos HTTP client: the test's own (the kernel runs on the base environment, which has none)
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
sys.path.append({sysconfig.get_paths()["platlib"]!r})
import requests
from yardlab.edge.kerberos import Kerberos, SpnegoAuth
base = {stack['webhdfs_url']!r} + "/webhdfs/v1"
rm = {stack['rm_url']!r} + "/ws/v1/cluster"
# this kernel's own YARN application (bob's): a YARN admin could kill it, nobody else but bob
_, *rest = os.environ["CONTAINER_ID"].split("_")
own_app = "application_" + rest[-4] + "_" + rest[-3]
for principal in ("nm/localhost", "HTTP/localhost"):  # every key in that keytab, as a client
    k = Kerberos(keytab={str(Path(stack['state_dir']) / 'kdc' / 'nm.keytab')!r}, principal=principal + "@{stack['realm']}",
                 ccache="/tmp/yl-" + principal.replace("/", "-") + str(os.getpid()))
    k.login()
    auth = SpnegoAuth(k)
    out[principal] = {{
        "lists_alice": requests.get(base + "/user/alice?op=LISTSTATUS", auth=auth, timeout=30).status_code,
        "doas_alice": requests.get(base + "/user/alice?op=LISTSTATUS&doas=alice", auth=auth, timeout=30).status_code,
        "home": requests.get(base + "/?op=GETHOMEDIRECTORY", auth=auth, timeout=30).json(),
        "kills_bobs_app": requests.put(rm + "/apps/" + own_app + "/state", json={{"state": "KILLED"}},
                                       auth=auth, timeout=30).status_code,
    }}
print(json.dumps(out))
"""
    edge_as("bob").get("/storage")
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["bob"], "yardlab_python",
                                env={}, username="bob")
    try:
        reply = kc.execute(code, timeout=240)
    finally:
        kc.shutdown()
    assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
    out = json.loads(reply.stdout.strip().splitlines()[-1])
    assert out["whoami"] == acc["yarn"]
    assert out["files"] == {what: "PermissionError" for what in paths}, out["files"]
    # nm/ is a plain account to HDFS (auth_to_local), HTTP/ keeps its own name: neither is the
    # superuser, a proxy user or a YARN admin
    assert out["nm/localhost"]["home"] == {"Path": f"/user/{acc['yarn']}"}, out
    assert out["HTTP/localhost"]["home"] == {"Path": "/user/HTTP"}, out
    for principal in ("nm/localhost", "HTTP/localhost"):
        assert out[principal]["lists_alice"] == 403, out
        assert out[principal]["doas_alice"] == 403, out
        assert out[principal]["kills_bobs_app"] == 403, out


def terminal_run(stack, user: str, command: str, marker: str, timeout: float = 60) -> str:
    """Type ``command`` into a new terminal of ``user``'s Lab server; return what it printed up to
    ``marker`` (text the command prints, which its own echo does not contain)."""
    base = f"{stack['hub_url']}user/{user}"
    headers = {"Authorization": f"token {stack['user_tokens'][user]}"}
    r = requests.post(f"{base}/api/terminals", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    ws = websocket.create_connection(base.replace("http", "ws", 1) + f"/terminals/websocket/{name}",
                                     header=[f"Authorization: token {stack['user_tokens'][user]}"], timeout=timeout)
    seen = ""
    try:
        ws.send(json.dumps(["stdin", command + "\r"]))
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            kind, *rest = json.loads(ws.recv())
            if kind == "stdout":
                seen += rest[0]
    finally:
        ws.close()
        requests.delete(f"{base}/api/terminals/{name}", headers=headers, timeout=30)
    assert marker in seen, seen[-2000:]
    return seen


def test_bobs_lab_terminal_reads_no_secret_and_not_alices_home(stack, hub, alices_file):
    hub("POST", "/users/bob/server")
    wait_server_ready(hub, "bob")
    paths = {**secret_paths(stack), "alice's Lab file": alices_file,
             "the NodeManager's keytab": str(Path(stack["state_dir"]) / "kdc" / "nm.keytab")}
    listing = " ".join(f"'{p}'" for p in paths.values())
    out = terminal_run(stack, "bob", f"echo WHO=$(id -un); for f in {listing}; do if head -c1 \"$f\" >/dev/null 2>&1; "
                                     "then echo \"READ:$f\"; else echo \"DENIED:$f\"; fi; done; echo DONE-$((40+2))",
                       "DONE-42")
    results = dict((path, verdict) for verdict, path in re.findall(r"^(READ|DENIED):(/\S+?)\r?$", out, re.M))
    assert results == {p: "DENIED" for p in paths.values()}, out[-3000:]
    assert re.findall(r"WHO=(\w+)\r?$", out, re.M) == ["bob"], out[-1000:]
    # and the home folders themselves: bob's own is his alone, alice's is closed to him
    homes = Path(stack["state_dir"]) / "home"
    for user in ("alice", "bob"):
        st = os.stat(homes / user)
        assert (pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o777) == (user, 0o700)


def test_a_hub_user_named_like_a_stack_account_gets_no_lab_server_as_it(stack, hub):
    """An admin may create a hub user with any name; the hub never runs a Lab server as root or as
    one of the stack's service accounts because of it."""
    name = stack["accounts"]["service"]
    r = hub("POST", f"/users/{name}")
    assert r.status_code in (201, 409), r.text
    try:
        r = hub("POST", f"/users/{name}/server")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            model = hub("GET", f"/users/{name}").json()
            if not model.get("pending"):
                break
            time.sleep(0.5)
        assert not (model.get("servers", {}).get("") or {}).get("ready"), model
        assert not [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                    if _is_singleuser_of(pid, name)]
    finally:
        hub("DELETE", f"/users/{name}")


def _is_singleuser_of(pid: int, user: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"jupyterhub-singleuser" in cmd and account_of(pid) == user
    except (OSError, KeyError, StopIteration):
        return False
