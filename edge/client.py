"""Python clients for the edge API: sync (requests) for scripts, async (tornado) for services.

Both find the edge the way Jupyter tools find the hub: an explicit URL and token, or
$YARDLAB_EDGE_URL, else $JUPYTERHUB_API_URL with ``/hub/api`` replaced by the edge's service
path; the token from $JUPYTERHUB_API_TOKEN.
"""
from __future__ import annotations

import json
import os
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

SERVICE_PATH = "/services/yardlab-edge"
# what a relay passes on besides status and body: the type (is a 5xx the edge's JSON?) and the version
RELAYED_HEADERS = ("Content-Type", "ETag")


class EdgeAPIError(Exception):
    """The edge answered with an error; ``message`` is meant for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def edge_url_from_env(url: str | None = None) -> str:
    if url:
        return url.rstrip("/")
    if os.environ.get("YARDLAB_EDGE_URL"):
        return os.environ["YARDLAB_EDGE_URL"].rstrip("/")
    hub_api = os.environ.get("JUPYTERHUB_API_URL")
    if hub_api:
        base = hub_api.rstrip("/")
        if base.endswith("/hub/api"):
            base = base[: -len("/hub/api")]
        return base + SERVICE_PATH
    raise EdgeAPIError(0, "no edge URL: pass --url, or set YARDLAB_EDGE_URL or JUPYTERHUB_API_URL")


def token_from_env(token: str | None = None) -> str:
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN") or os.environ.get("YARDLAB_TOKEN")
    if not token:
        raise EdgeAPIError(0, "no token: pass --token or set JUPYTERHUB_API_TOKEN (make one on /hub/token)")
    return token


def error_from_response(status: int, body: bytes | str) -> EdgeAPIError:
    try:
        message = json.loads(body).get("message") or ""
    except (ValueError, AttributeError):
        message = ""
    return EdgeAPIError(status, message or f"HTTP {status}")


def _apps_params(user: str | None, state: str | None, queue: str | None, search: str | None,
                 limit: int | None, cursor: str | None) -> dict[str, Any]:
    params = {"user": user, "state": state, "queue": queue, "search": search, "limit": limit, "cursor": cursor}
    return {k: v for k, v in params.items() if v is not None}


class EdgeClient:
    """Blocking client, for scripts and the `yardlab` command."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120.0) -> None:
        self.url = edge_url_from_env(url)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token_from_env(token)}"
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = self.session.request(method, f"{self.url}/api/v1{path}", params=params or None, timeout=self.timeout,
                                 json=body)
        if r.status_code >= 400:
            raise error_from_response(r.status_code, r.content)
        if not r.content:
            return None
        return r.json() if r.headers.get("Content-Type", "").startswith("application/json") else r.text

    # -- environments -------------------------------------------------------------------------------
    def environments(self, everyone: bool = False) -> list[dict]:
        return self.request("GET", "/environments", **({"owner": "all"} if everyone else {}))["environments"]

    def environment(self, owner: str, name: str) -> dict:
        return self.request("GET", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}")

    def environment_log(self, owner: str, name: str) -> str:
        return self.request("GET", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}/log") or ""

    def create_environment(self, spec: dict) -> dict:
        return self.request("POST", "/environments", body=spec)

    def update_environment(self, owner: str, name: str, changes: dict) -> dict:
        return self.request("PATCH", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}", body=changes)

    def rebuild_environment(self, owner: str, name: str) -> dict:
        return self.request("POST", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}/rebuild")

    def delete_environment(self, owner: str, name: str) -> None:
        self.request("DELETE", f"/environments/{quote(owner, safe='')}/{quote(name, safe='')}")

    def environment_events(self, owner: str, name: str):  # noqa: ANN201 - a generator of (event, data)
        """Server-sent progress and log events of a build, until it ends."""
        url = f"{self.url}/api/v1/environments/{quote(owner, safe='')}/{quote(name, safe='')}/events"
        with self.session.get(url, stream=True, timeout=(10, 3600)) as r:
            if r.status_code >= 400:
                raise error_from_response(r.status_code, r.content)
            event = "message"
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    yield event, json.loads(line[6:])

    def me(self) -> dict:
        return self.request("GET", "/me")

    def cluster(self) -> dict:
        return self.request("GET", "/cluster")

    def apps(self, user: str | None = None, state: str | None = None, queue: str | None = None,
             search: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict:
        return self.request("GET", "/apps", **_apps_params(user, state, queue, search, limit, cursor))

    def all_apps(self, **filters: Any) -> list[dict]:
        out, cursor = [], None
        while True:
            page = self.apps(cursor=cursor, limit=1000, **filters)
            out.extend(page["apps"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def app(self, app_id: str) -> dict:
        return self.request("GET", f"/apps/{quote(app_id, safe='')}")

    def kill(self, app_id: str) -> dict:
        return self.request("DELETE", f"/apps/{quote(app_id, safe='')}")


class EdgeReply(NamedTuple):
    """The edge's answer as it came: for services that pass it on byte for byte."""

    status: int
    headers: dict[str, str]  # only RELAYED_HEADERS, those the edge sent
    body: bytes


class AsyncEdgeClient:
    """Non-blocking client for the hub service and the server extension (tornado)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120.0) -> None:
        self.url = edge_url_from_env(url)
        self.token = token_from_env(token)
        self.timeout = timeout
        self.http = AsyncHTTPClient()

    async def _fetch(self, method: str, path: str, token: str | None, body: str | None,
                     headers: dict[str, str] | None, params: dict[str, Any]) -> HTTPResponse:
        # a caller's token that is empty stays empty: never this client's own (the service's) instead
        token = self.token if token is None else token
        query = f"?{urlencode(params)}" if params else ""
        req = HTTPRequest(f"{self.url}/api/v1{path}{query}", method=method,
                          headers={"Authorization": f"token {token}", **(headers or {})},
                          body=body, request_timeout=self.timeout, allow_nonstandard_methods=True)
        try:
            resp = await self.http.fetch(req, raise_error=False)
        except OSError as e:  # refused, reset, no route: raise_error=False covers only HTTP answers
            raise EdgeAPIError(503, f"the yardlab edge service is unreachable: {e}") from e
        if resp.code == 599:  # a timeout
            raise EdgeAPIError(503, f"the yardlab edge service is unreachable: {resp.error}")
        return resp

    async def request(self, method: str, path: str, token: str | None = None, body: Any = None,
                      headers: dict[str, str] | None = None, **params: Any) -> tuple[int, dict[str, str], Any]:
        """One call with the caller's own token (None: this client's); returns status, headers, JSON."""
        resp = await self._fetch(method, path, token, json.dumps(body) if body is not None else None, headers, params)
        data = json.loads(resp.body) if resp.body else None
        return resp.code, dict(resp.headers.get_all()), data

    async def relay(self, method: str, path: str, token: str | None = None, if_none_match: str | None = None,
                    **params: Any) -> EdgeReply:
        """One call whose answer is to be passed on unchanged: status, ETag and body bytes, not parsed.

        Parameters that are None are left out; ``if_none_match`` (the caller's) lets the edge answer 304.
        """
        params = {k: v for k, v in params.items() if v is not None}
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        resp = await self._fetch(method, path, token, None, headers, params)
        kept = {name: resp.headers[name] for name in RELAYED_HEADERS if name in resp.headers}
        return EdgeReply(resp.code, kept, resp.body or b"")

    async def call(self, method: str, path: str, **params: Any) -> Any:
        status, _, data = await self.request(method, path, **params)
        if status >= 400:
            raise EdgeAPIError(status, (data or {}).get("message") or f"HTTP {status}")
        return data

    async def me(self) -> dict:
        return await self.call("GET", "/me")

    async def cluster(self) -> dict:
        return await self.call("GET", "/cluster")

    async def apps(self, user: str | None = None, state: str | None = None, queue: str | None = None,
                   search: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict:
        return await self.call("GET", "/apps", **_apps_params(user, state, queue, search, limit, cursor))

    async def app(self, app_id: str) -> dict:
        return await self.call("GET", f"/apps/{quote(app_id, safe='')}")

    async def kill(self, app_id: str) -> dict:
        return await self.call("DELETE", f"/apps/{quote(app_id, safe='')}")
