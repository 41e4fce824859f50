"""An async client for the YARN ResourceManager REST API, with timeouts, retries and RM HA failover.

Authentication: ``user.name=<service_user>`` (simple auth), or with Kerberos on a SPNEGO
``Authorization`` header made from the edge's keytab; then Hadoop's ``hadoop.auth`` cookie from the
RM's answer is sent instead while it is good, so the snapshot's polls do not make a GSS exchange each.
Either way users are acted for with ``doAs=``.
"""
from __future__ import annotations

import asyncio
import getpass
import json
import os
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPInputError
from tornado.simple_httpclient import HTTPTimeoutError
from traitlets import Float, Instance, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .. import metrics
from ..clock import monotonic
from ..kerberos import Kerberos, KerberosError

ACTIVE_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
FINAL_STATES = ("FINISHED", "FAILED", "KILLED")
ALL_STATES = ACTIVE_STATES + FINAL_STATES


class RMUnavailable(Exception):
    """No ResourceManager in the list answered."""


class ProxyPageError(Exception):
    """YARN's web proxy or the page behind it could not be read: too slow, too large or malformed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RMError(Exception):
    """The ResourceManager answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ResourceManagerClient(LoggingConfigurable):
    """Talks to the ResourceManager REST API (``/ws/v1/cluster``) on behalf of the edge."""

    urls_env = "YARDLAB_RM_URLS"
    urls = List(
        Unicode(),
        help="""ResourceManager web addresses, e.g. ["http://rm1:8088", "http://rm2:8088"].

        With RM high availability list every ResourceManager: calls go to the active one and
        fail over to the next when it stops answering or says it is standby.
        Default: $YARDLAB_RM_URLS (comma-separated) or http://127.0.0.1:8088.""",
    ).tag(config=True)

    @default("urls")
    def _urls_default(self) -> list[str]:
        env = os.environ.get(self.urls_env, "")
        return [u.strip().rstrip("/") for u in env.split(",") if u.strip()] or ["http://127.0.0.1:8088"]

    service_user = Unicode(
        help="""The account the edge authenticates as (``user.name=``; simple auth; with Kerberos the
        principal of Kerberos.keytab stands for it and ``user.name`` is not sent).

        It must be a YARN admin (to read every application) and a Hadoop proxy user
        (``hadoop.proxyuser.<it>.*``) so kills can be done as the application's owner (``doAs=``).
        Default: the OS user running the edge.""",
    ).tag(config=True)

    @default("service_user")
    def _service_user_default(self) -> str:
        return getpass.getuser()

    connect_timeout = Float(
        5.0, help="Seconds to wait for a connection to a ResourceManager. Measured by the edge's event loop, so "
                  "it includes the time the edge waits for CPU: at 2 s, twenty kernels starting at once on a "
                  "2-core node made it fire though the RM took connections in under 5 ms (bench/README.md).",
    ).tag(config=True)
    request_timeout = Float(10.0, help="Seconds to wait for a whole ResourceManager answer.").tag(config=True)
    retries = Integer(2, help="Extra rounds over the RM list after a failed call (with backoff).").tag(config=True)
    backoff = Float(0.2, help="First backoff delay in seconds; doubles per round, at most 5 s.").tag(config=True)
    kerberos = Instance(Kerberos, allow_none=True, help="The edge's Kerberos login; None or disabled: simple auth.")
    proxy_max_clients = Integer(
        40, help="""Requests through YARN's web proxy (Spark UI pages, progress reads) in flight at once.

        They have an HTTP client of their own, so slow Spark UIs never hold up the edge's own calls to
        the ResourceManager (the snapshot, kills).""").tag(config=True)
    proxy_max_body = Integer(33 * 1024 * 1024, help="Largest answer read through YARN's web proxy, in bytes.").tag(
        config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._active = 0
        self.http = AsyncHTTPClient()
        self._proxy_http: AsyncHTTPClient | None = None
        #: per RM address, the ``hadoop.auth=...`` cookie of its last good answer (Kerberos only)
        self._auth_cookies: dict[str, str] = {}

    @property
    def secure(self) -> bool:
        return self.kerberos is not None and self.kerberos.enabled

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                      body: dict | None = None, call: str = "other", do_as: str | None = None) -> Any:
        """One REST call, trying the active RM first and the others after it; JSON in and out."""
        query = {} if self.secure else {"user.name": self.service_user}
        if do_as:
            query["doAs"] = do_as
        query.update({k: v for k, v in (params or {}).items() if v is not None})
        last_error: Exception | None = None
        delay = self.backoff
        for attempt in range(self.retries + 1):
            for i in range(len(self.urls)):
                index = (self._active + i) % len(self.urls)
                url = f"{self.urls[index]}/ws/v1/cluster{path}?{urlencode(query)}"
                started = monotonic()
                try:
                    resp = await self._fetch(self.urls[index], url, method, body)
                except KerberosError as e:
                    metrics.RM_ERRORS.labels(call).inc()
                    raise RMUnavailable(f"the edge cannot authenticate to the ResourceManager: {e}") from e
                except (HTTPClientError, OSError, asyncio.TimeoutError) as e:
                    # timeouts are raised even with raise_error=False
                    last_error = e
                    metrics.RM_ERRORS.labels(call).inc()
                    continue
                finally:
                    metrics.RM_CALL_DURATION.labels(call).observe(monotonic() - started)
                if resp.code == 599 or resp.code in (502, 503, 504) or resp.code in (301, 302, 307):
                    # no answer, or a standby RM redirecting to the active one: try the next RM
                    last_error = resp.error or RMError(resp.code, f"HTTP {resp.code}")
                    metrics.RM_ERRORS.labels(call).inc()
                    continue
                self._active = index
                if resp.code >= 400:
                    metrics.RM_ERRORS.labels(call).inc()
                    raise RMError(resp.code, _rm_message(resp.body))
                return json.loads(resp.body) if resp.body else {}
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise RMUnavailable(f"no ResourceManager answered ({', '.join(self.urls)}): {_describe(last_error)}")

    async def _fetch(self, base: str, url: str, method: str, body: dict | None, *,
                     client: AsyncHTTPClient | None = None, headers: dict[str, str] | None = None,
                     cookies: tuple[str, ...] = (), timeout: float | None = None) -> HTTPResponse:
        """One HTTP exchange with one RM; with Kerberos, by cookie while the RM takes it, else by SPNEGO.

        ``headers`` replace the JSON ones (the web proxy's pages), ``cookies`` go along with the RM's
        own, ``client`` is the HTTP client to use (the web proxy has its own)."""
        sent = dict(headers or {"Accept": "application/json", "Content-Type": "application/json"})
        cookie = self._auth_cookies.get(base) if self.secure else None
        if cookie:
            sent["Cookie"] = "; ".join((*cookies, cookie))
        else:
            if self.secure:
                assert self.kerberos is not None
                sent["Authorization"] = await self.kerberos.authorization(base)
            if cookies:
                sent["Cookie"] = "; ".join(cookies)
        req = HTTPRequest(url, method=method, connect_timeout=self.connect_timeout,
                          request_timeout=timeout or self.request_timeout, follow_redirects=False, headers=sent,
                          body=json.dumps(body) if body is not None else None)
        resp = await (client or self.http).fetch(req, raise_error=False)
        if not self.secure:
            return resp
        if resp.code == 401 and cookie:
            # the cookie expired (or the RM restarted with a new secret): once more with a fresh token
            self._auth_cookies.pop(base, None)
            return await self._fetch(base, url, method, body, client=client, headers=headers, cookies=cookies,
                                     timeout=timeout)
        self._keep_cookie(base, resp)
        return resp

    def _keep_cookie(self, base: str, resp: HTTPResponse) -> None:
        """Remember the RM's ``hadoop.auth`` cookie as it was sent (Hadoop signs the exact value); an
        empty one, or a 401, forgets it (a 403 is about the call, not about who the edge is)."""
        for header in resp.headers.get_list("Set-Cookie") if resp.headers else []:
            pair = header.split(";", 1)[0].strip()
            name, _, value = pair.partition("=")
            if name.strip() == "hadoop.auth":
                if value.strip().strip('"'):
                    self._auth_cookies[base] = pair
                else:
                    self._auth_cookies.pop(base, None)
        if resp.code == 401:
            self._auth_cookies.pop(base, None)

    async def web_proxy(self, app_id: str, path_and_query: str, accept: str = "*/*",
                        timeout: float | None = None) -> HTTPResponse:
        """One GET through YARN's web proxy (``/proxy/<app_id><path_and_query>``): the application
        master's web UI, which for Spark in cluster mode is the driver's Spark UI.

        The caller has decided who may see it (the edge's owner check): the proxy's own warning page
        for a viewer who is not the owner is answered for that decision with its ``checked_<app>``
        cookie.  Redirects are returned, not followed.  Tried on the active RM, then the others."""
        if self._proxy_http is None:
            self._proxy_http = AsyncHTTPClient(force_instance=True, max_clients=self.proxy_max_clients,
                                               max_body_size=self.proxy_max_body)
        query_sep = "&" if "?" in path_and_query else "?"
        last_error: Exception | None = None
        bases = [u.rstrip("/") for u in self.urls]
        for i in range(len(self.urls)):
            index = (self._active + i) % len(self.urls)
            base = self.urls[index]
            url = f"{base}/proxy/{app_id}{path_and_query}"
            if not self.secure:
                url += f"{query_sep}user.name={self.service_user}"
            try:
                resp = await self._fetch(base, url, "GET", None, client=self._proxy_http,
                                         headers={"Accept": accept, "Accept-Encoding": "gzip"},
                                         cookies=(f"checked_{app_id}=true",), timeout=timeout)
            except KerberosError as e:
                raise RMUnavailable(f"the edge cannot authenticate to the ResourceManager: {e}") from e
            except HTTPTimeoutError as e:
                if "connect" in str(e).lower():  # this RM does not answer: the next one may
                    last_error = e
                    continue
                # the RM took the connection: a slow page is the driver's, not a reason to fail over
                raise ProxyPageError(504, "the page took longer than the edge waits "
                                          f"({timeout or self.request_timeout:.0f} s)") from e
            except HTTPInputError as e:
                raise ProxyPageError(502, f"the page was larger than {self.proxy_max_body // 2**20} MB or "
                                          "malformed") from e
            except (HTTPClientError, OSError, asyncio.TimeoutError) as e:
                last_error = e
                continue
            if resp.code == 599:
                last_error = resp.error
                continue
            location = resp.headers.get("Location", "") if resp.code in (301, 302, 303, 307, 308) else ""
            if location and any(location.startswith(b + "/") for b in bases if b != base):
                # a standby RM sends callers to the active one: try that one (and remember it then)
                last_error = RMError(resp.code, f"{base} is a standby ResourceManager")
                continue
            self._active = index
            return resp
        raise RMUnavailable(f"no ResourceManager answered ({', '.join(self.urls)}): {_describe(last_error)}")

    # -- typed calls ----------------------------------------------------------------------------
    async def apps(self, states: tuple[str, ...] | None = None, **params: Any) -> list[dict]:
        if states:
            params["states"] = ",".join(states)
        data = await self.request("GET", "/apps", params, call="apps")
        return ((data or {}).get("apps") or {}).get("app") or []

    async def app(self, app_id: str) -> dict:
        return (await self.request("GET", f"/apps/{app_id}", call="app"))["app"]

    async def app_state(self, app_id: str) -> str:
        return (await self.request("GET", f"/apps/{app_id}/state", call="app_state"))["state"]

    async def kill(self, app_id: str, as_user: str) -> str:
        """Ask the RM to kill an application, as its owner; returns the state the RM reports."""
        data = await self.request("PUT", f"/apps/{app_id}/state", body={"state": "KILLED"}, call="kill",
                                  do_as=as_user)
        return (data or {}).get("state", "")

    async def metrics(self) -> dict:
        return (await self.request("GET", "/metrics", call="metrics"))["clusterMetrics"]

    async def nodes(self) -> list[dict]:
        data = await self.request("GET", "/nodes", call="nodes")
        return ((data or {}).get("nodes") or {}).get("node") or []

    async def scheduler(self) -> dict:
        return (await self.request("GET", "/scheduler", call="scheduler"))["scheduler"]["schedulerInfo"]


def _rm_message(body: bytes | None) -> str:
    try:
        exc = json.loads(body or b"{}").get("RemoteException", {})
        return exc.get("message") or exc.get("exception") or "error from the ResourceManager"
    except ValueError:
        return "error from the ResourceManager"


def _describe(error: Exception | None) -> str:
    if isinstance(error, HTTPClientError) and error.code == 599:
        return str(error.message or error)
    return str(error) if error else "no answer"
