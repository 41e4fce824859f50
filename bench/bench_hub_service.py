"""Hub service benchmark: page render and API times with 10,000 applications in the edge's snapshot.

Starts the RM replay (10,000 apps over 1,000 users), the fake hub and the edge (as
bench_snapshot.py does), then the hub service (`python -m yardlab.hub_service`) in front of the
edge, with a sample database seeded with 30 days of one-minute samples.  Measures sequential
request latency (median / p95 over --requests) for:

- pages: the jobs and overview shells (jinja render + hub token check + edge /me);
- API: everyone's apps (limit 100 and 1000), cluster, usage (24h/7d/30d over the seeded
  database), history (24 h);
- the baselines measured in the same run: the edge's own /api/v1/apps and /cluster with the same
  token (the ratio is the cost of the extra hop), and a static file of the hub service (the
  floor of a tornado answer on this machine);
- one sampler pass over the 10,000 applications (10 pages from the edge, deltas, one write).

    .venv/bin/python bench/bench_hub_service.py [--requests 200] [--days 30] [--users 40]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

import fake_hub  # noqa: F401  (documents the hub stand-in used)
import rm_replay
import server_process
from bench_snapshot import SERVICE_TOKEN, machine_facts, start_edge
from server_process import ServerProcess

BENCH = Path(__file__).resolve().parent
ADMIN = {"Authorization": "token tok-admin"}


def seed_database(url: str, days: int, users: int, interval: float = 60.0) -> tuple[int, int, int]:
    """What the sampler leaves after ``days`` days at one sample per ``interval`` s with ``users`` users
    active in each: cluster samples for every day, per-user hourly sums for every day, raw per-user
    samples for the last two days (the sampler's pruning keeps no more)."""
    from collections import Counter

    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from yardlab.hub_service.store import ClusterSample, UsageStore, UserHour, UserSample

    store = UsageStore(url)
    now = time.time()
    n = int(days * 86400 / interval)
    raw_from = now - 2 * 86400
    hours: Counter = Counter()
    n_raw = 0
    with Session(store.engine) as s, s.begin():
        cluster, per_user = [], []
        for i in range(n):
            ts = now - (n - i) * interval
            cluster.append({"ts": ts, "memory_used_mb": 4096 + i % 4096, "memory_total_mb": 8192 * 250,
                            "vcores_used": 10 + i % 50, "vcores_total": 2000, "apps_running": 400,
                            "apps_pending": 100, "nodes_active": 250, "nodes_unhealthy": 0})
            for u in range(users):
                name = f"user{(u * 7 + i // 60) % 1000:04d}"
                hours[(int(ts // 3600 * 3600), name)] += 1
                if ts >= raw_from:
                    per_user.append({"ts": ts, "user": name, "running": 1, "pending": 0, "allocated_mb": 1024,
                                     "allocated_vcores": 1, "memory_seconds": 61440, "vcore_seconds": 60})
        s.execute(insert(ClusterSample), cluster)
        s.execute(insert(UserSample), per_user)
        n_raw = len(per_user)
        s.execute(insert(UserHour), [{"hour": h, "user": u, "memory_seconds": 61440 * k, "vcore_seconds": 60 * k}
                                     for (h, u), k in hours.items()])
    return n, len(hours), n_raw
def start_hub_service(edge_url: str, hub_url: str, db_url: str, log_dir: Path) -> tuple[str, ServerProcess]:
    port = server_process.free_port()
    base = f"http://127.0.0.1:{port}/services/yardlab"
    env = {**os.environ, "JUPYTERHUB_API_URL": f"{hub_url}/hub/api", "JUPYTERHUB_API_TOKEN": SERVICE_TOKEN,
           "JUPYTERHUB_SERVICE_PREFIX": "/services/yardlab/", "JUPYTERHUB_CLIENT_ID": "service-yardlab",
           "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/yardlab/oauth_callback"}
    argv = [sys.executable, "-m", "yardlab.hub_service", f"--HubServiceApp.port={port}",
            f"--HubServiceApp.edge_url={edge_url}", f"--HubServiceApp.db_url={db_url}", "--no-sampler",
            # the fake hub's tokens carry the edge's access scope only (it stands in for both)
            """--YardlabHubOAuth.access_scopes=["access:services!service=yardlab-edge"]"""]
    handle = ServerProcess.start_with_health("hub-service", argv, base, f"{base}/health", log_dir, env=env)
    return base, handle


def measure(session: requests.Session, url: str, n: int, headers: dict | None = None) -> dict:
    for _ in range(5):  # warm caches and connections
        r = session.get(url, headers=headers, timeout=60)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.get(url, headers=headers, timeout=60)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (url, r.status_code)
        size = len(r.content)
    times.sort()
    return {"median_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
            "bytes": size, "n": n}


async def sampler_pass(edge_url: str, db_url: str, passes: int) -> list[float]:
    from yardlab.edge.client import AsyncEdgeClient
    from yardlab.hub_service.sampler import ClusterSampler
    from yardlab.hub_service.store import UsageStore

    sampler = ClusterSampler(store=UsageStore(db_url), edge=AsyncEdgeClient(edge_url, "tok-admin"))
    out = []
    for _ in range(passes):
        t0 = time.perf_counter()
        await sampler.sample_once()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200, help="requests per measured URL")
    p.add_argument("--days", type=int, default=30, help="days of one-minute samples seeded into the database")
    p.add_argument("--users", type=int, default=40, help="users active in each seeded sample (they rotate hourly)")
    p.add_argument("--apps", type=int, default=10000)
    args = p.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="yardlab-bench-hub-service-"))
    print(f"logs in {log_dir}; machine {machine_facts()}")
    db_url = f"sqlite:///{log_dir / 'samples.sqlite'}"
    t0 = time.monotonic()
    n_samples, n_hours, n_raw = seed_database(db_url, args.days, args.users)
    print(f"seeded {n_samples} cluster samples, {n_hours} user-hours and {n_raw} raw user samples "
          f"in {time.monotonic() - t0:.1f} s")
    handles: list[ServerProcess] = []
    try:
        rm_url, rm = rm_replay.start_replay(args.apps, 1000, churn_per_min=0, log_dir=log_dir)
        handles.append(rm)
        hub = ServerProcess.start_announced(
            "fake-hub", server_process.python_argv("fake_hub.py", "--service-token", SERVICE_TOKEN), log_dir)
        handles.append(hub)
        # finished applications reach a week back in the replay: keep them all in the snapshot
        edge_url, edge = start_edge(rm_url, hub.url, log_dir=log_dir,
                                    extra_args=("--AppSnapshot.finished_window=864000",))
        handles.append(edge)
        # wait until the edge's snapshot holds every application
        deadline = time.monotonic() + 120
        while True:
            body = requests.get(f"{edge_url}/api/v1/cluster", headers=ADMIN, timeout=30)
            if body.status_code == 200 and sum(body.json()["appsByState"].values()) >= args.apps:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge's snapshot did not fill: {body.status_code} {body.text[:200]}")
            time.sleep(1)
        svc_url, svc = start_hub_service(edge_url, hub.url, db_url, log_dir)
        handles.append(svc)
        s = requests.Session()
        n = args.requests
        cases = {
            "baseline: edge /apps?user=*&limit=100": (f"{edge_url}/api/v1/apps?user=*&limit=100", ADMIN),
            "baseline: edge /apps?user=*&limit=1000": (f"{edge_url}/api/v1/apps?user=*&limit=1000", ADMIN),
            "baseline: edge /cluster": (f"{edge_url}/api/v1/cluster", ADMIN),
            "baseline: service static file": (f"{svc_url}/static/common.js", None),
            "page: jobs": (f"{svc_url}/jobs", ADMIN),
            "page: overview": (f"{svc_url}/overview", ADMIN),
            "page: history": (f"{svc_url}/history", ADMIN),
            "api: apps?user=*&limit=100": (f"{svc_url}/api/v1/apps?user=*&limit=100", ADMIN),
            "api: apps?user=*&limit=1000": (f"{svc_url}/api/v1/apps?user=*&limit=1000", ADMIN),
            "api: apps?user=*&search=pi&limit=100": (f"{svc_url}/api/v1/apps?user=*&search=pi&limit=100", ADMIN),
            "api: cluster": (f"{svc_url}/api/v1/cluster", ADMIN),
            "api: usage (24h/7d/30d, everyone)": (f"{svc_url}/api/v1/usage", ADMIN),
            "api: usage (one user)": (f"{svc_url}/api/v1/usage?user=user0007", ADMIN),
            "api: history 24h": (f"{svc_url}/api/v1/history?since=24h", ADMIN),
            "api: history 30d (thinned to 2000)": (f"{svc_url}/api/v1/history?since=30d", ADMIN),
        }
        results = {}
        for name, (url, headers) in cases.items():
            reps = max(20, n // 10) if "usage" in name or "30d" in name else n
            results[name] = measure(s, url, reps, headers)
        passes = asyncio.run(sampler_pass(edge_url, db_url, 3))
    finally:
        for h in reversed(handles):
            h.stop()
    ratios = {
        "api apps limit 100 / edge apps limit 100":
            results["api: apps?user=*&limit=100"]["median_ms"] / results["baseline: edge /apps?user=*&limit=100"]["median_ms"],
        "api apps limit 1000 / edge apps limit 1000":
            results["api: apps?user=*&limit=1000"]["median_ms"] / results["baseline: edge /apps?user=*&limit=1000"]["median_ms"],
        "api cluster / edge cluster":
            results["api: cluster"]["median_ms"] / results["baseline: edge /cluster"]["median_ms"],
        "page jobs / static file": results["page: jobs"]["median_ms"] / results["baseline: service static file"]["median_ms"],
    }
    print(f"\n{'case':46} {'median ms':>10} {'p95 ms':>8} {'bytes':>9} {'n':>5}")
    for name, r in results.items():
        print(f"{name:46} {r['median_ms']:10.2f} {r['p95_ms']:8.2f} {r['bytes']:9d} {r['n']:5d}")
    print("\nratios (medians):")
    for name, v in ratios.items():
        print(f"  {name:46} {v:6.2f}x")
    print(f"\nsampler pass over {args.apps} applications: first {passes[0]:.2f} s (all new), "
          f"then {', '.join(f'{x:.2f}' for x in passes[1:])} s")
    out = BENCH / "results" / f"hub-service-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps({"machine": machine_facts(), "apps": args.apps, "seeded_samples": n_samples,
                               "seeded_user_hours": n_hours, "seeded_raw_user_samples": n_raw, "results": results, "ratios": ratios,
                               "sampler_pass_s": passes}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
