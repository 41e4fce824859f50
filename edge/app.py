"""The yardlab edge service: a tornado application configured with traitlets (`yardlab-edge`)."""
from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Instance, Integer, Unicode, default, observe
from traitlets.config import Application, Configurable, catch_config_error

from . import __version__
from .audit import AuditLog
from .auth import AdminRoster, TokenIdentifier
from .clients.gateway import GatewayClient
from .clients.resourcemanager import ResourceManagerClient
from .environments import EnvironmentService
from .handlers.routes import routes
from .handlers.sparkui import EdgeHubOAuth
from .jobs import JobService
from .kafka import KafkaService
from .kerberos import Kerberos, KerberosError
from .kills import KillJournal
from .kernels import KernelService
from .ledger import KernelLedger
from .loops import PeriodicTask
from .reaper import Reaper
from .warm import WarmPool
from .snapshot import AppSnapshot
from .progress import SparkProgress
from .sparkui import SparkUIProxy
from .storage import HDFSStorage
from .supervisor import GatewaySupervisor

#: EdgeApp settings that belong to other classes now: still read (with a warning), forwarded there
MOVED = {
    "hub_api_url": (TokenIdentifier, "hub_api_url"),
    "hub_api_token": (TokenIdentifier, "hub_api_token"),
    "audit_log": (AuditLog, "path"),
    "kill_timeout": (JobService, "kill_timeout"),
    "apps_cache_bytes": (JobService, "page_cache_bytes"),
    "max_kernels_per_user": (KernelService, "max_kernels_per_user"),
    "kernels_dir": (KernelService, "kernels_dir"),
}


def _moved(old: str) -> str:
    cls, new = MOVED[old]
    return f"Deprecated: use {cls.__name__}.{new} (this setting is forwarded there)."


class EdgeApp(Application):
    """The edge service on the Hadoop edge node: the one place where yardlab's policy is decided."""

    name = "yardlab-edge"
    version = __version__
    description = __doc__
    config_file_name = Unicode("yardlab_edge_config.py", help="The config file to load.").tag(config=True)
    generate_config = Bool(False, help="Write a documented config file and exit.").tag(config=True)

    aliases = {"config": "EdgeApp.config_file_name", "port": "EdgeApp.port", "ip": "EdgeApp.ip",
               "log-level": "Application.log_level"}
    flags = {"generate-config": ({"EdgeApp": {"generate_config": True}}, "Write a documented config file and exit.")}

    ip = Unicode("127.0.0.1", help="Address the edge listens on.").tag(config=True)
    port = Integer(8765, help="Port the edge listens on.").tag(config=True)
    base_url = Unicode(
        help="""URL prefix of every route.

        The edge is a JupyterHub service (``yardlab-edge``), so the hub's proxy routes
        ``/services/yardlab-edge/`` to it and it serves under that prefix.
        Default: $JUPYTERHUB_SERVICE_PREFIX or /services/yardlab-edge/.""",
    ).tag(config=True)

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/yardlab-edge/")

    max_body_size = Integer(8 * 1024 * 1024, help="""Largest request body the HTTP server reads, in bytes (uploads
        set their own): a larger one is refused before any handler sees it, with a bare 400 and the connection
        closed, so a client still sending sees a reset.  Kept above ``max_json_body`` so that an oversized JSON
        body is read and answered with a 413 and a sentence.""").tag(config=True)
    max_json_body = Integer(1024 * 1024, help="""Largest JSON request body, in bytes: a larger one gets 413 with a
        sentence saying the limit.""").tag(config=True)
    header_timeout = Float(60.0, help="""Seconds a client has to send a request's headers, and that an idle
        kept-alive connection stays open.  A client that trickles its headers (a "slowloris") is cut off after it,
        rather than holding a connection for tornado's default hour.  Bodies are not bound by it (uploads have
        their own idle timeout and deadline); a WebSocket, once open, neither.""").tag(config=True)
    metrics_require_auth = Bool(True, help="Whether /metrics needs an admin's token.").tag(config=True)
    cookie_secret_file = Unicode(
        "", help="""File holding the secret that signs the edge's login cookie (the Spark UI's hub login).

        Unset: a random secret per start, so a restart (or another edge replica) sends browsers through
        the hub's login again, which with ``oauth_no_confirm`` is a few redirects and no click.""",
    ).tag(config=True)

    hub_api_url = Unicode(help=_moved("hub_api_url")).tag(config=True)
    hub_api_token = Unicode(help=_moved("hub_api_token")).tag(config=True)
    audit_log = Unicode(help=_moved("audit_log")).tag(config=True)
    kill_timeout = Float(60.0, help=_moved("kill_timeout")).tag(config=True)
    apps_cache_bytes = Integer(64 * 1024**2, help=_moved("apps_cache_bytes")).tag(config=True)
    max_kernels_per_user = Integer(4, help=_moved("max_kernels_per_user")).tag(config=True)
    kernels_dir = Unicode(help=_moved("kernels_dir")).tag(config=True)

    @observe(*MOVED)
    def _moved_setting(self, change: dict) -> None:
        cls, new = MOVED[change["name"]]
        self.log.warning("EdgeApp.%s is deprecated: set %s.%s instead (the value is forwarded there)",
                         change["name"], cls.__name__, new)
        self._forwarded[change["name"]] = change["new"]

    classes = [Kerberos, ResourceManagerClient, AppSnapshot, TokenIdentifier, AdminRoster, AuditLog, HDFSStorage,
               GatewaySupervisor, GatewayClient, KernelLedger, JobService, KernelService, Reaper,
               EnvironmentService, SparkUIProxy, SparkProgress, EdgeHubOAuth, WarmPool, KafkaService]

    rm = Instance(ResourceManagerClient, allow_none=True)
    kerberos = Instance(Kerberos, allow_none=True)
    snapshot = Instance(AppSnapshot, allow_none=True)

    def __init__(self, **kwargs: Any) -> None:
        self._forwarded: dict[str, Any] = {}
        super().__init__(**kwargs)

    def _settings_for(self, cls: type[Configurable]) -> dict[str, Any]:
        """The deprecated EdgeApp settings that were set and now belong to ``cls``, as keyword arguments
        (which win over ``cls``'s own config, as the shortcuts always did)."""
        return {new: self._forwarded[old] for old, (owner, new) in MOVED.items()
                if owner is cls and old in self._forwarded}

    @catch_config_error
    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.generate_config:
            return
        # a config file that fails stops the edge: running on the defaults instead (traitlets'
        # default) would be an edge without its Kerberos login, reaper or limits
        self.raise_config_file_errors = True
        try:
            self.load_config_file(self.config_file_name)
        except Exception as e:  # noqa: BLE001 (any error in a config file is the site's to fix)
            self.log.critical("the config file %s failed, so the edge does not start: %s: %s",
                              self.config_file_name, type(e).__name__, e)
            self.exit(1)
        # command-line settings win over the config file
        if self.cli_config:
            self.update_config(self.cli_config)

    def make_app(self) -> web.Application:
        # one Kerberos login (off unless Kerberos.keytab is set) for every client of Hadoop
        self.kerberos = Kerberos(parent=self)
        self.rm = ResourceManagerClient(parent=self, kerberos=self.kerberos)
        self.snapshot = AppSnapshot(parent=self, rm=self.rm)
        audit = AuditLog(parent=self, **self._settings_for(AuditLog))
        self.ledger = KernelLedger(parent=self)
        self.gateway = GatewaySupervisor(parent=self, kerberos=self.kerberos)
        kernels = KernelService(self.gateway, self.ledger, self.snapshot, audit, parent=self,
                                **self._settings_for(KernelService))
        jobs = JobService(self.rm, self.snapshot, audit, ledger=self.ledger, waiting=kernels.waiting_message,
                          journal=KillJournal(self.ledger.engine), parent=self, **self._settings_for(JobService))
        self.jobs = jobs
        storage = HDFSStorage(parent=self, kerberos=self.kerberos)
        identifier = TokenIdentifier(parent=self, **self._settings_for(TokenIdentifier))
        # nobody acts through doAs as the account the edge itself runs as
        identifier.service_accounts = {self.rm.service_user, storage.service_user}
        self.storage = storage
        self.roster = AdminRoster(identifier, parent=self)
        storage.is_admin_now = self.roster.is_admin
        self.environments = EnvironmentService(self.ledger, storage, self.snapshot, audit,
                                               kernels.kernels_dir, parent=self)
        # the owner of the shipped environments (the base of everyone's built-in kernels among them) is
        # nobody's hub name either: a user called like it would own them
        identifier.service_accounts.add(self.environments.predefined_owner)
        self.reaper = Reaper(self.rm, self.snapshot, self.ledger, self.gateway, audit, parent=self)
        self.warm_pool = WarmPool(kernels, identifier, parent=self)
        self.kafka = KafkaService(parent=self)
        jobs.kafka = self.kafka  # the capacity line says whether Kafka is up
        channels: dict[str, set] = {}

        def report_dead(kernel_id: str) -> None:
            for handler in list(channels.get(kernel_id, ())):
                handler.report_dead()

        self.reaper.on_dead_kernel.append(report_dead)
        base = "/" + self.base_url.strip("/") + "/" if self.base_url.strip("/") else "/"
        spark_ui = SparkUIProxy(base, parent=self)
        jobs.spark_ui = spark_ui
        # the browser login of the Spark UI: the edge is the hub's OAuth client service-<its name>
        hub_oauth = EdgeHubOAuth(parent=self, api_url=identifier.hub_api_url, api_token=identifier.hub_api_token or "-",
                                 base_url=base, cache_max_age=identifier.cache_max_age,
                                 access_scopes={f"access:services!service={identifier.service_name}"})
        settings = {
            "identifier": identifier,
            "jobs": jobs,
            "kernels": kernels,
            "warm_pool": self.warm_pool,
            "gateway": self.gateway,
            "channels": channels,
            "base_url": base,
            "storage": storage,
            "kerberos": self.kerberos,
            "environments": self.environments,
            "metrics_require_auth": self.metrics_require_auth,
            "max_json_body": min(self.max_json_body, self.max_body_size),
            "spark_ui": spark_ui,
            "progress": SparkProgress(self.rm, spark_ui.url_for, parent=self),
            "hub_auth": hub_oauth,
            "cookie_secret": self._cookie_secret(),
            "log_function": self._log_request,
            "xsrf_cookies": False,  # token auth only: no cookies are read
        }
        return web.Application(routes(base), **settings)

    def _cookie_secret(self) -> bytes:
        if self.cookie_secret_file:
            with open(self.cookie_secret_file, "rb") as f:
                secret = f.read().strip()
            if len(secret) < 32:
                self.exit(f"EdgeApp.cookie_secret_file {self.cookie_secret_file} holds fewer than 32 bytes")
            return secret
        return os.urandom(32)

    async def _reconcile_admins(self) -> None:
        """Take away what former admins were given (their ACL entries on /public)."""
        admins = await self.roster.admins()
        if admins is not None:
            await self.storage.reconcile_public_acl(admins)

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = self.log.info if status < 400 or status == 404 else self.log.warning
        if status < 300 and handler.request.method == "GET":
            level = self.log.debug
        level("%d %s %s %.1fms", status, handler.request.method, handler.request.path,
              1000 * handler.request.request_time())

    async def serve(self) -> None:
        app = self.make_app()
        assert self.kerberos is not None
        # logged in before anything talks to Hadoop; a wrong keytab stops the start here (KerberosError)
        await self.kerberos.start()
        # unfinished builds are queued again (and leftovers removed) before any request can add one
        await self.environments.start()
        server = HTTPServer(app, max_body_size=self.max_body_size, xheaders=False,
                            idle_connection_timeout=self.header_timeout)
        server.listen(self.port, self.ip)
        assert self.snapshot is not None
        self.snapshot.start()
        # kills an edge that died mid-way accepted: finished (and audited) in the background
        resume_kills = asyncio.ensure_future(self.jobs.resume_kills())
        await self.gateway.start()
        if self.gateway.enabled:
            self.reaper.start()
            self.warm_pool.start()
        # the loop survives HDFS or the hub being away (logged); every interval, the first at once
        reconciler = PeriodicTask(self._reconcile_admins, self.roster.interval,
                                  name="reconciling /public's ACL with the hub's admins", log=self.log)
        if self.roster.interval > 0:
            reconciler.start()
        self.kafka.start()
        self.log.info("yardlab edge %s listening on http://%s:%d%s (RM: %s)", self.version, self.ip, self.port,
                      self.base_url, ", ".join(self.rm.urls if self.rm else []))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("stopping")
        server.stop()
        resume_kills.cancel()
        await asyncio.gather(resume_kills, return_exceptions=True)
        await reconciler.stop()
        await self.kafka.stop()
        await self.warm_pool.stop()  # warm kernels stay: the next edge finds them in the ledger and EG
        await self.reaper.stop()
        await self.environments.stop()
        await self.gateway.stop()  # Enterprise Gateway keeps running: the next edge adopts it
        await self.snapshot.stop()
        await self.kerberos.stop()

    def start(self) -> None:
        if self.generate_config:
            self.write_default_config()
            return
        try:
            try:
                import uvloop  # a faster event loop when installed (the edge extra installs it)
            except ImportError:
                asyncio.run(self.serve())
            else:
                uvloop.run(self.serve())
        except KerberosError as e:
            # a sentence naming the principal and the keytab, not a traceback
            self.log.critical("cannot start: %s", e)
            self.exit(1)

    def write_default_config(self) -> None:
        path = os.path.abspath(self.config_file_name)
        if os.path.exists(path):
            self.exit(f"{path} exists already; move it away first")
        with open(path, "w") as f:
            f.write(self.generate_config_file())
        print(f"wrote {path}")


main = EdgeApp.launch_instance

if __name__ == "__main__":
    main()
