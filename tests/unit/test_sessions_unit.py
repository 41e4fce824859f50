"""Which notebook a kernel serves: the Lab server's report (server extension) and the edge's checks."""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from test_kernel_policy_unit import service  # noqa: F401  (fixture)
from yardlab.edge.auth import Identity
from yardlab.edge.errors import PublicError
from yardlab.edge.ledger import KernelLedger
from yardlab.server_extension.sessions import follow_sessions

alice, bob = Identity(name="alice", admin=False), Identity(name="bob", admin=False)
admin = Identity(name="admin", admin=True)


def kernel_of(service, user: str = "alice") -> str:  # noqa: F811
    kid = str(uuid.uuid4())
    service.ledger.add(id=kid, user=user, kernelspec="yardlab_pyspark", notebook="/home/alice/work", state="running")
    return kid


def test_the_owner_names_the_notebook_and_a_console_says_it_has_none(service):  # noqa: F811
    kid = kernel_of(service)
    assert service.set_session(alice, kid, {"type": "notebook", "path": "work/analysis.ipynb"})["path"] == \
        "work/analysis.ipynb"
    rec = service.ledger.get(kid)
    assert (rec["session"], rec["notebook"]) == ("notebook", "work/analysis.ipynb")
    service.set_session(alice, kid, {"type": "console", "path": "console-1-2b9f"})
    rec = service.ledger.get(kid)
    assert (rec["session"], rec["notebook"]) == ("console", None)


def test_nobody_else_names_a_kernels_notebook_not_even_an_admin(service):  # noqa: F811
    kid = kernel_of(service)
    for who in (bob, admin):
        with pytest.raises(PublicError) as e:
            service.set_session(who, kid, {"type": "notebook", "path": "x.ipynb"})
        assert e.value.status == 403
    with pytest.raises(PublicError) as e:
        service.set_session(alice, str(uuid.uuid4()), {"type": "notebook", "path": "x.ipynb"})
    assert e.value.status == 404
    with pytest.raises(PublicError) as e:
        service.set_session(alice, "../../apps", {"type": "notebook", "path": "x.ipynb"})
    assert e.value.status == 400
    assert service.ledger.get(kid)["notebook"] == "/home/alice/work"


@pytest.mark.parametrize("body, needle", [
    ([], "send {"),
    ({"type": "script", "path": "a.py"}, "`type` must be one of"),
    ({"type": "notebook"}, "needs its `path`"),
    ({"type": "notebook", "path": "  "}, "needs its `path`"),
    ({"type": "notebook", "path": 7}, "needs its `path`"),
    ({"type": "notebook", "path": "/etc/passwd"}, "relative"),
    ({"type": "notebook", "path": "work/../../x.ipynb"}, "without `..`"),
    ({"type": "notebook", "path": "a\\..\\b.ipynb"}, "without `..`"),
    ({"type": "notebook", "path": "a\nb.ipynb"}, "control characters"),
    ({"type": "notebook", "path": "x" * 1025}, "at most 1024"),
])
def test_bad_session_reports_are_400_and_change_nothing(service, body, needle):  # noqa: F811
    kid = kernel_of(service)
    generation = service.ledger.generation
    with pytest.raises(PublicError) as e:
        service.set_session(alice, kid, body)
    assert e.value.status == 400 and needle in e.value.message, e.value.message
    assert service.ledger.get(kid)["notebook"] == "/home/alice/work"
    assert service.ledger.generation == generation


def test_an_old_ledger_gains_the_session_column_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    KernelLedger(db_url=f"sqlite:///{db}").add(id="k1", user="alice", kernelspec="s", notebook="/w")
    with sqlite3.connect(db) as conn:  # the ledger as an edge before this column made it
        conn.execute("ALTER TABLE kernels DROP COLUMN session")
    ledger = KernelLedger(db_url=f"sqlite:///{db}")
    rec = ledger.get("k1")
    assert (rec["notebook"], rec["session"]) == ("/w", None)
    ledger.update("k1", session="notebook", notebook="a.ipynb")
    assert KernelLedger(db_url=f"sqlite:///{db}").get("k1")["session"] == "notebook"


class FakeSessions:
    """The parts of jupyter_server's SessionManager that follow_sessions wraps."""

    def __init__(self) -> None:
        self.models: dict[str, dict] = {}

    async def create_session(self, path=None, name=None, type=None, kernel_name=None, kernel_id=None):  # noqa: A002
        sid = str(len(self.models) + 1)
        self.models[sid] = {"id": sid, "path": path, "type": type, "kernel": {"id": kernel_id or "k-" + sid}}
        return self.models[sid]

    async def update_session(self, session_id, **kwargs):
        self.models[session_id].update({k: v for k, v in kwargs.items() if k != "kernel_id"})

    async def get_session(self, session_id=None):
        return self.models[session_id]


def test_the_lab_server_reports_new_sessions_and_renames_with_its_own_token():
    seen: list[tuple[str, str, dict]] = []

    class Edge(RequestHandler):
        def put(self, kernel_id):
            seen.append((kernel_id, self.request.headers["Authorization"], json.loads(self.request.body)))
            self.set_status(403 if kernel_id == "k-refused" else 200)
            self.finish({})

    async def main():
        sock, port = bind_unused_port()
        server = HTTPServer(Application([(r"/api/v1/kernels/([^/]+)/session", Edge)]))
        server.add_sockets([sock])
        try:
            sm = FakeSessions()
            follow_sessions(sm, f"http://127.0.0.1:{port}/", "server-token", logging.getLogger("test"))
            model = await sm.create_session(path="work/a.ipynb", type="notebook", kernel_id="k1")
            assert model["path"] == "work/a.ipynb"  # the session itself is unchanged
            await sm.update_session("1", path="work/renamed.ipynb")
            await sm.update_session("1", name="no path change")  # nothing to report
            await sm.create_session(path="console-1", type="console", kernel_id="k2")
            # the edge refusing (or being down) never fails the session
            await sm.create_session(path="b.ipynb", type="notebook", kernel_id="k-refused")
            server.stop()
            await sm.create_session(path="c.ipynb", type="notebook", kernel_id="k-nobody-listens")
        finally:
            server.stop()

    asyncio.run(main())
    assert seen == [
        ("k1", "token server-token", {"type": "notebook", "path": "work/a.ipynb"}),
        ("k1", "token server-token", {"type": "notebook", "path": "work/renamed.ipynb"}),
        ("k2", "token server-token", {"type": "console", "path": "console-1"}),
        ("k-refused", "token server-token", {"type": "notebook", "path": "b.ipynb"}),
    ]
