"""Cross-site request forgery: a page elsewhere cannot make a logged-in person's browser act.

The hub service's pages and the Lab server's sidebar API take the login cookie, so every change
through them needs the XSRF token of that very session.  Each case logs a real person in through
the hub (the whole OAuth dance, with the cookies a browser would hold) and sends the change as a
forged page would: without the token, with another person's token, with a made-up one.  Each is
refused and changes nothing; the same request with the right token goes through (so the forged
ones fail for the token, not for the request's shape).
"""
from __future__ import annotations

import re
import time

import requests


def browser_login(stack, user: str) -> requests.Session:
    """A session holding what a browser holds after logging in to the hub as ``user``."""
    s = requests.Session()
    s.get(f"{stack['hub_url']}hub/login", timeout=30)
    r = s.post(f"{stack['hub_url']}hub/login", data={"username": user, "password": stack["users"][user]["password"],
                                                      "_xsrf": s.cookies.get("_xsrf", path="/hub/")}, timeout=60)
    assert r.ok, r.text[:300]
    return s


def service_page_xsrf(stack, s: requests.Session, page: str = "jobs") -> str:
    """Open a hub service page (OAuth to the service on the way) and read its XSRF token."""
    r = s.get(f"{stack['hub_service_url']}/{page}", timeout=60)
    assert r.status_code == 200, (r.status_code, r.url)
    m = re.search(r'name="yardlab-xsrf" content="([^"]+)"', r.text)
    assert m, "the page carries no XSRF token"
    return m.group(1)


def test_the_hub_service_refuses_a_forged_kill(stack, yarn_app, rm):
    app_id = yarn_app("bob")
    admin = browser_login(stack, "admin")
    admins_xsrf = service_page_xsrf(stack, admin)
    alices_xsrf = service_page_xsrf(stack, browser_login(stack, "alice"))
    url = f"{stack['hub_service_url']}/api/v1/apps/{app_id}"
    for label, headers in [("no token", {}),
                           ("another person's token", {"X-XSRFToken": alices_xsrf}),
                           ("a made-up token", {"X-XSRFToken": "2|deadbeef|" + "0" * 64 + "|1700000000"}),
                           ("no token, a foreign Origin", {"Origin": "https://evil.example"})]:
        r = admin.delete(url, headers=headers, timeout=60)
        assert r.status_code in (401, 403), f"{label}: {r.status_code} {r.text[:300]}"
        assert r.json().get("message"), f"{label}: {r.text[:300]}"
        assert rm.app(app_id)["state"] == "RUNNING", f"{label}: the application was touched"
    # the same request with the session's own token is the admin's kill
    r = admin.delete(url, headers={"X-XSRFToken": admins_xsrf}, timeout=60)
    assert r.status_code in (200, 202, 204), r.text[:300]
    rm.wait_state(app_id, {"KILLED"}, timeout=120)


def test_the_lab_sidebar_api_refuses_a_forged_change(stack, hub):
    s = browser_login(stack, "alice")
    deadline = time.monotonic() + 180
    r = s.get(f"{stack['hub_url']}user/alice/lab", timeout=120)  # spawns if needed, then the OAuth dance
    while r.status_code != 200 or "JupyterLab" not in r.text:
        assert time.monotonic() < deadline, f"alice's Lab did not open: {r.status_code} {r.url}"
        time.sleep(2)
        r = s.get(f"{stack['hub_url']}user/alice/lab", timeout=120)
    xsrf = s.cookies.get("_xsrf", path="/user/alice/")
    assert xsrf
    url = f"{stack['hub_url']}user/alice/yardlab/api/environments"
    body = b'{"name": "csrf-probe", "kind": "pyspark", "resources": {"driver_memory_mb": -1}}'
    before = s.get(url, timeout=60).json()
    for label, headers in [("no token", {}), ("a made-up token", {"X-XSRFToken": "2|00|" + "0" * 64 + "|1"})]:
        r = s.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=60)
        assert r.status_code == 403, f"{label}: {r.status_code} {r.text[:300]}"
    # with the token the request reaches the edge, which answers the bad resources (so it was the token)
    r = s.post(url, data=body, headers={"Content-Type": "application/json", "X-XSRFToken": xsrf}, timeout=60)
    assert r.status_code == 400 and "driver_memory_mb" in r.text, r.text[:300]
    assert s.get(url, timeout=60).json() == before
