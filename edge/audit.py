"""The audit log: one JSON object per line for every kill (and later every build and launch)."""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from typing import Any

from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from .clock import monotonic


class AuditLog(LoggingConfigurable):
    """Appends audit records (actor, action, target, outcome, time) to a JSON-lines file."""

    path = Unicode(
        "yardlab-edge-audit.jsonl",
        help="File the audit records are appended to (one JSON object per line).",
    ).tag(config=True)

    refusals_per_minute = Integer(
        30, help="""Refusals (a kill of another user's job, say) written per actor and minute.

        Past that an actor's refusals are only counted; the count is written with their next
        refusal after the minute, so a flood of refused requests cannot fill the disk.""",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._refusals: dict[str, list[float]] = {}  # actor -> [window start, written, suppressed]

    def refusal(self, action: str, actor: str, outcome: str, **fields: Any) -> dict | None:
        """Record a refused request, at most ``refusals_per_minute`` per actor and minute."""
        t = monotonic()
        window = self._refusals.get(actor)
        if window is None or t - window[0] >= 60:
            if window is not None and window[2]:
                fields["suppressed_before"] = int(window[2])  # refusals counted but not written
            if len(self._refusals) > 10_000:
                self._refusals = {a: w for a, w in self._refusals.items() if t - w[0] < 60}
            window = self._refusals[actor] = [t, 0, 0]
        if window[1] >= self.refusals_per_minute:
            window[2] += 1
            return None
        window[1] += 1
        if window[1] == self.refusals_per_minute:
            fields["rate_limited"] = "further refusals of this actor in this minute are counted, not written"
        return self.record(action, actor, outcome, **fields)

    def record(self, action: str, actor: str, outcome: str, **fields: Any) -> dict:
        entry = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                 "action": action, "actor": actor, "outcome": outcome, **fields}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        self.log.info("audit: %s", line.strip())
        return entry
