"""The public course (course/ in the repository) on the real stack: seeded into /public at the stack's start,
read-only for users, and every notebook run end to end as guest through guest's own Lab server (the
Lab server's kernels API and websocket; the kernels run on YARN through the edge).  Each notebook's
cells assert what they teach, so a cell that runs without an error is a lesson that works."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import requests
from conftest import HadoopAuth
from jupyter_ws import KernelConnection
from test_hub import wait_server_ready

COURSE = Path(__file__).resolve().parents[2] / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
DATASETS = sorted(p for p in (COURSE / "datasets").iterdir() if p.is_file())


def test_the_course_and_its_data_sets_are_in_public_after_the_start(stack):
    su = HadoopAuth.of(stack).webhdfs(stack)
    assert len(NOTEBOOKS) >= 5 and {"iris.csv", "wine.csv", "breast_cancer.csv"} <= {p.name for p in DATASETS}
    assert any(p.name.startswith("LICENSE") for p in DATASETS)
    for folder, local in [("/public/course", NOTEBOOKS), ("/public/datasets", DATASETS)]:
        st = su.status(folder)
        assert st["permission"] == "755", (folder, st)
        for path in local:
            st = su.status(f"{folder}/{path.name}")
            assert (st["length"], st["permission"]) == (path.stat().st_size, "644"), (path.name, st)
            with su.read(f"{folder}/{path.name}") as reader:
                assert reader.read() == path.read_bytes(), path.name


def test_users_cannot_change_public_through_the_edge(stack, edge_as):
    guest = edge_as("guest")
    listing = guest.get("/files/public/course")
    assert listing.status_code == 200, listing.text
    assert {e["name"] for e in listing.json()["content"]} >= {p.name for p in NOTEBOOKS}
    assert all(e["writable"] is False for e in listing.json()["content"])
    first = f"/files/public/course/{NOTEBOOKS[0].name}"
    for r in (guest("PUT", first, data=b"{}"),  # overwrite a lesson
              guest("PUT", "/files/public/datasets/mine.csv", data=b"a,b\n"),
              guest("POST", "/files/public/course/mine", params={"op": "mkdir"}),
              guest("DELETE", first),
              guest("PATCH", first, json={"path": "/public/course/renamed.ipynb"})):
        assert r.status_code == 403, (r.request.method, r.text)
        message = r.json()["message"]
        assert message.startswith("permission denied on /public/"), message
    assert guest.get(first, params={"download": "1"}).content == NOTEBOOKS[0].read_bytes()  # untouched


@pytest.fixture(scope="module")
def guest_lab(stack, hub) -> str:
    """guest's own Lab server (started if needed): its base URL."""
    hub("POST", "/users/guest/server")
    wait_server_ready(hub, "guest")
    return f"{stack['hub_url']}user/guest"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_course_notebook_runs_end_to_end_as_guest(stack, guest_lab, notebook):
    token = stack["user_tokens"]["guest"]
    got = requests.get(f"{guest_lab}/yardlab/api/files/public/course/{notebook.name}", params={"download": "1"},
                       headers={"Authorization": f"token {token}"}, timeout=60)
    assert got.status_code == 200, got.text[:300]
    nb = nbformat.reads(got.text, as_version=4)  # the copy in /public, as guest opens it
    kernelspec = nb.metadata["kernelspec"]["name"]
    kc = KernelConnection.start(guest_lab, token, kernelspec, username="guest", timeout=240)
    try:
        for n, cell in enumerate(nb.cells, 1):
            if cell.cell_type != "code":
                continue
            reply = kc.execute(cell.source, timeout=180)
            assert reply.status == "ok", (f"{notebook.name} cell {n} failed: {reply.error}\n"
                                          f"{cell.source[:300]}\n{reply.stderr[-1500:]}")
    finally:
        kc.shutdown()
