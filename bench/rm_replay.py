"""A ResourceManager REST replay: captured RM responses scaled up to 10,000 applications.

Serves the ``/ws/v1/cluster`` endpoints the edge reads (``/info``, ``/metrics``, ``/nodes``,
``/scheduler``, ``/apps`` with the RM's filters, ``/apps/{id}``, ``/apps/{id}/state``), built from
the responses capture_rm.py stored in fixtures/rm/, and counts every request it gets
(``GET /__stats``; ``GET /__reset`` returns the counts and zeroes them).

The applications are spread over ``user0000``...; most are finished (FINISHED/KILLED/FAILED),
some RUNNING or ACCEPTED, in the queues ``root.default`` and ``root.interactive``.  A little churn
(apps finishing, starting and being submitted, the oldest finished ones evicted as the RM does)
keeps the data moving, so ETags change the way they would on a live cluster; ``--churn-per-min 0``
freezes it.  Every application's JSON is serialized once, and whole answers are cached per query
until the data changes, so the replay is not what a benchmark measures.

The RM's JSON has repeated keys (``resourceSecondsMap`` is ``{"entry":{..},"entry":{..}}``); the
replay keeps them, so the edge parses what a real RM sends.

    .venv/bin/python bench/rm_replay.py [--n-apps 10000] [--n-users 1000] [--port 0]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import tornado.ioloop
import tornado.web

import server_process

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rm"
API = "/ws/v1/cluster"
JSON_TYPE = "application/json;charset=utf-8"  # the RM's own spelling

FINAL_STATES = ("FINISHED", "KILLED", "FAILED")
RM_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED")
STATE_WEIGHTS = {"FINISHED": 56, "KILLED": 25, "FAILED": 14, "RUNNING": 4, "ACCEPTED": 1}
FINAL_STATUS = {"FINISHED": "SUCCEEDED", "KILLED": "KILLED", "FAILED": "FAILED",
                "RUNNING": "UNDEFINED", "ACCEPTED": "UNDEFINED"}
QUEUE_WEIGHTS = {"root.default": 70, "root.interactive": 30}
OTHER_NAMES = ("etl-daily", "sessionize", "feature-build", "pi", "sleeper", "wordcount", "train-gbt")
APPS_PER_NODE = 40
HISTORY_MS = 7 * 24 * 3600 * 1000  # finished apps reach a week back


def now_ms() -> int:
    """Wall clock in milliseconds, as the RM writes times (a function so tests can move it)."""
    return int(time.time() * 1000)


class Pairs(list):
    """A JSON object kept as its (key, value) pairs, so that the RM's repeated keys survive."""


def loads(raw: bytes) -> Any:
    return json.loads(raw, object_pairs_hook=Pairs)


def dumps(value: Any) -> str:
    """Serialize like ``json.dumps(separators=(",", ":"))``, writing ``Pairs`` with their repeats."""
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def get(obj: Pairs, key: str, default: Any = None) -> Any:
    for k, v in obj:
        if k == key:
            return v
    return default


def put(obj: Pairs, key: str, value: Any) -> None:
    """Set the first ``key`` in place (or append it)."""
    for i, (k, _) in enumerate(obj):
        if k == key:
            obj[i] = (key, value)
            return
    obj.append((key, value))


def rm_error(status: int, exception: str, message: str) -> tuple[int, bytes]:
    """An error body shaped like the RM's (``RemoteException``)."""
    java = {"NotFoundException": "org.apache.hadoop.yarn.webapp.NotFoundException",
            "BadRequestException": "org.apache.hadoop.yarn.webapp.BadRequestException"}[exception]
    body = {"RemoteException": {"exception": exception, "message": f"java.lang.Exception: {message}",
                                "javaClassName": java}}
    return status, json.dumps(body, separators=(",", ":")).encode()


class ReplayApp:
    """One application of the replay: the fields the RM filters on, and its serialized JSON."""

    __slots__ = ("seq", "id", "user", "queue", "state", "started", "finished", "app_type", "tags",
                 "name", "node", "progress", "alloc_mb", "alloc_vcores", "containers", "frag")

    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self, key, value)
        self.frag = b""


class AppTemplate:
    """A captured application, each value serialized once, ready to be stamped with new fields."""

    def __init__(self, record: Pairs) -> None:
        self.keys = [k for k, _ in record]
        self.parts = [(json.dumps(k), dumps(v)) for k, v in record]
        self.raw = dict(record)

    def stamp(self, fields: dict[str, Any]) -> bytes:
        out = []
        for (key_json, value_json), key in zip(self.parts, self.keys):
            out.append(f"{key_json}:{dumps(fields[key])}" if key in fields else f"{key_json}:{value_json}")
        out.extend(f"{json.dumps(k)}:{dumps(v)}" for k, v in fields.items() if k not in self.raw)
        return ("{" + ",".join(out) + "}").encode()


class ClusterReplay:
    """The replayed cluster: applications made from captured ones, indexes, and serialized answers."""

    def __init__(self, n_apps: int = 10000, n_users: int = 1000, *, seed: int = 1,
                 fixtures: Path = FIXTURES, n_nodes: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.users = [f"user{i:04d}" for i in range(n_users)]
        self.n_apps = n_apps
        self.raw = {name: (fixtures / f"{name}.json").read_bytes()
                    for name in ("info", "metrics", "nodes", "scheduler", "apps")}
        info = json.loads(self.raw["info"])["clusterInfo"]
        self.cluster_id = int(info["id"])
        captured = get(get(loads(self.raw["apps"]), "apps") or Pairs(), "app") or []
        if not captured:
            raise SystemExit(f"{fixtures}/apps.json holds no application: run a job on the stack and "
                             f"capture again, or restore the committed fixtures")
        self.templates = [AppTemplate(record) for record in captured]
        tracking = self.templates[0].raw.get("trackingUrl", "http://localhost:8088/cluster/app/x")
        self.rm_web = tracking.split("/cluster/")[0].split("/proxy/")[0]
        self.node_template = get(get(loads(self.raw["nodes"]), "nodes"), "node")[0]
        self.node_mb = int(get(self.node_template, "availMemoryMB", 8192)) + int(get(self.node_template, "usedMemoryMB", 0))
        self.node_vcores = (int(get(self.node_template, "availableVirtualCores", 8))
                            + int(get(self.node_template, "usedVirtualCores", 0)))
        self.n_nodes = n_nodes or max(1, n_apps // APPS_PER_NODE)
        self.node_names = [f"node{i:04d}.bench" for i in range(self.n_nodes)]
        self.apps: dict[str, ReplayApp] = {}
        self.next_seq = 1
        self.submitted = 0
        self._build(n_apps)
        self.nodes_body = self._nodes_body()
        self._changed()

    # --- making applications ---------------------------------------------------------------------

    def _build(self, n_apps: int) -> None:
        now = now_ms()
        states, state_w = zip(*STATE_WEIGHTS.items())
        for i in range(n_apps):
            state = self.rng.choices(states, state_w)[0]
            if state in FINAL_STATES:
                # spread over the last week in id order, as a long-running RM's history is
                started = now - HISTORY_MS + int(HISTORY_MS * i / n_apps) + self.rng.randrange(60000)
                finished = min(now - 1000, started + self.rng.randrange(30, 7200) * 1000)
            else:
                started = now - self.rng.randrange(60, 4 * 3600) * 1000
                finished = 0
            self._add(state, started, finished, now)

    def _add(self, state: str, started: int, finished: int, now: int) -> ReplayApp:
        seq = self.next_seq
        self.next_seq += 1
        self.submitted += 1
        user = self.rng.choice(self.users)
        kernel = self.rng.random() < 0.6
        kernel_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        queues, queue_w = zip(*QUEUE_WEIGHTS.items())
        containers = self.rng.randint(1, 4)
        app = ReplayApp(
            seq=seq, id=f"application_{self.cluster_id}_{seq:04d}", user=user,
            queue=self.rng.choices(queues, queue_w)[0], state=state, started=started, finished=finished,
            app_type="SPARK", name=kernel_id if kernel else f"{self.rng.choice(OTHER_NAMES)}-{seq}",
            tags=("env:builtin", f"kernel:{kernel_id}", f"user:{user}", "yardlab") if kernel else (),
            node=self.rng.choice(self.node_names), progress=round(self.rng.uniform(5, 95), 1),
            alloc_mb=1024 + containers * 1024, alloc_vcores=1 + containers, containers=1 + containers)
        self._serialize(app, now)
        self.apps[app.id] = app
        return app

    def _serialize(self, app: ReplayApp, now: int) -> None:
        template = self.templates[app.seq % len(self.templates)]
        state, final = app.state, app.state in FINAL_STATES
        end = app.finished if final else now
        elapsed_s = max(0, end - app.started) // 1000
        mem_s, vcore_s = app.alloc_mb * elapsed_s, app.alloc_vcores * elapsed_s
        node = app.node if state != "ACCEPTED" else ""
        container = f"container_{self.cluster_id}_{app.seq:04d}_01_000001"
        diagnostics = {"KILLED": f"Application {app.id} was killed by user {app.user}",
                       "FAILED": f"Application {app.id} failed 1 times (global limit =1; local limit is =1) "
                                 f"due to AM Container for appattempt_{self.cluster_id}_{app.seq:04d}_000001 "
                                 f"exited with  exitCode: 1",
                       "ACCEPTED": "[Fri Nov 21 00:00:00 +0000 2026] Application is added to the scheduler "
                                   "and is not yet activated."}.get(state, "")
        total_mb = self.node_mb * self.n_nodes
        fields = {
            "id": app.id, "user": app.user, "name": app.name, "queue": app.queue, "state": state,
            "finalStatus": FINAL_STATUS[state],
            "progress": 100.0 if final else (app.progress if state == "RUNNING" else 0.0),
            "trackingUI": "History" if final else ("ApplicationMaster" if state == "RUNNING" else "UNASSIGNED"),
            "trackingUrl": f"{self.rm_web}/cluster/app/{app.id}" if final else f"{self.rm_web}/proxy/{app.id}/",
            "diagnostics": diagnostics, "clusterId": self.cluster_id, "applicationType": app.app_type,
            "applicationTags": ",".join(app.tags), "startedTime": app.started,
            "launchTime": app.started + 700 if state != "ACCEPTED" else 0,
            "finishedTime": app.finished, "elapsedTime": end - app.started,
            "amContainerLogs": f"http://{node}:8042/node/containerlogs/{container}/{app.user}" if node else "",
            "amHostHttpAddress": f"{node}:8042" if node else "", "masterNodeId": f"{node}:8041" if node else "",
            "allocatedMB": app.alloc_mb if state == "RUNNING" else (-1 if final else 0),
            "allocatedVCores": app.alloc_vcores if state == "RUNNING" else (-1 if final else 0),
            "runningContainers": app.containers if state == "RUNNING" else (-1 if final else 0),
            "reservedMB": -1 if final else 0, "reservedVCores": -1 if final else 0,
            "memorySeconds": mem_s, "vcoreSeconds": vcore_s,
            "queueUsagePercentage": round(100.0 * app.alloc_mb / total_mb, 4) if state == "RUNNING" else 0.0,
            "clusterUsagePercentage": round(100.0 * app.alloc_mb / total_mb, 4) if state == "RUNNING" else 0.0,
            "resourceSecondsMap": Pairs([("entry", Pairs([("key", "memory-mb"), ("value", str(mem_s))])),
                                         ("entry", Pairs([("key", "vcores"), ("value", str(vcore_s))]))]),
        }
        app.frag = template.stamp(fields)

    # --- churn: a live cluster's data moves ------------------------------------------------------

    def churn(self, events: int) -> None:
        """Apply ``events`` x (a RUNNING app ends, an ACCEPTED one starts, a new one is submitted)."""
        if events <= 0:
            return
        now = now_ms()
        for _ in range(events):
            running = [a for a in self.apps.values() if a.state == "RUNNING"]
            accepted = [a for a in self.apps.values() if a.state == "ACCEPTED"]
            if running:
                app = self.rng.choice(running)
                app.state = self.rng.choices(FINAL_STATES, (56, 25, 14))[0]
                app.finished = now
                self._serialize(app, now)
            if accepted:
                app = self.rng.choice(accepted)
                app.state = "RUNNING"
                self._serialize(app, now)
            self._add("ACCEPTED", now, 0, now)
            # the RM forgets the oldest completed apps beyond its limit (max-completed-applications)
            oldest = next(a for a in self.apps.values() if a.state in FINAL_STATES)
            del self.apps[oldest.id]
        self._changed()

    def _changed(self) -> None:
        """Rebuild indexes and drop every cached answer after the data changed."""
        self.ordered = sorted(self.apps.values(), key=lambda a: a.seq)
        self.by_user: dict[str, list[ReplayApp]] = {}
        self.by_state: dict[str, list[ReplayApp]] = {}
        for app in self.ordered:
            self.by_user.setdefault(app.user, []).append(app)
            self.by_state.setdefault(app.state, []).append(app)
        self.cache: dict[tuple, tuple[int, bytes]] = {}
        self.metrics_body = self._metrics_body()
        self.scheduler_body = self._scheduler_body()

    # --- answers ---------------------------------------------------------------------------------

    def _nodes_body(self) -> bytes:
        nodes = []
        for name in self.node_names:
            node = Pairs(self.node_template)
            put(node, "id", f"{name}:8041")
            put(node, "nodeHostName", name)
            put(node, "nodeHTTPAddress", f"{name}:8042")
            nodes.append(node)
        return dumps(Pairs([("nodes", Pairs([("node", nodes)]))])).encode()

    def _metrics_body(self) -> bytes:
        doc = loads(self.raw["metrics"])
        metrics = get(doc, "clusterMetrics")
        count = Counter(app.state for app in self.ordered)
        running = self.by_state.get("RUNNING", [])
        alloc_mb = sum(app.alloc_mb for app in running)
        alloc_vc = sum(app.alloc_vcores for app in running)
        total_mb, total_vc = self.node_mb * self.n_nodes, self.node_vcores * self.n_nodes
        for key, value in {
            "appsSubmitted": self.submitted, "appsCompleted": count["FINISHED"], "appsPending": count["ACCEPTED"],
            "appsRunning": count["RUNNING"], "appsFailed": count["FAILED"], "appsKilled": count["KILLED"],
            "allocatedMB": alloc_mb, "availableMB": total_mb - alloc_mb, "totalMB": total_mb,
            "allocatedVirtualCores": alloc_vc, "availableVirtualCores": total_vc - alloc_vc,
            "totalVirtualCores": total_vc, "containersAllocated": sum(app.containers for app in running),
            "totalNodes": self.n_nodes, "activeNodes": self.n_nodes,
        }.items():
            put(metrics, key, value)
        return dumps(doc).encode()

    def _scheduler_body(self) -> bytes:
        doc = loads(self.raw["scheduler"])
        info = get(get(doc, "scheduler"), "schedulerInfo")
        active = Counter(app.queue for app in self.ordered if app.state in ("RUNNING", "ACCEPTED"))
        for queue in get(get(info, "queues") or Pairs(), "queue") or []:
            put(queue, "numApplications", active[get(queue, "queuePath")])
        return dumps(doc).encode()

    def apps_response(self, args: dict[str, str]) -> tuple[int, bytes]:
        """``GET /apps`` with the RM's filters; unknown parameters are ignored, as the RM does."""
        key = tuple(sorted((k, v) for k, v in args.items() if k in APP_FILTERS))
        cached = self.cache.get(key)
        if cached is None:
            cached = self.cache[key] = self._apps_response(dict(key))
        return cached

    def _apps_response(self, args: dict[str, str]) -> tuple[int, bytes]:
        states = None
        if args.get("states"):
            states = {s.strip().upper() for s in args["states"].split(",") if s.strip()}
            bad = states - set(RM_STATES)
            if bad:
                return rm_error(400, "BadRequestException",
                                f"Invalid application-state {min(bad)} specified. It should be one of "
                                + ", ".join(RM_STATES))
        try:
            bounds = {name: int(args[name]) for name in TIME_FILTERS if name in args}
            limit = int(args["limit"]) if "limit" in args else None
        except ValueError as e:
            return rm_error(400, "BadRequestException", str(e))
        if "user" in args:
            candidates = self.by_user.get(args["user"], [])
        elif states is not None:
            candidates = sorted((a for s in states for a in self.by_state.get(s, [])), key=lambda a: a.seq)
        else:
            candidates = self.ordered
        queue = args.get("queue")
        final_status = args.get("finalStatus", "").upper()
        types = {t.strip().upper() for t in args.get("applicationTypes", "").split(",") if t.strip()}
        tags = {t.strip().lower() for t in args.get("applicationTags", "").split(",") if t.strip()}
        frags = []
        for app in candidates:
            if states is not None and app.state not in states:
                continue
            if queue and queue != app.queue and queue != app.queue.rsplit(".", 1)[-1]:
                continue
            if final_status and FINAL_STATUS[app.state] != final_status:
                continue
            if types and app.app_type not in types:
                continue
            if tags and not tags.intersection(app.tags):
                continue
            if not _within(app.started, bounds.get("startedTimeBegin"), bounds.get("startedTimeEnd")):
                continue
            if not _within(app.finished, bounds.get("finishedTimeBegin"), bounds.get("finishedTimeEnd")):
                continue
            frags.append(app.frag)
            if limit is not None and len(frags) >= limit:
                break
        if not frags:
            return 200, b'{"apps":{}}'  # the RM's empty list (not [] and not null)
        return 200, b'{"apps":{"app":[' + b",".join(frags) + b"]}}"

    def app_response(self, app_id: str) -> tuple[int, bytes]:
        app = self.apps.get(app_id)
        if app is None:
            return rm_error(404, "NotFoundException", f"app with id: {app_id} not found")
        return 200, b'{"app":' + app.frag + b"}"

    def app_state_response(self, app_id: str) -> tuple[int, bytes]:
        app = self.apps.get(app_id)
        if app is None:
            return rm_error(404, "NotFoundException", f"app with id: {app_id} not found")
        return 200, json.dumps({"state": app.state}, separators=(",", ":")).encode()


TIME_FILTERS = ("startedTimeBegin", "startedTimeEnd", "finishedTimeBegin", "finishedTimeEnd")
APP_FILTERS = {"states", "user", "queue", "limit", "finalStatus", "applicationTypes", "applicationTags",
               *TIME_FILTERS}


def _within(value: int, begin: int | None, end: int | None) -> bool:
    # the RM compares the raw field, so a running app (finishedTime 0) fails finishedTimeBegin
    return (begin is None or value >= begin) and (end is None or value <= end)


# --- HTTP --------------------------------------------------------------------------------------

class RequestLedger:
    """Counts of the requests the replay served, per path (app ids folded into ``{id}``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> dict:
        before = self.snapshot()
        self.since = time.time()
        self.paths: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.apps_queries: Counter[str] = Counter()
        return before

    def snapshot(self) -> dict:
        if not hasattr(self, "paths"):
            return {}
        return {"since": self.since, "seconds": time.time() - self.since, "total": sum(self.paths.values()),
                "paths": dict(self.paths), "bytes": dict(self.bytes), "apps_queries": dict(self.apps_queries)}


class ReplayHandler(tornado.web.RequestHandler):
    """Base: counts the request, answers pre-serialized JSON, no ETag work."""

    route = ""

    def initialize(self, replay: ClusterReplay, ledger: RequestLedger) -> None:
        self.replay = replay
        self.ledger = ledger

    def compute_etag(self) -> None:
        return None  # hashing a 16 MB app list per request would make the replay the bottleneck

    def answer(self, response: tuple[int, bytes]) -> None:
        status, body = response
        self.ledger.paths[self.route] += 1
        self.ledger.bytes[self.route] += len(body)
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(body)


class InfoHandler(ReplayHandler):
    route = f"{API}/info"

    def get(self) -> None:
        self.answer((200, self.replay.raw["info"]))


class MetricsHandler(ReplayHandler):
    route = f"{API}/metrics"

    def get(self) -> None:
        self.answer((200, self.replay.metrics_body))


class NodesHandler(ReplayHandler):
    route = f"{API}/nodes"

    def get(self) -> None:
        self.answer((200, self.replay.nodes_body))


class SchedulerHandler(ReplayHandler):
    route = f"{API}/scheduler"

    def get(self) -> None:
        self.answer((200, self.replay.scheduler_body))


class AppsHandler(ReplayHandler):
    route = f"{API}/apps"

    def get(self) -> None:
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.ledger.apps_queries["&".join(sorted(k for k in args if k in APP_FILTERS)) or "(all)"] += 1
        self.answer(self.replay.apps_response(args))


class AppHandler(ReplayHandler):
    route = f"{API}/apps/{{id}}"

    def get(self, app_id: str) -> None:
        self.answer(self.replay.app_response(app_id))


class AppStateHandler(ReplayHandler):
    route = f"{API}/apps/{{id}}/state"

    def get(self, app_id: str) -> None:
        self.answer(self.replay.app_state_response(app_id))


class StatsHandler(tornado.web.RequestHandler):
    """``GET /__stats``: the request counts; ``GET /__reset``: the same, then zeroed."""

    def initialize(self, ledger: RequestLedger, reset: bool) -> None:
        self.ledger = ledger
        self.reset = reset

    def get(self) -> None:
        self.finish(self.ledger.reset() if self.reset else self.ledger.snapshot())


def make_app(replay: ClusterReplay, ledger: RequestLedger | None = None) -> tornado.web.Application:
    """The replay's tornado application (for in-process use; ``start_replay`` runs it in a child)."""
    ledger = ledger or RequestLedger()
    kw = {"replay": replay, "ledger": ledger}
    routes = [
        (f"{API}/info", InfoHandler, kw),
        (f"{API}/metrics", MetricsHandler, kw),
        (f"{API}/nodes", NodesHandler, kw),
        (f"{API}/scheduler", SchedulerHandler, kw),
        (f"{API}/apps/?", AppsHandler, kw),
        (f"{API}/apps/([^/]+)/?", AppHandler, kw),
        (f"{API}/apps/([^/]+)/state/?", AppStateHandler, kw),
        (r"/__stats", StatsHandler, {"ledger": ledger, "reset": False}),
        (r"/__reset", StatsHandler, {"ledger": ledger, "reset": True}),
    ]
    return tornado.web.Application(routes, log_function=lambda handler: None)


def start_replay(n_apps: int = 10000, n_users: int = 1000, *, churn_per_min: float = 30.0, seed: int = 1,
                 log_dir: Path | None = None) -> tuple[str, server_process.ServerProcess]:
    """Run the replay in a child process; returns its base URL (no ``/ws/v1/cluster``) and handle."""
    log_dir = log_dir or Path("/tmp")
    argv = server_process.python_argv("rm_replay.py", "--n-apps", str(n_apps), "--n-users", str(n_users),
                                      "--churn-per-min", str(churn_per_min), "--seed", str(seed))
    handle = server_process.ServerProcess.start_announced("rm-replay", argv, log_dir)
    return handle.url, handle


def replay_stats(url: str, reset: bool = False) -> dict:
    """The replay's request counts (and zero them with ``reset``)."""
    return server_process.http_json(f"{url}/{'__reset' if reset else '__stats'}")


async def serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    replay = ClusterReplay(args.n_apps, args.n_users, seed=args.seed)
    print(f"rm-replay: {len(replay.apps)} apps, {len(replay.users)} users, {replay.n_nodes} nodes, "
          f"built in {time.monotonic() - started:.1f} s", flush=True, file=sys.stderr)
    server = make_app(replay).listen(args.port, "127.0.0.1", max_body_size=1 << 20)
    if args.churn_per_min > 0:
        owed = 0.0

        def tick() -> None:
            nonlocal owed
            owed += args.churn_per_min / 60.0
            events, owed = int(owed), owed - int(owed)
            replay.churn(events)

        tornado.ioloop.PeriodicCallback(tick, 1000).start()
    server_process.announce_ready(server_process.listen_url(server))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-apps", type=int, default=10000)
    parser.add_argument("--n-users", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free one)")
    parser.add_argument("--churn-per-min", type=float, default=30.0,
                        help="app state changes per minute (each: one ends, one starts, one is submitted)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
