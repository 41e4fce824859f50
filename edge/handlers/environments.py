"""/api/v1/environments: list, create, show, change, rebuild, delete, the build log and its events.
"""
from __future__ import annotations

import json
from urllib.parse import quote

from tornado.iostream import StreamClosedError

from ..errors import PublicError
from .base import AuthenticatedHandler


class EnvironmentBase(AuthenticatedHandler):
    """Shared plumbing of the environment handlers."""

    @property
    def envs(self):  # noqa: ANN201
        envs = self.settings.get("environments")
        if envs is None:
            raise PublicError(503, "environments are not configured on this edge")
        return envs


class EnvironmentsHandler(EnvironmentBase):
    """GET /api/v1/environments (own + shared; ?owner=all for admins), POST creates one."""

    def get(self) -> None:
        owner = self.arg("owner", 100)
        if owner not in (None, "", "all", "*"):
            raise PublicError(400, "`owner` can only be all (admins)")
        self.write_json({"environments": self.envs.list(self.me, everyone=owner in ("all", "*"))})

    async def post(self) -> None:
        env = await self.envs.create(self.me, self.json_body())
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{quote(env['owner'], safe='')}/{env['name']}")
        self.write_json(env, 202)


class EnvironmentHandler(EnvironmentBase):
    """GET / PATCH / DELETE /api/v1/environments/{owner}/{name}."""

    def get(self, owner: str, name: str) -> None:
        self.write_json(self.envs.show(self.me, owner, name))

    async def patch(self, owner: str, name: str) -> None:
        self.write_json(await self.envs.update(self.me, owner, name, self.json_body()))

    async def delete(self, owner: str, name: str) -> None:
        await self.envs.delete(self.me, owner, name)
        self.write_json({"deleted": True})


class EnvironmentRebuildHandler(EnvironmentBase):
    """POST /api/v1/environments/{owner}/{name}/rebuild: resolve and build it again."""

    async def post(self, owner: str, name: str) -> None:
        self.write_json(await self.envs.rebuild(self.me, owner, name), 202)


class EnvironmentLogHandler(EnvironmentBase):
    """GET /api/v1/environments/{owner}/{name}/log: the whole build log as text."""

    async def get(self, owner: str, name: str) -> None:
        path = self.envs.read_log(self.me, owner, name)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        if path is None:
            self.finish("")
            return
        with open(path, "rb") as f:
            while chunk := f.read(256 * 1024):
                self.write(chunk)
                await self.flush()
        self.finish()


class EnvironmentEventsHandler(EnvironmentBase):
    """GET /api/v1/environments/{owner}/{name}/events: progress and log lines as Server-Sent Events."""

    async def get(self, owner: str, name: str) -> None:
        events = self.envs.events(self.me, owner, name)
        first = await events.__anext__()  # 404s before any byte of the stream is sent
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("X-Accel-Buffering", "no")
        try:
            await self._send(*first)
            async for event, data in events:
                await self._send(event, data)
        except StreamClosedError:
            return
        finally:
            await events.aclose()
        self.finish()

    async def _send(self, event: str, data: dict) -> None:
        if event == "ping":
            self.write(": ping\n\n")  # a comment: keeps proxies from closing an idle stream
        else:
            self.write(f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n")
        await self.flush()
