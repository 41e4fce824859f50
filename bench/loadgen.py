"""Load generators for the snapshot benchmark, each run in a process of its own (asyncio + aiohttp).

- :func:`run_polling_users`: N simulated users, each polling ``GET /api/v1/apps`` every few seconds
  from a jittered start, with ``If-None-Match`` once it has an ETag (an open loop: requests go out
  on schedule whatever the server does, and how late they go out is measured, so a generator that
  cannot keep up shows it).
- :func:`run_closed_loop`: C connections sending the next request as soon as the last answer came
  (the throughput phase).

Both take the pids of the servers involved and report the CPU time those used during the measured
window, so a figure says whether the server or the generator was the bottleneck.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import aiohttp

from server_process import process_cpu_seconds

REQUEST_TIMEOUT = 10.0
LATE_S = 1.0  # a request sent this late is "late": the generator (or the server) fell behind


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100.0 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(seconds: list[float]) -> dict:
    values = sorted(seconds)
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 2)

    return {"n": len(values), "p50_ms": ms(percentile(values, 50)), "p90_ms": ms(percentile(values, 90)),
            "p99_ms": ms(percentile(values, 99)), "max_ms": ms(values[-1] if values else None),
            "mean_ms": ms(sum(values) / len(values) if values else None)}


def core_times() -> dict[int, tuple[int, int]]:
    """Per core (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))  # minus idle, iowait
    return out


class CpuWindow:
    """CPU used between start() and stop(): by some processes, by this one, and by each core in all.

    A core busier than the processes pinned to it tells that something else on the machine (other
    work on a shared box) took part of it, and the figures of that window are pessimistic.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)

    def start(self) -> None:
        self.wall = time.monotonic()
        self.before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.own = sum(os.times()[:2])
        self.cores = core_times()

    def stop(self) -> dict:
        wall = time.monotonic() - self.wall
        out = {"wall_s": round(wall, 3), "loadgen_cpu_pct": round(100 * (sum(os.times()[:2]) - self.own) / wall, 1)}
        for name, pid in self.pids.items():
            after, before = process_cpu_seconds(pid), self.before[name]
            out[f"{name}_cpu_pct"] = None if after is None or before is None else round(100 * (after - before) / wall, 1)
        for core, (busy, total) in core_times().items():
            busy0, total0 = self.cores.get(core, (busy, total))
            out[f"core{core}_busy_pct"] = round(100 * (busy - busy0) / max(1, total - total0), 1)
        return out


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def client_session(connections: int) -> aiohttp.ClientSession:
    """An aiohttp session of up to ``connections`` connections, REQUEST_TIMEOUT per request, bodies as sent."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                                 auto_decompress=False)


# --- N users polling ---------------------------------------------------------------------------

def run_polling_users(url: str, users: list[str], interval: float, seconds: float, *, pids: dict[str, int],
                      cpu: int | None = None, seed: int = 1) -> dict:
    """Users poll ``url`` every ``interval`` s for ``seconds`` s; returns counts, latencies, lags, CPU."""
    _pin(cpu)
    return asyncio.run(_polling_users(url, users, interval, seconds, pids, seed))


async def _polling_users(url: str, users: list[str], interval: float, seconds: float, pids: dict[str, int],
                         seed: int) -> dict:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    latencies: list[float] = []
    lags: list[float] = []
    received = 0

    async def user(session: aiohttp.ClientSession, name: str, offset: float) -> None:
        nonlocal received
        etag = None
        headers = {"Authorization": f"token tok-{name}", "Accept": "application/json"}
        tick = 0
        while True:
            due = t0 + offset + tick * interval
            tick += 1
            if due >= end:
                return
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            sent = loop.time()
            lags.append(sent - due)
            if etag:
                headers["If-None-Match"] = etag
            try:
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    latencies.append(loop.time() - sent)
                    statuses[str(response.status)] += 1
                    received += len(body)
                    if response.status == 200:
                        etag = response.headers.get("ETag")
                        checks[check_apps(body, name)] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                errors[type(e).__name__] += 1

    async with client_session(len(users)) as session:
        t0 = loop.time() + 0.2
        end = t0 + seconds
        window = CpuWindow(pids)
        window.start()
        await asyncio.gather(*(user(session, name, rng.uniform(0, interval)) for name in users))
        # the window is the whole duration, even if the last request went out earlier
        if end > loop.time():
            await asyncio.sleep(end - loop.time())
        cpu = window.stop()
    lag_values = sorted(lags)
    return {
        "users": len(users), "interval_s": interval, "seconds": seconds, "requests": len(lags),
        "statuses": dict(statuses), "errors": dict(errors), "body_checks": dict(checks),
        "bytes_received": received, "latency": latency_summary(latencies),
        "send_lag": {"p50_ms": round(1000 * (percentile(lag_values, 50) or 0), 2),
                     "p99_ms": round(1000 * (percentile(lag_values, 99) or 0), 2),
                     "max_ms": round(1000 * (lag_values[-1] if lag_values else 0), 2),
                     "late": sum(1 for v in lag_values if v > LATE_S)},
        "cpu": cpu,
    }


def check_apps(body: bytes, user: str) -> str:
    """Classify a 200 body: an app list holding only the caller's apps, or what is wrong with it."""
    try:
        apps = json.loads(body)["apps"]
    except (ValueError, KeyError, TypeError):
        return "not an app list"
    if not isinstance(apps, list):
        return "not an app list"
    if any(app.get("user") != user for app in apps):
        return "someone else's apps"
    return "ok"


# --- closed loop -------------------------------------------------------------------------------

def run_closed_loop(url: str, users: list[str], concurrency: int, seconds: float, *, pids: dict[str, int],
                    warmup_seconds: float = 2.0, cpu: int | None = None, conditional: bool = False) -> dict:
    """C connections hammer ``url`` (tokens taken round-robin from ``users``); returns req/s and latency."""
    _pin(cpu)
    return asyncio.run(_closed_loop(url, users, concurrency, seconds, pids, warmup_seconds, conditional))


async def _closed_loop(url: str, users: list[str], concurrency: int, seconds: float, pids: dict[str, int],
                       warmup_seconds: float, conditional: bool) -> dict:
    loop = asyncio.get_running_loop()
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    etags: dict[str, str] = {}
    state = {"next": 0, "measuring": False, "stop": False, "bytes": 0}

    async def one(session: aiohttp.ClientSession, name: str, record: bool) -> None:
        headers = {"Authorization": f"token tok-{name}", "Accept": "application/json"}
        if conditional and name in etags:
            headers["If-None-Match"] = etags[name]
        sent = loop.time()
        try:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if conditional and response.status == 200 and response.headers.get("ETag"):
                    etags[name] = response.headers["ETag"]
                if record and state["measuring"]:
                    latencies.append(loop.time() - sent)
                    statuses[str(response.status)] += 1
                    state["bytes"] += len(body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            if record and state["measuring"]:
                errors[type(e).__name__] += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        while not state["stop"]:
            name = users[state["next"] % len(users)]
            state["next"] += 1
            await one(session, name, record=True)

    async with client_session(concurrency) as session:
        # every token once first, so a token cache in the server is warm before anything is measured
        gate = asyncio.Semaphore(concurrency)

        async def first(name: str) -> None:
            async with gate:
                await one(session, name, record=False)

        await asyncio.gather(*(first(name) for name in users))
        workers = [asyncio.ensure_future(worker(session)) for _ in range(concurrency)]
        await asyncio.sleep(warmup_seconds)
        window = CpuWindow(pids)
        window.start()
        state["measuring"] = True
        await asyncio.sleep(seconds)
        state["measuring"] = False
        cpu = window.stop()
        state["stop"] = True
        await asyncio.gather(*workers)
    completed = sum(statuses.values())
    return {"concurrency": concurrency, "seconds": cpu["wall_s"], "users": len(users), "conditional": conditional,
            "requests": completed, "requests_per_s": round(completed / cpu["wall_s"], 1),
            "bytes_per_response": round(state["bytes"] / completed) if completed else None,
            "statuses": dict(statuses), "errors": dict(errors), "latency": latency_summary(latencies), "cpu": cpu}
