"""Environment records and build logs: the tables, every read and write of them, and the event fan-out.

Two tables in the edge's database: ``environments`` (one row per environment: the request, its
build state and the archive it runs on) and ``env_resolutions`` (which archive a request resolved
to, so an identical request soon after reuses it).  Each build writes a log file under
``<builds_dir>/logs``; lines and progress changes also go to live listeners (the event streams).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..clock import now
from ..db import Base, add_new_columns, update_row
from ..errors import PublicError
from .request import FieldError, kernel_name_for

Key = tuple[str, str]  # (owner, name)
Listener = Callable[[str, dict], None]  # (event, data)
PROGRESS_FIELDS = ("status", "phase", "progress", "error")


class EnvironmentRecord(Base):
    """One environment: the request, its build state and what it produced."""

    __tablename__ = "environments"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    resources: Mapped[str] = mapped_column(Text)  # JSON
    packages: Mapped[str] = mapped_column(Text)  # JSON
    visibility: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    kernel_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    archive: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 of the resolved set
    #: JSON list of the JVM jars it ships ({coordinate, file, sha256}; sha256 names the jar on HDFS)
    jars: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    build_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class ResolutionRecord(Base):
    """A request's resolution: identical requests within the TTL reuse it (and its archive)."""

    __tablename__ = "env_resolutions"

    request_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    archive: Mapped[str] = mapped_column(String(64), index=True)
    resolved: Mapped[float] = mapped_column(Float)
    jars: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, as EnvironmentRecord.jars


class LogSink:
    """A build's log: appended to a file and fanned out to live listeners."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.listeners: set[Listener] = set()

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        self._file.write(text + "\n")
        self._file.flush()
        for cb in list(self.listeners):
            cb("log", {"line": text})

    def close(self) -> None:
        self._file.close()


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def record_json(rec: EnvironmentRecord) -> dict:
    """A record as the API shows it (``archive`` is still the bare sha256)."""
    return {
        "owner": rec.owner, "name": rec.name, "display_name": rec.display_name, "kind": rec.kind,
        "resources": json.loads(rec.resources), "packages": json.loads(rec.packages),
        "visibility": rec.visibility, "status": rec.status, "phase": rec.phase, "progress": rec.progress,
        "error": rec.error, "kernel_name": rec.kernel_name if rec.status == "ready" else None,
        "archive": rec.archive, "jars": json.loads(rec.jars) if rec.jars else [], "created": _iso(rec.created), "updated": _iso(rec.updated),
        "build_seconds": rec.build_seconds,
    }


class EnvironmentStore:
    """The environment and resolution records, the build logs, and who listens to which environment."""

    def __init__(self, engine: Engine, logs_dir: Path) -> None:
        self.engine = engine
        Base.metadata.create_all(engine)
        add_new_columns(engine)  # an edge upgraded in place: the jars columns
        self.logs_dir = logs_dir
        self.sinks: dict[Key, LogSink] = {}
        self.listeners: dict[Key, set[Listener]] = {}

    # -- environments ---------------------------------------------------------------------------------
    def get(self, owner: str, name: str) -> dict | None:
        with Session(self.engine) as s:
            rec = s.get(EnvironmentRecord, (owner, name))
            return record_json(rec) if rec else None

    def list(self, owner: str | None) -> list[dict]:
        """Every environment (owner None), or ``owner``'s and the shared ones."""
        with Session(self.engine) as s:
            q = select(EnvironmentRecord).order_by(EnvironmentRecord.owner, EnvironmentRecord.name)
            if owner is not None:
                q = q.where((EnvironmentRecord.owner == owner) | (EnvironmentRecord.visibility == "shared"))
            return [record_json(r) for r in s.scalars(q)]

    def add(self, owner: str, req: dict, kernel_name: str, max_per_owner: int) -> None:
        """Record a new, queued environment; the name, the owner's cap and the kernel name are checked
        in the same transaction, so creates running side by side cannot pass them together."""
        key = (owner, req["name"])
        with Session(self.engine) as s, s.begin():
            if s.get(EnvironmentRecord, key) is not None:
                raise FieldError("name", f"you already have an environment named {req['name']}", status=409)
            count = len(list(s.scalars(select(EnvironmentRecord.name).where(EnvironmentRecord.owner == owner))))
            if count >= max_per_owner:
                raise PublicError(429, f"you have {count} environments, the most this site allows; delete one first")
            # kernelspec names are unique by construction; a (hash) collision must never let one
            # environment's kernelspec replace another's
            if s.scalars(select(EnvironmentRecord.owner).where(EnvironmentRecord.kernel_name == kernel_name)).first():
                raise FieldError("name", f"the name {req['name']} clashes with another environment's kernel; "
                                         "choose another name", status=409)
            t = now()
            s.add(EnvironmentRecord(
                owner=owner, name=req["name"], display_name=req["display_name"], kind=req["kind"],
                resources=json.dumps(req["resources"]), packages=json.dumps(req["packages"]),
                visibility=req["visibility"], status="queued", phase="queued", progress=0, created=t, updated=t,
                kernel_name=kernel_name))

    def update(self, key: Key, **fields: Any) -> dict | None:
        """Change fields of a record (None: it is gone); progress changes go to the listeners."""
        for name in ("resources", "jars"):
            if name in fields and fields[name] is not None:
                fields[name] = json.dumps(fields[name])
        data = update_row(self.engine, EnvironmentRecord, key, {**fields, "updated": now()}, record_json)
        if data is None:
            return None
        if set(PROGRESS_FIELDS) & set(fields):
            self.emit(key, "progress", {k: data[k] for k in PROGRESS_FIELDS})
        return data

    def delete(self, key: Key) -> str:
        """Remove a record; the name of its kernelspec (whether or not the record was still there)."""
        with Session(self.engine) as s, s.begin():
            rec = s.get(EnvironmentRecord, key)
            spec_name = (rec.kernel_name if rec is not None else None) or kernel_name_for(*key)
            if rec is not None:
                s.delete(rec)
        return spec_name

    def spec_name(self, owner: str, name: str) -> str:
        """The kernelspec name stored with the environment (older rows: the one derived from it)."""
        with Session(self.engine) as s:
            rec = s.get(EnvironmentRecord, (owner, name))
            return (rec.kernel_name if rec is not None else None) or kernel_name_for(owner, name)

    def requeue_unfinished(self) -> list[Key]:
        """Put builds an edge restart interrupted back in the queued state; their keys."""
        with Session(self.engine) as s, s.begin():
            unfinished = list(s.scalars(select(EnvironmentRecord).where(
                EnvironmentRecord.status.in_(("queued", "building")))))
            for rec in unfinished:
                rec.status, rec.phase, rec.progress, rec.updated = "queued", "queued", 0, now()
            return [(r.owner, r.name) for r in unfinished]

    def archive_in_use(self, sha: str) -> bool:
        with Session(self.engine) as s:
            return s.scalars(select(EnvironmentRecord.name).where(EnvironmentRecord.archive == sha)).first() is not None

    def jar_in_use(self, sha: str) -> bool:
        """Whether any environment ships the jar named ``sha`` (a sha256: it cannot appear by chance)."""
        with Session(self.engine) as s:
            q = select(EnvironmentRecord.name).where(EnvironmentRecord.jars.contains(f'"{sha}"'))
            return s.scalars(q).first() is not None

    # -- resolutions ----------------------------------------------------------------------------------
    def reusable(self, request_key: str, ttl: float) -> tuple[str, list[dict]] | None:
        """The archive and jars an identical request resolved to in the last ``ttl`` seconds."""
        with Session(self.engine) as s:
            rec = s.get(ResolutionRecord, request_key)
            if rec is None or now() - rec.resolved > ttl:
                return None
            return rec.archive, json.loads(rec.jars) if rec.jars else []

    def remember_resolution(self, request_key: str, sha: str, jars: list[dict]) -> None:
        with Session(self.engine) as s, s.begin():
            s.merge(ResolutionRecord(request_key=request_key, archive=sha, resolved=now(), jars=json.dumps(jars)))

    def forget_resolutions(self, sha: str) -> None:
        with Session(self.engine) as s, s.begin():
            for r in s.scalars(select(ResolutionRecord).where(ResolutionRecord.archive == sha)):
                s.delete(r)

    # -- logs and listeners ---------------------------------------------------------------------------
    def listen(self, key: Key, cb: Listener) -> None:
        self.listeners.setdefault(key, set()).add(cb)

    def unlisten(self, key: Key, cb: Listener) -> None:
        self.listeners.get(key, set()).discard(cb)

    def emit(self, key: Key, event: str, data: dict) -> None:
        for cb in list(self.listeners.get(key, ())):
            cb(event, data)

    def sink(self, key: Key) -> LogSink:
        """The open log of ``key``'s build (opened on first use)."""
        if key not in self.sinks:
            sink = LogSink(self.log_path(key))
            sink.listeners.add(lambda ev, data, key=key: self.emit(key, ev, data))
            self.sinks[key] = sink
        return self.sinks[key]

    def close_sink(self, key: Key) -> None:
        sink = self.sinks.pop(key, None)
        if sink is not None:
            sink.close()

    def close_all(self) -> None:
        for key in list(self.sinks):
            self.close_sink(key)

    def log_path(self, key: Key) -> Path:
        owner_dir = hashlib.sha256(key[0].encode()).hexdigest()[:16] + "-" + re.sub(r"[^A-Za-z0-9]", "_", key[0])[:40]
        return self.logs_dir / owner_dir / f"{key[1]}.log"

    def forget_log(self, key: Key) -> None:
        self.log_path(key).unlink(missing_ok=True)

    def log_tail(self, key: Key, lines: int) -> list[str]:
        """The last ``lines`` lines of the log (from its last 64 KiB)."""
        path = self.log_path(key)
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
        return text.splitlines()[-lines:]
