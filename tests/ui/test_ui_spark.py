"""The Spark UI and live Spark progress in headless Chromium: alice opens her application's Spark UI
through the hub (logging in to the edge with the hub's OAuth), follows its links to a stage page, and
bob's browser is refused; a notebook cell shows its Spark jobs and stages while it runs."""
from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from browser import CHROMIUM, CHROMIUM_ARGS, open_side_panel
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


@pytest.fixture
def fresh_guest_server(hub, stack):
    """Guest's Lab server stopped first, so the login starts one that serves the installed extension;
    guest's remote kernels (which outlive a Lab server) shut down, so the kernel cap has room."""
    hub("DELETE", "/users/guest/server")
    gw = f"{stack['edge_url']}/gateway/api/kernels"
    h = {"Authorization": f"token {stack['user_tokens']['guest']}"}
    for k in requests.get(gw, headers=h, timeout=60).json():
        requests.delete(f"{gw}/{k['id']}", headers=h, timeout=120)


def test_a_cells_spark_progress_shows_under_it_while_it_runs(stack, page, artifacts, fresh_guest_server):
    """A new notebook's first cell, run at once (Spark still starting), shows its jobs and stages under
    it with bars advancing, then one summary line that opens the details again."""
    open_side_panel(page, stack, "guest", "yardlab-sidebar")
    base = f"{stack['hub_url']}user/guest"
    h = {"Authorization": f"token {stack['user_tokens']['guest']}"}
    name = f"yl-progress-{uuid.uuid4().hex[:6]}.ipynb"
    notebook = {"cells": [{"cell_type": "code", "source": MULTI_STAGE, "metadata": {}, "outputs": [],
                           "execution_count": None, "id": "multistage"}],
                "metadata": {"kernelspec": {"name": "yardlab_pyspark", "display_name": "PySpark (YARN)",
                                            "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    requests.put(f"{base}/api/contents/work", json={"type": "directory"}, headers=h, timeout=60)
    r = requests.put(f"{base}/api/contents/work/{name}", json={"type": "notebook", "content": notebook},
                     headers=h, timeout=60)
    assert r.status_code == 201, r.text
    try:
        # ?reset: a workspace of this notebook only (Lab would restore other tests' documents too)
        page.goto(f"{base}/lab/tree/work/{name}?reset")
        panel = page.locator(".jp-NotebookPanel")
        panel.wait_for(timeout=60_000)
        assert panel.count() == 1
        cell = panel.locator(".jp-CodeCell").first
        cell.wait_for(timeout=60_000)
        # run as soon as the notebook's new kernel answers (its Spark is then still starting)
        # while it starts, the notebook's toolbar says where the start is (the edge's phases)
        phases: set[str] = set()
        start_item = panel.locator(".jp-yardlab-kernel-start")
        deadline = time.monotonic() + 330
        while time.monotonic() < deadline:
            if start_item.count() and start_item.is_visible():
                phases.add(start_item.inner_text())
            mine = [x for x in requests.get(f"{base}/api/sessions", headers=h, timeout=60).json()
                    if x.get("path", "").endswith(name) and x.get("kernel")]
            if mine and mine[0]["kernel"].get("execution_state") == "idle":
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the notebook's kernel never started; dialogs: "
                                 f"{page.locator('.jp-Dialog').all_inner_texts()}")
        known = ("Kernel: submitting to YARN", "Kernel: starting the Spark driver",
                 "Kernel: the driver runs; connecting the kernel", "Kernel: waiting in queue")
        assert phases and all(p.startswith(known) for p in phases), phases
        time.sleep(3)  # the page connects to the kernel the server reports
        assert not start_item.is_visible(), start_item.inner_text()  # ready: nothing more to say
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "Select Kernel" in dialog.inner_text():
            dialog.locator("button", has_text="Select").click()  # the notebook's own kernel, as a user would
            dialog.wait_for(state="detached", timeout=30_000)
        cell.locator(".jp-InputPrompt").click()
        panel.locator(".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']").click()
        progress = cell.locator(".jp-yardlab-sparkprogress[data-state='running']:not(.jp-mod-hidden)")
        try:
            progress.wait_for(timeout=120_000)
        except Exception:
            page.screenshot(path=str(artifacts / "notebook-spark-progress-missing.png"))
            raise AssertionError("no progress under the cell; the cell: "
                                 + cell.inner_text()[:500]) from None
        snapshots: list[list[str]] = []
        shot = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if cell.locator(".jp-yardlab-sparkprogress").get_attribute("data-state") == "done":
                break
            bars = cell.locator(".jp-yardlab-sparkstage").evaluate_all(
                "els => els.map(e => e.dataset.stageId + ':' + e.dataset.status + ':' + "
                "e.querySelector('[role=progressbar]').getAttribute('aria-valuenow'))")
            if bars and (not snapshots or bars != snapshots[-1]):
                snapshots.append(bars)
            if bars and not shot:
                page.screenshot(path=str(artifacts / "notebook-spark-progress-running.png"))
                shot = True
            time.sleep(0.25)
        (artifacts / "notebook-spark-progress.json").write_text(json.dumps(snapshots, indent=1))
        assert cell.locator(".jp-yardlab-sparkprogress").get_attribute("data-state") == "done"
        assert len(snapshots) >= 2, f"the stages never advanced on screen: {snapshots}"
        # collapsed to one line naming jobs, stages and tasks; a click opens the details again
        summary = cell.locator(".jp-yardlab-sparkprogress-toggle")
        text = summary.inner_text()
        assert "1 job" in text and "3 stages" in text and "tasks" in text, text
        assert cell.locator(".jp-yardlab-sparkstage").count() == 0
        ui = cell.locator(".jp-yardlab-sparkprogress-ui")
        assert urlsplit(ui.get_attribute("href") or "").path.startswith(urlsplit(stack["edge_public_url"]).path)
        summary.click()
        stages = cell.locator(".jp-yardlab-sparkstage")
        stages.first.wait_for(timeout=5_000)
        assert stages.count() == 3
        assert stages.evaluate_all("els => els.map(e => e.dataset.status)") == ["COMPLETE"] * 3
        assert cell.locator(".jp-OutputArea-output").inner_text().startswith("[(")  # the cell's own result
        page.screenshot(path=str(artifacts / "notebook-spark-progress-done.png"))
    finally:
        for s in requests.get(f"{base}/api/sessions", headers=h, timeout=60).json():
            if s.get("path", "").endswith(name):
                requests.delete(f"{base}/api/sessions/{s['id']}", headers=h, timeout=120)
        requests.delete(f"{base}/api/contents/work/{name}", headers=h, timeout=60)
