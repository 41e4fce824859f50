"""Capture real ResourceManager REST responses from the running local stack into bench/fixtures/rm/.

The replay server (rm_replay.py) is built from these files.  They are stored byte for byte as the
RM sent them: the RM's JSON has quirks the edge must cope with (``resourceSecondsMap`` repeats the
key ``entry``; an empty app list is ``{"apps":{}}``), and a re-serialized copy would hide them.

    .venv/bin/python bench/capture_rm.py [--rm-url http://127.0.0.1:8088]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rm"
# Read as root, like the stack's own tooling; with simple auth the RM only uses it for ACLs.
USER_PARAM = "user.name=root"
NOT_FOUND_ID = "application_0_0000"

#: fixture name -> path under /ws/v1/cluster (query without user.name)
ENDPOINTS = {
    "info": "/info",
    "metrics": "/metrics",
    "nodes": "/nodes",
    "scheduler": "/scheduler",
    "apps": "/apps",
    "apps-active": "/apps?states=RUNNING,ACCEPTED",
    "apps-finished": "/apps?states=FINISHED,KILLED,FAILED",
    "apps-nobody": "/apps?user=nobody-at-all",
    "app-not-found": f"/apps/{NOT_FOUND_ID}",
}


def fetch(rm_url: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET one RM REST path as JSON; returns (status, raw body), error statuses included."""
    sep = "&" if "?" in path else "?"
    url = f"{rm_url}/ws/v1/cluster{path}{sep}{USER_PARAM}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def capture(rm_url: str, out: Path = FIXTURES) -> dict:
    """Fetch every endpoint the replay needs and write ``<name>.json`` plus ``capture.json``."""
    out.mkdir(parents=True, exist_ok=True)
    endpoints = dict(ENDPOINTS)
    status, body = fetch(rm_url, "/apps")
    apps = (json.loads(body).get("apps") or {}).get("app") or [] if status == 200 else []
    if apps:
        app_id = apps[0]["id"]
        endpoints["app"] = f"/apps/{app_id}"
        endpoints["app-state"] = f"/apps/{app_id}/state"
    manifest = {"rm_url": rm_url, "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "user_param": USER_PARAM, "files": {}}
    for name, path in endpoints.items():
        status, body = fetch(rm_url, path)
        (out / f"{name}.json").write_bytes(body)
        manifest["files"][name] = {"path": f"/ws/v1/cluster{path}", "status": status, "bytes": len(body)}
        print(f"{status}  {len(body):7d} B  {name}.json  <- {path}")
    (out / "capture.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(apps)} application(s) on the RM; fixtures in {out}")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm-url", default=(os.environ.get("YARDLAB_RM_URLS") or "http://127.0.0.1:8088")
                        .split(",")[0].rstrip("/"), help="ResourceManager web address")
    parser.add_argument("--out", type=Path, default=FIXTURES, help="where to write the fixtures")
    args = parser.parse_args()
    capture(args.rm_url, args.out)


if __name__ == "__main__":
    main()
