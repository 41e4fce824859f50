"""The `yardlab` command against the real stack, as a script would use it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

YARDLAB = str(Path(sys.executable).parent / "yardlab")


def run(stack, user: str | None, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "YARDLAB_"))}
    env["JUPYTERHUB_API_URL"] = f"{stack['hub_url']}hub/api"
    if user:
        env["JUPYTERHUB_API_TOKEN"] = stack["user_tokens"][user]
    env.update(env_extra or {})
    return subprocess.run([YARDLAB, *args], capture_output=True, text=True, env=env, timeout=180)


def test_whoami_and_cluster(stack):
    done = run(stack, "alice", "whoami")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("alice (user)")
    done = run(stack, "admin", "--json", "whoami")
    assert json.loads(done.stdout)["admin"] is True
    done = run(stack, "bob", "cluster")
    assert done.returncode == 0, done.stderr
    assert "root.interactive" in done.stdout and "8.0 GB" in done.stdout


def test_apps_and_kill(stack, yarn_app, rm):
    app = yarn_app("alice", name="cli-<b>listed</b>")
    # the snapshot may lag one poll behind the RM
    for _ in range(20):
        done = run(stack, "alice", "apps", "--state", "RUNNING")
        if app in done.stdout:
            break
    assert app in done.stdout and "cli-<b>listed</b>" in done.stdout
    assert app not in run(stack, "bob", "apps").stdout
    all_json = json.loads(run(stack, "admin", "--json", "apps", "--all").stdout)
    assert app in [a["id"] for a in all_json]

    denied = run(stack, "bob", "kill", app)
    assert denied.returncode == 2
    assert "belongs to another user" in denied.stderr
    killed = run(stack, "alice", "kill", app)
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.strip() == f"{app} of alice: KILLED"
    assert rm.app(app)["state"] == "KILLED"


def test_clear_errors_without_token_or_with_bad_input(stack):
    done = run(stack, None, "whoami")
    assert done.returncode == 2
    assert "no token" in done.stderr
    done = run(stack, "alice", "kill", "application_1;rm -rf")
    assert done.returncode == 2
    assert "not a YARN application id" in done.stderr
    done = run(stack, "alice", "--url", "http://127.0.0.1:9", "whoami")
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
