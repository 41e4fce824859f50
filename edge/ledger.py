"""The kernel ledger: kernel id <-> YARN application <-> user <-> environment, persisted with SQLAlchemy.

Ownership and kernel links used by the reaper and the jobs API come from here and from the RM's
user field, never from YARN application tags (users can set tags on anything they submit).
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Float, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from .utils import now


class Base(DeclarativeBase):
    """Declarative base of the edge's tables."""


class KernelRecord(Base):
    """One kernel the edge started on behalf of a user."""

    __tablename__ = "kernels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    kernelspec: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(128), default="builtin")
    app_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    notebook: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    queue: Mapped[str] = mapped_column(String(255), default="default")
    need_mb: Mapped[int] = mapped_column(Integer, default=0)
    need_vcores: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="starting", index=True)  # starting|running|ended
    created: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def to_json(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in ("id", "user", "kernelspec", "environment", "app_id", "notebook",
                                              "queue", "need_mb", "need_vcores", "state", "created", "ended",
                                              "end_reason")}


class KernelLedger(LoggingConfigurable):
    """Reads and writes kernel records; keeps the live ones in memory for per-request lookups."""

    db_url = Unicode(
        "sqlite:///yardlab-edge.sqlite",
        help="SQLAlchemy URL of the edge's database (SQLite file by default; any SQLAlchemy URL works).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = create_engine(self.db_url, future=True)
        Base.metadata.create_all(self.engine)
        self.generation = 0
        self._live: dict[str, dict] = {}
        with Session(self.engine) as s:
            for rec in s.scalars(select(KernelRecord).where(KernelRecord.state != "ended")):
                self._live[rec.id] = rec.to_json()

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
        with Session(self.engine) as s, s.begin():
            rec = s.get(KernelRecord, kernel_id)
            if rec is None:
                return None
            for k, v in fields.items():
                setattr(rec, k, v)
            data = rec.to_json()
        if data["state"] == "ended":
            self._live.pop(kernel_id, None)
        else:
            self._live[kernel_id] = data
        self._changed()
        return data

    def end(self, kernel_id: str, reason: str) -> dict | None:
        if kernel_id not in self._live:
            return None
        return self.update(kernel_id, state="ended", ended=now(), end_reason=reason)

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
