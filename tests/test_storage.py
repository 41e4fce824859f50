"""HDFS storage through the edge, on the real stack: private homes, shared, public, bad paths, streaming."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
import requests
from hdfs import HdfsError, InsecureClient


def hdfs_as(stack, user: str | None) -> InsecureClient:
    return InsecureClient(stack["webhdfs_url"], user=stack["service_user"], proxy=user)


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
    for target in ("/tmp/x", "/user/alice/../bob/x", "relative/../x", 42):
        r = alice("PATCH", files(alice, src), json={"path": target})
        assert r.status_code in (400, 403), (target, r.text)
    assert alice("DELETE", files(alice, src)).status_code == 204


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
