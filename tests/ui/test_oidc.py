"""Single sign-on in headless Chromium: the hub logs people in at the stack's OpenID Connect provider
(dev/oidc/provider.mjs, YARDLAB_AUTH=oidc): a new user lands in their own JupyterLab with the yardlab
sidebar, the groups claim makes admins, and a wrong password or a tampered state is refused."""
from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
from browser import open_side_panel

pytestmark = pytest.mark.oidc


def provider_login(page, stack, user: str, password: str | None = None, next_path: str = "") -> None:
    """From the hub's login page to the provider's form, and sign in there (password = name)."""
    page.goto(f"{stack['hub_url']}hub/login" + (f"?{urlencode({'next': next_path})}" if next_path else ""))
    page.get_by_role("button", name="Sign in with yardlab SSO").click()
    page.wait_for_url(f"{stack['oidc']['issuer']}/interaction/**", timeout=30_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", user if password is None else password)
    page.click("button[type=submit]")


def hub_user(hub, name: str) -> dict:
    r = hub("GET", f"/users/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def logged_in_as(page, stack) -> str | None:
    """Who the browser's hub cookie belongs to (None: nobody)."""
    r = page.request.get(f"{stack['hub_url']}hub/api/user")
    return r.json()["name"] if r.status == 200 else None


def test_a_new_user_signs_in_at_the_provider_and_lands_in_their_lab(stack, page, hub, artifacts):
    new = "carol"  # an account at the provider that the hub has not met (or forgot, here)
    assert new in stack["oidc"]["accounts"] and new not in stack["users"]
    r = hub("DELETE", f"/users/{new}")
    assert r.status_code in (204, 404), r.text
    panel = open_side_panel(page, stack, new, "yardlab-sidebar", login=provider_login)
    for heading in ("Jobs", "Environments", "Storage"):
        assert panel.get_by_text(heading, exact=True).first.is_visible()
    page.screenshot(path=str(artifacts / "oidc-new-user-lab.png"))
    user = hub_user(hub, new)
    assert user["groups"] == ["yardlab-users"] and user["admin"] is False
    assert user["server"] == f"/user/{new}/"
    # no admin pages for a user without the admin group
    assert page.goto(f"{stack['hub_url']}hub/admin").status == 403
    assert page.goto(f"{stack['hub_service_url']}/overview").status == 403
    assert page.goto(f"{stack['hub_service_url']}/jobs").status == 200


def test_the_admin_group_claim_gives_the_admin_pages(stack, page, hub, artifacts):
    provider_login(page, stack, "admin", next_path="/hub/admin")
    page.wait_for_url("**/hub/admin**", timeout=60_000)
    assert logged_in_as(page, stack) == "admin"
    admin = hub_user(hub, "admin")
    assert admin["admin"] is True and stack["oidc"]["admin_group"] in admin["groups"]
    # the hub's admin page lists the users
    page.get_by_text("guest", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "oidc-admin-hub-admin.png"))
    # the yardlab hub service's admin pages: its OAuth token carries the admin scope
    response = page.goto(f"{stack['hub_service_url']}/overview")
    assert response.status == 200 and urlsplit(page.url).path.endswith("/services/yardlab/overview")
    page.goto(f"{stack['hub_service_url']}/")
    page.wait_for_url("**/services/yardlab/overview", timeout=30_000)  # the admin's front page
    page.screenshot(path=str(artifacts / "oidc-admin-overview.png"))


def test_a_wrong_password_is_refused(stack, page, hub):
    provider_login(page, stack, "guest", password="not-guest")
    error = page.get_by_role("alert")
    error.wait_for(timeout=30_000)
    assert "Wrong user name or password" in error.inner_text()
    assert page.url.startswith(stack["oidc"]["issuer"] + "/interaction/")
    assert logged_in_as(page, stack) is None
    # an account the provider does not have is refused the same way; guessing is cut short
    stranger = f"mallory-{uuid.uuid4().hex[:6]}"
    login_url = stack["oidc"]["issuer"] + page.locator("form").get_attribute("action")
    statuses = [page.request.post(login_url, form={"username": stranger, "password": f"guess-{i}"}).status
                for i in range(11)]
    assert statuses == [401] * 10 + [429], statuses
    assert logged_in_as(page, stack) is None
    assert hub("GET", f"/users/{stranger}").status_code == 404


def test_a_tampered_state_is_refused(stack, page):
    """The provider's answer is taken before it reaches the hub (the browser's own cookies, its
    redirects not followed), its state changed, and then sent: refused, and the code cannot be
    redeemed after that either."""
    issuer = stack["oidc"]["issuer"]
    page.goto(f"{stack['hub_url']}hub/login")
    page.get_by_role("button", name="Sign in with yardlab SSO").click()
    page.wait_for_url(f"{issuer}/interaction/**", timeout=30_000)
    action = page.locator("form").get_attribute("action")
    r = page.request.post(issuer + action, form={"username": "bob", "password": "bob"}, max_redirects=0)
    assert r.status == 303, r.status
    r = page.request.get(urljoin(issuer, r.headers["location"]), max_redirects=0)
    assert r.status == 303 and r.headers["location"].startswith(f"{stack['hub_url']}hub/oauth_callback?")
    url = urlsplit(r.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query.get("code") and query.get("state")
    # a well-formed state (OAuthenticator's: base64 JSON) naming another login attempt
    state = json.loads(base64.urlsafe_b64decode(query["state"]))
    forged = base64.urlsafe_b64encode(json.dumps({**state, "state_id": uuid.uuid4().hex}).encode()).decode()
    for attempt in (forged, query["state"]):
        response = page.goto(url._replace(query=urlencode({**query, "state": attempt})).geturl())
        assert 400 <= response.status < 500, (attempt, response.status)
        assert "OAuth state" in page.content()
        assert logged_in_as(page, stack) is None
