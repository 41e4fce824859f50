"""`yardlab usage [--user U] [--since 7d]`: memory/vcore time per user, from the hub service's API.

Kept free of JupyterHub and tornado imports: the `yardlab` command runs in plain terminals.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from ..client import SERVICE_PATH as EDGE_PATH
from ..client import EdgeAPIError, error_from_response, token_from_env
from .format import mb, table

SERVICE_PATH = "/services/yardlab"


def service_url_from_env(url: str | None = None, edge_url: str | None = None) -> str:
    """--service-url, $YARDLAB_SERVICE_URL, the hub's public URL from $JUPYTERHUB_API_URL, or the edge URL's sibling."""
    if url:
        return url.rstrip("/")
    if os.environ.get("YARDLAB_SERVICE_URL"):
        return os.environ["YARDLAB_SERVICE_URL"].rstrip("/")
    if edge_url and edge_url.rstrip("/").endswith(EDGE_PATH):
        return edge_url.rstrip("/")[: -len(EDGE_PATH)] + SERVICE_PATH
    hub_api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    if hub_api.endswith("/hub/api"):
        return hub_api[: -len("/hub/api")] + SERVICE_PATH
    raise EdgeAPIError(0, "no service URL: pass --service-url or set YARDLAB_SERVICE_URL")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("usage", help="memory and vcore time per user (yours; admins: anyone's)")
    p.add_argument("--user", help="one user's (admins; default: yours, or everyone's for admins)")
    p.add_argument("--since", help="window such as 24h, 7d, 2w (default: 24h, 7d and 30d)")
    p.add_argument("--service-url", help="the hub service (default: $YARDLAB_SERVICE_URL, or next to the hub)")
    return p


def fetch(args: argparse.Namespace) -> dict:
    import requests

    url = service_url_from_env(args.service_url, args.url)
    params = {k: v for k, v in {"user": args.user, "since": args.since}.items() if v}
    r = requests.get(f"{url}/api/v1/usage", params=params, timeout=60,
                     headers={"Authorization": f"token {token_from_env(args.token)}"})
    if r.status_code >= 400:
        raise error_from_response(r.status_code, r.content)
    return r.json()


def show_usage(data: dict) -> str:
    windows = data["windows"]
    headers = ["USER", "RUNNING", "MEMORY NOW", "VCORES NOW"]
    headers += [f"GB·h {w}" for w in windows] + [f"vcore·h {w}" for w in windows]
    rows = []
    for u in data["users"]:
        row = [u["user"], u["current"]["running"], mb(u["current"]["allocatedMB"]), u["current"]["allocatedVCores"]]
        row += [f"{u['windows'][w]['memorySeconds'] / 1024 / 3600:.2f}" for w in windows]
        row += [f"{u['windows'][w]['vcoreSeconds'] / 3600:.2f}" for w in windows]
        rows.append(row)
    if not rows:
        return "no usage recorded"
    return table(rows, headers, [24] + [14] * (len(headers) - 1))


def run(args: argparse.Namespace) -> tuple[dict, str]:
    data = fetch(args)
    return data, show_usage(data)
