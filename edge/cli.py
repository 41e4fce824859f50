"""`yardlab`: the command line for scripts and terminals (whoami, cluster, apps, kill, env).

The edge URL and the token come from flags or the usual environment: $YARDLAB_EDGE_URL or
$JUPYTERHUB_API_URL, and $JUPYTERHUB_API_TOKEN (inside a JupyterLab terminal both are set).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from .client import EdgeAPIError, EdgeClient


def _mb(mb: int | None) -> str:
    if not mb:
        return "0"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb} MB"


def _duration(ms: int | None) -> str:
    s = int((ms or 0) / 1000)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _ago(ms: int | None) -> str:
    if not ms:
        return "-"
    return _duration(int(time.time() * 1000) - ms) + " ago"


def _clean(text: Any, width: int) -> str:
    # names are user-authored: never let control characters reach the terminal
    s = "".join(ch if ch.isprintable() else "?" for ch in str(text if text is not None else ""))
    return s if len(s) <= width else s[: width - 1] + "…"


def table(rows: list[list[Any]], headers: list[str], widths: list[int] | None = None) -> str:
    widths = widths or [40] * len(headers)
    cells = [[_clean(c, w) for c, w in zip(row, widths)] for row in rows]
    cols = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(cols[i]) for i, h in enumerate(headers)).rstrip()]
    lines += ["  ".join(c.ljust(cols[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)


def show_whoami(me: dict) -> str:
    role = "admin" if me.get("admin") else "user"
    groups = ", ".join(me.get("groups") or []) or "-"
    return f"{me['name']} ({role}); groups: {groups}"


def show_cluster(c: dict) -> str:
    mem, vc, apps, nodes = c["memory"], c["vcores"], c.get("appsByState", {}), c["nodes"]
    out = [
        f"memory   {_mb(mem['usedMB'])} used of {_mb(mem['totalMB'])}",
        f"vcores   {vc['used']} used of {vc['total']}",
        "apps     " + (", ".join(f"{k.lower()} {v}" for k, v in sorted(apps.items())) or "none"),
        f"nodes    {nodes['active']} active, {nodes['unhealthy']} unhealthy, {nodes['lost']} lost",
        "",
        table([[q["path"], f"{q['usedCapacity']:.0f}%", f"{q['capacity']:.0f}%", f"{q['maxCapacity']:.0f}%",
                q["activeApplications"], q["pendingApplications"]] for q in c["queues"]],
              ["QUEUE", "USED", "CAPACITY", "MAX", "RUNNING", "PENDING"]),
        f"\n(snapshot {c.get('snapshotAge', 0):.1f} s old)",
    ]
    return "\n".join(out)


def show_apps(apps: list[dict], with_user: bool) -> str:
    if not apps:
        return "no applications"
    headers = ["ID", "STATE", "NAME", "QUEUE", "MEMORY", "VCORES", "STARTED", "ELAPSED"]
    widths = [32, 10, 36, 20, 10, 6, 14, 10]
    if with_user:
        headers.insert(1, "USER")
        widths.insert(1, 16)
    rows = []
    for a in apps:
        row = [a["id"], a["state"], a["name"], a["queue"], _mb(a["allocatedMB"]), a["allocatedVCores"],
               _ago(a["startedTime"]), _duration(a["elapsedTime"])]
        if with_user:
            row.insert(1, a["user"])
        rows.append(row)
    return table(rows, headers, widths)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yardlab", description="yardlab: your YARN jobs and the cluster, from a terminal")
    p.add_argument("--url", help="edge URL (default: $YARDLAB_EDGE_URL, or from $JUPYTERHUB_API_URL)")
    p.add_argument("--token", help="JupyterHub API token (default: $JUPYTERHUB_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("whoami", help="who the token belongs to")
    sub.add_parser("cluster", help="cluster memory, vcores, nodes and queues")
    apps = sub.add_parser("apps", help="list YARN applications (yours by default)")
    apps.add_argument("--all", action="store_true", help="everyone's (admins)")
    apps.add_argument("--user", help="one user's (admins)")
    apps.add_argument("--state", help="comma-separated states, e.g. RUNNING,ACCEPTED")
    apps.add_argument("--queue", help="only this queue")
    apps.add_argument("--search", help="text in the application name")
    apps.add_argument("--limit", type=int, default=None, help="at most this many")
    kill = sub.add_parser("kill", help="kill an application and wait until YARN confirms")
    kill.add_argument("app_id")
    from . import cli_env

    cli_env.add_parser(sub)
    from yardlab.hub_service import cli_usage  # `yardlab usage` talks to the hub service

    cli_usage.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = EdgeClient(args.url, args.token) if args.command != "usage" else None
        if args.command == "whoami":
            data: Any = client.me()
            text = show_whoami(data)
        elif args.command == "cluster":
            data = client.cluster()
            text = show_cluster(data)
        elif args.command == "apps":
            user = "*" if args.all else args.user
            filters = {"user": user, "state": args.state, "queue": args.queue, "search": args.search}
            if args.limit:
                data = client.apps(limit=args.limit, **filters)["apps"]
            else:
                data = client.all_apps(**filters)
            text = show_apps(data, with_user=bool(user))
        elif args.command == "env":
            from . import cli_env

            data, text, code = cli_env.run(client, args)
            print(json.dumps(data, indent=2) if args.json else text)
            return code
        elif args.command == "usage":
            from yardlab.hub_service import cli_usage

            data, text = cli_usage.run(args)
        else:
            data = client.kill(args.app_id)
            text = f"{data['id']} of {data['user']}: {data['state']}"
    except EdgeAPIError as e:
        print(f"yardlab: {e.message}", file=sys.stderr)
        return 2 if e.status in (0, 400, 401, 403, 404, 409) else 1
    except OSError as e:  # connection refused, DNS, ...
        print(f"yardlab: cannot reach the edge service: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
