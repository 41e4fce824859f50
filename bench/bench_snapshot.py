"""Benchmark of the edge's application snapshot against a naive pass-through proxy and a bare handler.

For 10, 100 and 1,000 simulated users polling ``GET /api/v1/apps`` every 5 s against a
ResourceManager replay holding 10,000 applications, it measures how many requests reach the RM per
minute through the edge and through a pass-through proxy (the ratio is the point: the edge's RM
load must not grow with the number of users).  Then, in a closed loop on one core, the
requests/s and p50/p99 latency of the pass-through, the edge and a bare tornado handler (bare.py:
the same token-cache lookup and the same bytes, nothing else: the framework's ceiling on this
machine), and the edge's figures as ratios to the other two, which, unlike absolute figures, carry
from one machine to another.  It prints tables and the verdicts against the issue's targets and
writes everything to bench/results/snapshot-<date>.json.

    .venv/bin/python bench/bench_snapshot.py [--quick] [--seconds 60] [--users 10,100,1000]

Layout on a 2-core machine: the server under test is pinned to the first core; the load generator
(its own process), the RM replay and the fake hub share the second.  Until ``yardlab-edge`` is
installed, the pass-through and the bare handler run without it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fake_hub
import loadgen
import rm_replay
import server_process
from server_process import ServerProcess

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
EDGE_BIN = Path(sys.executable).parent / "yardlab-edge"
SERVICE_TOKEN = "bench-service-token"
APPS_PATH = "/api/v1/apps"
USER_COUNTS = (10, 100, 1000)
TARGETS = ("passthrough", "edge", "bare")
# the bare handler reads the RM once at start: its RM figures would say nothing, so it is not polled
POLL_TARGETS = ("passthrough", "edge")

# the issue's targets
TARGET_RATIO_AT_1000 = 100.0
TARGET_P99_MS = 25.0
TARGET_RPS = 2000.0
FLAT_FACTOR = 1.25  # "flat in the number of users": edge RM req/min at most this much apart across user counts
TARGET_RPS_VS_BARE = 0.6  # the edge's req/s at least this fraction of the bare handler's, same run
INTERFERENCE_PCT = 10.0  # the server's core this much busier than the server: other work took part of it


# --- the servers under test ----------------------------------------------------------------------

def start_edge(rm_url: str, hub_api_url: str, *, log_dir: Path | None = None,
               extra_args: tuple[str, ...] = ()) -> tuple[str, ServerProcess]:
    """Start the edge (``yardlab-edge``) against ``rm_url`` and the hub at ``hub_api_url``; wait for /health.

    ``hub_api_url`` is the hub's base URL (``http://127.0.0.1:PORT``); the edge is given
    ``<hub_api_url>/hub/api``.  Returns the edge's base URL and its process handle.
    """
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="yardlab-bench-"))
    state = Path(tempfile.mkdtemp(prefix="edge-state-", dir=log_dir))
    port = server_process.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(EDGE_BIN),
        "--EdgeApp.ip=127.0.0.1",
        f"--EdgeApp.port={port}",
        "--EdgeApp.base_url=/",
        f"--ResourceManagerClient.urls=['{rm_url}']",
        f"--TokenIdentifier.hub_api_url={hub_api_url}/hub/api",
        f"--TokenIdentifier.hub_api_token={SERVICE_TOKEN}",
        f"--AuditLog.path={state}/audit.jsonl",
        f"--KernelLedger.db_url=sqlite:///{state}/edge.sqlite",
        "--GatewaySupervisor.enabled=False",
        *extra_args,
    ]
    handle = ServerProcess.start_with_health("edge", argv, url, f"{url}/health", log_dir, timeout=90)
    return url, handle


def start_passthrough(rm_url: str, hub_api_url: str, *, log_dir: Path | None = None,
                      extra_args: tuple[str, ...] = ()) -> tuple[str, ServerProcess]:
    """Start the naive pass-through proxy (it never asks the hub: ``hub_api_url`` is unused)."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="yardlab-bench-"))
    handle = ServerProcess.start_announced(
        "passthrough", server_process.python_argv("passthrough.py", "--rm-url", rm_url, *extra_args), log_dir)
    return handle.url, handle


def start_bare(rm_url: str, hub_api_url: str, *, log_dir: Path | None = None,
               extra_args: tuple[str, ...] = ()) -> tuple[str, ServerProcess]:
    """Start the bare handler (bare.py), which reads ``rm_url`` once and never asks the hub."""
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="yardlab-bench-"))
    handle = ServerProcess.start_announced(
        "bare", server_process.python_argv("bare.py", "--rm-url", rm_url, *extra_args), log_dir)
    return handle.url, handle


STARTERS: dict[str, Callable[..., tuple[str, ServerProcess]]] = {
    "passthrough": start_passthrough, "edge": start_edge, "bare": start_bare}


def edge_installed() -> bool:
    return EDGE_BIN.exists() and os.access(EDGE_BIN, os.X_OK)


# --- the run -----------------------------------------------------------------------------------

def cpu_layout() -> tuple[int, int]:
    """(core for the server under test, core for everything else)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]


def user_names(n: int) -> list[str]:
    return [f"user{i:04d}" for i in range(n)]


class LoadProcess:
    """A fresh process for one load run, started (and its imports done) before anything is counted."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.pool.submit(loadgen.latency_summary, []).result(timeout=60)

    def run(self, fn: Callable[..., dict], *args: Any, timeout: float, **kwargs: Any) -> dict:
        return self.pool.submit(fn, *args, **kwargs).result(timeout=timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class SnapshotBench:
    """Runs the cases, keeps the results, prints them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="yardlab-bench-snapshot-"))
        self.server_cpu, self.load_cpu = cpu_layout()
        self.results: dict[str, Any] = {"poll": [], "throughput": []}

    # -- helpers --

    def start_fakes(self, log_dir: Path) -> tuple[ServerProcess, ServerProcess]:
        _, replay = rm_replay.start_replay(self.args.apps, self.args.rm_users, churn_per_min=self.args.churn_per_min,
                                           log_dir=log_dir)
        hub = ServerProcess.start_announced(
            "fake-hub", server_process.python_argv("fake_hub.py", "--service-token", SERVICE_TOKEN), log_dir)
        for handle in (replay, hub):
            handle.pin({self.load_cpu})
        return replay, hub

    def start_target(self, target: str, replay: ServerProcess, hub: ServerProcess,
                     log_dir: Path) -> ServerProcess:
        extra = tuple(self.args.edge_arg) if target == "edge" else ()
        _, handle = STARTERS[target](replay.url, hub.url, log_dir=log_dir, extra_args=extra)
        handle.pin({self.server_cpu})
        time.sleep(self.args.settle)  # let the edge take its first snapshot before anything is counted
        return handle

    # -- phase 1: N users polling --

    def poll_case(self, n_users: int, targets: list[str]) -> None:
        log_dir = self.work / f"users-{n_users:04d}"
        log_dir.mkdir()
        replay, hub = self.start_fakes(log_dir)
        try:
            for target in targets:
                print(f"  {n_users:5d} users  {target:12s} ...", end="", flush=True)
                row: dict[str, Any] = {"users": n_users, "target": target}
                try:
                    row.update(self.poll_target(target, n_users, replay, hub, log_dir))
                    print(f" {row['rm_requests_per_min']:9.1f} RM req/min, "
                          f"p99 {row['load']['latency']['p99_ms']} ms")
                except Exception as e:  # one broken target must not lose the others' figures
                    row["error"] = str(e)
                    print(f" FAILED: {e}")
                self.results["poll"].append(row)
        finally:
            hub.stop()
            replay.stop()

    def poll_target(self, target: str, n_users: int, replay: ServerProcess, hub: ServerProcess,
                    log_dir: Path) -> dict:
        server = self.start_target(target, replay, hub, log_dir)
        load = LoadProcess()
        try:
            rm_replay.replay_stats(replay.url, reset=True)
            fake_hub.hub_stats(hub.url, reset=True)
            result = load.run(loadgen.run_polling_users, f"{server.url}{APPS_PATH}", user_names(n_users),
                              self.args.interval, self.args.seconds, timeout=self.args.seconds + 120,
                              pids={"server": server.pid, "replay": replay.pid, "hub": hub.pid},
                              cpu=self.load_cpu)
            rm = rm_replay.replay_stats(replay.url, reset=True)
            hub_calls = fake_hub.hub_stats(hub.url, reset=True)
        finally:
            load.close()
            server.stop()
        return {
            "rm_requests": rm["total"], "window_s": round(rm["seconds"], 2),
            "rm_requests_per_min": round(rm["total"] / rm["seconds"] * 60, 1),
            "rm_bytes_per_min": round(sum(rm["bytes"].values()) / rm["seconds"] * 60),
            "rm_paths": rm["paths"], "rm_apps_queries": rm["apps_queries"],
            "rm_requests_per_user_request": round(rm["total"] / max(1, result["requests"]), 4),
            "hub_requests_per_min": round(hub_calls["total"] / hub_calls["seconds"] * 60, 1),
            "hub_credentials": hub_calls["credentials"],
            "user_requests_per_s": round(result["requests"] / self.args.seconds, 1),
            "load": result,
        }

    # -- phase 2: closed loop on one core --

    def throughput(self, targets: list[str]) -> None:
        log_dir = self.work / "throughput"
        log_dir.mkdir()
        replay, hub = self.start_fakes(log_dir)
        try:
            for target in targets:
                print(f"  {target:12s} C={self.args.concurrency} for {self.args.throughput_seconds:.0f} s ...",
                      end="", flush=True)
                row: dict[str, Any] = {"target": target}
                try:
                    server = self.start_target(target, replay, hub, log_dir)
                    load = LoadProcess()
                    try:
                        row.update(load.run(loadgen.run_closed_loop, f"{server.url}{APPS_PATH}",
                                            user_names(self.args.rm_users), self.args.concurrency,
                                            self.args.throughput_seconds, timeout=self.args.throughput_seconds + 300,
                                            pids={"server": server.pid, "replay": replay.pid, "hub": hub.pid},
                                            cpu=self.load_cpu, conditional=self.args.conditional))
                    finally:
                        load.close()
                        server.stop()
                    print(f" {row['requests_per_s']:8.1f} req/s, p50 {row['latency']['p50_ms']} ms, "
                          f"p99 {row['latency']['p99_ms']} ms, {row['bytes_per_response']} B/answer")
                except Exception as e:
                    row["error"] = str(e)
                    print(f" FAILED: {e}")
                self.results["throughput"].append(row)
        finally:
            hub.stop()
            replay.stop()

    # -- the whole run --

    def run(self) -> dict:
        args = self.args
        targets = [t for t in args.targets if t != "edge" or edge_installed()]
        if "edge" in args.targets and not edge_installed():
            print(f"edge: yardlab-edge is not installed (no {EDGE_BIN}); running the other targets without it. "
                  f"Once setup.py declares the console script, reinstall the project into .venv and run again.")
        self.results.update({
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_facts(), "cpu_layout": {"server": self.server_cpu, "load_replay_hub": self.load_cpu},
            "settings": {"apps": args.apps, "rm_users": args.rm_users, "users": args.users,
                         "interval_s": args.interval, "seconds": args.seconds, "churn_per_min": args.churn_per_min,
                         "throughput_seconds": args.throughput_seconds, "concurrency": args.concurrency,
                         "conditional": args.conditional, "targets": targets, "edge_args": args.edge_arg,
                         "quick": args.quick},
            "logs": str(self.work),
        })
        print_machine(self.results)
        poll_targets = [t for t in targets if t in POLL_TARGETS]
        if poll_targets:
            print(f"\nPhase 1: users poll GET {APPS_PATH} every {args.interval:g} s for {args.seconds:g} s "
                  f"(RM replay: {args.apps} apps over {args.rm_users} users)")
        for n in args.users if poll_targets else ():
            self.poll_case(n, poll_targets)
        if args.throughput_seconds > 0:
            print(f"\nPhase 2: closed loop, server on core {self.server_cpu}, "
                  f"load generator on core {self.load_cpu}")
            self.throughput(targets)
        self.results["throughput_ratios"] = throughput_ratios(self.results)
        self.results["verdicts"] = verdicts(self.results)
        return self.results


# --- reporting ---------------------------------------------------------------------------------

def machine_facts() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    versions = {}
    for name in ("tornado", "uvloop", "aiohttp", "yardlab", "jupyterhub"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"nproc": os.cpu_count(), "cpus_allowed": len(os.sched_getaffinity(0)), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "edge_installed": edge_installed(), "git_commit": commit}


def print_machine(results: dict) -> None:
    m = results["machine"]
    print(f"machine: {m['nproc']} CPUs ({m['cpus_allowed']} allowed), {m['cpu_model']}, Python {m['python']}, "
          f"{m['platform']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; commit {m['git_commit']}")
    print(f"logs: {results['logs']}")


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def poll_ratios(results: dict) -> dict[int, float | None]:
    by = {(r["users"], r["target"]): r for r in results["poll"] if "error" not in r}
    ratios = {}
    for n in sorted({r["users"] for r in results["poll"]}):
        pt, edge = by.get((n, "passthrough")), by.get((n, "edge"))
        if pt and edge:
            ratios[n] = (round(pt["rm_requests_per_min"] / edge["rm_requests_per_min"], 1)
                         if edge["rm_requests_per_min"] else float("inf"))
        else:
            ratios[n] = None
    return ratios


def verdicts(results: dict) -> dict:
    """The issue's targets, each PASS / FAIL / not measured, with the figure it was judged on."""
    out = {}
    ratios = poll_ratios(results)
    r1000 = ratios.get(1000)
    out["ratio_at_1000_users"] = {"target": f">= {TARGET_RATIO_AT_1000:g}", "value": r1000,
                                  "verdict": _verdict(r1000, r1000 is not None and r1000 >= TARGET_RATIO_AT_1000)}
    edge_rpm = [r["rm_requests_per_min"] for r in results["poll"] if r["target"] == "edge" and "error" not in r]
    growth = round(max(edge_rpm) / min(edge_rpm), 2) if len(edge_rpm) > 1 and min(edge_rpm) > 0 else None
    out["edge_rm_load_flat"] = {"target": f"max/min edge RM req/min across user counts <= {FLAT_FACTOR}",
                                "value": growth, "verdict": _verdict(growth, growth is not None and growth <= FLAT_FACTOR)}
    tp = next((r for r in results["throughput"] if r["target"] == "edge" and "error" not in r), None)
    p99 = tp["latency"]["p99_ms"] if tp else None
    rps = tp["requests_per_s"] if tp else None
    out["edge_p99_one_core"] = {"target": f"<= {TARGET_P99_MS:g} ms", "value": p99,
                                "verdict": _verdict(p99, p99 is not None and p99 <= TARGET_P99_MS)}
    out["edge_requests_per_s_one_core"] = {"target": f">= {TARGET_RPS:g}", "value": rps,
                                           "verdict": _verdict(rps, rps is not None and rps >= TARGET_RPS)}
    vs_bare = (results.get("throughput_ratios") or {}).get("edge_over_bare") or {}
    share = vs_bare.get("requests_per_s")
    out["edge_vs_bare_requests_per_s"] = {"target": f"edge >= {TARGET_RPS_VS_BARE:g}x bare (req/s, same run)",
                                          "value": share,
                                          "verdict": _verdict(share, share is not None and share >= TARGET_RPS_VS_BARE)}
    server_core = f"core{results['cpu_layout']['server']}_busy_pct"
    if tp:
        other = interference(tp, server_core)
        for name in ("edge_p99_one_core", "edge_requests_per_s_one_core"):
            out[name]["other_load_on_server_core_pct"] = other
    bare = next((r for r in results["throughput"] if r["target"] == "bare" and "error" not in r), None)
    if tp and bare:
        out["edge_vs_bare_requests_per_s"]["other_load_on_server_core_pct"] = {
            "edge": interference(tp, server_core), "bare": interference(bare, server_core)}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def throughput_ratios(results: dict) -> dict[str, dict | None]:
    """The edge's closed-loop figures over the bare handler's and the pass-through's, from this run."""
    rows = {r["target"]: r for r in results["throughput"] if "error" not in r}
    edge = rows.get("edge")
    out: dict[str, dict | None] = {}
    for other_name in ("bare", "passthrough"):
        other = rows.get(other_name)
        out[f"edge_over_{other_name}"] = None if not (edge and other) else {
            "requests_per_s": _ratio(edge["requests_per_s"], other["requests_per_s"]),
            "p50": _ratio(edge["latency"]["p50_ms"], other["latency"]["p50_ms"]),
            "p99": _ratio(edge["latency"]["p99_ms"], other["latency"]["p99_ms"]),
            "bytes_per_response": _ratio(edge.get("bytes_per_response"), other.get("bytes_per_response")),
        }
    return out


def _verdict(value: Any, ok: bool) -> str:
    return "not measured" if value is None else ("PASS" if ok else "FAIL")


def print_report(results: dict) -> None:
    s = results["settings"]
    print(f"\nRM load while users poll every {s['interval_s']:g} s ({s['apps']} apps on the RM replay, "
          f"{s['seconds']:g} s per case)")
    header = (f"{'users':>5} {'target':<12} {'RM req/min':>10} {'RM/user req':>11} {'RM MB/min':>9} "
              f"{'hub req/min':>11} {'req/s':>6} {'200':>6} {'304':>6} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'server CPU%':>11} {'its core%':>9} {'late':>5}")
    layout = results["cpu_layout"]
    server_core, load_core = f"core{layout['server']}_busy_pct", f"core{layout['load_replay_hub']}_busy_pct"
    print(header)
    print("-" * len(header))
    for r in results["poll"]:
        if "error" in r:
            print(f"{r['users']:>5} {r['target']:<12} error: {r['error'].splitlines()[0]}")
            continue
        load = r["load"]
        print(f"{r['users']:>5} {r['target']:<12} {r['rm_requests_per_min']:>10.1f} "
              f"{r['rm_requests_per_user_request']:>11.3f} {r['rm_bytes_per_min'] / 1e6:>9.1f} "
              f"{r['hub_requests_per_min']:>11.1f} {r['user_requests_per_s']:>6.1f} "
              f"{load['statuses'].get('200', 0):>6} {load['statuses'].get('304', 0):>6} "
              f"{sum(load['errors'].values()) + sum(v for k, v in load['statuses'].items() if k not in ('200', '304')):>6} "
              f"{_fmt(load['latency']['p50_ms']):>7} {_fmt(load['latency']['p99_ms']):>7} "
              f"{_fmt(load['cpu'].get('server_cpu_pct')):>11} "
              f"{_fmt(load['cpu'].get(server_core)):>9} {load['send_lag']['late']:>5}")
    for r in results["poll"]:
        other = interference(r.get("load", {}), server_core)
        if other is not None and other > INTERFERENCE_PCT:
            print(f"  ! {r['users']} users, {r['target']}: other processes used about {other:.0f}% of the "
                  f"server's core; its latencies are pessimistic")
    bad = [r for r in results["poll"] if "error" not in r
           and set(r["load"]["body_checks"]) - {"ok"}]
    for r in bad:
        print(f"  ! {r['target']} at {r['users']} users answered bodies: {r['load']['body_checks']}")
    ratios = poll_ratios(results)
    print("\nRatio pass-through RM req/min / edge RM req/min: "
          + ", ".join(f"{n} users: {_fmt(v)}" for n, v in ratios.items()))
    if results["throughput"]:
        print(f"\nThroughput: closed loop, {s['concurrency']} connections, {s['throughput_seconds']:g} s, "
              f"{s['rm_users']} tokens round-robin{' with If-None-Match' if s['conditional'] else ''}; "
              f"server on core {layout['server']}, load generator + replay + hub on core {layout['load_replay_hub']}")
        header = (f"{'target':<12} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'B/answer':>8} "
                  f"{'server CPU%':>11} {'its core%':>9} {'loadgen CPU%':>12} {'replay CPU%':>11} "
                  f"{'other core%':>11} {'statuses'}")
        print(header)
        print("-" * len(header))
        for r in results["throughput"]:
            if "error" in r:
                print(f"{r['target']:<12} error: {r['error'].splitlines()[0]}")
                continue
            lat, cpu = r["latency"], r["cpu"]
            print(f"{r['target']:<12} {r['requests_per_s']:>8.1f} {_fmt(lat['p50_ms']):>7} {_fmt(lat['p90_ms']):>7} "
                  f"{_fmt(lat['p99_ms']):>7} {_fmt(lat['max_ms']):>7} {_fmt(r.get('bytes_per_response')):>8} "
                  f"{_fmt(cpu.get('server_cpu_pct')):>11} "
                  f"{_fmt(cpu.get(server_core)):>9} "
                  f"{_fmt(cpu.get('loadgen_cpu_pct')):>12} {_fmt(cpu.get('replay_cpu_pct')):>11} "
                  f"{_fmt(cpu.get(load_core)):>11} "
                  f"{r['statuses']}{' errors ' + str(r['errors']) if r['errors'] else ''}")
        for r in results["throughput"]:
            other = interference(r, server_core)
            if other is not None and other > INTERFERENCE_PCT:
                print(f"  ! {r['target']}: other processes used about {other:.0f}% of the server's core during "
                      f"the window; its figures are pessimistic (run again on a quiet machine)")
        print_throughput_ratios(results)
    print("\nTargets (issue):")
    for name, v in results["verdicts"].items():
        print(f"  {name:<30} {v['verdict']:<13} value {_fmt(v['value'])}  (target {v['target']})")


def print_throughput_ratios(results: dict) -> None:
    ratios = results.get("throughput_ratios") or {}
    if not any(ratios.values()):
        return
    print("\nThe edge against the others in this run (req/s: above 1 is faster; latency: above 1 is slower):")
    for other_name, label in (("bare", "bare handler"), ("passthrough", "pass-through")):
        r = ratios.get(f"edge_over_{other_name}")
        if r:
            print(f"  edge / {label:<13} req/s {_fmt(r['requests_per_s'], '.2f')}x   p50 {_fmt(r['p50'], '.2f')}x   "
                  f"p99 {_fmt(r['p99'], '.2f')}x   bytes/answer {_fmt(r['bytes_per_response'], '.2f')}x")
    same = (ratios.get("edge_over_bare") or {}).get("bytes_per_response")
    if same is not None and abs(same - 1) > 0.05:
        print(f"  ! the edge's answers are {same}x the bare handler's in size: the ceiling is not serving the "
              f"same bytes, and the req/s ratio is not comparing like with like")
    print(f"  goal: edge >= {TARGET_RPS_VS_BARE:g}x bare (req/s)")


def interference(row: dict, core_key: str) -> float | None:
    """How much of the server's core something other than the server used in a measured window."""
    cpu = row.get("cpu") or {}
    if cpu.get(core_key) is None or cpu.get("server_cpu_pct") is None:
        return None
    return round(cpu[core_key] - cpu["server_cpu_pct"], 1)


def results_path(args: argparse.Namespace) -> Path:
    if args.output:
        return args.output
    return RESULTS / f"snapshot-{datetime.date.today().isoformat()}{'-quick' if args.quick else ''}.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="15 s per case and 5 s of closed loop")
    parser.add_argument("--seconds", type=float, default=None, help="polling time per case (default 60, --quick 15)")
    parser.add_argument("--users", default=",".join(map(str, USER_COUNTS)), help="simulated user counts")
    parser.add_argument("--targets", default=",".join(TARGETS), help="servers to measure, in order (bare: closed loop only)")
    parser.add_argument("--interval", type=float, default=5.0, help="each user's poll interval, seconds")
    parser.add_argument("--apps", type=int, default=10000, help="applications on the RM replay")
    parser.add_argument("--rm-users", type=int, default=1000, help="users the replay's applications belong to")
    parser.add_argument("--churn-per-min", type=float, default=30.0, help="replay app state changes per minute")
    parser.add_argument("--throughput-seconds", type=float, default=None,
                        help="closed-loop time per target (default 10, --quick 5; 0 skips the phase)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--conditional", action="store_true", help="closed loop sends If-None-Match")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between a target's start and counting")
    parser.add_argument("--edge-arg", action="append", default=[], help="extra command-line argument for the edge")
    parser.add_argument("--output", type=Path, default=None, help="results JSON (default bench/results/...)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    if args.throughput_seconds is None:
        args.throughput_seconds = 5.0 if args.quick else 10.0
    args.users = [int(n) for n in args.users.split(",") if n.strip()]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(STARTERS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {', '.join(STARTERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = SnapshotBench(args)
    results = bench.run()
    print_report(results)
    path = results_path(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
