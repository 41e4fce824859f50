"""Streamed uploads to HDFS: the request body goes, chunk by chunk, to a WebHDFS write in a pool thread.

Each upload in progress holds one of the WebHDFS client's threads until its body has arrived, so
uploads are bounded in number (:class:`UploadSlots`: per user, and in all fewer than the threads, so
listings and downloads always find one) and in time (:class:`UploadLimits`: an idle timeout between
chunks and a deadline for the whole body).  An upload past either is cut, its thread freed and its
temporary file removed.  The storage service (:mod:`.storage`) makes uploads and hands them what
they need; this module imports nothing of it.
"""
from __future__ import annotations

import asyncio
import posixpath
import queue
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

from .auth import Identity
from .clients.webhdfs import WebHDFSClient, WebHDFSError
from .clock import monotonic
from .errors import PublicError


class UploadAborted(Exception):
    """Raised in the writer thread's body so an abandoned WebHDFS write fails instead of saving part of a file."""


@dataclass(frozen=True)
class UploadLimits:
    """How large and how slow one upload may be."""

    max_bytes: int
    idle_timeout: float
    deadline: float

    def too_large(self) -> PublicError:
        return PublicError(413, f"uploads are limited to {self.max_bytes // 1024**2} MB", reason="Payload Too Large")


class UploadSlots:
    """Uploads holding a thread, counted by user: at most ``per_user`` each and ``total`` in all."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.busy: Counter[str] = Counter()

    def claim(self, user: str) -> None:
        """Count one more upload for ``user``; a 429 past their share, a 503 when all upload threads are busy."""
        mine = self.busy[user]
        if mine >= self.per_user:
            raise PublicError(429, f"you already have {mine} uploads in progress, the most allowed at once; "
                                   "try again when one of them has finished", reason="Too Many Requests")
        if sum(self.busy.values()) >= self.total:
            raise PublicError(503, "the storage service is receiving as many uploads as it can; "
                                   "try again in a minute", reason="Service Unavailable")
        self.busy[user] += 1

    def release(self, user: str) -> None:
        self.busy[user] -= 1
        if self.busy[user] <= 0:
            del self.busy[user]


class Upload:
    """One streamed upload: chunks go through a small bounded queue to a WebHDFS write in a thread.

    The bytes land in a hidden temporary file next to the target, which is renamed into place only
    when everything arrived; a failed, aborted or timed-out upload leaves nothing behind.  A watchdog
    stops the upload when no bytes came for ``limits.idle_timeout`` or the body took longer than
    ``limits.deadline`` and calls ``on_expired`` with the error to answer; the writer thread, waiting
    for a chunk, wakes every ``POLL`` seconds to look at the aborted flag and the same limits, so it
    never waits for a silent client for ever.  ``public_error`` turns WebHDFS's errors about a path
    into what the user is told.
    """

    QUEUE_CHUNKS = 8
    POLL = 0.25

    def __init__(self, webhdfs: WebHDFSClient, slots: UploadSlots, limits: UploadLimits,
                 public_error: Callable[[WebHDFSError, str], PublicError], who: Identity, path: str,
                 overwrite: bool) -> None:
        self.webhdfs = webhdfs
        self.slots = slots
        self.limits = limits
        self.public_error = public_error
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
        """Claim a slot, check the target and its folder, and start the writer thread."""
        user = self.who.name
        self.slots.claim(user)
        try:
            try:
                st = await self.webhdfs.status(self.path, user, strict=False)
            except WebHDFSError as e:
                raise self.public_error(e, self.path) from e
            if st is not None and (not self.overwrite or st.get("type") == "DIRECTORY"):
                raise PublicError(409, f"{self.path} already exists", reason="Conflict")
            parent = posixpath.dirname(self.path)
            try:
                pst = await self.webhdfs.status(parent, user, strict=False)
            except WebHDFSError as e:
                raise self.public_error(e, parent) from e
            if pst is None or pst.get("type") != "DIRECTORY":
                raise PublicError(404, f"folder {parent} does not exist", reason="Not Found")
            if self.aborted.is_set():  # the client went away meanwhile
                raise self._stopped()
        except BaseException:
            self.slots.release(user)
            raise
        self.started = self.last_activity = monotonic()
        self.future = asyncio.ensure_future(self.webhdfs.write(self.tmp, self._chunks(), user, overwrite=False))
        self.future.add_done_callback(self._writer_done)
        self._watchdog = asyncio.ensure_future(self._watch())

    def _writer_done(self, future: asyncio.Future) -> None:
        # the slot stands for the thread: it is free only now
        self.slots.release(self.who.name)
        if not future.cancelled():
            future.exception()  # retrieved here; whoever awaits the future sees it too

    def expiry(self, now: float) -> PublicError | None:
        """The error that stops this upload if it is past its idle timeout or deadline at ``now``."""
        limits = self.limits
        if now - self.started > limits.deadline:
            return PublicError(408, f"the upload was stopped because it took longer than {limits.deadline:g} "
                                    "seconds; nothing was saved", reason="Request Timeout")
        if not self._feeding and now - self.last_activity > limits.idle_timeout:
            return PublicError(408, f"the upload was stopped because no data arrived for "
                                    f"{limits.idle_timeout:g} seconds; nothing was saved", reason="Request Timeout")
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
        limits = self.limits
        while not self._ended.is_set():
            now = monotonic()
            error = self.expiry(now)
            if error is not None:
                self.webhdfs.log.info("upload of %s by %s stopped: %s", self.path, self.who.name, error.message)
                await self.abort(error)
                if self.on_expired is not None:
                    self.on_expired(error)
                return
            idle_from = now if self._feeding else self.last_activity
            due = min(self.started + limits.deadline, idle_from + limits.idle_timeout)
            try:
                await asyncio.wait_for(self._ended.wait(), max(due - now, 0.01))
            except asyncio.TimeoutError:
                pass

    def _stopped(self) -> PublicError:
        return self.error or PublicError(400, "the upload was stopped; nothing was saved")

    async def feed(self, chunk: bytes) -> None:
        """Pass one chunk of the body to the writer thread, waiting while its queue is full."""
        self.received += len(chunk)
        if self.received > self.limits.max_bytes:
            raise self.limits.too_large()
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
        if isinstance(e, WebHDFSError):
            return self.public_error(e, self.path)
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

    async def finish(self) -> None:
        """The body is complete: end the write and move the temporary file into place."""
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
                await self.webhdfs.delete(self.path, self.who.name)
            await self.webhdfs.rename(self.tmp, self.path, self.who.name)
        except Exception as e:  # noqa: BLE001 - see _writer_error
            await self.cleanup()
            raise self._writer_error(e) from e

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
            await self.webhdfs.delete(self.tmp)
        except WebHDFSError:
            self.webhdfs.log.warning("could not remove the temporary upload %s", self.tmp)
