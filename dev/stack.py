"""The yardlab local stack: single-node Hadoop (HDFS + YARN), Kafka, Enterprise Gateway and JupyterHub.

Everything binds to 127.0.0.1 and keeps its state and logs under one folder (``.stack/`` in the
repository, or ``$YARDLAB_STACK_DIR``).  ``make demo`` runs ``python dev/stack.py up``; the pytest
session fixture uses :class:`Stack` directly.  Each piece is started, then waited for with a real
readiness check (never a sleep), and the time it took is printed.  The running stack's endpoints
and demo tokens go to ``<state>/stack.json``.

    python dev/stack.py up       start everything, print the URL and logins, stop on Ctrl-C
    python dev/stack.py down     stop a stack started elsewhere (and anything it left behind)
    python dev/stack.py status   say what is running
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import grp
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

import accounts
from yardlab.edge.osutil import pid_alive, write_private

ROOT = Path(__file__).resolve().parent.parent
HADOOP_LIB = ROOT / "dev" / "hadoop" / "lib"
KAFKA_LIB = ROOT / "dev" / "kafka" / "lib"
VENV = ROOT / ".venv"
EG_VENV = ROOT / ".venv-eg"

#: "kerberos" (the default: a KDC, Kerberized HDFS and YARN, SPNEGO on their web endpoints) or
#: "simple" (Hadoop's simple authentication, as before Kerberos landed; CI smoke-tests it)
SECURITY = os.environ.get("YARDLAB_SECURITY", "kerberos")
#: how people log in to the hub: "demo" (the default: the demo users' login form) or "oidc" (the
#: stack's own OpenID Connect provider, dev/oidc/provider.mjs, through OAuthenticator)
AUTH = os.environ.get("YARDLAB_AUTH", "demo")
#: warm kernels (edge/warm.py): "on" gives every user with a Lab server one warm PySpark kernel (the
#: default, as a site would run it); "group" only members of the hub groups warm-pool and warm-short
#: (the test suite's: its other tests see no warm kernels); "off" none
WARM_POOL = os.environ.get("YARDLAB_WARM_POOL", "on")
#: one OS account per role (dev/accounts.py): a root launcher of the Kerberized stack; otherwise
#: every piece runs as the launcher's own account
SPLIT = accounts.split_wanted(SECURITY)
_LAUNCHER_USER = os.environ.get("USER") or __import__("getpass").getuser()
#: the account the edge and EG run as and authenticate as (its principal: <name>@REALM)
SERVICE_USER = accounts.SERVICE if SPLIT else _LAUNCHER_USER
#: the NameNode's, DataNode's and ResourceManager's account (the HDFS superuser)
HADOOP_USER = accounts.HADOOP if SPLIT else _LAUNCHER_USER
#: the NodeManager's account, which every YARN container runs as
YARN_USER = accounts.YARN if SPLIT else _LAUNCHER_USER
#: the Kafka broker's account (it holds no key: the training broker listens in PLAINTEXT on loopback)
KAFKA_USER = accounts.KAFKA if SPLIT else _LAUNCHER_USER
REALM = "EXAMPLE.COM"
#: HDFS delegation tokens' renewal interval on the Kerberized stack, in ms (Hadoop's default: a day)
TOKEN_RENEW_MS = 60_000
#: how long a delegation token can be renewed for at all, in ms (Hadoop's default: 7 days): a
#: kernel older than this has lost HDFS and YARN; the jobs list says when
TOKEN_MAX_LIFETIME_MS = 7 * 24 * 3600 * 1000
#: the Hadoop daemons' principals (hadoop.keytab, readable by HADOOP_USER only).  Their web
#: endpoints are addressed as 127.0.0.1, so HTTP/127.0.0.1 is their SPNEGO key.
HADOOP_PRINCIPALS = ("nn/localhost", "dn/localhost", "rm/localhost", "HTTP/127.0.0.1")
#: the NodeManager's (nm.keytab): every container can read it (they share its account), so it
#: holds no key another daemon accepts: its web UI is addressed as localhost, with a key of its own
NM_PRINCIPALS = ("nm/localhost", "HTTP/localhost")
NM_WEB_HOST = "localhost"

#: demo logins (password = user name); admin is the hub admin
DEMO_USERS = ("admin", "guest", "alice", "bob")
ADMIN_USERS = ("admin",)
#: accounts the OpenID Connect provider has besides the demo users (password = user name too): the
#: hub has never heard of them, so it makes their hub user at their first login
OIDC_ONLY_USERS = ("carol",)
#: the groups claim of the provider's accounts: every account is a yardlab user, admins are admins
OIDC_USERS_GROUP, OIDC_ADMINS_GROUP = "yardlab-users", "yardlab-admins"
NODE_MODULES = ROOT / "node_modules"

PORTS = {
    "kdc": 8788,  # MiniKdc (TCP), Kerberos stack only
    "hdfs_namenode_rpc": 8020,
    "hdfs_namenode_http": 9870,  # WebHDFS
    "hdfs_datanode": 9866,
    "hdfs_datanode_http": 9864,
    "hdfs_datanode_ipc": 9867,
    "yarn_rm_rpc": 8032,
    "yarn_rm_scheduler": 8030,
    "yarn_rm_tracker": 8031,
    "yarn_rm_admin": 8033,
    "yarn_rm_http": 8088,  # ResourceManager REST + web UI
    "yarn_nm_rpc": 8041,
    "yarn_nm_localizer": 8040,
    "yarn_nm_http": 8042,
    "kafka": 9092,  # the Kafka broker (PLAINTEXT, loopback)
    "kafka_controller": 9093,  # its KRaft controller listener
    "edge_http": 8765,
    "hub_service_http": 8766,  # the managed hub service yardlab (started by the hub)
    "eg_http": 8890,
    "eg_response": 8877,
    "hub_public": 8000,  # configurable-http-proxy, the URL people open
    "hub_proxy_api": 8001,
    "hub_internal": 8081,
    "oidc": 8790,  # the OpenID Connect provider, YARDLAB_AUTH=oidc only
}

# Spark's list of module openings (JavaModuleOptions); Hadoop 3.4 needs them on Java 17 too
JAVA_OPENS = ["-XX:+IgnoreUnrecognizedVMOptions"] + [
    f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in (
        "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
        "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref",
        "sun.nio.ch", "sun.nio.cs", "sun.security.action", "sun.util.calendar")
] + ["-Djdk.reflect.useDirectMethodHandle=false"]


# Spark binds to the first non-loopback address when the host name resolves to 127.0.0.1;
# keep drivers and executors on loopback like everything else
LOOPBACK_SPARK_CONF = {
    "spark.yarn.appMasterEnv.SPARK_LOCAL_IP": "127.0.0.1",
    "spark.executorEnv.SPARK_LOCAL_IP": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


class StackError(RuntimeError):
    """A problem a person can fix, with a message that says how."""


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# small helpers


def http_get(url: str, timeout: float = 3.0, headers: dict[str, str] | None = None,
             kerberos: "KerberosLogin | None" = None) -> tuple[int, bytes]:
    """GET; with ``kerberos``, authenticated by SPNEGO as the service principal."""
    headers = {**(headers or {}), **(kerberos.header(url) if kerberos else {})}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_json(url: str, method: str = "GET", body: dict | None = None,
              headers: dict[str, str] | None = None, timeout: float = 10.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def who_listens(port: int) -> str:
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split("users:", 1)[1] if "users:" in out else ""


def java_home() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return home
    java = shutil.which("java")
    if not java:
        raise StackError("Java is missing: install OpenJDK 17 (apt-get install openjdk-17-jdk-headless) "
                         "or set JAVA_HOME")
    return str(Path(os.path.realpath(java)).parent.parent)


def spark_home() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c",
                          "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise StackError("pyspark is not installed in .venv: run `make install` first")
    return out.stdout.strip()


def hadoop_xml(props: dict[str, object]) -> str:
    rows = "".join(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
                   for k, v in props.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


def processes_under(folder: Path, exclude: set[int]) -> list[int]:
    """Pids whose working directory or command line lies in ``folder`` (stack leftovers)."""
    found = []
    needle = str(folder)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in exclude:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == needle or cwd.startswith(needle + "/") or needle + "/" in cmd:
            found.append(pid)
    return found


def kill_pids(pids: list[int], grace: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)


def own_ancestry() -> set[int]:
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        pids.add(pid)
    return pids


# ---------------------------------------------------------------------------------------------
# Kerberos: the launcher's own login (readiness checks and provisioning through SPNEGO)


class KerberosLogin:
    """The KDC's files under ``<state>/kdc`` and a SPNEGO header maker for the service principal."""

    def __init__(self, state: Path) -> None:
        self.dir = state / "kdc"
        self.krb5_conf = self.dir / "krb5.conf"
        self.hadoop_keytab = self.dir / "hadoop.keytab"
        self.service_keytab = self.dir / "service.keytab"
        self.nm_keytab = self.dir / "nm.keytab"
        self.principal = f"{SERVICE_USER}@{REALM}"
        self.ccache = self.dir / "launcher.ccache"
        self._login = None

    def write_krb5_conf(self) -> None:
        """krb5.conf for MIT clients (python-gssapi, kinit) and Java alike: the KDC on loopback, TCP,
        and host names taken as written (HTTP/127.0.0.1 is a principal of its own here)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"  default_realm = {REALM}\n"
            "  udp_preference_limit = 1\n"
            "  dns_lookup_kdc = false\n"
            "  dns_lookup_realm = false\n"
            "  dns_canonicalize_hostname = false\n"
            "  rdns = false\n"
            "  ticket_lifetime = 24h\n"
            "  renew_lifetime = 7d\n"
            "  forwardable = true\n"
            "[realms]\n"
            f"  {REALM} = {{\n    kdc = 127.0.0.1:{PORTS['kdc']}\n  }}\n")
        os.environ["KRB5_CONFIG"] = str(self.krb5_conf)

    def write_spec(self) -> Path:
        spec = self.dir / "principals.txt"
        spec.write_text(f"{self.hadoop_keytab} {' '.join(HADOOP_PRINCIPALS)}\n"
                        f"{self.nm_keytab} {' '.join(NM_PRINCIPALS)}\n"
                        f"{self.service_keytab} {SERVICE_USER}\n")
        return spec

    def forget(self) -> None:
        """Drop the login (its ticket cache was removed, or the KDC is a new one)."""
        self._login = None

    def hdfs_client(self, url: str):  # noqa: ANN201 - hdfs.Client, imported late like the login
        """The `hdfs` library's client for WebHDFS at ``url``, as the service principal (SPNEGO)."""
        import requests
        from hdfs import Client

        from yardlab.edge.kerberos import SpnegoAuth

        self.header(url)  # logs in once
        session = requests.Session()
        session.auth = SpnegoAuth(self._login)
        return Client(url, session=session)

    def header(self, url: str) -> dict[str, str]:
        """SPNEGO as the service principal, through the edge's own Kerberos login (one implementation)."""
        from urllib.parse import urlsplit

        from yardlab.edge.kerberos import Kerberos

        if self._login is None:
            login = Kerberos(keytab=str(self.service_keytab), principal=self.principal, ccache=str(self.ccache))
            login.login()
            self._login = login
        return {"Authorization": self._login.negotiate_header(urlsplit(url).hostname or "")}


# ---------------------------------------------------------------------------------------------
# pieces


@dataclass
class Piece:
    """One long-running process of the stack, and how to tell it is ready."""

    name: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    timeout: float = 180.0
    proc: subprocess.Popen | None = None
    #: restarted by the launcher when it exits (the edge: a new one adopts the running EG)
    restartable: bool = False
    #: the OS account it runs as (None: the launcher's)
    user: str | None = None
    #: its umask (None: the launcher's); the KDC's is 077, so no keytab is readable while written
    umask: int | None = None


class Stack:
    """Starts, checks and stops the local stack; used by ``make demo`` and the test session."""

    def __init__(self, state_dir: str | os.PathLike | None = None) -> None:
        self.state = Path(state_dir or os.environ.get("YARDLAB_STACK_DIR") or ROOT / ".stack").resolve()
        self.logs = self.state / "logs"
        self.info_path = self.state / "stack.json"
        self.pieces: list[Piece] = []
        self.info: dict = {}
        self.timings: dict[str, float] = {}
        self.kerberos = KerberosLogin(self.state) if SECURITY == "kerberos" else None

    # -- layout ---------------------------------------------------------------------------------
    @property
    def hadoop_conf(self) -> Path:
        return self.state / "hadoop" / "conf"

    @property
    def nm_conf(self) -> Path:
        """The NodeManager's own configuration (its keytab, web key and temporary folder)."""
        return self.state / "hadoop" / "conf-nm"

    @property
    def nm_web_host(self) -> str:
        return NM_WEB_HOST if self.kerberos else "127.0.0.1"

    @property
    def kernels_dir(self) -> Path:
        return self.state / "share" / "jupyter" / "kernels"

    def url(self, key: str, path: str = "") -> str:
        return f"http://127.0.0.1:{PORTS[key]}{path}"

    # -- checks before start -------------------------------------------------------------------
    def preflight(self) -> None:
        if SECURITY not in ("kerberos", "simple"):
            raise StackError(f"YARDLAB_SECURITY={SECURITY!r}: say kerberos (the default) or simple")
        if AUTH not in ("demo", "oidc"):
            raise StackError(f"YARDLAB_AUTH={AUTH!r}: say demo (the default) or oidc")
        if AUTH == "oidc" and not (shutil.which("node") and (NODE_MODULES / "oidc-provider").is_dir()):
            raise StackError("the OpenID Connect provider needs node and node_modules/oidc-provider: run `make install`")
        if WARM_POOL not in ("on", "group", "off"):
            raise StackError(f"YARDLAB_WARM_POOL={WARM_POOL!r}: say on (the default), group or off")
        java_home()
        if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka's jars are missing in {KAFKA_LIB}: run `make install` "
                             "(it fetches them from Maven Central with dev/kafka/pom.xml)")
        if not HADOOP_LIB.exists() or not any(HADOOP_LIB.glob("hadoop-yarn-server-resourcemanager-*.jar")):
            raise StackError(f"Hadoop jars are missing in {HADOOP_LIB}: run `make install` "
                             "(it fetches them from Maven Central with dev/hadoop/pom.xml)")
        for exe in (VENV / "bin" / "jupyterhub", EG_VENV / "bin" / "jupyter-enterprisegateway"):
            if not exe.exists():
                raise StackError(f"{exe} is missing: run `make install`")
        if not self.chp_command()[0]:
            raise StackError("configurable-http-proxy is missing: run `make install` (npm ci)")
        previous = self.read_info()
        if previous and pid_alive(previous.get("launcher_pid", -1)):
            raise StackError(f"a yardlab stack is already running (launcher pid {previous['launcher_pid']}, "
                             f"{self.info_path}); stop it with Ctrl-C in its terminal or "
                             "`python dev/stack.py down`")
        leftovers = processes_under(self.state, own_ancestry())
        if leftovers:
            log(f"stopping {len(leftovers)} process(es) left behind by an earlier run")
            kill_pids(leftovers)
        busy = [(name, port) for name, port in PORTS.items() if port_in_use(port)]
        if busy and leftovers:
            # processes we just stopped may take a moment to let go of their sockets
            deadline = time.monotonic() + 15
            while busy and time.monotonic() < deadline:
                time.sleep(0.5)
                busy = [(name, port) for name, port in PORTS.items() if port_in_use(port)]
        if busy:
            lines = [f"  port {port} ({name}) is taken {who_listens(port)}".rstrip() for name, port in busy]
            raise StackError("cannot start: ports the stack needs are in use on 127.0.0.1:\n" + "\n".join(lines)
                             + "\nstop whatever holds them (or an older stack: `python dev/stack.py down`)")

    def read_info(self) -> dict:
        try:
            return json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return {}

    def chp_command(self) -> list[str]:
        chp = Path(os.environ.get("YARDLAB_CHP") or ROOT / "node_modules" / ".bin" / "configurable-http-proxy")
        return [str(chp)] if chp.exists() else [shutil.which("configurable-http-proxy") or ""]

    # -- configuration -----------------------------------------------------------------------------
    def write_hadoop_conf(self) -> None:
        conf, data = self.hadoop_conf, self.state / "hadoop"
        conf.mkdir(parents=True, exist_ok=True)
        p = PORTS
        core = {
            "fs.defaultFS": f"hdfs://127.0.0.1:{p['hdfs_namenode_rpc']}",
            "hadoop.tmp.dir": data / "tmp",
            # the service account may act as any user (doAs on REST, --proxy-user on RPC)
            f"hadoop.proxyuser.{SERVICE_USER}.hosts": "*",
            f"hadoop.proxyuser.{SERVICE_USER}.groups": "*",
            f"hadoop.proxyuser.{SERVICE_USER}.users": "*",
            "hadoop.http.staticuser.user": "dr.who",
        }
        hdfs = {
            "dfs.namenode.name.dir": data / "dfs" / "name",
            "dfs.datanode.data.dir": data / "dfs" / "data",
            "dfs.replication": 1,
            "dfs.permissions.enabled": "true",
            "dfs.webhdfs.enabled": "true",
            "dfs.namenode.acls.enabled": "true",
            "dfs.namenode.rpc-address": f"127.0.0.1:{p['hdfs_namenode_rpc']}",
            "dfs.namenode.http-address": f"127.0.0.1:{p['hdfs_namenode_http']}",
            "dfs.namenode.https-address": "127.0.0.1:0",
            "dfs.namenode.secondary.http-address": "127.0.0.1:0",
            "dfs.datanode.address": f"127.0.0.1:{p['hdfs_datanode']}",
            "dfs.datanode.http.address": f"127.0.0.1:{p['hdfs_datanode_http']}",
            "dfs.datanode.ipc.address": f"127.0.0.1:{p['hdfs_datanode_ipc']}",
            "dfs.datanode.hostname": "127.0.0.1",
            "dfs.namenode.safemode.extension": 0,
            "dfs.namenode.safemode.min.datanodes": 0,
            "dfs.namenode.fs-limits.min-block-size": 1024,
        }
        yarn = {
            "yarn.resourcemanager.hostname": "127.0.0.1",
            "yarn.resourcemanager.address": f"127.0.0.1:{p['yarn_rm_rpc']}",
            "yarn.resourcemanager.scheduler.address": f"127.0.0.1:{p['yarn_rm_scheduler']}",
            "yarn.resourcemanager.resource-tracker.address": f"127.0.0.1:{p['yarn_rm_tracker']}",
            "yarn.resourcemanager.admin.address": f"127.0.0.1:{p['yarn_rm_admin']}",
            "yarn.resourcemanager.webapp.address": f"127.0.0.1:{p['yarn_rm_http']}",
            "yarn.resourcemanager.webapp.https.address": "127.0.0.1:0",
            "yarn.resourcemanager.scheduler.class":
                "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
            "yarn.nodemanager.hostname": "127.0.0.1",
            "yarn.nodemanager.address": f"127.0.0.1:{p['yarn_nm_rpc']}",
            "yarn.nodemanager.localizer.address": f"127.0.0.1:{p['yarn_nm_localizer']}",
            "yarn.nodemanager.webapp.address": f"{self.nm_web_host}:{p['yarn_nm_http']}",
            "yarn.nodemanager.webapp.https.address": "127.0.0.1:0",
            "yarn.nodemanager.collector-service.address": "127.0.0.1:0",
            "yarn.nodemanager.amrmproxy.address": "127.0.0.1:0",
            "yarn.nodemanager.local-dirs": data / "nm-local",
            # the NodeManager keeps its cache of localized resources across restarts: the environments'
            # archives (the built-in kernels' base among them) are unpacked once per state folder, not at
            # every start (without Hadoop's native library each of their ~10,000 files costs a chmod process)
            "yarn.nodemanager.recovery.enabled": "true",
            "yarn.nodemanager.recovery.dir": data / "nm-recovery",
            "yarn.nodemanager.log-dirs": self.logs / "containers",
            # sized for a 2-core / 24 GB machine: 8 GB of containers, vcores are a share, not cores
            "yarn.nodemanager.resource.memory-mb": 8192,
            "yarn.nodemanager.resource.cpu-vcores": 8,
            "yarn.scheduler.minimum-allocation-mb": 256,
            "yarn.scheduler.maximum-allocation-mb": 4096,
            "yarn.scheduler.maximum-allocation-vcores": 4,
            # Java 17 JVMs reserve far more virtual than physical memory
            "yarn.nodemanager.vmem-check-enabled": "false",
            "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99.9",
            "yarn.nodemanager.disk-health-checker.min-free-space-per-disk-mb": 100,
            "yarn.nodemanager.env-whitelist": "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,"
                                              "HADOOP_CONF_DIR,CLASSPATH_PREPEND_DISTCACHE,HADOOP_YARN_HOME,"
                                              "HADOOP_HOME,PATH,LANG,TZ",
            "yarn.nodemanager.delete.debug-delay-sec": 0,
            "yarn.log-aggregation-enable": "false",
            "yarn.resourcemanager.max-completed-applications": 1000,
            # containers are allocated as soon as they are asked for, not at the node's next heartbeat
            # (kernel start: the AM's container, then the executors'); see the capacity scheduler's
            # schedule-asynchronously below
            "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": 250,
            # YARN enforces ownership itself too: only an app's owner (or the service account,
            # the YARN admin) may kill it, whatever reaches the RM
            "yarn.acl.enable": "true",
            "yarn.admin.acl": ",".join(dict.fromkeys((SERVICE_USER, HADOOP_USER))),
        }
        sched = {
            "yarn.scheduler.capacity.root.queues": "default,interactive",
            "yarn.scheduler.capacity.root.acl_submit_applications": "*",
            "yarn.scheduler.capacity.root.acl_administer_queue": ",".join(dict.fromkeys((SERVICE_USER, HADOOP_USER))),
            "yarn.scheduler.capacity.root.default.capacity": 50,
            "yarn.scheduler.capacity.root.interactive.capacity": 50,
            "yarn.scheduler.capacity.root.default.maximum-capacity": 100,
            "yarn.scheduler.capacity.root.interactive.maximum-capacity": 100,
            "yarn.scheduler.capacity.root.default.user-limit-factor": 2,
            "yarn.scheduler.capacity.root.interactive.user-limit-factor": 2,
            "yarn.scheduler.capacity.root.default.state": "RUNNING",
            "yarn.scheduler.capacity.root.interactive.state": "RUNNING",
            "yarn.scheduler.capacity.root.default.acl_submit_applications": "*",
            "yarn.scheduler.capacity.root.interactive.acl_submit_applications": "*",
            # every kernel is its own ApplicationMaster: the default 10% would queue the second one
            "yarn.scheduler.capacity.maximum-am-resource-percent": 0.8,
            "yarn.scheduler.capacity.schedule-asynchronously.enable": "true",
            "yarn.scheduler.capacity.schedule-asynchronously.scheduling-interval-ms": 20,
            "yarn.scheduler.capacity.resource-calculator":
                "org.apache.hadoop.yarn.util.resource.DominantResourceCalculator",
        }
        if self.kerberos:
            self.add_kerberos_conf(core, hdfs, yarn)
        nm_core, nm_yarn = {**core, "hadoop.tmp.dir": data / "nm-tmp"}, dict(yarn)
        if self.kerberos:
            self.add_nm_kerberos_conf(nm_core, nm_yarn)
        log4j = ("log4j.rootLogger=INFO,console\n"
                 "log4j.appender.console=org.apache.log4j.ConsoleAppender\n"
                 "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n"
                 "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n\n"
                 "log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR\n")
        self.nm_conf.mkdir(parents=True, exist_ok=True)
        for folder, c, y in ((conf, core, yarn), (self.nm_conf, nm_core, nm_yarn)):
            (folder / "core-site.xml").write_text(hadoop_xml(c))
            (folder / "hdfs-site.xml").write_text(hadoop_xml(hdfs))
            (folder / "yarn-site.xml").write_text(hadoop_xml(y))
            (folder / "capacity-scheduler.xml").write_text(hadoop_xml(sched))
            (folder / "log4j.properties").write_text(log4j)

    def add_kerberos_conf(self, core: dict, hdfs: dict, yarn: dict) -> None:
        """Kerberos for HDFS and YARN, SPNEGO on their web endpoints, block tokens, a DataNode
        secured by SASL instead of privileged ports, and a proxy-user entry limited to loopback."""
        k = self.kerberos
        assert k is not None
        keytab = str(k.hadoop_keytab)
        http = f"HTTP/127.0.0.1@{REALM}"
        secret = self.state / "hadoop" / "http-signature-secret"
        if not secret.exists():
            write_private(secret, secrets.token_hex(32))
        core.update({
            "hadoop.security.authentication": "kerberos",
            "hadoop.security.authorization": "true",  # service-level authorization (hadoop-policy.xml)
            # the daemons' principals are the accounts they run as, each named: nn/ dn/ rm/ the HDFS
            # superuser, nm/ (whose key every container can read) a plain account.  Anything else
            # (HTTP/, whose NodeManager key containers can read too) keeps its first part: a user
            # named "HTTP" with no powers.  One-part principals (users, the edge) keep their name.
            # (one rule each: Hadoop's rule syntax allows no parentheses inside the pattern)
            "hadoop.security.auth_to_local": "\n".join(
                [f"RULE:[2:$1@$0](nm@{REALM})s/.*/{YARN_USER}/"]
                + [f"RULE:[2:$1@$0]({daemon}@{REALM})s/.*/{HADOOP_USER}/" for daemon in ("nn", "dn", "rm")]
                + ["DEFAULT"]),
            # only from this host; on the split stack only for hub users (their accounts are in
            # yl-users, made by the hub for every user it has), never for a daemon's account
            f"hadoop.proxyuser.{SERVICE_USER}.hosts": "127.0.0.1,localhost",
            **({f"hadoop.proxyuser.{SERVICE_USER}.groups": accounts.USERS_GROUP} if SPLIT else {}),
            # a hub user's account made a moment after a lookup must not be forgotten for 30 s
            "hadoop.security.groups.negative-cache.secs": 0,
            "hadoop.http.filter.initializers": "org.apache.hadoop.security.AuthenticationFilterInitializer",
            "hadoop.http.authentication.type": "kerberos",
            "hadoop.http.authentication.simple.anonymous.allowed": "false",
            # "*": every HTTP/ principal in the keytab, so http://127.0.0.1 and http://localhost both work
            "hadoop.http.authentication.kerberos.principal": "*",
            "hadoop.http.authentication.kerberos.keytab": keytab,
            "hadoop.http.authentication.signature.secret.file": str(secret),
            "hadoop.http.authentication.cookie.domain": "",
        })
        if SPLIT:
            del core[f"hadoop.proxyuser.{SERVICE_USER}.users"]  # users "*" would admit anyone
        hdfs.update({
            "dfs.block.access.token.enable": "true",
            # the service account provisions homes (mkdir, chown): HDFS superuser by this group
            **({"dfs.permissions.superusergroup": accounts.SUPERGROUP} if SPLIT else {}),
            "dfs.namenode.kerberos.principal": f"nn/localhost@{REALM}",
            "dfs.namenode.keytab.file": keytab,
            "dfs.namenode.kerberos.internal.spnego.principal": http,
            "dfs.datanode.kerberos.principal": f"dn/localhost@{REALM}",
            "dfs.datanode.keytab.file": keytab,
            "dfs.web.authentication.kerberos.principal": "*",
            "dfs.web.authentication.kerberos.keytab": keytab,
            # production secures the DataNode with privileged ports (jsvc) or SASL + HTTPS_ONLY;
            # here SASL with the testing switch for non-privileged ports and plain HTTP
            "dfs.data.transfer.protection": "authentication",
            "ignore.secure.ports.for.testing": "true",
            # a delegation token lives a minute unless renewed (sites: a day), so the test suite
            # sees the ResourceManager renew a kernel's tokens within a test
            "dfs.namenode.delegation.token.renew-interval": TOKEN_RENEW_MS,
            "dfs.namenode.delegation.token.max-lifetime": TOKEN_MAX_LIFETIME_MS,
        })
        yarn.update({
            "yarn.resourcemanager.principal": f"rm/localhost@{REALM}",
            "yarn.resourcemanager.keytab": keytab,
            "yarn.nodemanager.principal": f"nm/localhost@{REALM}",
            "yarn.resourcemanager.webapp.spnego-principal": http,
            "yarn.resourcemanager.webapp.spnego-keytab-file": keytab,
            "yarn.web-proxy.principal": http,
            "yarn.resourcemanager.delegation.token.max-lifetime": TOKEN_MAX_LIFETIME_MS,
            "yarn.web-proxy.keytab": keytab,
        })

    def add_nm_kerberos_conf(self, nm_core: dict, nm_yarn: dict) -> None:
        """The NodeManager's Kerberos settings: nm.keytab only, for its RPC and its web UI.

        Every container runs as the NodeManager's account and can read its keytab.  A container
        holding an HTTP/ key the NameNode or the ResourceManager also accepts could forge a ticket
        to WebHDFS or the RM REST API as anyone; so the NodeManager's web UI has a host name and a
        key of its own (HTTP/localhost), the others answer only to HTTP/127.0.0.1, and nm/ maps to
        a plain account (auth_to_local), never to the HDFS superuser."""
        k = self.kerberos
        assert k is not None
        secret = self.state / "hadoop" / "nm-http-signature-secret"
        if not secret.exists():
            write_private(secret, secrets.token_hex(32))
        nm_core.update({
            "hadoop.http.authentication.kerberos.principal": f"HTTP/{NM_WEB_HOST}@{REALM}",
            "hadoop.http.authentication.kerberos.keytab": str(k.nm_keytab),
            "hadoop.http.authentication.signature.secret.file": str(secret),
        })
        nm_yarn.update({
            "yarn.nodemanager.keytab": str(k.nm_keytab),
            "yarn.nodemanager.webapp.spnego-principal": f"HTTP/{NM_WEB_HOST}@{REALM}",
            "yarn.nodemanager.webapp.spnego-keytab-file": str(k.nm_keytab),
        })
        for key in ("yarn.resourcemanager.keytab", "yarn.resourcemanager.webapp.spnego-keytab-file",
                    "yarn.web-proxy.keytab"):
            nm_yarn.pop(key, None)

    def write_spark_conf(self, spark: str) -> Path:
        conf = self.state / "spark" / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        python = str(VENV / "bin" / "python")
        props = {
            "spark.master": "yarn",
            # Spark's jars are on this node already: never zip and upload 400 MB per submit
            "spark.yarn.jars": f"local:{spark}/jars/*",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": python,
            "spark.executorEnv.PYSPARK_PYTHON": python,
            "spark.driver.memory": "512m",
            "spark.executor.memory": "512m",
            "spark.executor.instances": "1",
            "spark.yarn.maxAppAttempts": "1",
            "spark.ui.showConsoleProgress": "false",
            **LOOPBACK_SPARK_CONF,
        }
        (conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in props.items()))
        return conf

    def write_kernelspecs(self, spark: str, jhome: str) -> None:
        from yardlab.edge.kernelspecs import KernelSite, install_builtin

        launchers = next((EG_VENV / "lib").glob("python3*/site-packages/gateway_provisioners/kernel-launchers"))
        site = KernelSite(
            spark_home=spark, java_home=jhome, hadoop_conf_dir=str(self.hadoop_conf),
            yarn_endpoint=self.url("yarn_rm_http"), launchers_dir=str(launchers),
            python=str(VENV / "bin" / "python"), kernel_ip="127.0.0.1",
            webhdfs_url=self.url("hdfs_namenode_http"),
            spark_conf={"spark.yarn.jars": f"local:{spark}/jars/*", "spark.ui.showConsoleProgress": "false",
                        **LOOPBACK_SPARK_CONF,
                        # where a notebook finds Kafka (os.environ["KAFKA_BOOTSTRAP_SERVERS"]), driver and executors
                        "spark.yarn.appMasterEnv.KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                        "spark.executorEnv.KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                        # Kerberos: the kernel's HDFS helpers use the user's delegation token
                        **({"spark.yarn.appMasterEnv.YARDLAB_HDFS_AUTH": "token"} if self.kerberos else {})})
        for path in install_builtin(self.kernels_dir, site):
            log(f"kernelspec {path.name} written")
        # the edge writes users' environment kernelspecs for the same site
        self.info["kernel_site"] = dataclasses.asdict(site)
        self.info["conda_channel"] = str(self.state / "conda-channel")

    # -- start ---------------------------------------------------------------------------------------
    def java_piece(self, name: str, main: str, args: list[str], heap: str, ready: Callable[[], bool],
                   jhome: str, user: str = HADOOP_USER) -> Piece:
        conf = self.nm_conf if name == "nodemanager" else self.hadoop_conf
        # daemons log to the console (the launcher's log file); this folder is theirs to write
        run = self.state / "hadoop" / ("run-nm" if name == "nodemanager" else "run")
        cp = f"{conf}:{HADOOP_LIB}/*"
        argv = [f"{jhome}/bin/java", *JAVA_OPENS, f"-Xmx{heap}", f"-Dhadoop.log.dir={run}",
                f"-Dyarn.log.dir={run}", f"-Dhadoop.home.dir={self.state / 'hadoop'}",
                f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
                "-Djava.net.preferIPv4Stack=true", *self.java_krb5_opts(), "-cp", cp, main, *args]
        env = {"JAVA_HOME": jhome, "HADOOP_CONF_DIR": str(conf),
               "YARN_CONF_DIR": str(conf), "HADOOP_HOME": str(self.state / "hadoop")}
        return Piece(name, argv, ready, env=env, cwd=self.state / "hadoop", user=user if SPLIT else None)

    def java_krb5_opts(self) -> list[str]:
        return [f"-Djava.security.krb5.conf={self.kerberos.krb5_conf}"] if self.kerberos else []

    # -- Kafka: one broker in KRaft mode (broker and controller in one JVM, no ZooKeeper) ------------------
    @property
    def kafka_dir(self) -> Path:
        return self.state / "kafka"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{PORTS['kafka']}"

    def write_kafka_conf(self) -> Path:
        """server.properties of a single-node training broker: loopback, PLAINTEXT, small and quick to start
        (a few partitions for the internal topics, one replica of everything)."""
        conf, data = self.kafka_dir, self.kafka_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{PORTS['kafka_controller']}",
            "listeners": f"PLAINTEXT://127.0.0.1:{PORTS['kafka']},CONTROLLER://127.0.0.1:{PORTS['kafka_controller']}",
            "advertised.listeners": f"PLAINTEXT://{self.kafka_bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": data,
            "num.partitions": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 4,  # 50 by default: the first consumer group would wait for them
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "log.retention.hours": 24,
            "log.segment.bytes": 16 * 1024 * 1024,
        }
        (conf / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (conf / "log4j2.properties").write_text(
            "appender.console.type=Console\nappender.console.name=console\n"
            "appender.console.layout.type=PatternLayout\nappender.console.layout.pattern=%d{ISO8601} %p %c{1}: %m%n\n"
            "rootLogger.level=WARN\nrootLogger.appenderRef.console.ref=console\n"
            "logger.server.name=kafka.server.KafkaRaftServer\nlogger.server.level=INFO\n")
        return conf / "server.properties"

    def kafka_java(self, jhome: str, main: str, args: list[str], heap: str) -> list[str]:
        # C1 and the serial collector: a quicker start and less CPU on the 2-core stack
        return [f"{jhome}/bin/java", f"-Xmx{heap}", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.kafka_dir / 'logs'}", "-cp", f"{KAFKA_LIB}/*", main, *args]

    def format_kafka(self, jhome: str, conf: Path) -> None:
        """`kafka-storage format` on the first start: a new cluster id in the data folder."""
        if (self.kafka_dir / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        argv = self.kafka_java(jhome, "kafka.tools.StorageTool", ["format", "-t", cluster_id, "-c", str(conf)], "256m")
        kwargs, login = self.popen_as(KAFKA_USER if SPLIT else None)
        with self.open_log("kafka-format") as f:
            rc = subprocess.run(argv, cwd=self.kafka_dir, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **login},
                                **kwargs).returncode
        if rc != 0:
            raise StackError(f"formatting Kafka's storage failed; see {self.logs / 'kafka-format.log'}")
        log("Kafka storage formatted (cluster " + cluster_id + ")")

    def kafka_piece(self, jhome: str) -> Piece:
        conf = self.write_kafka_conf()
        if SPLIT:
            accounts.own(self.kafka_dir, KAFKA_USER, 0o700, recursive=True)
        self.format_kafka(jhome, conf)
        return Piece("kafka", self.kafka_java(jhome, "kafka.Kafka", [str(conf)], "320m"), self.kafka_ready,
                     cwd=self.kafka_dir, timeout=120, user=KAFKA_USER if SPLIT else None)

    def kafka_ready(self) -> bool:
        """The broker answers a metadata request (the edge's own probe) and lists itself."""
        from yardlab.edge.kafka import KafkaUnreachable, describe_cluster

        try:
            return describe_cluster(self.kafka_bootstrap, 2.0)["brokers"] >= 1
        except KafkaUnreachable:
            return False

    def start_kdc(self, jhome: str) -> None:
        """MiniKdc as its own process; it writes the keytabs, then ready.json."""
        k = self.kerberos
        assert k is not None
        k.write_krb5_conf()
        # tickets cached by an earlier run may be for keys this KDC no longer has (its work folder
        # was removed): the launcher's own login starts afresh
        k.ccache.unlink(missing_ok=True)
        k.forget()
        spec = k.write_spec()
        ready = k.dir / "work" / "ready.json"
        ready.unlink(missing_ok=True)
        kdc = Piece("kdc", [f"{jhome}/bin/java", "-Xmx256m", "-Djava.net.preferIPv4Stack=true",
                            "-cp", f"{HADOOP_LIB}/*", str(ROOT / "dev" / "kdc" / "YardlabKdc.java"),
                            str(k.dir / "work"), str(PORTS["kdc"]), str(spec)],
                    ready.exists, cwd=k.dir, timeout=90, restartable=True, umask=0o077)
        self.start_piece(kdc)
        self.wait_ready(kdc)

    def popen_as(self, user: str | None) -> tuple[dict, dict[str, str]]:
        """Popen arguments and environment for a process run as ``user`` (None: as the launcher)."""
        if not user:
            return {}, {}
        return accounts.popen_args(user), accounts.login_env(user)

    def open_log(self, name: str):
        """A piece's log: 0600, the launcher's (the piece writes to the descriptor it is handed)."""
        self.logs_dir()
        fd = os.open(self.logs / f"{name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # one from an older stack may be 0644
        return os.fdopen(fd, "ab")

    def start_piece(self, piece: Piece) -> None:
        logf = self.open_log(piece.name)
        kwargs, login = self.popen_as(piece.user)
        env = {**os.environ, **login, **piece.env}
        piece.proc = subprocess.Popen(piece.argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=piece.cwd or self.state, env=env, start_new_session=True,
                                      umask=-1 if piece.umask is None else piece.umask, **kwargs)
        logf.close()
        piece.started = time.monotonic()  # type: ignore[attr-defined]
        self.pieces.append(piece)
        self.save_info()

    def wait_ready(self, piece: Piece) -> None:
        deadline = piece.started + piece.timeout  # type: ignore[attr-defined]
        while True:
            if piece.proc and piece.proc.poll() is not None:
                raise StackError(f"{piece.name} exited with code {piece.proc.returncode} before it was ready; "
                                 f"see {self.logs / (piece.name + '.log')}:\n{self.tail(piece.name)}")
            try:
                if piece.ready():
                    break
            except (OSError, ValueError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise StackError(f"{piece.name} was not ready after {piece.timeout:.0f} s; "
                                 f"see {self.logs / (piece.name + '.log')}:\n{self.tail(piece.name)}")
            time.sleep(0.25)
        took = time.monotonic() - piece.started  # type: ignore[attr-defined]
        self.timings[piece.name] = round(took, 1)
        log(f"{piece.name} ready in {took:.1f} s")

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def save_info(self) -> None:
        self.info["launcher_pid"] = os.getpid()
        self.info["pids"] = {p.name: p.proc.pid for p in self.pieces if p.proc}
        self.info["timings"] = self.timings
        write_private(self.info_path, json.dumps(self.info, indent=2) + "\n")  # it holds the demo tokens
        if SPLIT:
            accounts.own(self.info_path, SERVICE_USER)  # the edge reads its configuration from it

    # -- accounts ------------------------------------------------------------------------------------
    def make_accounts(self) -> None:
        """The split stack's OS accounts (dev/accounts.py), each with its home under the state folder."""
        if not SPLIT:
            if os.geteuid() == 0 and self.kerberos:
                why = (f"{', '.join(accounts.unreachable())} cannot be entered by other accounts"
                       if accounts.unreachable() else "YARDLAB_ACCOUNTS=one")
                log(f"one OS account for everything ({why}): kernels and Lab terminals can read the keytabs")
            return
        os.chmod(self.state, 0o711)  # each account reaches its own folders; nobody lists the others
        # nothing of an earlier run may still run as one of the stack's accounts while their files
        # are handed out (a user's process left behind in a terminal, a daemon that outlived it)
        try:
            users = tuple(grp.getgrnam(accounts.USERS_GROUP).gr_mem)
        except KeyError:
            users = ()
        accounts.stop_processes_of((HADOOP_USER, YARN_USER, SERVICE_USER, KAFKA_USER, *users))
        accounts.ensure_account(HADOOP_USER, self.state / "hadoop" / "run", system=True)
        accounts.ensure_account(YARN_USER, self.state / "hadoop" / "run-nm", system=True)
        accounts.ensure_account(SERVICE_USER, self.state / "service-home", system=True, groups=(accounts.SUPERGROUP,))
        accounts.ensure_account(KAFKA_USER, self.kafka_dir, system=True)
        accounts.ensure_group(accounts.USERS_GROUP)
        os.chmod(self.state / "hadoop", 0o755)
        (self.state / "home").mkdir(exist_ok=True)
        os.chmod(self.state / "home", 0o711)
        for user in DEMO_USERS:  # before Hadoop starts, so it knows their groups from the first request
            accounts.ensure_hub_user(user, self.state / "home" / user)

    def hand_out_files(self) -> None:
        """Give each account its files and nobody else's: keytabs 0600 to their daemon, data and
        work folders 0700 to the account that writes them, secrets the launcher's or the edge's."""
        if not SPLIT:
            return
        k = self.kerberos
        assert k is not None
        own = accounts.own
        os.chmod(k.dir, 0o711)
        os.chmod(k.dir / "work", 0o700)  # the KDC's database and the principals' passwords
        os.chmod(k.krb5_conf, 0o644)
        self.own_keytabs()
        hadoop = self.state / "hadoop"
        for name in ("dfs", "tmp", "run"):
            (hadoop / name).mkdir(exist_ok=True)
            own(hadoop / name, HADOOP_USER, 0o700, recursive=True)
        own(hadoop / "http-signature-secret", HADOOP_USER, 0o600)
        for name in ("nm-local", "nm-tmp", "run-nm", "nm-recovery"):
            (hadoop / name).mkdir(exist_ok=True)
            own(hadoop / name, YARN_USER, 0o700, recursive=True)
        own(hadoop / "nm-http-signature-secret", YARN_USER, 0o600)
        self.logs_dir()
        os.chmod(self.logs, 0o711)
        (self.logs / "containers").mkdir(exist_ok=True)
        own(self.logs / "containers", YARN_USER, 0o700, recursive=True)
        eg_log = self.logs / "enterprise-gateway.log"
        os.close(os.open(eg_log, os.O_WRONLY | os.O_CREAT, 0o600))
        own(eg_log, SERVICE_USER, 0o600)
        for name in ("edge", "eg-data", "eg-runtime", "service-home"):
            (self.state / name).mkdir(exist_ok=True)
            own(self.state / name, SERVICE_USER, 0o700, recursive=True)
        for name in ("hub", "hub-service"):
            (self.state / name).mkdir(exist_ok=True)
            os.chmod(self.state / name, 0o700)

    def own_keytabs(self) -> None:
        """Each keytab to the one account that uses it (the KDC makes new ones as root; a restarted
        KDC keeps the owner of those it replaces)."""
        if not SPLIT or not self.kerberos:
            return
        k = self.kerberos
        for keytab, user in ((k.hadoop_keytab, HADOOP_USER), (k.nm_keytab, YARN_USER),
                             (k.service_keytab, SERVICE_USER)):
            accounts.own(keytab, user, 0o600)

    def start(self) -> dict:
        t0 = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self.preflight()
        jhome = java_home()
        spark = spark_home()
        self.make_accounts()
        self.write_hadoop_conf()
        spark_conf = self.write_spark_conf(spark)
        secrets_path = self.state / "secrets.json"
        saved = json.loads(secrets_path.read_text()) if secrets_path.exists() else {}
        # the hub's service token persists (the hub database remembers it); EG's is new every run
        svc_token = saved.get("test_service_token") or secrets.token_hex(24)
        edge_token = saved.get("edge_service_token") or secrets.token_hex(24)
        write_private(secrets_path, json.dumps({"test_service_token": svc_token, "edge_service_token": edge_token}))
        self.info = {
            "state_dir": str(self.state), "logs": str(self.logs), "service_user": SERVICE_USER,
            # the OS accounts of the pieces (all the launcher's own unless the stack is split)
            "accounts": {"split": SPLIT, "service": SERVICE_USER, "hadoop": HADOOP_USER, "yarn": YARN_USER,
                         "kafka": KAFKA_USER,
                         "users_group": accounts.USERS_GROUP if SPLIT else None,
                         "supergroup": accounts.SUPERGROUP if SPLIT else None},
            "nm_web_url": f"http://{self.nm_web_host}:{PORTS['yarn_nm_http']}",
            "hub_url": self.url("hub_public", "/"), "hub_api": self.url("hub_public", "/hub/api"),
            "rm_url": self.url("yarn_rm_http"), "webhdfs_url": self.url("hdfs_namenode_http"),
            "hdfs_url": f"hdfs://127.0.0.1:{PORTS['hdfs_namenode_rpc']}",
            "eg_url": self.url("eg_http"),
            "edge_url": self.url("edge_http", "/services/yardlab-edge"),
            "edge_public_url": self.url("hub_public", "/services/yardlab-edge"),
            "hub_service_url": self.url("hub_public", "/services/yardlab"),
            "edge_service_token": edge_token, "edge_audit_log": str(self.state / "edge" / "audit.jsonl"),
            "hub_service_token": svc_token, "hadoop_conf_dir": str(self.hadoop_conf),
            "spark_home": spark, "spark_conf_dir": str(spark_conf), "java_home": jhome,
            "kernels_dir": str(self.kernels_dir), "python": str(VENV / "bin" / "python"),
            "users": {u: {"password": u, "admin": u in ADMIN_USERS} for u in DEMO_USERS},
            "ports": PORTS,
            "kafka_bootstrap": self.kafka_bootstrap,
        }
        if self.kerberos:
            k = self.kerberos
            self.info.update({
                "realm": REALM, "krb5_conf": str(k.krb5_conf), "service_principal": k.principal,
                "token_max_lifetime_s": TOKEN_MAX_LIFETIME_MS / 1000,
                "service_keytab": str(k.service_keytab), "hadoop_keytab": str(k.hadoop_keytab),
                # the edge keeps this ticket cache filled; EG and spark-submit read it (KRB5CCNAME)
                "edge_ccache": str(self.state / "edge" / "krb5cc"),
            })
            self.start_kdc(jhome)
        self.hand_out_files()
        self.info["security"] = SECURITY
        self.info["auth"] = AUTH
        self.info["warm_pool"] = WARM_POOL
        self.save_info()

        # HDFS
        name_dir = self.state / "hadoop" / "dfs" / "name"
        if not (name_dir / "current" / "VERSION").exists():
            log("formatting a new HDFS")
            fmt = self.java_piece("namenode-format", "org.apache.hadoop.hdfs.server.namenode.NameNode",
                                  ["-format", "-force", "-nonInteractive"], "512m", lambda: True, jhome)
            kwargs, login = self.popen_as(fmt.user)
            with self.open_log("namenode-format") as f:
                rc = subprocess.run(fmt.argv, env={**os.environ, **login, **fmt.env}, cwd=fmt.cwd, stdout=f,
                                    stderr=subprocess.STDOUT, **kwargs).returncode
            if rc != 0:
                shutil.rmtree(name_dir, ignore_errors=True)
                raise StackError(f"formatting HDFS failed; see {self.logs / 'namenode-format.log'}")
        nn = self.java_piece("namenode", "org.apache.hadoop.hdfs.server.namenode.NameNode", [], "768m",
                             self.namenode_ready, jhome)
        dn = self.java_piece("datanode", "org.apache.hadoop.hdfs.server.datanode.DataNode", [], "512m",
                             self.datanode_ready, jhome)
        rm = self.java_piece("resourcemanager", "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
                             [], "1g", self.rm_ready, jhome)
        nm = self.java_piece("nodemanager", "org.apache.hadoop.yarn.server.nodemanager.NodeManager", [], "768m",
                             self.nm_ready, jhome, user=YARN_USER)
        kafka = self.kafka_piece(jhome)
        # the five JVMs start side by side; each is then waited for in dependency order
        for piece in (nn, rm, dn, nm, kafka):
            self.start_piece(piece)
        for piece in (nn, dn):
            self.wait_ready(piece)
        self.provision_hdfs()
        self.seed_public()
        for piece in (rm, nm, kafka):
            self.wait_ready(piece)

        # Enterprise Gateway: run and supervised by the edge (loopback, a random token per start)
        self.write_kernelspecs(spark, jhome)
        if SPLIT:
            accounts.own(self.state / "share", SERVICE_USER, recursive=True)  # the edge adds environments' specs
        self.info["eg_command"] = str(EG_VENV / "bin" / "jupyter-enterprisegateway")
        self.info["eg_state_file"] = str(self.state / "edge" / "enterprise-gateway.json")
        self.info["eg_env"] = {
            "JUPYTER_PATH": str(self.state / "share" / "jupyter"),
            "JUPYTER_DATA_DIR": str(self.state / "eg-data"),
            "JUPYTER_RUNTIME_DIR": str(self.state / "eg-runtime"),
            "EG_RESPONSE_IP": "127.0.0.1",
            "EG_RESPONSE_PORT": str(PORTS["eg_response"]),
            "EG_PROHIBITED_LOCAL_IPS": "",
            "EG_INHERITED_ENVS": "PATH,JAVA_HOME,HADOOP_CONF_DIR,SPARK_HOME,SPARK_CONF_DIR,SPARK_LOCAL_IP",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "EG_YARN_ENDPOINT": self.url("yarn_rm_http"),
            "JAVA_HOME": jhome, "SPARK_HOME": spark, "HADOOP_CONF_DIR": str(self.hadoop_conf),
            "SPARK_CONF_DIR": str(spark_conf),
            # EG polls the RM and the kernel's connection info every 0.5 s while a kernel starts, and waits
            # 15 s for a YARN application to end before it kills it (every shutdown held the room that long);
            # both are EG's environment settings (processproxies/yarn.py), kept short here
            "EG_POLL_INTERVAL": "0.1",
            "EG_YARN_SHUTDOWN_WAIT_TIME": "5",
        }
        if self.kerberos:
            # spark-submit submits --proxy-user <user> with the edge's ticket (never a user's keytab:
            # users have none); EG's RM polls authenticate by SPNEGO with the same ticket
            krb5 = str(self.kerberos.krb5_conf)
            self.info["eg_env"].update({
                "KRB5CCNAME": f"FILE:{self.info['edge_ccache']}", "KRB5_CONFIG": krb5,
                "SPARK_SUBMIT_OPTS": f"-Djava.security.krb5.conf={krb5}",
                "EG_YARN_ENDPOINT_SECURITY_ENABLED": "True",
            })
            self.info["eg_env"]["EG_INHERITED_ENVS"] += ",KRB5CCNAME,KRB5_CONFIG,SPARK_SUBMIT_OPTS"
        self.save_info()

        # the edge service (registered in the hub as the external service yardlab-edge)
        (self.state / "edge").mkdir(exist_ok=True)
        edge = Piece("edge", [str(VENV / "bin" / "yardlab-edge"), "--config", str(ROOT / "dev" / "edge_config.py")],
                     self.edge_ready, env={"YARDLAB_STACK_JSON": str(self.info_path)}, cwd=self.state / "edge",
                     restartable=True, user=SERVICE_USER if SPLIT else None)
        self.start_piece(edge)

        if AUTH == "oidc":
            self.start_oidc_provider()

        # JupyterHub (starts configurable-http-proxy itself)
        self.write_lab_overrides()
        hub_dir = self.state / "hub"
        hub_dir.mkdir(exist_ok=True)
        (self.state / "hub-service").mkdir(exist_ok=True)  # the managed service's working folder
        (self.state / "home").mkdir(exist_ok=True)
        hub_env = {
            "YARDLAB_STACK_JSON": str(self.info_path),
            "YARDLAB_SINGLEUSER": str(VENV / "bin" / "jupyterhub-singleuser"),
            "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
        }
        # the proxy runs on its own, as in a production hub (Zero to JupyterHub's proxy pod): a hub
        # restarted (an upgrade, a crash) leaves people's Lab servers, their open notebooks and the
        # edge reachable; the hub puts its routes back when it is up again
        proxy_token = {"CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32)}
        internal = self.url("hub_internal").rstrip("/")
        proxy = Piece("proxy", [*self.chp_command(), "--ip", "127.0.0.1", "--port", str(PORTS["hub_public"]),
                                "--api-ip", "127.0.0.1", "--api-port", str(PORTS["hub_proxy_api"]),
                                "--default-target", internal, "--error-target", f"{internal}/hub/error",
                                "--log-level", "warn"],
                      lambda: self.proxy_ready(proxy_token["CONFIGPROXY_AUTH_TOKEN"]), env=proxy_token,
                      cwd=hub_dir, timeout=60, restartable=True)
        self.start_piece(proxy)
        self.wait_ready(proxy)
        hub = Piece("jupyterhub", [str(VENV / "bin" / "jupyterhub"), "-f", str(ROOT / "dev" / "jupyterhub_config.py")],
                    self.hub_ready, env={**hub_env, **proxy_token}, cwd=hub_dir, restartable=True)
        self.start_piece(hub)
        self.wait_ready(hub)
        self.wait_ready(edge)
        self.wait_hub_service()
        self.info["eg_token"] = json.loads(Path(self.info["eg_state_file"]).read_text())["token"]
        self.info["user_tokens"] = self.make_user_tokens()
        self.wait_base_environment()
        self.timings["total"] = round(time.monotonic() - t0, 1)
        self.save_info()
        return self.info

    def start_oidc_provider(self) -> None:
        """The OpenID Connect provider (node-oidc-provider, dev/oidc/provider.mjs) on loopback.

        Its settings file (0600, the launcher's) holds what is new each start: the hub's client
        secret, the provider's cookie key, and the accounts with scrypt hashes of their passwords."""
        folder = self.state / "oidc"
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        issuer = self.url("oidc")
        redirect = self.url("hub_public", "/hub/oauth_callback")

        def account(name: str) -> dict:
            salt = secrets.token_bytes(16)
            groups = [OIDC_USERS_GROUP] + ([OIDC_ADMINS_GROUP] if name in ADMIN_USERS else [])
            return {"salt": salt.hex(), "groups": groups,
                    "scrypt": hashlib.scrypt(name.encode(), salt=salt, n=16384, r=8, p=1, dklen=32).hex()}

        settings = {"port": PORTS["oidc"], "cookie_key": secrets.token_hex(32),
                    "client": {"id": "yardlab-hub", "secret": secrets.token_hex(32), "redirect_uri": redirect},
                    "accounts": {name: account(name) for name in (*DEMO_USERS, *OIDC_ONLY_USERS)}}
        write_private(folder / "settings.json", json.dumps(settings))
        self.info["oidc"] = {
            "issuer": issuer, "settings": str(folder / "settings.json"), "client_id": settings["client"]["id"],
            "redirect_uri": redirect, "authorization_endpoint": f"{issuer}/auth", "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/me", "accounts": sorted(settings["accounts"]),
            "admin_group": OIDC_ADMINS_GROUP,
        }
        provider = Piece("oidc-provider", [shutil.which("node") or "node", str(ROOT / "dev" / "oidc" / "provider.mjs"),
                                           str(folder / "settings.json")],
                         self.oidc_ready, cwd=folder, timeout=30, restartable=True)
        self.start_piece(provider)
        self.wait_ready(provider)

    def write_lab_overrides(self) -> None:
        """Site settings of the stack's JupyterLab: no news or update prompts on a loopback demo."""
        settings = VENV / "share" / "jupyter" / "lab" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        overrides = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                                    "checkForUpdates": False}}
        (settings / "overrides.json").write_text(json.dumps(overrides, indent=2) + "\n")

    def restart_piece(self, name: str) -> None:
        """Stop one piece (if running) and start it again, waiting until it is ready."""
        piece = next(p for p in self.pieces if p.name == name)
        if piece.proc and piece.proc.poll() is None:
            os.killpg(piece.proc.pid, signal.SIGTERM)
            try:
                piece.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(piece.proc.pid, signal.SIGKILL)
                piece.proc.wait(timeout=5)
        self.pieces.remove(piece)
        self.start_piece(piece)
        self.wait_ready(piece)
        self.save_info()

    def stop_gateway(self) -> None:
        """EG outlives the edge on purpose (a restarted edge adopts it); the stack stops it here, so
        it shuts its kernels down while YARN is still up."""
        try:
            pid = json.loads(Path(self.info.get("eg_state_file", "")).read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 30
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)

    def logs_dir(self) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.logs

    # -- readiness ---------------------------------------------------------------------------------------
    def namenode_ready(self) -> bool:
        code, body = http_get(self.url("hdfs_namenode_http", "/jmx?qry=Hadoop:service=NameNode,name=NameNodeStatus"), kerberos=self.kerberos)
        return code == 200 and b'"active"' in body

    def datanode_ready(self) -> bool:
        code, body = http_get(self.url("hdfs_namenode_http", "/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"), kerberos=self.kerberos)
        if code != 200:
            return False
        bean = json.loads(body)["beans"][0]
        if bean.get("NumLiveDataNodes", 0) < 1:
            return False
        code, body = http_get(self.url("hdfs_namenode_http", "/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo"), kerberos=self.kerberos)
        return code == 200 and not json.loads(body)["beans"][0].get("Safemode")

    def rm_ready(self) -> bool:
        code, body = http_get(self.url("yarn_rm_http", "/ws/v1/cluster/info"), headers={"Accept": "application/json"},
                              kerberos=self.kerberos)
        return code == 200 and json.loads(body)["clusterInfo"]["state"] == "STARTED"

    def nm_ready(self) -> bool:
        code, body = http_get(self.url("yarn_rm_http", "/ws/v1/cluster/nodes"), headers={"Accept": "application/json"},
                              kerberos=self.kerberos)
        nodes = (json.loads(body).get("nodes") or {}).get("node") or [] if code == 200 else []
        return any(n["state"] == "RUNNING" and n.get("availMemoryMB", 0) > 0 for n in nodes)

    def edge_ready(self) -> bool:
        code, _ = http_get(self.url("edge_http", "/services/yardlab-edge/health"))
        return code == 200

    def wait_hub_service(self, timeout: float = 60.0) -> None:
        """The hub starts the managed service yardlab itself; wait until it answers."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                code, _ = http_get(self.url("hub_service_http", "/services/yardlab/health"))
            except OSError:
                code = 0
            if code == 200:
                self.timings["hub-service"] = round(time.monotonic() - t0, 1)
                return
            time.sleep(0.3)
        raise StackError(f"the hub service yardlab did not answer within {timeout:.0f} s; see {self.logs}/jupyterhub.log")

    def oidc_ready(self) -> bool:
        """The provider answers its discovery document, naming the endpoints the hub is given."""
        code, body = http_get(self.url("oidc", "/.well-known/openid-configuration"))
        if code != 200:
            return False
        found = json.loads(body)
        return all(found.get(key) == self.info["oidc"][key]
                   for key in ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint"))

    def proxy_ready(self, token: str) -> bool:
        code, _ = http_get(self.url("hub_proxy_api", "/api/routes"), headers={"Authorization": f"token {token}"})
        return code == 200

    def hub_ready(self) -> bool:
        code, _ = http_get(self.url("hub_public", "/hub/api/"))
        return code == 200

    # -- provisioning ------------------------------------------------------------------------------------
    def webhdfs(self, method: str, path: str, **params: str) -> None:
        who = {} if self.kerberos else {"user.name": SERVICE_USER}
        query = "&".join(f"{k}={v}" for k, v in {**who, **params}.items())
        url = self.url("hdfs_namenode_http", f"/webhdfs/v1{path}?{query}")
        req = urllib.request.Request(url, method=method, headers=self.kerberos.header(url) if self.kerberos else {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def provision_hdfs(self) -> None:
        """Folders Spark needs before the edge exists to provision them: /tmp and each demo home."""
        self.webhdfs("PUT", "/tmp", op="MKDIRS", permission="1777")
        self.webhdfs("PUT", "/tmp", op="SETPERMISSION", permission="1777")
        self.webhdfs("PUT", "/user", op="MKDIRS", permission="755")
        for user in DEMO_USERS:
            self.webhdfs("PUT", f"/user/{user}", op="MKDIRS", permission="700")
            self.webhdfs("PUT", f"/user/{user}", op="SETOWNER", owner=user, group=user)

    def wait_base_environment(self, timeout: float = 420.0) -> None:
        """Wait until the edge has built the base environment (numpy, pandas, pyarrow, matplotlib) and put the
        built-in kernelspecs on it: at once after the first start (its archive is reused), a minute or two
        on a fresh stack.  A failed build is reported, not fatal: the built-in kernels then run without it."""
        t0 = time.monotonic()
        url = self.url("edge_http", "/services/yardlab-edge/api/v1/environments/yardlab/base")
        headers = {"Authorization": f"token {self.info['user_tokens']['admin']}"}
        status, last = "", ""
        while time.monotonic() - t0 < timeout:
            try:
                env = http_json(url, headers=headers)
            except (OSError, ValueError):
                env = {}
            status = env.get("status", "")
            if status in ("ready", "failed"):
                break
            if env.get("phase") != last:
                last = env.get("phase", "")
                log(f"base environment: {last or 'waiting for the edge'}")
            time.sleep(1)
        self.timings["base-environment"] = round(time.monotonic() - t0, 1)
        if status == "ready":
            log(f"base environment ready (built-in kernels on {env.get('archive')})")
            self.warm_node_cache(env["archive"])
        else:
            log(f"WARNING: the base environment is {status or 'not ready'} ({env.get('error') or 'timed out'}): "
                "the built-in kernels run without numpy/pandas; see the edge's environments page")

    def warm_node_cache(self, archive: str, timeout: float = 240.0) -> None:
        """Have the NodeManager unpack ``archive`` into its public cache now, not in the first kernel's start.

        On this stack that takes ~45 s (no native Hadoop library: a chmod process per file); a cluster's
        NodeManagers do it in seconds.  A YARN application whose container only runs ``true`` carries the
        archive as a PUBLIC resource; nothing happens when the cache holds it already (NodeManager recovery
        keeps it across restarts)."""
        t0 = time.monotonic()
        path = urllib.parse.urlsplit(archive).path
        who = "" if self.kerberos else f"&user.name={SERVICE_USER}"
        code, body = http_get(self.url("hdfs_namenode_http", f"/webhdfs/v1{path}?op=GETFILESTATUS{who}"),
                              kerberos=self.kerberos, timeout=10)
        if code != 200:
            log(f"WARNING: cannot read {path} to warm the NodeManager's cache ({code})")
            return
        st = json.loads(body)["FileStatus"]
        rm = self.url("yarn_rm_http", "/ws/v1/cluster/apps")
        query = "" if self.kerberos else f"?user.name={SERVICE_USER}"

        def call(url: str, body: dict | None = None) -> dict:
            headers = self.kerberos.header(url) if self.kerberos else {}
            return http_json(url, "POST", body, headers=headers, timeout=30)

        app_id = call(rm + "/new-application" + query)["application-id"]
        resource = {"resource": f"hdfs://127.0.0.1:{PORTS['hdfs_namenode_rpc']}{path}", "type": "ARCHIVE",
                    "visibility": "PUBLIC", "size": st["length"], "timestamp": st["modificationTime"]}
        call(rm + query, {
            "application-id": app_id, "application-name": "yardlab-warm-node-cache", "application-type": "YARDLAB",
            "application-tags": ["yardlab-warm-node-cache"], "queue": "default", "max-app-attempts": 1,
            "resource": {"memory": 256, "vCores": 1},
            "am-container-spec": {"local-resources": {"entry": [{"key": "env", "value": resource}]},
                                  "commands": {"command": "true"}},
        })
        while time.monotonic() - t0 < timeout:
            code, body = http_get(f"{rm}/{app_id}{query}", kerberos=self.kerberos, timeout=10)
            if code == 200 and json.loads(body)["app"]["state"] in ("FINISHED", "FAILED", "KILLED"):
                break
            time.sleep(1)
        self.timings["node-cache"] = round(time.monotonic() - t0, 1)
        log(f"NodeManager cache holds the base archive ({self.timings['node-cache']} s)")

    def seed_public(self) -> None:
        """The course into /public: notebooks (course/*.ipynb) in /public/course, data sets and their licences
        (course/datasets/) in /public/datasets, read-only for users (0644 files, 0755 folders; admins write
        through /public's ACL entries, which the edge gives them).  Each start makes the files this
        repository ships equal to its copies (rewriting only those that differ) and leaves every other
        file in /public alone."""
        from hdfs import InsecureClient

        url = self.url("hdfs_namenode_http")
        client = self.kerberos.hdfs_client(url) if self.kerberos else InsecureClient(url, user=SERVICE_USER)
        course = ROOT / "course"
        files = {f"/public/course/{p.name}": p for p in sorted(course.glob("*.ipynb"))}
        files.update({f"/public/datasets/{p.name}": p for p in sorted((course / "datasets").iterdir()) if p.is_file()})
        written = 0
        for folder in ("/public", "/public/course", "/public/datasets"):
            if client.status(folder, strict=False) is None:
                client.makedirs(folder, permission="755")
                client.set_permission(folder, "755")
        for path, local in files.items():
            data = local.read_bytes()
            st = client.status(path, strict=False)
            if st is not None and st["length"] == len(data):
                with client.read(path) as reader:
                    if reader.read() == data:
                        continue
            client.write(path, data=data, overwrite=True, permission="644")
            written += 1
        log(f"/public: {len(files)} course files, {written} written")

    def make_user_tokens(self) -> dict[str, str]:
        """One API token per demo user, made through the hub API with the stack's service token."""
        headers = {"Authorization": f"token {self.info['hub_service_token']}"}
        tokens = {}
        for user in DEMO_USERS:
            model = http_json(f"{self.info['hub_api']}/users/{user}/tokens", "POST",
                              {"note": "yardlab local stack", "expires_in": 7 * 86400}, headers)
            tokens[user] = model["token"]
        return tokens

    # -- stop --------------------------------------------------------------------------------------------
    def stop_lab_servers(self, timeout: float = 60.0) -> None:
        """Stop every user's Lab server through the hub's API while the edge is still up (each
        shuts its kernels down).  The hub keeps them across its own restarts (cleanup_servers is
        off, as on a production hub), so its stop no longer does this; what a dead hub cannot stop,
        the sweep of the stack's folder does."""
        api, token = self.info.get("hub_api"), self.info.get("hub_service_token")
        if not api or not token:
            return
        headers = {"Authorization": f"token {token}"}

        def active() -> list[dict]:
            return http_json(f"{api}/users?state=active", headers=headers)

        try:
            users = active()
            for user in users:
                for server in user.get("servers") or {}:
                    path = f"/users/{user['name']}/server" + (f"s/{server}" if server else "")
                    http_json(api + path, "DELETE", headers=headers, timeout=30)
            deadline = time.monotonic() + timeout
            while users and time.monotonic() < deadline:
                time.sleep(0.5)
                users = active()
        except (OSError, ValueError) as e:
            log(f"could not stop the Lab servers through the hub ({e}); stopping them directly")

    def stop(self) -> None:
        # people's Lab servers first, then the hub and its proxy, then EG (it stops its kernels'
        # YARN applications), then YARN and HDFS
        if any(p.name == "jupyterhub" and p.proc and p.proc.poll() is None for p in self.pieces):
            self.stop_lab_servers()
        order = ["jupyterhub", "proxy", "oidc-provider", "edge", "enterprise-gateway", "nodemanager", "resourcemanager",
                 "datanode", "namenode", "kafka", "kdc"]
        by_name = {p.name: p for p in self.pieces}
        for name in order:
            if name == "enterprise-gateway":
                self.stop_gateway()
                continue
            piece = by_name.get(name)
            if piece and piece.proc and piece.proc.poll() is None:
                try:
                    os.killpg(piece.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    piece.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(piece.proc.pid, signal.SIGKILL)
                    piece.proc.wait(timeout=5)
        leftovers = processes_under(self.state, own_ancestry())
        if leftovers:
            kill_pids(leftovers, grace=5)
        self.pieces.clear()
        try:
            self.info_path.unlink()
        except FileNotFoundError:
            pass


def down(state_dir: str | None = None) -> None:
    stack = Stack(state_dir)
    info = stack.read_info()
    launcher = info.get("launcher_pid")
    if launcher and launcher not in own_ancestry() and pid_alive(launcher):
        os.kill(launcher, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while pid_alive(launcher) and time.monotonic() < deadline:
            time.sleep(0.3)
    for name, pid in (info.get("pids") or {}).items():
        if pid_alive(pid):
            kill_pids([pid])
    leftovers = processes_under(stack.state, own_ancestry())
    kill_pids(leftovers, grace=5)
    try:
        stack.info_path.unlink()
    except FileNotFoundError:
        pass
    log("stopped")


def banner(info: dict) -> str:
    users = ", ".join(f"{u}/{u}" for u in DEMO_USERS)
    t = info.get("timings", {})
    return "\n".join([
        "",
        "yardlab local stack is up" + (f" (ready in {t['total']} s)" if "total" in t else ""),
        f"  JupyterHub:       {info['hub_url']}",
        f"  logins:           {users}   (admin is the hub admin)",
        *([f"  OpenID Connect:   {info['oidc']['issuer']}  (the hub's login; accounts: "
           f"{', '.join(info['oidc']['accounts'])}, password = name; group {info['oidc']['admin_group']}: admins)"]
          if info.get("auth") == "oidc" else []),
        f"  YARN RM:          {info['rm_url']}/cluster",
        f"  HDFS (WebHDFS):   {info['webhdfs_url']}",
        f"  Kafka:            {info.get('kafka_bootstrap', '-')}  (PLAINTEXT, loopback)",
        f"  edge API:         {info['edge_public_url']}/api/v1/  (token: one from stack.json or /hub/token)",
        f"  Enterprise GW:    {info['eg_url']}",
        f"  stack file:       {info['state_dir']}/stack.json  (endpoints and demo tokens)",
        f"  logs:             {info['logs']}",
        "Press Ctrl-C to stop everything.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", default=None, help="state and log folder (default .stack/)")
    args = parser.parse_args(argv)
    if args.command == "down":
        down(args.state_dir)
        return 0
    if args.command == "status":
        info = Stack(args.state_dir).read_info()
        alive = info and pid_alive(info.get("launcher_pid", -1))
        print(json.dumps({k: info[k] for k in ("hub_url", "rm_url", "pids", "timings") if k in info}, indent=2)
              if alive else "no yardlab stack is running")
        return 0 if alive else 1

    stack = Stack(args.state_dir)
    stopping = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    # installed explicitly: a launcher started in the background by a non-interactive shell
    # inherits SIGINT as ignored, and Ctrl-C / `kill -INT` must still stop it cleanly
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        info = stack.start()
        print(banner(info), flush=True)
        while True:
            for piece in list(stack.pieces):
                if piece.proc and piece.proc.poll() is not None:
                    if piece.restartable:
                        log(f"{piece.name} exited ({piece.proc.returncode}); starting it again")
                        stack.restart_piece(piece.name)
                        continue
                    raise StackError(f"{piece.name} stopped unexpectedly (exit {piece.proc.returncode}); "
                                     f"see {stack.logs / (piece.name + '.log')}")
            time.sleep(1)
    except KeyboardInterrupt:
        log("stopping ...")
        return_code = 0
    except StackError as e:
        print(f"[stack] error: {e}", file=sys.stderr, flush=True)
        return_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack.pieces:
            stack.stop()
            log("stopped; no stack process is left")
    return return_code


if __name__ == "__main__":
    sys.exit(main())
