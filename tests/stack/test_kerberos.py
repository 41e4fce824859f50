"""The Kerberized stack: code inside a user's kernel cannot act as anyone else.

Every Hadoop endpoint asks for Kerberos (SPNEGO on the web ones), the kernel's container holds
only its user's delegation tokens, and the edge is the one holder of a keytab.  These tests play
bob, writing what a curious or hostile user would type into a notebook cell.
"""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests
from hdfs import HdfsError

from jupyter_ws import KernelConnection


@pytest.fixture(scope="module", autouse=True)
def kerberized(stack):
    # not a skip: on the simple-auth stack none of this holds, and saying so is the point
    assert stack.get("security") == "kerberos", (
        "these tests need the Kerberized stack (the default; YARDLAB_SECURITY=simple turns it off)")


@pytest.fixture(scope="module")
def bob_kernel(stack, edge_as):
    """One kernel of bob's for this file's tests (each starts nothing in it that another sees): its
    start time, kept as ``started``, is when its delegation tokens were issued."""
    edge_as("bob").get("/storage")  # provisions bob's home, /shared and /public on first contact
    started = time.time()
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["bob"], "yardlab_pyspark",
                                env={}, username="bob")
    kc.started = started
    yield kc
    try:
        kc.shutdown()
    except requests.RequestException:
        pass


@pytest.fixture
def alice_secret(stack, hadoop):
    path = f"/user/alice/yl-secret-{uuid.uuid4().hex[:8]}.txt"
    alice = hadoop.webhdfs(stack, proxy="alice")
    alice.write(path, b"alice's eyes only\n")
    yield path
    alice.delete(path)


def run_json(kc: KernelConnection, code: str) -> dict:
    """Run a cell that prints one JSON line last; return it."""
    reply = kc.execute(code, timeout=240)
    assert reply.status == "ok", (reply.error, reply.stderr[-2000:])
    return json.loads(reply.stdout.strip().splitlines()[-1])


def test_anonymous_and_user_name_requests_are_refused_at_every_hadoop_endpoint(stack):
    urls = [
        f"{stack['webhdfs_url']}/webhdfs/v1/user/alice?op=LISTSTATUS&user.name=alice",
        f"{stack['webhdfs_url']}/webhdfs/v1/?op=LISTSTATUS&user.name={stack['service_user']}",
        f"{stack['webhdfs_url']}/jmx",
        f"{stack['rm_url']}/ws/v1/cluster/apps?user.name={stack['service_user']}",
        f"{stack['rm_url']}/cluster",
        f"{stack['nm_web_url']}/ws/v1/node/containers?user.name={stack['service_user']}",
    ]
    for url in urls:
        r = requests.get(url, timeout=10, headers={"Accept": "application/json"})
        assert r.status_code == 401, (url, r.status_code)
        assert r.headers.get("WWW-Authenticate", "").startswith("Negotiate"), url


def test_bobs_kernel_cannot_read_alices_files_or_act_as_the_service(stack, bob_kernel, alice_secret):
    code = f"""
import json, os, subprocess, urllib.error, urllib.request

def status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code

out = {{}}
out["webhdfs_user_name_alice"] = status({stack['webhdfs_url']!r} + "/webhdfs/v1/user/alice?op=LISTSTATUS&user.name=alice")
out["webhdfs_open_secret"] = status({stack['webhdfs_url']!r} + "/webhdfs/v1{alice_secret}?op=OPEN&user.name=alice")
out["rm_as_service"] = status({stack['rm_url']!r} + "/ws/v1/cluster/apps?user.name={stack['service_user']}")
out["rm_kill_as_service"] = None
req = urllib.request.Request({stack['rm_url']!r} + "/ws/v1/cluster/apps/application_1_0001/state?user.name={stack['service_user']}",
                             data=b'{{"state": "KILLED"}}', method="PUT", headers={{"Content-Type": "application/json"}})
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    out["rm_kill_as_service"] = e.code

# `hdfs dfs -cat` (FsShell) in a JVM of its own, told to be alice the simple-auth way
env = dict(os.environ, HADOOP_USER_NAME="alice")
shell = subprocess.run([os.path.join(os.environ["JAVA_HOME"], "bin", "java"), "-cp", os.environ["CLASSPATH"],
                        "org.apache.hadoop.fs.FsShell", "-cat", {alice_secret!r}],
                       env=env, capture_output=True, text=True, timeout=120)
out["fsshell_rc"] = shell.returncode
out["fsshell_stdout"] = shell.stdout[-500:]
out["fsshell_stderr"] = shell.stderr[-1500:]

# the driver's own Hadoop client
jvm = spark.sparkContext._jvm
fs = jvm.org.apache.hadoop.fs.FileSystem.get(spark.sparkContext._jsc.hadoopConfiguration())
try:
    fs.open(jvm.org.apache.hadoop.fs.Path({alice_secret!r})).read()
    out["driver_read"] = "read"
except Exception as e:
    out["driver_read"] = str(e)[:300]
out["driver_user"] = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser().getShortUserName()
print(json.dumps(out))
"""
    out = run_json(bob_kernel, code)
    assert out["webhdfs_user_name_alice"] == 401
    assert out["webhdfs_open_secret"] == 401
    assert out["rm_as_service"] == 401
    assert out["rm_kill_as_service"] == 401
    assert out["fsshell_rc"] != 0, out
    assert "alice's eyes only" not in out["fsshell_stdout"]
    assert "Permission denied" in out["fsshell_stderr"] and "user=bob" in out["fsshell_stderr"], out["fsshell_stderr"]
    assert "Permission denied" in out["driver_read"], out["driver_read"]
    assert out["driver_user"] == "bob"


def test_bobs_own_home_and_shared_work_through_spark_and_the_hdfs_helpers(stack, bob_kernel, hadoop):
    tag = uuid.uuid4().hex[:8]
    code = f"""
import json
import hdfs
spark.range(7).write.mode("overwrite").parquet("/user/bob/yl-krb-{tag}")
spark.range(3).write.mode("overwrite").parquet("/shared/yl-krb-{tag}")
counts = [spark.read.parquet("/user/bob/yl-krb-{tag}").count(), spark.read.parquet("/shared/yl-krb-{tag}").count()]
client = hdfs.Config().get_client()
client.write("yl-krb-{tag}.txt", b"through the delegation token", overwrite=True)
with client.read("yl-krb-{tag}.txt") as r:
    text = r.read().decode()
print(json.dumps({{"counts": counts, "text": text, "home": sorted(client.list(""))}}))
"""
    out = run_json(bob_kernel, code)
    assert out["counts"] == [7, 3]
    assert out["text"] == "through the delegation token"
    assert {f"yl-krb-{tag}", f"yl-krb-{tag}.txt"} <= set(out["home"])
    bob = hadoop.webhdfs(stack, proxy="bob")
    assert bob.status(f"/user/bob/yl-krb-{tag}.txt")["owner"] == "bob"
    assert bob.status(f"/shared/yl-krb-{tag}")["owner"] == "bob"
    for path in (f"/user/bob/yl-krb-{tag}", f"/user/bob/yl-krb-{tag}.txt", f"/shared/yl-krb-{tag}"):
        bob.delete(path, recursive=True)


def test_the_helpers_token_does_not_open_another_users_home(stack, bob_kernel, alice_secret):
    code = f"""
import json
import hdfs
client = hdfs.Config().get_client()
try:
    client.read({alice_secret!r}).__enter__().read()
    print(json.dumps({{"read": True}}))
except hdfs.HdfsError as e:
    print(json.dumps({{"read": False, "error": str(e)[:300]}}))
"""
    out = run_json(bob_kernel, code)
    assert out["read"] is False and "Permission denied" in out["error"], out


def test_the_edge_refuses_forged_identities_toward_hadoop(stack, edge_as, hadoop):
    # bob asks the edge for alice's home in every way a query string could say "alice"
    bob = edge_as("bob")
    for params in ({"user.name": "alice"}, {"doas": "alice"}, {"doAs": "alice"}, {"delegation": "x"}):
        r = bob.get("/files/user/alice", params=params)
        assert r.status_code == 403, (params, r.status_code, r.text)
    with pytest.raises(HdfsError, match="Permission denied"):
        hadoop.webhdfs(stack, proxy="bob").list("/user/alice")


def test_users_have_no_keytab_only_the_edge_does(stack):
    from pathlib import Path

    kdc = Path(stack["state_dir"]) / "kdc"
    keytabs = sorted(p.name for p in kdc.glob("*.keytab"))
    # the daemons', the NodeManager's own (no key another daemon accepts), the edge's
    assert keytabs == ["hadoop.keytab", "nm.keytab", "service.keytab"]
    for keytab in kdc.glob("*.keytab"):
        assert keytab.stat().st_mode & 0o077 == 0, keytab
    assert not [p for p in Path(stack["state_dir"]).rglob("*.keytab") if p.parent != kdc]


def test_a_stopped_kdc_makes_the_edge_say_so_and_it_recovers(stack):
    """The KDC frozen (SIGSTOP: it takes connections and answers nothing, the worst case for a
    client): /health turns 503 with a sentence naming the KDC; once it answers again, 200."""
    import os
    import signal

    health = f"{stack['edge_url']}/health"
    assert requests.get(health, timeout=10).status_code == 200
    kdc = json.loads((Path(stack["state_dir"]) / "stack.json").read_text())["pids"]["kdc"]
    os.kill(kdc, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 90
        while True:
            r = requests.get(health, timeout=10)
            if r.status_code == 503:
                break
            assert time.monotonic() < deadline, "the edge never noticed the KDC was gone"
            time.sleep(1)
        body = r.json()
        assert body["status"] == "unavailable"
        assert "KDC" in body["reason"], body
        assert "Traceback" not in r.text
    finally:
        os.kill(kdc, signal.SIGCONT)
    deadline = time.monotonic() + 90
    while requests.get(health, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the edge did not recover once the KDC answered again"
        time.sleep(1)


def test_a_wrong_keytab_stops_the_edge_start_with_a_sentence(stack, tmp_path):
    """The daemons' keytab has no key for the service principal: the edge refuses to start and says
    which principal and which keytab file."""
    import subprocess
    import sys

    wrong = stack["hadoop_keytab"]
    from faults import free_port

    cmd = [str(Path(sys.executable).parent / "yardlab-edge"), "--EdgeApp.ip=127.0.0.1", f"--EdgeApp.port={free_port()}",
           f"--AuditLog.path={tmp_path / 'audit.jsonl'}", "--GatewaySupervisor.enabled=False",
           f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}",
           f"--TokenIdentifier.hub_api_url=http://127.0.0.1:{stack['ports']['hub_internal']}/hub/api",
           f"--TokenIdentifier.hub_api_token={stack['edge_service_token']}",
           f"--ResourceManagerClient.urls=['{stack['rm_url']}']",
           f"--Kerberos.keytab={wrong}", f"--Kerberos.principal={stack['service_principal']}",
           f"--Kerberos.ccache={tmp_path / 'krb5cc'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-2000:]
    assert stack["service_principal"] in out and wrong in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]


def test_the_jobs_list_says_when_a_kernels_credentials_expire(stack, bob_kernel, edge_as):
    """Delegation tokens are renewed up to their maximum lifetime and no longer: a kernel's entry
    says when (its start plus the cluster's max lifetime), so a long-lived notebook is restarted
    before it loses HDFS and YARN."""
    deadline = time.monotonic() + 60  # the edge's snapshot of the RM catches up within seconds
    while True:
        apps = edge_as("bob").get("/apps", params={"state": "RUNNING,ACCEPTED"}).json()["apps"]
        mine = [a for a in apps if a["kernel"] == bob_kernel.kernel_id]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(1)
    (app,) = mine
    assert app["credentialsExpire"] == app["startedTime"] + stack["token_max_lifetime_s"] * 1000
    others = [a for a in apps if a["kernel"] is None]
    assert all(a["credentialsExpire"] is None for a in others)


def test_a_kernel_keeps_reading_hdfs_after_its_token_was_renewed(stack, bob_kernel):
    """The kernel's HDFS delegation token expires one renewal interval after it was issued (at the
    kernel's start) unless the ResourceManager renews it; a kernel used past that interval must not
    notice.  Last in this file: its other tests have used the kernel meanwhile, so only the rest of
    the interval is waited for."""
    import stack as stack_mod

    interval = stack_mod.TOKEN_RENEW_MS / 1000
    tag = uuid.uuid4().hex[:8]
    first = run_json(bob_kernel, f"""
import json, time, hdfs
spark.range(5).write.mode("overwrite").parquet("/user/bob/yl-renew-{tag}")
tokens = spark.sparkContext._jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser().getCredentials()
print(json.dumps({{"t": time.time(), "count": spark.read.parquet("/user/bob/yl-renew-{tag}").count(),
                  "kinds": sorted({{t.getKind().toString() for t in tokens.getAllTokens().toArray()}})}}))
""")
    assert first["count"] == 5 and "HDFS_DELEGATION_TOKEN" in first["kinds"]
    time.sleep(max(0.0, bob_kernel.started + interval * 1.5 - time.time()))
    later = run_json(bob_kernel, f"""
import json, time, hdfs
client = hdfs.Config().get_client()
print(json.dumps({{"t": time.time(), "count": spark.read.parquet("/user/bob/yl-renew-{tag}").count(),
                  "listed": "yl-renew-{tag}" in client.list("")}}))
""")
    assert later["t"] - bob_kernel.started > interval * 1.5
    assert later["count"] == 5 and later["listed"] is True
    run_json(bob_kernel, f"""
import json
jvm = spark.sparkContext._jvm
fs = jvm.org.apache.hadoop.fs.FileSystem.get(spark.sparkContext._jsc.hadoopConfiguration())
print(json.dumps({{"deleted": fs.delete(jvm.org.apache.hadoop.fs.Path("/user/bob/yl-renew-{tag}"), True)}}))
""")
