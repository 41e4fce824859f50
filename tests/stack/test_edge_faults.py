"""The edge when the ResourceManager or HDFS goes away: clear 503s, fast; back by itself; RM HA failover.

Each test runs a second edge process whose RM (or WebHDFS) address is a cuttable loopback proxy in
front of the real one (identity still comes from the real hub).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from faults import CuttableProxy, dead_port_url, free_port

EDGE = str(Path(sys.executable).parent / "yardlab-edge")


def kerberos_args(stack: dict, tmp_path: Path) -> list[str]:
    """An extra edge on the Kerberized stack logs in with the service keytab (its own ticket cache)."""
    if stack.get("security") != "kerberos":
        return []
    return [f"--Kerberos.keytab={stack['service_keytab']}", f"--Kerberos.principal={stack['service_principal']}",
            f"--Kerberos.ccache={tmp_path / 'krb5cc'}"]


@pytest.fixture
def edge_on(stack, tmp_path):
    """Factory: start an edge process against the given RM URLs; returns its API base URL."""
    procs: list[subprocess.Popen] = []

    def start(rm_urls: list[str], *extra: str) -> str:
        port = free_port()
        urls = "[" + ",".join(f"'{u}'" for u in rm_urls) + "]"
        cmd = [EDGE, "--EdgeApp.ip=127.0.0.1", f"--EdgeApp.port={port}", "--EdgeApp.base_url=/",
               f"--AuditLog.path={tmp_path / 'audit.jsonl'}",
               f"--TokenIdentifier.hub_api_url=http://127.0.0.1:{stack['ports']['hub_internal']}/hub/api",
               f"--TokenIdentifier.hub_api_token={stack['edge_service_token']}",
               f"--ResourceManagerClient.urls={urls}",
               f"--ResourceManagerClient.service_user={stack['service_user']}",
               "--ResourceManagerClient.retries=1", "--ResourceManagerClient.backoff=0.1",
               "--AppSnapshot.poll_interval=0.5", "--AppSnapshot.max_backoff=1",
               "--GatewaySupervisor.enabled=False", f"--KernelLedger.db_url=sqlite:///{tmp_path / 'edge.sqlite'}",
               *kerberos_args(stack, tmp_path), *extra]
        log = open(tmp_path / f"edge-{port}.log", "wb")
        # its own krb5.conf (the Kerberized stack's KDC), whichever fixture of the session has set it or not
        env = {**os.environ, **({"KRB5_CONFIG": stack["krb5_conf"]} if stack.get("security") == "kerberos" else {})}
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    return base
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError("edge did not become healthy:\n" + (tmp_path / f"edge-{port}.log").read_text()[-3000:])

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


@pytest.fixture
def rm_proxy(stack):
    rm = urlparse(stack["rm_url"])
    proxy = CuttableProxy(rm.hostname, rm.port)
    yield proxy
    proxy.close()


def timed_get(url: str, token: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    r = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10)
    return r, time.monotonic() - started


#: how long these tests' edges answer from a snapshot the RM no longer confirms (the stack's edge: 30 s)
GRACE = 3.0


def recovers(base: str, token: str, within: float = 15) -> None:
    """The jobs list answers 200 again within ``within`` s of the RM's return, and /health is 200."""
    deadline = time.monotonic() + within
    while timed_get(f"{base}/api/v1/apps", token)[0].status_code != 200:
        assert time.monotonic() < deadline, f"the edge did not recover within {within:.0f} s of the RM's return"
        time.sleep(0.2)
    assert requests.get(f"{base}/health", timeout=5).status_code == 200


def apps_until_503(base: str, token: str, since: float, within: float, what: str) -> tuple[requests.Response, list]:
    """Ask for the jobs list (each answer fast) until it is a 503; that answer, and the ages of the snapshots
    answered before it (X-Snapshot-Age)."""
    ages = []
    while True:
        r, took = timed_get(f"{base}/api/v1/apps", token)
        assert took < 2.0, f"the jobs list took {took:.2f} s"
        if r.status_code == 503:
            return r, ages
        assert r.status_code == 200
        ages.append(float(r.headers["X-Snapshot-Age"]))  # the last snapshot, saying how old it is
        assert time.monotonic() - since < within, f"no 503 within {within:.0f} s of {what}"
        time.sleep(0.2)


def test_rm_down_gives_a_fast_clear_503_and_service_comes_back(stack, edge_on, rm_proxy):
    base = edge_on([rm_proxy.url], f"--AppSnapshot.stale_grace={GRACE}")
    token = stack["user_tokens"]["alice"]
    r, _ = timed_get(f"{base}/api/v1/apps", token)
    assert r.status_code == 200

    rm_proxy.cut()
    cut_at = time.monotonic()
    r, ages = apps_until_503(base, token, cut_at, GRACE + 10, "the RM going away")
    assert time.monotonic() - cut_at > GRACE - 1, "503 before the snapshot was older than its grace"
    assert ages and max(ages) > 1.0 and max(ages) <= GRACE + 0.5, ages
    assert "ResourceManager is unreachable" in r.json()["message"]
    for path in ("/api/v1/cluster", "/api/v1/apps"):
        r, took = timed_get(base + path, token)
        assert r.status_code == 503 and took < 2.0
    assert requests.get(f"{base}/health", timeout=5).status_code == 503
    r, took = timed_get(f"{base}/api/v1/me", token)
    assert r.status_code == 200  # identity does not need YARN

    rm_proxy.restore()
    recovers(base, token)


def test_an_rm_that_answers_nothing_gives_clear_503s_within_the_timeout_and_nothing_hangs(stack, edge_on, rm_proxy,
                                                                                          edge_kernel, rm):
    """The RM takes connections and answers none (overloaded, a GC pause, a half-dead host): the jobs list
    keeps answering at once, turns 503 with a sentence once the snapshot is older than its grace, a kill waits
    at most its timeouts and says the RM did not answer (and kills nothing), identity still works; all
    is back once the RM answers again."""
    kc = edge_kernel("alice", "yardlab_python")  # something of alice's to try to kill
    (app,) = rm.apps_tagged(f"kernel:{kc.kernel_id}")
    base = edge_on([rm_proxy.url], "--ResourceManagerClient.request_timeout=3", f"--AppSnapshot.stale_grace={GRACE}")
    token = stack["user_tokens"]["alice"]
    r, _ = timed_get(f"{base}/api/v1/apps", token)
    assert r.status_code == 200 and app["id"] in {a["id"] for a in r.json()["apps"]}

    rm_proxy.stall()
    r, _ = apps_until_503(base, token, time.monotonic(), GRACE + 20, "the RM going silent")
    message = r.json()["message"]
    assert message.startswith("the YARN ResourceManager is unreachable") and "timeout" in message.lower(), message
    t0 = time.monotonic()
    kill = requests.delete(f"{base}/api/v1/apps/{app['id']}", headers={"Authorization": f"token {token}"}, timeout=60)
    took = time.monotonic() - t0
    assert kill.status_code in (503, 504), (kill.status_code, kill.text[:300])
    assert "ResourceManager" in kill.json()["message"], kill.text
    assert took < 3 * (3 + 5) + 2, f"the kill took {took:.1f} s"  # (retries + 1) x (answer + connect timeout)
    assert timed_get(f"{base}/api/v1/me", token)[0].status_code == 200  # identity does not need YARN
    assert rm.app(app["id"])["state"] == "RUNNING"  # nothing was killed behind the 503

    rm_proxy.restore()
    recovers(base, token)


def test_rm_ha_failover_uses_the_next_resourcemanager(stack, edge_on, rm_proxy):
    base = edge_on([dead_port_url(), rm_proxy.url])
    r, _ = timed_get(f"{base}/api/v1/cluster", stack["user_tokens"]["bob"])
    assert r.status_code == 200
    assert r.json()["memory"]["totalMB"] == 8192


def test_hdfs_down_gives_a_clear_503_changes_nothing_and_service_comes_back(stack, edge_on, rm_proxy):
    """The NameNode unreachable: storage answers 503 naming HDFS, fast; a write tried meanwhile
    leaves nothing behind; jobs (YARN) and identity keep working; storage is back once HDFS is."""
    nn = urlparse(stack["webhdfs_url"])
    hdfs = CuttableProxy(nn.hostname, nn.port)
    try:
        base = edge_on([rm_proxy.url], f"--HDFSStorage.webhdfs_url=http://127.0.0.1:{hdfs.port}",
                       "--HDFSStorage.timeout=5")
        token = stack["user_tokens"]["alice"]
        auth = {"Authorization": f"token {token}"}
        home = f"{base}/api/v1/files/user/alice"
        assert requests.get(home, headers=auth, timeout=30).status_code == 200
        folder = f"fault-{int(time.time() * 1000)}"

        hdfs.cut()
        r, took = timed_get(home, token)
        assert r.status_code == 503, r.text
        assert took < 6.0, f"answer took {took:.2f} s"
        assert "HDFS" in r.json()["message"] and "unreachable" in r.json()["message"]
        made = requests.post(f"{home}/{folder}", params={"op": "mkdir"}, headers=auth, timeout=30)
        assert made.status_code == 503, made.text
        assert timed_get(f"{base}/api/v1/apps", token)[0].status_code == 200  # YARN does not need HDFS
        assert timed_get(f"{base}/api/v1/me", token)[0].status_code == 200

        hdfs.restore()
        deadline = time.monotonic() + 15
        while (r := timed_get(home, token)[0]).status_code != 200:
            assert time.monotonic() < deadline, f"storage did not come back within 15 s of HDFS: {r.text}"
            time.sleep(0.3)
        assert folder not in [e["name"] for e in r.json()["content"]]  # the refused mkdir left nothing
    finally:
        hdfs.close()


def test_clients_that_trickle_their_headers_are_cut_off_and_hold_up_nobody(stack, edge_on, rm_proxy):
    """A "slowloris": 200 connections each sending a request line and then nothing. Others are
    answered at once meanwhile, and the edge closes every one of them after its header timeout."""
    import socket

    base = edge_on([rm_proxy.url], "--EdgeApp.header_timeout=2")
    port = urlparse(base).port
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(s)
        r, took = timed_get(f"{base}/api/v1/me", stack["user_tokens"]["alice"])
        assert r.status_code == 200 and took < 1.0, (r.status_code, took)
        time.sleep(3)
        still_open = 0
        for s in slow:
            s.setblocking(False)
            try:
                if s.recv(1) != b"":  # the server answered something instead of closing
                    still_open += 1
            except BlockingIOError:  # nothing to read and not closed: still waiting for our headers
                still_open += 1
            except ConnectionResetError:
                pass
        assert still_open == 0, f"{still_open} of 200 trickling connections still open after the header timeout"
    finally:
        for s in slow:
            s.close()
