"""HDFS storage for users: personal, shared and public folders, always used as the calling user.

Every operation goes to WebHDFS through the `hdfs` library with ``doas=<user>``, so HDFS itself
checks permissions; the edge adds path hygiene, provisioning and limits on top.  Provisioning on a
user's first contact (idempotent):

* ``/user/<name>`` owned by the user, mode 0700 (private);
* ``/shared``: read/write for everyone, sticky (mode 1777) so nobody removes another's files;
* ``/public``: readable by everyone, written only by yardlab admins (through HDFS ACL entries).

``/public``'s named user ACL entries belong to the edge and follow the admins: a user seen as an admin
gets ``user:<name>:rwx`` and ``default:user:<name>:rwx`` there, a user seen as not an admin loses both
(admin power comes with the token's scopes, so the ACL follows the edge's latest view of the user).
Folders and files made inside ``/public`` inherit the default entries; :meth:`HDFSStorage.
reconcile_public_acl`, given the hub's current admins, removes the entries of everyone else there too.

Uploads stream the request body to a WebHDFS write running in one of the edge's worker threads, so
each one in progress holds a thread.  They are bounded in number (per user and in all, fewer than the
threads, so listings and downloads always find one) and in time (an idle timeout between chunks and a
deadline for the whole body); an upload past either is cut, its thread freed and its temporary file
removed.
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
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar

from hdfs import HdfsError, InsecureClient
from traitlets import Float, Integer, TraitError, Unicode, default
from traitlets.config import LoggingConfigurable

from .auth import Identity
from .clients.webhdfs import WebHDFSClient
from .clock import monotonic
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
    if "#" in raw:
        # the hdfs library reads markers such as #LATEST in paths, after the checks made here
        raise PublicError(400, "path may not contain '#'")
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
    upload_threads = Integer(
        help="Uploads in progress at once, over all users. Each holds one of `threads` until its body has "
             "arrived, so this must be smaller than `threads`: the rest stay free for listings, downloads and "
             "provisioning. Uploads past it answer 503. Default: half of `threads`.",
    ).tag(config=True)

    @default("upload_threads")
    def _upload_threads_default(self) -> int:
        return max(1, self.threads // 2)

    uploads_per_user = Integer(
        4, help="Uploads one user may have in progress at once; more answer 429.",
    ).tag(config=True)
    upload_idle_timeout = Float(
        60.0, help="Seconds an upload may go without receiving any bytes before it is stopped (408); its "
                   "thread is freed and its temporary file removed.",
    ).tag(config=True)
    upload_deadline = Float(
        3600.0, help="Seconds the whole body of one upload may take, however steadily it arrives; past this "
                     "the upload is stopped (408). Allow for the largest upload at your users' slowest link.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 < self.upload_threads < self.threads:
            raise TraitError(f"HDFSStorage.upload_threads ({self.upload_threads}) must be at least 1 and smaller "
                             f"than HDFSStorage.threads ({self.threads})")
        self.webhdfs = WebHDFSClient(parent=self, url=self.webhdfs_url, service_user=self.service_user,
                                     timeout=self.timeout, threads=self.threads)
        self._executor = self.webhdfs.executor  # one pool: the client's
        self._provisioned: set[tuple[str, bool]] = set()
        self._lock = asyncio.Lock()
        self._reconcile_lock = asyncio.Lock()
        self._reconciled_admins: frozenset[str] | None = None
        # asks the hub whether a user is an admin now (True/False; None: the hub cannot say).  A
        # token without the admin scope does not make its user a non-admin: ACL entries belong to
        # the user, and their kernels write to HDFS as them, so only the hub's roles take entries away
        self.is_admin_now: Callable[[str], Awaitable[bool | None]] | None = None
        self._uploads: Counter[str] = Counter()  # uploads holding a thread, by user

    # -- plumbing -------------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking WebHDFS call in the edge's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def client(self, user: str | None) -> InsecureClient:
        """A WebHDFS client acting as ``user`` (None: the service account itself)."""
        return self.webhdfs.session(user)

    async def call(self, user: str | None, path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One method of the hdfs client acting as ``user``; HDFS's errors become PublicErrors about ``path``."""
        client = self.client(user)
        return await self.guarded(path, lambda: getattr(client, method)(*args, **kwargs))

    async def guarded(self, path: str, fn: Callable[[], T]) -> T:
        """Run blocking WebHDFS work in the pool; HDFS's errors become PublicErrors about ``path``."""
        try:
            return await self.run(fn)
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
        """Create the user's home and the shared/public folders, and give or take the user's ACL entries on
        /public as they are an admin or not; once per user, admin or not, and process."""
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
            public = self.public_path
            if who.admin:
                await self.call(su, public, "set_acl", public, admin_acl_spec(who.name), clear=False)
            elif self.is_admin_now is not None and await self.is_admin_now(who.name) is False:
                client = self.client(su)
                await self.guarded(public, lambda: strip_named_users(client, public, lambda u: u == who.name))
            # the other key goes: were this user seen as the other kind again, the ACL is set again
            self._provisioned.discard((who.name, not who.admin))
            self._provisioned.add(key)

    async def reconcile_public_acl(self, current_admins: set[str]) -> set[str]:
        """Remove the named ACL entries of users not in ``current_admins`` from /public and what it holds.

        Pass the hub's full list of admins (an empty set removes every admin's entries).  /public itself
        is checked on every call; the folders and files inside it, which inherited /public's default
        entries, are walked (one thread, one GETACLSTATUS per entry) on the first call, when the set of
        admins changed since the last complete walk, and when /public itself held a stale entry.
        Returns the names whose entries were removed.
        """
        admins = frozenset(current_admins)
        public, client = self.public_path, self.client(None)

        def stale(user: str) -> bool:
            return user not in admins

        async with self._reconcile_lock:
            async with self._lock:  # not while a contact is setting /public's ACL
                removed = await self.guarded(public, lambda: strip_named_users(client, public, stale))
                for name in removed:
                    self._provisioned.discard((name, True))
            if removed or admins != self._reconciled_admins:
                removed |= await self.guarded(public, lambda: strip_named_users_below(client, public, stale))
                self._reconciled_admins = admins
        if removed:
            self.log.info("removed the HDFS ACL entries in %s of users who are not admins: %s", public,
                          ", ".join(sorted(removed)))
        return removed

    # -- upload slots ----------------------------------------------------------------------------------
    def claim_upload_slot(self, user: str) -> None:
        """Count one more upload for ``user``; a 429 past their share, a 503 when all upload threads are busy."""
        mine = self._uploads[user]
        if mine >= self.uploads_per_user:
            raise PublicError(429, f"you already have {mine} uploads in progress, the most allowed at once; "
                                   "try again when one of them has finished", reason="Too Many Requests")
        if sum(self._uploads.values()) >= self.upload_threads:
            raise PublicError(503, "the storage service is receiving as many uploads as it can; "
                                   "try again in a minute", reason="Service Unavailable")
        self._uploads[user] += 1

    def release_upload_slot(self, user: str) -> None:
        self._uploads[user] -= 1
        if self._uploads[user] <= 0:
            del self._uploads[user]

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


def admin_acl_spec(user: str) -> str:
    """The ACL entries that let an admin write in /public and in what is made there later."""
    return (f"user:{user}:rwx,default:user:{user}:rwx,"
            "default:user::rwx,default:group::r-x,default:other::r-x")


def strip_named_users(client: InsecureClient, path: str, stale: Callable[[str], bool]) -> set[str]:
    """Remove the named user entries (access and default) that ``stale`` picks from ``path``'s ACL.

    Blocking; returns the names removed.  A path that is gone has nothing to remove.
    """
    acl = client.acl_status(path, strict=False)
    spec, names = [], set()
    for entry in (acl or {}).get("entries", []):  # e.g. "user:ann:rwx", "default:user:ann:rwx", "group::r-x"
        scope = "default:" if entry.startswith("default:") else ""
        parts = entry[len(scope):].split(":")
        if len(parts) == 3 and parts[0] == "user" and parts[1] and stale(parts[1]):
            # REMOVEACLENTRIES takes entries without their permission, but with its colon
            spec.append(f"{scope}user:{parts[1]}:")
            names.add(parts[1])
    if spec:
        client.remove_acl_entries(path, ",".join(spec))
    return names


def strip_named_users_below(client: InsecureClient, root: str, stale: Callable[[str], bool]) -> set[str]:
    """:func:`strip_named_users` on everything inside ``root`` that has an ACL (blocking, one thread)."""
    names: set[str] = set()
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = client.list(folder, status=True)
        except HdfsError as e:
            if getattr(e, "exception", "") == "FileNotFoundException":
                continue  # removed while we walked
            raise
        for name, st in entries:
            path = posixpath.join(folder, name)
            if st.get("aclBit"):
                names |= strip_named_users(client, path, stale)
            if st.get("type") == "DIRECTORY":
                folders.append(path)
    return names


def _may_write(st: dict, user: str) -> bool:
    perm = st.get("permission", "000")
    try:
        bits = int(perm[-3:], 8)
    except ValueError:
        return False
    if st.get("owner") == user:
        return bool(bits & 0o200)
    return bool(bits & 0o002)


class UploadAborted(Exception):
    """Raised in the writer thread's body so an abandoned WebHDFS write fails instead of saving part of a file."""


class Upload:
    """One streamed upload: chunks go through a small bounded queue to a WebHDFS write in a thread.

    The bytes land in a hidden temporary file next to the target, which is renamed into place only
    when everything arrived; a failed, aborted or timed-out upload leaves nothing behind.  A watchdog
    stops the upload when no bytes came for ``upload_idle_timeout`` or the body took longer than
    ``upload_deadline`` and calls ``on_expired`` with the error to answer; the writer thread, waiting
    for a chunk, wakes every ``POLL`` seconds to look at the aborted flag and the same limits, so it
    never waits for a silent client for ever.
    """

    QUEUE_CHUNKS = 8
    POLL = 0.25

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
        self.error: PublicError | None = None  # why the upload was stopped, once it was
        self.on_expired: Callable[[PublicError], None] | None = None
        self.started = self.last_activity = 0.0
        self._feeding = False
        self._ended = asyncio.Event()  # the body is complete, or the upload was aborted
        self._abort_task: asyncio.Future | None = None
        self._watchdog: asyncio.Task | None = None

    async def start(self) -> None:
        self.storage.claim_upload_slot(self.who.name)
        try:
            st = await self.storage.call(self.who.name, self.path, "status", self.path, strict=False)
            if st is not None and (not self.overwrite or st.get("type") == "DIRECTORY"):
                raise PublicError(409, f"{self.path} already exists", reason="Conflict")
            parent = posixpath.dirname(self.path)
            pst = await self.storage.call(self.who.name, parent, "status", parent, strict=False)
            if pst is None or pst.get("type") != "DIRECTORY":
                raise PublicError(404, f"folder {parent} does not exist", reason="Not Found")
            if self.aborted.is_set():  # the client went away meanwhile
                raise self._stopped()
        except BaseException:
            self.storage.release_upload_slot(self.who.name)
            raise
        self.started = self.last_activity = monotonic()
        client = self.storage.client(self.who.name)
        self.future = asyncio.get_running_loop().run_in_executor(
            self.storage._executor, lambda: client.write(self.tmp, data=self._chunks(), overwrite=False))
        self.future.add_done_callback(self._writer_done)
        self._watchdog = asyncio.ensure_future(self._watch())

    def _writer_done(self, future: asyncio.Future) -> None:
        # the slot stands for the thread: it is free only now
        self.storage.release_upload_slot(self.who.name)
        if not future.cancelled():
            future.exception()  # retrieved here; whoever awaits the future sees it too

    def expiry(self, now: float) -> PublicError | None:
        """The error that stops this upload if it is past its idle timeout or deadline at ``now``."""
        s = self.storage
        if now - self.started > s.upload_deadline:
            return PublicError(408, f"the upload was stopped because it took longer than {s.upload_deadline:g} "
                                    "seconds; nothing was saved", reason="Request Timeout")
        if not self._feeding and now - self.last_activity > s.upload_idle_timeout:
            return PublicError(408, f"the upload was stopped because no data arrived for "
                                    f"{s.upload_idle_timeout:g} seconds; nothing was saved", reason="Request Timeout")
        return None

    def _chunks(self) -> Iterator[bytes]:
        """The body of the WebHDFS write (in the writer thread)."""
        while True:
            try:
                chunk = self.queue.get(timeout=self.POLL)
            except queue.Empty:
                if self.aborted.is_set():
                    raise UploadAborted(self.path) from None
                error = self.expiry(monotonic())
                if error is not None:
                    self.error = self.error or error
                    raise UploadAborted(self.path) from None
                continue
            if self.aborted.is_set():
                raise UploadAborted(self.path)
            if chunk is None:
                return
            yield chunk

    async def _watch(self) -> None:
        s = self.storage
        while not self._ended.is_set():
            now = monotonic()
            error = self.expiry(now)
            if error is not None:
                s.log.info("upload of %s by %s stopped: %s", self.path, self.who.name, error.message)
                await self.abort(error)
                if self.on_expired is not None:
                    self.on_expired(error)
                return
            idle_from = now if self._feeding else self.last_activity
            due = min(self.started + s.upload_deadline, idle_from + s.upload_idle_timeout)
            try:
                await asyncio.wait_for(self._ended.wait(), max(due - now, 0.01))
            except asyncio.TimeoutError:
                pass

    def _stopped(self) -> PublicError:
        return self.error or PublicError(400, "the upload was stopped; nothing was saved")

    async def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.storage.max_upload_bytes:
            raise PublicError(413, f"uploads are limited to {self.storage.max_upload_bytes // 1024**2} MB",
                              reason="Payload Too Large")
        assert self.future is not None
        self._feeding = True
        self.last_activity = monotonic()
        try:
            while True:
                if self.aborted.is_set():
                    raise self._stopped()
                if self.future.done():
                    await self._fail_from_writer()
                try:
                    self.queue.put_nowait(chunk)
                    return
                except queue.Full:
                    # back-pressure: tornado stops reading the socket until this returns
                    await asyncio.sleep(0.005)
        finally:
            self._feeding = False
            self.last_activity = monotonic()

    def _writer_error(self, e: BaseException) -> PublicError:
        if isinstance(e, UploadAborted):
            return self._stopped()
        if isinstance(e, HdfsError):
            return _human_error(e, self.path)
        if isinstance(e, OSError):
            return PublicError(503, f"HDFS (WebHDFS at {self.storage.webhdfs_url}) is unreachable: {e}")
        return PublicError(500, "the HDFS write ended early")

    async def _fail_from_writer(self) -> None:
        assert self.future is not None
        try:
            await self.future
        except Exception as e:  # noqa: BLE001 - every way the writer failed is answered
            await self.cleanup()
            raise self._writer_error(e) from e
        await self.cleanup()
        raise PublicError(500, "the HDFS write ended early")

    async def finish(self) -> dict:
        assert self.future is not None
        self._ended.set()
        if self.aborted.is_set():
            raise self._stopped()
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
        except PublicError:
            await self.cleanup()
            raise
        except Exception as e:  # noqa: BLE001 - see _writer_error
            await self.cleanup()
            raise self._writer_error(e) from e
        return await self.storage.stat(self.who, self.path)

    async def abort(self, error: PublicError | None = None) -> None:
        """Stop the upload (once), wait for its thread to let go and remove the temporary file."""
        if error is not None and self.error is None:
            self.error = error
        if self._abort_task is None:
            self._abort_task = asyncio.ensure_future(self._abort())
        # shielded: a caller that is cancelled does not stop the cleanup half-way
        await asyncio.shield(self._abort_task)

    async def _abort(self) -> None:
        self.aborted.set()
        self._ended.set()
        try:
            self.queue.put_nowait(None)  # wakes the writer at once; it sees the flag and gives up
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
