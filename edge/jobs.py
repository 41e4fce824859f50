"""Jobs policy: who may see and kill which YARN application, and confirmed kills."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from traitlets import Float, Integer, observe
from traitlets.config import LoggingConfigurable

from . import metrics
from .audit import AuditLog
from .auth import Identity
from .clients.resourcemanager import (
    ALL_STATES,
    FINAL_STATES,
    ResourceManagerClient,
    RMError,
    RMUnavailable,
)
from .clock import monotonic
from .errors import PublicError
from .kills import KillJournal
from .ledger import KernelLedger
from .loops import backoff
from .snapshot import AppSnapshot, decode_cursor
from .warm import WARM, WARM_STATES

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
MAX_LIMIT = 1000
#: the /apps query parameters and the longest value each may have
APPS_ARGS = {"user": 100, "state": 200, "queue": 255, "search": 200, "limit": 10, "cursor": 200}

PUBLIC_FIELDS = ("id", "name", "user", "queue", "state", "finalStatus", "progress", "startedTime",
                 "finishedTime", "elapsedTime", "allocatedMB", "allocatedVCores", "runningContainers",
                 "memorySeconds", "vcoreSeconds", "trackingUrl", "applicationType", "tags", "diagnostics")


@dataclass(frozen=True)
class AppsQuery:
    """One validated /apps request: whose applications, filters and page (the cursor already decoded)."""

    user: str | None  # None: everyone's (admins only)
    states: tuple[str, ...] = ()
    queue: str | None = None
    search: str | None = None
    limit: int = 100
    after: tuple[int, str] | None = None


class PageCache:
    """Serialized /apps pages, keyed by the whole request key (the user first), bounded by bytes.

    The key is compared in full, never through a checksum: two users' requests cannot share an
    entry whatever a caller puts in its filters or cursor.  Least recently used pages go first.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._pages: OrderedDict[tuple, tuple[str, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: tuple) -> tuple[str, bytes] | None:
        """The page's (ETag, body), or None."""
        entry = self._pages.get(key)
        if entry is not None:
            self._pages.move_to_end(key)
        return entry

    def put(self, key: tuple, body: bytes, etag: str = "") -> None:
        if len(body) > self.max_bytes // 4:
            return  # one page may not push out everyone else's
        old = self._pages.pop(key, None)
        if old is not None:
            self.bytes -= len(old[1])
        self._pages[key] = (etag, body)
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._pages.popitem(last=False)
            self.bytes -= len(dropped)


class JobService(LoggingConfigurable):
    """Reads from the shared snapshot and acts on the ResourceManager for one caller at a time."""

    kill_timeout = Float(60.0, help="Seconds a kill waits for YARN to confirm KILLED.").tag(config=True)
    kill_poll = Float(0.5, help="Seconds between the ResourceManager reads that confirm a kill.").tag(config=True)
    page_cache_bytes = Integer(
        64 * 1024**2, help="Bytes of serialized /apps pages kept in memory (least recently used go first).",
    ).tag(config=True)
    unknown_ttl = Float(
        30.0, help="Seconds an application id the ResourceManager does not know is answered 404 without "
                   "asking it again.").tag(config=True)
    credentials_max_lifetime = Float(
        0.0, help="""Seconds a kernel's delegation tokens can be renewed for, from its start: the
        cluster's dfs.namenode.delegation.token.max-lifetime (and the RM's
        yarn.resourcemanager.delegation.token.max-lifetime), 7 days by default.  When set (a
        Kerberized cluster), /apps gives each kernel's `credentialsExpire` and the Lab sidebar says
        when to restart it.  0: not shown (simple authentication has no tokens to expire).""",
    ).tag(config=True)

    def __init__(self, rm: ResourceManagerClient, snapshot: AppSnapshot, audit: AuditLog,
                 ledger: KernelLedger | None = None, waiting: Callable[[dict, dict], str | None] | None = None,
                 journal: KillJournal | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger
        #: kills in flight, kept so the next edge finishes one this edge dies in (None: not kept)
        self.journal = journal
        self.waiting = waiting
        self.spark_ui: Any = None  # the SparkUIProxy, set by the app: /apps links the Spark UI through it
        self.kafka: Any = None  # the KafkaService, set by the app: the capacity line says whether Kafka is up
        # serialized /apps pages: identical while the user's applications, the ledger (kernel
        # links), the cluster view (waiting messages) and the query stay the same
        self.pages = PageCache(self.page_cache_bytes)
        self.rm = rm
        self.snapshot = snapshot
        self.audit = audit
        # ids the RM said it does not know, briefly: a caller repeating one costs the RM nothing
        self._unknown: OrderedDict[str, float] = OrderedDict()

    @observe("page_cache_bytes")
    def _page_cache_bytes_changed(self, change: dict) -> None:
        if hasattr(self, "pages"):
            self.pages = PageCache(change["new"])

    # -- /apps -------------------------------------------------------------------------------------
    def apps_query(self, who: Identity, args: dict[str, str | None]) -> AppsQuery:
        """One /apps request checked whole (the cursor decoded) before anything is looked up: a 400
        naming the parameter for a bad value, 403 for a non-admin asking for another user's."""
        scope = args.get("user")
        if scope in (None, "", who.name):
            user: str | None = who.name
        elif not who.admin:
            raise PublicError(403, "only yardlab admins may list other users' applications")
        elif scope in ("*", "all"):
            user = None
        elif USER_NAME.fullmatch(scope):
            user = scope
        else:
            raise PublicError(400, "`user` must be a user name, or * for everyone")
        states: set[str] = set()
        if args.get("state"):
            states = {s.strip().upper() for s in args["state"].split(",") if s.strip()}
            unknown = states - set(ALL_STATES)
            if unknown:
                raise PublicError(400, f"unknown state {sorted(unknown)[0][:30]!r}; use {', '.join(ALL_STATES)}")
        queue = args.get("queue")
        if queue and not QUEUE_NAME.fullmatch(queue):
            raise PublicError(400, "`queue` must be a queue name such as default or root.interactive")
        try:
            limit = int(args["limit"]) if args.get("limit") else 100
        except ValueError as e:
            raise PublicError(400, "`limit` must be a whole number") from e
        if not 1 <= limit <= MAX_LIMIT:
            raise PublicError(400, f"`limit` must be between 1 and {MAX_LIMIT}")
        cursor = args.get("cursor")
        return AppsQuery(user=user, states=tuple(sorted(states)), queue=queue or None,
                         search=args.get("search") or None, limit=limit,
                         after=decode_cursor(cursor) if cursor else None)

    def public_app(self, app: dict) -> dict:
        out = {k: app.get(k) for k in PUBLIC_FIELDS}
        rec = self.ledger.for_app(app) if self.ledger else None
        out["kernel"] = rec["id"] if rec else None
        out["notebook"] = rec["notebook"] if rec else None
        out["session"] = rec.get("session") if rec else None
        out["environment"] = rec["environment"] if rec else None
        out["waiting"] = self.waiting(rec, app) if rec and self.waiting else None
        # a kernel the edge keeps ready for its user's next notebook (edge/warm.py)
        out["warm"] = bool(rec and rec.get("state") in WARM_STATES)
        out["warmReady"] = bool(rec and rec.get("state") == WARM)
        started = app.get("startedTime") or 0
        out["credentialsExpire"] = (int(started + self.credentials_max_lifetime * 1000)
                                    if rec and started > 0 and self.credentials_max_lifetime > 0 else None)
        out["sparkUi"], out["sparkUiNote"] = self.spark_ui_link(app)
        return out

    def spark_ui_link(self, app: dict) -> tuple[str | None, str | None]:
        """The Spark UI through the edge (never the RM's own address, which a browser outside the
        cluster cannot reach), or a sentence saying why there is none."""
        if self.spark_ui is None or (app.get("applicationType") or "").upper() != "SPARK":
            return None, None
        state = app.get("state") or ""
        if state == "RUNNING":
            return self.spark_ui.url_for(app["id"]), None
        if state in FINAL_STATES:
            history = self.spark_ui.history_for(app["id"])
            if history:
                return history, "in the Spark history server"
            return None, "the Spark UI ended with the application"
        return None, "the Spark UI starts with the driver"

    def page_key(self, q: AppsQuery) -> tuple:
        """Everything an /apps page depends on, the user first."""
        return (q.user, self.snapshot.scope_generation(q.user), self.ledger.generation if self.ledger else 0,
                self.snapshot.cluster_generation, q.states, q.queue, q.search, q.limit, q.after)

    def apps_answer(self, q: AppsQuery) -> tuple[str, bytes]:
        """The ETag and serialized page for ``q``: from the cache (the hot path: one tuple lookup), or
        built from the snapshot and kept with its ETag."""
        key = self.page_key(q)
        hit = self.pages.get(key)
        if hit is not None:
            return hit
        etag = self.snapshot.etag(q.user, json.dumps(key[2:]))
        page, next_cursor = self.snapshot.query(q.user, q.states, q.queue, q.search, q.limit, after=q.after)
        body = json.dumps({"apps": [self.public_app(a) for a in page], "next_cursor": next_cursor,
                           "user": q.user or "*"}, separators=(",", ":")).encode()
        self.pages.put(key, body, etag)
        return etag, body

    def cluster_view(self, who: Identity) -> dict:
        """Capacity, use, apps by state and queues for everyone (the sidebar's capacity line and the
        reason a job waits); the node list (host names, health reports) for admins only."""
        snap = self.snapshot
        view = {**snap.cluster, "appsByState": snap.counts_by_state(), "snapshotAge": round(snap.age or 0.0, 3)}
        kafka = self.kafka.view() if self.kafka is not None else None
        if kafka is not None:
            view["kafka"] = kafka
        if not who.admin and isinstance(view.get("nodes"), dict):
            view["nodes"] = {k: v for k, v in view["nodes"].items() if k != "list"}
        return view

    def cluster_etag(self, who: Identity) -> str:
        kafka = self.kafka.etag_part() if self.kafka is not None else ""
        return self.snapshot.cluster_etag() + ("-admin" if who.admin else "-user") + kafka

    async def app_for(self, who: Identity, app_id: str) -> dict:
        """One application the caller may see: their own, or any for an admin."""
        app = self.snapshot.apps.get(app_id)
        if app is None:
            app = await self._read_from_rm(app_id)
        if app["user"] != who.name and not who.admin:
            raise PublicError(403, f"{app_id} belongs to another user", reason="Forbidden")
        return app

    async def _read_from_rm(self, app_id: str) -> dict:
        expires = self._unknown.get(app_id)
        if expires is not None and expires > monotonic():
            raise PublicError(404, f"YARN has no application {app_id}", reason="Not Found")
        try:
            raw = await self.rm.app(app_id)
        except RMError as e:
            if e.status == 404:
                self._unknown[app_id] = monotonic() + self.unknown_ttl
                self._unknown.move_to_end(app_id)
                while len(self._unknown) > 10_000:
                    self._unknown.popitem(last=False)
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
        # noted before YARN is asked: an edge that dies from here on leaves the kill to the next one
        note = self.journal.begin(app_id, who.name, who.admin, actor_kind, owner) if self.journal else None
        try:
            state = await self._kill_confirmed(app_id, owner)
        except KillFailed as e:
            self._record(who, app_id, owner, actor_kind, e.outcome)
            self._journal_done(note)
            raise e.error from e.__cause__
        final = await self._final(app, state)
        self._record(who, app_id, owner, actor_kind, "killed" if state == "KILLED" else f"ended-{state.lower()}")
        self._journal_done(note)
        return {"id": app_id, "user": owner, "state": final["state"], "finalStatus": final.get("finalStatus"),
                "killed": state == "KILLED", "killedBy": who.name}

    async def _kill_confirmed(self, app_id: str, owner: str) -> str:
        """Ask YARN to kill ``app_id`` as ``owner`` and wait for its final state; KillFailed (with the audit
        outcome and what the caller is told) when YARN cannot be asked, refuses, or never confirms."""
        try:
            await self.rm.kill(app_id, as_user=owner)
        except RMUnavailable as e:
            raise KillFailed("rm-unavailable", PublicError(503, f"the YARN ResourceManager is unreachable: {e}")) from e
        except RMError as e:
            raise KillFailed("refused", PublicError(502, f"the ResourceManager refused the kill: {e.message}")) from e
        deadline = monotonic() + self.kill_timeout
        while True:
            try:
                state = await self.rm.app_state(app_id)
            except (RMUnavailable, RMError) as e:
                self.log.warning("kill of %s: state check failed: %s", app_id, e)
                state = ""
            if state in FINAL_STATES:
                return state
            if monotonic() > deadline:
                raise KillFailed("timeout", PublicError(
                    504, f"asked YARN to kill {app_id}, but after {self.kill_timeout:.0f} s it still reports "
                         f"{state or 'no state'}", reason="Gateway Timeout"))
            await asyncio.sleep(self.kill_poll)

    async def _final(self, app: dict, state: str) -> dict:
        """The application as YARN has it after the kill (into the snapshot), else ``app`` in ``state``."""
        try:
            return self.snapshot.update_app(await self.rm.app(app["id"]))
        except (RMUnavailable, RMError):
            return {**app, "state": state}

    def _journal_done(self, note: dict | None) -> None:
        if note is not None and self.journal is not None:
            self.journal.finish(note)

    async def resume_kills(self) -> None:
        """Finish the kills an earlier edge accepted and did not see through (it died meanwhile), each audited
        once; a ResourceManager that cannot be reached is asked again (capped backoff) until every one is done."""
        if self.journal is None:
            return
        delay = 1.0
        while True:
            left = 0
            for note in self.journal.unfinished():
                try:
                    await self._resume_kill(note)
                except (RMUnavailable, RMError) as e:
                    left += 1
                    self.log.warning("kill of %s (asked by %s before a restart) waits for the ResourceManager: %s",
                                     note["app_id"], note["actor"], e)
            if not left:
                return
            await asyncio.sleep(delay)
            delay = backoff(delay, 30.0)

    async def _resume_kill(self, note: dict) -> None:
        """One kill an earlier edge was cut off in: done again if the application still runs, then audited."""
        app_id, owner = note["app_id"], note["owner"]
        who = Identity(name=note["actor"], admin=bool(note["actor_admin"]))
        try:
            state = await self.rm.app_state(app_id)
        except RMError as e:
            if e.status != 404:
                raise  # asked again later
            # YARN no longer knows it (an RM that lost its state store): nothing is left to kill
            self.log.warning("kill of %s (asked before a restart): the ResourceManager answers %s", app_id, e)
            self._record(who, app_id, owner, note["actor_kind"], "gone", resumed=True)
            self.journal.finish(note)
            return
        if state not in FINAL_STATES:
            self.log.info("finishing the kill of %s that %s asked for before the edge restarted", app_id, who.name)
            try:
                state = await self._kill_confirmed(app_id, owner)
            except KillFailed as e:
                if isinstance(e.__cause__, RMUnavailable):
                    raise e.__cause__ from None  # not an outcome: asked again later
                self._record(who, app_id, owner, note["actor_kind"], e.outcome, resumed=True)
                self.journal.finish(note)
                return
        with contextlib.suppress(RMUnavailable, RMError):
            self.snapshot.update_app(await self.rm.app(app_id))
        outcome = "killed" if state == "KILLED" else f"ended-{state.lower()}"
        self._record(who, app_id, owner, note["actor_kind"], outcome, resumed=True)
        self.journal.finish(note)

    def _record(self, who: Identity, app_id: str, owner: str, actor_kind: str, outcome: str,
                resumed: bool = False) -> None:
        """Audit one kill (``resumed``: finished by the edge after the one that accepted it died)."""
        metrics.KILLS.labels(actor_kind, outcome).inc()
        # refusals are rate-limited per actor: a loop of forbidden kills must not fill the disk
        write = self.audit.refusal if outcome in ("denied", "already-finished") else self.audit.record
        extra = {"resumed": True} if resumed else {}
        write("kill", who.name, outcome, app=app_id, owner=owner, actor_kind=actor_kind, actor_admin=who.admin,
              **extra)


class KillFailed(Exception):
    """A kill YARN did not carry out: the audit outcome and the error the caller gets."""

    def __init__(self, outcome: str, error: PublicError) -> None:
        super().__init__(error.message)
        self.outcome = outcome
        self.error = error
