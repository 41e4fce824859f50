"""`make demo`'s launcher: Ctrl-C leaves no process behind, and a crashed run is recovered cleanly.

Runs last (it stops and restarts the session's stack; marked ``lifecycle``).  When the stack belongs to someone else
(a `make demo` in another terminal), it checks instead that a second launcher is refused.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import stack as stack_mod
from conftest import HadoopAuth

pytestmark = pytest.mark.lifecycle  # after every other test: the conftest hook orders it last

LAUNCHER = [sys.executable, str(stack_mod.ROOT / "dev" / "stack.py"), "up"]


def start_launcher() -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(LAUNCHER, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=stack_mod.ROOT)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            return proc, lines
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("launcher did not come up:\n" + "".join(lines[-30:]))


def stop_launcher(proc: subprocess.Popen, lines: list[str]) -> None:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    lines.append(out)
    assert proc.returncode == 0, "".join(lines[-30:])


def assert_nothing_left(state) -> None:
    deadline = time.monotonic() + 20
    while True:
        left = stack_mod.processes_under(state, stack_mod.own_ancestry())
        busy = [p for p in stack_mod.PORTS.values() if stack_mod.port_in_use(p)]
        if not left and not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: pids {left}, ports {busy}")
        time.sleep(0.5)


def test_ctrl_c_stops_everything_and_a_crash_is_recovered(stack, stack_control):
    if not stack_control.owned:
        done = subprocess.run(LAUNCHER, capture_output=True, text=True, timeout=60, cwd=stack_mod.ROOT)
        assert done.returncode == 1
        assert "already running" in done.stderr
        return
    st = stack_control.stack
    st.stop()
    stack_control.owned = False
    assert_nothing_left(st.state)

    # a run whose launcher dies hard: its pieces live on until the next run sweeps them
    proc, lines = start_launcher()
    assert "JupyterHub:       http://127.0.0.1:8000/" in "".join(lines)
    info = st.read_info()
    marker = f"/user/alice/yl-survives-{uuid.uuid4().hex[:8]}"
    # a new login per stack run: each run starts a new KDC, with new keys
    HadoopAuth(info).webhdfs(info, proxy="alice").write(marker, b"kept")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert stack_mod.processes_under(st.state, stack_mod.own_ancestry()), "pieces should outlive a killed launcher"

    # the next run sweeps them, keeps the data, and a Ctrl-C ends it with nothing left
    proc, lines = start_launcher()
    assert "left behind by an earlier run" in "".join(lines)
    info = st.read_info()
    with HadoopAuth(info).webhdfs(info, proxy="alice").read(marker) as r:
        assert r.read() == b"kept"
    stop_launcher(proc, lines)
    assert_nothing_left(st.state)
    assert not st.info_path.exists()
    # the stack stays stopped: this session started it (it would stop it now) and this test runs last
