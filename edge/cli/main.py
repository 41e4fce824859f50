"""`yardlab`: the command line for scripts and terminals (whoami, cluster, apps, kill, env).

The edge URL and the token come from flags or the usual environment: $YARDLAB_EDGE_URL or
$JUPYTERHUB_API_URL, and $JUPYTERHUB_API_TOKEN (inside a JupyterLab terminal both are set).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from ..client import EdgeAPIError, EdgeClient
from . import env, usage
from .format import show_apps, show_cluster, show_whoami


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
    env.add_parser(sub)
    usage.add_parser(sub)  # `yardlab usage` talks to the hub service
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
            data, text, code = env.run(client, args)
            print(json.dumps(data, indent=2) if args.json else text)
            return code
        elif args.command == "usage":
            data, text = usage.run(args)
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
