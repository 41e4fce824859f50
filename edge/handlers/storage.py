"""/api/v1/storage and /api/v1/files: HDFS for the caller, uploads streamed.

The handlers parse the request and call one method of the storage service (``settings["storage"]``,
:class:`~..storage.HDFSStorage`) per verb; an upload is fed from ``data_received`` as tornado reads
the body.
"""
from __future__ import annotations

import asyncio
import json

from tornado import web

from ..errors import PublicError
from ..storage import HDFSStorage
from ..uploads import Upload
from .base import AuthenticatedHandler, BaseHandler


class StorageHandler(AuthenticatedHandler):
    """GET /api/v1/storage: the caller's three storage roots and their usage."""

    async def get(self) -> None:
        self.write_json(await self.settings["storage"].overview(self.me))


@web.stream_request_body
class FilesHandler(AuthenticatedHandler):
    """/api/v1/files/<hdfs path>: list/stat, download, upload (streamed), mkdir, rename, delete."""

    upload: Upload | None = None
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

    @property
    def storage(self) -> HDFSStorage:
        return self.settings["storage"]

    def raise_deferred(self) -> None:
        if self.deferred is not None:
            raise self.deferred

    async def _prepare(self) -> None:
        BaseHandler.prepare(self)
        await self.authenticate()
        self.path_ = await self.storage.checked_path(self.me, self.path_args[0] if self.path_args else "")
        if self.request.method == "PUT":
            length = int(self.request.headers.get("Content-Length", "0") or 0)
            overwrite = self.get_query_argument("overwrite", "1") not in ("0", "false")
            self.upload = self.storage.upload(self.me, self.path_, overwrite, length, on_expired=self.upload_expired)
            self.request.connection.set_max_body_size(self.storage.max_upload_bytes + 1)
            await self.upload.start()  # held meanwhile: a client that leaves now aborts it
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
        self.closing = True
        self.send_error(error.status, exc_info=(type(error), error, error.__traceback__))

    closing = False

    def write_error(self, status_code: int, **kwargs) -> None:
        if self.closing:  # and says so: a proxy keeping connections alive must not reuse this one
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends tornado's wait for the rest of the body
        if self.upload is not None:
            upload, self.upload = self.upload, None
            asyncio.ensure_future(upload.abort())

    async def get(self, _path: str) -> None:
        self.raise_deferred()
        if self.get_query_argument("download", "0") not in ("1", "true"):
            self.write_json(await self.storage.listing(self.me, self.path_))
            return
        download = await self.storage.download(self.me, self.path_)
        for name, value in download.headers.items():
            self.set_header(name, value)
        async for chunk in download.chunks:
            self.write(chunk)
            await self.flush()
        self.finish()

    async def put(self, _path: str) -> None:
        self.raise_deferred()
        upload, self.upload = self.upload, None
        assert upload is not None
        self.write_json(await self.storage.finish_upload(upload), 201)

    async def post(self, _path: str) -> None:
        self.raise_deferred()
        if self.get_query_argument("op", "") != "mkdir":
            raise PublicError(400, "POST needs op=mkdir")
        self.write_json(await self.storage.mkdir(self.me, self.path_), 201)

    async def patch(self, _path: str) -> None:
        self.raise_deferred()
        try:
            body = json.loads(self._json_body or b"{}")
            target = body["path"]
            if not isinstance(target, str):
                raise TypeError
        except (ValueError, KeyError, TypeError) as e:
            raise PublicError(400, 'PATCH needs a JSON body {"path": "/new/absolute/path"}') from e
        self.write_json(await self.storage.rename(self.me, self.path_, target))

    async def delete(self, _path: str) -> None:
        self.raise_deferred()
        recursive = self.get_query_argument("recursive", "0") in ("1", "true")
        await self.storage.delete(self.me, self.path_, recursive)
        self.set_status(204)
        self.finish()
