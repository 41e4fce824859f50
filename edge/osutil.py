"""Operating-system helpers shared by the edge and the local stack's launcher: private files, live pids."""
from __future__ import annotations

import os
import secrets


def write_private(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` in a file only this account may read: created 0600 (never
    chmod-ed after the fact, so there is no moment it is readable), then renamed into place."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another account counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When the process ``pid`` started (clock ticks since boot, from /proc), or None when there is no such
    process or it has ended (a zombie): with the pid, what tells one process from a later one given its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]
