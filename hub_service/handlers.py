"""Handlers of the hub service: pages (HubOAuth cookie) and /api/v1 (token or cookie), thin over the edge."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web
from tornado.httputil import url_concat
from tornado.log import app_log

from yardlab.edge.client import AsyncEdgeClient, EdgeAPIError
from yardlab.edge.errors import PublicError, query_arg

from .sampler import run_blocking, wall_clock
from .security import SECURITY_HEADERS, safe_next
from .usage import WINDOWS, parse_since

IDENTITY_TTL = 30.0


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the edge sees their token."""

    name: str
    admin: bool


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Security headers, hub login (async), the caller's token and identity, errors as JSON or a page."""

    api = False
    _not_allowed = False

    @property
    def edge(self) -> AsyncEdgeClient:
        return self.settings["edge"]

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        # resolve the hub user without blocking the loop (HubAuthenticated's default is sync)
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError as e:
            if e.status_code >= 500:  # HubAuth's way of saying the hub did not answer
                raise PublicError(503, "JupyterHub could not be asked who this is; try again shortly",
                                  reason="Hub unavailable") from e
            model = None
        user = None
        if model:
            try:
                user = self.check_hub_user(model)
            except UserNotAllowed:
                self._not_allowed = True
        self._hub_auth_user_cache = user
        if self._not_allowed:
            raise PublicError(403, "this account or token may not use the yardlab service (it lacks "
                                   "access:services!service=yardlab)", reason="Forbidden")

    def get_current_user(self) -> dict | None:
        return getattr(self, "_hub_auth_user_cache", None)

    @property
    def token(self) -> str:
        return self.hub_auth.get_token(self) or ""

    async def caller(self) -> Caller:
        """The caller as the edge resolves their own token (cached briefly, by token hash)."""
        token = self.token
        if not token:
            raise PublicError(401, "log in, or send `Authorization: token <token>`", reason="Unauthorized")
        cache: dict[bytes, tuple[float, Caller]] = self.settings.setdefault("identities", {})
        key = hashlib.sha256(token.encode()).digest()
        hit = cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        status, _, data = await self.edge_call("GET", "/me")
        if status >= 400:
            raise PublicError(status, _message(data, status))
        who = Caller(name=data["name"], admin=bool(data.get("admin")))
        if len(cache) > 50_000:
            cache.clear()
        cache[key] = (time.monotonic() + IDENTITY_TTL, who)
        return who

    async def require_admin(self) -> Caller:
        who = await self.caller()
        if not who.admin:
            raise PublicError(403, "this is for yardlab admins", reason="Forbidden")
        return who

    async def edge_call(self, method: str, path: str, **params: Any) -> tuple[int, dict, Any]:
        """One edge call with the caller's own token: the edge's policy applies."""
        params = {k: v for k, v in params.items() if v is not None}
        try:
            return await self.edge.request(method, path, token=self.token, **params)
        except EdgeAPIError as e:
            raise PublicError(e.status or 503, e.message) from e
        except ValueError as e:
            raise PublicError(502, "the yardlab edge service answered with something that is not JSON") from e

    async def edge_relay(self, method: str, path: str, **params: Any) -> None:
        """Answer with the edge's own answer to the caller's request: status, ETag and body bytes
        unchanged (no re-encoding), 304 when the caller already has that version."""
        try:
            reply = await self.edge.relay(method, path, token=self.token,
                                          if_none_match=self.request.headers.get("If-None-Match"), **params)
        except EdgeAPIError as e:
            raise PublicError(e.status or 503, e.message) from e
        if reply.status >= 500 and not reply.headers.get("Content-Type", "").startswith("application/json"):
            raise PublicError(502, f"the yardlab edge service answered HTTP {reply.status}")
        self.set_status(reply.status)
        if reply.headers.get("ETag"):
            self.set_header("ETag", reply.headers["ETag"])
        if reply.status == 304:
            self.finish()
            return
        self.finish(reply.body or b"{}")

    def check_etag_header(self) -> bool:
        return False  # ETags are the edge's, relayed as they are

    def compute_etag(self) -> None:
        return None

    def arg(self, name: str, max_len: int = 200) -> str | None:
        return query_arg(self.request.query_arguments, name, max_len)

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001
        if isinstance(value, PublicError):
            if value.status >= 500:
                app_log.warning("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PublicError):
            self.set_status(exc.status)
            message, reason = exc.message, exc.reason or self._reason
        elif isinstance(exc, web.HTTPError):
            message, reason = exc.log_message or self._reason, self._reason
        else:
            message, reason = "internal error in the yardlab service; the operators have the details", self._reason
        if self.api:
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"message": message, "reason": reason}))
        else:
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.finish(self.render_page("error.html", status=self.get_status(), message=message, who=None))

    def render_page(self, template: str, **context: Any) -> str:
        env = self.settings["jinja"]
        user = self.current_user or {}
        return env.get_template(template).render(
            base_url=self.settings["base_url"], hub_prefix=self.settings["hub_prefix"],
            static=self.static_url, user_name=user.get("name"), **context)


class PageHandler(BaseHandler):
    """One page: a shell rendered with jinja (autoescaped); the data comes from /api/v1 via static JS."""

    template = ""
    admin_only = False

    def initialize(self, template: str, admin_only: bool = False) -> None:
        self.template = template
        self.admin_only = admin_only

    @web.authenticated
    async def get(self) -> None:
        who = await self.caller()
        if self.admin_only and not who.admin:
            raise PublicError(403, "this page is for yardlab admins", reason="Forbidden")
        self.finish(self.render_page(self.template, who=who, page=self.template.split(".")[0],
                                     xsrf=self.xsrf_token.decode()))


class RootHandler(BaseHandler):
    """The service's front page: the overview for admins, the jobs page for everyone else."""

    @web.authenticated
    async def get(self) -> None:
        who = await self.caller()
        self.redirect(self.settings["base_url"] + ("overview" if who.admin else "jobs"))


class LoginHandler(BaseHandler):
    """`login?next=<path>`: start the hub's OAuth flow; ``next`` must be a path of this service."""

    def get(self) -> None:
        raw = self.get_argument("next", "")
        target = safe_next(raw, self.settings["base_url"]) if raw else self.settings["base_url"]
        if target is None:
            raise PublicError(400, "refused redirect target: `next` must be a path under "
                                   f"{self.settings['base_url']}", reason="Bad Request")
        if self.current_user:
            self.redirect(target)
            return
        hub_auth = self.hub_auth
        params: dict[str, str] = {}
        code_verifier = None
        if hub_auth.pkce_enabled:
            code_verifier, challenge, method = hub_auth.generate_pkce_code_challenge()
            params.update(code_challenge=challenge, code_challenge_method=method)
        params["state"] = hub_auth.set_state_cookie(self, next_url=target, code_verifier=code_verifier)
        self.redirect(url_concat(hub_auth.login_url, params))


class CallbackHandler(HubOAuthCallbackHandler):
    """The OAuth callback; its redirect target is checked by YardlabHubOAuth.get_next_url."""

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)


class ApiHandler(BaseHandler):
    """JSON API: a token (header) or the page's cookie (with XSRF for changes)."""

    api = True

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=UTF-8")

    async def prepare(self) -> None:
        await super().prepare()
        if not self.current_user:
            raise PublicError(401, "a JupyterHub API token is required: send `Authorization: token <token>` "
                                   "(make one on /hub/token)", reason="Unauthorized")

    def relay(self, status: int, data: Any) -> None:
        self.set_status(status)
        self.finish(json.dumps(data if data is not None else {}, separators=(",", ":")))


class HealthHandler(BaseHandler):
    """Liveness without a token and without data."""

    api = True

    async def prepare(self) -> None:
        return None

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": "ok"}))


class MeAPIHandler(ApiHandler):
    """GET /api/v1/me: who the token belongs to (as the edge sees it)."""

    async def get(self) -> None:
        who = await self.caller()
        self.relay(200, {"name": who.name, "admin": who.admin})


class ClusterAPIHandler(ApiHandler):
    """GET /api/v1/cluster: capacity, use and queues; the node list for admins (the edge decides)."""

    async def get(self) -> None:
        await self.edge_relay("GET", "/cluster")


class WarmPoolAPIHandler(ApiHandler):
    """GET /api/v1/warm: the warm kernel pool (admins: its rules, every user's warm kernels and counters;
    users: their own), as the edge keeps it."""

    async def get(self) -> None:
        await self.edge_relay("GET", "/kernels/warm")


class AppsAPIHandler(ApiHandler):
    """GET /api/v1/apps: applications, filtered by the edge (own; admins `user=*` or a name)."""

    async def get(self) -> None:
        params = {k: self.arg(k) for k in ("user", "state", "queue", "search", "limit", "cursor")}
        await self.edge_relay("GET", "/apps", **params)


class AppAPIHandler(ApiHandler):
    """GET / DELETE /api/v1/apps/{id}: one application; kill it (owner or admin; the edge confirms)."""

    async def get(self, app_id: str) -> None:
        await self.edge_relay("GET", f"/apps/{quote(app_id, safe='')}")

    async def delete(self, app_id: str) -> None:
        await self.edge_relay("DELETE", f"/apps/{quote(app_id, safe='')}")


class EnvironmentsAPIHandler(ApiHandler):
    """GET /api/v1/environments: own and shared (admins: `owner=all` for everyone's)."""

    async def get(self) -> None:
        await self.edge_relay("GET", "/environments", owner=self.arg("owner", 100))


class EnvironmentAPIHandler(ApiHandler):
    """DELETE /api/v1/environments/{owner}/{name}: the edge decides who may (owners; admins for shared)."""

    async def delete(self, owner: str, name: str) -> None:
        await self.edge_relay("DELETE", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}")


class UsageAPIHandler(ApiHandler):
    """GET /api/v1/usage[?user=U][&since=7d]: current use and memory/vcore-seconds per window.

    Users see their own; admins anyone's (no `user`, or `*`: everyone's)."""

    async def get(self) -> None:
        who = await self.caller()
        user = self.arg("user", 100)
        if not who.admin:
            if user not in (None, "", who.name):
                raise PublicError(403, "only yardlab admins may see other users' usage", reason="Forbidden")
            user = who.name
        elif user in (None, "", "*", "all"):
            user = None
        since = self.arg("since", 20)
        if since:
            try:
                windows = {since: float(parse_since(since))}
            except ValueError as e:
                raise PublicError(400, str(e)) from e
        else:
            windows = {k: float(v) for k, v in WINDOWS.items()}
        now = wall_clock()
        store = self.settings["store"]
        users = await run_blocking(store.usage, windows, now, user)
        first = next(iter(windows))
        rows = sorted(users.values(), key=lambda u: (-u["windows"][first]["memorySeconds"], u["user"]))
        sampler = self.settings["sampler"]
        self.relay(200, {"windows": list(windows), "users": rows, "lastSample": sampler.last_sample,
                         "sampleInterval": sampler.interval, "samplerError": sampler.last_error if who.admin else None})


class HistoryAPIHandler(ApiHandler):
    """GET /api/v1/history[?since=24h]: cluster samples over time (admins)."""

    async def get(self) -> None:
        await self.require_admin()
        try:
            seconds = parse_since(self.arg("since", 20) or "24h")
        except ValueError as e:
            raise PublicError(400, str(e)) from e
        samples = await run_blocking(self.settings["store"].history, wall_clock() - seconds)
        sampler = self.settings["sampler"]
        self.relay(200, {"samples": samples, "sampleInterval": sampler.interval, "lastSample": sampler.last_sample,
                         "samplerError": sampler.last_error})


class NotFoundHandler(ApiHandler):
    """Anything else under /api: a JSON 404."""

    async def prepare(self) -> None:
        raise PublicError(404, "no such yardlab API endpoint", reason="Not Found")


class PageNotFoundHandler(BaseHandler):
    """Any other path: a 404 page with the same headers as every page."""

    async def prepare(self) -> None:
        raise PublicError(404, "there is no such page in the yardlab service", reason="Not Found")


def _message(data: Any, status: int) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return f"the yardlab edge service answered HTTP {status}"


def routes(base: str) -> list[tuple]:
    api = base + "api/v1/"
    pages = [("overview", True), ("jobs", False), ("users", False), ("environments", False), ("history", True)]
    return [
        (base, RootHandler),
        (base.rstrip("/"), RootHandler),
        (base + "login", LoginHandler),
        (base + "oauth_callback", CallbackHandler),
        *[(base + name, PageHandler, {"template": f"{name}.html", "admin_only": admin}) for name, admin in pages],
        (base + "health", HealthHandler),
        (api + "me", MeAPIHandler),
        (api + "cluster", ClusterAPIHandler),
        (api + "warm", WarmPoolAPIHandler),
        (api + "apps", AppsAPIHandler),
        (api + r"apps/([^/]+)", AppAPIHandler),
        (api + "environments", EnvironmentsAPIHandler),
        (api + r"environments/([^/]+)/([^/]+)", EnvironmentAPIHandler),
        (api + "usage", UsageAPIHandler),
        (api + "history", HistoryAPIHandler),
        (base + r"api/.*", NotFoundHandler),
    ]
