"""HDFS storage for users: personal, shared and public folders, always used as the calling user.

Every operation goes to WebHDFS acting as the calling user (doAs), so HDFS itself checks permissions;
the edge adds path hygiene, provisioning and limits on top.  Provisioning on a user's first contact
(idempotent):

* ``/user/<name>`` owned by the user, mode 0700 (private);
* ``/shared``: read/write for everyone, sticky (mode 1777) so nobody removes another's files;
* ``/public``: readable by everyone, written only by yardlab admins (through HDFS ACL entries).

``/public``'s named user ACL entries belong to the edge and follow the admins: a user seen as an admin
gets ``user:<name>:rwx`` and ``default:user:<name>:rwx`` there, a user seen as not an admin loses both
(admin power comes with the token's scopes, so the ACL follows the edge's latest view of the user).
Folders and files made inside ``/public`` inherit the default entries; :meth:`HDFSStorage.
reconcile_public_acl`, given the hub's current admins, removes the entries of everyone else there too.

Uploads (:mod:`.uploads`) stream the request body to a WebHDFS write in one of the client's threads;
this service checks where they go and bounds them (per user and in all, in size and in time).

HDFS is reached only through :class:`~.clients.webhdfs.WebHDFSClient` (``self.webhdfs``); its errors
become the user's :class:`PublicError` in one place, :func:`public_error`.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import posixpath
import re
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import quote

from traitlets import Float, Instance, Integer, TraitError, Unicode, default
from traitlets.config import LoggingConfigurable

from .auth import Identity
from .clients.webhdfs import WebHDFSClient, WebHDFSError, WebHDFSUnavailable
from .errors import PublicError
from .kerberos import Kerberos
from .uploads import Upload, UploadLimits, UploadSlots

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


def public_error(e: WebHDFSError, path: str) -> PublicError:
    """What the user is told when WebHDFS refused or failed an operation on ``path``."""
    if isinstance(e, WebHDFSUnavailable):
        return PublicError(503, f"HDFS (WebHDFS at {e.url}) is unreachable: {e.reason}")
    exc = e.kind
    text = e.message
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


@contextmanager
def hdfs_errors(path: str) -> Iterator[None]:
    """Turn the WebHDFS errors raised inside the block into the PublicError about ``path``."""
    try:
        yield
    except WebHDFSError as e:
        raise public_error(e, path) from e


@dataclass(frozen=True)
class Download:
    """A file ready to stream: the headers to answer with, then its bytes."""

    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


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
    kerberos = Instance(Kerberos, allow_none=True, help="The edge's Kerberos login, handed to the WebHDFS client.")
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
                                     timeout=self.timeout, threads=self.threads, kerberos=self.kerberos)
        self.upload_slots = UploadSlots(self.uploads_per_user, self.upload_threads)
        self._provisioned: set[tuple[str, bool]] = set()
        self._lock = asyncio.Lock()  # /public's ACL: a first contact's entries, or reconcile_public_acl
        self._user_locks: dict[str, asyncio.Lock] = {}
        self._reconcile_lock = asyncio.Lock()
        self._reconciled_admins: frozenset[str] | None = None
        # asks the hub whether a user is an admin now (True/False; None: the hub cannot say).  A
        # token without the admin scope does not make its user a non-admin: ACL entries belong to
        # the user, and their kernels write to HDFS as them, so only the hub's roles take entries away
        self.is_admin_now: Callable[[str], Awaitable[bool | None]] | None = None

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

    async def checked_path(self, who: Identity, raw: str) -> str:
        """``raw`` as a clean path inside the storage roots, with ``who``'s folders provisioned."""
        path = clean_path(raw)
        self.check_within_roots(who, path)
        await self.ensure_provisioned(who)
        return path

    async def ensure_provisioned(self, who: Identity) -> None:
        """Create the user's home and the shared/public folders, and give or take the user's ACL entries on
        /public as they are an admin or not; once per user, admin or not, and process."""
        key = (who.name, who.admin)
        if key in self._provisioned:
            return
        # one user's first contacts wait for each other, not for everyone else's: 200 people opening Lab
        # at once made their homes one after another (storage p50 2.4 s in bench_load); only /public's
        # ACL, which reconcile_public_acl also changes, is set under the lock shared by all
        async with self._user_locks.setdefault(who.name, asyncio.Lock()):
            if key in self._provisioned:
                return
            hdfs = self.webhdfs  # as the service account: HDFS superuser on the edge's cluster
            home = self.home(who.name)
            with hdfs_errors(home):
                status = await hdfs.status(home, strict=False)
                if status is None:
                    await hdfs.makedirs(home, permission="700")
                    await hdfs.set_owner(home, owner=who.name, group=who.name)
                    await hdfs.set_permission(home, permission="700")
                elif status.get("owner") != who.name:
                    await hdfs.set_owner(home, owner=who.name)
            for path, perm in ((self.shared_path, "1777"), (self.public_path, "755")):
                with hdfs_errors(path):
                    if await hdfs.status(path, strict=False) is None:
                        await hdfs.makedirs(path, permission=perm)
                        await hdfs.set_permission(path, permission=perm)
            public = self.public_path
            async with self._lock:
                with hdfs_errors(public):
                    if who.admin:
                        await hdfs.set_acl(public, admin_acl_spec(who.name), clear=False)
                    elif self.is_admin_now is not None and await self.is_admin_now(who.name) is False:
                        await strip_named_users(hdfs, public, lambda u: u == who.name)
                # the other key goes: were this user seen as the other kind again, the ACL is set again
                self._provisioned.discard((who.name, not who.admin))
                self._provisioned.add(key)

    async def reconcile_public_acl(self, current_admins: set[str]) -> set[str]:
        """Remove the named ACL entries of users not in ``current_admins`` from /public and what it holds.

        Pass the hub's full list of admins (an empty set removes every admin's entries).  /public itself
        is checked on every call; the folders and files inside it, which inherited /public's default
        entries, are walked (one GETACLSTATUS per entry that has an ACL) on the first call, when the set
        of admins changed since the last complete walk, and when /public itself held a stale entry.
        Returns the names whose entries were removed.
        """
        admins = frozenset(current_admins)
        public = self.public_path

        def stale(user: str) -> bool:
            return user not in admins

        async with self._reconcile_lock:
            async with self._lock:  # not while a contact is setting /public's ACL
                with hdfs_errors(public):
                    removed = await strip_named_users(self.webhdfs, public, stale)
                for name in removed:
                    self._provisioned.discard((name, True))
            if removed or admins != self._reconciled_admins:
                with hdfs_errors(public):
                    removed |= await strip_named_users_below(self.webhdfs, public, stale)
                self._reconciled_admins = admins
        if removed:
            self.log.info("removed the HDFS ACL entries in %s of users who are not admins: %s", public,
                          ", ".join(sorted(removed)))
        return removed

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
        with hdfs_errors(path):
            st = await self.webhdfs.status(path, who.name)
        return self.model(path, st, who.name)

    async def listing(self, who: Identity, path: str) -> dict:
        model = await self.stat(who, path)
        if model["type"] == "directory":
            with hdfs_errors(path):
                entries = await self.webhdfs.list(path, who.name)
            model["content"] = [self.model(posixpath.join(path, name), s, who.name) for name, s in entries]
        return model

    async def _refuse_existing(self, who: Identity, path: str) -> None:
        with hdfs_errors(path):
            if await self.webhdfs.status(path, who.name, strict=False) is not None:
                raise PublicError(409, f"{path} already exists", reason="Conflict")

    async def mkdir(self, who: Identity, path: str) -> dict:
        await self._refuse_existing(who, path)
        with hdfs_errors(path):
            await self.webhdfs.makedirs(path, who.name)
        return await self.stat(who, path)

    async def rename(self, who: Identity, src: str, raw_dst: str) -> dict:
        """Move ``src`` to ``raw_dst`` (checked like any path the caller names); never over something."""
        dst = clean_path(raw_dst)
        self.check_within_roots(who, dst)
        await self._refuse_existing(who, dst)
        with hdfs_errors(src):
            await self.webhdfs.rename(src, dst, who.name)
        return await self.stat(who, dst)

    async def delete(self, who: Identity, path: str, recursive: bool) -> None:
        if path in (self.home(who.name), self.shared_path, self.public_path):
            raise PublicError(400, f"{path} is a storage root and cannot be deleted")
        with hdfs_errors(path):
            deleted = await self.webhdfs.delete(path, who.name, recursive=recursive)
        if not deleted:
            raise PublicError(404, f"{path} does not exist", reason="Not Found")

    async def overview(self, who: Identity) -> dict:
        """The caller's storage roots and their usage, provisioning them on first contact."""
        await self.ensure_provisioned(who)
        return {"user": who.name, "roots": self.roots(who), "usage": await self.usage(who)}

    async def usage(self, who: Identity) -> dict:
        out = {}
        for key, path, user in (("personal", self.home(who.name), who.name), ("shared", self.shared_path, None),
                                ("public", self.public_path, None)):
            try:
                s = await self.webhdfs.content(path, user)
                out[key] = {"path": path, "bytes": s.get("length", 0), "files": s.get("fileCount", 0),
                            "directories": s.get("directoryCount", 0), "quota": s.get("spaceQuota", -1)}
            except WebHDFSError as e:
                out[key] = {"path": path, "error": public_error(e, path).message}
        return out

    async def download(self, who: Identity, path: str) -> Download:
        """A file's download headers and its bytes (a chunk at a time; never the whole file in memory)."""
        model = await self.stat(who, path)
        if model["type"] != "file":
            raise PublicError(400, f"{path} is a folder; only files can be downloaded")
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Disposition": f"attachment; filename*=UTF-8''{quote(model['name'])}",
                   "Content-Length": str(model["size"])}
        return Download(headers, self.read_chunks(who, path))

    async def read_chunks(self, who: Identity, path: str) -> AsyncIterator[bytes]:
        """Stream a file's bytes."""
        with hdfs_errors(path):
            # closed with this generator, so HDFS's stream is let go of as soon as the caller stops
            async with aclosing(self.webhdfs.read(path, who.name, self.chunk_size)) as chunks:
                async for chunk in chunks:
                    yield chunk

    # -- uploads ----------------------------------------------------------------------------------------
    def upload(self, who: Identity, path: str, overwrite: bool, length: int = 0,
               on_expired: Callable[[PublicError], None] | None = None) -> Upload:
        """A new upload of ``length`` bytes (0: not said) to ``path``; a 413 past ``max_upload_bytes``.
        ``on_expired`` is told when the upload is cut for taking too long.  Start it with ``start()``."""
        limits = UploadLimits(self.max_upload_bytes, self.upload_idle_timeout, self.upload_deadline)
        if length > limits.max_bytes:
            raise limits.too_large()
        upload = Upload(self.webhdfs, self.upload_slots, limits, public_error, who, path, overwrite)
        upload.on_expired = on_expired
        return upload

    async def finish_upload(self, upload: Upload) -> dict:
        """End a complete upload; the model of the file it made."""
        await upload.finish()
        return await self.stat(upload.who, upload.path)


def admin_acl_spec(user: str) -> str:
    """The ACL entries that let an admin write in /public and in what is made there later."""
    return (f"user:{user}:rwx,default:user:{user}:rwx,"
            "default:user::rwx,default:group::r-x,default:other::r-x")


async def strip_named_users(hdfs: WebHDFSClient, path: str, stale: Callable[[str], bool]) -> set[str]:
    """Remove the named user entries (access and default) that ``stale`` picks from ``path``'s ACL.

    Returns the names removed.  A path that is gone has nothing to remove.
    """
    acl = await hdfs.acl_status(path, strict=False)
    spec, names = [], set()
    for entry in (acl or {}).get("entries", []):  # e.g. "user:ann:rwx", "default:user:ann:rwx", "group::r-x"
        scope = "default:" if entry.startswith("default:") else ""
        parts = entry[len(scope):].split(":")
        if len(parts) == 3 and parts[0] == "user" and parts[1] and stale(parts[1]):
            # REMOVEACLENTRIES takes entries without their permission, but with its colon
            spec.append(f"{scope}user:{parts[1]}:")
            names.add(parts[1])
    if spec:
        await hdfs.remove_acl_entries(path, ",".join(spec))
    return names


async def strip_named_users_below(hdfs: WebHDFSClient, root: str, stale: Callable[[str], bool]) -> set[str]:
    """:func:`strip_named_users` on everything inside ``root`` that has an ACL, one call at a time."""
    names: set[str] = set()
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = await hdfs.list(folder)
        except WebHDFSError as e:
            if e.kind == "FileNotFoundException":
                continue  # removed while we walked
            raise
        for name, st in entries:
            path = posixpath.join(folder, name)
            if st.get("aclBit"):
                names |= await strip_named_users(hdfs, path, stale)
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
