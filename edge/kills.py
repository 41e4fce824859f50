"""Kills in flight, kept in the edge's database, so a kill the edge accepted is finished and audited even
when the edge dies between asking YARN and hearing back.

:meth:`JobService.kill <yardlab.edge.jobs.JobService.kill>` notes the kill here before it asks the
ResourceManager and clears the note once the outcome is in the audit log.  A note still here when the
edge starts is a kill cut short by the edge's end (SIGKILL, the OOM killer, the node going down): the
caller saw its connection drop and cannot know what happened.  The next edge finishes it
(:meth:`JobService.resume_kills <yardlab.edge.jobs.JobService.resume_kills>`): it asks YARN again,
as the owner, waits for the end and writes the one audit record the kill was owed, marked ``resumed``.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Float, String, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import now
from .db import Base


class PendingKillRecord(Base):
    """A kill the edge asked YARN for and has not yet seen end (nor audited)."""

    __tablename__ = "pending_kills"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    actor_admin: Mapped[bool] = mapped_column(Boolean)
    actor_kind: Mapped[str] = mapped_column(String(16))  # owner | admin
    owner: Mapped[str] = mapped_column(String(128))
    requested: Mapped[float] = mapped_column(Float)

    def to_json(self) -> dict:
        return {c: getattr(self, c) for c in ("app_id", "actor", "actor_admin", "actor_kind", "owner", "requested")}


class KillJournal:
    """Notes of the kills in flight: written before YARN is asked, cleared once the outcome is audited."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine, tables=[PendingKillRecord.__table__])

    def begin(self, app_id: str, actor: str, actor_admin: bool, actor_kind: str, owner: str) -> dict:
        """Note a kill about to be asked for; the note (a later kill of the same application replaces it)."""
        note = PendingKillRecord(app_id=app_id, actor=actor, actor_admin=actor_admin, actor_kind=actor_kind,
                                 owner=owner, requested=now())
        data = note.to_json()
        with Session(self.engine) as s, s.begin():
            s.merge(note)
        return data

    def finish(self, note: dict) -> None:
        """Clear ``note`` once its outcome is audited (not a newer note of the same application)."""
        with Session(self.engine) as s, s.begin():
            s.execute(delete(PendingKillRecord).where(PendingKillRecord.app_id == note["app_id"],
                                                      PendingKillRecord.requested == note["requested"]))

    def unfinished(self) -> list[dict]:
        """Every kill still noted, oldest first."""
        with Session(self.engine) as s:
            return [r.to_json() for r in s.scalars(select(PendingKillRecord).order_by(PendingKillRecord.requested))]
