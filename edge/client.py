"""Python clients for the edge API: sync (requests) for scripts, async (tornado) for services.

Both find the edge the way Jupyter tools find the hub: an explicit URL and token, or
$YARDLAB_EDGE_URL, else $JUPYTERHUB_API_URL with ``/hub/api`` replaced by the edge's service
path; the token from $JUPYTERHUB_API_TOKEN.
"""
from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, urlencode

SERVICE_PATH = "/services/yardlab-edge"


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
        import requests

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


class AsyncEdgeClient:
    """Non-blocking client for the hub service and the server extension (tornado)."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120.0) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.url = edge_url_from_env(url)
        self.token = token_from_env(token)
        self.timeout = timeout
        self.http = AsyncHTTPClient()

    async def request(self, method: str, path: str, token: str | None = None, body: Any = None,
                      headers: dict[str, str] | None = None, **params: Any) -> tuple[int, dict[str, str], Any]:
        """One call with the caller's own token (default: this client's); returns status, headers, JSON."""
        from tornado.httpclient import HTTPRequest

        query = f"?{urlencode(params)}" if params else ""
        req = HTTPRequest(f"{self.url}/api/v1{path}{query}", method=method,
                          headers={"Authorization": f"token {token or self.token}", **(headers or {})},
                          body=json.dumps(body) if body is not None else None,
                          request_timeout=self.timeout, allow_nonstandard_methods=True)
        resp = await self.http.fetch(req, raise_error=False)
        if resp.code == 599:
            raise EdgeAPIError(503, f"the yardlab edge service is unreachable: {resp.error}")
        data = json.loads(resp.body) if resp.body else None
        return resp.code, dict(resp.headers.get_all()), data

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
