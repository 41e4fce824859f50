"""Session fixtures for the yardlab test suite.

- ``stack``: the running local stack's info (dev/stack.py): reuses a stack that is already up
  (``make demo`` in another terminal), otherwise starts one for the session and stops it after.
- ``stack_control``: the session's :class:`StackControl` (the Stack object, and whether the
  session owns it), for the lifecycle tests that stop and restart it, and the fault tests that
  restart the edge or kill it outright (``restart_edge``, ``crash_edge`` + ``wait_edge_back``).
- ``rm``: a small ResourceManager REST reader (apps by tag, wait for a state).
- ``spark_submit``: runs spark-submit against the stack as a given proxy user.
- ``edge_kernel``: factory for kernels started through the edge's ``/gateway/`` with a user's hub token.
- ``eg_kernel``: factory for kernels started on Enterprise Gateway, driven over the Jupyter
  websocket protocol; every kernel it made is shut down after the test.
- ``hub``: a JupyterHub API client with the stack's service token.
- ``artifacts``: the folder where tests keep screenshots (test-artifacts/).
- ``edge_as``: factory of edge API sessions holding one demo user's hub token.
- ``yarn_app``: factory of long-running YARN applications (Spark, ApplicationMaster only)
  submitted as a given user; every one still running is killed after the test.
- ``page``: a headless Chromium page (tests/browser.py), closed after the test.

Layout: ``unit/`` (no stack, `make test-unit`), ``helm/``, ``stack/`` (the real local stack),
``ui/`` (Chromium against the stack).  Tests marked ``lifecycle`` stop and restart the session's
stack: a hook here runs them after everything else.  Tests marked ``oidc`` run only in a session
whose stack logs in through the OpenID Connect provider (YARDLAB_AUTH=oidc).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# warm kernels only for the hub groups warm-pool and warm-short (tests/stack/test_warm_kernels.py adds
# and removes members): every other test sees kernels start as they always did
os.environ.setdefault("YARDLAB_WARM_POOL", "group")

import stack as stack_mod  # noqa: E402  (dev/stack.py)
from yardlab.edge.osutil import process_start  # noqa: E402
from hadoop_auth import HadoopAuth  # noqa: E402,F401  (tests import it from here too)
from browser import page  # noqa: E402,F401  (the headless browser fixture, for tests/ui and the hub service)
from jupyter_ws import KernelConnection  # noqa: E402

FINAL_STATES = {"FINISHED", "FAILED", "KILLED"}


class StackControl:
    """The session's stack and whether this session started it (and so may stop it)."""

    def __init__(self) -> None:
        self.stack = stack_mod.Stack()
        self.owned = False
        self.info: dict = {}

    def ensure_running(self) -> dict:
        info = self.stack.read_info()
        if info and stack_mod.pid_alive(info.get("launcher_pid", -1)) and info.get("user_tokens"):
            running = info.get("security", "simple")
            if running != stack_mod.SECURITY:
                pytest.exit(f"a {running}-auth stack is running, and this session wants {stack_mod.SECURITY} "
                            "(YARDLAB_SECURITY); stop it (`make demo-stop`) or set YARDLAB_SECURITY to match", 2)
            auth = info.get("auth", "demo")
            if auth != stack_mod.AUTH:
                pytest.exit(f"the running stack logs people in with {auth}, and this session wants {stack_mod.AUTH} "
                            "(YARDLAB_AUTH); stop it (`make demo-stop`) or set YARDLAB_AUTH to match", 2)
            pool = info.get("warm_pool", "on")
            if pool != stack_mod.WARM_POOL:
                pytest.exit(f"the running stack gives warm kernels to {'every user' if pool == 'on' else pool}, and "
                            f"the tests want YARDLAB_WARM_POOL={stack_mod.WARM_POOL}; stop it (`make demo-stop`) or "
                            f"start it with YARDLAB_WARM_POOL={stack_mod.WARM_POOL}", 2)
            self.info = info
            return info
        self.info = self.stack.start()
        self.owned = True
        print("\nstack timings (s):", self.info["timings"])
        return self.info

    def edge_pid(self) -> int:
        return json.loads(Path(self.info["state_dir"], "stack.json").read_text())["pids"]["edge"]

    def restart_edge(self, timeout: float = 90) -> None:
        """Restart the edge service and wait until a new process answers /health."""
        old_pid = self.edge_pid()
        if self.owned:
            self.stack.restart_piece("edge")
        else:  # a `make demo` launcher owns it: it restarts the edge when it exits
            os.kill(old_pid, signal.SIGTERM)
        self.wait_edge_back(old_pid, timeout)

    def crash_edge(self) -> int:
        """Kill the edge's process with SIGKILL (nothing of its own clean-up runs) and wait until it is gone;
        its pid.  A `make demo` launcher starts a new one at once; otherwise :meth:`wait_edge_back` does."""
        pid = self.edge_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_start(pid) is not None:  # None: gone, or a zombie its parent has not reaped yet
            assert time.monotonic() < deadline, f"the edge (pid {pid}) outlived SIGKILL"
            time.sleep(0.05)
        return pid

    def wait_edge_back(self, old_pid: int, timeout: float = 90) -> None:
        """A new edge in place of ``old_pid`` (started here if this session owns the stack and the old one
        is dead), answering /health."""
        piece = next((p for p in self.stack.pieces if p.name == "edge"), None) if self.owned else None
        if piece is not None and piece.proc is not None and piece.proc.pid == old_pid:
            self.stack.restart_piece("edge")  # reaps the killed one and starts the next
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (self.edge_pid() != old_pid
                        and requests.get(f"{self.info['edge_url']}/health", timeout=5).status_code == 200):
                    return
            except (requests.ConnectionError, ValueError, OSError):
                pass
            assert time.monotonic() < deadline, "the edge did not come back"
            time.sleep(0.5)


@pytest.fixture(scope="session")
def stack_control():
    control = StackControl()
    try:
        yield control
    finally:
        if control.owned:
            control.stack.stop()


@pytest.fixture(scope="session")
def stack(stack_control) -> dict:
    """The local stack's info dict (endpoints, tokens, paths); started here if not running."""
    return stack_control.ensure_running()


@pytest.fixture(scope="session")
def hadoop(stack) -> HadoopAuth:
    return HadoopAuth.of(stack)


class ResourceManager:
    """Reads the ResourceManager REST API the way an operator would check it."""

    def __init__(self, base: str, hadoop: HadoopAuth) -> None:
        self.base = base.rstrip("/") + "/ws/v1/cluster"
        self.hadoop = hadoop
        self.service_user = hadoop.service_user  # the YARN admin: sees every application in full

    def get(self, path: str, **params) -> dict:
        r = requests.get(self.base + path, params=self.hadoop.params(**params), auth=self.hadoop.auth,
                         headers={"Accept": "application/json"}, timeout=10)
        r.raise_for_status()
        return r.json()

    def put(self, path: str, body: dict, **params) -> requests.Response:
        """A PUT as the service account (or doAs=...), e.g. a kill; the raw response."""
        return requests.put(self.base + path, params=self.hadoop.params(**params), auth=self.hadoop.auth,
                            json=body, timeout=30)

    def kill(self, app_id: str) -> requests.Response:
        return self.put(f"/apps/{app_id}/state", {"state": "KILLED"})

    def apps(self, **params) -> list[dict]:
        return (self.get("/apps", **params).get("apps") or {}).get("app") or []

    def app(self, app_id: str) -> dict:
        return self.get(f"/apps/{app_id}")["app"]

    def apps_tagged(self, tag: str) -> list[dict]:
        return [a for a in self.apps() if tag in (a.get("applicationTags") or "").split(",")]

    def wait_state(self, app_id: str, states: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            app = self.app(app_id)
            if app["state"] in states:
                return app
            if time.monotonic() > deadline:
                raise AssertionError(f"{app_id} still {app['state']} after {timeout} s, wanted {states}")
            time.sleep(1)


@pytest.fixture(scope="session")
def rm(stack, hadoop) -> ResourceManager:
    return ResourceManager(stack["rm_url"], hadoop)


@pytest.fixture(scope="session")
def spark_env(stack, hadoop) -> dict[str, str]:
    return {**os.environ, "JAVA_HOME": stack["java_home"], "HADOOP_CONF_DIR": stack["hadoop_conf_dir"],
            "SPARK_CONF_DIR": stack["spark_conf_dir"], "SPARK_HOME": stack["spark_home"],
            "SPARK_LOCAL_IP": "127.0.0.1", **hadoop.env}


@pytest.fixture
def spark_submit(stack, spark_env, tmp_path):
    """Run ``spark-submit --master yarn --deploy-mode cluster --proxy-user USER script``."""

    def run(user: str, code: str, name: str, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
        script = tmp_path / f"{name}.py"
        script.write_text(code)
        cmd = [f"{stack['spark_home']}/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
               "--proxy-user", user, "--name", name, *extra, str(script)]
        return subprocess.run(cmd, env=spark_env, capture_output=True, text=True, timeout=timeout)

    return run


def eg_token(stack) -> str:
    """Enterprise Gateway's current token (the edge starts EG and may restart it with a new one)."""
    import json

    return json.loads(Path(stack["eg_state_file"]).read_text())["token"]


@pytest.fixture
def edge_kernel(stack):
    """Factory: kernels started through the edge's /gateway/ with a user's hub token; every kernel it made is
    shut down after the test."""
    made: list[KernelConnection] = []

    def start(user: str, kernelspec: str = "yardlab_pyspark", env: dict | None = None) -> KernelConnection:
        kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"][user], kernelspec,
                                    env=env or {}, username=user)
        made.append(kc)
        return kc

    yield start
    for kc in made:
        try:
            kc.shutdown()
        except requests.RequestException:
            pass


@pytest.fixture
def eg_kernel(stack):
    """Factory: start a kernel on Enterprise Gateway for a user, connected over its websocket."""
    made: list[KernelConnection] = []

    def start(kernelspec: str = "yardlab_pyspark", user: str = "alice") -> KernelConnection:
        kc = KernelConnection.start(stack["eg_url"], eg_token(stack), kernelspec,
                                    env={"KERNEL_USERNAME": user}, username=user)
        made.append(kc)
        return kc

    yield start
    for kc in made:
        kc.shutdown()


class Hub:
    """The JupyterHub REST API, with a token."""

    def __init__(self, api: str, token: str) -> None:
        self.api = api.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, self.api + path, timeout=kw.pop("timeout", 30), **kw)


@pytest.fixture(scope="session")
def hub(stack) -> Hub:
    return Hub(stack["hub_api"], stack["hub_service_token"])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


class EdgeSession:
    """The edge API with one user's token (requests underneath, so tests see raw statuses)."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=kw.pop("timeout", 120), **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self("GET", path, **kw)


@pytest.fixture(scope="session")
def edge_as(stack):
    def make(user: str | None, via_hub: bool = False) -> EdgeSession:
        base = stack["edge_public_url"] if via_hub else stack["edge_url"]
        return EdgeSession(base, stack["user_tokens"][user] if user else None)

    return make


SLEEPER = """
import time
from pyspark.sql import SparkSession
SparkSession.builder.getOrCreate()
time.sleep(900)
"""
# the ApplicationMaster only: dynamic allocation from zero executors, nothing runs on them
AM_ONLY = ["--conf", "spark.dynamicAllocation.enabled=true",
           "--conf", "spark.dynamicAllocation.shuffleTracking.enabled=true",
           "--conf", "spark.dynamicAllocation.minExecutors=0",
           "--conf", "spark.dynamicAllocation.initialExecutors=0",
           "--conf", "spark.dynamicAllocation.maxExecutors=1",
           "--conf", "spark.yarn.submit.waitAppCompletion=false"]


@pytest.fixture
def yarn_app(stack, spark_env, rm, tmp_path):
    """Factory: submit a sleeping Spark application as ``user``; returns its id once RUNNING."""
    made: list[str] = []
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)

    def submit(user: str, name: str | None = None, queue: str = "default", wait: str = "RUNNING",
               extra: list[str] | tuple[str, ...] = ()) -> str:
        """``extra``: more spark-submit options (later ones win, so they may replace AM_ONLY's)."""
        name = name or f"yl-test-{uuid.uuid4().hex[:8]}"
        cmd = [f"{stack['spark_home']}/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
               "--proxy-user", user, "--name", name, "--queue", queue, *AM_ONLY, *extra, str(script)]
        done = subprocess.run(cmd, env=spark_env, capture_output=True, text=True, timeout=300)
        ids = re.findall(r"application_\d+_\d+", done.stdout + done.stderr)
        assert done.returncode == 0 and ids, done.stderr[-2000:]
        made.append(ids[0])
        if wait:
            rm.wait_state(ids[0], {wait}, timeout=180)
        return ids[0]

    yield submit
    for app_id in made:
        if rm.app(app_id)["state"] not in FINAL_STATES:
            rm.kill(app_id)


def pytest_collection_modifyitems(session, config, items) -> None:  # noqa: ARG001
    """Tests marked ``lifecycle`` (they stop and restart the session's stack) run last.  Tests marked
    ``oidc`` need the OpenID Connect login (YARDLAB_AUTH=oidc, the Makefile's second run): a session on
    the demo login leaves them out, and says so."""
    if stack_mod.AUTH != "oidc":
        left_out = [item for item in items if item.get_closest_marker("oidc")]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker("oidc")]
    items.sort(key=lambda item: item.get_closest_marker("lifecycle") is not None)
