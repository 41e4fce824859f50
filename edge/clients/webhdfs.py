"""The WebHDFS client: typed methods over the `hdfs` library's public API, acting as a user (doAs).

Every blocking call runs in the client's own thread pool (`run`), so nothing waits on the event
loop.  Errors come out as :class:`WebHDFSError` (HDFS answered: Hadoop's exception name and
message) or :class:`WebHDFSUnavailable` (no answer); the services that use the client decide what
a user is told.  :meth:`WebHDFSClient.session` is the one place a connection to the NameNode is
made, which is where authentication to Hadoop plugs in: ``user.name=<service_user>`` (simple auth),
or with Kerberos a SPNEGO header from the edge's keytab on every request (and no ``user.name``);
either way users are acted for with ``doas=``.
"""
from __future__ import annotations

import asyncio
import getpass
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import requests
from hdfs import Client, HdfsError, InsecureClient
from traitlets import Float, Instance, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from ..kerberos import Kerberos, KerberosError, SpnegoAuth

T = TypeVar("T")


class WebHDFSError(Exception):
    """HDFS refused or failed an operation; ``kind`` is Hadoop's exception name (may be empty)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class WebHDFSUnavailable(WebHDFSError):
    """The NameNode (or a DataNode) did not answer; ``url`` is the NameNode's, ``reason`` what went wrong."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__("", f"WebHDFS at {url} is unreachable: {reason}")
        self.url = url
        self.reason = reason


class WebHDFSClient(LoggingConfigurable):
    """WebHDFS as the service account, or as a user through it (doAs)."""

    url = Unicode(help="The NameNode's web address, e.g. http://namenode:9870. Default: $YARDLAB_WEBHDFS_URL.",
                  ).tag(config=True)

    @default("url")
    def _url_default(self) -> str:
        return os.environ.get("YARDLAB_WEBHDFS_URL", "http://127.0.0.1:9870")

    service_user = Unicode(help="The account the edge authenticates as (an HDFS proxy user).").tag(config=True)

    @default("service_user")
    def _service_user_default(self) -> str:
        return getpass.getuser()

    timeout = Float(30.0, help="Seconds to wait for one WebHDFS call.").tag(config=True)
    threads = Integer(16, help="Threads for blocking WebHDFS calls.").tag(config=True)
    kerberos = Instance(Kerberos, allow_none=True, help="The edge's Kerberos login; None or disabled: simple auth.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="webhdfs")
        self._sessions: dict[str, Client] = {}

    # -- the seam: one connection per acting user -----------------------------------------------------
    def session(self, user: str | None) -> Client:
        """The `hdfs` library's client acting as ``user`` (None: the service account itself)."""
        key = user or ""
        if key not in self._sessions:
            if self.kerberos is not None and self.kerberos.enabled:
                http = requests.Session()
                http.auth = SpnegoAuth(self.kerberos)
                self._sessions[key] = Client(self.url, proxy=user, timeout=self.timeout, session=http)
            else:
                self._sessions[key] = InsecureClient(self.url, user=self.service_user, proxy=user,
                                                     timeout=self.timeout)
        return self._sessions[key]

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking WebHDFS work in the client's pool; its errors come out as WebHDFSError."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        except HdfsError as e:
            raise WebHDFSError(getattr(e, "exception", "") or "", str(e)) from e
        except KerberosError as e:  # no ticket for the NameNode: as good as no answer
            raise WebHDFSUnavailable(self.url, str(e)) from e
        except OSError as e:  # requests' connection errors
            raise WebHDFSUnavailable(self.url, str(e)) from e

    # -- typed operations ----------------------------------------------------------------------------
    async def status(self, path: str, user: str | None = None, strict: bool = True) -> dict | None:
        """A FileStatus; None for a missing path unless ``strict``."""
        return await self.run(lambda: self.session(user).status(path, strict=strict))

    async def list(self, path: str, user: str | None = None) -> list[tuple[str, dict]]:
        """A folder's entries with their FileStatus."""
        return await self.run(lambda: self.session(user).list(path, status=True))

    async def names(self, path: str, user: str | None = None) -> list[str]:
        """A folder's entry names."""
        return await self.run(lambda: self.session(user).list(path))

    async def content(self, path: str, user: str | None = None) -> dict:
        """The ContentSummary: length, file and folder counts, quotas."""
        return await self.run(lambda: self.session(user).content(path))

    async def makedirs(self, path: str, user: str | None = None, permission: str | None = None) -> None:
        await self.run(lambda: self.session(user).makedirs(path, permission=permission))

    async def set_owner(self, path: str, owner: str, group: str | None = None) -> None:
        await self.run(lambda: self.session(None).set_owner(path, owner=owner, group=group))

    async def set_permission(self, path: str, permission: str, user: str | None = None) -> None:
        await self.run(lambda: self.session(user).set_permission(path, permission=permission))

    async def rename(self, src: str, dst: str, user: str | None = None) -> None:
        await self.run(lambda: self.session(user).rename(src, dst))

    async def delete(self, path: str, user: str | None = None, recursive: bool = False) -> bool:
        """Whether something was deleted."""
        return await self.run(lambda: self.session(user).delete(path, recursive=recursive))

    async def upload(self, path: str, local: str, user: str | None = None, overwrite: bool = False,
                     permission: str | None = None) -> None:
        """Copy a local file to ``path``."""
        await self.run(lambda: self.session(user).upload(path, local, overwrite=overwrite, permission=permission))

    async def acl_status(self, path: str, strict: bool = True) -> dict | None:
        """The AclStatus (entries like ``user:ann:rwx``), as the service account; None for a missing path
        unless ``strict``."""
        return await self.run(lambda: self.session(None).acl_status(path, strict=strict))

    async def set_acl(self, path: str, spec: str, clear: bool = False) -> None:
        await self.run(lambda: self.session(None).set_acl(path, spec, clear=clear))

    async def remove_acl_entries(self, path: str, spec: str) -> None:
        await self.run(lambda: self.session(None).remove_acl_entries(path, spec))

    # -- streams: the blocking parts run in the pool, a chunk at a time -----------------------------------
    async def read(self, path: str, user: str | None, chunk_size: int) -> AsyncIterator[bytes]:
        """A file's bytes in chunks of ``chunk_size``, never the whole file in memory."""
        ctx = self.session(user).read(path, chunk_size=chunk_size)
        chunks = await self.run(ctx.__enter__)
        try:
            while True:
                chunk = await self.run(lambda: next(chunks, b""))
                if not chunk:
                    break
                yield chunk
        finally:
            await self.run(lambda: ctx.__exit__(None, None, None))

    async def write(self, path: str, chunks: Iterable[bytes], user: str | None, overwrite: bool = False) -> None:
        """Write ``chunks`` to ``path``; the iterator is consumed in the pool thread, so it may block."""
        await self.run(lambda: self.session(user).write(path, data=chunks, overwrite=overwrite))
