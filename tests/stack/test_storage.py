"""HDFS storage through the edge, on the real stack: private homes, shared, public, bad paths, streaming,
upload limits and timeouts, /public's ACL following the admins."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import HadoopAuth
from hdfs import Client, HdfsError

# the stack's edge settings these tests rely on (dev/edge_config.py)
UPLOADS_PER_USER = 2  # c.HDFSStorage.uploads_per_user
UPLOAD_THREADS = 4  # c.HDFSStorage.upload_threads
IDLE_TIMEOUT = 3.0  # c.HDFSStorage.upload_idle_timeout


def hdfs_as(stack, user: str | None) -> Client:
    return HadoopAuth.of(stack).webhdfs(stack, proxy=user)


def files(session, path: str) -> str:
    return f"/files/{path.lstrip('/')}"


@pytest.fixture
def name():
    return f"yl-{uuid.uuid4().hex[:8]}"


def test_roots_are_provisioned_on_first_contact(stack, edge_as):
    r = edge_as("bob").get("/storage")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [root["path"] for root in body["roots"]] == ["/user/bob", "/shared", "/public"]
    assert [root["writable"] for root in body["roots"]] == [True, True, False]
    su = hdfs_as(stack, None)
    home = su.status("/user/bob")
    assert (home["owner"], home["permission"]) == ("bob", "700")
    assert su.status("/shared")["permission"] == "1777"
    public = su.status("/public")
    # others read only; the group bits show the ACL mask once an admin's ACL entry exists
    assert public["permission"][-1] == "5" and public["owner"] == stack["service_user"]
    assert set(body["usage"]) == {"personal", "shared", "public"}
    # idempotent
    assert edge_as("bob").get("/storage").json()["roots"] == body["roots"]


def test_personal_files_are_private(stack, edge_as, name):
    alice, bob = edge_as("alice"), edge_as("bob")
    path = f"/user/alice/{name}.txt"
    r = alice("PUT", files(alice, path), data=b"alice's secret\n")
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "alice" and r.json()["size"] == 15
    got = alice.get(files(alice, path), params={"download": "1"})
    assert got.status_code == 200 and got.content == b"alice's secret\n"
    # bob: neither read nor list, through the API ...
    assert bob.get(files(bob, path), params={"download": "1"}).status_code == 403
    assert bob.get(files(bob, "/user/alice")).status_code == 403
    assert bob("PUT", files(bob, f"/user/alice/{name}-bob.txt"), data=b"x").status_code == 403
    # ... and HDFS itself refuses him too
    with pytest.raises(HdfsError, match="Permission denied"):
        hdfs_as(stack, "bob").status(path)
    assert alice("DELETE", files(alice, path)).status_code == 204


def test_shared_is_writable_by_all_but_sticky(stack, edge_as, name):
    alice, bob = edge_as("alice"), edge_as("bob")
    a_path, b_path = f"/shared/{name}-alice.csv", f"/shared/{name}-bob.csv"
    assert alice("PUT", files(alice, a_path), data=b"a,1\n").status_code == 201
    assert bob("PUT", files(bob, b_path), data=b"b,2\n").status_code == 201
    assert bob.get(files(bob, a_path), params={"download": "1"}).content == b"a,1\n"
    denied = bob("DELETE", files(bob, a_path))
    assert denied.status_code == 403
    assert "permission denied" in denied.json()["message"]
    assert bob("PATCH", files(bob, a_path), json={"path": f"/shared/{name}-stolen.csv"}).status_code == 403
    assert hdfs_as(stack, None).status(a_path)["owner"] == "alice"
    assert alice("DELETE", files(alice, a_path)).status_code == 204
    assert bob("DELETE", files(bob, b_path)).status_code == 204


def test_public_is_read_only_for_users_and_written_by_admins(stack, edge_as, name):
    guest, admin = edge_as("guest"), edge_as("admin")
    path = f"/public/{name}-data.csv"
    assert guest("PUT", files(guest, path), data=b"nope").status_code == 403
    made = admin("PUT", files(admin, path), data=b"x,y\n1,2\n")
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "admin"
    assert guest.get(files(guest, path), params={"download": "1"}).content == b"x,y\n1,2\n"
    assert guest("DELETE", files(guest, path)).status_code == 403
    assert admin("DELETE", files(admin, path)).status_code == 204


def test_mkdir_rename_list_and_recursive_delete(edge_as, name):
    alice = edge_as("alice")
    folder = f"/user/alice/{name}"
    assert alice("POST", files(alice, folder), params={"op": "mkdir"}).status_code == 201
    assert alice("POST", files(alice, folder), params={"op": "mkdir"}).status_code == 409
    assert alice("PUT", files(alice, f"{folder}/one.txt"), data=b"1").status_code == 201
    assert alice("PUT", files(alice, f"{folder}/one.txt"), params={"overwrite": "0"}, data=b"2").status_code == 409
    moved = alice("PATCH", files(alice, f"{folder}/one.txt"), json={"path": f"{folder}/two.txt"})
    assert moved.status_code == 200 and moved.json()["name"] == "two.txt"
    listing = alice.get(files(alice, folder)).json()
    assert listing["type"] == "directory"
    assert [e["name"] for e in listing["content"]] == ["two.txt"]
    assert alice("DELETE", files(alice, folder)).status_code == 409
    assert alice("DELETE", files(alice, folder), params={"recursive": "1"}).status_code == 204
    assert alice.get(files(alice, folder)).status_code == 404


@pytest.mark.parametrize("raw", [
    "user/alice/..%2Fbob%2Fsecret.txt",
    "user/alice/%2e%2e/bob",
    "user/alice/a%00b.txt",
    "user/alice/a:b.txt",
    "user/alice/a%5Cb.txt",
    "user/alice/" + "x" * 300,
    "user/alice/%2e/x.txt",
    "user/alice/%23LATEST",  # the hdfs library would read it as the newest entry of /user/alice
    "user/alice/a%23b.txt",
])
def test_path_tricks_are_400_and_touch_nothing(stack, edge_as, raw):
    alice = edge_as("alice")
    before = sorted(hdfs_as(stack, None).list("/user/alice"))
    for method, kw in (("GET", {}), ("PUT", {"data": b"x"}), ("DELETE", {}), ("POST", {"params": {"op": "mkdir"}})):
        r = alice(method, f"/files/{raw}", **kw)
        assert r.status_code == 400, (method, raw, r.status_code, r.text[:200])
        assert r.json()["message"]
    assert sorted(hdfs_as(stack, None).list("/user/alice")) == before


@pytest.mark.parametrize("path", ["tmp", "user", "yardlab/envs", ""])
def test_paths_outside_the_storage_roots_are_refused(edge_as, path):
    r = edge_as("alice").get(f"/files/{path}")
    assert r.status_code in (400, 403), r.text
    if r.status_code == 403:
        assert "outside yardlab storage" in r.json()["message"]


def test_rename_target_is_checked_too(edge_as, name):
    alice = edge_as("alice")
    src = f"/user/alice/{name}.txt"
    assert alice("PUT", files(alice, src), data=b"1").status_code == 201
    for target in ("/tmp/x", "/user/alice/../bob/x", "relative/../x", 42, "/user/alice/#LATEST"):
        r = alice("PATCH", files(alice, src), json={"path": target})
        assert r.status_code in (400, 403), (target, r.text)
    assert alice("DELETE", files(alice, src)).status_code == 204


class SlowUpload:
    """A PUT to the edge whose chunked body arrives only as the test sends it (raw socket: the test
    reads the edge's answer while the body is still unfinished, which requests cannot)."""

    def __init__(self, stack, user: str, path: str) -> None:
        url = urlsplit(stack["edge_url"])
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        target = f"{url.path.rstrip('/')}/api/v1/files{path}"
        self.sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                          f"Authorization: token {stack['user_tokens'][user]}\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n".encode())
        self.sent = b""
        self.send(b"first bytes;")

    def send(self, data: bytes = b"x") -> None:
        self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.sent += data

    def response(self, timeout: float) -> tuple[int, dict]:
        self.sock.settimeout(timeout)
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        self.headers = resp.headers
        return resp.status, json.loads(resp.read())

    def end(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


class Trickle:
    """Keeps slow uploads alive: a byte to each every half second (well within the idle timeout)."""

    def __init__(self) -> None:
        self.uploads: list[SlowUpload] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                for up in self.uploads:
                    up.send(b"x")

    def __enter__(self) -> "Trickle":
        self.thread.start()
        return self

    def add(self, up: SlowUpload) -> SlowUpload:
        with self.lock:
            self.uploads.append(up)
        return up

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def temp_uploads(stack, folder: str) -> list[str]:
    return [n for n in hdfs_as(stack, None).list(folder) if ".yardlab-upload-" in n]


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_slow_uploads_are_capped_per_user_and_in_all_while_listings_answer(stack, edge_as, name):
    users = ("alice", "bob")
    assert len(users) * UPLOADS_PER_USER == UPLOAD_THREADS  # together they take every upload thread
    folders = {u: f"/user/{u}/{name}" for u in users}
    for u, folder in folders.items():
        session = edge_as(u)
        assert session("POST", files(session, folder), params={"op": "mkdir"}).status_code == 201
    alice, guest = edge_as("alice"), edge_as("guest")
    slow: list[SlowUpload] = []
    try:
        with Trickle() as trickle:
            for u in users:
                for i in range(UPLOADS_PER_USER):
                    slow.append(trickle.add(SlowUpload(stack, u, f"{folders[u]}/slow-{i}.bin")))
            # each has its WebHDFS write open (and so holds a thread) once its temporary file exists
            wait_until(lambda: sum(len(temp_uploads(stack, f)) for f in folders.values()) == UPLOAD_THREADS,
                       what="the slow uploads to start writing")
            third = alice("PUT", files(alice, f"{folders['alice']}/third.bin"), data=b"x")
            assert third.status_code == 429, third.text
            assert f"you already have {UPLOADS_PER_USER} uploads in progress" in third.json()["message"]
            full = guest("PUT", files(guest, f"/user/guest/{name}.bin"), data=b"x")
            assert full.status_code == 503 and "try again" in full.json()["message"], full.text
            # everything else still finds a thread, at once
            began = time.monotonic()
            listing = guest.get(files(guest, "/user/guest"))
            stat = alice.get(files(alice, folders["alice"]))
            assert listing.status_code == 200 and stat.status_code == 200
            assert time.monotonic() - began < 3.0
        for up in slow:  # all ended at once, so none waits on the others past the idle timeout
            up.end()
        answers = [up.response(60) for up in slow]
        assert [status for status, _ in answers] == [201] * len(slow), answers
        assert [body["size"] for _, body in answers] == [len(up.sent) for up in slow]
        # the slots came back with the threads
        assert alice("PUT", files(alice, f"{folders['alice']}/third.bin"), data=b"x").status_code == 201
    finally:
        for up in slow:
            up.close()
        for u, folder in folders.items():
            session = edge_as(u)
            session("DELETE", files(session, folder), params={"recursive": "1"})


def test_a_silent_upload_is_cut_after_the_idle_timeout_and_leaves_nothing(stack, edge_as, name):
    alice = edge_as("alice")
    folder = f"/user/alice/{name}"
    assert alice("POST", files(alice, folder), params={"op": "mkdir"}).status_code == 201
    up = SlowUpload(stack, "alice", f"{folder}/silent.bin")
    try:
        wait_until(lambda: temp_uploads(stack, folder), what="the upload to start writing")
        began = time.monotonic()
        status, body = up.response(timeout=IDLE_TIMEOUT + 30)  # the client says nothing more
        waited = time.monotonic() - began
        assert status == 408 and f"no data arrived for {IDLE_TIMEOUT:g} seconds" in body["message"], body
        assert waited < IDLE_TIMEOUT + 10
        assert up.sock.recv(1) == b""  # the edge hung up
        assert up.headers["Connection"] == "close"  # and said it would: a proxy must not reuse the connection
        # aborted before answering: no temporary file, no half-written target
        assert hdfs_as(stack, None).list(folder) == []
        # and its slot (its thread) is free again
        assert alice("PUT", files(alice, f"{folder}/after.bin"), data=b"ok").status_code == 201
    finally:
        up.close()
        alice("DELETE", files(alice, folder), params={"recursive": "1"})


def public_entries_of(stack, user: str) -> set[str]:
    entries = hdfs_as(stack, None).acl_status("/public")["entries"]
    return {e for e in entries if e.startswith((f"user:{user}:", f"default:user:{user}:"))}


def test_an_admin_token_without_the_admin_scope_keeps_the_admins_public_acl(stack, edge_as, hub, name):
    """Scopes limit a token, not the user: the ACL entries are the admin's (their kernels write to
    /public as them), and only the hub's roles take them away."""
    admin = edge_as("admin")
    assert admin.get("/storage").status_code == 200  # seen as an admin: holds the entries
    made = hub("POST", "/users/admin/tokens", json={"note": "no admin scope", "expires_in": 600,
                                                     "scopes": ["access:services!service=yardlab-edge"]})
    assert made.status_code == 201, made.text
    plain = requests.get(f"{stack['edge_url']}/api/v1/storage", timeout=60,
                         headers={"Authorization": f"token {made.json()['token']}"})
    assert plain.status_code == 200, plain.text
    assert [r["writable"] for r in plain.json()["roots"]] == [True, True, False]  # this token: no admin power
    assert public_entries_of(stack, "admin") == {"user:admin:rwx", "default:user:admin:rwx"}
    hdfs_as(stack, "admin").write(f"/public/{name}.txt", data=b"x")  # as from the admin's kernel
    hdfs_as(stack, None).delete(f"/public/{name}.txt")


@pytest.fixture
def new_hub_user(stack, hub):
    """A hub user the edge has never seen (a plain user), with a token; removed with its HDFS home after."""
    user = f"yl-acl-{uuid.uuid4().hex[:8]}"
    assert hub("POST", f"/users/{user}").status_code == 201
    token = hub("POST", f"/users/{user}/tokens", json={"note": "test", "expires_in": 600}).json()["token"]
    yield user, token
    hub("DELETE", f"/users/{user}")
    su = hdfs_as(stack, None)
    su.delete(f"/user/{user}", recursive=True)
    if public_entries_of(stack, user):
        su.remove_acl_entries("/public", f"user:{user}:,default:user:{user}:")


def test_a_users_first_contact_removes_their_planted_entries_on_public(stack, new_hub_user):
    user, token = new_hub_user
    admins_before = public_entries_of(stack, "admin")
    hdfs_as(stack, None).set_acl("/public", f"user:{user}:rwx,default:user:{user}:rwx", clear=False)
    assert len(public_entries_of(stack, user)) == 2
    r = requests.get(f"{stack['edge_url']}/api/v1/storage", headers={"Authorization": f"token {token}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == user and r.json()["roots"][2]["writable"] is False
    assert public_entries_of(stack, user) == set()
    # an admin's entries are untouched
    assert public_entries_of(stack, "admin") == admins_before


def edge_peak_rss_kb(stack) -> int:
    import json

    pid = json.loads(Path(stack["state_dir"], "stack.json").read_text())["pids"]["edge"]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_upload_streams_with_bounded_edge_memory(stack, edge_as, name):
    size = 256 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()

    class Body:
        """A file-like body of known length, made up as it is read (the test holds 1 MB, not 256)."""

        def __init__(self) -> None:
            self.sent = 0

        def __len__(self) -> int:
            return size - self.sent

        def read(self, n: int = -1) -> bytes:
            n = len(block) if n is None or n < 0 else min(n, len(block))
            n = min(n, size - self.sent)
            chunk = block[:n]
            self.sent += n
            digest.update(chunk)
            return chunk

    alice = edge_as("alice")
    path = f"/user/alice/{name}.bin"
    peak_before = edge_peak_rss_kb(stack)
    r = alice("PUT", files(alice, path), data=Body(), timeout=600)
    assert r.status_code == 201, r.text
    assert r.json()["size"] == size
    peak_after = edge_peak_rss_kb(stack)
    grew_mb = (peak_after - peak_before) / 1024
    print(f"\nedge peak RSS before {peak_before / 1024:.0f} MB, after a {size // 2**20} MB upload "
          f"{peak_after / 1024:.0f} MB (+{grew_mb:.0f} MB)")
    assert grew_mb < 64, f"edge peak memory grew by {grew_mb:.0f} MB for a {size // 2**20} MB upload"

    down = hashlib.sha256()
    with alice.session.get(f"{alice.base}{files(alice, path)}", params={"download": "1"}, stream=True,
                           timeout=600) as got:
        assert got.status_code == 200
        for chunk in got.iter_content(1024 * 1024):
            down.update(chunk)
    assert down.hexdigest() == digest.hexdigest()
    assert (edge_peak_rss_kb(stack) - peak_before) / 1024 < 64
    assert alice("DELETE", files(alice, path)).status_code == 204
    leftovers = [n for n in hdfs_as(stack, None).list("/user/alice") if ".yardlab-upload-" in n]
    assert leftovers == []


def test_lab_server_forwards_storage_calls_as_its_user(stack, hub, name):
    from test_hub import wait_server_ready

    hub("POST", "/users/guest/server")
    wait_server_ready(hub, "guest")
    base = f"{stack['hub_url']}user/guest/yardlab/api"
    h = {"Authorization": f"token {stack['user_tokens']['guest']}"}
    roots = requests.get(f"{base}/storage", headers=h, timeout=60)
    assert roots.status_code == 200, roots.text
    assert roots.json()["user"] == "guest"
    path = f"user/guest/{name}.txt"
    put = requests.put(f"{base}/files/{path}", data=b"via the lab server\n", headers=h, timeout=60)
    assert put.status_code == 201, put.text
    got = requests.get(f"{base}/files/{path}", params={"download": "1"}, headers=h, timeout=60)
    assert got.content == b"via the lab server\n"
    # the edge's refusal passes through with its message
    denied = requests.get(f"{base}/files/user/alice", headers=h, timeout=60)
    assert denied.status_code == 403 and "permission denied" in denied.json()["message"]
    assert requests.delete(f"{base}/files/{path}", headers=h, timeout=60).status_code == 204


def test_kernels_use_hdfs_with_relative_paths_in_the_home(stack, eg_kernel, name):
    kc = eg_kernel("yardlab_pyspark", user="alice")
    code = (f"spark.range(5).write.mode('overwrite').parquet('{name}')\n"
            f"print(spark.read.parquet('{name}').count())\n"
            "from hdfs import Config\n"
            "client = Config().get_client()\n"
            f"print(client.status('{name}')['type'], client.status('{name}')['owner'])\n")
    reply = kc.execute(code)
    assert reply.status == "ok", reply.error + reply.stderr[-2000:]
    assert reply.stdout.split() == ["5", "DIRECTORY", "alice"]
    st = hdfs_as(stack, None).status(f"/user/alice/{name}")
    assert st["owner"] == "alice"
    hdfs_as(stack, "alice").delete(f"/user/alice/{name}", recursive=True)


def test_entries_of_users_the_hub_does_not_make_admins_are_reconciled_away(stack, edge_as):
    """The edge asks the hub who the admins are now (every 15 s on the local stack) and takes
    /public's ACL entries of anyone else away, whether or not they come back."""
    assert edge_as("bob").get("/storage").status_code == 200  # bob is known and provisioned already
    assert edge_as("admin").get("/storage").status_code == 200
    su = hdfs_as(stack, None)
    su.set_acl("/public", "user:bob:rwx,default:user:bob:rwx", clear=False)  # as if bob had been an admin
    deadline = time.monotonic() + 45
    while public_entries_of(stack, "bob"):
        assert time.monotonic() < deadline, "bob's entries on /public were not reconciled away"
        time.sleep(1)
    assert public_entries_of(stack, "admin") == {"user:admin:rwx", "default:user:admin:rwx"}
