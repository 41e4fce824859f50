"""HTTP handlers of the yardlab server extension."""
from __future__ import annotations

import tornado.web
from jupyter_server.base.handlers import APIHandler


class StatusHandler(APIHandler):
    """Report the running yardlab version and the edge service it talks to."""

    @tornado.web.authenticated
    def get(self) -> None:
        self.finish({"version": self.settings["yardlab_version"],
                     "edge_url": self.settings["yardlab_edge_url"]})


default_handlers: list[tuple[str, type[APIHandler]]] = [
    (r"/yardlab/api/status", StatusHandler),
]
