"""HTTP handlers of the edge: thin wrappers that parse, call one service method and answer JSON."""
from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.log import app_log

from . import metrics
from .auth import Identity
from .errors import PublicError, query_arg
from .jobs import AppsQuery, JobService
from .snapshot import decode_cursor
from .storage import clean_path
from .utils import monotonic
from .yarn import ALL_STATES

APP_ID = re.compile(r"^application_\d{1,20}_\d{1,10}$")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
MAX_LIMIT = 1000


class BaseHandler(web.RequestHandler):
    """JSON errors, security headers, request metrics."""

    identity: Identity | None = None

    @property
    def jobs(self) -> JobService:
        return self.settings["jobs"]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache, private")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")

    def prepare(self) -> None:
        self._started = monotonic()

    def on_finish(self) -> None:
        metrics.REQUEST_DURATION.labels(type(self).__name__, str(self.get_status())).observe(
            monotonic() - getattr(self, "_started", monotonic()))

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        if isinstance(value, PublicError):
            self.log_public(value)
            return
        super().log_exception(typ, value, tb)

    def log_public(self, error: PublicError) -> None:
        if error.status >= 500:
            app_log.warning("%s %s: %s", self.request.method, self.request.path, error)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PublicError):
            self.set_status(exc.status)
            body = {"message": exc.message, "reason": exc.reason or self._reason}
            if hasattr(exc, "field"):
                body["field"] = exc.field
        elif isinstance(exc, web.HTTPError):
            body = {"message": exc.log_message or self._reason, "reason": self._reason}
        else:
            body = {"message": "internal error in the yardlab edge service; the operators have the details",
                    "reason": self._reason}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, separators=(",", ":")))

    def not_modified(self, etag: str) -> bool:
        """Set the ETag; answer 304 (and return True) when the client already has this version."""
        self.set_header("ETag", etag)
        inm = self.request.headers.get("If-None-Match", "")
        if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
            self.set_status(304)
            self.finish()
            return True
        return False

    def check_etag_header(self) -> bool:
        return False  # ETags here are computed before the body and handled by not_modified()

    def compute_etag(self) -> None:
        return None


class AuthenticatedHandler(BaseHandler):
    """Every API handler: the caller is whoever the hub says the token belongs to."""

    #: whether a hub service with the admin scope (the hub service's sampler) may GET this
    services_may_read = False

    async def prepare(self) -> None:
        super().prepare()
        self.identity = await self.settings["identifier"].identify(self.request.headers.get("Authorization"))
        if self.identity.kind == "service" and not (self.services_may_read and self.request.method == "GET"):
            raise PublicError(403, "hub services may only read the cluster and applications through the edge",
                              reason="Forbidden")

    @property
    def me(self) -> Identity:
        assert self.identity is not None
        return self.identity

    def arg(self, name: str, max_len: int = 200) -> str | None:
        return query_arg(self.request.query_arguments, name, max_len)

    def json_body(self, empty: Any = None, max_bytes: int | None = None) -> Any:
        """The request's JSON body (``empty`` when there is none and that is allowed); a 4xx with a
        sentence for anything else: too large, not JSON, nested too deeply, not storable text."""
        body = self.request.body
        if not body:
            if empty is None:
                raise PublicError(400, "a JSON body is required")
            return empty
        if max_bytes is not None and len(body) > max_bytes:
            raise PublicError(413, f"the request body is too large (at most {max_bytes // 1024} KB)")
        try:
            data = json.loads(body)
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates (\ud800) are not text
        except UnicodeEncodeError as e:
            raise PublicError(400, "the body is not valid JSON: it holds a lone surrogate (\\ud800-\\udfff), "
                                   "which is not text") from e
        except ValueError as e:
            raise PublicError(400, f"the body is not valid JSON: {str(e)[:120]}") from e
        except RecursionError as e:
            raise PublicError(400, "the body is nested too deeply") from e
        return data


def valid_app_id(app_id: str) -> str:
    if len(app_id) > 64 or not APP_ID.fullmatch(app_id):
        shown = app_id[:40] + ("…" if len(app_id) > 40 else "")
        raise PublicError(400, f"{shown!r} is not a YARN application id (like application_1700000000000_0001)")
    return app_id


class HealthHandler(BaseHandler):
    """Readiness without a token and without data: 200 when the YARN snapshot is current."""

    def get(self) -> None:
        ok = self.jobs.snapshot.last_success is not None and self.jobs.snapshot.last_error is None
        gateway = self.settings.get("gateway")
        if gateway is not None and gateway.enabled and not gateway.ready.is_set():
            ok = False
        self.write_json({"status": "ok" if ok else "unavailable"}, 200 if ok else 503)


class MetricsHandler(AuthenticatedHandler):
    """Prometheus metrics, for admins' tokens (or anyone, if the operator says so)."""

    async def prepare(self) -> None:
        BaseHandler.prepare(self)
        if self.settings.get("metrics_require_auth", True):
            await AuthenticatedHandler.prepare(self)
            if not self.me.admin:
                raise PublicError(403, "metrics are for yardlab admins")

    def get(self) -> None:
        age = self.jobs.snapshot.age
        metrics.SNAPSHOT_AGE.set(age if age is not None else float("nan"))
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest())


class MeHandler(AuthenticatedHandler):
    """GET /api/v1/me: who the token belongs to."""

    services_may_read = True

    def get(self) -> None:
        self.write_json(self.me.to_json())


class ClusterHandler(AuthenticatedHandler):
    """GET /api/v1/cluster: metrics, queues, snapshot age for everyone; the node list for admins."""

    services_may_read = True

    def get(self) -> None:
        self.jobs.snapshot.require_fresh()
        if self.not_modified(self.jobs.cluster_etag(self.me)):
            return
        self.write_json(self.jobs.cluster_view(self.me))


class AppsHandler(AuthenticatedHandler):
    """GET /api/v1/apps: the caller's applications (admins: one user's or everyone's), filtered."""

    services_may_read = True

    def get(self) -> None:
        scope = self.arg("user", 100)
        if scope in (None, "", self.me.name):
            user: str | None = self.me.name
        elif not self.me.admin:
            raise PublicError(403, "only yardlab admins may list other users' applications")
        elif scope in ("*", "all"):
            user = None
        elif USER_NAME.fullmatch(scope):
            user = scope
        else:
            raise PublicError(400, "`user` must be a user name, or * for everyone")
        states = None
        raw_states = self.arg("state", 200)
        if raw_states:
            states = {s.strip().upper() for s in raw_states.split(",") if s.strip()}
            unknown = states - set(ALL_STATES)
            if unknown:
                raise PublicError(400, f"unknown state {sorted(unknown)[0][:30]!r}; use {', '.join(ALL_STATES)}")
        queue = self.arg("queue", 255)
        if queue and not QUEUE_NAME.fullmatch(queue):
            raise PublicError(400, "`queue` must be a queue name such as default or root.interactive")
        search = self.arg("search", 200)
        limit_arg = self.arg("limit", 10)
        try:
            limit = int(limit_arg) if limit_arg else 100
        except ValueError as e:
            raise PublicError(400, "`limit` must be a whole number") from e
        if not 1 <= limit <= MAX_LIMIT:
            raise PublicError(400, f"`limit` must be between 1 and {MAX_LIMIT}")
        cursor = self.arg("cursor", 200)
        # every parameter is checked (the cursor decoded) before anything is looked up
        query = AppsQuery(user=user, states=tuple(sorted(states or ())), queue=queue or None,
                          search=search or None, limit=limit, after=decode_cursor(cursor) if cursor else None)
        snap = self.jobs.snapshot
        snap.require_fresh()
        self.set_header("X-Snapshot-Age", f"{snap.age or 0.0:.3f}")
        if self.not_modified(self.jobs.apps_etag(query)):
            return
        self.finish(self.jobs.apps_page(query))


class AppHandler(AuthenticatedHandler):
    """GET /api/v1/apps/{id}: one application; DELETE kills it (owner or admin), confirmed."""

    services_may_read = True

    async def get(self, app_id: str) -> None:
        app = await self.jobs.app_for(self.me, valid_app_id(app_id))
        self.write_json(self.jobs.public_app(app))

    async def delete(self, app_id: str) -> None:
        result = await self.jobs.kill(self.me, valid_app_id(app_id))
        self.write_json(result)


class StorageHandler(AuthenticatedHandler):
    """GET /api/v1/storage: the caller's three storage roots and their usage."""

    async def get(self) -> None:
        storage = self.settings["storage"]
        await storage.ensure_provisioned(self.me)
        self.write_json({"user": self.me.name, "roots": storage.roots(self.me), "usage": await storage.usage(self.me)})


@web.stream_request_body
class FilesHandler(AuthenticatedHandler):
    """/api/v1/files/<hdfs path>: list/stat, download, upload (streamed), mkdir, rename, delete."""

    upload = None
    deferred: PublicError | None = None
    DRAIN_LIMIT = 1024 * 1024

    async def prepare(self) -> None:
        try:
            await self._prepare()
        except PublicError as e:
            # answer only once the (small, possibly empty) body has been read: tornado drops the
            # connection of a streamed request answered early, and a client still writing (or
            # reusing the keep-alive connection) sees a reset instead of the message
            self.deferred = e
            self.upload = None
            self._json_body = b""
            self.request.connection.set_max_body_size(self.DRAIN_LIMIT)

    def raise_deferred(self) -> None:
        if self.deferred is not None:
            raise self.deferred

    async def _prepare(self) -> None:
        await super().prepare()
        storage = self.settings["storage"]
        self.path_ = clean_path(self.path_args[0] if self.path_args else "")
        storage.check_within_roots(self.me, self.path_)
        await storage.ensure_provisioned(self.me)
        if self.request.method == "PUT":
            limit = storage.max_upload_bytes
            length = int(self.request.headers.get("Content-Length", "0") or 0)
            if length > limit:
                raise PublicError(413, f"uploads are limited to {limit // 1024**2} MB", reason="Payload Too Large")
            self.request.connection.set_max_body_size(limit + 1)
            overwrite = self.get_query_argument("overwrite", "1") not in ("0", "false")
            self.upload = storage.upload(self.me, self.path_, overwrite)
            self.upload.on_expired = self.upload_expired
            await self.upload.start()
        else:
            self.request.connection.set_max_body_size(64 * 1024)
            self._json_body = b""

    async def data_received(self, chunk: bytes) -> None:
        if self.deferred is not None:
            return
        upload = self.upload
        if upload is None:
            if self.request.method != "PUT":
                self._json_body += chunk
            return
        try:
            await upload.feed(chunk)
        except PublicError as e:
            await upload.abort(e)
            if self.upload is upload:
                self.answer_mid_body(e)

    def upload_expired(self, error: PublicError) -> None:
        """The upload's watchdog stopped it (timed out): answer now, unless put() already does."""
        if self.upload is not None:
            self.answer_mid_body(error)

    def answer_mid_body(self, error: PublicError) -> None:
        # tornado sends this and then closes the connection rather than read the rest of the body
        self.upload = None
        self.send_error(error.status, exc_info=(type(error), error, error.__traceback__))

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends tornado's wait for the rest of the body
        if self.upload is not None:
            upload, self.upload = self.upload, None
            asyncio.ensure_future(upload.abort())

    async def get(self, _path: str) -> None:
        self.raise_deferred()
        storage = self.settings["storage"]
        if self.get_query_argument("download", "0") in ("1", "true"):
            model = await storage.stat(self.me, self.path_)
            if model["type"] != "file":
                raise PublicError(400, f"{self.path_} is a folder; only files can be downloaded")
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(model['name'])}")
            self.set_header("Content-Length", str(model["size"]))
            async for chunk in storage.read_chunks(self.me, self.path_):
                self.write(chunk)
                await self.flush()
            self.finish()
            return
        self.write_json(await storage.listing(self.me, self.path_))

    async def put(self, _path: str) -> None:
        self.raise_deferred()
        upload, self.upload = self.upload, None
        assert upload is not None
        model = await upload.finish()
        self.write_json(model, 201)

    async def post(self, _path: str) -> None:
        self.raise_deferred()
        if self.get_query_argument("op", "") != "mkdir":
            raise PublicError(400, "POST needs op=mkdir")
        self.write_json(await self.settings["storage"].mkdir(self.me, self.path_), 201)

    async def patch(self, _path: str) -> None:
        self.raise_deferred()
        try:
            body = json.loads(self._json_body or b"{}")
            target = body["path"]
            if not isinstance(target, str):
                raise TypeError
        except (ValueError, KeyError, TypeError) as e:
            raise PublicError(400, 'PATCH needs a JSON body {"path": "/new/absolute/path"}') from e
        storage = self.settings["storage"]
        dst = clean_path(target)
        storage.check_within_roots(self.me, dst)
        self.write_json(await storage.rename(self.me, self.path_, dst))

    async def delete(self, _path: str) -> None:
        self.raise_deferred()
        recursive = self.get_query_argument("recursive", "0") in ("1", "true")
        await self.settings["storage"].delete(self.me, self.path_, recursive)
        self.set_status(204)
        self.finish()


class NotFoundHandler(BaseHandler):
    """Anything else under the edge: a JSON 404."""

    def prepare(self) -> None:
        super().prepare()
        raise PublicError(404, "no such yardlab API endpoint", reason="Not Found")


class EnvironmentBase(AuthenticatedHandler):
    """Shared plumbing of the environment handlers."""

    @property
    def envs(self):  # noqa: ANN201
        envs = self.settings.get("environments")
        if envs is None:
            raise PublicError(503, "environments are not configured on this edge")
        return envs


class EnvironmentsHandler(EnvironmentBase):
    """GET /api/v1/environments (own + shared; ?owner=all for admins), POST creates one."""

    def get(self) -> None:
        owner = self.arg("owner", 100)
        if owner not in (None, "", "all", "*"):
            raise PublicError(400, "`owner` can only be all (admins)")
        self.write_json({"environments": self.envs.list(self.me, everyone=owner in ("all", "*"))})

    async def post(self) -> None:
        env = await self.envs.create(self.me, self.json_body())
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{quote(env['owner'], safe='')}/{env['name']}")
        self.write_json(env, 202)


class EnvironmentHandler(EnvironmentBase):
    """GET / PATCH / DELETE /api/v1/environments/{owner}/{name}."""

    def get(self, owner: str, name: str) -> None:
        self.write_json(self.envs.show(self.me, owner, name))

    async def patch(self, owner: str, name: str) -> None:
        self.write_json(await self.envs.update(self.me, owner, name, self.json_body()))

    async def delete(self, owner: str, name: str) -> None:
        await self.envs.delete(self.me, owner, name)
        self.write_json({"deleted": True})


class EnvironmentRebuildHandler(EnvironmentBase):
    """POST /api/v1/environments/{owner}/{name}/rebuild: resolve and build it again."""

    async def post(self, owner: str, name: str) -> None:
        self.write_json(await self.envs.rebuild(self.me, owner, name), 202)


class EnvironmentLogHandler(EnvironmentBase):
    """GET /api/v1/environments/{owner}/{name}/log: the whole build log as text."""

    async def get(self, owner: str, name: str) -> None:
        path = self.envs.read_log(self.me, owner, name)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        if path is None:
            self.finish("")
            return
        with open(path, "rb") as f:
            while chunk := f.read(256 * 1024):
                self.write(chunk)
                await self.flush()
        self.finish()


class EnvironmentEventsHandler(EnvironmentBase):
    """GET /api/v1/environments/{owner}/{name}/events: progress and log lines as Server-Sent Events."""

    async def get(self, owner: str, name: str) -> None:
        events = self.envs.events(self.me, owner, name)
        first = await events.__anext__()  # 404s before any byte of the stream is sent
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("X-Accel-Buffering", "no")
        try:
            await self._send(*first)
            async for event, data in events:
                await self._send(event, data)
        except StreamClosedError:
            return
        finally:
            await events.aclose()
        self.finish()

    async def _send(self, event: str, data: dict) -> None:
        if event == "ping":
            self.write(": ping\n\n")  # a comment: keeps proxies from closing an idle stream
        else:
            self.write(f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n")
        await self.flush()


def routes(base_url: str) -> list[tuple[str, type, dict] | tuple[str, type]]:
    from .gateway_handlers import gateway_routes

    api = base_url.rstrip("/") + "/api/v1"
    return gateway_routes(base_url) + [
        (base_url.rstrip("/") + "/health", HealthHandler),
        (base_url.rstrip("/") + "/metrics", MetricsHandler),
        (api + "/me", MeHandler),
        (api + "/cluster", ClusterHandler),
        (api + "/apps", AppsHandler),
        (api + r"/apps/([^/]+)", AppHandler),
        (api + "/storage", StorageHandler),
        (api + "/environments/?", EnvironmentsHandler),
        (api + r"/environments/([^/]+)/([^/]+)/log", EnvironmentLogHandler),
        (api + r"/environments/([^/]+)/([^/]+)/rebuild", EnvironmentRebuildHandler),
        (api + r"/environments/([^/]+)/([^/]+)/events", EnvironmentEventsHandler),
        (api + r"/environments/([^/]+)/([^/]+)/?", EnvironmentHandler),
        (api + r"/files/?(.*)", FilesHandler),
        (base_url.rstrip("/") + r"/.*", NotFoundHandler),
    ]
