"""Environment builds: a cold build against a cache hit for the same spec, and uv against pip.

Part 1 drives the edge's real build pipeline (yardlab.edge.environments.EnvironmentService: uv
resolve + install, venv-pack, upload, kernelspec) in-process.  Its "HDFS" is a local folder behind
the same call interface the edge uses for WebHDFS (so no stack is needed; the upload is a file copy,
which makes it a lower bound of a real upload).  Cold = empty uv cache and no archive; warm = uv's
cache filled but a new spec (nothing to reuse); hit = the same spec again.

Part 2 installs the same package set into a fresh virtualenv with `uv pip install` and with
`pip install`, each with an empty cache (cold, downloads included) and then a filled one (warm).

    .venv/bin/python bench/bench_env_build.py [--packages "pandas>=2.2" "pyarrow>=17"] [--runs 3]

Prints every figure and the ratios, and writes bench/results/env-build-<date>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_snapshot import machine_facts
from yardlab.edge.auth import Identity
from yardlab.edge.clients.webhdfs import WebHDFSError
from yardlab.edge.environments import EnvironmentService
from yardlab.edge.ledger import KernelLedger

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class FolderWebHDFS:
    """The slice of WebHDFSClient the build uses, on a local folder (a stand-in for WebHDFS)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    async def status(self, path: str, user: str | None = None, strict: bool = True) -> dict | None:
        p = self._p(path)
        if p.exists():
            return {"type": "DIRECTORY" if p.is_dir() else "FILE", "length": p.stat().st_size}
        if strict:
            raise WebHDFSError("FileNotFoundException", f"File does not exist: {path}")
        return None

    async def names(self, path: str, user: str | None = None) -> list[str]:
        if not self._p(path).is_dir():
            raise WebHDFSError("FileNotFoundException", f"File {path} does not exist.")
        return sorted(os.listdir(self._p(path)))

    async def makedirs(self, path: str, user: str | None = None, permission: str | None = None) -> None:
        self._p(path).mkdir(parents=True, exist_ok=True)

    async def set_permission(self, path: str, permission: str, user: str | None = None) -> None:
        return None

    async def upload(self, path: str, local: str, user: str | None = None, overwrite: bool = False,
                     permission: str | None = None) -> None:
        self._p(path).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, local, self._p(path))

    async def rename(self, src: str, dst: str, user: str | None = None) -> None:
        if self._p(dst).exists():
            raise WebHDFSError("FileAlreadyExistsException", f"{dst} already exists")
        self._p(src).rename(self._p(dst))

    async def delete(self, path: str, user: str | None = None, recursive: bool = False) -> bool:
        p = self._p(path)
        if p.is_dir():
            shutil.rmtree(p)
        elif not p.exists():
            return False
        else:
            p.unlink()
        return True


class FolderStorage:
    """HDFSStorage as the build sees it: its WebHDFS client."""

    def __init__(self, root: Path) -> None:
        self.webhdfs = FolderWebHDFS(root)


class NoSnapshot:
    cluster: dict = {}


class NoAudit:
    def record(self, *args, **kwargs) -> dict:  # noqa: ANN002, ANN003
        return {}


def site(workdir: Path) -> dict:
    launchers = next((ROOT / ".venv-eg" / "lib").glob("python3*/site-packages/gateway_provisioners/kernel-launchers"),
                     None)
    if launchers is None:  # only the kernelspec step needs them; any folder with the two scripts will do
        launchers = workdir / "launchers"
        for sub in ("python/scripts/launch_ipykernel.py", "shared/scripts/server_listener.py"):
            (launchers / sub).parent.mkdir(parents=True, exist_ok=True)
            (launchers / sub).write_text("# stand-in\n")
    return {"spark_home": "/opt/spark", "java_home": "/opt/java", "hadoop_conf_dir": "/etc/hadoop",
            "yarn_endpoint": "http://127.0.0.1:8088", "launchers_dir": str(launchers), "python": sys.executable}


async def build_once(svc: EnvironmentService, who: Identity, name: str, pip: list[str]) -> dict:
    env = await svc.create(who, {"name": name, "packages": {"pip": pip}})
    key = (env["owner"], env["name"])
    while True:
        rec = svc.store.get(*key)
        if rec["status"] in ("ready", "failed"):
            if rec["status"] == "failed":
                raise SystemExit(f"build {name} failed: {rec['error']}")
            return rec
        await asyncio.sleep(0.05)


async def part1(workdir: Path, pip: list[str], runs: int) -> dict:
    who = Identity(name="bench", admin=False)
    out: dict = {"cold": [], "warm": [], "hit": []}
    for run in range(runs):
        root = workdir / f"pipeline-{run}"
        root.mkdir(parents=True)
        ledger = KernelLedger(db_url=f"sqlite:///{root / 'edge.sqlite'}")
        svc = EnvironmentService(ledger, FolderStorage(root / "hdfs"), NoSnapshot(), NoAudit(),
                                 str(root / "kernels"), builds_dir=str(root / "builds"), kernel_site=site(workdir),
                                 python=sys.executable, max_concurrent_builds=1)
        await svc.start()
        try:
            t0 = time.perf_counter()
            await build_once(svc, who, "cold", pip)
            out["cold"].append(time.perf_counter() - t0)
            # a new spec (one more small package) on the now-filled uv cache: nothing to reuse
            t0 = time.perf_counter()
            await build_once(svc, who, "warm", [*pip, "six>=1.10"])
            out["warm"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec = await build_once(svc, who, "again", pip)
            out["hit"].append(time.perf_counter() - t0)
            assert rec["archive"] == svc.store.get("bench", "cold")["archive"], "the same spec must reuse the archive"
        finally:
            await svc.stop()
        print(f"  run {run + 1}: cold {out['cold'][-1]:.2f} s, warm cache {out['warm'][-1]:.2f} s, "
              f"same spec {out['hit'][-1]:.3f} s", flush=True)
    return out


def timed(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def part2(workdir: Path, pip: list[str], runs: int) -> dict:
    from uv import find_uv_bin

    uv = find_uv_bin()
    out: dict = {"uv_cold": [], "uv_warm": [], "pip_cold": [], "pip_warm": []}
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    for run in range(runs):
        d = workdir / f"installers-{run}"
        uv_env = {**base, "UV_CACHE_DIR": str(d / "uv-cache"), "UV_NO_PROGRESS": "1"}
        pip_env = {**base, "PIP_CACHE_DIR": str(d / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        for label in ("cold", "warm"):
            venv = d / f"uv-{label}"
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=uv_env)
            out[f"uv_{label}"].append(timed([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                                             *pip], uv_env))
            venv = d / f"pip-{label}"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=pip_env)
            out[f"pip_{label}"].append(timed([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pip],
                                             pip_env))
        print(f"  run {run + 1}: uv cold {out['uv_cold'][-1]:.2f} s / warm {out['uv_warm'][-1]:.2f} s; "
              f"pip cold {out['pip_cold'][-1]:.2f} s / warm {out['pip_warm'][-1]:.2f} s", flush=True)
        shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packages", nargs="+", default=["pandas>=2.2", "pyarrow>=17"])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="yardlab-bench-env-"))
    print(f"packages: {' '.join(args.packages)}; {args.runs} runs; work in {workdir}")
    print("part 1: the edge's build pipeline (resolve, install, pack, upload, kernelspec)")
    p1 = asyncio.run(part1(workdir, args.packages, args.runs))
    print("part 2: the same packages into a fresh virtualenv, uv against pip")
    p2 = part2(workdir, args.packages, args.runs)
    med = {k: statistics.median(v) for k, v in {**p1, **p2}.items()}
    ratios = {"cold_build_over_cache_hit": med["cold"] / med["hit"],
              "warm_build_over_cache_hit": med["warm"] / med["hit"],
              "pip_over_uv_cold": med["pip_cold"] / med["uv_cold"],
              "pip_over_uv_warm": med["pip_warm"] / med["uv_warm"]}
    print("\nmedians (s):", ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
    print("ratios:", ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine_facts(), "packages": args.packages,
              "runs": args.runs, "seconds": {**p1, **p2}, "medians": med, "ratios": ratios}
    out = HERE / "results" / f"env-build-{time.strftime('%Y%m%d')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
