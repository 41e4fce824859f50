"""JupyterHub of the local stack: demo logins, spawning JupyterLab, the yardlab extensions enabled."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


def hub_login(hub_url: str, user: str, password: str) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    s.get(f"{hub_url}hub/login", timeout=30)
    r = s.post(f"{hub_url}hub/login", data={"username": user, "password": password,
                                           "_xsrf": s.cookies.get("_xsrf", path="/hub/")}, timeout=60)
    return s, r


def wait_server_ready(hub, user: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub("GET", f"/users/{user}").json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        time.sleep(1)
    raise AssertionError(f"{user}'s server was not ready within {timeout} s")


def test_wrong_password_is_refused(stack):
    s, r = hub_login(stack["hub_url"], "guest", "not-the-password")
    assert r.status_code in (200, 403)
    assert "jupyterhub-hub-login" not in s.cookies
    assert "Invalid username or password" in r.text


def test_guest_logs_in_spawns_and_reaches_jupyterlab(stack, hub):
    s, r = hub_login(stack["hub_url"], "guest", "guest")
    assert r.ok, r.text[:500]
    assert "jupyterhub-session-id" in s.cookies or "jupyterhub-hub-login" in s.cookies
    wait_server_ready(hub, "guest")
    lab = s.get(f"{stack['hub_url']}user/guest/lab", timeout=60)
    assert lab.status_code == 200
    assert "JupyterLab" in lab.text
    # the page config lists the federated extensions the browser will load: ours among them
    assert '"name": "yardlab"' in lab.text or '"name":"yardlab"' in lab.text
    # the single-user server talks to Enterprise Gateway: its kernelspecs are the YARN ones
    specs = s.get(f"{stack['hub_url']}user/guest/api/kernelspecs", timeout=60).json()
    assert {"yardlab_pyspark", "yardlab_python"} <= set(specs["kernelspecs"])


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_yardlab_extensions_are_enabled_and_ok():
    lab = subprocess.run([str(VENV_BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True)
    out = ANSI.sub("", lab.stdout + lab.stderr)
    assert re.search(r"^\s*yardlab v\S+ enabled\s+OK", out, re.M), out
    srv = subprocess.run([str(VENV_BIN / "jupyter"), "server", "extension", "list"], capture_output=True,
                         text=True)
    out = ANSI.sub("", srv.stdout + srv.stderr)
    assert re.search(r"yardlab\.server_extension\s+enabled", out), out
    assert re.search(r"yardlab\.server_extension \S+ OK", out), out


def test_guest_runs_spark_on_yarn_from_jupyterlab(stack, hub, rm):
    """What a person does in the demo: guest's Lab server starts a PySpark kernel, which runs on YARN."""
    from jupyter_ws import KernelConnection

    hub("POST", "/users/guest/server")  # already running is fine (400)
    wait_server_ready(hub, "guest")
    base = f"{stack['hub_url']}user/guest"
    kc = KernelConnection.start(base, stack["user_tokens"]["guest"], "yardlab_pyspark", username="guest")
    try:
        reply = kc.execute("print(spark.range(1000).count(), spark.sparkContext.sparkUser())")
        assert reply.status == "ok", reply.error
        assert reply.stdout.split() == ["1000", "guest"]
        (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
        assert app["user"] == "guest"
    finally:
        kc.shutdown()
