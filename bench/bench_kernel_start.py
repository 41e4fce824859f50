"""Kernel start latency: through the edge's /gateway/ against straight to Enterprise Gateway.

Each run measures the time from the start request to the first execute_reply (``1 + 1``) of a
kernel on YARN, then shuts it down and waits until its YARN application has ended.  Runs are
interleaved (edge, EG, EG, edge, ...) so slow drift of the machine hits both sides alike.

    .venv/bin/python bench/bench_kernel_start.py [--runs 10] [--kernelspec yardlab_python]

Uses the running local stack (`make demo`), or starts one for the run.  Target: edge/EG p50
ratio at most 1.05.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))
sys.path.insert(0, str(ROOT / "tests"))

import stack as stack_mod  # noqa: E402
from hadoop_auth import HadoopAuth  # noqa: E402
from jupyter_ws import KernelConnection  # noqa: E402


def one_run(base: str, token: str, kernelspec: str, env: dict, rm_url: str, hadoop: HadoopAuth) -> float:
    started = time.monotonic()
    kc = KernelConnection.start(base, token, kernelspec, env=env, username="alice")
    reply = kc.execute("1 + 1", timeout=300)
    took = time.monotonic() - started
    assert reply.status == "ok", reply.error
    kc.shutdown()
    # wait until YARN has let go of it, so the next run starts on an empty queue
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        apps = requests.get(f"{rm_url}/ws/v1/cluster/apps", auth=hadoop.auth, timeout=10,
                            params=hadoop.params(states="NEW,SUBMITTED,ACCEPTED,RUNNING")).json()
        active = [a for a in ((apps.get("apps") or {}).get("app") or []) if a["name"] == kc.kernel_id]
        if not active:
            break
        time.sleep(0.5)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kernel starts per side")
    parser.add_argument("--kernelspec", default="yardlab_pyspark")
    args = parser.parse_args()

    st = stack_mod.Stack()
    info = st.read_info()
    owned = False
    if not (info and stack_mod.pid_alive(info.get("launcher_pid", -1)) and info.get("user_tokens")):
        info = st.start()
        owned = True
    try:
        eg_token = json.loads(Path(info["eg_state_file"]).read_text())["token"]
        sides = {
            "edge": (info["edge_url"] + "/gateway", info["user_tokens"]["alice"], {}),
            "eg": (info["eg_url"], eg_token, {"KERNEL_USERNAME": "alice"}),
        }
        times: dict[str, list[float]] = {"edge": [], "eg": []}
        for i in range(args.runs):
            order = ("edge", "eg") if i % 2 == 0 else ("eg", "edge")
            for side in order:
                base, token, env = sides[side]
                took = one_run(base, token, args.kernelspec, env, info["rm_url"], HadoopAuth.of(info))
                times[side].append(took)
                print(f"run {i + 1:2d} {side:4s} {took:6.2f} s", flush=True)
    finally:
        if owned:
            st.stop()
    p50 = {k: statistics.median(v) for k, v in times.items()}
    ratio = p50["edge"] / p50["eg"]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print()
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    print(f"kernelspec {args.kernelspec}, {args.runs} runs per side, interleaved, "
          f"{info.get('security', 'simple')}-auth stack")
    for side in ("eg", "edge"):
        v = sorted(times[side])
        print(f"{side:4s} p50 {p50[side]:6.2f} s   min {v[0]:6.2f} s   max {v[-1]:6.2f} s")
    print(f"edge / EG p50 ratio: {ratio:.3f}  (target <= 1.05: {'PASS' if ratio <= 1.05 else 'FAIL'})")
    out = ROOT / "bench" / "results" / f"kernel-start-{datetime.now(timezone.utc):%Y%m%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"kernelspec": args.kernelspec, "security": info.get("security", "simple"),
                               "runs": args.runs, "times": times, "p50": p50,
                               "ratio": ratio, "machine": {"cores": os.cpu_count(), "cpu": cpu}}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
