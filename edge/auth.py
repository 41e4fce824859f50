"""Who is calling: every request carries a JupyterHub token, which the hub resolves (cached <= 60 s).

Identity never comes from a header, a query parameter (``user.name``, ``doAs``) or a body.
Admin power is the custom scope ``custom:yardlab:admin``, granted to hub admins by a role.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from jupyterhub.services.auth import HubAuth, check_scopes
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.web import HTTPError
from traitlets import Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .clock import monotonic
from .errors import PublicError

ADMIN_SCOPE = "custom:yardlab:admin"
_AUTH_HEADER = re.compile(r"^(?:token|bearer)\s+([\x21-\x7e]{1,512})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    """The caller, as the hub knows them."""

    name: str
    admin: bool
    kind: str = "user"
    groups: tuple[str, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "admin": self.admin, "groups": list(self.groups)}


class TokenIdentifier(LoggingConfigurable):
    """Resolves JupyterHub API tokens to identities with the hub's REST API (via HubAuth)."""

    hub_api_url = Unicode(
        help="The hub's REST API, e.g. http://127.0.0.1:8081/hub/api. Default: $JUPYTERHUB_API_URL.",
    ).tag(config=True)

    @default("hub_api_url")
    def _hub_api_url_default(self) -> str:
        import os

        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    hub_api_token = Unicode(
        help="The edge's own API token (the hub service `yardlab-edge`). Default: $JUPYTERHUB_API_TOKEN.",
    ).tag(config=True)

    @default("hub_api_token")
    def _hub_api_token_default(self) -> str:
        import os

        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    service_name = Unicode(
        "yardlab-edge",
        help="The edge's hub service name; tokens need `access:services!service=<it>` to use the edge.",
    ).tag(config=True)

    admin_scope = Unicode(ADMIN_SCOPE, help="The hub scope that makes a caller a yardlab admin.").tag(config=True)

    cache_max_age = Integer(
        60, help="""Seconds a token's identity is cached: 1 to 60.

        A revoked token, or an admin whose admin role was taken away, keeps working through the
        edge for at most this long.""").tag(config=True)

    @validate("cache_max_age")
    def _check_cache(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value <= 0:
            # HubAuth reads 0 as "cache forever": a revoked token would never be noticed
            raise TraitError(f"TokenIdentifier.cache_max_age must be 1 to 60 seconds, not {value}")
        return min(value, 60)

    reserved_names = List(
        Unicode(),
        ["root", "hdfs", "yarn", "mapred", "hadoop", "hive", "spark", "livy", "httpfs", "HTTP", "kafka",
         "zookeeper", "nobody", "dr.who", "yardlab", "yardlab-edge"],
        help="""Hub user names refused at the edge: Hadoop service and superuser accounts.

        Every request acts as its user through doAs, so a hub user named like a service account
        would act with that account's powers.  Compared without regard to case; the edge adds
        the account it runs as itself (see `EdgeApp`).""",
    ).tag(config=True)

    user_name_pattern = Unicode(
        r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}",
        help="""What a hub user name must look like (a regular expression the whole name must match)
        for the edge to act as that user on Hadoop; other names get 403.

        The default takes ASCII letters, digits, '.', '_' and '-', starting with a letter, digit or
        '_', up to 64 characters.  Hadoop reads a proxied name holding '@' or '/' as a Kerberos
        principal and maps it through auth_to_local: a hub user called "hdfs@REALM" or
        "nn/host@REALM" would ask to act as the HDFS superuser.  A leading '-' reads as an option to
        command-line tools, '..' as a path step in /user/<name>, and non-ASCII letters allow names
        that look like another user's ("аlice" with a Cyrillic а).  A site whose hub names are
        e-mail addresses maps them to plain names in its authenticator (e.g. `username_claim`).""",
    ).tag(config=True)

    @validate("user_name_pattern")
    def _check_user_name_pattern(self, proposal: Any) -> str:
        try:
            re.compile(proposal["value"])
        except re.error as e:
            raise TraitError(f"TokenIdentifier.user_name_pattern is not a regular expression: {e}") from e
        return proposal["value"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # resolved identities by token hash: the hub is asked at most once per token per cache_max_age
        self._identities: dict[bytes, tuple[float, Identity]] = {}
        self.service_accounts: set[str] = set()  # the edge's own Hadoop account(s), added by the app
        self.hub_auth = HubAuth(api_url=self.hub_api_url, api_token=self.hub_api_token,
                                cache_max_age=self.cache_max_age,
                                access_scopes={f"access:services!service={self.service_name}"},
                                allow_token_in_url=False, parent=self)

    def is_reserved(self, name: str) -> bool:
        reserved = {n.casefold() for n in (*self.reserved_names, *self.service_accounts)}
        return name.casefold() in reserved

    @staticmethod
    def token_from_header(value: str | None) -> str:
        if not value:
            raise PublicError(401, "a JupyterHub API token is required: send `Authorization: token <token>`",
                              reason="Unauthorized")
        m = _AUTH_HEADER.match(value)
        if not m:
            raise PublicError(401, "the Authorization header must be `token <token>` or `Bearer <token>`",
                              reason="Unauthorized")
        return m.group(1)

    def cached_identity(self, authorization: str | None) -> Identity | None:
        """The caller when the cache still holds them (no await: the hot path); None otherwise."""
        token = self.token_from_header(authorization)
        cached = self._identities.get(hashlib.sha256(token.encode()).digest())
        if cached is not None and cached[0] > monotonic():
            return cached[1]
        return None

    async def identify(self, authorization: str | None) -> Identity:
        identity = self.cached_identity(authorization)
        if identity is not None:
            return identity
        token = self.token_from_header(authorization)
        key = hashlib.sha256(token.encode()).digest()
        identity = await self._identify(token)
        if len(self._identities) > 100_000:
            self._identities.clear()
        self._identities[key] = (monotonic() + self.cache_max_age, identity)
        return identity

    async def _identify(self, token: str) -> Identity:
        try:
            # the edge caches identities itself (above): HubAuth's own cache would double the time a
            # revoked token keeps working
            model = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        except (HTTPClientError, HTTPError, OSError) as e:
            self.log.warning("hub token check failed: %s", e)
            raise PublicError(503, "JupyterHub could not be asked who this token belongs to; try again shortly",
                              reason="Hub unavailable") from e
        if not model:
            raise PublicError(401, "this token is not valid (expired, revoked or mistyped)", reason="Unauthorized")
        scopes = set(model.get("scopes") or [])
        if not check_scopes(self.hub_auth.access_scopes, scopes):
            raise PublicError(403, f"this token may not use yardlab (it lacks access:services!service="
                                   f"{self.service_name}); make a token with that scope on /hub/token",
                              reason="Forbidden")
        kind = model.get("kind", "user")
        name = model.get("name") or ""
        admin = bool(check_scopes({self.admin_scope}, scopes))
        if kind == "service" and name and admin:
            # a hub service granted the admin scope (the hub service's sampler): reads only,
            # enforced in the handlers; it never acts as a user
            return Identity(name=name, kind="service", admin=True, scopes=frozenset(scopes))
        if kind != "user" or not name:
            raise PublicError(403, "only JupyterHub users can use yardlab's API", reason="Forbidden")
        if not re.fullmatch(self.user_name_pattern, name, flags=re.ASCII):
            self.log.warning("refused hub user %r: not a name Hadoop can act as safely", name[:100])
            raise PublicError(403, f"the JupyterHub user name {name[:100]!r} cannot be used as a Hadoop user name "
                                   "here (letters, digits, '.', '_' and '-', starting with a letter, digit or '_', "
                                   "at most 64 characters); an administrator must give this account another name",
                              reason="Forbidden")
        if self.is_reserved(name):
            self.log.warning("refused hub user %r: the name of a Hadoop service account", name)
            raise PublicError(403, f"the JupyterHub user name {name[:100]!r} is reserved for a Hadoop service "
                                   "account on this cluster, so yardlab cannot act as it; an administrator must "
                                   "give this account another name", reason="Forbidden")
        return Identity(name=name, kind=kind, admin=bool(check_scopes({self.admin_scope}, scopes)),
                        groups=tuple(model.get("groups") or ()), scopes=frozenset(scopes))


async def hub_list(http: Any, identifier: TokenIdentifier, path: str, timeout: float = 30,
                   **params: Any) -> list[dict]:
    """Every item of a paginated hub API list (``params`` become its query), with the edge's own token.  A
    ``next`` that does not move forward ends it (a hub answering wrongly must not loop the edge)."""
    items: list[dict] = []
    offset = 0
    while True:
        url = f"{identifier.hub_api_url.rstrip('/')}{path}?{urlencode({**params, 'offset': offset, 'limit': 200})}"
        resp = await http.fetch(HTTPRequest(url, headers={
            "Authorization": f"token {identifier.hub_api_token}",
            "Accept": "application/jupyterhub-pagination+json"}, request_timeout=timeout, connect_timeout=10))
        data = json.loads(resp.body)
        page = data.get("items", []) if isinstance(data, dict) else data
        items.extend(page)
        nxt = (data.get("_pagination") or {}).get("next") if isinstance(data, dict) else None
        if not nxt or not page or int(nxt.get("offset", 0)) <= offset:
            return items
        offset = int(nxt["offset"])


class AdminRoster(LoggingConfigurable):
    """The hub's current yardlab admins: users holding an admin role themselves or through a group.

    Admins get things on first contact (an ACL entry on /public) that must go when they stop being
    admins; the edge compares those with this list every `interval` seconds.  The edge's service
    token needs `list:users`, `read:roles:users`, `list:groups`, `read:groups:name` and
    `read:roles:groups`.  When the hub cannot be asked, nothing is changed.
    """

    admin_roles = List(
        Unicode(), ["yardlab-admin"],
        help="Hub roles that grant `custom:yardlab:admin` (held by users directly or through a group).",
    ).tag(config=True)
    interval = Float(
        300.0, help="Seconds between reconciliations with the hub's current admins (0: never).").tag(config=True)

    def __init__(self, identifier: TokenIdentifier, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.identifier = identifier
        self.http = AsyncHTTPClient()

    async def _all(self, path: str) -> list[dict]:
        """Every item of a paginated hub API list."""
        return await hub_list(self.http, self.identifier, path)

    async def _get(self, path: str) -> dict:
        url = f"{self.identifier.hub_api_url.rstrip('/')}{path}"
        resp = await self.http.fetch(HTTPRequest(url, headers={"Authorization": f"token {self.identifier.hub_api_token}"},
                                                 request_timeout=30, connect_timeout=10))
        return json.loads(resp.body)

    async def is_admin(self, name: str) -> bool | None:
        """Whether the hub gives ``name`` an admin role now (directly or through a group); None: cannot say."""
        roles = set(self.admin_roles)
        try:
            user = await self._get(f"/users/{quote(name, safe='')}")
            if "roles" not in user:
                return None
            if roles & set(user.get("roles") or ()):
                return True
            for group in user.get("groups") or ():
                g = await self._get(f"/groups/{quote(group, safe='')}")
                if "roles" not in g:
                    return None
                if roles & set(g.get("roles") or ()):
                    return True
        except HTTPClientError as e:
            if e.code == 404:
                return False  # no such hub user any more
            self.log.warning("could not ask the hub whether %s is an admin: %s", name, e)
            return None
        except (OSError, ValueError, asyncio.TimeoutError) as e:
            self.log.warning("could not ask the hub whether %s is an admin: %s", name, e)
            return None
        return False

    async def admins(self) -> set[str] | None:
        """The names of the current admins, or None when the hub could not say."""
        roles = set(self.admin_roles)
        try:
            users, groups = await asyncio.gather(self._all("/users"), self._all("/groups"))
        except (HTTPClientError, OSError, ValueError, asyncio.TimeoutError) as e:
            self.log.warning("could not list the hub's admins (nothing reconciled): %s", e)
            return None
        if any("roles" not in u for u in users) or any("roles" not in g for g in groups):
            self.log.warning("the hub lists users or groups without their roles: the edge's token lacks "
                             "read:roles:users or read:roles:groups (nothing reconciled)")
            return None
        admin_groups = {g["name"] for g in groups if roles & set(g.get("roles") or ())}
        return {u["name"] for u in users
                if roles & set(u.get("roles") or ()) or admin_groups & set(u.get("groups") or ())}
