"""User environments: Spark resources and extra packages, built once, packed, and shipped to YARN.

An environment is a request (kind, Spark resources, pip requirements, conda match specs) that the
edge validates, builds and publishes as an Enterprise Gateway kernelspec.  The package reads in
the order a request travels:

- ``request.py``: the request checked field by field (:func:`parse_request`, :class:`FieldError`);
  nothing is written anywhere for a refused request.
- ``store.py``: the records (environments, resolutions), the build logs and their listeners.
- ``builder.py``: the build queue and its workers: resolve, install, pack, upload to HDFS, write
  the kernelspec (whose Spark properties come from :mod:`yardlab.edge.kernelspecs`).
- ``service.py`` (here): :class:`EnvironmentService`, the settings and the API the handlers call
  (list, show, create, update, rebuild, delete, events) with who may do what.

The base environment (``yardlab/base``, made at the edge's first start) is the site's base set
(numpy, pandas, pyarrow, matplotlib) with nothing else; its kernelspecs are the built-in ones, which
run on the edge's own interpreter until its archive is ready and on that archive from then on.  Every
other environment carries the base set too: an environment's archive replaces the kernel's whole
Python, and one that dropped pandas because its owner asked for scikit-learn would surprise everyone.
The set goes in by name only, so an environment's own pins decide the versions; an environment with
no packages resolves to the base archive itself (the same file, already cached on the nodes).
"""
from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any, AsyncIterator

from traitlets import Dict, List, Unicode, default
from traitlets import Float as FloatT
from traitlets import Integer as IntegerT
from traitlets.config import LoggingConfigurable
from uv import find_uv_bin

from ..audit import AuditLog
from ..auth import Identity
from ..errors import PublicError
from ..ledger import KernelLedger
from ..snapshot import AppSnapshot
from ..storage import HDFSStorage
from .builder import EnvironmentBuilder
from .request import (
    DEFAULT_LIMITS,
    NAME,
    FieldError,
    RequestRules,
    kernel_name_for,
    leaf_queues,
    parse_display_name,
    parse_request,
    parse_resources,
    valid_owner,
)
from .store import EnvironmentStore, Key


class EnvironmentService(LoggingConfigurable):
    """Validates, builds, publishes and removes users' environments."""

    builds_dir = Unicode("yardlab-envs", help="Folder for build work, logs and the pip/conda caches.").tag(config=True)
    hdfs_dir = Unicode("/yardlab/envs", help="HDFS folder of the packed environments.").tag(config=True)
    archive_uri_prefix = Unicode(
        "hdfs://", help="Prefix of the archive URI Spark is given (hdfs:// uses the cluster's default FS).",
    ).tag(config=True)
    python = Unicode(help="Interpreter the environments are created from (the cluster nodes must have it "
                          "at the same path). Default: the edge's own.").tag(config=True)

    @default("python")
    def _python_default(self) -> str:
        return sys.executable

    uv = Unicode(help="The uv executable. Default: the one installed with the edge.").tag(config=True)

    @default("uv")
    def _uv_default(self) -> str:
        try:
            return find_uv_bin()
        except FileNotFoundError:  # the uv wheel without its binary: the one on PATH
            return shutil.which("uv") or "uv"

    index_url = Unicode("", help="Package index for pip requirements (empty: uv's default, PyPI).").tag(config=True)
    launcher_requirements = List(
        Unicode(), ["ipykernel>=6.29", "jupyter_client>=8", "pycryptodomex>=3.20"],
        help="What every environment gets so yardlab's kernel launcher runs in it.",
    ).tag(config=True)
    base_packages = List(
        Unicode(), ["numpy", "pandas", "pyarrow", "matplotlib", "hdfs"],
        help="The base set the built-in kernels and every environment carry (PEP 508 requirements; an "
             "environment's own requirement of the same package replaces the base's). hdfs is the client "
             "the kernels' HdfsCLI config is written for.",
    ).tag(config=True)
    base_environment = Unicode(
        "base", help="Name of the predefined environment that holds the base set and whose archive the built-in "
                     "kernelspecs run on. Empty: the built-in kernels run on KernelSite.python.",
    ).tag(config=True)
    build_from_source = List(
        Unicode(), ["hdfs", "docopt"],
        help="Packages built from their source distributions (their build code runs on the edge): pure-Python "
             "ones of the base set that PyPI has no wheel of. Everything else must come as a wheel.",
    ).tag(config=True)
    compress_level = IntegerT(
        1, min=0, max=9,
        help="gzip level of the packed archives; 0 packs a plain .tar (no compression work on the edge, about "
             "3x the bytes for HDFS and for each NodeManager to copy once).",
    ).tag(config=True)
    pack_exclude = List(
        Unicode(), ["*/site-packages/*/tests/*", "*/site-packages/jedi/third_party/typeshed/stubs/*"],
        help="Paths (fnmatch patterns, relative to the environment) left out of the archives: packages' own test "
             "suites and jedi's stubs of third-party packages, a third of the base's ~20,000 files. Each file "
             "costs the NodeManager a chmod when it unpacks the archive (a process each where Hadoop's native "
             "library is missing).",
    ).tag(config=True)
    conda_channels = List(
        Unicode(), [],
        help="Conda channels (URLs or names) conda specs are solved against; empty: conda packages are refused.",
    ).tag(config=True)
    conda_platforms = List(Unicode(), ["linux-64", "noarch"], help="Conda subdirs to solve for.").tag(config=True)
    mvn = Unicode(help="The Maven executable that resolves JVM packages. Default: mvn on PATH.").tag(config=True)

    @default("mvn")
    def _mvn_default(self) -> str:
        return shutil.which("mvn") or "mvn"

    maven_repositories = List(
        Unicode(), ["https://repo.maven.apache.org/maven2"],
        help="Maven repositories JVM packages (packages.maven) are resolved from, in order; Maven asks no "
             "other (the first one stands in for every repository a POM names, Maven Central included). "
             "Repositories that need credentials are not supported yet.",
    ).tag(config=True)
    maven_provided_groups = List(
        Unicode(), ["org.scala-lang", "org.apache.hadoop"],
        help="Maven groups never shipped with an environment: Spark's class path has them (besides every "
             "artifact a jar in $SPARK_HOME/jars is named after, which is left out too).",
    ).tag(config=True)
    kernel_site = Dict(help="yardlab.edge.kernelspecs.KernelSite fields for the kernelspecs written.").tag(config=True)
    max_concurrent_builds = IntegerT(1, help="Builds that run at once (the rest wait in the queue).").tag(config=True)
    build_timeout = FloatT(1800.0, help="Seconds one build may take.").tag(config=True)
    max_environment_mb = IntegerT(
        6144, min=1,
        help="The most an environment may take installed, in MB (the base set is ~400 MB; PyTorch with CUDA "
             "alone ~5 GB). A build over it fails before it is packed, so a request for every framework at "
             "once cannot fill the edge's disk, HDFS and each NodeManager's cache.",
    ).tag(config=True)
    resolution_ttl = FloatT(
        3600.0, help="Seconds an identical request reuses an earlier resolution (and its archive).").tag(config=True)
    max_environments_per_user = IntegerT(20, help="Environments one user may own.").tag(config=True)
    max_packages = IntegerT(
        50, help="Pip requirements (and, separately, conda specs and Maven coordinates) per environment.",
    ).tag(config=True)
    max_spec_length = IntegerT(200, help="Longest requirement or match spec, in characters.").tag(config=True)
    limits = Dict(
        DEFAULT_LIMITS, help="Largest resources an environment may ask for (memory in MB); keys left out keep "
                             "their defaults.",
    ).tag(config=True)
    defaults = Dict(
        {"driver_memory_mb": 1024, "driver_cores": 1, "executor_memory_mb": 1024, "executor_cores": 1,
         "executor_instances": 1, "dynamic_allocation": None, "queue": "default"},
        help="Resources of an environment that does not say.",
    ).tag(config=True)
    allowed_queues = Dict(
        {}, help="Queues a hub group may use: {group: [queue, ...]}; '*' applies to everyone. Empty: any leaf "
                 "queue of the cluster.",
    ).tag(config=True)
    predefined = List(
        Dict(), [],
        help="Shared environments the edge makes sure exist (owner 'yardlab'): dicts like a POST body.",
    ).tag(config=True)
    heartbeat = FloatT(15.0, help="Seconds between keep-alive comments on an idle event stream.").tag(config=True)
    predefined_owner = Unicode("yardlab", help="Owner shown for the predefined environments.").tag(config=True)

    def __init__(self, ledger: KernelLedger, storage: HDFSStorage, snapshot: AppSnapshot, audit: AuditLog,
                 kernels_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger
        self.storage = storage
        self.snapshot = snapshot
        self.audit = audit
        self.kernels_dir = Path(kernels_dir) if kernels_dir else None
        self.root = Path(self.builds_dir).absolute()
        self.store = EnvironmentStore(ledger.engine, self.root / "logs")
        self.builder = EnvironmentBuilder(self, self.store, storage, ledger)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.kernels_dir and self.kernel_site)

    async def start(self) -> None:
        """Start building (interrupted builds first), then make sure the base and the predefined environments
        exist (the base first: the others resolve to supersets of it)."""
        if not self.enabled:
            return
        await self.builder.start()
        await self._ensure_base()
        await self._ensure_predefined()

    def is_base(self, env: dict) -> bool:
        """Whether ``env`` is the base: by its key and its being shared (a personal environment that somehow
        holds the key, its owner named like the predefined owner, never puts everyone's kernels on its archive)."""
        return (bool(self.base_environment) and env.get("visibility") == "shared"
                and (env["owner"], env["name"]) == (self.predefined_owner, self.base_environment))

    async def _ensure_base(self) -> None:
        """Queue the base's first build, or put the built-in kernelspecs back on its archive (a restart: the
        launcher may have written them afresh), or build it again when it failed or its archive has gone."""
        if not self.base_environment:
            return
        owner = Identity(name=self.predefined_owner, admin=True)
        key = (owner.name, self.base_environment)
        env = self.store.get(*key)
        if env is None:
            body = {"name": self.base_environment, "kind": "pyspark", "visibility": "shared",
                    "display_name": f"Base of the built-in kernels ({', '.join(self.base_packages)})"}
            try:
                await self.create(owner, body)
            except PublicError as e:
                self.log.error("the base environment cannot be made: %s", e)
            return
        if not self.is_base(env):
            self.log.error("%s/%s is a personal environment, not the base: the built-in kernels stay on the "
                           "site's Python", *key)
            return
        if env["status"] == "ready" and env.get("archive"):
            try:
                exists = await self.builder.archive_exists(env["archive"])
            except Exception as e:  # noqa: BLE001 - HDFS down at this start: assume it is still there
                self.log.warning("could not check the base archive: %s", e)
                exists = True
            if exists:
                await self.builder.write_kernelspec(env)
                return
            why = f"archive {env['archive']} is gone from HDFS"
        elif env["status"] == "failed":
            why = "failed before"
        else:
            return  # queued or building: the builder has it
        self.store.update(key, status="queued", phase="queued", progress=0, error=None)
        self.store.sink(key).line(f"--- {why}: building again at this start ---")
        self.builder.enqueue(key, fresh=True)

    async def stop(self) -> None:
        await self.builder.stop()
        self.store.close_all()

    async def _ensure_predefined(self) -> None:
        owner = Identity(name=self.predefined_owner, admin=True)
        for body in self.predefined:
            name = body.get("name", "")
            existing = self.store.get(owner.name, name)
            if existing is not None:
                if existing["status"] == "failed":  # e.g. the index was unreachable at the first start
                    key = (owner.name, name)
                    self.store.update(key, status="queued", phase="queued", progress=0, error=None)
                    self.store.sink(key).line("--- failed before: building again at this start ---")
                    self.builder.enqueue(key)
                continue
            try:
                await self.create(owner, {**body, "visibility": "shared"})
            except PublicError as e:
                self.log.error("predefined environment %s is invalid: %s", name, e)

    def rules(self) -> RequestRules:
        """What requests are checked against: the settings and the cluster's queues, as they are now."""
        return RequestRules(defaults=self.defaults, limits=self.limits, max_packages=self.max_packages,
                            max_spec_length=self.max_spec_length, conda_channels=list(self.conda_channels),
                            allowed_queues=self.allowed_queues, known_queues=leaf_queues(self.snapshot.cluster))

    # -- who may see and change what -----------------------------------------------------------------
    def visible(self, who: Identity, env: dict) -> bool:
        return env["owner"] == who.name or env["visibility"] == "shared" or who.admin

    def _may_edit(self, who: Identity, env: dict, what: str = "change") -> None:
        if self.is_base(env) and what != "rebuild":
            raise PublicError(409, f"{env['owner']}/{env['name']} is the base the built-in kernels run on: it can "
                                   "be rebuilt (newer packages), not changed or deleted; set EnvironmentService."
                                   "base_packages to change it")
        if env["owner"] == self.predefined_owner and env["visibility"] == "shared":
            if who.admin:  # the shipped ones: not a user who happens to be called like their owner
                return
        elif env["owner"] == who.name or (who.admin and env["visibility"] == "shared"):
            return
        raise PublicError(403, f"only {env['owner']} (or an admin, for shared ones) may change {env['owner']}/"
                               f"{env['name']}")

    def _view(self, who: Identity, env: dict) -> dict:
        sha = env.pop("archive", None)
        env["archive"] = self.builder.archive_uri(sha) if sha else None
        env["jars"] = [{**j, "uri": self.builder.jar_uri(j["sha256"])} for j in env.get("jars") or []]
        try:
            self._may_edit(who, env)
            env["can_edit"] = True
        except PublicError:
            env["can_edit"] = False
        return env

    # -- API -----------------------------------------------------------------------------------------
    def _require_enabled(self) -> None:
        if not self.enabled:
            raise PublicError(503, "environments are not configured on this edge (EnvironmentService.kernel_site)")

    def list(self, who: Identity, everyone: bool = False) -> list[dict]:
        if everyone and not who.admin:
            raise PublicError(403, "only yardlab admins may list every user's environments")
        return [self._view(who, env) for env in self.store.list(None if everyone else who.name)]

    def find(self, who: Identity, owner: str, name: str) -> dict:
        if not valid_owner(owner or "") or not NAME.fullmatch(name or ""):
            raise PublicError(404, "no such environment")
        env = self.store.get(owner, name)
        if env is None or not self.visible(who, env):
            raise PublicError(404, f"no environment {owner}/{name}")
        return env

    def show(self, who: Identity, owner: str, name: str) -> dict:
        env = self._view(who, self.find(who, owner, name))
        env["log_tail"] = self.store.log_tail((owner, name), 50)
        return env

    def read_log(self, who: Identity, owner: str, name: str) -> Path | None:
        self.find(who, owner, name)
        path = self.store.log_path((owner, name))
        return path if path.exists() else None

    async def create(self, who: Identity, body: Any) -> dict:
        self._require_enabled()
        req = parse_request(who, body, self.rules())
        key = (who.name, req["name"])
        self.store.add(who.name, req, kernel_name_for(*key), self.max_environments_per_user)
        self.store.forget_log(key)
        self.audit.record("environment.create", who.name, "queued", environment=f"{key[0]}/{key[1]}",
                          packages=req["packages"], resources=req["resources"])
        self.store.sink(key).line(f"queued by {who.name}: {req['kind']}, pip {req['packages']['pip'] or '-'}, "
                                  f"conda {req['packages']['conda'] or '-'}, maven {req['packages']['maven'] or '-'}")
        self.builder.enqueue(key)
        return self._view(who, self.store.get(*key) or {})

    async def update(self, who: Identity, owner: str, name: str, body: Any) -> dict:
        env = self.find(who, owner, name)
        self._may_edit(who, env)
        if not isinstance(body, dict) or not body or set(body) - {"display_name", "resources"}:
            raise FieldError(None, 'PATCH takes {"display_name": ..., "resources": {...}}; packages need a new '
                                   "environment")
        fields: dict[str, Any] = {}
        if "display_name" in body:
            fields["display_name"] = parse_display_name(body["display_name"])
        if "resources" in body:
            fields["resources"] = parse_resources(who, body["resources"], self.rules(), base=env["resources"])
        data = self.store.update((owner, name), **fields)
        assert data is not None
        if data["status"] == "ready":
            await self.builder.write_kernelspec(data)
        self.audit.record("environment.update", who.name, "done", environment=f"{owner}/{name}", changes=body)
        return self._view(who, data)

    async def rebuild(self, who: Identity, owner: str, name: str) -> dict:
        """Resolve and build a failed or ready environment again (newer packages for unpinned specs)."""
        env = self.find(who, owner, name)
        self._may_edit(who, env, "rebuild")
        key = (owner, name)
        if env["status"] in ("queued", "building") or key in self.builder.running:
            raise PublicError(409, f"{owner}/{name} is being built already")
        self.store.forget_log(key)
        data = self.store.update(key, status="queued", phase="queued", progress=0, error=None)
        assert data is not None
        self.store.sink(key).line(f"rebuild asked by {who.name}")
        self.audit.record("environment.rebuild", who.name, "queued", environment=f"{owner}/{name}")
        self.builder.enqueue(key, fresh=True)
        return self._view(who, data)

    async def delete(self, who: Identity, owner: str, name: str) -> None:
        env = self.find(who, owner, name)
        self._may_edit(who, env)
        key = (owner, name)
        await self.builder.cancel(key)
        await self.builder.remove_kernelspec(self.store.delete(key))
        self.store.close_sink(key)
        self.store.forget_log(key)
        self.store.emit(key, "deleted", {})
        if env.get("archive"):
            await self.builder.remove_archive_if_unused(env["archive"], f"{owner}/{name}")
        if env.get("jars"):
            await self.builder.remove_jars_if_unused(env["jars"], f"{owner}/{name}")
        self.audit.record("environment.delete", who.name, "done", environment=f"{owner}/{name}")

    async def events(self, who: Identity, owner: str, name: str) -> AsyncIterator[tuple[str, dict]]:
        """Progress and log events of one environment until its build ends (or it is deleted)."""
        env = self.find(who, owner, name)
        key: Key = (owner, name)
        q: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        cb = lambda ev, data: q.put_nowait((ev, data))  # noqa: E731
        self.store.listen(key, cb)
        try:
            yield "progress", {k: env[k] for k in ("status", "phase", "progress", "error")}
            for line in self.store.log_tail(key, 200):
                yield "log", {"line": line}
            while env["status"] in ("queued", "building"):
                try:
                    ev, data = await asyncio.wait_for(q.get(), self.heartbeat)
                except asyncio.TimeoutError:
                    yield "ping", {}  # a gone client shows up on this write, and its listener goes
                    continue
                if ev == "deleted":
                    yield "deleted", {}
                    return
                yield ev, data
                if ev == "progress":
                    env.update(data)
            final = self.store.get(*key)
            if final is not None:
                yield "done", self._view(who, final)
        finally:
            self.store.unlisten(key, cb)
