"""JupyterLab in headless Chromium: guest logs in through the hub and the yardlab sidebar renders."""
from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(artifacts):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def test_guest_sees_the_yardlab_sidebar(stack, page, artifacts):
    page.goto(f"{stack['hub_url']}hub/login")
    page.fill("input[name=username]", "guest")
    page.fill("input[name=password]", "guest")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/guest/lab**", timeout=180_000)
    tab = page.locator('.jp-SideBar [data-id="yardlab-sidebar"]')
    tab.wait_for(timeout=120_000)
    tab.click()
    panel = page.locator("#yardlab-sidebar")
    panel.wait_for(state="visible", timeout=30_000)
    for heading in ("Jobs", "Environments", "Storage"):
        assert panel.get_by_text(heading, exact=True).first.is_visible()
    page.screenshot(path=str(artifacts / "lab-sidebar-guest.png"))
    assert not [e for e in page.errors if "yardlab" in e.lower()]
