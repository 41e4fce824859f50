"""`yardlab env list|create|show|delete`: environments from a terminal, with a progress bar for builds."""
from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from ..client import EdgeAPIError, EdgeClient
from .format import table

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mMgG]?)[bB]?\s*$")


def memory_mb(text: str) -> int:
    """'2g', '1536m', '1536' (MB) -> MB."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size like 1536m or 2g")
    value = float(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)
    return int(value)


def dynamic(text: str) -> dict:
    m = re.match(r"^(\d+):(\d+)$", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give dynamic allocation as MIN:MAX, like 0:4")
    return {"min": int(m.group(1)), "max": int(m.group(2))}


def add_parser(sub: Any) -> None:
    env = sub.add_parser("env", help="your environments: Spark resources and extra packages")
    verbs = env.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="your environments and the shared ones")
    ls.add_argument("--all", action="store_true", help="every user's (admins)")
    show = verbs.add_parser("show", help="one environment, with the end of its build log")
    show.add_argument("name", help="NAME (yours) or OWNER/NAME")
    show.add_argument("--log", action="store_true", help="the whole build log")
    create = verbs.add_parser("create", help="create an environment and follow its build")
    create.add_argument("name", help="a slug: lower-case letters, digits and '-'")
    create.add_argument("--display-name", help="what the Launcher shows")
    create.add_argument("--kind", choices=["pyspark", "python"], default="pyspark")
    create.add_argument("--pip", action="append", default=[], metavar="REQ", help="a pip requirement (repeatable)")
    create.add_argument("--conda", action="append", default=[], metavar="SPEC", help="a conda spec (repeatable)")
    create.add_argument("--maven", action="append", default=[], metavar="G:A:V",
                        help="a Maven coordinate group:artifact:version of a JVM package (repeatable)")
    create.add_argument("--driver-memory", type=memory_mb, metavar="SIZE")
    create.add_argument("--driver-cores", type=int)
    create.add_argument("--executor-memory", type=memory_mb, metavar="SIZE")
    create.add_argument("--executor-cores", type=int)
    create.add_argument("--executors", type=int, help="executor instances")
    create.add_argument("--dynamic", type=dynamic, metavar="MIN:MAX", help="dynamic allocation instead")
    create.add_argument("--queue")
    create.add_argument("--shared", action="store_true", help="for everyone (admins)")
    create.add_argument("--no-wait", action="store_true", help="return once the build is queued")
    rebuild = verbs.add_parser("rebuild", help="resolve and build an environment again, following the build")
    rebuild.add_argument("name", help="NAME (yours) or OWNER/NAME")
    rebuild.add_argument("--no-wait", action="store_true", help="return once the build is queued")
    delete = verbs.add_parser("delete", help="delete an environment and its kernel")
    delete.add_argument("name", help="NAME (yours) or OWNER/NAME")


def _split(client: EdgeClient, name: str) -> tuple[str, str]:
    if "/" in name:
        owner, _, short = name.partition("/")
        return owner, short
    return client.me()["name"], name


def _row(e: dict) -> list[Any]:
    res = e["resources"]
    execs = (f"{res['dynamic_allocation']['min']}-{res['dynamic_allocation']['max']}"
             if res.get("dynamic_allocation") else str(res["executor_instances"]))
    pkgs = ", ".join(e["packages"]["pip"] + e["packages"]["conda"] + e["packages"].get("maven", [])) or "-"
    status = e["status"] if e["status"] != "building" else f"{e['phase']} {e['progress']}%"
    return [f"{e['owner']}/{e['name']}", e["kind"], status, res["queue"],
            f"{res['executor_memory_mb']} MB x {execs}", pkgs, e.get("kernel_name") or "-"]


def show_list(envs: list[dict]) -> str:
    if not envs:
        return "no environments"
    return table([_row(e) for e in envs], ["ENVIRONMENT", "KIND", "STATUS", "QUEUE", "EXECUTORS", "PACKAGES", "KERNEL"],
                 [30, 8, 16, 14, 16, 40, 30])


def show_one(e: dict, log: str | None = None) -> str:
    res = e["resources"]
    lines = [f"{e['owner']}/{e['name']}  ({e['display_name']}, {e['kind']}, {e['visibility']})",
             f"  status:    {e['status']} ({e['phase']}, {e['progress']}%)"
             + (f" in {e['build_seconds']} s" if e.get("build_seconds") else ""),
             f"  kernel:    {e.get('kernel_name') or '-'}",
             f"  driver:    {res['driver_memory_mb']} MB, {res['driver_cores']} cores",
             f"  executors: {res['executor_memory_mb']} MB, {res['executor_cores']} cores, "
             + (f"dynamic {res['dynamic_allocation']['min']}-{res['dynamic_allocation']['max']}"
                if res.get("dynamic_allocation") else f"{res['executor_instances']} instances"),
             f"  queue:     {res['queue']}",
             f"  pip:       {', '.join(e['packages']['pip']) or '-'}",
             f"  conda:     {', '.join(e['packages']['conda']) or '-'}",
             f"  maven:     {', '.join(e['packages'].get('maven', [])) or '-'}",
             f"  archive:   {e.get('archive') or '-'}"]
    if e.get("error"):
        lines.append(f"  error:     {e['error']}")
    tail = log if log is not None else "\n".join(e.get("log_tail") or [])
    if tail:
        lines += ["", tail]
    return "\n".join(lines)


def follow(client: EdgeClient, owner: str, name: str, out=sys.stderr) -> dict:  # noqa: ANN001
    """Follow a build with a progress bar; the final environment."""
    from tqdm import tqdm

    final: dict | None = None
    with tqdm(total=100, desc="queued", unit="%", file=out, leave=True,
              bar_format="{desc:<12} {bar} {n:.0f}% [{elapsed}]") as bar:
        for event, data in client.environment_events(owner, name):
            if event == "progress":
                bar.set_description_str(data["phase"])
                bar.update(max(0, data["progress"] - bar.n))
            elif event == "done":
                final = data
            elif event == "deleted":
                raise EdgeAPIError(404, f"{owner}/{name} was deleted during its build")
        while final is None:  # the stream ended early (an edge restart): the build goes on, keep asking
            env = client.environment(owner, name)
            bar.set_description_str(env["phase"])
            bar.update(max(0, env["progress"] - bar.n))
            if env["status"] in ("ready", "failed"):
                final = env
            else:
                time.sleep(1)
    return final


def run(client: EdgeClient, args: argparse.Namespace) -> tuple[Any, str, int]:
    """(data, text, exit code) of one `yardlab env` command."""
    if args.verb == "list":
        envs = client.environments(everyone=args.all)
        return envs, show_list(envs), 0
    if args.verb == "show":
        owner, name = _split(client, args.name)
        env = client.environment(owner, name)
        return env, show_one(env, client.environment_log(owner, name) if args.log else None), 0
    if args.verb == "rebuild":
        owner, name = _split(client, args.name)
        env = client.rebuild_environment(owner, name)
        if args.no_wait:
            return env, f"{owner}/{name} queued", 0
        return _finish(client, follow(client, owner, name))
    if args.verb == "delete":
        owner, name = _split(client, args.name)
        client.delete_environment(owner, name)
        return {"deleted": f"{owner}/{name}"}, f"deleted {owner}/{name}", 0
    resources = {k: v for k, v in {
        "driver_memory_mb": args.driver_memory, "driver_cores": args.driver_cores,
        "executor_memory_mb": args.executor_memory, "executor_cores": args.executor_cores,
        "executor_instances": args.executors, "dynamic_allocation": args.dynamic, "queue": args.queue}.items()
        if v is not None}
    spec = {"name": args.name, "kind": args.kind, "resources": resources,
            "packages": {"pip": args.pip, "conda": args.conda, "maven": args.maven},
            "visibility": "shared" if args.shared else "personal"}
    if args.display_name:
        spec["display_name"] = args.display_name
    env = client.create_environment(spec)
    if args.no_wait:
        return env, f"{env['owner']}/{env['name']} queued", 0
    return _finish(client, follow(client, env["owner"], env["name"]))


def _finish(client: EdgeClient, env: dict) -> tuple[Any, str, int]:
    """The outcome of a build that was followed: the environment, and the log's end if it failed."""
    if env["status"] != "ready":
        log = client.environment_log(env["owner"], env["name"])
        return env, show_one(env, "\n".join(log.splitlines()[-20:])), 1
    return env, show_one(env, ""), 0
