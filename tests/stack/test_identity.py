"""The edge on the real stack: identity comes from hub tokens only (never a query, a header or a
name that is a Hadoop service account), through the hub's proxy too."""
from __future__ import annotations


import requests

from test_jobs import wait_listed



def test_me_resolves_the_token_owner(edge_as):
    alice = edge_as("alice").get("/me")
    assert alice.status_code == 200
    assert alice.json()["name"] == "alice" and alice.json()["admin"] is False
    admin = edge_as("admin").get("/me").json()
    assert admin["name"] == "admin" and admin["admin"] is True


def test_scripts_reach_the_edge_through_the_hub_proxy(edge_as):
    r = edge_as("bob", via_hub=True).get("/me")
    assert r.status_code == 200
    assert r.json()["name"] == "bob"


def test_identity_never_comes_from_the_query(stack, edge_as, yarn_app):
    alice_app = yarn_app("alice")
    bob = edge_as("bob")
    wait_listed(edge_as("alice"), alice_app)
    for params in ({"user.name": "alice"}, {"doAs": "alice"}, {"user.name": "admin", "doAs": "admin"}):
        assert bob.get("/me", params=params).json()["name"] == "bob"
        ids = [a["id"] for a in bob.get("/apps", params=params).json()["apps"]]
        assert alice_app not in ids
        assert bob("DELETE", f"/apps/{alice_app}", params=params).status_code == 403
    # a username header is not identity either
    assert bob.get("/me", headers={"X-Forwarded-User": "alice", "REMOTE_USER": "alice"}).json()["name"] == "bob"


def test_missing_garbage_or_narrow_tokens(stack, edge_as, hub):
    anon = edge_as(None)
    assert anon.get("/me").status_code == 401
    assert anon("DELETE", "/apps/application_1_1").status_code == 401
    garbage = requests.get(f"{stack['edge_url']}/api/v1/apps", headers={"Authorization": "token garbage"}, timeout=30)
    assert garbage.status_code == 401
    assert "not valid" in garbage.json()["message"]
    assert requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": "Basic YWxpY2U6YWxpY2U="},
                        timeout=30).status_code == 401
    # a token in the URL is not accepted (it would end up in logs)
    tok = stack["user_tokens"]["alice"]
    assert requests.get(f"{stack['edge_url']}/api/v1/me", params={"token": tok}, timeout=30).status_code == 401
    # Bearer works like token
    assert requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": f"Bearer {tok}"},
                        timeout=30).json()["name"] == "alice"
    # a valid token without the scope to use yardlab: 403
    narrow = hub("POST", "/users/alice/tokens", json={"note": "narrow", "expires_in": 600,
                                                       "scopes": ["read:users:name!user=alice"]})
    assert narrow.status_code == 201, narrow.text
    r = requests.get(f"{stack['edge_url']}/api/v1/me", headers={"Authorization": f"token {narrow.json()['token']}"},
                     timeout=30)
    assert r.status_code == 403
    assert "access:services!service=yardlab-edge" in r.json()["message"]


def test_hub_users_named_like_service_accounts_are_refused(stack, hub, edge_as):
    """A hub account called like a Hadoop service (or the edge's own account) would act with its
    powers through doAs: the edge refuses it with a sentence."""
    for name in ("hdfs", stack["service_user"]):
        r = hub("POST", f"/users/{name}")
        assert r.status_code in (201, 409), r.text
        try:
            token = hub("POST", f"/users/{name}/tokens", json={"scopes": ["access:services!service=yardlab-edge"]})
            assert token.status_code in (200, 201), token.text
            me = requests.get(f"{stack['edge_url']}/api/v1/me", timeout=30,
                              headers={"Authorization": f"token {token.json()['token']}"})
            assert me.status_code == 403, me.text
            assert "reserved for a Hadoop service account" in me.json()["message"]
            files = requests.get(f"{stack['edge_url']}/api/v1/storage", timeout=30,
                                 headers={"Authorization": f"token {token.json()['token']}"})
            assert files.status_code == 403
        finally:
            hub("DELETE", f"/users/{name}")


def test_hub_users_with_names_hadoop_would_misread_are_refused(stack, hub, rm):
    """A hub user called like a Kerberos principal (Hadoop maps 'hdfs@REALM' through auth_to_local
    to the HDFS superuser), like another user (a Cyrillic а) or like an option gets a 403 with a
    sentence, whatever the hub allowed; nothing is made for them on HDFS or YARN."""
    from urllib.parse import quote

    apps_before = {a["id"] for a in rm.apps()}
    realm = stack.get("realm", "EXAMPLE.COM")  # the simple-auth stack has none; the name is refused anyway
    names = (f"hdfs@{realm}", "\u0430lice", "-rf")
    for name in names:
        made = hub("POST", f"/users/{quote(name, safe='')}")
        if made.status_code == 400:  # the hub refused the name itself: nobody can hold a token as it
            continue
        assert made.status_code in (201, 409), made.text
        hub_name = made.json()["name"] if made.status_code == 201 else name
        try:
            token = hub("POST", f"/users/{quote(hub_name, safe='')}/tokens",
                        json={"scopes": ["access:services!service=yardlab-edge"]})
            assert token.status_code in (200, 201), token.text
            headers = {"Authorization": f"token {token.json()['token']}"}
            me = requests.get(f"{stack['edge_url']}/api/v1/me", headers=headers, timeout=30)
            assert me.status_code == 403, me.text
            assert "cannot be used as a Hadoop user name" in me.json()["message"]
            for method, path in (("GET", "/api/v1/storage"), ("GET", "/api/v1/apps"),
                                 ("POST", "/gateway/api/kernels")):
                r = requests.request(method, f"{stack['edge_url']}{path}", headers=headers, json={}, timeout=30)
                assert r.status_code == 403, (path, r.status_code, r.text)
        finally:
            hub("DELETE", f"/users/{quote(hub_name, safe='')}")
    started = [a for a in rm.apps() if a["id"] not in apps_before]
    assert not [a for a in started if a["user"] in {"hdfs", *names, *(n.lower() for n in names)}], started
