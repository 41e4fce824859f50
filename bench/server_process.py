"""Child processes for the benchmarks: start a server, wait until it answers, pin it, read its CPU time, stop it.

Every benchmark server runs in a process of its own so that the load generator, the server under
test and the fakes around it never share an interpreter (or a GIL).  The bench's own servers bind
127.0.0.1 port 0 and announce themselves with one line ``READY <url>`` on stdout; servers that
take a port on the command line (the edge) get one from :func:`free_port` and are awaited on a
health URL instead.
"""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
READY_PREFIX = "READY "


def announce_ready(url: str) -> None:
    """Tell the parent that a bench server listens at ``url`` (the one line a child prints on stdout)."""
    print(f"{READY_PREFIX}{url}", flush=True)


def listen_url(server: Any) -> str:
    """The ``http://127.0.0.1:<port>`` a tornado ``HTTPServer`` bound with port 0 ended up on."""
    port = next(iter(server._sockets.values())).getsockname()[1]
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (for servers that need a port number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` and decode its JSON body (blocking: only the driver, never a server, calls this)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of ``GET url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


class ServerProcess:
    """A server running as a child process, with its log file, its URL and its CPU time."""

    def __init__(self, name: str, popen: subprocess.Popen, url: str, log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start_announced(cls, name: str, argv: list[str], log_dir: Path, timeout: float = 120.0,
                        env: dict[str, str] | None = None) -> ServerProcess:
        """Start a bench server that prints ``READY <url>`` on stdout once it listens."""
        log_path = log_dir / f"{name}.log"
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env, cwd=BENCH)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([popen.stdout], [], [], max(0.0, remaining))
            if not readable:
                popen.kill()
                popen.wait()
                raise RuntimeError(f"{name} did not announce itself within {timeout:.0f} s; log {log_path}")
            # the child prints whole lines; one that died closes the pipe and readline returns b""
            line = popen.stdout.readline().decode("utf-8", "replace").strip()
            if line.startswith(READY_PREFIX):
                return cls(name, popen, line[len(READY_PREFIX):], log_path)
            if not line and popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode} before it was ready; "
                                   f"log {log_path}:\n{tail(log_path)}")

    @classmethod
    def start_with_health(cls, name: str, argv: list[str], url: str, health_url: str, log_dir: Path,
                          timeout: float = 60.0, env: dict[str, str] | None = None) -> ServerProcess:
        """Start a server that is ready once ``GET health_url`` answers 200."""
        log_path = log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=log_dir)
        deadline = time.monotonic() + timeout
        delay = 0.05
        while http_status(health_url) != 200:
            if popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {popen.returncode} before {health_url} answered 200; "
                                   f"log {log_path}:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                popen.kill()
                raise RuntimeError(f"{name}: {health_url} did not answer 200 within {timeout:.0f} s; "
                                   f"log {log_path}:\n{tail(log_path)}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        return cls(name, popen, url, log_path)

    def pin(self, cpus: set[int]) -> None:
        """Run this server only on ``cpus`` (all of its threads: affinity is per thread on Linux)."""
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, OSError):
                pass  # a thread that ended meanwhile

    def cpu_seconds(self) -> float | None:
        """User + system CPU time this process has used so far."""
        return process_cpu_seconds(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        if self.popen.stdout:
            self.popen.stdout.close()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[11], fields[12] are utime and stime, the 14th and 15th fields of proc(5)'s stat
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_start_and_cpu(pid: int) -> tuple[int, float] | None:
    """(start time in clock ticks since boot, own user + system CPU seconds) of a process; None when gone.
    The start time tells a process from a later one given the same pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int | None:
    """Resident memory of a process now, in bytes (None when it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from one pass over /proc (for walking a process tree)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        out.setdefault(ppid, []).append(int(entry))
    return out


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """The pids below ``pid`` (children, their children, ...), zombies included."""
    children = children_by_parent() if children is None else children
    out, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children.get(child, ()))
    return out


def tree_cpu_seconds(pid: int, children: dict[int, list[int]] | None = None) -> float | None:
    """CPU seconds of a process and everything it started, alive or ended, since each started.

    Each process counts its own time and its reaped children's (cutime, cstime); a child still
    running, or ended and not yet reaped, counts its own.  So every second is counted once, and
    the difference of two calls is what the tree used in between, however short its children
    lived (children that left the tree, e.g. daemons re-parented to init, are not counted).
    """
    total = None
    for p in [pid, *descendants(pid, children)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[11..14]: utime, stime, cutime, cstime (proc(5) fields 14-17)
        total = (total or 0.0) + sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def python_argv(script: str, *args: str) -> list[str]:
    """The command line that runs one of the bench scripts with this interpreter."""
    return [sys.executable, str(BENCH / script), *args]
