"""/api/v1/cluster and /api/v1/apps: the YARN snapshot for each caller, and confirmed kills.
"""
from __future__ import annotations

import re

from ..clients.resourcemanager import ALL_STATES
from ..errors import PublicError
from ..jobs import AppsQuery
from ..snapshot import decode_cursor
from .base import AuthenticatedHandler, valid_app_id

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


MAX_LIMIT = 1000


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
