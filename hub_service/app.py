"""The yardlab hub service: a managed JupyterHub service at /services/yardlab/ (`python -m yardlab.hub_service`)."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
from jupyterhub.services.auth import HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Integer, Unicode, default
from traitlets.config import Application

from yardlab.edge.client import AsyncEdgeClient

from .handlers import PageNotFoundHandler, routes
from .sampler import ClusterSampler
from .security import safe_next
from .store import UsageStore

HERE = Path(__file__).parent


class YardlabHubOAuth(HubOAuth):
    """HubOAuth whose post-login redirect only ever goes to a path of this service."""

    @default("allow_token_in_url")
    def _no_token_in_url(self) -> bool:
        return False  # tokens in URLs end up in logs and Referer headers: header or cookie only

    def get_next_url(self, state_id: str = "", /) -> str:
        target = super().get_next_url(state_id)
        return safe_next(target, self.base_url) or self.base_url


class HubServiceApp(Application):
    """Cluster usage pages for admins, everyone's own jobs and usage, and the public JSON API for scripts."""

    name = "yardlab-hub-service"
    description = __doc__
    config_file = Unicode("", help="A config file to load (python, traitlets).").tag(config=True)
    aliases = {"config": "HubServiceApp.config_file", "port": "HubServiceApp.port", "ip": "HubServiceApp.ip",
               "db-url": "HubServiceApp.db_url", "log-level": "Application.log_level"}
    flags = {"no-sampler": ({"HubServiceApp": {"sampler_enabled": False}}, "Serve pages only; store no samples.")}

    ip = Unicode(help="Address to listen on. Default: the host of $JUPYTERHUB_SERVICE_URL, else 127.0.0.1.").tag(config=True)
    port = Integer(help="Port to listen on. Default: the port of $JUPYTERHUB_SERVICE_URL, else 8766.").tag(config=True)

    @default("ip")
    def _ip_default(self) -> str:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _port_default(self) -> int:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or 8766

    base_url = Unicode(help="URL prefix of every route. Default: $JUPYTERHUB_SERVICE_PREFIX or /services/yardlab/.").tag(config=True)

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/yardlab/")

    hub_prefix = Unicode(help="The hub's URL prefix, for its stylesheet and links. Default: $JUPYTERHUB_BASE_URL + hub/.").tag(config=True)

    @default("hub_prefix")
    def _hub_prefix_default(self) -> str:
        return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"

    edge_url = Unicode(help="The edge API's base, e.g. http://edge:8765/services/yardlab-edge. Default: $YARDLAB_EDGE_URL.").tag(config=True)

    @default("edge_url")
    def _edge_url_default(self) -> str:
        return os.environ.get("YARDLAB_EDGE_URL", "")

    db_url = Unicode(help="SQLAlchemy URL of the sample database. Default: $YARDLAB_SERVICE_DB_URL or sqlite:///yardlab_service.sqlite in the working folder.").tag(config=True)

    @default("db_url")
    def _db_url_default(self) -> str:
        return os.environ.get("YARDLAB_SERVICE_DB_URL", "sqlite:///yardlab_service.sqlite")

    sampler_enabled = Bool(True, help="Whether to sample cluster use into the database.").tag(config=True)
    cookie_secret_file = Unicode(help="File holding the cookie secret (random per start when unset: sessions then end with a restart).").tag(config=True)

    classes = [ClusterSampler]

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            if self.cli_config:
                self.update_config(self.cli_config)
        if "YARDLAB_SAMPLE_INTERVAL" in os.environ:
            self.config.ClusterSampler.interval = float(os.environ["YARDLAB_SAMPLE_INTERVAL"])

    def cookie_secret(self) -> bytes:
        if self.cookie_secret_file and os.path.exists(self.cookie_secret_file):
            return Path(self.cookie_secret_file).read_bytes().strip()
        return os.urandom(32)

    def make_app(self, edge: AsyncEdgeClient | None = None, store: UsageStore | None = None) -> web.Application:
        base = "/" + self.base_url.strip("/") + "/"
        self.store = store or UsageStore(self.db_url)
        self.edge = edge or AsyncEdgeClient(self.edge_url or None, os.environ.get("JUPYTERHUB_API_TOKEN") or "none")
        self.sampler = ClusterSampler(parent=self, store=self.store, edge=self.edge)
        hub_auth = YardlabHubOAuth(parent=self, cache_max_age=60)
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
        settings: dict[str, Any] = {
            "hub_auth": hub_auth,
            "cookie_secret": self.cookie_secret(),
            "static_path": str(HERE / "static"),
            "static_url_prefix": base + "static/",
            "jinja": env,
            "edge": self.edge,
            "store": self.store,
            "sampler": self.sampler,
            "base_url": base,
            "hub_prefix": self.hub_prefix,
            "login_url": hub_auth.login_url,
            "log_function": self._log_request,
        }
        return web.Application(routes(base), default_handler_class=PageNotFoundHandler, **settings)

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = self.log.debug if status < 400 and handler.request.method == "GET" else self.log.info
        level("%d %s %s %.1fms", status, handler.request.method, handler.request.path,
              1000 * handler.request.request_time())

    async def serve(self) -> None:
        app = self.make_app()
        # a client trickling its headers is cut off after a minute (tornado's default: an hour), as at the edge
        server = HTTPServer(app, xheaders=True, max_body_size=1024 * 1024, idle_connection_timeout=60)
        server.listen(self.port, self.ip)
        if self.sampler_enabled:
            self.sampler.start()
        self.log.info("yardlab hub service listening on http://%s:%d%s (edge: %s, samples every %.0f s)",
                      self.ip, self.port, self.base_url, self.edge.url, self.sampler.interval)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await self.sampler.stop()

    def start(self) -> None:
        asyncio.run(self.serve())


main = HubServiceApp.launch_instance

if __name__ == "__main__":
    main()
