"""Warm kernels: for each user with a Lab server running, a few kernels already started as that user.

``--proxy-user`` is fixed when a kernel is submitted, so kernels cannot be pooled across users: the
pool is per user and per kernelspec.  A warm kernel is an ordinary kernel of its user (the ledger
holds it, it counts in the user's cap, YARN runs it as the user with the user's tags), started by
the edge with nothing but the user's name, while nobody is connected to it.  The next kernel start
of that user for that kernelspec gets it at once (:meth:`KernelService.take_warm`), and a new one
is started behind it.  A warm kernel is handed out once: until then nobody may connect to it, run
code in it or restart it, so it carries nothing from a previous notebook.

The pool gives warm kernels back (shuts them down) when

* they have waited longer than their idle time (``warm-expired``);
* their user's Lab server stopped, or the rules no longer ask for them (``warm-released``);
* anyone else's application waits in ACCEPTED in their queue, or their own start cannot get into
  the queue (``warm-given-back``): a warm kernel never makes anyone wait;
* the user starts another kernel while at their cap (the warm one makes room).

Rules come from the edge's config (:attr:`WarmPool.kernelspecs`, :attr:`WarmPool.groups`); users with a
Lab server running come from the hub's ``GET /users?state=active`` (the edge's token needs
``list:users`` and ``read:users:groups``, which the ACL reconciliation already has).
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Dict, Float, Integer, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from .auth import Identity, TokenIdentifier, hub_list
from .clients.resourcemanager import FINAL_STATES
from .clock import now as now_wall
from .errors import PublicError
from .loops import PeriodicTask
from .snapshot import queue_matches

if TYPE_CHECKING:
    from .kernels import KernelService

#: ledger states of pool kernels: being started, and ready for the user's next kernel start
WARMING, WARM = "warming", "warm"
WARM_STATES = (WARMING, WARM)
RULE_KEYS = {"count", "idle_seconds"}
MAX_COUNT = 4


def check_rule(where: str, rule: Any) -> dict:
    """One pool rule ({"count": n, "idle_seconds": s}); a sentence naming ``where`` when it is wrong."""
    if not isinstance(rule, dict) or not set(rule) <= RULE_KEYS:
        raise TraitError(f"{where} must be a dict with `count` and optionally `idle_seconds`, not {rule!r}")
    if "count" not in rule:
        raise TraitError(f"{where} needs `count` (0 turns it off)")
    count = rule["count"]
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise TraitError(f"{where}: `count` must be a whole number from 0 (off) to {MAX_COUNT}, not {count!r}")
    idle = rule.get("idle_seconds", 600)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 10 <= idle <= 7 * 86400:
        raise TraitError(f"{where}: `idle_seconds` must be between 10 and 604800, not {idle!r}")
    return {"count": count, "idle_seconds": float(idle)}


class WarmPool(LoggingConfigurable):
    """Keeps each active user's warm kernels: starts, hands out (through the kernel service), expires."""

    kernelspecs = Dict(
        {"yardlab_pyspark": {"count": 1, "idle_seconds": 600}},
        help="Warm kernels per kernelspec for every user with a Lab server running: "
             "{kernelspec: {'count': n (0: off), 'idle_seconds': s}}. {} turns the pool off.",
    ).tag(config=True)
    groups = Dict(
        {},
        help="Rules per hub group, replacing the site-wide rule of a kernelspec for the group's members: "
             "{group: {kernelspec: {'count': n, 'idle_seconds': s}}} (count 0: no warm kernels for them). "
             "A user in several groups with rules for a kernelspec gets the largest count and idle time among them.",
    ).tag(config=True)
    interval = Float(5.0, help="Seconds between pool rounds.").tag(config=True)
    hub_interval = Float(15.0, help="Seconds between readings of which users have a Lab server running.").tag(
        config=True)
    max_starting = Integer(1, help="Warm kernels the edge starts at once, for all users together.").tag(config=True)
    pressure_after = Float(5.0, help="Seconds another application must have waited in ACCEPTED before the warm "
                                     "kernels of its queue are given back (every start passes through ACCEPTED "
                                     "briefly).").tag(config=True)
    warm_up_code = Unicode(
        "try:\n    spark.range(1).count()\n    sc.parallelize(range(1), 1).count()\nexcept NameError:\n    pass",
        help="Code a warm kernel runs silently before it is offered (no history, no outputs), so that the first "
             "Spark action of the notebook it goes to is fast (kernels without `spark` and `sc`, plain Python, skip "
             "it). Empty: none. A warm-up that fails or runs past 180 s gives the kernel back.",
    ).tag(config=True)
    retry_after = Float(120.0, help="Seconds before a warm start that failed is tried again for that user "
                                    "and kernelspec.").tag(config=True)

    @validate("kernelspecs")
    def _check_kernelspecs(self, proposal: dict) -> dict:
        return {str(name): check_rule(f"WarmPool.kernelspecs[{name!r}]", rule)
                for name, rule in proposal["value"].items()}

    @validate("groups")
    def _check_groups(self, proposal: dict) -> dict:
        out = {}
        for group, specs in proposal["value"].items():
            if not isinstance(specs, dict):
                raise TraitError(f"WarmPool.groups[{group!r}] must map kernelspec names to rules")
            out[str(group)] = {str(name): check_rule(f"WarmPool.groups[{group!r}][{name!r}]", rule)
                               for name, rule in specs.items()}
        return out

    def __init__(self, kernels: KernelService, identifier: TokenIdentifier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernels = kernels
        self.identifier = identifier
        self.http = AsyncHTTPClient()
        #: users with a Lab server running, with their groups (None: not known yet)
        self.active: dict[str, tuple[str, ...]] | None = None
        self.active_read = 0.0
        self.hub_error: str | None = None
        self.starting: dict[tuple[str, str], asyncio.Task] = {}
        self.warming_up: dict[str, asyncio.Task] = {}
        #: when each warm kernel was first offered (its idle time counts from there; after an edge restart,
        #: from its creation)
        self.ready_at: dict[str, float] = {}
        self.failed: dict[tuple[str, str], tuple[float, str]] = {}
        kernels.on_warm_ended.append(lambda kernel_id: self.ready_at.pop(kernel_id, None))
        kernels.on_warm_taken.append(self.kick)
        self.counts = {"started": 0, "handed_out": 0, "expired": 0, "released": 0, "given_back": 0, "failed": 0}
        self._loop: PeriodicTask | None = None

    # -- rules ------------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return any(r["count"] for r in self.kernelspecs.values()) or any(
            r["count"] for specs in self.groups.values() for r in specs.values())

    def rules_for(self, groups: tuple[str, ...] | list[str]) -> dict[str, dict]:
        """{kernelspec: rule} for a user in ``groups`` (rules with count 0 left out)."""
        rules = dict(self.kernelspecs)
        from_groups: dict[str, dict] = {}
        for group in groups:
            for name, rule in self.groups.get(group, {}).items():
                had = from_groups.get(name)
                from_groups[name] = rule if had is None else {
                    "count": max(had["count"], rule["count"]),
                    "idle_seconds": max(had["idle_seconds"], rule["idle_seconds"])}
        rules.update(from_groups)
        return {name: rule for name, rule in rules.items() if rule["count"] > 0}

    # -- the hub: who has a Lab server running ---------------------------------------------------------------
    async def read_active(self) -> dict[str, tuple[str, ...]] | None:
        """{user: groups} of users with a server running, from the hub; None when it cannot say."""
        try:
            users = await hub_list(self.http, self.identifier, "/users", timeout=20, state="active")
        except (HTTPClientError, OSError, ValueError, TypeError, KeyError, AttributeError,
                asyncio.TimeoutError) as e:
            self.hub_error = f"could not ask the hub which users have a Lab server running: {e}"
            self.log.warning("warm pool: %s", self.hub_error)
            return None
        self.hub_error = None
        # hub users named like a Hadoop service account are refused by every handler (TokenIdentifier): the
        # pool never acts as them either
        return {u["name"]: tuple(g for g in (u.get("groups") or ()) if isinstance(g, str)) for u in users
                if isinstance(u, dict) and isinstance(u.get("name"), str) and not self.identifier.is_reserved(u["name"])}

    # -- the loop ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = PeriodicTask(self.round, self.interval, name="warm kernel pool round", log=self.log)
        self._loop.start()

    async def stop(self) -> None:
        """Stop the rounds; warm kernels stay (the next edge finds them in the ledger and in EG)."""
        if self._loop is not None:
            await self._loop.stop()
        for task in [*self.starting.values(), *self.warming_up.values()]:
            task.cancel()

    def warm_records(self) -> list[dict]:
        return [r for r in self.kernels.ledger.live() if r["state"] in WARM_STATES]

    async def round(self) -> None:
        if time.monotonic() - self.active_read >= self.hub_interval or self.active is None:
            active = await self.read_active()
            if active is not None:
                self.active, self.active_read = active, time.monotonic()
        eg_ids = await self.kernels.client.kernel_ids()
        if eg_ids is None:
            return  # EG cannot say which kernels exist: neither start nor judge
        await self.give_back(eg_ids)
        # the hub unreachable for a while: who still has a Lab server is not known; keep giving back, start nothing
        fresh = time.monotonic() - self.active_read <= 3 * self.hub_interval + self.interval
        if self.enabled and self.active is not None and fresh:
            self.fill()

    def stuck(self, app: dict) -> bool:
        """Whether ``app`` waits for room: ACCEPTED without even its ApplicationMaster's container for
        ``pressure_after`` seconds.  (Every Spark application is ACCEPTED until its driver registers,
        several seconds after its container runs; that is starting, not waiting.)"""
        since = (now_wall() - self.pressure_after) * 1000
        return (app.get("state") == "ACCEPTED" and not app.get("runningContainers")
                and 0 < (app.get("startedTime") or 0) <= since)

    def pressure(self) -> dict[str, str]:
        """Queues where someone else's application waits for room: {queue path: that app's id}."""
        waiting: dict[str, str] = {}
        warm_ids = {r["id"] for r in self.warm_records()}
        for app in self.kernels.snapshot.apps.values():
            if app.get("name") not in warm_ids and self.stuck(app):
                waiting.setdefault(app.get("queue") or "", app.get("id", ""))
        return waiting

    async def give_back(self, eg_ids: set[str]) -> None:
        """Settle every pool kernel: promote started ones (after their warm-up), give back what is not wanted
        or makes others wait, and forget what failed.  Nothing here awaits: shutdowns run behind."""
        now = now_wall()
        waiting = self.pressure()
        rooms_needed = {q for q in waiting if q}
        for rec in sorted(self.warm_records(), key=lambda r: r["created"]):
            rec = self.kernels.ledger.get(rec["id"]) or rec  # as it is now
            if rec["state"] not in WARM_STATES:
                continue  # handed out (or ended) meanwhile
            app = self.kernels.app_of(rec)
            rule = None
            if self.active is not None and rec["user"] in self.active:
                rule = self.rules_for(self.active[rec["user"]]).get(rec["kernelspec"])
            reason = None
            if self.active is not None and rule is None:
                reason = "warm-released"  # the user's Lab server stopped, or the rules no longer ask for it
            elif app is not None and self.stuck(app):
                reason = "warm-given-back"  # it waits in the queue itself
            elif any(queue_matches(q, rec["queue"]) for q in rooms_needed):
                reason = "warm-given-back"  # someone waits in its queue
            elif rec["state"] == WARMING:
                key = (rec["user"], rec["kernelspec"])
                if key in self.starting or rec["id"] in self.warming_up:
                    continue
                if rec["id"] in eg_ids and app is not None and app.get("state") == "RUNNING":
                    # started and its driver runs: warm it up, then it is offered
                    self.warming_up[rec["id"]] = asyncio.ensure_future(self._warm_up(rec))
                    continue
                if (app is not None and app.get("state") in FINAL_STATES) or (
                        now - rec["created"] > self.kernels.gateway.launch_timeout + 300):
                    reason = "warm-lost"  # its start failed, or never finished (or the edge lost it)
            elif rec["id"] not in eg_ids:
                reason = "warm-lost"  # EG forgot it; the reaper ends its application
            elif now - self.ready_at.get(rec["id"], rec["created"]) > (rule or {}).get("idle_seconds", 600):
                reason = "warm-expired"
            elif rule is not None:
                mine = sorted((r for r in self.warm_records() if r["user"] == rec["user"]
                               and r["kernelspec"] == rec["kernelspec"]), key=lambda r: r["created"])
                if len(mine) > rule["count"] and rec["id"] == mine[0]["id"]:
                    reason = "warm-released"  # more than the rule asks for now: the oldest goes
            if reason:
                self.release(rec, reason)
        # someone waits in a queue that held no warm kernel: the cluster may be what is full (queues lend
        # their room up to their maximum): give back the oldest warm kernel, one a round, while it lasts
        if waiting and not any(queue_matches(q, r["queue"]) for q in rooms_needed for r in self.warm_records()):
            rest = sorted(self.warm_records(), key=lambda r: r["created"])
            if rest:
                self.release(rest[0], "warm-given-back")

    async def _warm_up(self, rec: dict) -> None:
        key = (rec["user"], rec["kernelspec"])
        try:
            status = await self.kernels.warm_up(rec["id"], self.warm_up_code) if self.warm_up_code else "ok"
        except Exception as e:  # noqa: BLE001 - the pool must survive anything one warm-up does
            self.log.exception("warm pool: warming up %s failed", rec["id"])
            status = f"failed: {e!r}"
        finally:
            self.warming_up.pop(rec["id"], None)
        now_rec = self.kernels.ledger.get(rec["id"])
        if now_rec is None or now_rec["state"] != WARMING:
            return  # given back meanwhile
        if status != "ok":
            # a kernel whose warm-up failed or still runs is not offered: a notebook would wait behind it
            self.counts["failed"] += 1
            self.failed[key] = (time.monotonic(), f"the warm-up gave {status}")
            self.log.warning("warm pool: the warm-up of %s's kernel %s gave %s; given back", rec["user"], rec["id"],
                             status)
            self.release(now_rec, "warm-up-failed")
            return
        self.ready_at[rec["id"]] = now_wall()
        self.kernels.ledger.update(rec["id"], state=WARM)

    def release(self, rec: dict, reason: str) -> None:
        self.ready_at.pop(rec["id"], None)
        key = {"warm-expired": "expired", "warm-given-back": "given_back"}.get(reason, "released")
        if reason not in ("warm-lost", "warm-up-failed"):
            self.counts[key] += 1
        self.kernels.give_back_warm(rec, reason)

    def fill(self) -> None:
        """Start what is missing, one kernel at a time per user and kernelspec, ``max_starting`` in all; users
        with the fewest warm kernels first.  Nothing starts while anyone waits for room in YARN."""
        assert self.active is not None
        if self.pressure():
            return
        have: dict[tuple[str, str], int] = {}
        per_user: dict[str, int] = {}
        for rec in self.warm_records():
            have[(rec["user"], rec["kernelspec"])] = have.get((rec["user"], rec["kernelspec"]), 0) + 1
            per_user[rec["user"]] = per_user.get(rec["user"], 0) + 1
        now = time.monotonic()
        for user in sorted(self.active, key=lambda u: (per_user.get(u, 0), u)):
            for spec_name, rule in sorted(self.rules_for(self.active[user]).items()):
                key = (user, spec_name)
                if len(self.starting) >= self.max_starting:
                    return
                if key in self.starting or have.get(key, 0) >= rule["count"]:
                    continue
                failed = self.failed.get(key)
                if failed and now - failed[0] < self.retry_after:
                    continue
                who = Identity(name=user, admin=False, groups=self.active[user])
                self.starting[key] = asyncio.ensure_future(self._start(key, who))

    async def _start(self, key: tuple[str, str], who: Identity) -> None:
        try:
            rec = await self.kernels.start_warm(who, key[1], self.pressure())
            if rec is not None:
                self.counts["started"] += 1
                self.failed.pop(key, None)
        except PublicError as e:
            if e.status in (409, 429):
                # no room now, someone waits, or the user is at their cap: tried again next round
                self.log.debug("warm pool: no warm %s kernel for %s now: %s", key[1], key[0], e.message)
            else:
                self.counts["failed"] += 1
                self.failed[key] = (time.monotonic(), e.message)
                self.log.info("warm pool: no warm %s kernel for %s: %s", key[1], key[0], e.message)
        except Exception as e:  # noqa: BLE001 - the pool must survive anything one start does
            self.counts["failed"] += 1
            self.failed[key] = (time.monotonic(), str(e))
            self.log.exception("warm pool: starting a %s kernel for %s failed", key[1], key[0])
        finally:
            self.starting.pop(key, None)

    def kick(self) -> None:
        """A warm kernel was handed out: count it, and start its successor now rather than at the next round."""
        self.counts["handed_out"] += 1
        if self.enabled and self.active is not None and self._loop is not None:
            self.fill()

    # -- what admins see ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        now = now_wall()
        kernels = []
        for rec in sorted(self.warm_records(), key=lambda r: (r["user"], r["kernelspec"], r["created"])):
            rule = self.rules_for((self.active or {}).get(rec["user"], ())).get(rec["kernelspec"])
            idle = (rule or {}).get("idle_seconds", 600)
            kernels.append({"id": rec["id"], "user": rec["user"], "kernelspec": rec["kernelspec"], "state": rec["state"],
                            "app": rec.get("app_id"), "queue": rec["queue"], "needMB": rec["need_mb"],
                            "age": round(now - rec["created"], 1),
                            "expiresIn": round(max(0.0, self.ready_at.get(rec["id"], rec["created"]) + idle - now), 1)
                            if rec["state"] == WARM else None})
        return {
            "enabled": self.enabled,
            "rules": {"kernelspecs": self.kernelspecs, "groups": self.groups},
            "activeUsers": None if self.active is None else len(self.active),
            "hubError": self.hub_error,
            "kernels": kernels,
            "warmMB": sum(k["needMB"] for k in kernels),
            "counts": dict(self.counts),
            "failures": [{"user": u, "kernelspec": s, "message": m}
                         for (u, s), (_t, m) in sorted(self.failed.items())],
        }
