"""The storage path policy without HDFS: which paths the edge will hand to WebHDFS at all.

Two steps, in this order for every files request: ``clean_path`` turns the caller's path into one
absolute, normalised path or refuses it (400: '.', '..', NUL and other control characters, ':',
'\\', '#', too long); ``HDFSStorage.check_within_roots`` refuses (403) anything outside the storage
roots (homes, /shared, /public). Inside the roots HDFS decides, acting as the caller: another user's
home is within the roots (its 0700 permissions refuse them; tests/test_storage.py checks that on the
real stack).
"""
from __future__ import annotations

import pytest

from yardlab.edge.auth import Identity
from yardlab.edge.errors import PublicError
from yardlab.edge.storage import HDFSStorage, clean_path

ALICE = Identity(name="alice", admin=False)
ADMIN = Identity(name="root-admin", admin=True)


def make_storage(**traits) -> HDFSStorage:
    """The one place that knows how HDFSStorage is built (it is being refactored): its layout traits."""
    return HDFSStorage(**traits)


@pytest.fixture
def storage() -> HDFSStorage:
    return make_storage()


def refusal(call, *args) -> PublicError:
    with pytest.raises(PublicError) as e:
        call(*args)
    return e.value


# --- clean_path -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("/user/alice", "/user/alice"),
    ("/user/alice/", "/user/alice"),
    ("//user///alice//data/", "/user/alice/data"),
    ("user/alice/x.csv", "/user/alice/x.csv"),  # relative to the root, never to a working folder
    ("/", "/"),
    ("/shared/ a b .csv", "/shared/ a b .csv"),  # spaces are names
    ("/shared/...", "/shared/..."),  # three dots are a name, not a step
    ("/shared/.hidden/..x/x..", "/shared/.hidden/..x/x.."),
    ("/public/café/数据.parquet", "/public/café/数据.parquet"),
    ("/shared/%2e%2e", "/shared/%2e%2e"),  # not decoded here: a literal name
])
def test_paths_are_made_absolute_and_normalised(raw, clean):
    assert clean_path(raw) == clean


@pytest.mark.parametrize("raw", [
    "/user/alice/..", "/user/alice/../bob", "/user/../user/bob", "..", "../etc", "/shared/./x", ".", "/./",
    "/user/alice/./../bob/",
])
def test_dot_segments_are_refused_not_resolved(raw):
    e = refusal(clean_path, raw)
    assert e.status == 400 and "'..'" in e.message


@pytest.mark.parametrize("raw", [
    "/user/alice/\x00", "/user/alice\x00/../bob", "/shared/a\nb", "/shared/a\rb", "/shared/a\tb", "/shared/\x1b[2J",
    "/shared/\x7f", "hdfs://namenode/user/bob", "webhdfs://nn:9870/user/bob", "/shared/a:b", "C:\\Windows",
    "/user/alice\\..\\bob", "\\\\server\\share",
])
def test_control_characters_colons_and_backslashes_are_refused(raw):
    e = refusal(clean_path, raw)
    assert e.status == 400 and "control character" in e.message


@pytest.mark.parametrize("raw", ["/user/alice/#LATEST", "/shared/a#b", "#", "/public/#/x"])
def test_a_hash_is_refused(raw):
    e = refusal(clean_path, raw)
    assert e.status == 400 and "'#'" in e.message


@pytest.mark.parametrize("raw", ["", None])
def test_a_path_is_required(raw):
    assert refusal(clean_path, raw).status == 400


def test_length_limits_of_the_whole_path_and_of_each_segment():
    name = "n" * 255
    assert clean_path(f"/shared/{name}") == f"/shared/{name}"
    e = refusal(clean_path, f"/shared/{name}n")
    assert e.status == 400 and "segment" in e.message
    longest = "/shared" + "/abcdefg" * 510 + "/" + "x" * 8
    assert len(longest) == 4096 and clean_path(longest) == longest
    e = refusal(clean_path, longest + "x")
    assert e.status == 400 and "longer than 4096" in e.message
    # the limit is on what the caller sent, before empty segments are dropped
    assert refusal(clean_path, "/shared" + "/" * 4096 + "x").status == 400


# --- roots and check_within_roots --------------------------------------------------------------------

def test_the_roots_are_the_users_home_shared_and_public(storage):
    assert storage.home("alice") == "/user/alice"
    assert storage.roots(ALICE) == [
        {"name": "Personal", "path": "/user/alice", "writable": True},
        {"name": "Shared", "path": "/shared", "writable": True},
        {"name": "Public", "path": "/public", "writable": False},
    ]
    assert [r["writable"] for r in storage.roots(ADMIN)] == [True, True, True]  # admins write /public
    assert storage.roots(ADMIN)[0]["path"] == "/user/root-admin"


@pytest.mark.parametrize("path", [
    "/user/alice", "/user/alice/notebooks/a.ipynb", "/shared", "/shared/team/x", "/public", "/public/data/x.csv",
    "/user/bob", "/user/bob/private.txt",  # within the roots: HDFS refuses alice there (0700 homes, doAs)
])
def test_paths_inside_the_roots_pass(storage, path):
    storage.check_within_roots(ALICE, path)


@pytest.mark.parametrize("path", [
    "/", "/tmp", "/tmp/x", "/user", "/yardlab", "/yardlab/envs/x.tar.gz", "/app-logs/alice", "/hbase",
    "/publicx", "/public-not", "/public_x/y", "/sharedx", "/shared2/x", "/users/alice", "/userx/alice",
    "/usr/alice", "/x/user/alice", "/x/shared", "/x/public",
])
def test_paths_outside_the_roots_are_403(storage, path):
    for who in (ALICE, ADMIN):  # admins get no wider reach through the files API
        e = refusal(storage.check_within_roots, who, path)
        assert e.status == 403 and e.reason == "Forbidden"


@pytest.mark.parametrize("raw", ["/user/alice/../bob", "/user/alice/../../tmp", "/public/../tmp", "/shared/..",
                                 "/publicx/../public", "/user/alice/..\\..\\tmp"])
def test_traversal_out_of_a_root_never_reaches_the_roots_check(storage, raw):
    """Both steps, as every files request takes them: the first refuses, whatever the second would say."""
    e = refusal(lambda: storage.check_within_roots(ALICE, clean_path(raw)))
    assert e.status == 400


@pytest.mark.parametrize("raw, ok", [("//public//x", True), ("public/x", True), ("/user//alice", True),
                                     ("/public/x/", True), ("///tmp", False), ("/publicx/", False)])
def test_roots_are_checked_on_the_cleaned_path(storage, raw, ok):
    path = clean_path(raw)
    if ok:
        storage.check_within_roots(ALICE, path)
    else:
        assert refusal(storage.check_within_roots, ALICE, path).status == 403


def test_a_configured_layout_moves_every_root():
    storage = make_storage(home_template="/home/{user}", shared_path="/data/shared", public_path="/data/public")
    assert [r["path"] for r in storage.roots(ALICE)] == ["/home/alice", "/data/shared", "/data/public"]
    for inside in ("/home/alice/x", "/data/shared/x", "/data/public"):
        storage.check_within_roots(ALICE, inside)
    for outside in ("/user/alice", "/shared", "/public", "/home", "/data", "/data/sharedx"):
        assert refusal(storage.check_within_roots, ALICE, outside).status == 403
