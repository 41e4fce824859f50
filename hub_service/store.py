"""The service's own database: cluster samples and per-user usage over time (SQLAlchemy, SQLite by default)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, cast, create_engine, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .usage import SampleDelta


class Base(DeclarativeBase):
    pass


class ClusterSample(Base):
    """The cluster at one moment."""

    __tablename__ = "cluster_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float, index=True)
    memory_used_mb: Mapped[int] = mapped_column(BigInteger)
    memory_total_mb: Mapped[int] = mapped_column(BigInteger)
    vcores_used: Mapped[int] = mapped_column(Integer)
    vcores_total: Mapped[int] = mapped_column(Integer)
    apps_running: Mapped[int] = mapped_column(Integer)
    apps_pending: Mapped[int] = mapped_column(Integer)
    nodes_active: Mapped[int] = mapped_column(Integer)
    nodes_unhealthy: Mapped[int] = mapped_column(Integer)


class UserSample(Base):
    """One user's share of one sample (only users with applications in the snapshot)."""

    __tablename__ = "user_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float, index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    running: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    allocated_mb: Mapped[int] = mapped_column(BigInteger)
    allocated_vcores: Mapped[int] = mapped_column(Integer)
    memory_seconds: Mapped[int] = mapped_column(BigInteger)
    vcore_seconds: Mapped[int] = mapped_column(BigInteger)


class UserHour(Base):
    """One user's memory/vcore-seconds within one clock hour: usage windows sum these, not raw samples."""

    __tablename__ = "user_hours"
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds at the hour's start
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    memory_seconds: Mapped[int] = mapped_column(BigInteger)
    vcore_seconds: Mapped[int] = mapped_column(BigInteger)


class AppCounter(Base):
    """YARN's cumulative counters of one application as last sampled (to turn them into deltas)."""

    __tablename__ = "app_counters"
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    memory_seconds: Mapped[int] = mapped_column(BigInteger)
    vcore_seconds: Mapped[int] = mapped_column(BigInteger)
    last_seen: Mapped[float] = mapped_column(Float, index=True)


class UsageStore:
    """Writes samples and answers history and usage questions; every call is short and synchronous."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)

    def counters(self) -> dict[str, tuple[str, int, int]]:
        with Session(self.engine) as s:
            return {c.app_id: (c.user, c.memory_seconds, c.vcore_seconds) for c in s.scalars(select(AppCounter))}

    def record(self, ts: float, cluster: dict, delta: SampleDelta,
               previous: dict[str, tuple[str, int, int]] | None = None) -> None:
        """Store one sample; ``previous`` (the counters before it) spares rewriting unchanged counters."""
        mem, vc, nodes = cluster.get("memory", {}), cluster.get("vcores", {}), cluster.get("nodes", {})
        by_state = cluster.get("appsByState", {})
        with Session(self.engine) as s, s.begin():
            s.add(ClusterSample(
                ts=ts, memory_used_mb=mem.get("usedMB", 0), memory_total_mb=mem.get("totalMB", 0),
                vcores_used=vc.get("used", 0), vcores_total=vc.get("total", 0),
                apps_running=by_state.get("RUNNING", 0),
                apps_pending=sum(by_state.get(k, 0) for k in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")),
                nodes_active=nodes.get("active", 0), nodes_unhealthy=nodes.get("unhealthy", 0)))
            hour = int(ts // 3600 * 3600)
            for user, use in delta.users.items():
                if use.memory_seconds or use.vcore_seconds:
                    row = s.get(UserHour, (hour, user))
                    if row is None:
                        s.add(UserHour(hour=hour, user=user, memory_seconds=use.memory_seconds,
                                       vcore_seconds=use.vcore_seconds))
                    else:
                        row.memory_seconds += use.memory_seconds
                        row.vcore_seconds += use.vcore_seconds
                s.add(UserSample(ts=ts, user=user, running=use.running, pending=use.pending,
                                 allocated_mb=use.allocated_mb, allocated_vcores=use.allocated_vcores,
                                 memory_seconds=use.memory_seconds, vcore_seconds=use.vcore_seconds))
            for app_id, (user, ms, vs) in delta.counters.items():
                if previous is not None and previous.get(app_id) == (user, ms, vs):
                    # unchanged (finished applications): last_seen stays the time of the last change; the
                    # edge lists a finished application for a day, counters are pruned after three
                    continue
                s.merge(AppCounter(app_id=app_id, user=user, memory_seconds=ms, vcore_seconds=vs, last_seen=ts))


    def prune(self, before: float, counters_before: float, samples_before: float | None = None) -> None:
        """Drop cluster samples and hourly usage before ``before``, raw per-user samples before
        ``samples_before`` (only the latest and the current hour are read), counters of applications
        last seen before ``counters_before``."""
        with Session(self.engine) as s, s.begin():
            s.execute(delete(ClusterSample).where(ClusterSample.ts < before))
            s.execute(delete(UserHour).where(UserHour.hour < before - 3600))
            s.execute(delete(UserSample).where(UserSample.ts < (samples_before if samples_before is not None else before)))
            s.execute(delete(AppCounter).where(AppCounter.last_seen < counters_before))

    def history(self, since: float, max_points: int = 2000) -> list[dict[str, Any]]:
        """Cluster samples since ``since``; more than ``max_points`` are averaged into equal time buckets."""
        c = ClusterSample
        with Session(self.engine) as s:
            first, last, n = s.execute(select(func.min(c.ts), func.max(c.ts), func.count(c.id))
                                       .where(c.ts >= since)).one()
            if not n:
                return []
            cols = [c.memory_used_mb, c.memory_total_mb, c.vcores_used, c.vcores_total, c.apps_running,
                    c.apps_pending, c.nodes_active, c.nodes_unhealthy]
            if n <= max_points:
                rows = s.execute(select(c.ts, *cols).where(c.ts >= since).order_by(c.ts)).all()
            else:
                width = (last - first) / max_points * (1 + 1e-9)
                bucket = cast((c.ts - first) / width, Integer)
                rows = s.execute(select(func.max(c.ts), *[func.avg(col) for col in cols])
                                 .where(c.ts >= since).group_by(bucket).order_by(bucket)).all()
        keys = ("memoryUsedMB", "memoryTotalMB", "vcoresUsed", "vcoresTotal", "appsRunning", "appsPending",
                "nodesActive", "nodesUnhealthy")
        return [{"ts": r[0], **{k: round(float(v or 0), 1) for k, v in zip(keys, r[1:])}} for r in rows]

    def usage(self, windows: dict[str, float], now: float, user: str | None = None) -> dict[str, dict]:
        """Per user: current use (latest sample) and memory/vcore-seconds summed over each window."""
        out: dict[str, dict] = {}
        with Session(self.engine) as s:
            latest = s.scalar(select(func.max(ClusterSample.ts)))
            for label, seconds in windows.items():
                start = now - seconds
                whole = int(-(-start // 3600) * 3600)  # the first whole hour inside the window
                # whole hours from the hourly sums, the partial first hour from the raw samples
                parts = [select(UserHour.user.label("u"), UserHour.memory_seconds.label("ms"),
                                UserHour.vcore_seconds.label("vs")).where(UserHour.hour >= whole),
                         select(UserSample.user.label("u"), UserSample.memory_seconds.label("ms"),
                                UserSample.vcore_seconds.label("vs"))
                         .where(UserSample.ts >= start, UserSample.ts < whole)]
                if user is not None:
                    parts[0] = parts[0].where(UserHour.user == user)
                    parts[1] = parts[1].where(UserSample.user == user)
                both = parts[0].union_all(parts[1]).subquery()
                q = select(both.c.u, func.sum(both.c.ms), func.sum(both.c.vs)).group_by(both.c.u)
                for name, ms, vs in s.execute(q):
                    entry = out.setdefault(name, _empty(name, windows))
                    entry["windows"][label] = {"memorySeconds": int(ms or 0), "vcoreSeconds": int(vs or 0)}
            if latest is not None:
                q = select(UserSample).where(UserSample.ts == latest)
                if user is not None:
                    q = q.where(UserSample.user == user)
                for r in s.scalars(q):
                    entry = out.setdefault(r.user, _empty(r.user, windows))
                    entry["current"] = {"running": r.running, "pending": r.pending,
                                        "allocatedMB": r.allocated_mb, "allocatedVCores": r.allocated_vcores}
        if user is not None and user not in out:
            out[user] = _empty(user, windows)
        return out

    def sample_count(self) -> int:
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count(ClusterSample.id))) or 0)


def _empty(user: str, windows: dict[str, float]) -> dict:
    return {"user": user, "current": {"running": 0, "pending": 0, "allocatedMB": 0, "allocatedVCores": 0},
            "windows": {label: {"memorySeconds": 0, "vcoreSeconds": 0} for label in windows}}
