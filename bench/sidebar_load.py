"""The load of many open JupyterLab sidebars and a class starting its kernels, as one asyncio program.

Run in a process of its own by ``bench_load.py`` (like ``loadgen.py``'s generators, whose helpers
it uses).  Each simulated user sends what ``labextension/src`` makes a browser send while the
yardlab sidebar and the HDFS browser are open, with that user's hub token, through the hub's
proxy to the edge (``/services/yardlab-edge/api/v1/...``).  A real Lab adds one hop, its Jupyter
server's forwarder (``server_extension/``); a few hundred Lab servers do not fit on the machine
this runs on, so the load starts at the proxy.

Every stream is an open loop: its requests are due on a fixed schedule from the user's page load,
each goes out when it is due or as soon as the stream's previous answer is in, and how late it
went out is measured (``late``: more than ``loadgen.LATE_S``), so a generator or a server that
falls behind shows it instead of quietly sending less.

Kernel starts go where a Lab server sends them (``JUPYTER_GATEWAY_URL``: the edge's ``/gateway/``,
not through the proxy), each for a user of its own: ``POST /api/kernels``, while it is pending the
notebook toolbar's ``kernels/starting`` poll, then one cell over the kernel's websocket (the
Jupyter protocol, messages made by jupyter_client's Session) and ``DELETE``.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time
from collections import Counter, defaultdict

import aiohttp

from loadgen import LATE_S, check_apps, client_session, latency_summary, percentile

#: (stream, seconds between requests, where labextension/src sets it); None: once, at page load
SIDEBAR = (
    ("me", None),              # index.ts: a ReplyModel fetched when the sidebar is made
    ("apps", 3.0),             # jobs/model.ts: JobsModel, interval 3000 ms, with If-None-Match
    ("cluster", 15.0),         # cluster.ts: ClusterModel, 15 * 1000 ms
    ("environments", 30.0),    # environments/model.ts: idleInterval 30 * 1000 ms (nothing building)
    ("storage", 300.0),        # hdfs/usage.ts: USAGE_INTERVAL 5 * 60 * 1000 ms (and at page load)
    ("files", None),           # the HDFS browser: its interval is the bench's --hdfs-interval (below)
)
#: progress/starting.ts: a notebook whose kernel starts polls kernels/starting every 1500 ms
STARTING_INTERVAL = 1.5
#: a sidebar answer slower than this counts as an error (TimeoutError); neither the browser, the Lab
#: server's forwarder (1 h) nor the proxy gives up this early, so slow answers are measured, not cut
SIDEBAR_TIMEOUT = 60.0
#: dev/jupyterhub_config.py: JUPYTER_GATEWAY_REQUEST_TIMEOUT, how long a Lab server waits for a start
LAB_GATEWAY_TIMEOUT = 320.0
#: the edge's storage roots (edge/storage.py's defaults, which the local stack keeps)
ROOTS = (("Personal", "/user/{user}"), ("Shared", "/shared"), ("Public", "/public"))


class Tally:
    """Answers, latencies, send lags and errors per stream (``files:Personal`` etc. apart)."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.lags: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.errors: Counter[str] = Counter()

    def answer(self, stream: str, status: int, latency: float, lag: float) -> None:
        self.latencies[stream].append(latency)
        self.lags[stream].append(lag)
        self.statuses[stream][str(status)] += 1

    def failure(self, stream: str, kind: str, lag: float | None = None) -> None:
        self.errors[f"{stream}: {kind}"] += 1
        if lag is not None:
            self.lags[stream].append(lag)

    def summary(self) -> dict:
        out = {}
        for stream in sorted(set(self.lags) | set(self.latencies)):
            lags = sorted(self.lags[stream])
            out[stream] = {"latency": latency_summary(self.latencies[stream]),
                           "statuses": dict(self.statuses[stream]), "sent": len(lags),
                           "lag_p99_ms": round(1000 * (percentile(lags, 99) or 0), 1),
                           "lag_max_ms": round(1000 * (lags[-1] if lags else 0), 1),
                           "late": sum(1 for v in lags if v > LATE_S)}
        return out


class Window:
    """One measured window: the sessions, the clock, the stop signal and the tally."""

    def __init__(self, spec: dict, session: aiohttp.ClientSession, kernel_http: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.api = spec["api"].rstrip("/")
        self.gateway = spec["gateway"].rstrip("/")
        self.session = session
        self.kernel_http = kernel_http
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time() + 0.2
        self.end = self.t0 + spec["max_seconds"]
        self.stop = asyncio.Event()
        self.tally = Tally()

    async def sleep_until(self, due: float) -> bool:
        """Wait until ``due`` (loop time); False when the window stopped meanwhile."""
        delay = due - self.loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
        return not self.stop.is_set() and due < self.end

    async def get(self, stream: str, path: str, token: str, due: float, etag: str | None = None
                  ) -> tuple[int, bytes, str | None] | None:
        """One GET of the edge API through the proxy, tallied; (status, body, ETag) or None on failure."""
        headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        sent = self.loop.time()
        try:
            async with self.session.get(f"{self.api}/{path}", headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=SIDEBAR_TIMEOUT)) as response:
                body = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            self.tally.failure(stream, type(e).__name__, sent - due)
            return None
        self.tally.answer(stream, response.status, self.loop.time() - sent, sent - due)
        if response.status not in ((200, 304) if stream == "apps" else (200,)):
            self.tally.failure(stream, f"HTTP {response.status}")
        return response.status, body, response.headers.get("ETag")


async def _stream(w: Window, user: str, token: str, stream: str, interval: float | None, offset: float) -> None:
    """One sidebar model of one user: a request when due, from the user's page load on."""
    etag = None
    tick = 0
    while True:
        due = w.t0 + offset + tick * (interval or 0)
        if (tick and interval is None) or not await w.sleep_until(due):
            return
        tick += 1
        key, path = stream, stream
        if stream == "files":  # the user opens the three roots in turn
            name, root = ROOTS[(tick - 1) % len(ROOTS)]
            root = root.format(user=user)
            key, path = f"files:{name}", "files" + root
        got = await w.get(key, path, token, due, etag if stream == "apps" else None)
        if got is None:
            continue
        status, body, new_etag = got
        if status != 200:
            continue
        if stream == "apps":
            etag = new_etag
            verdict = check_apps(body, user)
            if verdict != "ok":
                w.tally.failure(key, verdict)
        elif stream == "files":
            try:
                listing = json.loads(body)
                ok = listing.get("type") == "directory" and listing.get("path") == root
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                w.tally.failure(key, "not the folder's listing")


async def _poll_starting(w: Window, token: str) -> None:
    """The notebook toolbar's poll while its kernel starts (cancelled when the start returns)."""
    due = w.loop.time()
    while True:
        await w.get("kernels/starting", "kernels/starting", token, due)
        due += STARTING_INTERVAL
        await asyncio.sleep(max(0.0, due - w.loop.time()))


async def _run_cell(w: Window, kernel_id: str, token: str, user: str) -> str:
    """Run the spec's cell over the kernel's websocket; the execute_reply's status."""
    from jupyter_client.session import Session

    msg = Session(username=user).msg("execute_request", {
        "code": w.spec["cell"], "silent": False, "store_history": False, "user_expressions": {},
        "allow_stdin": False, "stop_on_error": True})
    msg["channel"] = "shell"
    msg_id = msg["header"]["msg_id"]
    url = w.gateway.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    deadline = w.loop.time() + w.spec["cell_timeout"]
    status, idle = None, False
    async with w.kernel_http.ws_connect(url, headers={"Authorization": f"token {token}"}, max_msg_size=0) as ws:
        await ws.send_str(json.dumps(msg, default=str))
        # done when both the shell reply and iopub's idle for this request are in (not ordered)
        while not (status and idle):
            frame = await asyncio.wait_for(ws.receive(), max(0.1, deadline - w.loop.time()))
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"the kernel's websocket closed ({frame.type.name})")
            m = json.loads(frame.data)
            if (m.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "execute_reply":
                status = m["content"]["status"]
            elif m["msg_type"] == "status" and m["content"].get("execution_state") == "idle":
                idle = True
    return status


async def _kernel(w: Window, user: str, token: str) -> dict:
    """One kernel start as a Lab server makes it, one cell, shutdown; wall-clock marks of each step."""
    rec: dict = {"user": user}
    await asyncio.sleep(max(0.0, w.t0 + w.spec["kernel_delay"] - w.loop.time()))
    headers = {"Authorization": f"token {token}"}
    rec["t_post"] = time.time()
    progress = asyncio.ensure_future(_poll_starting(w, token))
    try:
        async with w.kernel_http.post(f"{w.gateway}/api/kernels", json={"name": w.spec["kernelspec"], "env": {}},
                                      headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=LAB_GATEWAY_TIMEOUT)) as response:
            body = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        rec["error"] = f"kernel start: {type(e).__name__}"
        return rec
    finally:
        progress.cancel()
    rec["t_answered"] = time.time()
    if response.status != 201:
        rec["error"] = f"kernel start: HTTP {response.status}"
        rec["message"] = body[:300].decode("utf-8", "replace")
        return rec
    rec["t_started"] = rec["t_answered"]
    kernel_id = rec["kernel_id"] = json.loads(body)["id"]
    try:
        rec["reply_status"] = await _run_cell(w, kernel_id, token, user)
        rec["t_reply"] = time.time()
        if rec["reply_status"] != "ok":
            rec["error"] = f"cell: {rec['reply_status']}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ValueError, KeyError) as e:
        rec["error"] = f"cell: {type(e).__name__}"
    t = time.time()
    try:
        async with w.kernel_http.delete(f"{w.gateway}/api/kernels/{kernel_id}", headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=120)) as response:
            await response.read()
        rec["shutdown_status"] = response.status
        if response.status != 204:
            rec.setdefault("error", f"kernel shutdown: HTTP {response.status}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        rec.setdefault("error", f"kernel shutdown: {type(e).__name__}")
    rec["shutdown_s"] = round(time.time() - t, 3)
    return rec


def run_window(spec: dict) -> dict:
    """One window: every user's sidebar for ``max_seconds``, or, with ``kernels``, until those are done."""
    return asyncio.run(_window(spec))


async def _window(spec: dict) -> dict:
    rng = random.Random(spec.get("seed", 1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per user at the page loads' peak
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    cpu0 = sum(os.times()[:2])
    streams = [(stream, spec["hdfs_interval"] if stream == "files" else interval) for stream, interval in SIDEBAR]
    async with client_session(len(spec["users"]) + 8) as session, \
            client_session(2 * len(spec["kernels"]) + 2) as kernel_http:
        w = Window(spec, session, kernel_http)
        tasks = []
        for user, token in spec["users"]:
            offset = rng.uniform(0, spec["ramp"])  # the user's page load
            tasks += [asyncio.ensure_future(_stream(w, user, token, s, i, offset)) for s, i in streams]
        tokens = dict(spec["users"])
        kernels = [asyncio.ensure_future(_kernel(w, user, tokens[user])) for user in spec["kernels"]]
        if kernels:
            _, pending = await asyncio.wait(kernels, timeout=spec["kernel_timeout"])
            for task in pending:
                task.cancel()
        else:
            await asyncio.sleep(max(0.0, w.end - w.loop.time()))
        wall = w.loop.time() - w.t0
        w.stop.set()
        await asyncio.gather(*tasks)
        records = []
        for user, task in zip(spec["kernels"], kernels):
            if task.cancelled():
                records.append({"user": user, "error": f"kernel: not done within {spec['kernel_timeout']:.0f} s"})
            else:
                records.append(task.result())
    for rec in records:
        if "error" in rec:
            w.tally.errors[rec["error"]] += 1
    return {"users": len(spec["users"]), "wall_s": round(wall, 2), "streams": w.tally.summary(),
            "errors": dict(w.tally.errors), "kernels": records,
            "loadgen": {"cpu_s": round(sum(os.times()[:2]) - cpu0, 2),
                        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}


# --- logins --------------------------------------------------------------------------------------

def run_logins(hub_api: str, service_token: str, users: list[str], concurrency: int = 8) -> dict:
    """An API token per user from the hub (``POST /users/<name>/tokens``, as the stack makes the demo
    users'), ``concurrency`` at a time; the tokens, latencies and errors."""
    return asyncio.run(_logins(hub_api.rstrip("/"), service_token, users, concurrency))


async def _logins(hub_api: str, service_token: str, users: list[str], concurrency: int) -> dict:
    gate = asyncio.Semaphore(concurrency)
    tokens: dict[str, str] = {}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    loop = asyncio.get_running_loop()

    async def one(session: aiohttp.ClientSession, user: str) -> None:
        async with gate:
            sent = loop.time()
            try:
                async with session.post(f"{hub_api}/users/{user}/tokens",
                                        json={"note": "bench_load", "expires_in": 3600},
                                        headers={"Authorization": f"token {service_token}"}) as response:
                    body = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                errors[f"login: {type(e).__name__}"] += 1
                return
            latencies.append(loop.time() - sent)
            if response.status != 201:
                errors[f"login: HTTP {response.status}"] += 1
                return
            tokens[user] = json.loads(body)["token"]

    async with client_session(concurrency) as session:
        await asyncio.gather(*(one(session, user) for user in users))
    return {"tokens": tokens, "latency": latency_summary(latencies), "errors": dict(errors)}
