"""HDFS storage for users: personal, shared and public folders, always used as the calling user.

Every operation goes to WebHDFS through the `hdfs` library with ``doas=<user>``, so HDFS itself
checks permissions; the edge adds path hygiene, provisioning and limits on top.  Provisioning on a
user's first contact (idempotent):

* ``/user/<name>`` owned by the user, mode 0700 (private);
* ``/shared``: read/write for everyone, sticky (mode 1777) so nobody removes another's files;
* ``/public``: readable by everyone, written only by yardlab admins (an HDFS ACL entry per admin,
  added the first time that admin is seen).
"""
from __future__ import annotations

import asyncio
import getpass
import os
import posixpath
import queue
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, TypeVar

from hdfs import HdfsError, InsecureClient
from traitlets import Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from .auth import Identity
from .errors import PublicError

T = TypeVar("T")

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f:\\]")
MAX_PATH = 4096
MAX_SEGMENT = 255


def clean_path(raw: str) -> str:
    """An absolute, normalised HDFS path, or a 400 for anything tricky (``..``, NUL, schemes, ...)."""
    if raw is None or raw == "":
        raise PublicError(400, "a path is required")
    if len(raw) > MAX_PATH:
        raise PublicError(400, f"path is longer than {MAX_PATH} characters")
    if _BAD_CHARS.search(raw):
        raise PublicError(400, "path contains a control character, a colon or a backslash")
    parts = [p for p in raw.split("/") if p != ""]
    for part in parts:
        if part in (".", ".."):
            raise PublicError(400, "path may not contain '.' or '..' segments")
        if len(part) > MAX_SEGMENT:
            raise PublicError(400, f"a path segment is longer than {MAX_SEGMENT} characters")
    return "/" + "/".join(parts)


def _human_error(e: HdfsError, path: str) -> PublicError:
    exc = getattr(e, "exception", "") or ""
    text = str(e)
    if exc == "AccessControlException" or "Permission denied" in text:
        return PublicError(403, f"permission denied on {path}", reason="Forbidden")
    if exc == "FileNotFoundException" or "does not exist" in text or "File not found" in text:
        return PublicError(404, f"{path} does not exist", reason="Not Found")
    if exc in ("FileAlreadyExistsException",) or "already exists" in text:
        return PublicError(409, f"{path} already exists", reason="Conflict")
    if exc in ("PathIsNotEmptyDirectoryException",) or "is non empty" in text or "not empty" in text:
        return PublicError(409, f"{path} is a folder that is not empty; delete with recursive=1",
                           reason="Conflict")
    if exc in ("ParentNotDirectoryException", "InvalidPathException", "IllegalArgumentException"):
        return PublicError(400, f"{path}: {text.splitlines()[0][:200]}")
    return PublicError(502, f"HDFS refused the operation on {path}: {text.splitlines()[0][:200] if text else exc}")


class HDFSStorage(LoggingConfigurable):
    """Users' HDFS folders through WebHDFS, acting as the user (doAs)."""

    webhdfs_url = Unicode(
        help="The NameNode's web address (WebHDFS), e.g. http://namenode:9870. Default: $YARDLAB_WEBHDFS_URL.",
    ).tag(config=True)

    @default("webhdfs_url")
    def _webhdfs_default(self) -> str:
        return os.environ.get("YARDLAB_WEBHDFS_URL", "http://127.0.0.1:9870")

    service_user = Unicode(
        help="The account the edge authenticates as; an HDFS proxy user (and superuser for provisioning).",
    ).tag(config=True)

    @default("service_user")
    def _service_user_default(self) -> str:
        return getpass.getuser()

    home_template = Unicode("/user/{user}", help="Each user's private folder.").tag(config=True)
    shared_path = Unicode("/shared", help="The folder everyone reads and writes (sticky).").tag(config=True)
    public_path = Unicode("/public", help="The folder everyone reads and admins write.").tag(config=True)
    max_upload_bytes = Integer(2 * 1024**3, help="Largest upload accepted, in bytes.").tag(config=True)
    chunk_size = Integer(256 * 1024, help="Bytes per chunk when streaming to and from HDFS.").tag(config=True)
    timeout = Float(30.0, help="Seconds to wait for one WebHDFS call.").tag(config=True)
    threads = Integer(16, help="Threads for blocking WebHDFS calls.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="webhdfs")
        self._clients: dict[str, InsecureClient] = {}
        self._provisioned: set[tuple[str, bool]] = set()
        self._lock = asyncio.Lock()

    # -- plumbing -------------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking WebHDFS call in the edge's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def client(self, user: str | None) -> InsecureClient:
        """A WebHDFS client acting as ``user`` (None: the service account itself)."""
        key = user or ""
        if key not in self._clients:
            self._clients[key] = InsecureClient(self.webhdfs_url, user=self.service_user, proxy=user,
                                                timeout=self.timeout)
        return self._clients[key]

    async def call(self, user: str | None, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self.client(user)
        try:
            return await self.run(lambda: getattr(client, method)(*args, **kwargs))
        except HdfsError as e:
            raise _human_error(e, path) from e
        except OSError as e:  # requests' connection errors
            raise PublicError(503, f"HDFS (WebHDFS at {self.webhdfs_url}) is unreachable: {e}") from e

    # -- layout ---------------------------------------------------------------------------------------
    def home(self, user: str) -> str:
        return self.home_template.format(user=user)

    def roots(self, who: Identity) -> list[dict]:
        return [
            {"name": "Personal", "path": self.home(who.name), "writable": True},
            {"name": "Shared", "path": self.shared_path, "writable": True},
            {"name": "Public", "path": self.public_path, "writable": who.admin},
        ]

    def check_within_roots(self, who: Identity, path: str) -> None:
        """Only the three kinds of roots are served; HDFS permissions decide inside them."""
        homes = posixpath.dirname(self.home("x"))
        allowed = (self.shared_path, self.public_path)
        if any(path == r or path.startswith(r + "/") for r in allowed):
            return
        if path.startswith(homes + "/") and path.count("/") >= homes.count("/") + 1:
            return
        raise PublicError(403, f"{path} is outside yardlab storage (your home, {self.shared_path}, "
                               f"{self.public_path})", reason="Forbidden")

    async def ensure_provisioned(self, who: Identity) -> None:
        """Create the user's home and the shared/public folders once per user and process."""
        key = (who.name, who.admin)
        if key in self._provisioned:
            return
        async with self._lock:
            if key in self._provisioned:
                return
            su = None  # the service account: HDFS superuser on the edge's cluster
            home = self.home(who.name)
            status = await self.call(su, home, "status", home, strict=False)
            if status is None:
                await self.call(su, home, "makedirs", home, permission="700")
                await self.call(su, home, "set_owner", home, owner=who.name, group=who.name)
                await self.call(su, home, "set_permission", home, permission="700")
            elif status.get("owner") != who.name:
                await self.call(su, home, "set_owner", home, owner=who.name)
            for path, perm in ((self.shared_path, "1777"), (self.public_path, "755")):
                st = await self.call(su, path, "status", path, strict=False)
                if st is None:
                    await self.call(su, path, "makedirs", path, permission=perm)
                    await self.call(su, path, "set_permission", path, permission=perm)
            if who.admin:
                spec = f"user:{who.name}:rwx,default:user:{who.name}:rwx,default:user::rwx,default:group::r-x,default:other::r-x"
                await self.call(su, self.public_path, "_modify_acl_entries", self.public_path, aclspec=spec)
            self._provisioned.add(key)

    # -- models ------------------------------------------------------------------------------------------
    @staticmethod
    def model(path: str, st: dict, user: str, writable: bool | None = None) -> dict:
        kind = "directory" if st.get("type") == "DIRECTORY" else "file"
        return {"type": kind, "path": path, "name": posixpath.basename(path) or "/",
                "owner": st.get("owner", ""), "group": st.get("group", ""),
                "permission": st.get("permission", ""), "modified": st.get("modificationTime", 0),
                "size": st.get("length", 0) if kind == "file" else 0,
                "writable": writable if writable is not None else _may_write(st, user)}

    # -- operations --------------------------------------------------------------------------------------
    async def stat(self, who: Identity, path: str) -> dict:
        st = await self.call(who.name, path, "status", path)
        return self.model(path, st, who.name)

    async def listing(self, who: Identity, path: str) -> dict:
        st = await self.call(who.name, path, "status", path)
        model = self.model(path, st, who.name)
        if model["type"] == "directory":
            entries = await self.call(who.name, path, "list", path, status=True)
            model["content"] = [self.model(posixpath.join(path, name), s, who.name) for name, s in entries]
        return model

    async def mkdir(self, who: Identity, path: str) -> dict:
        if await self.call(who.name, path, "status", path, strict=False) is not None:
            raise PublicError(409, f"{path} already exists", reason="Conflict")
        await self.call(who.name, path, "makedirs", path)
        return await self.stat(who, path)

    async def rename(self, who: Identity, src: str, dst: str) -> dict:
        if await self.call(who.name, dst, "status", dst, strict=False) is not None:
            raise PublicError(409, f"{dst} already exists", reason="Conflict")
        await self.call(who.name, src, "rename", src, dst)
        return await self.stat(who, dst)

    async def delete(self, who: Identity, path: str, recursive: bool) -> None:
        if path in (self.home(who.name), self.shared_path, self.public_path):
            raise PublicError(400, f"{path} is a storage root and cannot be deleted")
        deleted = await self.call(who.name, path, "delete", path, recursive=recursive)
        if not deleted:
            raise PublicError(404, f"{path} does not exist", reason="Not Found")

    async def usage(self, who: Identity) -> dict:
        out = {}
        for key, path, user in (("personal", self.home(who.name), who.name), ("shared", self.shared_path, None),
                                ("public", self.public_path, None)):
            try:
                s = await self.call(user, path, "content", path)
                out[key] = {"path": path, "bytes": s.get("length", 0), "files": s.get("fileCount", 0),
                            "directories": s.get("directoryCount", 0), "quota": s.get("spaceQuota", -1)}
            except PublicError as e:
                out[key] = {"path": path, "error": e.message}
        return out

    async def read_chunks(self, who: Identity, path: str) -> AsyncIterator[bytes]:
        """Stream a file's bytes (a chunk at a time; never the whole file in memory)."""
        client = self.client(who.name)
        ctx = client.read(path, chunk_size=self.chunk_size)
        try:
            reader = await self.run(ctx.__enter__)
        except HdfsError as e:
            raise _human_error(e, path) from e
        try:
            while True:
                chunk = await self.run(next, reader, b"")
                if not chunk:
                    break
                yield chunk
        finally:
            await self.run(ctx.__exit__, None, None, None)

    def upload(self, who: Identity, path: str, overwrite: bool) -> "Upload":
        return Upload(self, who, path, overwrite)


def _may_write(st: dict, user: str) -> bool:
    perm = st.get("permission", "000")
    try:
        bits = int(perm[-3:], 8)
    except ValueError:
        return False
    if st.get("owner") == user:
        return bool(bits & 0o200)
    return bool(bits & 0o002)


class Upload:
    """One streamed upload: chunks go through a small bounded queue to a WebHDFS write in a thread.

    The bytes land in a hidden temporary file next to the target, which is renamed into place only
    when everything arrived; a failed or aborted upload leaves nothing behind.
    """

    QUEUE_CHUNKS = 8

    def __init__(self, storage: HDFSStorage, who: Identity, path: str, overwrite: bool) -> None:
        self.storage = storage
        self.who = who
        self.path = path
        self.overwrite = overwrite
        folder, name = posixpath.split(path)
        self.tmp = posixpath.join(folder, f".{name}.yardlab-upload-{secrets.token_hex(6)}")
        self.queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE_CHUNKS)
        self.received = 0
        self.future: asyncio.Future | None = None
        self.aborted = threading.Event()

    async def start(self) -> None:
        st = await self.storage.call(self.who.name, self.path, "status", self.path, strict=False)
        if st is not None and (not self.overwrite or st.get("type") == "DIRECTORY"):
            raise PublicError(409, f"{self.path} already exists", reason="Conflict")
        parent = posixpath.dirname(self.path)
        pst = await self.storage.call(self.who.name, parent, "status", parent, strict=False)
        if pst is None or pst.get("type") != "DIRECTORY":
            raise PublicError(404, f"folder {parent} does not exist", reason="Not Found")
        client = self.storage.client(self.who.name)
        self.future = asyncio.get_running_loop().run_in_executor(
            self.storage._executor, lambda: client.write(self.tmp, data=self._chunks(), overwrite=False))

    def _chunks(self):
        while True:
            chunk = self.queue.get()
            if chunk is None or self.aborted.is_set():
                return
            yield chunk

    async def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.storage.max_upload_bytes:
            raise PublicError(413, f"uploads are limited to {self.storage.max_upload_bytes // 1024**2} MB",
                              reason="Payload Too Large")
        while True:
            assert self.future is not None
            if self.future.done():
                await self._fail_from_writer()
            try:
                self.queue.put_nowait(chunk)
                return
            except queue.Full:
                # back-pressure: tornado stops reading the socket until this returns
                await asyncio.sleep(0.005)

    async def _fail_from_writer(self) -> None:
        assert self.future is not None
        try:
            await self.future
        except HdfsError as e:
            await self.cleanup()
            raise _human_error(e, self.path) from e
        raise PublicError(500, "the HDFS write ended early")

    async def finish(self) -> dict:
        assert self.future is not None
        while True:
            try:
                self.queue.put_nowait(None)
                break
            except queue.Full:
                if self.future.done():
                    break
                await asyncio.sleep(0.005)
        try:
            await self.future
            if self.overwrite:
                await self.storage.call(self.who.name, self.path, "delete", self.path)
            await self.storage.call(self.who.name, self.path, "rename", self.tmp, self.path)
        except HdfsError as e:
            await self.cleanup()
            raise _human_error(e, self.path) from e
        except PublicError:
            await self.cleanup()
            raise
        return await self.storage.stat(self.who, self.path)

    async def abort(self) -> None:
        self.aborted.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        if self.future is not None:
            try:
                await self.future
            except Exception:  # noqa: BLE001 - the upload is being thrown away anyway
                pass
        await self.cleanup()

    async def cleanup(self) -> None:
        # as the service account: the user may lack the right to delete what never got written
        try:
            await self.storage.run(lambda: self.storage.client(None).delete(self.tmp))
        except (HdfsError, OSError):
            self.storage.log.warning("could not remove the temporary upload %s", self.tmp)
