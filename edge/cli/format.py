"""Tables and numbers for the terminal (user-authored names never reach it with control characters).
"""
from __future__ import annotations

import time
from typing import Any


def mb(mb: int | None) -> str:
    if not mb:
        return "0"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb} MB"


def duration(ms: int | None) -> str:
    s = int((ms or 0) / 1000)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def ago(ms: int | None) -> str:
    if not ms:
        return "-"
    return duration(int(time.time() * 1000) - ms) + " ago"


def clean(text: Any, width: int) -> str:
    # names are user-authored: never let control characters reach the terminal
    s = "".join(ch if ch.isprintable() else "?" for ch in str(text if text is not None else ""))
    return s if len(s) <= width else s[: width - 1] + "…"


def table(rows: list[list[Any]], headers: list[str], widths: list[int] | None = None) -> str:
    widths = widths or [40] * len(headers)
    cells = [[clean(c, w) for c, w in zip(row, widths)] for row in rows]
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
        f"memory   {mb(mem['usedMB'])} used of {mb(mem['totalMB'])}",
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
        row = [a["id"], a["state"], a["name"], a["queue"], mb(a["allocatedMB"]), a["allocatedVCores"],
               ago(a["startedTime"]), duration(a["elapsedTime"])]
        if with_user:
            row.insert(1, a["user"])
        rows.append(row)
    return table(rows, headers, widths)
