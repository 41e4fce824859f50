"""The edge's cost of live Spark progress with 50 running applications, each with one notebook cell
polled once a second, as JupyterLab does while cells run.

A fake of YARN's web proxy (a child process; ``--serve``) answers ``/proxy/<app>/api/v1/applications/
<app>/jobs`` and ``.../stages/<id>`` for N applications, each driver holding ``--jobs`` earlier jobs
(Spark keeps up to 1000) plus one running job of the polled cell with three stages, one finished.
The edge's own ``SparkProgress`` (with its ``ResourceManagerClient``) runs in this process, and the
benchmark measures this process's CPU time per second of polling and the latency of one poll,
against the same run's baseline: the same number of plain fetches of the jobs page through the same
client, no parsing (what any proxy of the REST API would pay).

    .venv/bin/python bench/bench_progress_feed.py [--apps 50] [--jobs 200] [--seconds 20]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import server_process  # noqa: E402

APP = "application_1700000000000_{:04d}"
CELL = "cell-{:04d}"


def serve(n_apps: int, n_jobs: int) -> None:
    import tornado.httpserver
    import tornado.ioloop
    import tornado.web

    answers: dict[str, bytes] = {}
    for i in range(n_apps):
        app = APP.format(i)
        jobs = [{"jobId": j, "name": f"collect at <stdin>:{j}", "status": "SUCCEEDED", "stageIds": [3 * j, 3 * j + 1],
                 "jobTags": [f"yardlab-cell-old{j}", "spark-session-1"], "numTasks": 8, "numCompletedTasks": 8,
                 "submissionTime": "2026-12-01T02:24:44.153GMT"} for j in range(n_jobs)]
        jobs.append({"jobId": n_jobs, "name": "collect at <stdin>:1", "status": "RUNNING",
                     "stageIds": [9000, 9001, 9002], "jobTags": [f"yardlab-cell-{CELL.format(i)}"],
                     "numTasks": 24, "numCompletedTasks": 10, "numActiveTasks": 2})
        base = f"/proxy/{app}/api/v1/applications/{app}"
        answers[base + "/jobs"] = json.dumps(jobs[::-1], indent=2).encode()  # Spark: newest first, pretty
        for sid, status in ((9000, "COMPLETE"), (9001, "ACTIVE"), (9002, "PENDING")):
            stage = {"status": status, "stageId": sid, "attemptId": 0, "numTasks": 8, "numActiveTasks": 2,
                     "numCompleteTasks": 8 if status == "COMPLETE" else 3, "numFailedTasks": 0, "name": "map",
                     **{f"metric{k}": 0 for k in range(40)}, "details": "x" * 600}
            answers[f"{base}/stages/{sid}"] = json.dumps([stage], indent=2).encode()

    class Handler(tornado.web.RequestHandler):
        def get(self) -> None:
            body = answers.get(self.request.path)
            if body is None:
                self.set_status(404)
                return
            self.set_header("Content-Type", "application/json;charset=utf-8")
            self.finish(body)

    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", Handler)]))
    server.listen(0, "127.0.0.1")
    server_process.announce_ready(server_process.listen_url(server))
    tornado.ioloop.IOLoop.current().start()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(url: str, n_apps: int, seconds: float) -> dict:
    from yardlab.edge.clients.resourcemanager import ResourceManagerClient
    from yardlab.edge.progress import SparkProgress
    from yardlab.edge.sparkui import SparkUIProxy

    rm = ResourceManagerClient(urls=[url], service_user="bench")
    ui = SparkUIProxy("/services/yardlab-edge/")
    progress = SparkProgress(rm, ui.url_for)
    apps = [{"id": APP.format(i), "state": "RUNNING"} for i in range(n_apps)]

    async def feed(i: int, lat: list[float]) -> None:
        t = time.perf_counter()
        out = await progress.for_cell(apps[i], CELL.format(i))
        lat.append(time.perf_counter() - t)
        assert len(out["jobs"]) == 1 and len(out["jobs"][0]["stages"]) == 3

    async def plain(i: int, lat: list[float]) -> None:
        app = APP.format(i)
        t = time.perf_counter()
        resp = await rm.web_proxy(app, f"/api/v1/applications/{app}/jobs")
        lat.append(time.perf_counter() - t)
        assert resp.code == 200

    results = {}
    for name, one in (("plain jobs fetch (baseline)", plain), ("progress feed", feed), ("plain jobs fetch (again)", plain)):
        lat: list[float] = []
        started_cpu, started = cpu(), time.perf_counter()
        ticks = 0
        while time.perf_counter() - started < seconds:
            tick = time.perf_counter()
            await asyncio.gather(*(one(i, lat) for i in range(n_apps)))  # every cell polled once this second
            ticks += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
        used = cpu() - started_cpu
        wall = time.perf_counter() - started
        results[name] = {"polls": len(lat), "cpu_share_of_one_core": used / wall,
                         "cpu_ms_per_poll": 1000 * used / len(lat),
                         "p50_ms": 1000 * statistics.median(lat), "p90_ms": 1000 * sorted(lat)[int(0.9 * len(lat))]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=200, help="earlier jobs each driver holds")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.apps, args.jobs)
        return
    fake = server_process.ServerProcess.start_announced(
        "fake-yarn-proxy", server_process.python_argv("bench_progress_feed.py", "--serve", "--apps", str(args.apps),
                                                      "--jobs", str(args.jobs)), ROOT / "bench" / "results")
    try:
        results = asyncio.run(run(fake.url, args.apps, args.seconds))
    finally:
        fake.stop()
    base = results["plain jobs fetch (baseline)"]
    print(f"{args.apps} running applications, one cell each polled every second, {args.jobs} earlier jobs per "
          f"driver, {args.seconds:.0f} s per case ({platform.node()}, {os.cpu_count()} cores)")
    print(f"{'case':30} {'polls':>6} {'edge CPU':>9} {'ms CPU/poll':>12} {'p50 ms':>7} {'p90 ms':>7}")
    for name, r in results.items():
        print(f"{name:30} {r['polls']:6d} {100 * r['cpu_share_of_one_core']:8.1f}% {r['cpu_ms_per_poll']:12.2f} "
              f"{r['p50_ms']:7.1f} {r['p90_ms']:7.1f}")
    feed = results["progress feed"]
    print(f"progress feed / plain fetch: CPU per poll {feed['cpu_ms_per_poll'] / base['cpu_ms_per_poll']:.2f}x")
    out = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores", "apps": args.apps,
           "jobs": args.jobs, "results": results}
    (ROOT / "bench" / "results" / "progress_feed.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
