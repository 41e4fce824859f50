"""The service's own database: cluster samples and per-user usage over time (SQLAlchemy, SQLite by default)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, create_engine, delete, func, select
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

    def record(self, ts: float, cluster: dict, delta: SampleDelta) -> None:
        mem, vc, nodes = cluster.get("memory", {}), cluster.get("vcores", {}), cluster.get("nodes", {})
        by_state = cluster.get("appsByState", {})
        with Session(self.engine) as s, s.begin():
            s.add(ClusterSample(
                ts=ts, memory_used_mb=mem.get("usedMB", 0), memory_total_mb=mem.get("totalMB", 0),
                vcores_used=vc.get("used", 0), vcores_total=vc.get("total", 0),
                apps_running=by_state.get("RUNNING", 0),
                apps_pending=sum(by_state.get(k, 0) for k in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")),
                nodes_active=nodes.get("active", 0), nodes_unhealthy=nodes.get("unhealthy", 0)))
            for user, use in delta.users.items():
                s.add(UserSample(ts=ts, user=user, running=use.running, pending=use.pending,
                                 allocated_mb=use.allocated_mb, allocated_vcores=use.allocated_vcores,
                                 memory_seconds=use.memory_seconds, vcore_seconds=use.vcore_seconds))
            for app_id, (user, ms, vs) in delta.counters.items():
                s.merge(AppCounter(app_id=app_id, user=user, memory_seconds=ms, vcore_seconds=vs, last_seen=ts))

    def prune(self, before: float, counters_before: float) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(delete(ClusterSample).where(ClusterSample.ts < before))
            s.execute(delete(UserSample).where(UserSample.ts < before))
            s.execute(delete(AppCounter).where(AppCounter.last_seen < counters_before))

    def history(self, since: float, max_points: int = 2000) -> list[dict[str, Any]]:
        """Cluster samples since ``since``, thinned evenly to at most ``max_points``."""
        with Session(self.engine) as s:
            rows = list(s.scalars(select(ClusterSample).where(ClusterSample.ts >= since).order_by(ClusterSample.ts)))
        if len(rows) > max_points:
            step = len(rows) / max_points
            rows = [rows[int(i * step)] for i in range(max_points)]
        return [{"ts": r.ts, "memoryUsedMB": r.memory_used_mb, "memoryTotalMB": r.memory_total_mb,
                 "vcoresUsed": r.vcores_used, "vcoresTotal": r.vcores_total, "appsRunning": r.apps_running,
                 "appsPending": r.apps_pending, "nodesActive": r.nodes_active, "nodesUnhealthy": r.nodes_unhealthy}
                for r in rows]

    def usage(self, windows: dict[str, float], now: float, user: str | None = None) -> dict[str, dict]:
        """Per user: current use (latest sample) and memory/vcore-seconds summed over each window."""
        out: dict[str, dict] = {}
        with Session(self.engine) as s:
            latest = s.scalar(select(func.max(ClusterSample.ts)))
            for label, seconds in windows.items():
                q = (select(UserSample.user, func.sum(UserSample.memory_seconds), func.sum(UserSample.vcore_seconds))
                     .where(UserSample.ts >= now - seconds).group_by(UserSample.user))
                if user is not None:
                    q = q.where(UserSample.user == user)
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
