"""Many users on the real local stack: N open Lab sidebars, then a class starting its kernels, at two sizes.

For each number of users (``--users``, default 200, and ``--compare``, default 20, measured in the
same run so their ratio shows how the cost grows), with hub users made for the run:

1. login: the hub makes the users (``POST /hub/api/users``) and an API token for each
   (``POST /hub/api/users/<name>/tokens``, as the stack makes the demo users').
2. sidebars: every user's sidebar and HDFS browser poll the edge through the hub's proxy for
   ``--seconds`` (``sidebar_load.py`` says what each sends and how often, from labextension/src).
3. kernels: the sidebars keep polling while ``--kernels`` users (scaled to each size: 20 of 200,
   2 of 20) start a kernel at once through the edge's ``/gateway/`` as their Lab server would, run
   one cell and shut it down.  YARN holds fewer kernels at once than that on a 2-core / 24 GB
   machine (8 GB of containers): the rest wait in its queue, and that wait is reported.  Then no
   YARN application of the run's users may be left (checked for up to 90 s; any left is killed
   and counted as an error).

Reported per window: every call's p50/p99 and late sends, errors by kind (target: none), and the
CPU seconds and peak resident memory of the hub, its proxy, the edge, Enterprise Gateway, what
EG started (spark-submit), the YARN containers, the ResourceManager and the NameNode (sampled
every 0.5 s; CPU from /proc, children included where it says so), with the ratios of the two
sizes.  The hub users, their tokens (with them) and HDFS homes are removed after the run.

    .venv/bin/python bench/bench_load.py [--users 200] [--compare 20] [--seconds 60] [--kernels 20]

Uses the running local stack (``make demo``), or starts one for the run and stops it after.
Results: ``bench/results/load-<date>[-<tag>].json``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import requests

import sidebar_load
from bench_kernel_start import machine, rm_app, stack_info
from loadgen import core_times, percentile
from server_process import (children_by_parent, descendants, process_cpu_seconds, process_rss_bytes,
                            process_start_and_cpu, tree_cpu_seconds)

BENCH = Path(__file__).resolve().parent
ACTIVE_STATES = "NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING"


# --- the stack's processes ------------------------------------------------------------------------

def watched_processes(info: dict) -> dict[str, tuple[int, bool]]:
    """Name -> (pid, whole tree below it rather than the process itself) of what the report covers."""
    pids = info["pids"]
    children = children_by_parent()
    # the launcher runs the proxy as a piece of its own (a hub that starts it: among the hub's children)
    under = ([pids["proxy"], *descendants(pids["proxy"], children)] if "proxy" in pids
             else descendants(pids["jupyterhub"], children))
    proxies = [p for p in under if b"configurable-http-proxy" in _cmdline(p)]
    eg = json.loads(Path(info["eg_state_file"]).read_text())["pid"]
    rows = {"hub": (pids["jupyterhub"], False),
            # the proxy may run through a wrapper: the process holding the most memory is node
            "proxy": (max(proxies, key=lambda p: process_rss_bytes(p) or 0), False) if proxies else None,
            "edge": (pids["edge"], False), "EG": (eg, False), "EG's children (spark-submit)": (eg, True),
            "YARN containers (kernels)": (pids["nodemanager"], True),
            "ResourceManager": (pids["resourcemanager"], False), "NameNode": (pids["namenode"], False)}
    return {name: row for name, row in rows.items() if row}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class ProcessWatch:
    """CPU seconds and peak resident memory of some processes (or of what they started) over a window.

    What a process started is counted two ways, and the larger is kept (both can only miss time):
    by /proc's reaped-children counters (exact, unless a process group is killed at once: its
    processes are re-parented to init before anyone in the tree reaps them, as YARN's containers
    are at a kernel's shutdown) and by sampling every descendant's own CPU time (misses at most
    one interval of each process, and processes shorter than that).
    """

    def __init__(self, rows: dict[str, tuple[int, bool]], interval: float = 0.5) -> None:
        self.rows = rows
        self.interval = interval
        self.peak: dict[str, int] = {}
        # per tree row: (pid, start time) of each descendant seen -> (own CPU when first seen, last seen)
        self.seen: dict[str, dict[tuple[int, int], list[float]]] = {name: {} for name in rows}
        self.first_sample = True
        self._stop = threading.Event()

    def _cpu(self) -> dict[str, float | None]:
        children = children_by_parent()
        out: dict[str, float | None] = {}
        for name, (pid, tree) in self.rows.items():
            own = process_cpu_seconds(pid)
            if tree:
                whole = tree_cpu_seconds(pid, children)
                out[name] = None if whole is None or own is None else whole - own
            else:
                out[name] = own
        return out

    def _sample(self) -> None:
        children = children_by_parent()
        for name, (pid, tree) in self.rows.items():
            if not tree:
                self.peak[name] = max(self.peak.get(name, 0), process_rss_bytes(pid) or 0)
                continue
            rss = 0
            for p in descendants(pid, children):
                rss += process_rss_bytes(p) or 0
                st = process_start_and_cpu(p)
                if st:
                    # a process already running when the window opened counts from there, a new one from 0
                    first, _ = self.seen[name].setdefault((p, st[0]), [st[1] if self.first_sample else 0.0, st[1]])
                    self.seen[name][(p, st[0])] = [first, st[1]]
            self.peak[name] = max(self.peak.get(name, 0), rss)
        self.first_sample = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self.wall = time.monotonic()
        self.cores = core_times()
        self.cpu0 = self._cpu()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        cpu1 = self._cpu()
        wall = time.monotonic() - self.wall
        busy = total = 0
        for core, (b1, t1) in core_times().items():
            b0, t0 = self.cores.get(core, (b1, t1))
            busy, total = busy + b1 - b0, total + t1 - t0
        processes = {}
        for name, (_, tree) in self.rows.items():
            cpu = None if cpu1[name] is None or self.cpu0[name] is None else cpu1[name] - self.cpu0[name]
            entry = {"cpu_s": None if cpu is None else round(cpu, 2),
                     "peak_rss_mb": round(self.peak.get(name, 0) / 2**20, 1)}
            if tree:
                sampled = sum(last - first for first, last in self.seen[name].values())
                entry.update(cpu_reaped_s=entry["cpu_s"], cpu_sampled_s=round(sampled, 2),
                             cpu_s=round(max(cpu or 0.0, sampled), 2))
            processes[name] = entry
        return {"wall_s": round(wall, 2), "machine_busy_pct": round(100 * busy / max(1, total), 1),
                "processes": processes}


# --- hub users and YARN ----------------------------------------------------------------------------

class HubUsers:
    """The run's hub users, made and removed with the stack's service token (the test suite's way)."""

    def __init__(self, info: dict, prefix: str) -> None:
        self.api = info["hub_api"].rstrip("/")
        self.prefix = prefix
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {info['hub_service_token']}"

    def make(self, names: list[str]) -> float:
        """Make the users (on the split stack the hub makes an OS account for each); seconds it took."""
        t0 = time.monotonic()
        r = self.http.post(f"{self.api}/users", json={"usernames": names}, timeout=600)
        if r.status_code != 201:
            raise RuntimeError(f"the hub did not make the users: {r.status_code} {r.text[:300]}")
        return time.monotonic() - t0

    def leftovers(self) -> list[str]:
        """Users of an earlier run of this bench (a run that was stopped before it cleaned up)."""
        names: list[str] = []
        while True:  # the hub answers at most 200 users a page
            r = self.http.get(f"{self.api}/users", params={"name_filter": self.prefix, "offset": len(names)},
                              timeout=60)
            if r.status_code != 200:
                print(f"could not list earlier runs' users ({r.status_code}); none removed", file=sys.stderr)
                return []
            page = [u["name"] for u in r.json()]
            names += page
            if not page:
                return [name for name in names if name.startswith(self.prefix)]

    def remove(self, names: list[str], info: dict, hadoop) -> None:  # noqa: ANN001
        """Remove the users (their tokens go with them; their OS accounts too) and their HDFS homes."""
        for name in names:
            self.http.delete(f"{self.api}/users/{name}", timeout=60)
        hdfs = hadoop.webhdfs(info)
        for name in names:
            try:
                hdfs.delete(f"/user/{name}", recursive=True)
            except Exception as e:  # noqa: BLE001 - cleanup goes on; the home is named in the log
                print(f"  could not remove /user/{name}: {e}", file=sys.stderr)


def active_apps(info: dict, hadoop, users: set[str]) -> list[dict]:  # noqa: ANN001
    r = requests.get(f"{info['rm_url']}/ws/v1/cluster/apps", auth=hadoop.auth, timeout=30,
                     params=hadoop.params(states=ACTIVE_STATES))
    r.raise_for_status()
    return [a for a in ((r.json().get("apps") or {}).get("app") or []) if a.get("user") in users]


def leftover_check(info: dict, hadoop, users: set[str], wait: float = 90.0) -> dict:  # noqa: ANN001
    """Wait until no YARN application of ``users`` is active; kill and name what is still there."""
    t0 = time.monotonic()
    apps = active_apps(info, hadoop, users)
    while apps and time.monotonic() - t0 < wait:
        time.sleep(2)
        apps = active_apps(info, hadoop, users)
    for app in apps:
        requests.put(f"{info['rm_url']}/ws/v1/cluster/apps/{app['id']}/state", auth=hadoop.auth, timeout=30,
                     params=hadoop.params(), json={"state": "KILLED"})
    return {"waited_s": round(time.monotonic() - t0, 1),
            "left": [{"id": a["id"], "user": a["user"], "state": a["state"], "name": a.get("name")} for a in apps]}


#: spans of one kernel start: (name, from mark, to mark)
KERNEL_SPANS = (("submit (POST -> YARN submission)", "t_post", "t_submitted"),
                ("YARN queue wait (submission -> AM launched)", "t_submitted", "t_am_launched"),
                ("start (POST -> 201)", "t_post", "t_started"),
                ("first reply (POST -> cell's reply)", "t_post", "t_reply"))


def kernel_marks(info: dict, hadoop, records: list[dict]) -> None:  # noqa: ANN001
    """Add YARN's submission and AM launch times of each started kernel."""
    for rec in records:
        if rec.get("kernel_id"):
            try:
                app = rm_app(info["rm_url"], hadoop, rec["kernel_id"])
            except (requests.RequestException, ValueError):
                app = {}
            if app.get("startedTime"):
                rec["t_submitted"] = app["startedTime"] / 1000
            if app.get("launchTime"):
                rec["t_am_launched"] = app["launchTime"] / 1000


def kernel_spans(rec: dict) -> dict[str, float]:
    """Seconds between the marks of one kernel that started (a refused start has no spans)."""
    if not rec.get("kernel_id"):
        return {}
    spans = {name: round(rec[b] - rec[a], 2) for name, a, b in KERNEL_SPANS if a in rec and b in rec}
    if "shutdown_s" in rec:
        spans["shutdown (DELETE)"] = rec["shutdown_s"]
    return spans


# --- one size -------------------------------------------------------------------------------------

class LoadProcess:
    """The load generator's own process (spawned once, so its start is not in a window)."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.pool.submit(percentile, [], 50).result(timeout=60)

    def run(self, fn, *args, timeout: float):  # noqa: ANN001, ANN201
        return self.pool.submit(fn, *args).result(timeout=timeout)


def run_size(n: int, n_kernels: int, args: argparse.Namespace, st, info: dict, hadoop,  # noqa: ANN001
             hub: HubUsers, load: LoadProcess) -> dict:
    # names new to the edge: it remembers whom it provisioned (an HDFS home) for as long as it runs, and the
    # homes of an earlier run's users are gone
    run = f"{int(time.time()) % 100000:05d}"
    names = [f"{args.prefix}{run}-{n}-{i:03d}" for i in range(n)]
    out: dict = {"users": n, "n_kernels": n_kernels}
    print(f"\n== {n} users: making them ...", flush=True)
    try:
        out["make_users_s"] = round(hub.make(names), 2)
        logins = load.run(sidebar_load.run_logins, info["hub_api"], info["hub_service_token"], names, timeout=600)
        out["login"] = {"latency": logins["latency"], "errors": logins["errors"]}
        users = [[name, logins["tokens"][name]] for name in names if name in logins["tokens"]]
        print(f"   {len(names)} users made in {out['make_users_s']} s; tokens p50 "
              f"{logins['latency']['p50_ms']} ms, p99 {logins['latency']['p99_ms']} ms", flush=True)
        spec = {"api": info["edge_public_url"] + "/api/v1", "gateway": info["edge_url"] + "/gateway",
                "users": users, "ramp": args.ramp, "hdfs_interval": args.hdfs_interval, "kernelspec": args.kernelspec,
                "cell": args.cell, "cell_timeout": 300.0, "kernel_delay": args.ramp,
                "kernel_timeout": args.kernel_timeout}
        for window, kernels, seconds in (("sidebars", [], args.seconds),
                                         ("kernels", [u for u, _ in users[:n_kernels]], args.kernel_timeout + 60)):
            print(f"   window '{window}': {len(users)} sidebars"
                  + (f", {len(kernels)} kernel starts" if kernels else f" for {seconds:.0f} s") + " ...", flush=True)
            watch = ProcessWatch(watched_processes(st.read_info() or info))  # the edge may have restarted EG
            watch.start()
            result = load.run(sidebar_load.run_window, {**spec, "kernels": kernels, "max_seconds": seconds},
                              timeout=seconds + 300)
            result.update(watch.stop())
            if kernels:
                kernel_marks(info, hadoop, result["kernels"])
                for rec in result["kernels"]:
                    rec["spans"] = kernel_spans(rec)
                result["leftover"] = leftover_check(info, hadoop, set(names))
                for app in result["leftover"]["left"]:
                    key = f"YARN application left {app['state']} after shutdown"
                    result["errors"][key] = result["errors"].get(key, 0) + 1
            out[window] = result
            print(f"   done in {result['wall_s']} s; errors {sum(result['errors'].values())}; "
                  f"machine busy {result['machine_busy_pct']}%", flush=True)
    finally:
        if "leftover" not in out.get("kernels", {}):  # stopped half-way: no kernel of the run may stay
            try:
                leftover_check(info, hadoop, set(names), wait=30)
            except requests.RequestException as e:
                print(f"could not check YARN for the run's applications: {e}", file=sys.stderr)
        if not args.keep_users:
            hub.remove(names, info, hadoop)
    return out


# --- report ---------------------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "-"


def report(sizes: list[dict]) -> str:
    """The tables: calls, errors, processes (and kernels), one column group per size and the ratio."""
    lines: list[str] = []
    big, small = sizes[-1], sizes[0] if len(sizes) > 1 else None
    heads = [f"{s['users']} users" for s in sizes]
    for window in ("sidebars", "kernels"):
        w0 = big[window]
        lines.append(f"\n-- window '{window}': " + "; ".join(
            f"{s['users']} users {s[window]['wall_s']:.0f} s, machine busy {s[window]['machine_busy_pct']:.0f}%"
            for s in sizes))
        lines.append(f"{'call':30}" + "".join(f"{h + ':   n  p50 ms  p99 ms  late':>41}" for h in heads)
                     + ("   p99 ratio" if small else ""))
        for stream in sorted(set().union(*(s[window]["streams"] for s in sizes))):
            row = f"{stream:30}"
            p99 = []
            for s in sizes:
                st = s[window]["streams"].get(stream)
                if st and st["latency"]["n"]:
                    lat = st["latency"]
                    row += f"{lat['n']:>19d}{lat['p50_ms']:>8.1f}{lat['p99_ms']:>8.1f}{st['late']:>6d}"
                    p99.append(lat["p99_ms"])
                else:
                    row += f"{'-':>41}"
                    p99.append(None)
            lines.append(row + (f"{_ratio(p99[-1], p99[0]):>12}" if small else ""))
        lines.append(f"{'process (CPU s / peak RSS MB)':30}" + "".join(f"{h:>22}" for h in heads)
                     + ("   CPU ratio  RSS ratio" if small else ""))
        for name in w0["processes"]:
            row = f"{name:30}"
            vals = [s[window]["processes"].get(name, {}) for s in sizes]
            for v in vals:
                cpu = "-" if v.get("cpu_s") is None else f"{v['cpu_s']:.1f}"
                row += f"{cpu:>12} / {v.get('peak_rss_mb', 0):>7.0f}"
            if small:
                row += f"{_ratio(vals[-1].get('cpu_s'), vals[0].get('cpu_s')):>12}"
                row += f"{_ratio(vals[-1].get('peak_rss_mb'), vals[0].get('peak_rss_mb')):>11}"
            lines.append(row)
        row = f"{'load generator':30}"
        for s in sizes:
            row += f"{s[window]['loadgen']['cpu_s']:>12.1f} / {s[window]['loadgen']['peak_rss_mb']:>7.0f}"
        lines.append(row)
    lines.append("\n-- kernels (s: p50 / max)")
    lines.append(f"{'span':46}" + "".join(f"{'%s (%d kernels)' % (h, s['n_kernels']):>26}" for h, s in zip(heads, sizes)))
    for name in [name for name, _, _ in KERNEL_SPANS] + ["shutdown (DELETE)"]:
        row = f"{name:46}"
        for s in sizes:
            vals = sorted(v for v in (kernel_spans(r).get(name) for r in s["kernels"]["kernels"]) if v is not None)
            row += f"{percentile(vals, 50):>15.1f} / {vals[-1]:<8.1f}" if vals else f"{'-':>26}"
        lines.append(row)
    for s in sizes:
        recs = s["kernels"]["kernels"]
        ok = sum(1 for r in recs if r.get("reply_status") == "ok" and "error" not in r)
        lines.append(f"{s['users']} users: {ok} of {len(recs)} kernels started, ran the cell and were shut down; "
                     f"YARN applications left after shutdown: {len(s['kernels']['leftover']['left'])} "
                     f"(checked for {s['kernels']['leftover']['waited_s']} s)")
        failed = Counter(f"{r['error']} {r.get('message', '')}".strip() for r in recs if "error" in r)
        for what, count in failed.items():
            lines.append(f"  {count} x {what[:160]}")
    lines.append("\n-- errors by kind (target: none)")
    lines.append(f"{'':60}" + "".join(f"{h:>10}" for h in heads))
    kinds = sorted(set().union(*(s[w]["errors"] for s in sizes for w in ("sidebars", "kernels")),
                               *(s["login"]["errors"] for s in sizes)))
    for kind in kinds:
        lines.append(f"{kind:60}" + "".join(
            f"{s['login']['errors'].get(kind, 0) + s['sidebars']['errors'].get(kind, 0) + s['kernels']['errors'].get(kind, 0):>10d}"
            for s in sizes))
    if not kinds:
        lines.append("none")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    p.add_argument("--compare", type=int, default=20, help="the smaller size measured in the same run (0: none)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the sidebars-only window (default 60)")
    p.add_argument("--kernels", type=int, default=20,
                   help="concurrent kernel starts at --users users; scaled to the smaller size (default 20)")
    p.add_argument("--kernelspec", default="yardlab_pyspark")
    p.add_argument("--cell", default="1 + 1", help="the one cell each kernel runs")
    p.add_argument("--kernel-timeout", type=float, default=420.0,
                   help="seconds the kernels window may last; starts not done by then are errors (default 420)")
    p.add_argument("--ramp", type=float, default=10.0,
                   help="page loads spread over this many seconds; kernels start after it (default 10)")
    p.add_argument("--hdfs-interval", type=float, default=10.0,
                   help="seconds between a user's HDFS listings (Personal, Shared, Public in turn; default 10)")
    p.add_argument("--prefix", default="ylload", help="name prefix of the run's hub users")
    p.add_argument("--keep-users", action="store_true", help="leave the hub users and their HDFS homes")
    p.add_argument("--tag", default="", help="suffix of the results file name")
    p.add_argument("--report", metavar="FILE", help="print the tables of a results file and stop")
    args = p.parse_args()
    if args.report:
        print(report(json.loads(Path(args.report).read_text())["sizes"]))
        return 0
    sizes_n = sorted({n for n in (args.compare, args.users) if n > 0})

    from hadoop_auth import HadoopAuth

    st, info, owned = stack_info()
    hadoop = HadoopAuth.of(info)
    mach = machine(info)
    hub = HubUsers(info, args.prefix)
    stale = hub.leftovers()
    if stale:
        print(f"removing {len(stale)} hub users of an earlier run", flush=True)
        hub.remove(stale, info, hadoop)
    load = LoadProcess()
    sizes: list[dict] = []
    out = BENCH / "results" / f"load-{datetime.now(timezone.utc):%Y%m%d}{'-' + args.tag if args.tag else ''}.json"

    def save(partial: bool) -> None:
        out.write_text(json.dumps({"args": vars(args), "machine": mach, "partial": partial,
                                   "intervals_s": dict(sidebar_load.SIDEBAR, files=args.hdfs_interval),
                                   "sizes": sizes}, indent=2) + "\n")

    try:
        for n in sizes_n:
            sizes.append(run_size(n, max(1, round(args.kernels * n / args.users)), args, st, info, hadoop, hub,
                                  load))
            save(partial=True)
    finally:
        load.pool.shutdown(wait=True, cancel_futures=True)
        if owned:
            st.stop()
    print(f"\nmachine: {mach['cores']} cores, {mach['cpu']}, {mach['memory_gb']} GB, Python {mach['python']}, "
          f"{mach['security']}-auth stack")
    print(report(sizes))
    save(partial=False)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
