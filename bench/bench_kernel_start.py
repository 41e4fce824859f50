"""Kernel start latency and where it goes: through the edge's /gateway/ and straight to Enterprise Gateway.

Each run starts a kernel on YARN, runs ``1 + 1`` (first execute_reply) and then
``spark.range(1).count()`` (first Spark action), reads the start marks the kernel launcher kept in
``YARDLAB_START_MARKS`` and the YARN application's ``startedTime``/``launchTime``, shuts the kernel
down and waits until its YARN application has ended.  Runs are interleaved (edge, EG, EG, edge, ...,
and the kernelspecs in turn) so slow drift of the machine hits every case alike.

    .venv/bin/python bench/bench_kernel_start.py [--runs 10] [--user guest]
        [--kernelspec yardlab_pyspark [--kernelspec yardlab_pyspark_exp ...]] [--sides edge,eg]

The waterfall (one row per phase, p50/p90 over the runs of a case; all clocks are the one machine's
wall clock):

    edge+EG -> run.sh        POST sent -> run.sh started (edge checks, EG's queue check and launch)
    spark-submit -> submit   run.sh -> the RM's startedTime (client JVM, delegation tokens, upload)
    submit -> AM launched    startedTime -> the RM's launchTime (scheduling the AM container)
    AM launched -> JVM       launchTime -> the driver JVM's start (localization, container launch)
    JVM -> python            driver JVM start -> the Python launcher's process start
    python -> listener       launcher process start -> connection info sent to EG (imports, tokens)
    listener -> POST         connection info sent -> the start POST returned (EG's poll, session)
    POST -> 1+1 reply        POST returned -> first execute_reply (websocket, kernel's first cell)
    1+1 -> spark action      first reply -> first ``spark.range(1).count()`` reply

and, beside it, the SparkContext's creation (the launcher's thread, in parallel with the above) and
when Spark was ready relative to the POST returning.  A kernelspec whose launcher keeps no marks
(written before the waterfall existed) gets the totals only.

Uses the running local stack (`make demo`), or starts one for the run.  Target: edge/EG p50 ratio
at most 1.05.  Results: ``bench/results/kernel-start-<date>[-<tag>].json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))
sys.path.insert(0, str(ROOT / "tests"))

MARKS_CODE = "import os as _yl_os; print(_yl_os.environ.get('YARDLAB_START_MARKS', '')); del _yl_os"

# (name, start mark, end mark): consecutive phases of one start, in the order they happen
PHASES = [
    ("edge+EG -> run.sh", "post", "runsh"),
    ("spark-submit -> submit", "runsh", "rm_started"),
    ("submit -> AM launched", "rm_started", "rm_launched"),
    ("AM launched -> JVM", "rm_launched", "jvm"),
    ("JVM -> python", "jvm", "python"),
    ("python -> listener", "python", "listener"),
    ("listener -> POST", "listener", "posted"),
    ("POST -> 1+1 reply", "posted", "reply"),
    ("1+1 -> spark action", "reply", "action"),
]
# detail and parallel spans, not part of the chain above
SPANS = [
    ("python: imports", "python", "imports"),
    ("python: hdfs token", "imports", "hdfs_token"),
    ("SparkContext creation", "spark_start", "spark_ready"),
    ("Spark ready - POST", "posted", "spark_ready"),
    ("Spark ready - 1+1 reply", "reply", "spark_ready"),
    ("total: POST -> 1+1 reply", "post", "reply"),
    ("total: POST -> spark action", "post", "action"),
]


def phases(marks: dict) -> dict[str, float]:
    """Seconds per phase and span from one start's marks (wall-clock seconds); missing marks skip."""
    out: dict[str, float] = {}
    for name, a, b in PHASES + SPANS:
        if isinstance(marks.get(a), (int, float)) and isinstance(marks.get(b), (int, float)):
            out[name] = round(marks[b] - marks[a], 3)
    return out


def parse_marks(stdout: str) -> dict:
    """The launcher's marks JSON from the execute's stdout ({} when the kernel keeps none)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(runs: list[dict]) -> dict[str, dict[str, float]]:
    """p50/p90/n per phase over the runs of one case."""
    names = [n for n, _, _ in PHASES + SPANS]
    out: dict[str, dict[str, float]] = {}
    for name in names:
        vals = [r["phases"][name] for r in runs if name in r.get("phases", {})]
        if vals:
            out[name] = {"p50": round(statistics.median(vals), 3), "p90": round(percentile(vals, 90), 3),
                         "n": len(vals)}
    return out


def table(summaries: dict[str, dict[str, dict[str, float]]]) -> str:
    """The waterfall of every case side by side: p50 / p90 seconds per phase."""
    cases = list(summaries)
    names = [n for n, _, _ in PHASES] + [None] + [n for n, _, _ in SPANS]
    width = max(len(n) for n, _, _ in PHASES + SPANS) + 2
    col = max([22] + [len(c) + 2 for c in cases])
    head = "phase".ljust(width) + "".join(f"{c:>{col}s}" for c in cases)
    lines = [head, " " * width + "".join(f"{'p50 / p90 s':>{col}s}" for _ in cases)]
    for name in names:
        if name is None:
            lines.append("-" * len(head))
            continue
        row = name.ljust(width)
        for c in cases:
            s = summaries[c].get(name)
            row += f"{s['p50']:>{col - 10}.2f} / {s['p90']:<7.2f}" if s else f"{'-':>{col}s}"
        lines.append(row)
    return "\n".join(lines)


def rm_app(rm_url: str, hadoop, kernel_id: str) -> dict:  # noqa: ANN001
    """The YARN application of a kernel (its name is the kernel id), {} when not found."""
    apps = requests.get(f"{rm_url}/ws/v1/cluster/apps", auth=hadoop.auth, timeout=10,
                        params=hadoop.params(applicationTags=f"kernel:{kernel_id}")).json()
    found = [a for a in ((apps.get("apps") or {}).get("app") or []) if a.get("name") == kernel_id]
    if not found:
        return {}
    app_id = max(found, key=lambda a: a["id"])["id"]
    return requests.get(f"{rm_url}/ws/v1/cluster/apps/{app_id}", auth=hadoop.auth, timeout=10,
                        params=hadoop.params()).json().get("app") or {}


def wait_gone(rm_url: str, hadoop, kernel_id: str, timeout: float = 60) -> None:  # noqa: ANN001
    """Wait until YARN has let go of the kernel's application, so the next run starts on an empty queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = requests.get(f"{rm_url}/ws/v1/cluster/apps", auth=hadoop.auth, timeout=10,
                            params=hadoop.params(states="NEW,SUBMITTED,ACCEPTED,RUNNING")).json()
        if not [a for a in ((apps.get("apps") or {}).get("app") or []) if a["name"] == kernel_id]:
            return
        time.sleep(0.5)


def one_run(base: str, token: str, kernelspec: str, env: dict, user: str, rm_url: str, hadoop,  # noqa: ANN001
            action: bool = True) -> dict:
    from jupyter_ws import KernelConnection

    marks: dict = {"post": time.time()}
    kc = KernelConnection.start(base, token, kernelspec, env=env, username=user)
    marks["posted"] = time.time()
    try:
        reply = kc.execute("1 + 1", timeout=300, msg_id=f"bench-{uuid.uuid4().hex}")
        marks["reply"] = time.time()
        assert reply.status == "ok", reply.error
        if action:
            reply = kc.execute("spark.range(1).count()", timeout=300, msg_id=f"bench-{uuid.uuid4().hex}")
            marks["action"] = time.time()
            assert reply.status == "ok", reply.error
        kernel_marks = parse_marks(kc.execute(MARKS_CODE, timeout=60).stdout)
    finally:
        kc.shutdown()
    app = {}
    try:
        app = rm_app(rm_url, hadoop, kc.kernel_id)
    except (requests.RequestException, ValueError) as e:
        print(f"  (no RM application record: {e})", file=sys.stderr)
    if app.get("startedTime"):
        marks["rm_started"] = app["startedTime"] / 1000.0
    if app.get("launchTime"):
        marks["rm_launched"] = app["launchTime"] / 1000.0
    procs = kernel_marks.pop("procs", None)
    marks.update({k: v for k, v in kernel_marks.items() if isinstance(v, (int, float))})
    wait_gone(rm_url, hadoop, kc.kernel_id)
    return {"kernel_id": kc.kernel_id, "app_id": app.get("id"), "marks": marks, "procs": procs,
            "phases": phases(marks)}


_warm_ids_seen: set[str] = set()


def wait_warm_ready(info: dict, user: str, spec: str, timeout: float = 300) -> None:
    """Until the edge has a warm kernel of ``spec`` ready for ``user`` (the pool refills behind each start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = requests.get(f"{info['edge_url']}/api/v1/kernels/warm", timeout=30,
                               headers={"Authorization": f"token {info['user_tokens'][user]}"}).json()["kernels"]
        ready = [k for k in kernels if k["state"] == "warm" and k["kernelspec"] == spec]
        if ready:
            _warm_ids_seen.update(k["id"] for k in ready)
            time.sleep(1)  # the pool round after it: nothing else in flight for this user
            return
        time.sleep(1)
    raise RuntimeError(f"no warm {spec} kernel for {user} within {timeout:.0f} s")


def machine(info: dict) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    java = ""
    java_bin = Path(info.get("java_home") or "/usr") / "bin" / "java"
    try:
        out = subprocess.run([str(java_bin), "-version"], capture_output=True, text=True, timeout=30).stderr
        java = out.splitlines()[0] if out else ""
    except (OSError, subprocess.SubprocessError):
        pass
    mem_kb = next((int(re.findall(r"\d+", line)[0]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "java": java, "security": info.get("security", "simple"),
            "load_avg_at_start": os.getloadavg()}


NO_BASE = "yardlab_pyspark_without_base"


def write_without_base(info: dict) -> None:
    """The built-in PySpark kernelspec without the base environment's archive, beside the real one."""
    from yardlab.edge.kernelspecs import KernelSite, KernelSpecRequest, write_kernelspec

    path = write_kernelspec(info["kernels_dir"], KernelSite(**info["kernel_site"]),
                            KernelSpecRequest(name=NO_BASE, display_name="PySpark on YARN (no base)"))
    if (info.get("accounts") or {}).get("split"):  # the stack's kernelspecs belong to its service account
        for entry in [path, *path.rglob("*")]:
            shutil.chown(entry, user=info["service_user"])


def stack_info() -> tuple:
    """(Stack, its info, owned): the running local stack (`make demo`), waited for while it is still
    coming up, or one started for the run (owned: the caller stops it)."""
    import stack as stack_mod

    st = stack_mod.Stack()
    info = st.read_info()
    # a stack that is still coming up (its launcher alive, no tokens yet) is waited for, not started again
    deadline = time.monotonic() + 300
    while (info and stack_mod.pid_alive(info.get("launcher_pid", -1)) and not info.get("user_tokens")
           and time.monotonic() < deadline):
        time.sleep(2)
        info = st.read_info()
    if info and stack_mod.pid_alive(info.get("launcher_pid", -1)) and info.get("user_tokens"):
        return st, info, False
    return st, st.start(), True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kernel starts per case (side x kernelspec)")
    parser.add_argument("--kernelspec", action="append", help="repeatable; default yardlab_pyspark")
    parser.add_argument("--user", default="guest", help="the user kernels start as (default guest)")
    parser.add_argument("--sides", default="edge,eg",
                        help="edge (cold, through the edge), eg (cold, straight to EG), warm (a warm kernel handed "
                             "out by the edge; not timed: waiting for the pool to have one ready); default edge,eg")
    parser.add_argument("--no-action", action="store_true", help="skip the first Spark action")
    parser.add_argument("--warm-user", default="alice",
                        help="the user of the `warm` side: put in the hub group warm-pool (the test stack's rule) "
                             "with a Lab server running, so the edge keeps a warm kernel for them (default alice)")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--without-base", action="store_true",
                        help=f"also start {NO_BASE}: yardlab_pyspark as it is before the base environment is "
                             "built (the edge's own interpreter, no archive), written for the run and removed after")
    args = parser.parse_args()
    kernelspecs = args.kernelspec or ["yardlab_pyspark"]
    if args.without_base and NO_BASE not in kernelspecs:
        kernelspecs.append(NO_BASE)
    side_names = [s.strip() for s in args.sides.split(",") if s.strip()]

    from hadoop_auth import HadoopAuth

    st, info, owned = stack_info()
    hadoop = HadoopAuth.of(info)
    mach = machine(info)
    if args.without_base:
        write_without_base(info)
    results: dict[str, list[dict]] = {}
    failures: list[dict] = []
    suffix = f"-{args.tag}" if args.tag else ""
    out = ROOT / "bench" / "results" / f"kernel-start-{datetime.now(timezone.utc):%Y%m%d}{suffix}.json"

    def save(partial: bool, ratios: dict | None = None) -> None:
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"kernelspecs": kernelspecs, "sides": side_names, "user": args.user,
                                   "runs": args.runs, "partial": partial, "machine": mach,
                                   "summary": {c: summarize(rs) for c, rs in results.items()},
                                   "ratio_edge_eg_p50": ratios or {}, "failures": failures,
                                   "results": results}, indent=2))

    try:
        eg_token = json.loads(Path(info["eg_state_file"]).read_text())["token"]
        sides = {
            "edge": (info["edge_url"] + "/gateway", info["user_tokens"][args.user], {}),
            "eg": (info["eg_url"], eg_token, {"KERNEL_USERNAME": args.user}),
        }
        if "warm" in side_names:
            sides["warm"] = (info["edge_url"] + "/gateway", info["user_tokens"][args.warm_user], {})
            hub = info["hub_api"]
            hub_h = {"Authorization": f"token {info['hub_service_token']}"}
            requests.post(f"{hub}/groups/warm-pool/users", json={"users": [args.warm_user]}, headers=hub_h,
                          timeout=30).raise_for_status()
            requests.post(f"{hub}/users/{args.warm_user}/server", headers=hub_h, timeout=60)
        cases = [(side, spec) for spec in kernelspecs for side in side_names]
        for i in range(args.runs):
            # interleaved, and each round in the opposite order of the one before
            for side, spec in (cases if i % 2 == 0 else cases[::-1]):
                base, token, env = sides[side]
                case = f"{side}:{spec}"
                user = args.warm_user if side == "warm" else args.user
                try:
                    if side == "warm":
                        wait_warm_ready(info, args.warm_user, spec)
                    r = one_run(base, token, spec, env, user, info["rm_url"], hadoop,
                                action=not args.no_action)
                    if side == "warm":
                        if r["kernel_id"] not in _warm_ids_seen:
                            raise RuntimeError("the start did not get the warm kernel the pool had ready")
                        # its start happened before the POST: only the request's own marks mean anything
                        r["marks"] = {k: v for k, v in r["marks"].items() if k in ("post", "posted", "reply", "action")}
                        r["phases"] = phases(r["marks"])
                except Exception as e:  # noqa: BLE001 - a shared stack may restart a service: note it, go on
                    failures.append({"case": case, "run": i + 1, "error": f"{type(e).__name__}: {e}"[:500]})
                    print(f"run {i + 1:2d} {case:32s} FAILED: {failures[-1]['error'][:200]}", flush=True)
                    time.sleep(10)
                    continue
                results.setdefault(case, []).append(r)
                ph = r["phases"]
                print(f"run {i + 1:2d} {case:32s} 1+1 {ph.get('total: POST -> 1+1 reply', float('nan')):6.2f} s"
                      f"   spark action {ph.get('total: POST -> spark action', float('nan')):6.2f} s", flush=True)
                save(partial=True)
    finally:
        if args.without_base:
            shutil.rmtree(Path(info["kernels_dir"]) / NO_BASE, ignore_errors=True)
        if "warm" in side_names:
            requests.delete(f"{info['hub_api']}/groups/warm-pool/users", json={"users": [args.warm_user]},
                            headers={"Authorization": f"token {info['hub_service_token']}"}, timeout=30)
        if owned:
            st.stop()
    summaries = {case: summarize(runs) for case, runs in results.items()}
    print()
    print(f"machine: {mach['cores']} cores, {mach['cpu']}, {mach['memory_gb']} GB, Python {mach['python']}, "
          f"{mach['java']}, {mach['security']}-auth stack; user {args.user}; {args.runs} runs per case, interleaved")
    print(table(summaries))
    ratios = {}
    for spec in kernelspecs:
        e, g = summaries.get(f"edge:{spec}", {}), summaries.get(f"eg:{spec}", {})
        key = "total: POST -> 1+1 reply"
        if key in e and key in g:
            ratios[spec] = round(e[key]["p50"] / g[key]["p50"], 3)
            print(f"{spec}: edge / EG p50 ratio (first 1+1 reply): {ratios[spec]:.3f}  "
                  f"(target <= 1.05: {'PASS' if ratios[spec] <= 1.05 else 'FAIL'})")
    for spec in kernelspecs:
        w, e = summaries.get(f"warm:{spec}", {}), summaries.get(f"edge:{spec}", {})
        for key, goal in (("total: POST -> 1+1 reply", 1.0), ("total: POST -> spark action", 2.0)):
            if key in w:
                line = f"{spec}: warm {key[7:]} p50 {w[key]['p50']:.2f} s (goal <= {goal:.0f} s: " \
                       f"{'PASS' if w[key]['p50'] <= goal else 'FAIL'})"
                if key in e:
                    line += f", {e[key]['p50'] / w[key]['p50']:.1f}x faster than a cold start through the edge"
                print(line)
    if failures:
        print(f"{len(failures)} failed start(s), kept in the results file")
    save(partial=False, ratios=ratios)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
