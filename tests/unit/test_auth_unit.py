"""TokenIdentifier without a hub: a cache age that must be positive, reserved (service account)
names refused, identities cached once (not twice) per token."""
from __future__ import annotations

import asyncio

import pytest
from traitlets import TraitError

from yardlab.edge.auth import TokenIdentifier
from yardlab.edge.errors import PublicError

ACCESS = "access:services!service=yardlab-edge"


def identifier(models: dict, **kw) -> TokenIdentifier:
    ident = TokenIdentifier(hub_api_url="http://127.0.0.1:1/hub/api", hub_api_token="x", **kw)
    calls: list[tuple[str, bool]] = []

    async def user_for_token(token, use_cache=True, sync=True):
        calls.append((token, use_cache))
        return models.get(token)

    ident.hub_auth.user_for_token = user_for_token
    ident.calls = calls
    return ident


@pytest.mark.parametrize("value", [0, -1, -3600])
def test_a_cache_age_of_zero_or_less_is_refused(value):
    """HubAuth reads 0 as "cache forever": a revoked token would never be noticed."""
    with pytest.raises(TraitError, match="1 to 60"):
        TokenIdentifier(cache_max_age=value)


def test_cache_age_is_capped_at_a_minute():
    assert TokenIdentifier(cache_max_age=3600).cache_max_age == 60
    assert TokenIdentifier(cache_max_age=5).cache_max_age == 5


@pytest.mark.parametrize("name", ["hdfs", "yarn", "HDFS", "Yarn", "root", "svc-edge", "SVC-EDGE", "dr.who"])
def test_service_and_superuser_names_are_refused(name):
    ident = identifier({"t": {"kind": "user", "name": name, "scopes": [ACCESS]}})
    ident.service_accounts = {"svc-edge"}
    with pytest.raises(PublicError) as err:
        asyncio.run(ident.identify("token t"))
    assert err.value.status == 403 and "reserved for a Hadoop service account" in err.value.message


@pytest.mark.parametrize("name", [
    "hdfs@EXAMPLE.COM",            # Hadoop maps a name with a realm through auth_to_local: the HDFS superuser
    "nn/localhost@EXAMPLE.COM",    # a service principal's form
    "alice/admin",                 # a path step in /user/<name>
    "..", ".alice", "-rf", "-Dx=1",  # a path step; options to command-line tools
    "\u0430lice",                 # Cyrillic а: looks like alice
    "alice\u200b",                # a zero-width space after alice
    "al ice", "alice\n", "al\tice", "a" * 65,
])
def test_names_hadoop_would_misread_are_refused(name):
    """Only plain ASCII names reach Hadoop as doAs: no realm, no principal, no path, no option, no look-alike."""
    ident = identifier({"t": {"kind": "user", "name": name, "scopes": [ACCESS]}})
    with pytest.raises(PublicError) as err:
        asyncio.run(ident.identify("token t"))
    assert err.value.status == 403 and "cannot be used as a Hadoop user name" in err.value.message


@pytest.mark.parametrize("name", ["alice", "bob_2", "j.doe", "x-y", "_svc", "Alice", "a" * 64])
def test_plain_names_pass(name):
    ident = identifier({"t": {"kind": "user", "name": name, "scopes": [ACCESS]}})
    assert asyncio.run(ident.identify("token t")).name == name


def test_the_user_name_pattern_must_be_a_regular_expression():
    with pytest.raises(TraitError, match="not a regular expression"):
        TokenIdentifier(user_name_pattern="[a-z")


def test_reserved_names_are_configurable_and_ordinary_names_pass():
    ident = identifier({"t": {"kind": "user", "name": "hive", "scopes": [ACCESS]},
                        "u": {"kind": "user", "name": "alice", "scopes": [ACCESS]}}, reserved_names=["impala"])
    assert asyncio.run(ident.identify("token t")).name == "hive"  # no longer on the list
    assert asyncio.run(ident.identify("token u")).name == "alice"


def test_one_cache_layer_only():
    ident = identifier({"t": {"kind": "user", "name": "alice", "scopes": [ACCESS]}}, cache_max_age=30)
    asyncio.run(ident.identify("token t"))
    asyncio.run(ident.identify("token t"))
    # the hub was asked once, and without HubAuth's own cache (which would add its age to ours)
    assert ident.calls == [("t", False)]


def _roster(users, groups, **kw):
    from yardlab.edge.auth import AdminRoster

    roster = AdminRoster(TokenIdentifier(hub_api_url="http://127.0.0.1:1/hub/api", hub_api_token="x"), **kw)

    async def all_(path):
        if isinstance(users, Exception):
            raise users
        return users if path == "/users" else groups

    roster._all = all_
    return roster


def test_admins_are_users_with_an_admin_role_directly_or_through_a_group():
    users = [{"name": "ann", "roles": ["user", "yardlab-admin"], "groups": []},
             {"name": "gus", "roles": ["user"], "groups": ["ops"]},
             {"name": "bob", "roles": ["user"], "groups": ["analysts"]}]
    groups = [{"name": "ops", "roles": ["yardlab-admin"]}, {"name": "analysts", "roles": []}]
    assert asyncio.run(_roster(users, groups).admins()) == {"ann", "gus"}


def test_without_roles_or_without_the_hub_nothing_is_decided():
    """A token that cannot see roles would make everyone look like a non-admin: say "don't know"."""
    users = [{"name": "ann", "groups": []}]
    assert asyncio.run(_roster(users, []).admins()) is None
    assert asyncio.run(_roster(OSError("connection refused"), []).admins()) is None


def test_is_admin_asks_the_hub_about_one_user():
    from tornado.httpclient import HTTPClientError

    roster = _roster([], [])
    hub = {"/users/ann": {"name": "ann", "roles": ["user", "yardlab-admin"], "groups": []},
           "/users/gus": {"name": "gus", "roles": ["user"], "groups": ["ops"]},
           "/groups/ops": {"name": "ops", "roles": ["yardlab-admin"]},
           "/users/bob": {"name": "bob", "roles": ["user"], "groups": ["analysts"]},
           "/groups/analysts": {"name": "analysts", "roles": []},
           "/users/eve": {"name": "eve", "groups": []}}  # roles not visible to this token

    async def get(path):
        if path not in hub:
            raise HTTPClientError(404)
        return hub[path]

    roster._get = get
    answers = {n: asyncio.run(roster.is_admin(n)) for n in ("ann", "gus", "bob", "eve", "gone")}
    assert answers == {"ann": True, "gus": True, "bob": False, "eve": None, "gone": False}


def test_the_hot_path_reads_the_cache_without_the_hub(monkeypatch):
    t = {"now": 1000.0}
    monkeypatch.setattr("yardlab.edge.auth.monotonic", lambda: t["now"])
    ident = identifier({"t": {"kind": "user", "name": "alice", "scopes": [ACCESS]}}, cache_max_age=30)
    assert ident.cached_identity("token t") is None  # never seen: the handler goes to the hub
    asyncio.run(ident.identify("token t"))
    assert ident.cached_identity("token t").name == "alice"
    t["now"] += 31  # expired: asked again
    assert ident.cached_identity("token t") is None
    with pytest.raises(PublicError) as err:
        ident.cached_identity("Basic abc")
    assert err.value.status == 401
