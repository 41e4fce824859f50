"""Jobs policy: who may see and kill which YARN application, and confirmed kills."""
from __future__ import annotations

import asyncio
from typing import Callable

from tornado.log import app_log

from . import metrics
from .audit import AuditLog
from .auth import Identity
from .errors import PublicError
from .ledger import KernelLedger
from .snapshot import AppSnapshot
from .utils import monotonic
from .yarn import FINAL_STATES, ResourceManagerClient, RMError, RMUnavailable

PUBLIC_FIELDS = ("id", "name", "user", "queue", "state", "finalStatus", "progress", "startedTime",
                 "finishedTime", "elapsedTime", "allocatedMB", "allocatedVCores", "runningContainers",
                 "memorySeconds", "vcoreSeconds", "trackingUrl", "applicationType", "tags", "diagnostics")


class JobService:
    """Reads from the shared snapshot and acts on the ResourceManager for one caller at a time."""

    def __init__(self, rm: ResourceManagerClient, snapshot: AppSnapshot, audit: AuditLog,
                 kill_timeout: float = 60.0, kill_poll: float = 0.5, ledger: KernelLedger | None = None,
                 waiting: Callable[[dict, dict], str | None] | None = None) -> None:
        self.ledger = ledger
        self.waiting = waiting
        # serialized /apps pages by ETag: identical until the ETag changes (it covers the
        # snapshot generation, the ledger, the cluster view and the query)
        self._bodies: dict[str, str] = {}
        self.rm = rm
        self.snapshot = snapshot
        self.audit = audit
        self.kill_timeout = kill_timeout
        self.kill_poll = kill_poll

    # -- views -----------------------------------------------------------------------------------
    def public_app(self, app: dict) -> dict:
        out = {k: app.get(k) for k in PUBLIC_FIELDS}
        rec = self.ledger.for_app(app) if self.ledger else None
        out["kernel"] = rec["id"] if rec else None
        out["notebook"] = rec["notebook"] if rec else None
        out["environment"] = rec["environment"] if rec else None
        out["waiting"] = self.waiting(rec, app) if rec and self.waiting else None
        return out

    def cached_body(self, etag: str) -> str | None:
        return self._bodies.get(etag)

    def cache_body(self, etag: str, body: str) -> None:
        if len(self._bodies) >= 20_000:
            self._bodies.clear()
        self._bodies[etag] = body

    def apps_etag(self, user: str | None, query_key: str) -> str:
        # kernel links and waiting messages come from the ledger and the cluster view
        extra = f"{self.ledger.generation if self.ledger else 0}:{self.snapshot.cluster_generation}"
        return self.snapshot.etag(user, f"{extra}:{query_key}")

    def cluster_view(self) -> dict:
        snap = self.snapshot
        return {**snap.cluster, "appsByState": snap.counts_by_state(),
                "snapshotAge": round(snap.age or 0.0, 3)}

    async def app_for(self, who: Identity, app_id: str) -> dict:
        """One application the caller may see: their own, or any for an admin."""
        app = self.snapshot.apps.get(app_id)
        if app is None:
            app = await self._read_from_rm(app_id)
        if app["user"] != who.name and not who.admin:
            raise PublicError(403, f"{app_id} belongs to another user", reason="Forbidden")
        return app

    async def _read_from_rm(self, app_id: str) -> dict:
        try:
            raw = await self.rm.app(app_id)
        except RMError as e:
            if e.status == 404:
                raise PublicError(404, f"YARN has no application {app_id}", reason="Not Found") from e
            raise PublicError(502, f"the ResourceManager refused to describe {app_id}: {e.message}") from e
        except RMUnavailable as e:
            raise PublicError(503, f"the YARN ResourceManager is unreachable: {e}") from e
        return self.snapshot.update_app(raw)

    # -- kill --------------------------------------------------------------------------------------
    async def kill(self, who: Identity, app_id: str) -> dict:
        """Kill as the owner (doAs); confirm by polling the RM; audit whatever happened."""
        app = self.snapshot.apps.get(app_id) or await self._read_from_rm(app_id)
        owner = app["user"]
        actor_kind = "owner" if owner == who.name else ("admin" if who.admin else "other")
        if actor_kind == "other":
            self._record(who, app_id, owner, actor_kind, "denied")
            raise PublicError(403, f"{app_id} belongs to another user; only its owner or an admin may kill it",
                              reason="Forbidden")
        try:
            state = await self.rm.app_state(app_id)
        except RMUnavailable as e:
            self._record(who, app_id, owner, actor_kind, "rm-unavailable")
            raise PublicError(503, f"the YARN ResourceManager is unreachable: {e}") from e
        except RMError as e:
            raise PublicError(502, f"the ResourceManager refused: {e.message}") from e
        if state in FINAL_STATES:
            self._record(who, app_id, owner, actor_kind, "already-finished")
            raise PublicError(409, f"{app_id} has already ended ({state}); there is nothing to kill",
                              reason="Conflict")
        try:
            await self.rm.kill(app_id, as_user=owner)
        except RMUnavailable as e:
            self._record(who, app_id, owner, actor_kind, "rm-unavailable")
            raise PublicError(503, f"the YARN ResourceManager is unreachable: {e}") from e
        except RMError as e:
            self._record(who, app_id, owner, actor_kind, "refused")
            raise PublicError(502, f"the ResourceManager refused the kill: {e.message}") from e
        deadline = monotonic() + self.kill_timeout
        while True:
            try:
                state = await self.rm.app_state(app_id)
            except (RMUnavailable, RMError) as e:
                app_log.warning("kill of %s: state check failed: %s", app_id, e)
                state = ""
            if state in FINAL_STATES:
                break
            if monotonic() > deadline:
                self._record(who, app_id, owner, actor_kind, "timeout")
                raise PublicError(504, f"asked YARN to kill {app_id}, but after {self.kill_timeout:.0f} s "
                                       f"it still reports {state or 'no state'}", reason="Gateway Timeout")
            await asyncio.sleep(self.kill_poll)
        try:
            final = self.snapshot.update_app(await self.rm.app(app_id))
        except (RMUnavailable, RMError):
            final = {**app, "state": state}
        outcome = "killed" if state == "KILLED" else f"ended-{state.lower()}"
        self._record(who, app_id, owner, actor_kind, outcome)
        return {"id": app_id, "user": owner, "state": final["state"], "finalStatus": final.get("finalStatus"),
                "killed": state == "KILLED", "killedBy": who.name}

    def _record(self, who: Identity, app_id: str, owner: str, actor_kind: str, outcome: str) -> None:
        metrics.KILLS.labels(actor_kind, outcome).inc()
        self.audit.record("kill", who.name, outcome, app=app_id, owner=owner, actor_kind=actor_kind,
                          actor_admin=who.admin)


