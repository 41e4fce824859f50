"""The audit log: one JSON object per line for every kill (and later every build and launch)."""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from typing import Any

from traitlets import Unicode
from traitlets.config import LoggingConfigurable


class AuditLog(LoggingConfigurable):
    """Appends audit records (actor, action, target, outcome, time) to a JSON-lines file."""

    path = Unicode(
        "yardlab-edge-audit.jsonl",
        help="File the audit records are appended to (one JSON object per line).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()

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
