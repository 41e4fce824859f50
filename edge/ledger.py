"""The kernel ledger: kernel id <-> YARN application <-> user <-> environment, persisted with SQLAlchemy.

Ownership and kernel links used by the reaper and the jobs API come from here and from the RM's
user field, never from YARN application tags (users can set tags on anything they submit).

A kernel can have several YARN applications over its life: a restart (from Lab, or Enterprise
Gateway's own) ends the application and submits a new one under the same name, the kernel id.
The ledger follows the kernel: ``app_id`` is its *current* application (the newest one seen), and
every earlier one is kept as history (table ``kernel_apps``).  An ended application that is not
the kernel's current one is history, never a sign that the kernel died.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from sqlalchemy import Float, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from .clock import now
from .db import Base, open_database, update_row


class KernelRecord(Base):
    """One kernel the edge started on behalf of a user."""

    __tablename__ = "kernels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    kernelspec: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(128), default="builtin")
    app_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    notebook: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    #: what the kernel serves, as the Lab server reported its session: notebook, console or file
    #: (None: not reported; `notebook` is then the working folder the kernel was started in)
    session: Mapped[str | None] = mapped_column(String(16), nullable=True)
    queue: Mapped[str] = mapped_column(String(255), default="default")
    need_mb: Mapped[int] = mapped_column(Integer, default=0)
    need_vcores: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="starting", index=True)  # starting|running|ended
    created: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def to_json(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in ("id", "user", "kernelspec", "environment", "app_id", "notebook",
                                              "session", "queue", "need_mb", "need_vcores", "state", "created", "ended",
                                              "end_reason")}


class KernelAppRecord(Base):
    """One YARN application a kernel ran on that is no longer its current one (restarts)."""

    __tablename__ = "kernel_apps"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kernel_id: Mapped[str] = mapped_column(String(64), index=True)
    replaced: Mapped[float] = mapped_column(Float)


_APP_ID = re.compile(r"application_(\d+)_(\d+)")


def app_order(app_id: str) -> tuple[int, int]:
    """Submission order of YARN application ids (cluster start time, then sequence number)."""
    m = _APP_ID.fullmatch(app_id or "")
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


class KernelLedger(LoggingConfigurable):
    """Reads and writes kernel records; keeps the live ones in memory for per-request lookups."""

    db_url = Unicode(
        "sqlite:///yardlab-edge.sqlite",
        help="SQLAlchemy URL of the edge's database (SQLite file by default; any SQLAlchemy URL works).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = open_database(self.db_url)
        self.generation = 0
        self._live: dict[str, dict] = {}
        self._history: dict[str, set[str]] = {}  # live kernel id -> its earlier applications
        with Session(self.engine) as s, s.begin():
            for rec in s.scalars(select(KernelRecord).where(KernelRecord.state != "ended")):
                if rec.state == "restarting":
                    # the edge stopped while a restart was in flight; the request is gone with it
                    rec.state = "running"
                self._live[rec.id] = rec.to_json()
            for old in s.scalars(select(KernelAppRecord).where(KernelAppRecord.kernel_id.in_(list(self._live)))):
                self._history.setdefault(old.kernel_id, set()).add(old.app_id)

    def _changed(self) -> None:
        self.generation += 1

    def add(self, **fields: Any) -> dict:
        with Session(self.engine) as s, s.begin():
            rec = KernelRecord(created=now(), **fields)
            s.add(rec)
            s.flush()
            data = rec.to_json()
        self._live[data["id"]] = data
        self._changed()
        return data

    def update(self, kernel_id: str, **fields: Any) -> dict | None:
        data = update_row(self.engine, KernelRecord, kernel_id, fields, KernelRecord.to_json)
        if data is None:
            return None
        if data["state"] == "ended":
            self._live.pop(kernel_id, None)
        else:
            self._live[kernel_id] = data
        self._changed()
        return data

    def end(self, kernel_id: str, reason: str) -> dict | None:
        if kernel_id not in self._live:
            return None
        data = self.update(kernel_id, state="ended", ended=now(), end_reason=reason)
        self._history.pop(kernel_id, None)
        return data

    # -- a kernel's applications across restarts ---------------------------------------------------------
    def begin_restart(self, kernel_id: str) -> dict | None:
        """A restart was asked for: the current application becomes history, the next one is current."""
        rec = self._live.get(kernel_id)
        if rec is None:
            return None
        if rec.get("app_id"):
            self._retire(kernel_id, rec["app_id"])
        return self.update(kernel_id, state="restarting", app_id=None)

    def end_restart(self, kernel_id: str, apps: list[dict] | None = None) -> dict | None:
        """The restart returned: ``apps`` (the kernel's applications, read from the RM) are folded in
        oldest first, as the reaper folds them, so the newest is current and the rest history."""
        rec = self._live.get(kernel_id)
        if rec is None or rec["state"] != "restarting":
            return rec
        self.update(kernel_id, state="running")
        mine = (a for a in apps or () if a.get("name") == kernel_id and a.get("user") == rec["user"])
        for app in sorted(mine, key=lambda a: app_order(a["id"])):
            self.observe_app(self._live[kernel_id], app)
        return self._live.get(kernel_id)

    def is_history(self, kernel_id: str, app_id: str) -> bool:
        return app_id in self._history.get(kernel_id, ())

    def _retire(self, kernel_id: str, app_id: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(delete(KernelAppRecord).where(KernelAppRecord.app_id == app_id))
            s.add(KernelAppRecord(app_id=app_id, kernel_id=kernel_id, replaced=now()))
        self._history.setdefault(kernel_id, set()).add(app_id)

    def observe_app(self, rec: dict, app: dict) -> bool:
        """Fold an application of ``rec``'s kernel into the ledger; True when it is the current one.

        An application newer than the current one (a restart's) replaces it, which becomes history;
        an older one, or one already retired, is history.
        """
        app_id, current = app["id"], rec.get("app_id")
        if self.is_history(rec["id"], app_id):
            return False
        if current == app_id:
            return True
        if current and app_order(app_id) < app_order(current):
            self._retire(rec["id"], app_id)
            return False
        if current:
            self._retire(rec["id"], current)
        self.update(rec["id"], app_id=app_id)
        return True

    def get(self, kernel_id: str) -> dict | None:
        if kernel_id in self._live:
            return self._live[kernel_id]
        with Session(self.engine) as s:
            rec = s.get(KernelRecord, kernel_id)
            return rec.to_json() if rec else None

    def live(self) -> Iterable[dict]:
        return list(self._live.values())

    def live_for(self, user: str) -> list[dict]:
        return [k for k in self._live.values() if k["user"] == user]

    def for_app(self, app: dict) -> dict | None:
        """The kernel behind a YARN application: its name is the kernel id, and the users must agree."""
        rec = self._live.get(app.get("name", "")) or (
            self.get(app["name"]) if len(app.get("name", "")) == 36 else None)
        if rec and rec["user"] == app.get("user"):
            return rec
        return None
