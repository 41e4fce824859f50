"""/api/v1/cluster and /api/v1/apps: the YARN snapshot for each caller, and confirmed kills.
"""
from __future__ import annotations

from ..jobs import APPS_ARGS
from .base import AuthenticatedHandler, valid_app_id


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
        query = self.jobs.apps_query(self.me, {name: self.arg(name, n) for name, n in APPS_ARGS.items()})
        snap = self.jobs.snapshot
        snap.require_fresh()
        self.set_header("X-Snapshot-Age", f"{snap.age or 0.0:.3f}")
        etag, body = self.jobs.apps_answer(query)
        if self.not_modified(etag):
            return
        self.finish(body)


class AppHandler(AuthenticatedHandler):
    """GET /api/v1/apps/{id}: one application; DELETE kills it (owner or admin), confirmed."""

    services_may_read = True

    async def get(self, app_id: str) -> None:
        app = await self.jobs.app_for(self.me, valid_app_id(app_id))
        self.write_json(self.jobs.public_app(app))

    async def delete(self, app_id: str) -> None:
        result = await self.jobs.kill(self.me, valid_app_id(app_id))
        self.write_json(result)
