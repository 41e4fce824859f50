"""/api/v1/storage and /api/v1/files: HDFS for the caller, uploads streamed.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado import web

from ..errors import PublicError
from ..storage import clean_path
from .base import AuthenticatedHandler


class StorageHandler(AuthenticatedHandler):
    """GET /api/v1/storage: the caller's three storage roots and their usage."""

    async def get(self) -> None:
        storage = self.settings["storage"]
        await storage.ensure_provisioned(self.me)
        self.write_json({"user": self.me.name, "roots": storage.roots(self.me), "usage": await storage.usage(self.me)})


@web.stream_request_body
class FilesHandler(AuthenticatedHandler):
    """/api/v1/files/<hdfs path>: list/stat, download, upload (streamed), mkdir, rename, delete."""

    upload = None
    deferred: PublicError | None = None
    DRAIN_LIMIT = 1024 * 1024

    async def prepare(self) -> None:
        try:
            await self._prepare()
        except PublicError as e:
            # answer only once the (small, possibly empty) body has been read: tornado drops the
            # connection of a streamed request answered early, and a client still writing (or
            # reusing the keep-alive connection) sees a reset instead of the message
            self.deferred = e
            self.upload = None
            self._json_body = b""
            self.request.connection.set_max_body_size(self.DRAIN_LIMIT)

    def raise_deferred(self) -> None:
        if self.deferred is not None:
            raise self.deferred

    async def _prepare(self) -> None:
        await super().prepare()
        storage = self.settings["storage"]
        self.path_ = clean_path(self.path_args[0] if self.path_args else "")
        storage.check_within_roots(self.me, self.path_)
        await storage.ensure_provisioned(self.me)
        if self.request.method == "PUT":
            limit = storage.max_upload_bytes
            length = int(self.request.headers.get("Content-Length", "0") or 0)
            if length > limit:
                raise PublicError(413, f"uploads are limited to {limit // 1024**2} MB", reason="Payload Too Large")
            self.request.connection.set_max_body_size(limit + 1)
            overwrite = self.get_query_argument("overwrite", "1") not in ("0", "false")
            self.upload = storage.upload(self.me, self.path_, overwrite)
            self.upload.on_expired = self.upload_expired
            await self.upload.start()
        else:
            self.request.connection.set_max_body_size(64 * 1024)
            self._json_body = b""

    async def data_received(self, chunk: bytes) -> None:
        if self.deferred is not None:
            return
        upload = self.upload
        if upload is None:
            if self.request.method != "PUT":
                self._json_body += chunk
            return
        try:
            await upload.feed(chunk)
        except PublicError as e:
            await upload.abort(e)
            if self.upload is upload:
                self.answer_mid_body(e)

    def upload_expired(self, error: PublicError) -> None:
        """The upload's watchdog stopped it (timed out): answer now, unless put() already does."""
        if self.upload is not None:
            self.answer_mid_body(error)

    def answer_mid_body(self, error: PublicError) -> None:
        # tornado sends this and then closes the connection rather than read the rest of the body
        self.upload = None
        self.send_error(error.status, exc_info=(type(error), error, error.__traceback__))

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends tornado's wait for the rest of the body
        if self.upload is not None:
            upload, self.upload = self.upload, None
            asyncio.ensure_future(upload.abort())

    async def get(self, _path: str) -> None:
        self.raise_deferred()
        storage = self.settings["storage"]
        if self.get_query_argument("download", "0") in ("1", "true"):
            model = await storage.stat(self.me, self.path_)
            if model["type"] != "file":
                raise PublicError(400, f"{self.path_} is a folder; only files can be downloaded")
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(model['name'])}")
            self.set_header("Content-Length", str(model["size"]))
            async for chunk in storage.read_chunks(self.me, self.path_):
                self.write(chunk)
                await self.flush()
            self.finish()
            return
        self.write_json(await storage.listing(self.me, self.path_))

    async def put(self, _path: str) -> None:
        self.raise_deferred()
        upload, self.upload = self.upload, None
        assert upload is not None
        model = await upload.finish()
        self.write_json(model, 201)

    async def post(self, _path: str) -> None:
        self.raise_deferred()
        if self.get_query_argument("op", "") != "mkdir":
            raise PublicError(400, "POST needs op=mkdir")
        self.write_json(await self.settings["storage"].mkdir(self.me, self.path_), 201)

    async def patch(self, _path: str) -> None:
        self.raise_deferred()
        try:
            body = json.loads(self._json_body or b"{}")
            target = body["path"]
            if not isinstance(target, str):
                raise TypeError
        except (ValueError, KeyError, TypeError) as e:
            raise PublicError(400, 'PATCH needs a JSON body {"path": "/new/absolute/path"}') from e
        storage = self.settings["storage"]
        dst = clean_path(target)
        storage.check_within_roots(self.me, dst)
        self.write_json(await storage.rename(self.me, self.path_, dst))

    async def delete(self, _path: str) -> None:
        self.raise_deferred()
        recursive = self.get_query_argument("recursive", "0") in ("1", "true")
        await self.settings["storage"].delete(self.me, self.path_, recursive)
        self.set_status(204)
        self.finish()
