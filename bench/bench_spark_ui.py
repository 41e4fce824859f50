"""Time Spark UI pages through the edge against YARN's web proxy directly, in the same run, and the
edge's cost of one progress poll.

Needs a running local stack (``dev/stack.py up``).  Starts one PySpark kernel as alice, runs a
three-stage job, then times interleaved GETs of the same pages:

* edge: ``<hub>/services/yardlab-edge/proxy/<app>/<page>`` (hub proxy -> edge -> RM proxy -> driver)
* direct: ``<rm>/proxy/<app>/<page>`` (what a browser inside the cluster would load), authenticated
  like the edge (SPNEGO once, then the RM's cookie)

and one cell's progress poll through the edge.  Prints p50/p90 per page and the ratio edge/direct.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hadoop_auth import HadoopAuth  # noqa: E402
from jupyter_ws import KernelConnection  # noqa: E402

RUNS = int(os.environ.get("RUNS", "40"))
PAGES = ["/jobs/", "/stages/", "/executors/", "/environment/"]
JOB = ("import time\nrdd = sc.parallelize(range(16), 8).map(lambda x: (x % 4, x))\n"
       "rdd.reduceByKey(lambda a, b: a + b).map(lambda kv: (kv[0] % 2, kv[1])).reduceByKey(lambda a, b: a + b).collect()")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    stack = json.loads((ROOT / ".stack" / "stack.json").read_text())
    token = stack["user_tokens"]["alice"]
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", token, "yardlab_pyspark", username="alice")
    try:
        cell = "bench-cell-0001"
        reply = kc.execute("print(sc.applicationId)\n" + JOB, msg_id=cell)
        app = reply.stdout.split()[0]
        edge = requests.Session()
        edge.headers["Authorization"] = f"token {token}"
        hadoop = HadoopAuth(stack)
        direct = requests.Session()
        direct.auth = hadoop.auth
        direct.params = hadoop.params()
        direct.cookies.set(f"checked_{app}", "true")  # what the edge sends: no "not the owner" page
        results: dict[str, dict[str, list[float]]] = {p: {"edge": [], "direct": []} for p in PAGES}
        for page in PAGES:  # warm both paths (JIT, cookies)
            edge.get(f"{stack['edge_public_url']}/proxy/{app}{page}", timeout=60).raise_for_status()
            direct.get(f"{stack['rm_url']}/proxy/{app}{page}", timeout=60).raise_for_status()
        for _ in range(RUNS):
            for page in PAGES:
                t = time.perf_counter()
                r = edge.get(f"{stack['edge_public_url']}/proxy/{app}{page}", timeout=60)
                results[page]["edge"].append(time.perf_counter() - t)
                assert r.status_code == 200, r.status_code
                t = time.perf_counter()
                r = direct.get(f"{stack['rm_url']}/proxy/{app}{page}", timeout=60)
                results[page]["direct"].append(time.perf_counter() - t)
                assert r.status_code == 200, r.status_code
        polls: list[float] = []
        url = f"{stack['edge_url']}/api/v1/kernels/{kc.kernel_id}/progress"
        for _ in range(RUNS):
            t = time.perf_counter()
            r = edge.get(url, params={"cell": cell}, timeout=60)
            polls.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["jobs"], r.text
            time.sleep(0.6)  # past the edge's half-second sharing of answers: each poll is a full read
    finally:
        kc.shutdown()
        requests.delete(f"{stack['edge_url']}/gateway/api/kernels/{kc.kernel_id}",
                        headers={"Authorization": f"token {token}"}, timeout=120)
    out = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores", "runs": RUNS, "pages": {}}
    print(f"Spark UI page times, {RUNS} interleaved runs each (ms)")
    print(f"{'page':14} {'edge p50':>9} {'edge p90':>9} {'direct p50':>11} {'direct p90':>11} {'ratio p50':>10}")
    for page, r in results.items():
        e50, e90 = 1000 * statistics.median(r["edge"]), 1000 * pct(r["edge"], 0.9)
        d50, d90 = 1000 * statistics.median(r["direct"]), 1000 * pct(r["direct"], 0.9)
        out["pages"][page] = {"edge_p50_ms": e50, "edge_p90_ms": e90, "direct_p50_ms": d50, "direct_p90_ms": d90,
                              "ratio_p50": e50 / d50}
        print(f"{page:14} {e50:9.1f} {e90:9.1f} {d50:11.1f} {d90:11.1f} {e50 / d50:10.2f}")
    p50, p90 = 1000 * statistics.median(polls), 1000 * pct(polls, 0.9)
    out["progress_poll_ms"] = {"p50": p50, "p90": p90}
    print(f"progress poll of one cell (1 job, 3 stages, cold share): p50 {p50:.1f} ms, p90 {p90:.1f} ms")
    Path(ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "spark_ui.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
