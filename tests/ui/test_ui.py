"""JupyterLab in headless Chromium: guest logs in through the hub and the yardlab sidebar renders."""
from __future__ import annotations

from browser import open_side_panel



def test_guest_sees_the_yardlab_sidebar(stack, page, artifacts):
    panel = open_side_panel(page, stack, "guest", "yardlab-sidebar")
    for heading in ("Jobs", "Environments", "Storage"):
        assert panel.get_by_text(heading, exact=True).first.is_visible()
    page.screenshot(path=str(artifacts / "lab-sidebar-guest.png"))
    assert not [e for e in page.errors if "yardlab" in e.lower()]


def test_guest_saves_a_notebook_on_hdfs_and_opens_it_again(stack, page, artifacts, hub, edge_as):
    """The HDFS file browser: Personal root, a new notebook saved there, closed, opened again."""
    import uuid

    name = f"ui-{uuid.uuid4().hex[:6]}"
    hub("DELETE", "/users/guest/server")  # a fresh server serves the freshly installed extension
    browser = open_side_panel(page, stack, "guest", "yardlab-hdfs-browser")
    browser.locator('.jp-DirListing-item[title^="Name: Personal"]').dblclick()
    browser.locator('.jp-BreadCrumbs-item[data-path="user/guest"]').wait_for(timeout=30_000)

    browser.locator('jp-button[data-command="yardlab:hdfs-new-notebook"]').click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    selects = dialog.locator("select")
    if selects.count():
        selects.first.select_option(label="No Kernel")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab[title*="HDFS:user/guest/untitled"]').first.wait_for(
        timeout=60_000)
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type(f"print('{name} on hdfs')")
    page.keyboard.press("Control+s")
    rename = page.locator(".jp-Dialog input[type=text]")
    rename.wait_for(timeout=30_000)
    rename.fill(f"{name}.ipynb")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.locator(f'.lm-DockPanel-tabBar .lm-TabBar-tab[title*="HDFS:user/guest/{name}.ipynb"]').wait_for(
        timeout=60_000)
    page.screenshot(path=str(artifacts / "hdfs-notebook-saved.png"))

    # it is on HDFS, as guest's file
    model = edge_as("guest").get(f"/files/user/guest/{name}.ipynb")
    assert model.status_code == 200, model.text
    assert model.json()["owner"] == "guest"
    content = edge_as("guest").get(f"/files/user/guest/{name}.ipynb", params={"download": "1"}).json()
    assert f"{name} on hdfs" in "".join(content["cells"][0]["source"])

    # close it and open it again from the HDFS browser
    page.locator(f'.lm-DockPanel-tabBar .lm-TabBar-tab[title*="{name}.ipynb"] .lm-TabBar-tabCloseIcon').click()
    browser.locator(f'.jp-DirListing-item[title^="Name: {name}.ipynb"]').dblclick()
    page.locator(".jp-Notebook .jp-Cell .cm-content", has_text=f"{name} on hdfs").first.wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts / "hdfs-notebook-reopened.png"))
    assert edge_as("guest")("DELETE", f"/files/user/guest/{name}.ipynb").status_code == 204
