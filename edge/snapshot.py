"""One shared, in-memory picture of YARN, refreshed by a single poll loop.

Every user's read is served from here, so the ResourceManager sees the same few requests per
interval whether ten people or a thousand have the Jobs panel open.  Applications are indexed by
user (with a per-user generation counter, so one user's ETag does not change when another user's
job moves); cluster metrics, nodes and queues are refreshed on a slower interval.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from typing import Any, Iterable

from traitlets import Float, Instance, Integer
from traitlets.config import LoggingConfigurable

from . import metrics
from .clients.resourcemanager import (
    ACTIVE_STATES,
    FINAL_STATES,
    ResourceManagerClient,
    RMError,
    RMUnavailable,
)
from .clock import monotonic, now_ms
from .errors import PublicError
from .loops import PeriodicTask


def _nonneg(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def app_model(raw: dict) -> dict:
    """The edge's view of one YARN application (the fields the API promises)."""
    tags = [t for t in (raw.get("applicationTags") or "").split(",") if t]
    return {
        "id": raw["id"],
        "name": raw.get("name") or "",
        "user": raw.get("user") or "",
        "queue": raw.get("queue") or "",
        "state": raw.get("state") or "",
        "finalStatus": raw.get("finalStatus") or "",
        "progress": float(raw.get("progress") or 0.0),
        "startedTime": _nonneg(raw.get("startedTime")),
        "finishedTime": _nonneg(raw.get("finishedTime")) or None,
        "elapsedTime": _nonneg(raw.get("elapsedTime")),
        "allocatedMB": _nonneg(raw.get("allocatedMB")),
        "allocatedVCores": _nonneg(raw.get("allocatedVCores")),
        "runningContainers": _nonneg(raw.get("runningContainers")),
        "memorySeconds": _nonneg(raw.get("memorySeconds")),
        "vcoreSeconds": _nonneg(raw.get("vcoreSeconds")),
        "trackingUrl": raw.get("trackingUrl") or "",
        "applicationType": raw.get("applicationType") or "",
        "tags": tags,
        "diagnostics": (raw.get("diagnostics") or "")[:2000],
    }


def _sort_key(app: dict) -> tuple[int, str]:
    return (app["startedTime"], app["id"])


def encode_cursor(app: dict) -> str:
    raw = json.dumps([app["startedTime"], app["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, app_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(started, int) or not isinstance(app_id, str) or len(app_id) > 64:
            raise ValueError
        return started, app_id
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PublicError(400, "cursor is not one this service handed out; start again without it") from e


def etag_digest(key: bytes) -> str:
    """A cryptographic digest for ETags: a caller cannot choose a key whose digest matches another's."""
    return hashlib.sha256(key).hexdigest()


def queue_matches(app_queue: str, wanted: str) -> bool:
    return app_queue == wanted or app_queue.endswith("." + wanted)


class AppSnapshot(LoggingConfigurable):
    """Applications, cluster metrics, nodes and queues, as last read from the ResourceManager."""

    poll_interval = Float(2.0, help="Seconds between polls of the ResourceManager's applications.").tag(config=True)
    cluster_poll_interval = Float(
        10.0, help="Seconds between polls of cluster metrics, nodes and scheduler queues.").tag(config=True)
    finished_window = Float(
        24 * 3600.0, help="Seconds finished applications stay in the snapshot after they end.").tag(config=True)
    finished_overlap = Float(
        30.0, help="Seconds each finished-applications query reaches back before the previous poll "
                   "(covers clock skew between the edge and the RM).").tag(config=True)
    max_backoff = Float(5.0, help="Longest pause between polls while the ResourceManager is unreachable.").tag(config=True)
    stale_grace = Float(
        30.0, help="Seconds the last snapshot is still answered from after the ResourceManager stopped answering "
                   "(answers carry its age: X-Snapshot-Age, snapshotAge); past it, 503 with why. A busy RM is not "
                   "a down one: twenty kernels starting at once on a 2-core machine kept the RM from taking "
                   "connections within the timeout for ~20 s, and every sidebar said it was unreachable. "
                   "0: 503 from the first failed poll.").tag(config=True)
    max_finished_apps = Integer(
        50_000, help="Most finished applications kept; the oldest go first.").tag(config=True)

    rm = Instance(ResourceManagerClient)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epoch = secrets.token_hex(4)  # ETags from an earlier process never match
        self.apps: dict[str, dict] = {}
        self.generation = 0
        self.user_generation: dict[str, int] = {}
        self._user_lists: dict[str, list[dict]] = {}
        self._all_list: tuple[int, list[dict]] = (-1, [])
        self.cluster: dict = {}
        self.cluster_generation = 0
        self.last_success: float | None = None  # monotonic
        self.last_cluster_poll: float | None = None
        self.last_error: str | None = None
        self.error_since: float | None = None
        self._last_poll_ms: int | None = None
        self._task: PeriodicTask | None = None

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = PeriodicTask(self._run, self.poll_interval, max_backoff=self.max_backoff,
                                      name="YARN snapshot poll", log=self.log)
            self._task.start()

    async def stop(self) -> None:
        if self._task:
            await self._task.stop()
            self._task = None

    async def _run(self) -> bool:
        """One round of the poll loop; False (the loop backs off) when the RM could not be read."""
        try:
            await self.poll_once()
            return True
        except (RMUnavailable, RMError) as e:
            if self.last_error is None:
                self.error_since = monotonic()
                self.log.warning("YARN snapshot: %s", e)
            self.last_error = str(e)
        except Exception:  # noqa: BLE001 - the loop must survive anything the RM sends
            self.log.exception("YARN snapshot poll failed")
            self.last_error = "unexpected error while reading the ResourceManager"
        finally:
            metrics.SNAPSHOT_AGE.set(self.age if self.age is not None else float("nan"))
        return False

    async def poll_once(self) -> None:
        """Refresh applications (and, when due, cluster metrics, nodes and queues)."""
        started = now_ms()
        active = await self.rm.apps(ACTIVE_STATES)
        if self._last_poll_ms is None:
            since = started - int(self.finished_window * 1000)
        else:
            since = self._last_poll_ms - int(self.finished_overlap * 1000)
        finished = await self.rm.apps(FINAL_STATES, finishedTimeBegin=since)
        due = self.last_cluster_poll is None or monotonic() - self.last_cluster_poll >= self.cluster_poll_interval
        cluster = await self._read_cluster() if due else None
        self._apply(active, finished, started)
        if cluster is not None:
            if cluster != self.cluster:
                self.cluster = cluster
                self.cluster_generation += 1
            self.last_cluster_poll = monotonic()
        self._last_poll_ms = started
        if self.last_error is not None:
            self.log.info("YARN snapshot: ResourceManager reachable again")
        self.last_error = None
        self.error_since = None
        self.last_success = monotonic()
        metrics.SNAPSHOT_APPS.set(len(self.apps))

    def _apply(self, active: list[dict], finished: list[dict], started_ms: int) -> None:
        changed: set[str] = set()
        seen: set[str] = set()
        for raw in active + finished:
            model = app_model(raw)
            seen.add(model["id"])
            old = self.apps.get(model["id"])
            if old is None or any(old.get(k) != v for k, v in model.items()):
                # keep fields other parts of the edge attach (kernel, notebook) across polls
                merged = {**(old or {}), **model}
                self.apps[model["id"]] = merged
                changed.add(model["user"])
                if old is not None and old["user"] != model["user"]:
                    changed.add(old["user"])
        cutoff = started_ms - int(self.finished_window * 1000)
        for app_id, app in list(self.apps.items()):
            if app_id in seen:
                continue
            ended = app["state"] in FINAL_STATES
            if not ended or (app["finishedTime"] or 0) < cutoff:
                # an app that left the active list without showing up as finished is gone from
                # the RM (max-completed-applications); one past the window is dropped on purpose
                del self.apps[app_id]
                changed.add(app["user"])
        finished_ids = [a for a in self.apps.values() if a["state"] in FINAL_STATES]
        if len(finished_ids) > self.max_finished_apps:
            finished_ids.sort(key=lambda a: a["finishedTime"] or 0)
            for app in finished_ids[: len(finished_ids) - self.max_finished_apps]:
                del self.apps[app["id"]]
                changed.add(app["user"])
        if changed:
            self._reindex(changed)

    def _reindex(self, users: Iterable[str]) -> None:
        users = set(users)
        lists: dict[str, list[dict]] = {u: [] for u in users}
        for app in self.apps.values():
            if app["user"] in lists:
                lists[app["user"]].append(app)
        for user, apps in lists.items():
            apps.sort(key=_sort_key, reverse=True)
            if apps:
                self._user_lists[user] = apps
            else:
                self._user_lists.pop(user, None)
            self.user_generation[user] = self.user_generation.get(user, 0) + 1
        self.generation += 1

    def update_app(self, raw: dict) -> dict:
        """Fold one application read straight from the RM (after a kill, say) into the snapshot."""
        model = app_model(raw)
        self.apps[model["id"]] = {**self.apps.get(model["id"], {}), **model}
        self._reindex({model["user"]})
        return self.apps[model["id"]]

    async def _read_cluster(self) -> dict:
        m, nodes, sched = await asyncio.gather(self.rm.metrics(), self.rm.nodes(), self.rm.scheduler())
        return cluster_model(m, nodes, sched)

    # -- reads ---------------------------------------------------------------------------------
    @property
    def age(self) -> float | None:
        return None if self.last_success is None else monotonic() - self.last_success

    def require_fresh(self) -> None:
        """Refuse to answer from a snapshot the RM has not confirmed for longer than ``stale_grace`` (503, with
        why); a younger one is answered from while the RM is slow or away."""
        if self.last_success is None:
            detail = f": {self.last_error}" if self.last_error else ""
            raise PublicError(503, f"waiting for the first answer from the YARN ResourceManager{detail}",
                              reason="ResourceManager unavailable")
        if self.last_error is not None and (self.age or 0.0) > self.stale_grace:
            since = monotonic() - (self.error_since or monotonic())
            raise PublicError(503, f"the YARN ResourceManager is unreachable (for {since:.0f} s): "
                                   f"{self.last_error}", reason="ResourceManager unavailable")

    def apps_for(self, user: str | None) -> list[dict]:
        """One user's applications (or everyone's for None), newest first."""
        if user is not None:
            return self._user_lists.get(user, [])
        gen, cached = self._all_list
        if gen != self.generation:
            cached = sorted(self.apps.values(), key=_sort_key, reverse=True)
            self._all_list = (self.generation, cached)
        return cached

    def query(self, user: str | None, states: Iterable[str] | None = None, queue: str | None = None,
              search: str | None = None, limit: int = 100, cursor: str | None = None,
              after: tuple[int, str] | None = None) -> tuple[list[dict], str | None]:
        """One page of ``user``'s applications (None: everyone's), newest first, after a cursor."""
        apps: Iterable[dict] = self.apps_for(user)
        if cursor:
            after = decode_cursor(cursor)
        if after is not None:
            apps = (a for a in apps if _sort_key(a) < after)
        if states:
            apps = (a for a in apps if a["state"] in states)
        if queue:
            apps = (a for a in apps if queue_matches(a["queue"], queue))
        if search:
            needle = search.casefold()
            apps = (a for a in apps if needle in a["name"].casefold())
        page: list[dict] = []
        for app in apps:
            if len(page) == limit:
                return page, encode_cursor(page[-1])
            page.append(app)
        return page, None

    def scope_generation(self, user: str | None) -> int:
        """Changes whenever ``user``'s applications (None: anyone's) change."""
        return self.generation if user is None else self.user_generation.get(user, 0)

    def etag(self, user: str | None, query_key: str) -> str:
        """An ETag for one view of ``user``'s applications: a SHA-256 of the user, their generation and
        the whole query, so no two users' or queries' views share one (a caller chooses most of the key)."""
        key = json.dumps([user, self.scope_generation(user), query_key]).encode()
        return f'W/"{self.epoch}-{etag_digest(key)}"'

    def cluster_etag(self) -> str:
        return f'W/"{self.epoch}-c{self.cluster_generation}"'

    def counts_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for app in self.apps.values():
            counts[app["state"]] = counts.get(app["state"], 0) + 1
        return counts


def cluster_model(m: dict, nodes: list[dict], sched: dict) -> dict:
    total_mb = _nonneg(m.get("totalMB"))
    return {
        "memory": {"usedMB": _nonneg(m.get("allocatedMB")), "totalMB": total_mb,
                   "availableMB": _nonneg(m.get("availableMB")), "reservedMB": _nonneg(m.get("reservedMB"))},
        "vcores": {"used": _nonneg(m.get("allocatedVirtualCores")), "total": _nonneg(m.get("totalVirtualCores")),
                   "available": _nonneg(m.get("availableVirtualCores"))},
        "apps": {"submitted": _nonneg(m.get("appsSubmitted")), "pending": _nonneg(m.get("appsPending")),
                 "running": _nonneg(m.get("appsRunning")), "completed": _nonneg(m.get("appsCompleted")),
                 "killed": _nonneg(m.get("appsKilled")), "failed": _nonneg(m.get("appsFailed"))},
        "containers": {"allocated": _nonneg(m.get("containersAllocated")),
                       "pending": _nonneg(m.get("containersPending"))},
        "nodes": {
            "active": _nonneg(m.get("activeNodes")), "unhealthy": _nonneg(m.get("unhealthyNodes")),
            "lost": _nonneg(m.get("lostNodes")), "decommissioned": _nonneg(m.get("decommissionedNodes")),
            "list": [node_model(n) for n in nodes],
        },
        "queues": list(_queues(sched, total_mb)),
        "scheduler": sched.get("type", ""),
    }


def node_model(n: dict) -> dict:
    used, avail = _nonneg(n.get("usedMemoryMB")), _nonneg(n.get("availMemoryMB"))
    used_vc, avail_vc = _nonneg(n.get("usedVirtualCores")), _nonneg(n.get("availableVirtualCores"))
    return {"id": n.get("id", ""), "host": n.get("nodeHostName", ""), "state": n.get("state", ""),
            "healthy": n.get("state") == "RUNNING", "healthReport": n.get("healthReport", ""),
            "usedMB": used, "totalMB": used + avail, "usedVCores": used_vc, "totalVCores": used_vc + avail_vc,
            "containers": _nonneg(n.get("numContainers")), "lastHealthUpdate": _nonneg(n.get("lastHealthUpdate"))}


def _queues(info: dict, total_mb: int, parent: str = "root"):
    for q in ((info.get("queues") or {}).get("queue") or []):
        path = q.get("queuePath") or f"{parent}.{q.get('queueName')}"
        used = (q.get("resourcesUsed") or {})
        am_limit = (q.get("AMResourceLimit") or {}).get("memory")
        am_used = (q.get("usedAMResource") or {}).get("memory")
        abs_cap, abs_max = float(q.get("absoluteCapacity") or 0), float(q.get("absoluteMaxCapacity") or 0)
        model = {
            "name": q.get("queueName", ""), "path": path, "state": q.get("state", ""),
            "leaf": "queues" not in q or not (q.get("queues") or {}).get("queue"),
            "capacity": abs_cap, "maxCapacity": abs_max,
            "usedCapacity": float(q.get("absoluteUsedCapacity") or 0),
            "capacityMB": int(total_mb * abs_cap / 100), "maxMB": int(total_mb * abs_max / 100),
            "usedMB": _nonneg(used.get("memory")), "usedVCores": _nonneg(used.get("vCores")),
            "applications": _nonneg(q.get("numApplications")),
            "activeApplications": _nonneg(q.get("numActiveApplications")),
            "pendingApplications": _nonneg(q.get("numPendingApplications")),
            "pendingContainers": _nonneg(q.get("pendingContainers")),
            "amLimitMB": _nonneg(am_limit) if am_limit is not None else None,
            "amUsedMB": _nonneg(am_used) if am_used is not None else None,
        }
        yield model
        yield from _queues(q, total_mb, path)
