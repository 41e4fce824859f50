"""HDFS storage logic without the stack: upload limits and timeouts, /public's ACL and admins, '#' in paths.

Fake sessions behind the real WebHDFSClient (its one seam, ``session``) stand in for HDFS where the
real one cannot be driven on demand (a client that goes silent mid-body, an admin demoted between
two contacts); tests/test_storage.py checks the same behaviour on the real stack.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import pytest
from hdfs import HdfsError
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import TraitError

from yardlab.edge.auth import Identity
from yardlab.edge.errors import PublicError
from yardlab.edge.handlers.storage import FilesHandler
from yardlab.edge.storage import HDFSStorage, clean_path
from yardlab.edge.uploads import UploadAborted

ALICE = Identity(name="alice", admin=False)
BOB = Identity(name="bob", admin=False)
CAROL = Identity(name="carol", admin=False)

# WebHDFS's own check of `aclspec` (hadoop-hdfs-client 3.4.1, dfs.webhdfs.acl.provider.permission.pattern)
WEBHDFS_ACLSPEC = re.compile(r"^(default:)?(user|group|mask|other):[A-Za-z0-9._-]*:([rwx-]{3})?"
                             r"(,(default:)?(user|group|mask|other):[A-Za-z0-9._-]*:([rwx-]{3})?)*$")


class FakeHDFS:
    """Files, folders and ACLs in memory; a file being written holds what has arrived so far, as in HDFS."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {"/", "/user", "/user/alice", "/user/bob", "/user/carol", "/shared", "/public"}
        self.acl: dict[str, list[str]] = {}
        self.calls: list[tuple] = []
        self.lock = threading.Lock()


def _key(entry: str) -> str:
    return entry.rsplit(":", 1)[0] if entry.count(":") >= 2 + entry.startswith("default:") else entry


class FakeClient:
    """The few `hdfs.InsecureClient` methods WebHDFSClient uses, with the library's signatures."""

    def __init__(self, fs: FakeHDFS, user: str | None) -> None:
        self.fs, self.user = fs, user

    def status(self, path, strict=True):
        if path in self.fs.dirs:
            return {"type": "DIRECTORY", "owner": self.user or "hdfs", "permission": "755",
                    "aclBit": bool(self.fs.acl.get(path))}
        if path in self.fs.files:
            return {"type": "FILE", "owner": self.user or "hdfs", "permission": "644",
                    "length": len(self.fs.files[path]), "aclBit": bool(self.fs.acl.get(path))}
        if strict:
            raise HdfsError("File does not exist: %s", path, exception="FileNotFoundException")
        return None

    def list(self, path, status=False):
        self.fs.calls.append(("list", path))
        if path not in self.fs.dirs:
            raise HdfsError("File %s does not exist.", path, exception="FileNotFoundException")
        names = sorted({p[len(path.rstrip("/")) + 1:].split("/")[0] for p in [*self.fs.dirs, *self.fs.files]
                        if p.startswith(path.rstrip("/") + "/")})
        return [(n, self.status(f"{path.rstrip('/')}/{n}")) for n in names] if status else names

    def makedirs(self, path, permission=None):
        self.fs.dirs.add(path)

    def set_owner(self, path, owner=None, group=None):
        pass

    def set_permission(self, path, permission):
        pass

    def content(self, path, strict=True):
        return {"length": 0, "fileCount": 0, "directoryCount": 0, "spaceQuota": -1}

    def write(self, path, data=None, overwrite=False, **kw):
        with self.fs.lock:
            self.fs.files[path] = b""
        for chunk in data:  # a generator: this is where the writer thread waits for the client
            with self.fs.lock:
                self.fs.files[path] += chunk

    def delete(self, path, recursive=False):
        with self.fs.lock:
            return self.fs.files.pop(path, None) is not None

    def rename(self, src, dst):
        with self.fs.lock:
            self.fs.files[dst] = self.fs.files.pop(src)

    def acl_status(self, path, strict=True):
        self.fs.calls.append(("acl_status", path))
        return {"entries": list(self.fs.acl.get(path, [])), "owner": "hdfs", "permission": "775"}

    def set_acl(self, path, acl_spec, clear=True):
        assert not clear, "the edge only adds entries (MODIFYACLENTRIES)"
        assert WEBHDFS_ACLSPEC.match(acl_spec), acl_spec
        self.fs.calls.append(("set_acl", path, acl_spec))
        entries = self.fs.acl.setdefault(path, [])
        for entry in acl_spec.split(","):
            entries[:] = [e for e in entries if _key(e) != _key(entry)] + [entry]

    def remove_acl_entries(self, path, acl_spec):
        assert WEBHDFS_ACLSPEC.match(acl_spec), acl_spec
        # RemoveAclEntries parses its spec without permissions: "user:ann:" is right, "user:ann:rwx" is refused
        assert all(e.endswith(":") for e in acl_spec.split(",")), acl_spec
        self.fs.calls.append(("remove_acl_entries", path, acl_spec))
        gone = {e.rstrip(":") for e in acl_spec.split(",")}
        self.fs.acl[path] = [e for e in self.fs.acl.get(path, []) if _key(e) not in gone]


class FakeStorage(HDFSStorage):
    """HDFSStorage whose WebHDFS client's sessions are FakeClients on one FakeHDFS."""

    fs: FakeHDFS


@pytest.fixture
def make_storage():
    made: list[HDFSStorage] = []

    def make(**traits) -> FakeStorage:
        storage = FakeStorage(**traits)
        storage.fs = fs = FakeHDFS()
        storage.webhdfs.session = lambda user: FakeClient(fs, user)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.webhdfs.executor.shutdown(wait=False, cancel_futures=True)


def leftovers(fs: FakeHDFS) -> list[str]:
    return [p for p in fs.files if ".yardlab-upload-" in p]


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# -- (A) uploads: time limits ---------------------------------------------------------------------------
def test_a_steady_upload_is_saved_and_frees_its_slot(make_storage):
    storage = make_storage(upload_idle_timeout=2.0)

    async def go():
        up = storage.upload(ALICE, "/user/alice/a.txt", overwrite=True)
        await up.start()
        for piece in (b"one,", b"two,", b"three"):
            await up.feed(piece)
            await asyncio.sleep(0.05)
        return await storage.finish_upload(up)

    model = asyncio.run(go())
    assert model["size"] == len(b"one,two,three")
    assert storage.fs.files["/user/alice/a.txt"] == b"one,two,three"
    assert leftovers(storage.fs) == [] and not storage.upload_slots.busy


def test_a_silent_upload_is_stopped_after_the_idle_timeout_and_leaves_nothing(make_storage):
    storage = make_storage(upload_idle_timeout=0.3, upload_deadline=30.0)
    answered: list[PublicError] = []

    async def go():
        up = storage.upload(ALICE, "/user/alice/silent.bin", overwrite=True)
        up.on_expired = answered.append
        await up.start()
        await up.feed(b"the first chunk, then nothing")
        await wait_for(lambda: leftovers(storage.fs))  # the temporary file is being written
        began = time.monotonic()
        await wait_for(lambda: answered, timeout=5)
        return up, time.monotonic() - began

    up, waited = asyncio.run(go())
    assert 0.2 < waited < 2.0
    assert answered[0].status == 408 and "no data arrived for 0.3 seconds" in answered[0].message
    assert up.future.done() and isinstance(up.future.exception(), UploadAborted)  # the thread is free
    assert leftovers(storage.fs) == [] and "/user/alice/silent.bin" not in storage.fs.files
    assert not storage.upload_slots.busy


def test_a_trickling_upload_is_stopped_at_its_deadline(make_storage):
    storage = make_storage(upload_idle_timeout=5.0, upload_deadline=0.6)
    answered: list[PublicError] = []

    async def go():
        up = storage.upload(ALICE, "/user/alice/trickle.bin", overwrite=True)
        up.on_expired = answered.append
        await up.start()
        with pytest.raises(PublicError) as refused:
            for _ in range(100):  # a byte every 50 ms: never idle, but never done
                await up.feed(b"x")
                await asyncio.sleep(0.05)
        await up.abort(refused.value)  # what the handler does; the watchdog's answer comes as well
        await wait_for(lambda: answered)
        return refused.value

    refused = asyncio.run(go())
    assert refused.status == 408 and "took longer than 0.6 seconds" in refused.message
    assert answered and answered[0] is refused
    assert leftovers(storage.fs) == [] and not storage.upload_slots.busy


def test_the_writer_thread_stops_waiting_for_a_silent_client_by_itself(make_storage):
    """Even with nobody on the event loop to abort it, the thread gives up: queue.get has a timeout."""
    storage = make_storage(upload_idle_timeout=0.3)
    up = storage.upload(ALICE, "/user/alice/x", overwrite=True)
    up.started = up.last_activity = time.monotonic()
    outcome: list[BaseException] = []

    def writer():
        try:
            list(up._chunks())
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    thread.join(3)
    assert not thread.is_alive(), "the writer thread is still blocked on queue.get()"
    assert isinstance(outcome[0], UploadAborted) and up.error.status == 408

    # and the aborted flag alone ends it, well before any timeout
    storage.upload_idle_timeout = 60.0
    up2 = storage.upload(ALICE, "/user/alice/y", overwrite=True)
    up2.started = up2.last_activity = time.monotonic()
    thread = threading.Thread(target=lambda: outcome.append(pytest.raises(UploadAborted, list, up2._chunks())),
                              daemon=True)
    thread.start()
    up2.aborted.set()
    thread.join(2)
    assert not thread.is_alive()


# -- (A) uploads: how many -------------------------------------------------------------------------------
def test_uploads_are_capped_per_user_429_and_overall_503_and_slots_come_back(make_storage):
    storage = make_storage(threads=4, upload_threads=3, uploads_per_user=2, upload_idle_timeout=10.0)

    async def go():
        a1, a2 = (storage.upload(ALICE, f"/user/alice/{i}", True) for i in (1, 2))
        await a1.start()
        await a2.start()
        with pytest.raises(PublicError) as too_many:
            await storage.upload(ALICE, "/user/alice/3", True).start()
        b1 = storage.upload(BOB, "/user/bob/1", True)
        await b1.start()
        with pytest.raises(PublicError) as full:
            await storage.upload(CAROL, "/user/carol/1", True).start()
        # a listing still finds a thread while every upload thread waits for its client
        listing = await asyncio.wait_for(storage.listing(CAROL, "/user/carol"), 2)
        await a1.feed(b"done")
        await a1.finish()
        a3 = storage.upload(ALICE, "/user/alice/3", True)
        await a3.start()  # alice's finished upload gave its slot back
        for up in (a2, b1, a3):
            await up.abort()
        return too_many.value, full.value, listing

    too_many, full, listing = asyncio.run(go())
    assert too_many.status == 429 and "you already have 2 uploads in progress" in too_many.message
    assert full.status == 503 and "try again" in full.message
    assert listing["type"] == "directory"
    assert not storage.upload_slots.busy and leftovers(storage.fs) == []


def test_a_refused_upload_start_gives_its_slot_back(make_storage):
    storage = make_storage(uploads_per_user=1)

    async def go():
        with pytest.raises(PublicError) as missing:
            await storage.upload(ALICE, "/user/alice/no/such/folder/x", True).start()
        return missing.value

    assert asyncio.run(go()).status == 404
    assert not storage.upload_slots.busy


def test_upload_threads_must_leave_threads_for_everything_else():
    with pytest.raises(TraitError, match="smaller than HDFSStorage.threads"):
        HDFSStorage(threads=4, upload_threads=4)
    assert HDFSStorage(threads=16).upload_threads == 8


# -- (A) over HTTP: the answer a timed-out client gets -----------------------------------------------------
class _Identifier:
    async def identify(self, authorization):
        return Identity(name=authorization.split()[-1], admin=False)


async def _serve(storage: HDFSStorage) -> tuple[HTTPServer, int]:
    app = web.Application([(r"/api/v1/files/?(.*)", FilesHandler)], storage=storage, identifier=_Identifier())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = HTTPServer(app, max_body_size=storage.max_upload_bytes + 1)
    server.add_sockets([sock])
    return server, sock.getsockname()[1]


async def _start_put(port: int, user: str, path: str, first: bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"PUT /api/v1/files{path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {user}\r\n"
                 f"Transfer-Encoding: chunked\r\n\r\n{len(first):x}\r\n".encode() + first + b"\r\n")
    await writer.drain()
    return reader, writer


async def _response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    return int(head.split()[1]), json.loads(await reader.readexactly(length))


def test_over_http_a_silent_upload_gets_408_and_the_third_of_one_user_429(make_storage):
    storage = make_storage(upload_idle_timeout=0.5, uploads_per_user=2)

    async def go():
        server, port = await _serve(storage)
        try:
            silent = await _start_put(port, "alice", "/user/alice/silent.bin", b"hello")
            busy = await _start_put(port, "alice", "/user/alice/busy.bin", b"hello")
            await wait_for(lambda: len(leftovers(storage.fs)) == 2)
            # the third, while two are open: refused once its (small) body is read
            third = await _start_put(port, "alice", "/user/alice/third.bin", b"x")
            third[1].write(b"0\r\n\r\n")
            refused = await _response(third[0], 5)
            # keep `busy` alive past the idle timeout; `silent` says nothing more
            began = time.monotonic()
            for _ in range(4):
                busy[1].write(b"1\r\nx\r\n")
                await asyncio.sleep(0.2)
            cut = await _response(silent[0], 5)
            cut_after = time.monotonic() - began
            closed = await asyncio.wait_for(silent[0].read(), 2) == b""  # and the edge hung up
            busy[1].write(b"0\r\n\r\n")
            head = await asyncio.wait_for(busy[0].readuntil(b"\r\n\r\n"), 5)
            for _, w in (silent, busy, third):
                w.close()
            return refused, cut, cut_after, closed, head
        finally:
            server.stop()

    refused, cut, cut_after, closed, head = asyncio.run(go())
    assert refused[0] == 429 and "2 uploads in progress" in refused[1]["message"]
    assert cut[0] == 408 and "no data arrived" in cut[1]["message"], cut
    assert cut_after < 2.0 and closed
    assert head.startswith(b"HTTP/1.1 201")
    assert storage.fs.files["/user/alice/busy.bin"] == b"hellox" + b"x" * 3
    assert "/user/alice/silent.bin" not in storage.fs.files and leftovers(storage.fs) == []
    assert not storage.upload_slots.busy


# -- (B) /public's ACL follows the admins ------------------------------------------------------------------
def public_named(fs: FakeHDFS, path: str = "/public") -> set[str]:
    return {e for e in fs.acl.get(path, []) if re.match(r"^(default:)?user:[^:]+:", e)}


def hub_says(admins: set[str] | None):
    """A stand-in for AdminRoster.is_admin: the hub's answer (None: it cannot say)."""
    async def is_admin(name: str) -> bool | None:
        return None if admins is None else name in admins

    return is_admin


def test_a_user_seen_as_not_admin_loses_their_entries_on_public(make_storage):
    storage = make_storage()
    storage.is_admin_now = hub_says(set())
    fs = storage.fs
    fs.acl["/public"] = ["user:ann:rwx", "default:user:ann:rwx", "user:bob:rwx", "default:user:bob:rwx",
                         "group::r-x", "default:user::rwx"]
    asyncio.run(storage.ensure_provisioned(Identity(name="ann", admin=False)))
    assert public_named(fs) == {"user:bob:rwx", "default:user:bob:rwx"}
    assert ("remove_acl_entries", "/public", "user:ann:,default:user:ann:") in fs.calls
    assert "group::r-x" in fs.acl["/public"]


def test_a_token_without_the_admin_scope_does_not_take_an_admins_entries(make_storage):
    """The entries are the user's (their kernels write as them): only the hub's roles take them away."""
    storage = make_storage()
    fs = storage.fs
    for hub in (hub_says({"ann"}), hub_says(None)):  # still an admin; the hub cannot say
        storage.is_admin_now = hub
        storage._provisioned.clear()
        asyncio.run(storage.ensure_provisioned(Identity(name="ann", admin=True)))
        asyncio.run(storage.ensure_provisioned(Identity(name="ann", admin=False)))
        assert public_named(fs) == {"user:ann:rwx", "default:user:ann:rwx"}


def test_an_admin_demoted_and_promoted_again_follows_on_each_contact(make_storage):
    storage = make_storage()
    fs = storage.fs
    admins = {"ann"}
    storage.is_admin_now = hub_says(admins)

    async def contacts():
        await storage.ensure_provisioned(Identity(name="ann", admin=True))
        after_admin = public_named(fs)
        admins.clear()  # the hub takes the admin role away
        await storage.ensure_provisioned(Identity(name="ann", admin=False))
        after_demotion = public_named(fs)
        admins.add("ann")
        await storage.ensure_provisioned(Identity(name="ann", admin=True))
        return after_admin, after_demotion, public_named(fs)

    after_admin, after_demotion, after_promotion = asyncio.run(contacts())
    assert after_admin == {"user:ann:rwx", "default:user:ann:rwx"}
    assert after_demotion == set()
    assert after_promotion == after_admin
    assert not any(c[0] == "_modify_acl_entries" for c in fs.calls)


def test_reconcile_removes_non_admins_entries_on_public_and_inside_it(make_storage):
    storage = make_storage()
    fs = storage.fs
    fs.dirs |= {"/public/data", "/public/data/raw", "/public/notes"}
    fs.files["/public/data/raw/x.csv"] = b"1\n"
    everyone = ["user:ann:rwx", "default:user:ann:rwx", "user:bob:rwx", "default:user:bob:rwx"]
    for path in ("/public", "/public/data", "/public/data/raw"):
        fs.acl[path] = list(everyone)
    fs.acl["/public/data/raw/x.csv"] = ["user:ann:rwx", "user:bob:rwx"]
    storage._provisioned.add(("bob", True))

    removed = asyncio.run(storage.reconcile_public_acl({"ann"}))
    assert removed == {"bob"}
    for path in ("/public", "/public/data", "/public/data/raw", "/public/data/raw/x.csv"):
        assert not any(":bob:" in e for e in fs.acl[path]), path
        assert any(e.startswith("user:ann:") for e in fs.acl[path]), path
    assert ("acl_status", "/public/notes") not in fs.calls  # no ACL there: not asked
    # bob, an admin again on his next contact, gets his entry back
    assert ("bob", True) not in storage._provisioned

    # the same admins and a clean /public: only /public itself is read
    fs.calls.clear()
    assert asyncio.run(storage.reconcile_public_acl({"ann"})) == set()
    assert fs.calls == [("acl_status", "/public")]
    # ann removed from the admins: walked again
    assert asyncio.run(storage.reconcile_public_acl(set())) == {"ann"}
    assert all(not public_named(fs, p) for p in ("/public", "/public/data", "/public/data/raw"))


def test_a_failed_walk_is_walked_again_next_time(make_storage):
    storage = make_storage()
    fs = storage.fs
    fs.dirs.add("/public/data")
    fs.acl["/public/data"] = ["user:bob:rwx"]
    real = FakeClient.list

    def broken(self, path, status=False):
        raise HdfsError("NameNode is in safe mode", exception="SafeModeException")

    FakeClient.list = broken
    try:
        with pytest.raises(PublicError):
            asyncio.run(storage.reconcile_public_acl({"ann"}))
    finally:
        FakeClient.list = real
    assert asyncio.run(storage.reconcile_public_acl({"ann"})) == {"bob"}


# -- (C) paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["/user/alice/#LATEST", "/user/alice/#LATEST{2}/x", "/public/a#b.csv", "#",
                                 "/shared/#"])
def test_hash_is_refused_in_paths(raw):
    with pytest.raises(PublicError) as refused:
        clean_path(raw)
    assert refused.value.status == 400 and "'#'" in refused.value.message


def test_ordinary_paths_still_pass():
    assert clean_path("/user/alice//data/ x.csv") == "/user/alice/data/ x.csv"
    assert clean_path("shared/a-b_c.d") == "/shared/a-b_c.d"


def test_first_contacts_of_different_users_run_side_by_side(make_storage, monkeypatch):
    """Ten new users at once: their homes are made side by side (each WebHDFS call here takes 0.2 s), not
    one user after another behind a lock shared by all (bench_load: 200 page loads, storage p50 2.4 s);
    and each home is made once, as its owner's."""
    import time as time_

    storage = make_storage()
    fs = storage.fs
    real_status = FakeClient.status

    def slow_status(self, path, strict=True):
        if path.startswith("/user/new"):
            time_.sleep(0.2)
        return real_status(self, path, strict)

    made: list[str] = []
    real_makedirs = FakeClient.makedirs

    def counted_makedirs(self, path, permission=None):
        made.append(path)
        return real_makedirs(self, path, permission)

    monkeypatch.setattr(FakeClient, "status", slow_status)
    monkeypatch.setattr(FakeClient, "makedirs", counted_makedirs)
    users = [Identity(name=f"new{i}", admin=False) for i in range(10)]

    async def contacts() -> float:
        began = time_.monotonic()
        await asyncio.gather(*(storage.ensure_provisioned(u) for u in users for _ in range(2)))
        return time_.monotonic() - began

    took = asyncio.run(contacts())
    assert took < 1.0, f"ten first contacts took {took:.1f} s"
    assert all(f"/user/new{i}" in fs.dirs for i in range(10))
    assert sorted(made) == sorted(f"/user/new{i}" for i in range(10))  # once each, though asked twice
