"""Hostile text a user chooses never runs as script on any page; it is shown as the text it is.

One module fixture makes, as guest, everything a user can name: a YARN application whose name and
tags are markup, an application sent to a queue named like markup (YARN rejects it, and keeps the
name), a kernel whose notebook path starts with ``javascript:`` and holds markup, an environment
whose display name and a pip requirement's marker are markup, and files named like markup in
Personal and Shared HDFS storage.  Then headless Chromium looks at every page that shows them: the
Lab sidebar (Jobs, Environments with its form), the HDFS browser, and the hub service's Jobs page
as guest; Overview, Jobs (with its kill dialog), Users and Environments as admin.

On every page a :class:`ScriptWatch` fails the test on any alert/confirm/prompt, on
``window.__xss`` (set by one payload), and on an element a payload would have made; each field is
also read back from the page, so the test proves the text was rendered, not just left out.

What the edge refuses instead is asserted with its message: environment names (a-z, 0-9, '-') and
HDFS paths with a colon (so no file is named ``javascript:...``).  Not user-chosen, and so only
watched: queue names in Overview (the scheduler's configuration), user names on the Users page
(the hub's allowed users).  YARN tags are shown on no page; the edge's API returns them.
"""
from __future__ import annotations

import json
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote, urlsplit

import pytest
import requests

from browser import hub_login, open_side_panel, show_side_panel
from conftest import AM_ONLY, FINAL_STATES, SLEEPER

pytestmark = pytest.mark.stack

#: markup for text, and for attribute values (the `">` closes one); lower-case ASCII under 100
#: characters, no comma and no slash, so YARN keeps it whole as a tag and HDFS as a file name
PAYLOAD = '<img src=x onerror=alert(1)>"><svg onload=alert(1)><img src=x onerror="window.__xss=1">'
#: a queue name (YARN splits queue paths at dots)
QUEUE = '"><img src=x onerror=alert(1)>'
#: a pip requirement the edge refuses, short enough (under 60 characters) for its message to repeat it whole
REFUSED_PIP = '<svg onload=alert(1)><img src=x onerror="window.__xss=1">'
#: a notebook path: a link built from it must not become a javascript: URL
NOTEBOOK = f"javascript:alert(1)/{PAYLOAD}.ipynb"
#: what a payload would have put in the page, had it been parsed as HTML
INJECTED = 'img[src="x"], svg[onload], [onerror]'
EMPTY_NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


class ScriptWatch:
    """Fails on any sign that hostile text ran as script on a page: a native dialog (recorded and
    dismissed as it opens), ``window.__xss`` set, or an element a payload would have made."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog) -> None:
        if dialog.type == "beforeunload":  # Lab asking before the page is left: not a payload's
            dialog.accept()
            return
        self.dialogs.append(f"{dialog.type} {dialog.message!r} on {self.page.url}")
        dialog.dismiss()

    def check(self, where: str) -> None:
        self.page.wait_for_timeout(300)  # an img's onerror fires once its load has failed
        found = self.page.evaluate(
            "(sel) => ({xss: window.__xss === undefined ? null : String(window.__xss),"
            " elements: [...document.querySelectorAll(sel)].map((e) => e.outerHTML.slice(0, 200))})", INJECTED)
        assert self.dialogs == [], f"{where}: a payload opened a dialog: {self.dialogs}"
        assert found == {"xss": None, "elements": []}, f"{where}: a payload became markup: {found}"
        assert not [e for e in self.page.errors if "yardlab" in e.lower()], self.page.errors


def shows(locator, text: str) -> str:
    """The text ``locator`` shows (hidden or not), asserted to hold ``text`` literally."""
    locator.wait_for(state="attached", timeout=60_000)
    shown = locator.text_content() or ""
    assert text in shown, f"{text!r} is not shown literally; the page shows {shown!r}"
    return shown


@dataclass
class Hostile:
    """What guest named with markup, by where it is shown."""

    run: str
    app: str = ""  # a sleeping Spark application named and tagged PAYLOAD
    app_name: str = ""
    rejected: str = ""  # an application YARN rejected for its queue, QUEUE
    kernel: str = ""
    kernel_app: str = ""  # the kernel's application; its notebook is NOTEBOOK
    env: str = ""  # guest's environment, display name PAYLOAD
    personal: str = ""  # file names in /user/guest and /shared
    shared: str = ""
    cleanups: list[Callable[[], object]] = field(default_factory=list)


def submit(stack, spark_env, rm, made: Hostile, script, *args: str) -> str:
    """spark-submit as guest, in cluster mode without waiting; the application's id (killed after)."""
    cmd = [f"{stack['spark_home']}/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster",
           "--proxy-user", "guest", *AM_ONLY, *args, str(script)]
    done = subprocess.run(cmd, env=spark_env, capture_output=True, text=True, timeout=300)
    ids = re.findall(r"application_\d+_\d+", done.stdout + done.stderr)
    assert ids, done.stderr[-2000:]
    made.cleanups.append(lambda: rm.app(ids[0])["state"] in FINAL_STATES or rm.kill(ids[0]))
    return ids[0]


def start_kernel(stack, rm, guest, made: Hostile) -> tuple[str, str]:
    """A Python kernel on YARN through the edge (shut down after), its session set to NOTEBOOK:
    (kernel id, application id)."""
    gateway = f"{stack['edge_url']}/gateway/api/kernels"
    token = {"Authorization": f"token {stack['user_tokens']['guest']}"}
    r = requests.post(gateway, json={"name": "yardlab_python", "env": {}}, headers=token, timeout=330)
    assert r.status_code == 201, r.text[:500]
    kernel = r.json()["id"]
    made.cleanups.append(lambda: requests.delete(f"{gateway}/{kernel}", headers=token, timeout=120))
    r = guest("PUT", f"/kernels/{kernel}/session", json={"type": "notebook", "path": NOTEBOOK})
    assert r.status_code == 200, r.text
    (app,) = rm.apps_tagged(f"kernel:{kernel}")
    return kernel, app["id"]


@pytest.fixture(scope="module")
def hostile(stack, hub, rm, edge_as, spark_env, tmp_path_factory):
    guest = edge_as("guest")
    made = Hostile(run=uuid.uuid4().hex[:6])
    hub("DELETE", "/users/guest/server")  # the login starts a Lab server serving the installed extension
    script = tmp_path_factory.mktemp("xss") / "sleeper.py"
    script.write_text(SLEEPER)
    made.app_name = f"{PAYLOAD} {made.run}"
    try:
        with ThreadPoolExecutor(3) as pool:  # the three JVM starts overlap (and end before the cleanups)
            app = pool.submit(submit, stack, spark_env, rm, made, script, "--name", made.app_name,
                              "--conf", f"spark.yarn.tags={PAYLOAD}")
            rejected = pool.submit(submit, stack, spark_env, rm, made, script, "--name", f"xss-queue-{made.run}",
                                   "--queue", QUEUE)
            kernel = pool.submit(start_kernel, stack, rm, guest, made)

            # refused by the edge, with a message: environment names are a-z, 0-9 and '-'
            r = guest("POST", "/environments", json={"name": PAYLOAD})
            assert r.status_code == 400 and "must start with a lower-case letter" in r.json()["message"], r.text
            made.env = f"xss-{made.run}"
            r = guest("POST", "/environments", json={
                "name": made.env, "display_name": PAYLOAD, "kind": "python",
                "packages": {"pip": [f"tabulate==0.9.0; platform_machine == '{PAYLOAD}'"]}})
            assert r.status_code == 202, r.text
            made.cleanups.append(lambda: guest("DELETE", f"/environments/guest/{made.env}"))

            # refused: an HDFS path holds no colon, so no file is named javascript:...
            r = guest("PUT", "/files/user/guest/" + quote("javascript:alert(1)", safe=""), data=b"x")
            assert r.status_code == 400 and "a colon" in r.json()["message"], r.text
            made.personal, made.shared = f"{PAYLOAD} {made.run}.ipynb", f"{PAYLOAD} {made.run}.txt"
            for folder, name, body in (("user/guest", made.personal, EMPTY_NOTEBOOK), ("shared", made.shared, b"x\n")):
                path = f"/files/{folder}/{quote(name, safe='')}"
                r = guest("PUT", path, data=body)
                assert r.status_code == 201, r.text
                made.cleanups.append(lambda path=path: guest("DELETE", path))

            made.app = app.result()
            made.kernel, made.kernel_app = kernel.result()
            made.rejected = rejected.result()
        assert rm.wait_state(made.rejected, FINAL_STATES, timeout=120)["queue"] == QUEUE
        assert PAYLOAD in rm.app(made.app)["applicationTags"].split(",")
        rm.wait_state(made.app, {"ACCEPTED", "RUNNING"}, timeout=120)
        yield made
    finally:
        for cleanup in reversed(made.cleanups):
            try:
                cleanup()
            except requests.RequestException:
                pass


def test_guests_lab_sidebar_and_hdfs_browser_show_hostile_names_as_text(stack, page, hostile, artifacts):
    watch = ScriptWatch(page)
    panel = open_side_panel(page, stack, "guest", "yardlab-sidebar")

    # Jobs: the application's name, the kernel's notebook path, the rejected application's queue
    job = panel.locator(f'.jp-yardlab-job[data-app-id="{hostile.app}"]')
    assert shows(job.locator(".jp-yardlab-job-name"), PAYLOAD) == hostile.app_name
    assert job.locator(".jp-yardlab-job-name").get_attribute("title") == hostile.app_name
    notebook = panel.locator(f'.jp-yardlab-job[data-app-id="{hostile.kernel_app}"] .jp-yardlab-job-notebook')
    assert shows(notebook, NOTEBOOK) == NOTEBOOK
    assert notebook.get_attribute("title") == f"Open {NOTEBOOK}"
    shows(panel.locator(f'.jp-yardlab-job[data-app-id="{hostile.rejected}"] .jp-yardlab-job-meta'), QUEUE)
    page.screenshot(path=str(artifacts / "xss-sidebar-jobs.png"))
    watch.check("Lab: Jobs")

    # Environments: the display name, and the requirement (its marker) in the open environment's details
    env = panel.locator(f'.jp-yardlab-env[data-env="guest/{hostile.env}"]')
    assert shows(env.locator(".jp-yardlab-env-name"), PAYLOAD) == PAYLOAD
    env.locator(".jp-yardlab-env-toggle").click()
    shows(env.locator(".jp-yardlab-env-packages"), f"platform_machine == '{PAYLOAD}'")
    # the form: a refused field's message, shown beside it (the name's does not repeat the name;
    # the pip requirement's does)
    panel.locator(".jp-yardlab-newEnv").click()
    form = panel.locator("form.jp-yardlab-envForm")
    form.locator('input[name="name"]').fill(PAYLOAD)
    form.locator(".jp-yardlab-createEnv").click()
    shows(form.locator('.jp-yardlab-fieldError[data-field="name"]'), "must start with a lower-case letter")
    form.locator('input[name="name"]').fill(f"xss-refused-{hostile.run}")
    form.locator('textarea[name="pip"]').fill(REFUSED_PIP)
    form.locator(".jp-yardlab-createEnv").click()
    shows(form.locator('.jp-yardlab-fieldError[data-field="packages.pip"]'), f"{REFUSED_PIP!r} is not a PEP 508")
    page.screenshot(path=str(artifacts / "xss-sidebar-environments.png"))
    watch.check("Lab: Environments")

    # the HDFS browser: a notebook in Personal, a file in Shared
    browser = show_side_panel(page, "yardlab-hdfs-browser")
    for root, folder, name in (("Personal", "user/guest", hostile.personal), ("Shared", "shared", hostile.shared)):
        browser.locator(".jp-BreadCrumbs-home").click()
        browser.locator(f'.jp-DirListing-item[title^="Name: {root}"]').dblclick()
        browser.locator(f'.jp-BreadCrumbs-item[data-path="{folder}"]').wait_for(timeout=30_000)
        item = browser.locator(".jp-DirListing-item", has_text=hostile.run).first
        assert shows(item.locator(".jp-DirListing-itemText"), PAYLOAD) == name
        page.screenshot(path=str(artifacts / f"xss-hdfs-{root.lower()}.png"))
        watch.check(f"Lab: HDFS {root}")

    # the hub service's Jobs page, as its user: the notebook is a link into guest's Lab, never javascript:
    page.goto(f"{stack['hub_service_url']}/jobs")
    row = page.locator(f'#yl-jobs tr[data-app="{hostile.app}"]')
    assert shows(row.locator(".yl-name"), PAYLOAD) == hostile.app_name
    link = page.locator(f'#yl-jobs tr[data-app="{hostile.kernel_app}"] .yl-notebook a')
    assert shows(link, NOTEBOOK) == NOTEBOOK
    href = link.evaluate("(a) => a.href")  # resolved, as a click would follow it
    assert href.startswith(f"{stack['hub_url']}user/guest/lab/tree/javascript%3Aalert(1)/"), href
    assert urlsplit(href).scheme in ("http", "https"), href
    shows(page.locator(f'#yl-jobs tr[data-app="{hostile.rejected}"] td').nth(4), QUEUE)
    page.screenshot(path=str(artifacts / "xss-hub-jobs-guest.png"))
    watch.check("hub service: Jobs (guest)")


def test_the_admin_pages_show_hostile_names_as_text(stack, page, hostile, artifacts):
    watch = ScriptWatch(page)
    hub_login(page, stack, "admin")
    page.wait_for_url(lambda u: "/hub/login" not in u, timeout=60_000)
    base = stack["hub_service_url"]

    # Overview: nothing a user names (queues are the scheduler's); watched with guest's jobs running
    page.goto(f"{base}/overview")
    page.locator("#yl-queues tbody tr").first.wait_for(timeout=30_000)
    page.locator("#yl-nodes tbody tr").first.wait_for(timeout=30_000)
    watch.check("hub service: Overview")

    # Jobs: everyone's, filtered to guest; the name, the notebook (text: not admin's own), the queue
    page.goto(f"{base}/jobs")
    page.locator("#yl-jobs tbody tr").first.wait_for(timeout=30_000)
    page.fill("#yl-f-user", "guest")
    page.click("#yl-filters button[type=submit]")
    row = page.locator(f'#yl-jobs tr[data-app="{hostile.app}"]')
    assert shows(row.locator(".yl-name"), PAYLOAD) == hostile.app_name
    assert shows(page.locator(f'#yl-jobs tr[data-app="{hostile.kernel_app}"] .yl-notebook'), NOTEBOOK) == NOTEBOOK
    assert page.locator(f'#yl-jobs tr[data-app="{hostile.kernel_app}"] .yl-notebook a').count() == 0
    shows(page.locator(f'#yl-jobs tr[data-app="{hostile.rejected}"] td').nth(4), QUEUE)
    # the kill dialog names the application; cancelled
    row.locator("button", has_text="Kill").click()
    dialog = page.locator("#yl-kill-dialog")
    dialog.wait_for(state="visible", timeout=10_000)
    assert shows(dialog.locator("#yl-kill-name"), PAYLOAD) == hostile.app_name
    page.screenshot(path=str(artifacts / "xss-hub-jobs-admin.png"))
    dialog.locator("button[value=cancel]").click()
    dialog.wait_for(state="hidden", timeout=10_000)
    watch.check("hub service: Jobs (admin)")

    # Users: user names are the hub's (allowed users), not chosen; watched
    page.goto(f"{base}/users")
    page.locator('#yl-users tr[data-user="guest"]').wait_for(timeout=30_000)
    watch.check("hub service: Users")

    # Environments: every user's, guest's display name and requirement among them
    page.goto(f"{base}/environments")
    row = page.locator(f'#yl-envs tr[data-env="guest/{hostile.env}"]')
    assert shows(row.locator("td").nth(2), PAYLOAD) == PAYLOAD
    shows(row.locator("td").nth(6), f"platform_machine == '{PAYLOAD}'")
    page.screenshot(path=str(artifacts / "xss-hub-environments-admin.png"))
    watch.check("hub service: Environments")
