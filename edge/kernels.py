"""Kernels through the edge: Enterprise Gateway supervised on loopback, and the policy in front of it.

Enterprise Gateway trusts whatever KERNEL_USERNAME a client sends and forgets YARN applications
when it dies.  The edge therefore runs EG itself (its own virtualenv, loopback, a random token,
restarted with backoff when it dies, adopted again after an edge restart so no kernel dies with
the edge), and every request reaches it through :class:`KernelService`, which sets the user from
the hub token, passes other KERNEL_* variables only from an allow-list, lets users reach only
their own kernels, caps kernels per user and checks the queue before a launch.  The service calls
EG only through the supervisor's :class:`~.clients.gateway.GatewayClient`, and turns that client's
errors into public ones in one place (:func:`public_error`).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from typing import Any, Awaitable, Callable, TypeVar

from tornado.websocket import WebSocketClientConnection
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from . import metrics
from .audit import AuditLog
from .auth import Identity
from .clients.gateway import GatewayClient, GatewayError, GatewayUnavailable, Reply
from .clients.resourcemanager import RMError, RMUnavailable
from .clock import monotonic
from .errors import PublicError
from .kernelspecs import read_spark_properties, requested_resources, yardlab_metadata
from .ledger import KernelLedger
from .snapshot import AppSnapshot, queue_matches
from .supervisor import GatewaySupervisor
from .warm import WARM, WARM_STATES, WARMING

STARTING, RUNNING = "starting", "running"

#: the session types a Lab server reports (jupyter_server's session model `type`)
SESSION_TYPES = ("notebook", "console", "file")
KERNEL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
GATEWAY_ERRORS = (GatewayUnavailable, GatewayError)
T = TypeVar("T")


def public_error(e: GatewayUnavailable | GatewayError, failed: str = "the kernel gateway failed",
                 theirs: bool = False) -> PublicError:
    """What a user is told when EG fails: 503 while it cannot answer; 502 for an answer that is not what
    was asked, or EG's own 4xx when ``theirs`` (the answer is about the caller's request)."""
    if isinstance(e, GatewayUnavailable):
        return PublicError(503, e.message, reason="Service Unavailable")
    status = e.status if theirs and 400 <= e.status < 500 else 502
    return PublicError(status, f"{failed}: {e.reason[:500]}")


class KernelService(LoggingConfigurable):
    """The policy between users and Enterprise Gateway."""

    ALLOWED_ENV = {"KERNEL_WORKING_DIR", "KERNEL_LAUNCH_TIMEOUT"}

    max_kernels_per_user = Integer(4, help="Kernels one user may have running or starting at once.").tag(config=True)
    min_allocation_mb = Integer(
        256, help="YARN's yarn.scheduler.minimum-allocation-mb: containers are granted in multiples of it, "
                  "which is what a kernel's need is counted in before a launch.").tag(config=True)
    kernels_dir = Unicode(
        help="Folder of the kernelspecs EG serves (read for each kernel's Spark resources before a launch; "
             "environments write their kernelspecs here).",
    ).tag(config=True)

    def __init__(self, gateway: GatewaySupervisor, ledger: KernelLedger, snapshot: AppSnapshot, audit: AuditLog,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gateway = gateway
        self.ledger = ledger
        self.snapshot = snapshot
        self.audit = audit
        #: called when a warm kernel was handed out (the pool starts its successor), and with the id of a warm
        #: kernel that was handed out or given back
        self.on_warm_taken: list[Callable[[], None]] = []
        self.on_warm_ended: list[Callable[[str], None]] = []

    @property
    def client(self) -> GatewayClient:
        return self.gateway.client

    async def _eg(self, call: Awaitable[T], failed: str = "the kernel gateway failed") -> T:
        """One call to EG, its errors turned into public ones."""
        try:
            return await call
        except GATEWAY_ERRORS as e:
            raise public_error(e, failed) from e

    async def version(self) -> Reply:
        """EG's version information, as EG gives it."""
        return await self._eg(self.client.version())

    # -- kernelspecs ----------------------------------------------------------------------------------
    @staticmethod
    def may_use_spec(who: Identity, spec: dict) -> bool:
        meta = ((spec.get("spec") or {}).get("metadata") or {}).get("yardlab")
        if not isinstance(meta, dict):
            return False  # only specs yardlab wrote are offered
        visibility = meta.get("visibility", "builtin")
        return visibility in ("builtin", "shared") or meta.get("owner") == who.name

    async def kernelspecs(self, who: Identity) -> dict:
        data = await self._eg(self.client.kernelspecs(), "the kernel gateway could not list kernelspecs")
        specs = {n: s for n, s in (data.get("kernelspecs") or {}).items() if self.may_use_spec(who, s)}
        default_name = data.get("default") if data.get("default") in specs else next(iter(sorted(specs)), "")
        return {"default": default_name, "kernelspecs": specs}

    async def kernelspec(self, who: Identity, name: str) -> dict:
        if not SPEC_NAME.fullmatch(name):
            raise PublicError(400, "that is not a kernelspec name")
        specs = (await self.kernelspecs(who))["kernelspecs"]
        if name not in specs:
            raise PublicError(404, f"no kernelspec {name!r} you may use", reason="Not Found")
        return specs[name]

    async def kernelspec_resource(self, who: Identity, name: str, resource: str) -> None:
        """A kernelspec's logo or the like: the edge serves none (404), once the spec is one the user may use."""
        await self.kernelspec(who, name)
        raise PublicError(404, f"kernelspec {name} has no resource {resource[:50]!r}", reason="Not Found")

    # -- kernels -------------------------------------------------------------------------------------------
    def check_kernel(self, who: Identity, kernel_id: str, admin_ok: bool = False, warm_ok: bool = False) -> dict:
        """The ledger record of a live kernel ``who`` may act on.  A warm kernel (kept ready for its user's
        next kernel start) may only be shut down: nobody connects to it, runs code in it or restarts it
        before a kernel start hands it out, so it never carries anything from before."""
        if not KERNEL_ID.fullmatch(kernel_id):
            raise PublicError(400, "that is not a kernel id")
        rec = self.ledger.get(kernel_id)
        if rec is None or rec["state"] == "ended":
            raise PublicError(404, f"no kernel {kernel_id}", reason="Not Found")
        if rec["user"] != who.name and not (admin_ok and who.admin):
            raise PublicError(403, "that kernel belongs to another user", reason="Forbidden")
        if rec["state"] in WARM_STATES and not warm_ok:
            raise PublicError(409, f"kernel {kernel_id} is a warm kernel, kept ready for your next notebook: start "
                                   "a kernel to get it (it is handed out once, with nothing run in it)",
                              reason="Conflict")
        return rec

    def set_session(self, who: Identity, kernel_id: str, body: Any) -> dict:
        """What one's own kernel serves, as one's Lab server reports its session: the notebook (or
        file) path, or a console.  The jobs list then names the notebook, not its folder."""
        rec = self.check_kernel(who, kernel_id)
        if not isinstance(body, dict):
            raise PublicError(400, 'send {"type": "notebook", "path": "work/analysis.ipynb"}')
        kind, path = body.get("type"), body.get("path")
        if kind not in SESSION_TYPES:
            raise PublicError(400, f"`type` must be one of {', '.join(SESSION_TYPES)}")
        if kind == "console":
            path = None  # a console's session path is a made-up name, not a file
        else:
            if not isinstance(path, str) or not path.strip():
                raise PublicError(400, f"a {kind} session needs its `path`")
            if len(path) > 1024 or any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
                raise PublicError(400, "`path` must be at most 1024 characters, without control characters")
            if path.startswith("/") or ".." in path.replace("\\", "/").split("/"):
                raise PublicError(400, "`path` is relative to the Lab server's root, without `..`")
        if (rec.get("session"), rec.get("notebook")) != (kind, path):  # a repeat changes nothing
            self.ledger.update(kernel_id, session=kind, notebook=path)
        return {"id": kernel_id, "type": kind, "path": path}

    async def list_kernels(self, who: Identity) -> list[dict]:
        data = await self._eg(self.client.kernels(), "the kernel gateway could not list kernels")
        out = []
        for k in data:
            rec = self.ledger.get(k.get("id", ""))
            # a kernel the edge has ended (dead, shut down) is not listed while EG finishes with it
            if rec and rec["state"] not in ("ended", *WARM_STATES) and (rec["user"] == who.name or who.admin):
                out.append(k)
        return out

    async def kernel(self, who: Identity, kernel_id: str) -> Reply:
        """EG's model of one kernel: the owner's (admins: any)."""
        self.check_kernel(who, kernel_id, admin_ok=True)
        return await self._eg(self.client.kernel(kernel_id))

    async def kernel_action(self, who: Identity, kernel_id: str, action: str) -> Reply:
        """Restart or interrupt one's own kernel; EG's answer."""
        if action == "restart":
            return await self.restart_kernel(who, kernel_id)
        if action != "interrupt":
            raise PublicError(404, f"kernels have no action {action[:30]!r}", reason="Not Found")
        self.check_kernel(who, kernel_id)
        return await self._eg(self.client.interrupt_kernel(kernel_id))

    def may_connect(self, who: Identity, kernel_id: str) -> None:
        """Whether ``who`` may open the kernel's websocket: users only, their own kernels only."""
        if who.kind != "user":
            raise PublicError(403, "only JupyterHub users may connect to kernels", reason="Forbidden")
        self.check_kernel(who, kernel_id)

    async def connect(self, kernel_id: str, query: str = "") -> WebSocketClientConnection:
        """The kernel's channels on EG (after :meth:`may_connect`); 503 when EG refuses or is down."""
        return await self._eg(self.client.connect_channels(kernel_id, query))

    def requested_resources(self, spec: dict) -> dict:
        """What launching ``spec`` asks of YARN (see kernelspecs.requested_resources)."""
        return requested_resources(read_spark_properties(self.kernels_dir, spec.get("name", "")),
                                   yardlab_metadata(spec), self.min_allocation_mb)

    def queue_check(self, need: dict) -> dict:
        """Refuse what can never fit; describe what will have to wait."""
        cluster = self.snapshot.cluster or {}
        queues = [q for q in cluster.get("queues", []) if q.get("leaf") and queue_matches(q["path"], need["queue"])]
        if not queues:
            known = ", ".join(q["name"] for q in cluster.get("queues", []) if q.get("leaf")) or "none known yet"
            raise PublicError(400, f"queue {need['queue']!r} does not exist (queues: {known})")
        q = queues[0]
        largest_node = max([n.get("totalMB", 0) for n in cluster.get("nodes", {}).get("list", [])] or [0])
        if need["needMB"] > q["maxMB"] or (largest_node and need["largestMB"] > largest_node):
            raise PublicError(400, (
                f"this kernel needs {need['needMB'] / 1024:.1f} GB in queue {q['name']} "
                f"(driver {need['driverMB']} MB + {need['executors']} x {need['executorMB']} MB executors), "
                f"but the queue can never hold more than {q['maxMB'] / 1024:.1f} GB"
                + (f" and the largest node has {largest_node / 1024:.1f} GB" if largest_node else "")
                + "; choose smaller resources"), reason="Bad Request")
        free = max(0, min(q["maxMB"] - q["usedMB"], cluster.get("memory", {}).get("availableMB", 0)))
        return {"queue": q["name"], "freeMB": free, "mustWait": need["needMB"] > free}

    async def start_kernel(self, who: Identity, body: Any) -> dict:
        """Start a kernel as ``who`` (or hand them a warm one); EG's model of it."""
        if not isinstance(body, dict):
            raise PublicError(400, 'the body must be a JSON object like {"name": "<kernelspec>", "env": {...}}')
        name = body.get("name") or ""
        if not isinstance(name, str):
            raise PublicError(400, "`name` must be a kernelspec name")
        env_in = body.get("env") or {}
        if not isinstance(env_in, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_in.items()):
            raise PublicError(400, "`env` must map names to strings")
        claimed = env_in.get("KERNEL_USERNAME")
        if claimed is not None and claimed != who.name:
            self.audit.refusal("launch", who.name, "denied-username", kernelspec=name[:100], claimed=claimed[:100])
            raise PublicError(403, f"KERNEL_USERNAME {claimed[:100]!r} is not you; kernels always run as the "
                                   "user of the token", reason="Forbidden")
        env = {"KERNEL_USERNAME": who.name}
        for key, value in env_in.items():
            if key in ("KERNEL_USERNAME", "KERNEL_ID"):
                continue  # the edge's own: the token's user, and an id the edge chooses
            if key not in self.ALLOWED_ENV:
                if key.startswith("KERNEL_"):
                    hint = (" (Spark options, packages and resources come from an environment: create one in the "
                            "yardlab sidebar)" if "SPARK" in key else "")
                    raise PublicError(400, f"{key[:60]} cannot be set on a kernel start; yardlab passes only "
                                           f"{', '.join(sorted(self.ALLOWED_ENV))}{hint}")
                continue  # plain variables (PATH, HOME, ...) from the Lab server's environment are not the kernel's
            if len(value) > 4096 or "\x00" in value:
                raise PublicError(400, f"{key} is too long or contains a NUL character")
            if key == "KERNEL_LAUNCH_TIMEOUT":
                # jupyter_server sends its own wait budget (e.g. "318.0"): clamp it to what YARN may take
                try:
                    seconds = float(value)
                except ValueError:
                    seconds = -1.0
                if not seconds > 0 or seconds != seconds:
                    raise PublicError(400, "KERNEL_LAUNCH_TIMEOUT must be a positive number of seconds")
                value = str(int(min(max(seconds, 1), self.gateway.launch_timeout)))
            env[key] = value
        env.setdefault("KERNEL_LAUNCH_TIMEOUT", str(self.gateway.launch_timeout))
        spec = await self.kernelspec(who, name or (await self.kernelspecs(who))["default"])
        warm = await self.take_warm(who, spec["name"], env)
        if warm is not None:
            return warm
        rec = await self._launch(who, spec, env, STARTING)
        assert rec is not None  # only warm starts are given back while they start
        return rec["model"]

    async def _launch(self, who: Identity, spec: dict, env: dict[str, str], state: str,
                      avoid_queues: dict[str, str] | None = None) -> dict | None:
        """Launch ``spec`` for ``who`` through EG: the cap, the queue check, the ledger, the audit.  ``state``
        is the ledger state while it starts (STARTING, or WARMING for the warm pool, whose kernels must not
        wait in a queue or make room for themselves).  Returns the ledger record with EG's ``model`` (None for a
        warm kernel the pool gave back while it started: it is shut down)."""
        eg_ids = await self.client.kernel_ids()
        need = self.requested_resources(spec)
        # from here to the ledger entry nothing awaits: the count and the reservation are one step,
        # so starts running side by side cannot pass the cap together
        live = self.ledger.live_for(who.name)
        if eg_ids is not None:
            live = [k for k in live if k["id"] in eg_ids or k["state"] in ("starting", "restarting", WARMING)]
        spare = None
        if len(live) >= self.max_kernels_per_user and state == STARTING:
            # a warm kernel (ready or still starting) is the first thing given back: it makes room for the
            # kernel asked for (given back below, once this start has passed its checks)
            pool = sorted((k for k in live if k["state"] in WARM_STATES),
                          key=lambda k: (k["state"] != WARMING, k["created"]))
            if pool:
                spare = pool[0]
                live.remove(spare)
        if len(live) >= self.max_kernels_per_user:
            raise PublicError(429, f"you already have {len(live)} kernels running or starting (the limit is "
                                   f"{self.max_kernels_per_user}); shut one down first", reason="Too Many Requests")
        self.snapshot.require_fresh()
        placement = self.queue_check(need)
        if spare is not None:
            self.give_back_warm(spare, "warm-made-room")
        if state == WARMING:
            if placement["mustWait"]:
                raise PublicError(409, f"queue {placement['queue']} has no room for a warm kernel now")
            if any(queue_matches(q, placement["queue"]) for q in avoid_queues or () if q):
                raise PublicError(409, f"someone waits in queue {placement['queue']}: no warm kernel there now")
        kernel_id = str(uuid.uuid4())
        env["KERNEL_ID"] = kernel_id
        meta = ((spec.get("spec") or {}).get("metadata") or {}).get("yardlab") or {}
        self.ledger.add(id=kernel_id, user=who.name, kernelspec=spec["name"], state=state,
                        environment=str(meta.get("environment", "builtin")), notebook=env.get("KERNEL_WORKING_DIR"),
                        queue=placement["queue"], need_mb=need["needMB"], need_vcores=need["needVCores"])
        started = monotonic()
        try:
            data = await self.client.start_kernel(spec["name"], env, timeout=self.gateway.launch_timeout + 30)
        except GATEWAY_ERRORS as e:
            self.ledger.end(kernel_id, "launch-failed" if state == STARTING else "warm-launch-failed")
            if isinstance(e, GatewayError):
                self.audit.record("launch", who.name, "failed", kernel=kernel_id, kernelspec=spec["name"],
                                  warm=state == WARMING)
            raise public_error(e, "the kernel did not start", theirs=True) from e
        # (a start cancelled above, the edge stopping, leaves its record: EG may finish the launch, and the next
        # edge's pool or reaper settles it)
        rec = self.ledger.get(kernel_id)
        if rec is None or rec["state"] != state:
            # ended while it started: a warm kernel the pool gave back (pressure, its user left), or a kernel
            # its user shut down before EG had it (EG answered that DELETE with 404).  EG has it now:
            # shut it down, or it would run outside the ledger (and the cap) until EG's idle cull
            await self._shutdown_quietly(kernel_id)
            if state == WARMING:
                return None
            raise PublicError(409, f"kernel {kernel_id} was shut down while it started", reason="Conflict")
        if state == STARTING:
            rec = self.ledger.update(kernel_id, state=RUNNING)
        # (a warm kernel stays WARMING until its application runs and it answered its warm-up: the pool's
        # round promotes it; EG answers as soon as the kernel sent its ports, before Spark is up)
        metrics.KERNEL_LAUNCH_SECONDS.observe(monotonic() - started)
        self.audit.record("launch", who.name, "started", kernel=kernel_id, kernelspec=spec["name"],
                          queue=placement["queue"], need_mb=need["needMB"], warm=state == WARMING)
        return {**(rec or {"id": kernel_id}), "model": data}

    # -- warm kernels (edge/warm.py keeps the pool; these are its steps that touch kernels) ------------------
    async def start_warm(self, who: Identity, spec_name: str, avoid_queues: dict[str, str]) -> dict | None:
        """Start one warm kernel of ``spec_name`` for ``who`` (as the pool decided)."""
        spec = await self.kernelspec(who, spec_name)
        env = {"KERNEL_USERNAME": who.name, "KERNEL_LAUNCH_TIMEOUT": str(self.gateway.launch_timeout)}
        return await self._launch(who, spec, env, WARMING, avoid_queues)

    def spec_changed_since(self, spec_name: str, when: float) -> bool:
        """Whether the kernelspec's files were written after ``when`` (an environment changed or rebuilt, a new
        launcher): a warm kernel started before runs the old ones."""
        if not self.kernels_dir or not SPEC_NAME.fullmatch(spec_name):
            return False
        folder = os.path.join(self.kernels_dir, spec_name)
        try:
            latest = max(os.stat(os.path.join(folder, f)).st_mtime for f in ("kernel.json", "spark.properties")
                         if os.path.exists(os.path.join(folder, f)))
        except (OSError, ValueError):
            return False
        return latest > when

    async def take_warm(self, who: Identity, spec_name: str, env: dict[str, str]) -> dict | None:
        """Hand ``who`` one of their own warm kernels of ``spec_name``, if one is ready (EG's model of it)."""
        ready = sorted((k for k in self.ledger.live_for(who.name)
                        if k["state"] == WARM and k["kernelspec"] == spec_name), key=lambda k: k["created"])
        for rec in ready:
            if rec["user"] != who.name:  # live_for is by user; said again because it is the whole point
                continue
            if self.spec_changed_since(spec_name, rec["created"]):
                # its kernelspec (resources, packages, launcher) was written again after it started
                self.give_back_warm(rec, "warm-outdated")
                continue
            # taken before anything awaits: a second start running beside this one cannot get it too
            self.ledger.update(rec["id"], state=RUNNING, notebook=env.get("KERNEL_WORKING_DIR"))
            try:
                code, model = await self.client.kernel(rec["id"])
            except GATEWAY_ERRORS as e:
                code, model = getattr(e, "status", 503), None
            app = self.app_of(rec)
            if (code == 200 and isinstance(model, dict) and model.get("execution_state") != "dead"
                    and (app is None or app.get("state") == "RUNNING")):
                self.audit.record("launch", who.name, "started", kernel=rec["id"], kernelspec=spec_name,
                                  queue=rec["queue"], need_mb=rec["need_mb"], warm="handed-out")
                metrics.WARM_HANDED_OUT.inc()
                for ended in self.on_warm_ended:
                    ended(rec["id"])
                for listener in self.on_warm_taken:
                    listener()
                return model
            self.log.warning("warm kernel %s of %s was not usable (EG %s, app %s); starting a cold one",
                             rec["id"], who.name, code, (app or {}).get("state"))
            self.give_back_warm(self.ledger.get(rec["id"]) or rec, "warm-lost")
        return None

    def give_back_warm(self, rec: dict, reason: str) -> None:
        """End a warm kernel in the ledger now (nobody can take it any more) and shut it down behind (a start
        still in flight is shut down when EG answers it; one EG fails to shut down, the reaper kills)."""
        self.ledger.end(rec["id"], reason)
        self.audit.record("warm-release", "yardlab-edge", reason, kernel=rec["id"], owner=rec["user"])
        for listener in self.on_warm_ended:
            listener(rec["id"])
        asyncio.ensure_future(self._shutdown_quietly(rec["id"]))

    async def warm_up(self, kernel_id: str, code: str, timeout: float = 180) -> str:
        """Run ``code`` in a warm kernel as a silent execute (no history, no outputs, no execution count:
        the user's notebook sees nothing of it), so the first Spark action of the notebook finds the driver
        and executor JVMs loaded.  Returns the reply's status ("ok", "error"), or why there was none."""
        msg_id = uuid.uuid4().hex
        session = uuid.uuid4().hex
        msg = {"header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                          "username": "yardlab-edge", "version": "5.3", "date": ""},
               "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
               "content": {"code": code, "silent": True, "store_history": False, "user_expressions": {},
                           "allow_stdin": False, "stop_on_error": True}}
        try:
            ws = await self.client.connect_channels(kernel_id, f"session_id={session}")
        except GATEWAY_ERRORS as e:
            return f"no connection: {e}"
        try:
            await ws.write_message(json.dumps(msg))
            deadline = monotonic() + timeout
            while True:
                left = deadline - monotonic()
                if left <= 0:
                    return "timed out"
                raw = await asyncio.wait_for(ws.read_message(), left)
                if raw is None:
                    return "the kernel closed the connection"
                if isinstance(raw, bytes):
                    continue
                reply = json.loads(raw)
                if (reply.get("channel") == "shell" and (reply.get("parent_header") or {}).get("msg_id") == msg_id
                        and (reply.get("header") or {}).get("msg_type") == "execute_reply"):
                    return str((reply.get("content") or {}).get("status"))
        except (asyncio.TimeoutError, ValueError) as e:
            return f"no reply: {e!r}"
        finally:
            ws.close()

    async def _shutdown_quietly(self, kernel_id: str) -> None:
        try:
            await self.client.shutdown_kernel(kernel_id, timeout=120)
        except GATEWAY_ERRORS as e:
            # EG keeps it; once EG forgets it the reaper kills its YARN application (the ledger has ended it)
            self.log.warning("could not shut down warm kernel %s: %s", kernel_id, e)

    async def restart_kernel(self, who: Identity, kernel_id: str) -> Reply:
        """Restart one's own kernel; the ledger follows it onto the YARN application EG submits next."""
        self.check_kernel(who, kernel_id)
        self.ledger.begin_restart(kernel_id)
        apps: list[dict] | None = None
        try:
            code, data = await self._eg(self.client.restart_kernel(kernel_id, self.gateway.launch_timeout + 30))
            try:
                # the RM itself, not the snapshot (up to a poll behind): which application runs it now
                apps = await self.snapshot.rm.apps(None, applicationTags=f"kernel:{kernel_id}")
            except (RMError, RMUnavailable) as e:
                self.log.warning("after restarting %s: could not read its applications: %s", kernel_id, e)
        finally:
            self.ledger.end_restart(kernel_id, apps)
        self.audit.record("restart", who.name, "done" if code == 200 else f"http-{code}", kernel=kernel_id)
        return code, data

    async def shutdown_kernel(self, who: Identity, kernel_id: str) -> int:
        rec = self.check_kernel(who, kernel_id, admin_ok=True, warm_ok=True)
        if rec["state"] in WARM_STATES:
            self.ledger.end(kernel_id, "warm-shutdown")  # no longer offered, whatever EG answers
        code = await self._eg(self.client.shutdown_kernel(kernel_id, timeout=120))
        if code in (204, 404):
            self.ledger.end(kernel_id, "shutdown" if rec["user"] == who.name else "shutdown-by-admin")
            self.audit.record("shutdown", who.name, "done", kernel=kernel_id, owner=rec["user"])
        return code

    def app_of(self, rec: dict) -> dict | None:
        """A kernel's current YARN application, from the snapshot: by the ledger's app_id, or (before the reaper's
        next round has filled it in) the newest application named after the kernel and run by its user."""
        apps = self.snapshot.apps
        if rec.get("app_id") in apps:
            return apps[rec["app_id"]]
        found = [a for a in apps.values() if a.get("name") == rec["id"] and a.get("user") == rec["user"]]
        return max(found, key=lambda a: a.get("startedTime") or 0) if found else None

    def starting(self, who: Identity) -> list[dict]:
        """The caller's kernel starts in flight, each with its phase, as the notebook's kernel indicator
        shows them: submitting (no YARN application yet), queued (ACCEPTED without a container: why),
        starting the driver (its container runs), starting the kernel (the driver runs; the kernel is
        sending its ports)."""
        out = []
        for rec in sorted(self.ledger.live_for(who.name), key=lambda r: r["created"]):
            if rec["state"] != STARTING:
                continue
            app = self.app_of(rec)
            state = (app or {}).get("state", "")
            if app is None or state in ("NEW", "NEW_SAVING", "SUBMITTED"):
                phase, message = "submitting", "submitting to YARN"
            elif state == "ACCEPTED" and not app.get("runningContainers"):
                phase = "queued"
                message = self.waiting_message(rec, app) or f"queued in YARN (queue {rec['queue']})"
            elif state == "ACCEPTED":
                phase, message = "driver", "starting the Spark driver"
            elif state == "RUNNING":
                phase, message = "kernel", "the driver runs; connecting the kernel"
            else:
                phase, message = "ended", f"its YARN application {state.lower()}: {(app.get('diagnostics') or '')[:300]}"
            out.append({"id": rec["id"], "kernelspec": rec["kernelspec"], "created": rec["created"],
                        "app": (app or {}).get("id"), "phase": phase, "message": message})
        return out

    def waiting_message(self, rec: dict, app: dict) -> str | None:
        if app.get("state") != "ACCEPTED":
            return None
        cluster = self.snapshot.cluster or {}
        q = next((q for q in cluster.get("queues", []) if q.get("leaf") and queue_matches(q["path"], rec["queue"])),
                 None)
        free = max(0, min(q["maxMB"] - q["usedMB"], cluster.get("memory", {}).get("availableMB", 0))) if q else 0
        return (f"waiting in queue {rec['queue']} (ACCEPTED): needs {rec['need_mb'] / 1024:.1f} GB, "
                f"{free / 1024:.1f} GB free")
