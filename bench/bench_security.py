"""What Kerberos costs: the Kerberized local stack against the simple-auth one, in the same run.

The stack is started in alternating blocks (kerberos, simple, kerberos, simple, ...), because only
one stack runs per machine; each block measures, on its own freshly started stack:

* kernel start: a PySpark kernel through the edge's /gateway/ to its first execute_reply (``1 + 1``),
  then shut down and waited for until YARN lets go of it;
* the edge's API: ``GET /api/v1/apps`` in a closed loop (8 connections, a few seconds), served from
  the edge's snapshot either way, so Kerberos should cost nothing here;
* the ResourceManager read the snapshot poller does: ``/ws/v1/cluster/apps`` with the service
  account's credentials (SPNEGO then Hadoop's ``hadoop.auth`` cookie, against ``user.name``).

    .venv/bin/python bench/bench_security.py [--blocks 2] [--starts 3]

Needs the machine to itself (it starts and stops the local stack; stop `make demo` first).
Goal (the Kerberos issue): Kerberos under 10 % on kernel start, nothing measurable on the API.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_kernel_start import one_run  # noqa: E402
from hadoop_auth import HadoopAuth  # noqa: E402

MODES = ("kerberos", "simple")


def api_loop(url: str, token: str, seconds: float, connections: int = 8) -> dict:
    """Closed loop of GET /apps; requests per second and the median latency."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"token {token}"
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = s.get(url, timeout=10)
            mine.append(time.perf_counter() - t)
            assert r.status_code in (200, 304), r.status_code
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": len(latencies) / seconds, "p50_ms": statistics.median(latencies) * 1000}


def rm_reads(info: dict, n: int = 50) -> float:
    """Median seconds of one RM apps read as the service account, with a session (cookie kept)."""
    h = HadoopAuth(info)
    s = requests.Session()
    s.auth = h.auth
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = s.get(f"{info['rm_url']}/ws/v1/cluster/apps", params=h.params(states="RUNNING"),
                  headers={"Accept": "application/json"}, timeout=10)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.status_code
    return statistics.median(times)


def block(mode: str, starts: int) -> dict:
    env = {**os.environ, "YARDLAB_SECURITY": mode}
    launcher = subprocess.Popen([sys.executable, str(ROOT / "dev" / "stack.py"), "up"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in launcher.stdout:  # type: ignore[union-attr]
            if "Press Ctrl-C" in line:
                break
            if "error" in line:
                raise SystemExit(f"the {mode} stack did not start: {line}")
        info = json.loads((ROOT / ".stack" / "stack.json").read_text())
        assert info.get("security", "simple") == mode
        base, token = info["edge_url"] + "/gateway", info["user_tokens"]["alice"]
        kernel = [one_run(base, token, "yardlab_pyspark", {}, info["rm_url"], HadoopAuth(info))
                  for _ in range(starts)]
        api = api_loop(f"{info['edge_url']}/api/v1/apps", token, seconds=5)
        rm = rm_reads(info)
        result = {"mode": mode, "kernel_start_s": kernel, "api": api, "rm_read_s": rm,
                  "stack_start_s": info.get("timings", {}).get("total")}
        print(f"{mode:8s} kernel starts {', '.join(f'{k:.2f}' for k in kernel)} s; API {api['rps']:.0f} req/s "
              f"(p50 {api['p50_ms']:.1f} ms); RM read p50 {rm * 1000:.1f} ms; stack up in "
              f"{result['stack_start_s']} s", flush=True)
        return result
    finally:
        launcher.send_signal(2)
        launcher.wait(timeout=180)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=2, help="stack starts per mode (alternating)")
    parser.add_argument("--starts", type=int, default=3, help="kernel starts per block")
    args = parser.parse_args()
    results = [block(mode, args.starts) for _ in range(args.blocks) for mode in MODES]
    by_mode = {m: [r for r in results if r["mode"] == m] for m in MODES}
    summary = {}
    for m, rs in by_mode.items():
        summary[m] = {
            "kernel_p50_s": statistics.median(k for r in rs for k in r["kernel_start_s"]),
            "api_rps": statistics.median(r["api"]["rps"] for r in rs),
            "api_p50_ms": statistics.median(r["api"]["p50_ms"] for r in rs),
            "rm_read_ms": statistics.median(r["rm_read_s"] for r in rs) * 1000,
            "stack_start_s": statistics.median(r["stack_start_s"] for r in rs),
        }
    k, s = summary["kerberos"], summary["simple"]
    ratios = {"kernel_start": k["kernel_p50_s"] / s["kernel_p50_s"], "api_rps": k["api_rps"] / s["api_rps"],
              "rm_read": k["rm_read_ms"] / s["rm_read_ms"], "stack_start": k["stack_start_s"] / s["stack_start_s"]}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print()
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    for m in MODES:
        v = summary[m]
        print(f"{m:8s} kernel p50 {v['kernel_p50_s']:.2f} s | API {v['api_rps']:.0f} req/s, p50 {v['api_p50_ms']:.1f} ms"
              f" | RM read {v['rm_read_ms']:.1f} ms | stack up {v['stack_start_s']} s")
    print(f"kerberos / simple: kernel start {ratios['kernel_start']:.3f} (goal < 1.10), "
          f"API req/s {ratios['api_rps']:.3f}, RM read {ratios['rm_read']:.3f}, stack start {ratios['stack_start']:.3f}")
    out = ROOT / "bench" / "results" / f"security-{datetime.now(timezone.utc):%Y%m%d}.json"
    out.write_text(json.dumps({"blocks": results, "summary": summary, "ratios": ratios,
                               "machine": {"cores": os.cpu_count(), "cpu": cpu}}, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
