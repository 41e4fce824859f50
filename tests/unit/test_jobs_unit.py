"""JobService without a cluster: /apps pages and ETags that no two users can share, a cache bounded
by bytes, brief memory of unknown application ids, rate-limited refusal audits, the cluster view,
the /apps query's checks, its settings."""
from __future__ import annotations

import asyncio
import json
import zlib

import pytest
from traitlets.config import Config

from yardlab.edge import snapshot as snapmod
from yardlab.edge.audit import AuditLog
from yardlab.edge.auth import Identity
from yardlab.edge.clients.resourcemanager import RMError
from yardlab.edge.errors import PublicError
from yardlab.edge.jobs import AppsQuery, JobService, PageCache
from yardlab.edge.snapshot import AppSnapshot, decode_cursor, encode_cursor

from test_snapshot_unit import ScriptedRM, raw_app

ALICE, BOB = Identity("alice", admin=False), Identity("bob", admin=False)
ADMIN = Identity("admin", admin=True)


class CountingRM(ScriptedRM):
    """The scripted RM, plus single-application reads that count and 404 unknown ids."""

    def __init__(self) -> None:
        super().__init__()
        self.app_reads = 0

    async def app(self, app_id):
        self.app_reads += 1
        for a in self.active + self.finished:
            if a["id"] == app_id:
                return a
        raise RMError(404, f"application {app_id} not found")


@pytest.fixture
def jobs(tmp_path) -> JobService:
    rm = CountingRM()
    # alice and bob each have one application, so their per-user generations are equal
    rm.active = [raw_app(1, "alice", name="alice-secret"), raw_app(2, "bob", name="bob-job")]
    snap = AppSnapshot(rm=rm)
    asyncio.run(snap.poll_once())
    assert snap.scope_generation("alice") == snap.scope_generation("bob")
    return JobService(rm, snap, AuditLog(path=str(tmp_path / "audit.jsonl")))


def page(jobs: JobService, q: AppsQuery) -> dict:
    return json.loads(jobs.apps_answer(q)[1])


def test_a_crc32_collision_is_easy_to_forge():
    """Why a 32-bit checksum cannot stand for identity: four chosen bytes give any CRC32 wanted."""
    target = zlib.crc32(b'["alice",[],null,null,100,null]')
    prefix = b'["bob",[],null,null,1,"'
    # CRC32 is linear: solve for a 4-byte suffix by inverting the table (the textbook forging)
    table = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    rev = {t >> 24: i for i, t in enumerate(table)}
    crc = target ^ 0xFFFFFFFF
    idx = []
    for _ in range(4):
        i = rev[crc >> 24]
        idx.append(i)
        crc = ((crc ^ table[i]) << 8) & 0xFFFFFFFF
    idx.reverse()
    state = zlib.crc32(prefix) ^ 0xFFFFFFFF
    forged = b""
    for i in idx:
        b = (state ^ i) & 0xFF
        forged += bytes([b])
        state = (state >> 8) ^ table[(state ^ b) & 0xFF]
    assert zlib.crc32(prefix + forged) == target  # bob's key, alice's checksum


def test_two_users_never_share_a_page_even_if_etags_collided(jobs, monkeypatch):
    """By construction: pages are cached under the whole key, user first, never under a digest."""
    monkeypatch.setattr(snapmod, "etag_digest", lambda key: "same-for-everyone")
    qa, qb = AppsQuery(user="alice", limit=1), AppsQuery(user="bob", limit=1)
    assert jobs.apps_answer(qa)[0] == jobs.apps_answer(qb)[0]  # the worst case: a total digest collision
    assert [a["name"] for a in page(jobs, qa)["apps"]] == ["alice-secret"]
    got = page(jobs, qb)
    assert got["user"] == "bob" and [a["name"] for a in got["apps"]] == ["bob-job"]
    assert jobs.page_key(qa)[0] == "alice" and jobs.page_key(qb)[0] == "bob"
    assert len(jobs.pages) == 2


def test_etags_differ_per_user_and_per_query(jobs):
    tags = {jobs.apps_answer(AppsQuery(user=u, limit=n))[0] for u in ("alice", "bob", None) for n in (1, 2)}
    assert len(tags) == 6
    # and stay put while nothing changed
    assert jobs.apps_answer(AppsQuery(user="alice", limit=1))[0] == jobs.apps_answer(AppsQuery(user="alice", limit=1))[0]


def test_every_cursor_is_decoded_before_any_lookup():
    for forged in ("%%%", "AAAA", encode_cursor({"startedTime": 1, "id": "x"})[:-2] + "!!", "W10", "bnVsbA"):
        with pytest.raises(PublicError) as err:
            decode_cursor(forged)
        assert err.value.status == 400 and "cursor" in err.value.message


def test_a_valid_cursor_of_another_user_shows_only_ones_own_apps(jobs):
    alice_cursor = decode_cursor(encode_cursor(jobs.snapshot.apps["application_1700000000000_0001"]))
    got = page(jobs, AppsQuery(user="bob", after=(alice_cursor[0] + 10, alice_cursor[1])))
    assert [a["user"] for a in got["apps"]] == ["bob"]


def test_page_cache_is_bounded_by_bytes_not_entries():
    cache = PageCache(max_bytes=10_000)
    for i in range(100):
        cache.put(("alice", i), b"x" * 1000)
        assert cache.bytes <= 10_000
    assert len(cache) == 10
    # the most recently used survive
    assert cache.get(("alice", 99)) is not None and cache.get(("alice", 0)) is None
    # one page larger than a quarter of the budget is served but not kept
    cache.put(("bob", "huge"), b"y" * 3000)
    assert cache.get(("bob", "huge")) is None and cache.bytes <= 10_000


def test_large_pages_stay_within_the_cache_budget(jobs):
    jobs.pages = PageCache(max_bytes=4096)
    for limit in range(1, 200):
        jobs.apps_answer(AppsQuery(user="alice", limit=limit))
    assert jobs.pages.bytes <= 4096


def test_an_unknown_application_id_is_remembered_briefly(jobs, monkeypatch):
    rm = jobs.rm
    t = {"now": 1000.0}
    monkeypatch.setattr("yardlab.edge.jobs.monotonic", lambda: t["now"])
    for _ in range(50):
        with pytest.raises(PublicError) as err:
            asyncio.run(jobs.app_for(ALICE, "application_1700000000000_9999"))
        assert err.value.status == 404
    assert rm.app_reads == 1
    t["now"] += jobs.unknown_ttl + 1  # it may exist by now: ask again
    with pytest.raises(PublicError):
        asyncio.run(jobs.app_for(ALICE, "application_1700000000000_9999"))
    assert rm.app_reads == 2


def test_refused_kills_are_audited_at_a_bounded_rate(jobs, tmp_path, monkeypatch):
    t = {"now": 1000.0}
    monkeypatch.setattr("yardlab.edge.audit.monotonic", lambda: t["now"])
    jobs.audit.refusals_per_minute = 5
    for _ in range(200):
        with pytest.raises(PublicError) as err:
            asyncio.run(jobs.kill(BOB, "application_1700000000000_0001"))
        assert err.value.status == 403
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 5 and all(x["outcome"] == "denied" and x["actor"] == "bob" for x in lines)
    assert "rate_limited" in lines[-1]
    # another actor is not affected
    with pytest.raises(PublicError):
        asyncio.run(jobs.kill(Identity("guest", admin=False), "application_1700000000000_0001"))
    # a minute later the count of what was not written comes with the next line
    t["now"] += 61
    with pytest.raises(PublicError):
        asyncio.run(jobs.kill(BOB, "application_1700000000000_0001"))
    last = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert last["actor"] == "bob" and last["suppressed_before"] == 195


def test_users_see_capacity_and_queues_admins_also_the_nodes(jobs):
    asyncio.run(jobs.snapshot.poll_once())
    user, admin = jobs.cluster_view(ALICE), jobs.cluster_view(ADMIN)
    assert "list" in admin["nodes"] and admin["nodes"]["list"][0]["id"] == "n1"
    assert "list" not in user["nodes"] and user["nodes"]["active"] == admin["nodes"]["active"]
    assert user["memory"] == admin["memory"] and user["queues"] == admin["queues"]
    assert jobs.cluster_etag(ALICE) != jobs.cluster_etag(ADMIN)


# -- the /apps query ----------------------------------------------------------------------------------


def q(jobs: JobService, who: Identity = ALICE, **args: str) -> AppsQuery:
    return jobs.apps_query(who, args)


def test_apps_query_defaults_to_ones_own_applications(jobs):
    assert q(jobs) == AppsQuery(user="alice")
    assert q(jobs, user="alice", limit="5", state="running, accepted", queue="root.default", search="etl") == \
        AppsQuery(user="alice", states=("ACCEPTED", "RUNNING"), queue="root.default", search="etl", limit=5)


def test_admins_may_ask_for_one_user_or_everyone_others_may_not(jobs):
    assert q(jobs, ADMIN, user="bob").user == "bob"
    assert q(jobs, ADMIN, user="*").user is None and q(jobs, ADMIN, user="all").user is None
    with pytest.raises(PublicError) as err:
        q(jobs, ALICE, user="bob")
    assert err.value.status == 403 and "only yardlab admins" in err.value.message


@pytest.mark.parametrize("args,needle", [
    ({"user": "bad name!"}, "`user` must be a user name"),
    ({"state": "RUNNING,SLEEPING"}, "unknown state 'SLEEPING'"),
    ({"queue": "root/../x"}, "`queue` must be a queue name"),
    ({"limit": "ten"}, "`limit` must be a whole number"),
    ({"limit": "0"}, "`limit` must be between 1 and 1000"),
    ({"limit": "1001"}, "`limit` must be between 1 and 1000"),
    ({"cursor": "%%%"}, "cursor is not one this service handed out"),
])
def test_bad_apps_parameters_are_400_naming_them(jobs, args, needle):
    with pytest.raises(PublicError) as err:
        jobs.apps_query(ADMIN, args)
    assert err.value.status == 400 and needle in err.value.message


def test_the_cursor_is_decoded_into_the_query(jobs):
    first = jobs.snapshot.apps["application_1700000000000_0002"]
    assert q(jobs, ADMIN, user="*", cursor=encode_cursor(first)).after == (first["startedTime"], first["id"])


def test_job_settings_are_configurable(tmp_path):
    config = Config({"JobService": {"kill_timeout": 5.0, "kill_poll": 0.1, "page_cache_bytes": 4096,
                                    "unknown_ttl": 1.0}})
    svc = JobService(CountingRM(), AppSnapshot(rm=CountingRM()), AuditLog(path=str(tmp_path / "a.jsonl")),
                     config=config)
    assert (svc.kill_timeout, svc.kill_poll, svc.unknown_ttl, svc.pages.max_bytes) == (5.0, 0.1, 1.0, 4096)


class OneKernelLedger:
    """A ledger that knows one kernel: the application named like it, of the same user."""

    generation = 0

    def __init__(self, kernel_id: str, user: str) -> None:
        self.rec = {"id": kernel_id, "user": user, "notebook": "work/a.ipynb", "environment": None}

    def for_app(self, app: dict) -> dict | None:
        return self.rec if app.get("name") == self.rec["id"] and app.get("user") == self.rec["user"] else None


def test_a_kernels_credentials_expire_one_max_lifetime_after_it_started(tmp_path):
    """On a Kerberized cluster a kernel's delegation tokens are renewed until their maximum
    lifetime and no longer: /apps says when, for kernels only, and only when it is configured."""
    kernel = "0f8b7c1e-1111-2222-3333-444455556666"
    rm = CountingRM()
    rm.active = [raw_app(1, "alice", name=kernel, started=1_700_000_000_000), raw_app(2, "alice", name="a batch job")]
    snap = AppSnapshot(rm=rm)
    asyncio.run(snap.poll_once())
    config = Config({"JobService": {"credentials_max_lifetime": 7 * 86400.0}})
    svc = JobService(rm, snap, AuditLog(path=str(tmp_path / "a.jsonl")), ledger=OneKernelLedger(kernel, "alice"),
                     config=config)
    apps = {a["name"]: a for a in page(svc, AppsQuery(user="alice"))["apps"]}
    assert apps[kernel]["credentialsExpire"] == 1_700_000_000_000 + 7 * 86400 * 1000
    assert apps["a batch job"]["credentialsExpire"] is None  # not a kernel: nothing to restart
    # simple authentication (the default 0): nothing is said
    plain = JobService(rm, snap, AuditLog(path=str(tmp_path / "b.jsonl")), ledger=OneKernelLedger(kernel, "alice"))
    assert all(a["credentialsExpire"] is None for a in page(plain, AppsQuery(user="alice"))["apps"])
