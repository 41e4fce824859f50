"""Headless Chromium for the UI tests (Debian's chromium, driven by Playwright): the `page` fixture
(registered in conftest.py) and logging in to JupyterLab with a side panel shown."""
from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
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


def hub_login(page, stack, user: str) -> None:
    """Log in with the demo login form of the hub (password = user name)."""
    page.goto(f"{stack['hub_url']}hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", user)
    page.click("input[type=submit], button[type=submit]")


def open_side_panel(page, stack, user: str, panel_id: str, login=hub_login):
    """Log in through the hub (``login``: the demo form), wait for JupyterLab, show a left-side panel."""
    login(page, stack, user)
    page.wait_for_url(f"**/user/{user}/lab**", timeout=180_000)
    return show_side_panel(page, panel_id)


def show_side_panel(page, panel_id: str):
    """Show a left-side panel of the JupyterLab loaded on ``page``.

    JupyterLab restores the last layout, so the panel may already be open; clicking an open
    panel's tab collapses it.  Click until it is visible.
    """
    tab = page.locator(f'.jp-SideBar [data-id="{panel_id}"]')
    tab.wait_for(timeout=120_000)
    panel = page.locator(f"#{panel_id}")
    for _ in range(3):
        if panel.is_visible():
            break
        tab.click()
        try:
            panel.wait_for(state="visible", timeout=10_000)
        except PlaywrightTimeout:
            continue
    panel.wait_for(state="visible", timeout=5_000)
    return panel
