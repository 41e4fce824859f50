"""Enterprise Gateway as a supervised child of the edge: loopback, a private token, restarted when it
dies, adopted again after an edge restart (so no kernel dies with the edge).

This module is EG's process only; the edge talks to it through :attr:`GatewaySupervisor.client`
(:class:`~.clients.gateway.GatewayClient`), which the supervisor hands the token and readiness.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Float, Integer, List, Type, Unicode, default, observe
from traitlets.config import LoggingConfigurable

from . import metrics
from .clients.gateway import GatewayClient
from .clock import monotonic
from .loops import PeriodicTask
from .osutil import pid_alive, write_private

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY)(?!.*_(FILE|LOCATION|PATH|DIR)$)",
                         re.IGNORECASE)


class GatewaySupervisor(LoggingConfigurable):
    """Runs Enterprise Gateway as a child on loopback and keeps it running."""

    enabled = Bool(True, help="Whether this edge runs Enterprise Gateway (and serves /gateway/).").tag(config=True)
    command = List(
        Unicode(), ["jupyter-enterprisegateway"],
        help="The command that starts Enterprise Gateway (from its own virtualenv).",
    ).tag(config=True)
    port = Integer(8890, help="Loopback port Enterprise Gateway listens on.").tag(config=True)
    env = Dict(
        help="Environment for Enterprise Gateway (EG_*, JUPYTER_PATH with the kernelspecs, SPARK_HOME, ...), over "
             "the edge's own, of which variables named like credentials (*TOKEN*, *SECRET*, *PASSWORD*) are dropped.",
    ).tag(config=True)
    state_file = Unicode(
        "enterprise-gateway.json",
        help="Where the running EG's pid, port and token are kept (mode 0600), so a restarted edge adopts it.",
    ).tag(config=True)
    config_file = Unicode(
        help="EG's config file, written at each launch (mode 0600) with its token and passed as --config, so "
             "the token is never on a command line (`ps` shows those to every account) nor in EG's "
             "environment (which EG hands on to processes it starts). Default: beside state_file.",
    ).tag(config=True)
    log_file = Unicode("enterprise-gateway.log", help="Enterprise Gateway's log.").tag(config=True)
    cull_idle_timeout = Integer(
        4 * 3600, help="Seconds an idle kernel lives before it is shut down (0: never).").tag(config=True)
    cull_interval = Integer(120, help="Seconds between idle-kernel checks.").tag(config=True)
    launch_timeout = Integer(300, help="Seconds a kernel may take to start on YARN.").tag(config=True)
    max_backoff = Float(30.0, help="Longest pause between restarts of a failing Enterprise Gateway.").tag(config=True)
    client_class = Type(
        GatewayClient, klass=GatewayClient,
        help="The class the edge talks to Enterprise Gateway through (REST and kernel websockets).",
    ).tag(config=True)

    @default("config_file")
    def _config_file_default(self) -> str:
        state = Path(self.state_file)
        return str(state.with_name(f"{state.stem}-config.json"))

    def __init__(self, kerberos: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: the edge's Kerberos login (edge.kerberos.Kerberos), whose ticket cache EG runs on
        self.kerberos = kerberos
        self.pid: int | None = None
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        #: set while EG is up and enforces the token the client holds
        self.ready = asyncio.Event()
        self.client: GatewayClient = self.client_class(self.url, ready=self.ready, parent=self)
        self._watch: PeriodicTask | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @observe("port")
    def _port_changed(self, change: dict) -> None:
        if hasattr(self, "client"):
            self.client.url = self.url

    @property
    def token(self) -> str:
        """EG's token (the client holds it: it is what the client calls EG with)."""
        return self.client.token

    @token.setter
    def token(self, value: str) -> None:
        self.client.token = value

    async def start(self) -> None:
        if not self.enabled:
            return
        if not await self._adopt():
            await self._launch()
        self._watch = PeriodicTask(self._check, 1.0, max_backoff=self.max_backoff, wait_first=True,
                                   name="watching Enterprise Gateway", log=self.log)
        self._watch.start()

    async def stop(self, stop_gateway: bool = False) -> None:
        """Stop watching EG; stop EG itself too only when asked (otherwise the next edge adopts it)."""
        if self._watch is not None:
            await self._watch.stop()
        if stop_gateway and self.pid:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    async def _adopt(self) -> bool:
        try:
            saved = json.loads(Path(self.state_file).read_text())
        except (OSError, ValueError):
            return False
        pid, token = saved.get("pid"), saved.get("token", "")
        if not pid or not pid_alive(pid) or saved.get("port") != self.port:
            return False
        self.token, self.pid = token, pid
        if await self.healthy() and await self.refuses_strangers():
            self.log.info("adopted the running Enterprise Gateway (pid %s); its kernels live on", pid)
            self.started_at = monotonic()
            self.ready.set()
            return True
        return False

    def launch_argv(self) -> list[str]:
        """EG's command line: settings only, never the token (that is in config_file)."""
        return [*self.command, f"--config={os.path.abspath(self.config_file)}",
                "--ip=127.0.0.1", f"--port={self.port}", "--port_retries=0",
                "--EnterpriseGatewayApp.list_kernels=True",
                f"--MappingKernelManager.cull_idle_timeout={self.cull_idle_timeout}",
                f"--MappingKernelManager.cull_interval={self.cull_interval}",
                "--MappingKernelManager.cull_connected=False"]

    def launch_env(self) -> dict[str, str]:
        """EG's environment: the edge's, minus anything that looks like a credential (the edge's hub
        token, say), plus the configured variables."""
        inherited = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
        kerberos = {}
        if self.kerberos is not None and self.kerberos.enabled:
            # on a Kerberized cluster EG (its RM polls) and the spark-submit it runs use the edge's
            # ticket, never a keytab of their own; the configured env may still say otherwise
            kerberos = {"KRB5CCNAME": f"FILE:{self.kerberos.ccache_path}", "EG_YARN_ENDPOINT_SECURITY_ENABLED": "True"}
        return {**inherited, **kerberos, **{k: str(v) for k, v in self.env.items()},
                "EG_KERNEL_LAUNCH_TIMEOUT": str(self.launch_timeout), "EG_IMPERSONATION_ENABLED": "True"}

    async def _launch(self) -> None:
        self.token = secrets.token_hex(24)
        # EG is a JupyterApp: --config loads this file like its own jupyter_enterprisegateway_config
        write_private(self.config_file, json.dumps({"EnterpriseGatewayApp": {"auth_token": self.token}}))
        log = open(self.log_file, "ab")
        # its own session: EG (and so its kernels) outlives an edge restart, which adopts it again
        self.proc = subprocess.Popen(self.launch_argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.launch_env(), start_new_session=True)
        log.close()
        self.pid = self.proc.pid
        write_private(self.state_file, json.dumps({"pid": self.pid, "port": self.port, "token": self.token}))
        self.ready.clear()
        deadline = monotonic() + 60
        while monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if await self.healthy():
                if not await self.refuses_strangers():
                    # the config file was not read: an EG without a token must not stay up
                    self.log.error("Enterprise Gateway (pid %s) answers without its token; stopping it", self.pid)
                    self._kill()
                    break
                self.started_at = monotonic()
                self.ready.set()
                self.log.info("Enterprise Gateway up (pid %s, port %s)", self.pid, self.port)
                return
            await asyncio.sleep(0.25)
        self.log.error("Enterprise Gateway did not come up; see %s", self.log_file)

    def _kill(self) -> None:
        if not self.pid:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def refuses_strangers(self) -> bool:
        """Whether EG turns away a request without its token (it runs with the token it was given)."""
        return await self.client.probe(with_token=False) in (401, 403)

    async def healthy(self) -> bool:
        return await self.client.probe() == 200

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return bool(self.pid) and pid_alive(self.pid)

    async def _check(self) -> bool:
        """One look at EG (every second): relaunched when it is gone.  False while it stays down, so the
        looks (and relaunches) slow down, up to max_backoff apart."""
        if self.alive():
            return True
        self.ready.clear()
        metrics.GATEWAY_RESTARTS.inc()
        self.log.warning("Enterprise Gateway (pid %s) is gone; restarting it", self.pid)
        await self._launch()
        return self.ready.is_set()
