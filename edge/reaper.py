"""The reaper: kills YARN applications whose kernel no longer exists, and reports dead kernels.

A kernel's application is recognised through the ledger (its name is the kernel id and the RM's
user must be the ledger's user), never through tags alone.  An application counts as orphaned
when Enterprise Gateway no longer knows its kernel; after a grace period (including apps still
ACCEPTED) it is killed as its owner and recorded.  The other way round, a kernel whose *current*
YARN application has ended is shut down in EG, so its clients see it dead instead of hanging; an
earlier application of a restarted kernel (the ledger keeps it as history) says nothing about it.
"""
from __future__ import annotations

from typing import Any, Callable

from traitlets import Float
from traitlets.config import LoggingConfigurable

from . import metrics
from .audit import AuditLog
from .clients.resourcemanager import (
    ACTIVE_STATES,
    FINAL_STATES,
    ResourceManagerClient,
    RMError,
    RMUnavailable,
)
from .clock import monotonic
from .clock import now as now_wall
from .ledger import KernelLedger, app_order
from .loops import PeriodicTask
from .snapshot import AppSnapshot
from .supervisor import GatewaySupervisor
from .warm import WARMING


class Reaper(LoggingConfigurable):
    """Periodically reconciles YARN, the ledger and Enterprise Gateway."""

    interval = Float(10.0, help="Seconds between reaper rounds.").tag(config=True)
    grace = Float(120.0, help="Seconds an application may be without its kernel before it is killed.").tag(config=True)

    def __init__(self, rm: ResourceManagerClient, snapshot: AppSnapshot, ledger: KernelLedger,
                 gateway: GatewaySupervisor, audit: AuditLog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rm, self.snapshot, self.ledger, self.gateway, self.audit = rm, snapshot, ledger, gateway, audit
        self.orphan_since: dict[str, float] = {}
        self.on_dead_kernel: list[Callable[[str], None]] = []
        self._loop: PeriodicTask | None = None

    def start(self) -> None:
        # a failing round is tried again after the same interval: the reaper acts only on a trusted picture
        self._loop = PeriodicTask(self.round, self.interval, wait_first=True, name="reaper round", log=self.log)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()

    async def round(self) -> None:
        if self.snapshot.last_error is not None or self.snapshot.last_success is None:
            return  # never act on a picture of YARN we cannot trust
        eg_ids = await self.gateway.client.kernel_ids()
        if eg_ids is None:
            return  # nor when EG cannot be asked which kernels exist
        now = monotonic()
        seen: set[str] = set()
        mine: list[tuple[str, dict]] = []
        # oldest first, so that a restarted kernel's newest application ends up its current one
        for app in sorted(self.snapshot.apps.values(), key=lambda a: app_order(a["id"])):
            if "yardlab" not in app.get("tags", []):
                continue
            rec = self.ledger.for_app(app)
            if rec is None:
                continue  # tags alone prove nothing
            if rec["state"] != "ended":
                self.ledger.observe_app(rec, app)
            mine.append((rec["id"], app))
        for kernel_id, app in mine:
            rec = self.ledger.get(kernel_id)
            if rec is None:
                continue
            live = rec["state"] != "ended"
            current = not live or rec.get("app_id") == app["id"]
            if app["state"] in FINAL_STATES:
                if not current or rec["state"] == "restarting":
                    continue  # an earlier application of a restarted kernel: history, not death
                if rec["id"] in eg_ids and live:
                    await self._kernel_lost(rec, app)
                elif live:
                    self.ledger.end(rec["id"], f"yarn-{app['state'].lower()}")
                continue
            if app["state"] not in ACTIVE_STATES:
                continue
            # (a kernel the ledger has ended but EG still runs: shut down while its start was in flight, or EG
            # failed the shutdown; it is an orphan like one EG forgot, outside the user's cap)
            if rec["state"] == "restarting" or (current and live and (rec["id"] in eg_ids or self._launching(rec))):
                self.orphan_since.pop(app["id"], None)
                continue
            # no kernel (or, for a live kernel, an application it no longer runs on) after the grace
            seen.add(app["id"])
            since = self.orphan_since.setdefault(app["id"], now)
            if now - since >= self.grace:
                await self._reap(rec, app, end_kernel=current)
        for app_id in list(self.orphan_since):
            if app_id not in seen:
                self.orphan_since.pop(app_id, None)
        # kernels the ledger thinks alive that EG no longer has and whose app is gone
        for rec in self.ledger.live():
            if rec["id"] not in eg_ids and rec["state"] == "running" and not rec.get("app_id"):
                if now - self.gateway.started_at > self.grace:
                    self.ledger.end(rec["id"], "gone")

    def _launching(self, rec: dict) -> bool:
        """A kernel whose start is still in flight: EG lists it only once its launch returns."""
        return rec["state"] in ("starting", WARMING) and now_wall() - rec["created"] < self.gateway.launch_timeout + self.grace

    async def _reap(self, rec: dict, app: dict, end_kernel: bool = True) -> None:
        try:
            await self.rm.kill(app["id"], as_user=app["user"])
            outcome = "killed"
        except (RMUnavailable, RMError) as e:
            self.log.warning("reaper could not kill %s: %s", app["id"], e)
            outcome = "kill-failed"
        metrics.REAPED.labels(app["state"]).inc()
        self.audit.record("reap", "yardlab-edge", outcome, app=app["id"], owner=app["user"], kernel=rec["id"],
                          app_state=app["state"])
        if end_kernel:
            self.ledger.end(rec["id"], "reaped")
        self.orphan_since.pop(app["id"], None)
        if rec["state"] == "ended" or end_kernel:
            try:  # EG may still list it (the ledger ended it first): let it go there too
                await self.gateway.client.shutdown_kernel(rec["id"], timeout=60)
            except Exception:  # noqa: BLE001 - best effort: the application is killed already
                pass

    async def _kernel_lost(self, rec: dict, app: dict) -> None:
        self.log.warning("kernel %s of %s lost its YARN application %s (%s)", rec["id"], rec["user"], app["id"],
                         app["state"])
        for listener in self.on_dead_kernel:
            listener(rec["id"])
        # ended first: the kernel is gone for its user at once, however long EG takes to shut it
        # down (it asks a kernel that no longer answers to stop, and waits)
        self.ledger.end(rec["id"], f"yarn-{app['state'].lower()}")
        self.audit.record("kernel-dead", "yardlab-edge", "reported", kernel=rec["id"], owner=rec["user"],
                          app=app["id"], app_state=app["state"])
        try:
            await self.gateway.client.shutdown_kernel(rec["id"], timeout=60)
        except Exception:  # noqa: BLE001 - best effort: EG may be gone too
            pass
