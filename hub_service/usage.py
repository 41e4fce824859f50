"""Pure usage arithmetic: per-user memory/vcore-seconds deltas between samples, window lengths."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

#: the windows the Users page and `yardlab usage` report
WINDOWS = {"24h": 24 * 3600, "7d": 7 * 86400, "30d": 30 * 86400}
_SINCE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SINCE = 366 * 86400


def parse_since(text: str) -> int:
    """'7d' -> seconds; ValueError with a sentence for anything else (at most a year)."""
    m = _SINCE.match((text or "").strip())
    if not m:
        raise ValueError("`since` must be a number and a unit, like 90m, 24h, 7d or 2w")
    seconds = int(m.group(1)) * _UNIT[m.group(2)]
    if not 0 < seconds <= MAX_SINCE:
        raise ValueError("`since` must be more than 0 and at most 366 days")
    return seconds


@dataclass
class UserUse:
    """One user's share of one sample: what they hold now and what they consumed since the last sample."""

    running: int = 0
    pending: int = 0
    allocated_mb: int = 0
    allocated_vcores: int = 0
    memory_seconds: int = 0  # MB-seconds consumed since the previous sample
    vcore_seconds: int = 0


@dataclass
class SampleDelta:
    """What a sample adds: per-user use, and the counters to remember for the next sample."""

    users: dict[str, UserUse] = field(default_factory=dict)
    counters: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # app id -> (user, MB-s, vcore-s)


def usage_deltas(previous: dict[str, tuple[str, int, int]], apps: list[dict]) -> SampleDelta:
    """Per-user consumption since the previous sample from YARN's cumulative per-application counters.

    ``previous`` maps application ids to the (user, memorySeconds, vcoreSeconds) last seen.  An
    application seen for the first time counts in full; a counter that went down (an RM restart
    that forgot it) counts from zero again rather than going negative.
    """
    out = SampleDelta()
    for app in apps:
        user = app.get("user") or ""
        if not user:
            continue
        ms, vs = int(app.get("memorySeconds") or 0), int(app.get("vcoreSeconds") or 0)
        use = out.users.setdefault(user, UserUse())
        state = app.get("state")
        if state == "RUNNING":
            use.running += 1
            use.allocated_mb += int(app.get("allocatedMB") or 0)
            use.allocated_vcores += int(app.get("allocatedVCores") or 0)
        elif state in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED"):
            use.pending += 1
        old = previous.get(app["id"])
        old_ms, old_vs = (old[1], old[2]) if old else (0, 0)
        use.memory_seconds += ms - old_ms if ms >= old_ms else ms
        use.vcore_seconds += vs - old_vs if vs >= old_vs else vs
        out.counters[app["id"]] = (user, ms, vs)
    return out
