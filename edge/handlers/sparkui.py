"""<base>proxy/<application id>/...: the Spark UI for its owner and admins (see ``edge/sparkui.py``), by a
hub token (scripts) or the edge's own hub OAuth cookie (browsers); and <base>oauth_callback, the end of
that login.
"""
from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpclient import HTTPResponse
from tornado.httputil import url_concat
from traitlets import default

from ..auth import Identity
from ..clients.resourcemanager import FINAL_STATES, ProxyPageError, RMUnavailable
from ..errors import PublicError
from ..sparkui import (
    OWNER_CSP,
    PASSED_HEADERS,
    REWRITTEN_TYPES,
    SANDBOX_CSP,
    SparkUIProxy,
    check_target,
    error_json,
    error_page,
)
from .base import BaseHandler, valid_app_id

class EdgeHubOAuth(HubOAuth):
    """The edge's browser login with the hub (OAuth client ``service-yardlab-edge``), used by the
    Spark UI only; after login the browser only ever returns to a path of the edge."""

    @default("allow_token_in_url")
    def _no_token_in_url(self) -> bool:
        return False

    @default("cookie_options")
    def _lax_cookie(self) -> dict:
        # said, not left to the browser: no cross-site subrequest carries the login
        return {"samesite": "Lax"}

    @default("oauth_client_id")
    def _client_id_default(self) -> str:
        import os

        return os.environ.get("JUPYTERHUB_CLIENT_ID") or "service-yardlab-edge"

    def get_next_url(self, state_id: str = "", /) -> str:
        from yardlab.hub_service.security import safe_next

        target = super().get_next_url(state_id)
        return safe_next(target, self.base_url) or self.base_url


class SparkUIHandler(BaseHandler):
    """GET/HEAD <base>proxy/<app id>[/...]: one page of the application's Spark UI."""

    @property
    def proxy(self) -> SparkUIProxy:
        return self.settings["spark_ui"]

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Frame-Options", "SAMEORIGIN")

    def _wants_html(self) -> bool:
        return "text/html" in self.request.headers.get("Accept", "")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PublicError):
            self.set_status(exc.status)
            message, reason = exc.message, exc.reason or self._reason
        elif isinstance(exc, web.HTTPError) and status_code == 405:
            message, reason = "the Spark UI is read-only through yardlab: only GET and HEAD", self._reason
        else:
            message, reason = ("internal error in the yardlab edge service; the operators have the details",
                               self._reason)
        self.clear_header("Content-Disposition")
        self.clear_header("Last-Modified")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                                   "frame-ancestors 'none'")
        self.set_header("Cache-Control", "no-store")
        if self._wants_html():
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            hub_home = self.settings["hub_auth"].hub_prefix + "home"
            self.finish(error_page(status_code, reason or "Error", message, hub_home))
        else:
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(error_json(message, reason or ""))

    async def _identify(self) -> Identity | None:
        """The caller: a hub token in the Authorization header, else the edge's OAuth cookie; None when
        neither is there (a browser is then sent to log in)."""
        identifier = self.settings["identifier"]
        header = self.request.headers.get("Authorization")
        if header:
            return await identifier.identify(header)
        token = self.settings["hub_auth"]._get_token_cookie(self)
        if not token:
            return None
        try:
            return await identifier.identify(f"token {token}")
        except PublicError as e:
            if e.status == 401:  # the login's token expired or was revoked: log in again
                self.settings["hub_auth"].clear_cookie(self)
                return None
            raise

    def _login(self) -> None:
        hub_auth: HubOAuth = self.settings["hub_auth"]
        if self.request.method != "GET" or not self._wants_html():
            raise PublicError(401, "log in to JupyterHub first, or send `Authorization: token <token>`",
                              reason="Unauthorized")
        params: dict[str, str] = {}
        verifier = None
        if hub_auth.pkce_enabled:
            verifier, challenge, method = hub_auth.generate_pkce_code_challenge()
            params.update(code_challenge=challenge, code_challenge_method=method)
        params["state"] = hub_auth.set_state_cookie(self, next_url=self.request.uri, code_verifier=verifier)
        self.redirect(url_concat(hub_auth.login_url, params))

    async def head(self, *_args: str) -> None:
        await self.get()

    async def get(self, *_args: str) -> None:
        # read from the raw path (tornado decodes what a route captures): "<prefix><app id><rest>"
        raw = self.request.path[len(self.proxy.prefix):]
        raw_id, slash, raw_rest = raw.partition("/")
        app_id = valid_app_id(raw_id)
        target = check_target(app_id, slash + raw_rest, self.request.query)
        who = await self._identify()
        if who is None:
            self._login()
            return
        if who.kind != "user":
            raise PublicError(403, "the Spark UI is for people: the application's owner and admins",
                              reason="Forbidden")
        try:
            app = await self.jobs.app_for(who, app_id)  # the owner or an admin; RM data, never the URL
        except PublicError as e:
            if e.status == 403:
                raise PublicError(403, f"{app_id} belongs to another user: only its owner and admins may "
                                       "see its Spark UI", reason="Forbidden") from e
            raise
        sandboxed = app["user"] != who.name
        if (app.get("applicationType") or "").upper() != "SPARK":
            raise PublicError(404, f"{app_id} is not a Spark application: yardlab shows Spark UIs only",
                              reason="Not Found")
        self._check_state(app)
        try:
            resp = await self.jobs.rm.web_proxy(app_id, target.path_and_query,
                                                accept=self.request.headers.get("Accept", "*/*")[:500],
                                                timeout=self.proxy.timeout)
        except RMUnavailable as e:
            self.log.warning("Spark UI of %s: %s", app_id, e)
            raise PublicError(503, "the YARN ResourceManager is unreachable, so the Spark UI cannot be shown; "
                                   "try again shortly", reason="Service Unavailable") from e
        except ProxyPageError as e:
            raise PublicError(e.status, f"this page of the Spark UI of {app_id} could not be shown: {e.message}",
                              reason="Bad Gateway" if e.status == 502 else "Gateway Timeout") from e
        self._relay(app, resp, sandboxed)

    def _check_state(self, app: dict) -> None:
        app_id, state = app["id"], app.get("state", "")
        if state in FINAL_STATES:
            history = self.proxy.history_for(app_id)
            if history:
                self.redirect(history)
                raise web.Finish()
            raise PublicError(410, f"{app_id} has ended ({state.lower()}), and its Spark UI ended with its "
                                   "driver; no Spark history server is configured here", reason="Gone")
        if state != "RUNNING":
            raise PublicError(409, f"{app_id} is {state.lower() or 'not running'}: its Spark UI starts once YARN "
                                   "runs its driver; try again then", reason="Not Running Yet")

    def _relay(self, app: dict, resp: HTTPResponse, sandboxed: bool) -> None:
        app_id = app["id"]
        if resp.code in (301, 302, 303, 307, 308):
            location = self.proxy.rewrite_location(app_id, resp.headers.get("Location", ""))
            if location is None:
                # YARN sends viewers of an application without a live UI elsewhere (its RM page)
                # (the snapshot may not have seen the end yet: the same sentence as for an ended one)
                raise PublicError(410, f"{app_id} has ended or is ending, and its Spark UI with its driver",
                                  reason="Gone")
            self.set_status(resp.code)
            self.set_header("Location", location)
            self.finish()
            return
        if resp.code >= 500:
            raise PublicError(502, f"the Spark UI of {app_id} did not answer through YARN's proxy (HTTP "
                                   f"{resp.code}); its driver may be starting or ending", reason="Bad Gateway")
        body = resp.body or b""
        if len(body) > self.proxy.max_page_bytes:
            raise PublicError(502, f"this page of the Spark UI is larger than "
                                   f"{self.proxy.max_page_bytes // 2**20} MB, the edge's limit",
                              reason="Bad Gateway")
        self.set_status(resp.code)
        for name in PASSED_HEADERS:
            value = resp.headers.get(name)
            if value:
                try:
                    self.set_header(name, value)
                except ValueError:  # control characters: not passed on
                    self.log.warning("Spark UI of %s: dropped a malformed %s header", app_id, name)
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype in REWRITTEN_TYPES:
            body = self.proxy.rewrite_body(app_id, body)
        # a logged-in page: never kept by a shared cache, whatever the driver says
        cache = (resp.headers.get("Cache-Control") or "").lower()
        self.set_header("Cache-Control", "private, max-age=3600" if "max-age" in cache and "no-" not in cache
                        else "no-cache, private")
        self.set_header("Vary", "Cookie, Authorization")
        self.set_header("Content-Security-Policy", SANDBOX_CSP if sandboxed else OWNER_CSP)
        if self.request.method == "HEAD":
            self.set_header("Content-Length", str(len(body)))
            self.finish()
            return
        self.finish(body)


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """<base>oauth_callback: the end of the hub's login for the Spark UI."""

    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
