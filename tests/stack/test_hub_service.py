"""The hub service yardlab on the real stack: token API for scripts, admin-only pages and APIs,
safe redirects, and in headless Chromium the admin's jobs page (names as text, kill confirmed by
the RM), the overview, users and history pages."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import requests
from playwright.sync_api import sync_playwright

from conftest import ROOT
from browser import CHROMIUM, CHROMIUM_ARGS

XSS_NAME = "<img src=x onerror=alert(1)>"


def svc(stack) -> str:
    return stack["hub_service_url"].rstrip("/")


def as_user(stack, user: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {stack['user_tokens'][user]}"
    return s


def script_token(stack, user: str) -> str:
    """A token made the way /hub/token makes one: the user's own request to the hub API."""
    r = as_user(stack, user).post(f"{stack['hub_api']}/users/{user}/tokens",
                                  json={"note": "yardlab test script", "expires_in": 600}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def test_a_hub_token_works_for_the_api_from_plain_requests(stack):
    token = script_token(stack, "alice")
    headers = {"Authorization": f"token {token}"}
    me = requests.get(f"{svc(stack)}/api/v1/me", headers=headers, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json() == {"name": "alice", "admin": False}
    apps = requests.get(f"{svc(stack)}/api/v1/apps", headers=headers, params={"limit": 50}, timeout=30)
    assert apps.status_code == 200, apps.text
    assert all(a["user"] == "alice" for a in apps.json()["apps"])
    # the edge's ETag comes through: a script polling with If-None-Match gets 304s (a retry covers
    # the snapshot moving on between the two requests)
    for _ in range(3):
        etag = requests.get(f"{svc(stack)}/api/v1/apps", headers=headers, params={"limit": 50}, timeout=30).headers["ETag"]
        again = requests.get(f"{svc(stack)}/api/v1/apps", params={"limit": 50}, timeout=30,
                             headers={**headers, "If-None-Match": etag})
        if again.status_code == 304:
            break
    assert again.status_code == 304 and not again.content, again.status_code
    usage = requests.get(f"{svc(stack)}/api/v1/usage", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert usage.status_code == 200, usage.text
    assert [u["user"] for u in usage.json()["users"]] == ["alice"]
    assert usage.json()["windows"] == ["24h", "7d", "30d"]
    # no token, a garbage token: JSON 401s, never a login redirect for the API
    for h in ({}, {"Authorization": "token not-a-real-token"}):
        r = requests.get(f"{svc(stack)}/api/v1/apps", headers=h, timeout=30, allow_redirects=False)
        assert r.status_code == 401, (h, r.status_code, r.text)
        assert "token" in r.json()["message"]


def test_guest_gets_403_on_admin_pages_and_apis(stack):
    guest = as_user(stack, "guest")
    # the cluster's capacity and queues are everyone's (the edge decides): its node list is not
    cluster = guest.get(f"{svc(stack)}/api/v1/cluster", timeout=30)
    assert cluster.status_code == 200 and "list" not in cluster.json()["nodes"]
    for path, params in [("history", {}), ("apps", {"user": "*"}), ("apps", {"user": "bob"}),
                         ("usage", {"user": "bob"}), ("usage", {"user": "*"})]:
        r = guest.get(f"{svc(stack)}/api/v1/{path}", params=params, timeout=30)
        assert r.status_code == 403, (path, params, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json") and r.json()["message"]
    for page in ("overview", "history"):
        r = guest.get(f"{svc(stack)}/{page}", timeout=30, allow_redirects=False)
        assert r.status_code == 403, (page, r.status_code)
        assert "for yardlab admins" in r.text
    # the pages everyone has show the caller's own data
    r = guest.get(f"{svc(stack)}/jobs", timeout=30)
    assert r.status_code == 200 and "Your applications" in r.text
    assert guest.get(f"{svc(stack)}/api/v1/usage", timeout=30).json()["users"][0]["user"] == "guest"
    # the admin's token passes the same checks
    admin = as_user(stack, "admin")
    assert admin.get(f"{svc(stack)}/api/v1/cluster", timeout=30).json()["nodes"]["list"]
    assert admin.get(f"{svc(stack)}/overview", timeout=30).status_code == 200


def test_bad_input_gets_clear_4xx_json(stack):
    admin = as_user(stack, "admin")
    for path, params, status in [("usage", {"since": "forever"}, 400), ("history", {"since": "0h"}, 400),
                                 ("apps", {"state": "BOGUS"}, 400), ("apps", {"limit": "lots"}, 400),
                                 ("apps/not-an-app-id", {}, 400), ("no-such-thing", {}, 404),
                                 ("usage", {"user": "x" * 500}, 400)]:
        r = admin.get(f"{svc(stack)}/api/v1/{path}", params=params, timeout=30)
        assert r.status_code == status, (path, params, r.status_code, r.text)
        assert r.json()["message"], r.text


def test_pages_carry_security_headers(stack):
    r = as_user(stack, "admin").get(f"{svc(stack)}/jobs", timeout=30)
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in r.text  # every script is a file of the service


@pytest.mark.parametrize("target", ["//evil.example", "///evil.example", "\\\\evil.example", "/\\evil.example",
                                    "https://evil.example/", "/hub/admin"])
def test_unsafe_next_is_refused(stack, target):
    r = requests.get(f"{svc(stack)}/login", params={"next": target}, timeout=30, allow_redirects=False)
    assert r.status_code == 400, (target, r.status_code, r.headers.get("Location"))
    assert "refused redirect target" in r.text
    assert "evil.example" not in r.headers.get("Location", "")


def test_safe_next_starts_the_hub_login(stack):
    r = requests.get(f"{svc(stack)}/login", params={"next": "/services/yardlab/history"}, timeout=30,
                     allow_redirects=False)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def browser_page():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.problems = []  # type: ignore[attr-defined]

        def on_dialog(d):
            page.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: page.problems.append(str(exc)))
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        yield page
        context.close()
        browser.close()


def login_to_service(page, stack, user: str, path: str) -> None:
    """Hub login with next= the service page: OAuth (no confirmation) brings the browser back to it."""
    page.goto(f"{stack['hub_url']}hub/login?next=/services/yardlab/{path}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", user)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**/services/yardlab/{path}", timeout=60_000)


def test_admin_sees_everyones_jobs_as_text_and_kills_bobs_from_the_page(stack, yarn_app, rm, browser_page,
                                                                          artifacts):
    page = browser_page
    alice_app = yarn_app("alice", name=XSS_NAME)
    bob_app = yarn_app("bob", name=f"yl-hub-kill-{uuid.uuid4().hex[:6]}")
    login_to_service(page, stack, "admin", "jobs")

    def both_listed():
        page.reload()
        page.wait_for_selector("#yl-count:not(:empty)", timeout=30_000)
        return (page.locator(f'tr[data-app="{alice_app}"]').count() == 1
                and page.locator(f'tr[data-app="{bob_app}"]').count() == 1)

    wait_for(both_listed, 60, "alice's and bob's applications on the admin's jobs page", interval=2)
    alice_row = page.locator(f'tr[data-app="{alice_app}"]')
    assert alice_row.locator("td.yl-name").inner_text() == XSS_NAME  # shown as text ...
    assert page.locator("#yl-jobs img").count() == 0  # ... never parsed as markup
    assert alice_row.locator("td").nth(1).inner_text() == "alice"
    assert page.locator(f'tr[data-app="{bob_app}"] td').nth(1).inner_text() == "bob"
    page.screenshot(path=str(artifacts / "hub-service-jobs.png"), full_page=True)

    # kill bob's application: a confirmation first, then YARN's answer
    page.locator(f'tr[data-app="{bob_app}"] button', has_text="Kill").click()
    dialog = page.locator("#yl-kill-dialog")
    dialog.wait_for(state="visible")
    assert page.locator("#yl-kill-id").inner_text() == bob_app
    assert page.locator("#yl-kill-user").inner_text() == "bob"
    page.screenshot(path=str(artifacts / "hub-service-kill-confirm.png"))
    page.locator("#yl-kill-confirm").click()
    page.wait_for_selector("#yl-toast.alert-success", timeout=90_000)
    assert f"{bob_app} of bob: KILLED" in page.locator("#yl-toast").inner_text()
    assert rm.app(bob_app)["state"] == "KILLED"
    assert rm.app(alice_app)["state"] == "RUNNING"
    assert page.dialogs == [], page.dialogs  # the <img onerror> never ran
    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems


def test_overview_users_and_history_pages(stack, browser_page, artifacts):
    page = browser_page
    login_to_service(page, stack, "admin", "overview")
    # (the page's CSP forbids eval, so Playwright's wait_for_function cannot run there: poll from here)
    wait_for(lambda: "used of" in page.locator("#yl-mem-text").inner_text(), 30, "the overview's figures")
    assert page.locator("#yl-queues tbody tr").count() >= 2  # default and interactive (and root's children)
    assert page.locator("#yl-nodes-healthy").inner_text() == "1"
    # the stack's Kafka broker, as the edge last found it
    wait_for(lambda: "Kafka: up" in page.locator("#yl-kafka").inner_text(), 30, "the overview's Kafka line")
    assert "127.0.0.1:9092 · 1 broker" in page.locator("#yl-kafka").inner_text()
    page.screenshot(path=str(artifacts / "hub-service-overview.png"), full_page=True)

    # the history chart: points from the service's own samples (every few seconds on the stack)
    page.goto(f"{svc(stack)}/history")
    points = "() => { const c = Chart.getChart(document.getElementById('yl-chart-memory'));" \
             " return c ? c.data.datasets[0].data.length : 0; }"
    n = wait_for(lambda: (page.reload(), page.wait_for_timeout(1500), page.evaluate(points))[-1] >= 2 and
                 page.evaluate(points), 60, "two samples in the history chart", interval=3)
    assert n >= 2
    # the same range the page shows by default (24 hours): a long-lived stack has more than an hour
    history = as_user(stack, "admin").get(f"{svc(stack)}/api/v1/history", params={"since": "24h"}, timeout=30).json()
    assert len(history["samples"]) >= n - 1 and history["samples"][-1]["memoryTotalMB"] > 0
    page.screenshot(path=str(artifacts / "hub-service-history.png"), full_page=True)

    page.goto(f"{svc(stack)}/users")
    page.wait_for_selector("#yl-users tbody tr", timeout=30_000)
    page.screenshot(path=str(artifacts / "hub-service-users.png"), full_page=True)
    page.goto(f"{svc(stack)}/environments")
    wait_for(lambda: page.locator("#yl-envs tbody tr").count() > 0
             or page.locator("#yl-envs-empty:not(.d-none)").count() > 0, 30, "the environments list")
    assert page.locator("#yl-error").inner_text() == ""  # the edge answered (its environments API exists)
    page.screenshot(path=str(artifacts / "hub-service-environments.png"), full_page=True)
    assert page.dialogs == []
    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems


def test_admin_deletes_a_shared_environment_from_the_page(stack, browser_page, artifacts):
    admin, guest = as_user(stack, "admin"), as_user(stack, "guest")
    edge = stack["edge_url"] + "/api/v1"
    name = f"hub-shared-{uuid.uuid4().hex[:6]}"
    r = admin.post(f"{edge}/environments", json={"name": name, "visibility": "shared", "display_name": XSS_NAME,
                                                 "kind": "python", "packages": {"pip": []}}, timeout=60)
    assert r.status_code == 202, r.text
    try:
        env = wait_for(lambda: (lambda e: e if e["status"] in ("ready", "failed") else None)(
            admin.get(f"{edge}/environments/admin/{name}", timeout=30).json()), 300, f"the build of {name}", 2)
        assert env["status"] == "ready", env
        # a user sees the shared environment through the service, and may not manage it
        mine = guest.get(f"{svc(stack)}/api/v1/environments", timeout=30).json()["environments"]
        assert [e["can_edit"] for e in mine if e["owner"] == "admin" and e["name"] == name] == [False]
        assert guest.delete(f"{svc(stack)}/api/v1/environments/admin/{name}", timeout=30).status_code == 403

        page = browser_page
        login_to_service(page, stack, "admin", "environments")
        row = page.locator(f'tr[data-env="admin/{name}"]')
        row.wait_for(timeout=30_000)
        assert row.locator("td").nth(2).inner_text() == XSS_NAME and page.locator("#yl-envs img").count() == 0
        page.screenshot(path=str(artifacts / "hub-service-environments-shared.png"), full_page=True)
        row.locator("button", has_text="Delete").click()
        page.locator("#yl-env-dialog").wait_for(state="visible")
        assert page.locator("#yl-env-target").inner_text() == f"admin/{name}"
        page.locator('#yl-env-dialog button[value="delete"]').click()
        row.wait_for(state="detached", timeout=60_000)
        assert admin.get(f"{edge}/environments/admin/{name}", timeout=30).status_code == 404
        assert page.dialogs == [] and page.locator("#yl-error").inner_text() == ""
    finally:
        admin.delete(f"{edge}/environments/admin/{name}", timeout=60)


def test_usage_cli(stack):
    def run(user: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / ".venv" / "bin" / "yardlab"), "--token", stack["user_tokens"][user],
                               "usage", "--service-url", svc(stack), *args],
                              capture_output=True, text=True, timeout=60)

    api = as_user(stack, "admin").get(f"{svc(stack)}/api/v1/usage", params={"since": "7d"}, timeout=30).json()
    done = run("admin", "--since", "7d")
    assert done.returncode == 0, done.stderr
    assert "GB·h 7d" in done.stdout
    for u in api["users"]:
        assert u["user"] in done.stdout
    mine = subprocess.run([str(ROOT / ".venv" / "bin" / "yardlab"), "--json", "--token", stack["user_tokens"]["guest"],
                           "usage", "--service-url", svc(stack)], capture_output=True, text=True, timeout=60)
    assert mine.returncode == 0, mine.stderr
    assert [u["user"] for u in json.loads(mine.stdout)["users"]] == ["guest"]
    refused = run("guest", "--user", "bob")
    assert refused.returncode == 2 and "only yardlab admins" in refused.stderr
    bad = run("guest", "--since", "forever")
    assert bad.returncode == 2 and "since" in bad.stderr
