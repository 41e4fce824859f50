"""Bodies no client should send, to every edge door that reads one: each gets a 4xx whose JSON says
what was wrong in a sentence, and nothing changes (no kernel, no environment, no file, no YARN
application, no renamed path).

The doors are the edge's body-reading handlers with a real target of alice's (her home folder, a
kernel start, an environment), so that the body is what gets refused, not a missing id.
"""
from __future__ import annotations

import uuid

import pytest

#: (name, body, content type): not JSON, not text, not an object, too deep, numbers JSON has no
#: room for, a lone surrogate, and a body far past any JSON limit
BAD_BODIES = [
    ("not-json", b"name=yardlab_pyspark&x=1", "application/x-www-form-urlencoded"),
    ("truncated", b'{"name": "yardlab_pyspark", "env": {', "application/json"),
    ("invalid-utf8", b'{"name": "\xff\xfe\xfa yardlab"}', "application/json"),
    ("lone-surrogate", b'{"name": "\\ud800", "path": "/user/alice/\\udfff"}', "application/json"),
    ("nan", b'{"name": NaN, "path": NaN, "resources": {"driver_memory_mb": NaN}}', "application/json"),
    ("infinity", b'{"name": "x", "path": Infinity, "resources": {"driver_memory_mb": -Infinity}}',
     "application/json"),
    ("huge-number", b'{"name": "x", "path": 1e999, "resources": {"driver_memory_mb": 1' + b"0" * 400 + b"}}",
     "application/json"),
    ("negative", b'{"name": "x", "path": -1, "resources": {"driver_memory_mb": -1024, "executor_instances": -3}}',
     "application/json"),
    ("array", b'["yardlab_pyspark", "/user/bob"]', "application/json"),
    ("deep", b'{"name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),
    ("huge", b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}', "application/json"),
]

# (label, method, path under the edge, query): each reads a JSON body
DOORS = [
    ("start-kernel", "POST", "/gateway/api/kernels", None),
    ("create-environment", "POST", "/api/v1/environments", None),
    ("rename-file", "PATCH", "/api/v1/files/user/alice/{probe}", None),
]


def edge_state(edge_as, rm) -> dict:
    """What a refused body must not change: alice's kernels, environments, files and YARN applications."""
    alice = edge_as("alice")
    kernels = alice.session.get(alice.base.replace("/api/v1", "") + "/gateway/api/kernels", timeout=30).json()
    envs = alice.get("/environments").json()
    files = alice.get("/files/user/alice").json()
    return {"kernels": sorted(k["id"] for k in kernels),
            "environments": sorted((e["owner"], e["name"]) for e in envs["environments"]),
            "files": sorted(f["name"] for f in files["content"]),
            "apps": sorted(a["id"] for a in rm.apps(user="alice", states="NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING"))}


@pytest.fixture(scope="module")
def probe(edge_as):
    """A folder of alice's that the rename door points at (it must still be there, under its name, after)."""
    name = f"yl-sec-{uuid.uuid4().hex[:8]}"
    r = edge_as("alice")("POST", f"/files/user/alice/{name}", params={"op": "mkdir"})
    assert r.status_code in (200, 201), r.text
    yield name
    edge_as("alice")("DELETE", f"/files/user/alice/{name}")


@pytest.mark.parametrize("door", DOORS, ids=[d[0] for d in DOORS])
@pytest.mark.parametrize("bad", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body_is_refused_with_a_sentence_and_changes_nothing(edge_as, rm, probe, door, bad):
    label, method, path, _query = door
    name, body, ctype = bad
    before = edge_state(edge_as, rm)
    alice = edge_as("alice")
    url = alice.base.replace("/api/v1", "") + path.format(probe=probe) if path.startswith("/gateway") \
        else alice.base + path.format(probe=probe)
    r = alice.session.request(method, url, data=body, headers={"Content-Type": ctype}, timeout=60)
    assert 400 <= r.status_code < 500, f"{label} with a {name} body: {r.status_code} {r.text[:300]}"
    if r.status_code != 413 or r.content:  # tornado may close a body past its limit before the handler runs
        message = r.json().get("message", "")
        assert isinstance(message, str) and len(message.split()) >= 3, f"{label}/{name}: {r.text[:300]}"
        assert "Traceback" not in r.text and "Exception" not in r.text
    assert edge_state(edge_as, rm) == before, f"{label} with a {name} body changed something"
