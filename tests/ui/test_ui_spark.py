"""The Spark UI in headless Chromium: alice opens her application's Spark UI through the hub (logging in
to the edge with the hub's OAuth), follows its links to a stage page, and bob's browser is refused."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from browser import CHROMIUM, CHROMIUM_ARGS
from jupyter_ws import KernelConnection

MULTI_STAGE = ("import time\n"
            "rdd = sc.parallelize(range(24), 8).map(lambda x: (x % 4, time.sleep(0.5) or x))\n"
            "rdd.reduceByKey(lambda a, b: a + b).map(lambda kv: (kv[0] % 2, time.sleep(0.3) or kv[1]))"
            ".reduceByKey(lambda a, b: a + b).collect()")


def login(context, stack, user: str):
    page = context.new_page()
    page.goto(f"{stack['hub_url']}hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", user)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(lambda u: "/hub/login" not in u, timeout=60_000)
    return page


@pytest.fixture
def alice_app(stack, hub):
    hub("DELETE", "/users/alice/server")  # the browser login below need not wait for a Lab server
    kc = KernelConnection.start(stack["edge_url"] + "/gateway", stack["user_tokens"]["alice"], "yardlab_pyspark",
                                username="alice")
    reply = kc.execute("print(sc.applicationId)\n" + MULTI_STAGE.replace("0.5", "0").replace("0.3", "0"))
    assert reply.status == "ok", reply
    yield reply.stdout.strip().splitlines()[0]
    kc.shutdown()
    requests.delete(f"{stack['edge_url']}/gateway/api/kernels/{kc.kernel_id}",
                    headers={"Authorization": f"token {stack['user_tokens']['alice']}"}, timeout=120)


def test_alice_opens_her_spark_ui_through_the_hub_and_bobs_browser_is_refused(stack, artifacts, alice_app):
    app_id = alice_app
    url = f"{stack['edge_public_url']}/proxy/{app_id}/jobs/"
    prefix = urlsplit(url).path.rsplit("jobs/", 1)[0]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            alice = browser.new_context(viewport={"width": 1400, "height": 900})
            page = login(alice, stack, "alice")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # the hub's login carries over: the edge's OAuth dance needs no click
            page.goto(url)
            page.wait_for_url(f"**{prefix}jobs/**", timeout=60_000)
            page.locator("h3", has_text="Spark Jobs").wait_for(timeout=30_000)
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            inside = [h for h in hrefs if h.startswith(origin)]
            assert inside, hrefs
            stray = [h for h in inside if not urlsplit(h).path.startswith(prefix) and "/hub/" not in h]
            assert not stray, f"links leaving the proxied UI: {stray}"
            page.screenshot(path=str(artifacts / "spark-ui-jobs.png"))
            # into a stage page, by the UI's own links
            page.goto(f"{origin}{prefix}stages/")
            page.locator("a[href*='stages/stage/?id=']").first.click()
            page.locator("h3", has_text="Details for Stage").wait_for(timeout=30_000)
            assert urlsplit(page.url).path.startswith(prefix)
            page.screenshot(path=str(artifacts / "spark-ui-stage.png"))

            bob = browser.new_context()
            bob_page = login(bob, stack, "bob")
            resp = bob_page.goto(url)
            assert resp is not None and resp.status == 403
            assert "belongs to another user" in bob_page.inner_text("body")
            bob_page.screenshot(path=str(artifacts / "spark-ui-refused.png"))
            # a cookie of bob's own login does not open alice's REST API either
            resp = bob_page.goto(f"{origin}{prefix}api/v1/applications/{app_id}/jobs")
            assert resp is not None and resp.status == 403
        finally:
            browser.close()
