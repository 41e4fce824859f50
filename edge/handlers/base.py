"""The edge's handler bases: JSON errors, security headers, request metrics, the caller's identity,
one JSON body reader, and the JSON 404.
"""
from __future__ import annotations

import json
import re
from typing import Any, Awaitable

from tornado import web
from tornado.log import app_log

from .. import metrics
from ..auth import Identity
from ..clock import monotonic
from ..errors import PublicError, query_arg
from ..jobs import JobService

APP_ID = re.compile(r"^application_\d{1,20}_\d{1,10}$")


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

    def prepare(self) -> Awaitable[None] | None:  # type: ignore[override]
        """Who is calling: from the identity cache without an await (the hot path), else from the hub."""
        super().prepare()
        who = self.settings["identifier"].cached_identity(self.request.headers.get("Authorization"))
        if who is None:
            return self.authenticate()  # tornado awaits what prepare returns
        self._admit(who)
        return None

    async def authenticate(self) -> None:
        """Resolve the caller with the hub (or the cache) and admit them."""
        self._admit(await self.settings["identifier"].identify(self.request.headers.get("Authorization")))

    def _admit(self, who: Identity) -> None:
        self.identity = who
        if who.kind == "service" and not (self.services_may_read and self.request.method == "GET"):
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
        if max_bytes is None:
            max_bytes = self.settings.get("max_json_body")
        if not body:
            if empty is None:
                raise PublicError(400, "a JSON body is required")
            return empty
        if max_bytes is not None and len(body) > max_bytes:
            raise PublicError(413, f"the request body is too large: {len(body) // 1024} KB, and at most "
                                   f"{max_bytes // 1024} KB is accepted here")
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


class NotFoundHandler(BaseHandler):
    """Anything else under the edge: a JSON 404."""

    def prepare(self) -> None:
        super().prepare()
        raise PublicError(404, "no such yardlab API endpoint", reason="Not Found")
