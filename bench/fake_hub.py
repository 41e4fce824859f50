"""A stand-in for JupyterHub's token check, for benchmarks that simulate 1,000 users.

It answers the one request jupyterhub 6.1.1's ``HubAuth.user_for_token`` makes
(``jupyterhub/services/auth.py``: ``_check_hub_authorization`` -> ``_api_request``):

    GET {api_url}/user                      e.g. http://127.0.0.1:8081/hub/api/user
    Authorization: token <the USER's token>  (not the service's: the caller's header replaces the
                                              service token, which ``_api_request`` only sets by
                                              ``setdefault``)

no query and no body.  A 200 is the user model; a 403 means "no such user" (``allow_403``), any
other error status becomes a 500 in the service.  Here ``tok-<name>`` is user ``<name>``,
``tok-admin`` is an admin with ``custom:yardlab:admin``, anything else is 403.  ``GET /hub/api/``
answers the version.  ``GET /__stats`` counts requests (and which credentials they carried);
``GET /__reset`` returns the counts and zeroes them.

    .venv/bin/python bench/fake_hub.py [--port 0] [--service-token bench-service-token]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter

import tornado.web

import server_process

HUB_VERSION = "6.1.1"
SERVICE_NAME = "yardlab-edge"
ADMIN_SCOPE = "custom:yardlab:admin"
TOKEN_PATTERN = re.compile(r"(?:token|bearer)\s+(.+)", re.IGNORECASE)  # HubAuth.auth_header_pat
USER_TOKEN = re.compile(r"tok-([a-z0-9][a-z0-9._-]*)")


def user_model(token: str) -> dict | None:
    """The model ``GET /hub/api/user`` returns for a token, or None (403) for an unknown one."""
    match = USER_TOKEN.fullmatch(token)
    if not match:
        return None
    name = match.group(1)
    admin = name == "admin"
    scopes = [f"access:services!service={SERVICE_NAME}", "self"] + ([ADMIN_SCOPE] if admin else [])
    return {"kind": "user", "name": name, "admin": admin, "groups": [], "scopes": scopes, "session_id": None}


class CheckLedger:
    """What the fake hub was asked: per path, per kind of credential, distinct tokens."""

    def __init__(self, service_token: str) -> None:
        self.service_token = service_token
        self.reset()

    def reset(self) -> dict:
        before = self.snapshot() if hasattr(self, "paths") else {}
        self.since = time.time()
        self.paths: Counter[str] = Counter()
        self.credentials: Counter[str] = Counter()
        self.tokens: set[str] = set()
        self.last_request: dict = {}
        return before

    def record(self, path: str, token: str | None) -> None:
        self.paths[path] += 1
        if token is None:
            self.credentials["none"] += 1
        elif token == self.service_token:
            self.credentials["service token"] += 1
        else:
            self.credentials["other token"] += 1
            self.tokens.add(token)

    def snapshot(self) -> dict:
        return {"since": self.since, "seconds": time.time() - self.since, "total": sum(self.paths.values()),
                "paths": dict(self.paths), "credentials": dict(self.credentials),
                "distinct_tokens": len(self.tokens), "last_request": self.last_request}


class HubHandler(tornado.web.RequestHandler):
    """Base: reads the ``Authorization`` token the way HubAuth sends it, and counts the call."""

    def initialize(self, ledger: CheckLedger) -> None:
        self.ledger = ledger

    def prepare(self) -> None:
        # kept so the shape of a real client's request can be read back (token values masked)
        headers = dict(self.request.headers)
        if "Authorization" in headers:
            token = self.token()
            kind = "service token" if token == self.ledger.service_token else "user token"
            headers["Authorization"] = headers["Authorization"].split()[0] + f" <{kind}>"
        self.ledger.last_request = {"method": self.request.method, "uri": self.request.uri,
                                    "headers": headers, "body_bytes": len(self.request.body or b"")}

    def token(self) -> str | None:
        match = TOKEN_PATTERN.match(self.request.headers.get("Authorization", ""))
        return match.group(1).strip() if match else None

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish({"status": status_code, "message": self._reason})


class UserHandler(HubHandler):
    """``GET /hub/api/user``: who owns the token in the Authorization header."""

    def get(self) -> None:
        token = self.token()
        self.ledger.record("/hub/api/user", token)
        model = user_model(token) if token else None
        if model is None:
            raise tornado.web.HTTPError(403)
        self.finish(model)


class VersionHandler(HubHandler):
    """``GET /hub/api/``: the hub's version, no credentials needed."""

    def get(self) -> None:
        self.ledger.record("/hub/api/", self.token())
        self.finish({"version": HUB_VERSION})


class StatsHandler(tornado.web.RequestHandler):
    def initialize(self, ledger: CheckLedger, reset: bool) -> None:
        self.ledger = ledger
        self.reset = reset

    def get(self) -> None:
        self.finish(self.ledger.reset() if self.reset else self.ledger.snapshot())


def make_app(service_token: str = "bench-service-token") -> tornado.web.Application:
    ledger = CheckLedger(service_token)
    return tornado.web.Application([
        (r"/hub/api/user", UserHandler, {"ledger": ledger}),
        (r"/hub/api/?", VersionHandler, {"ledger": ledger}),
        (r"/__stats", StatsHandler, {"ledger": ledger, "reset": False}),
        (r"/__reset", StatsHandler, {"ledger": ledger, "reset": True}),
    ], log_function=lambda handler: None)


def hub_stats(url: str, reset: bool = False) -> dict:
    """The fake hub's request counts (and zero them with ``reset``)."""
    return server_process.http_json(f"{url}/{'__reset' if reset else '__stats'}")


async def serve(args: argparse.Namespace) -> None:
    server = make_app(args.service_token).listen(args.port, "127.0.0.1")
    server_process.announce_ready(server_process.listen_url(server))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free one)")
    parser.add_argument("--service-token", default="bench-service-token",
                        help="the service's own API token (only counted: HubAuth does not send it on token checks)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
