"""Operations: health (no token), Prometheus metrics (admins), and who the caller is.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import metrics
from ..errors import PublicError
from .base import AuthenticatedHandler, BaseHandler


class HealthHandler(BaseHandler):
    """Readiness without a token and without data: 200 when the YARN snapshot is current.

    With Kerberos on, a failed check of the edge's login (KDC unreachable, keytab wrong) answers 503
    with that sentence as ``reason``, so the operator sees the cause before the tickets run out.
    """

    def get(self) -> None:
        kerberos = self.settings.get("kerberos")
        if kerberos is not None and kerberos.enabled and kerberos.last_error:
            self.write_json({"status": "unavailable", "reason": kerberos.last_error}, 503)
            return
        ok = self.jobs.snapshot.last_success is not None and self.jobs.snapshot.last_error is None
        gateway = self.settings.get("gateway")
        if gateway is not None and gateway.enabled and not gateway.ready.is_set():
            ok = False
        self.write_json({"status": "ok" if ok else "unavailable"}, 200 if ok else 503)


class MetricsHandler(AuthenticatedHandler):
    """Prometheus metrics, for admins' tokens (or anyone, if the operator says so)."""

    async def prepare(self) -> None:
        BaseHandler.prepare(self)
        if self.settings.get("metrics_require_auth", True):
            await self.authenticate()
            if not self.me.admin:
                raise PublicError(403, "metrics are for yardlab admins")

    def get(self) -> None:
        age = self.jobs.snapshot.age
        metrics.SNAPSHOT_AGE.set(age if age is not None else float("nan"))
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest())


class MeHandler(AuthenticatedHandler):
    """GET /api/v1/me: who the token belongs to."""

    services_may_read = True

    def get(self) -> None:
        self.write_json(self.me.to_json())
