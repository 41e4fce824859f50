"""User environments: Spark resources and extra packages, built once, packed, and shipped to YARN.

An environment is a request (kind, Spark resources, pip requirements, conda match specs) that the
edge validates, builds and publishes as an Enterprise Gateway kernelspec:

1. **resolving**: ``uv pip compile`` pins the pip requirements (plus what the kernel launcher
   needs); py-rattler solves the conda specs against the configured channels.  The pinned set
   names the archive: ``sha256`` of the resolved environment.
2. **installing**: ``uv venv`` + ``uv pip sync`` of the pinned set; py-rattler installs the conda
   records into the same prefix.
3. **packing**: venv-pack turns the prefix into a relocatable ``.tar.gz``.
4. **uploading**: the archive goes to HDFS once, as ``/yardlab/envs/<sha256>.tar.gz`` (0644, so
   every NodeManager may cache it as a PUBLIC resource), via a temporary name and a rename.
5. **kernelspec**: written atomically; ``spark.yarn.dist.archives`` ships the archive as ``env``,
   ``PYSPARK_PYTHON=./env/bin/python`` on the driver and executors, the chosen resources and queue.

An archive that already exists for the same resolved set is reused (no install, no pack, no
upload), and a request identical to one resolved recently reuses that resolution too, so a second
build of the same spec takes well under a second.  Builds run in a queue with bounded concurrency;
a build interrupted by an edge restart is started again, and its leftovers (work folders,
temporary HDFS files) are removed first.  Nothing is written anywhere for a refused request.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from traitlets import Dict, List, Unicode, default
from traitlets import Float as FloatT
from traitlets import Integer as IntegerT
from traitlets.config import LoggingConfigurable

from ..audit import AuditLog
from ..auth import Identity
from ..clock import now
from ..errors import PublicError
from ..kernelspecs import KernelSite, KernelSpecRequest, write_kernelspec
from ..ledger import Base, KernelLedger
from ..snapshot import AppSnapshot
from ..storage import HDFSStorage

NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")  # always used with fullmatch
QUEUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
#: pip "requirements" that are really local archives (uv would look for them in its working folder)
LOCAL_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|tar\.xz|zip|egg)\s*$", re.IGNORECASE)
#: credentials in URLs (user:password@, conda's /t/<token>/), never shown in logs or messages
SECRET_IN_URL = re.compile(r"(://)[^/@\s]+@|(/t/)[^/\s]+")
#: what build commands inherit from the edge's environment (nothing else: no tokens, no config paths)
BUILD_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: bumped whenever the way an archive is built changes, so old archives are not reused
BUILDER_VERSION = "1"
#: phase -> percent done when the phase starts
PHASES = {"queued": 0, "resolving": 5, "installing": 20, "packing": 55, "uploading": 80, "kernelspec": 95,
          "ready": 100}
DEFAULT_LIMITS = {"driver_memory_mb": 4096, "driver_cores": 2, "executor_memory_mb": 4096, "executor_cores": 2,
                  "executor_instances": 4, "max_executors": 8}
RESOURCE_KEYS = ("driver_memory_mb", "driver_cores", "executor_memory_mb", "executor_cores",
                 "executor_instances", "dynamic_allocation", "queue")


class FieldError(PublicError):
    """A refused request field: the message and the field it concerns (for forms)."""

    def __init__(self, field: str | None, message: str, status: int = 400) -> None:
        super().__init__(status, message)
        self.field = field


class BuildError(Exception):
    """A build step failed; the message is shown to the environment's owner."""


class EnvironmentRecord(Base):
    """One environment: the request, its build state and what it produced."""

    __tablename__ = "environments"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    resources: Mapped[str] = mapped_column(Text)  # JSON
    packages: Mapped[str] = mapped_column(Text)  # JSON
    visibility: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    kernel_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    archive: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 of the resolved set
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    build_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class ResolutionRecord(Base):
    """A request's resolution: identical requests within the TTL reuse it (and its archive)."""

    __tablename__ = "env_resolutions"

    request_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    archive: Mapped[str] = mapped_column(String(64), index=True)
    resolved: Mapped[float] = mapped_column(Float)


def redact(text: str) -> str:
    """``text`` with credentials in URLs replaced by ***."""
    return SECRET_IN_URL.sub(lambda m: (m.group(1) or m.group(2)) + "***" + ("@" if m.group(1) else ""), text)


def valid_owner(owner: str) -> bool:
    """Any hub user name that can stand in a URL path segment."""
    return 0 < len(owner) <= 128 and not CONTROL.search(owner) and "/" not in owner


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def kernel_name_for(owner: str, name: str) -> str:
    """The kernelspec name ``yl-<owner>.<name>``: readable, and never the same for two environments.

    Environment names hold no '.', so the last '.' separates the name; an owner name outside
    [a-z0-9-] is cleaned and followed by a '.' and a hash of the real name (a clean owner name has no
    '.', so the two forms cannot meet).
    """
    if re.fullmatch(r"[a-z0-9-]{1,60}", owner):
        return f"yl-{owner}.{name}"
    safe = re.sub(r"[^a-z0-9-]", "-", owner.lower())[:40]
    return f"yl-{safe}.{hashlib.sha256(owner.encode()).hexdigest()[:12]}.{name}"


class LogSink:
    """A build's log: appended to a file and fanned out to live listeners."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.listeners: set[Callable[[str, dict], None]] = set()

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        self._file.write(text + "\n")
        self._file.flush()
        for cb in list(self.listeners):
            cb("log", {"line": text})

    def close(self) -> None:
        self._file.close()


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
            from uv import find_uv_bin

            return find_uv_bin()
        except (ImportError, FileNotFoundError):
            return shutil.which("uv") or "uv"

    index_url = Unicode("", help="Package index for pip requirements (empty: uv's default, PyPI).").tag(config=True)
    launcher_requirements = List(
        Unicode(), ["ipykernel>=6.29", "jupyter_client>=8", "pycryptodomex>=3.20"],
        help="What every environment gets so yardlab's kernel launcher runs in it.",
    ).tag(config=True)
    conda_channels = List(
        Unicode(), [],
        help="Conda channels (URLs or names) conda specs are solved against; empty: conda packages are refused.",
    ).tag(config=True)
    conda_platforms = List(Unicode(), ["linux-64", "noarch"], help="Conda subdirs to solve for.").tag(config=True)
    kernel_site = Dict(help="yardlab.edge.kernelspecs.KernelSite fields for the kernelspecs written.").tag(config=True)
    max_concurrent_builds = IntegerT(1, help="Builds that run at once (the rest wait in the queue).").tag(config=True)
    build_timeout = FloatT(1800.0, help="Seconds one build may take.").tag(config=True)
    resolution_ttl = FloatT(
        3600.0, help="Seconds an identical request reuses an earlier resolution (and its archive).").tag(config=True)
    max_environments_per_user = IntegerT(20, help="Environments one user may own.").tag(config=True)
    max_packages = IntegerT(50, help="Pip requirements (and, separately, conda specs) per environment.").tag(config=True)
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
        self.engine = ledger.engine
        Base.metadata.create_all(self.engine)
        self.storage = storage
        self.snapshot = snapshot
        self.audit = audit
        self.kernels_dir = Path(kernels_dir) if kernels_dir else None
        self.root = Path(self.builds_dir).absolute()
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.pending: set[tuple[str, str]] = set()  # keys in the queue (each at most once)
        self.fresh: set[tuple[str, str]] = set()  # rebuilds: resolve again, whatever was resolved before
        self._archive_locks: dict[str, asyncio.Lock] = {}
        self.workers: list[asyncio.Task] = []
        self.running: dict[tuple[str, str], asyncio.Task] = {}
        self.sinks: dict[tuple[str, str], LogSink] = {}
        self.listeners: dict[tuple[str, str], set[Callable[[str, dict], None]]] = {}
        self._site: KernelSite | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.kernels_dir and self.kernel_site)

    @property
    def site(self) -> KernelSite:
        if self._site is None:
            self._site = KernelSite(**self.kernel_site)
        return self._site

    async def start(self) -> None:
        """Clean leftovers of an interrupted run, queue its unfinished builds again, start the workers."""
        if not self.enabled:
            return
        shutil.rmtree(self.root / "work", ignore_errors=True)
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        await self._remove_hdfs_temporaries()
        with Session(self.engine) as s, s.begin():
            unfinished = list(s.scalars(select(EnvironmentRecord).where(
                EnvironmentRecord.status.in_(("queued", "building")))))
            for rec in unfinished:
                rec.status, rec.phase, rec.progress, rec.updated = "queued", "queued", 0, now()
            keys = [(r.owner, r.name) for r in unfinished]
        for key in keys:
            self.log.info("environment %s/%s: build interrupted by a restart, queued again", *key)
            self._sink(key).line("--- the edge restarted during this build; building again ---")
            self._enqueue(key)
        self.workers = [asyncio.create_task(self._worker()) for _ in range(max(1, self.max_concurrent_builds))]
        await self._ensure_predefined()

    async def stop(self) -> None:
        for task in [*self.workers, *self.running.values()]:
            task.cancel()
        await asyncio.gather(*self.workers, *self.running.values(), return_exceptions=True)
        for sink in self.sinks.values():
            sink.close()
        self.sinks.clear()

    def _enqueue(self, key: tuple[str, str]) -> None:
        if key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    def _archive_lock(self, sha: str) -> asyncio.Lock:
        """Held while an archive is claimed and checked by a build, or checked and removed by a delete."""
        return self._archive_locks.setdefault(sha, asyncio.Lock())

    async def _remove_hdfs_temporaries(self) -> None:
        try:
            names = await self.storage.call(None, self.hdfs_dir, "list", self.hdfs_dir)
        except PublicError:
            return  # no folder yet, or HDFS down: nothing of ours to clean
        for name in names:
            if name.startswith("."):
                path = f"{self.hdfs_dir}/{name}"
                self.log.info("removing the unfinished upload %s", path)
                try:
                    await self.storage.call(None, path, "delete", path)
                except PublicError as e:
                    self.log.warning("could not remove %s: %s", path, e)

    async def _ensure_predefined(self) -> None:
        owner = Identity(name=self.predefined_owner, admin=True)
        for body in self.predefined:
            name = body.get("name", "")
            existing = self.get_record(owner.name, name)
            if existing is not None:
                if existing["status"] == "failed":  # e.g. the index was unreachable at the first start
                    self._update((owner.name, name), status="queued", phase="queued", progress=0, error=None)
                    self._sink((owner.name, name)).line("--- failed before: building again at this start ---")
                    self._enqueue((owner.name, name))
                continue
            try:
                await self.create(owner, {**body, "visibility": "shared"})
            except PublicError as e:
                self.log.error("predefined environment %s is invalid: %s", name, e)

    # -- validation ----------------------------------------------------------------------------------
    def _known_queues(self) -> set[str]:
        queues = (self.snapshot.cluster or {}).get("queues") or []
        return {q["name"] for q in queues if q.get("leaf")} | {q["path"] for q in queues if q.get("leaf")}

    def _queues_for(self, who: Identity) -> set[str] | None:
        """Queues the caller may use (None: any queue of the cluster)."""
        if not self.allowed_queues:
            return None
        allowed: set[str] = set(self.allowed_queues.get("*", []))
        for group in who.groups:
            allowed |= set(self.allowed_queues.get(group, []))
        return allowed

    def parse_resources(self, who: Identity, raw: Any, base: dict | None = None) -> dict:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise FieldError("resources", "resources must be an object of settings")
        unknown = set(raw) - set(RESOURCE_KEYS)
        if unknown:
            raise FieldError(f"resources.{sorted(unknown)[0][:40]}",
                             f"unknown resource setting {sorted(unknown)[0][:40]!r}; use {', '.join(RESOURCE_KEYS)}")
        res = {**self.defaults, **(base or {}), **raw}
        lim = {**DEFAULT_LIMITS, **self.limits}

        def number(key: str, low: int, high: int, unit: str = "") -> int:
            value = res.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise FieldError(f"resources.{key}", f"{key} must be a whole number")
            if not low <= value <= high:
                raise FieldError(f"resources.{key}", f"{key} must be between {low} and {high}{unit} on this site")
            return value

        out: dict[str, Any] = {
            "driver_memory_mb": number("driver_memory_mb", 512, int(lim["driver_memory_mb"]), " MB"),
            "driver_cores": number("driver_cores", 1, int(lim["driver_cores"])),
            "executor_memory_mb": number("executor_memory_mb", 512, int(lim["executor_memory_mb"]), " MB"),
            "executor_cores": number("executor_cores", 1, int(lim["executor_cores"])),
            "executor_instances": number("executor_instances", 0, int(lim["executor_instances"])),
            "dynamic_allocation": None,
        }
        dyn = res.get("dynamic_allocation")
        if dyn is not None:
            if not isinstance(dyn, dict) or set(dyn) - {"min", "max"}:
                raise FieldError("resources.dynamic_allocation",
                                 'dynamic_allocation must be null or {"min": n, "max": m}')
            lo, hi = dyn.get("min", 0), dyn.get("max")
            top = int(lim["max_executors"])
            if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)) or not 0 <= lo <= hi <= top:
                raise FieldError("resources.dynamic_allocation",
                                 f"dynamic allocation needs whole numbers 0 <= min <= max <= {top}")
            out["dynamic_allocation"] = {"min": lo, "max": hi}
        queue = res.get("queue")
        if not isinstance(queue, str) or not QUEUE.fullmatch(queue):
            raise FieldError("resources.queue", "queue must be a queue name such as default")
        known = self._known_queues()
        if known and queue not in known:
            raise FieldError("resources.queue", f"there is no queue {queue!r} on this cluster; "
                                                f"queues: {', '.join(sorted(q for q in known if '.' not in q))}")
        allowed = self._queues_for(who)
        if allowed is not None and queue not in allowed and not who.admin:
            raise FieldError("resources.queue", f"you may not use queue {queue!r}; yours: "
                                                f"{', '.join(sorted(allowed)) or 'none'}", status=403)
        out["queue"] = queue
        return out

    def parse_pip(self, raw: Any) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise FieldError("packages.pip", "pip packages must be a list of requirement strings")
        if len(raw) > self.max_packages:
            raise FieldError("packages.pip", f"at most {self.max_packages} pip requirements per environment")
        out: list[str] = []
        seen: set[str] = set()
        for i, spec in enumerate(raw):
            field = f"packages.pip[{i}]"
            if not isinstance(spec, str) or not spec.strip():
                raise FieldError(field, "a pip requirement must be a non-empty string")
            spec = spec.strip()
            shown = spec[:60] + ("…" if len(spec) > 60 else "")
            if len(spec) > self.max_spec_length:
                raise FieldError(field, f"{shown!r} is longer than {self.max_spec_length} characters")
            if CONTROL.search(spec):
                raise FieldError(field, f"{shown!r} contains a control character or a line break")
            if spec.startswith("-"):
                raise FieldError(field, f"{shown!r}: pip options (-r, -c, -e, --index-url, ...) are not allowed; "
                                        "give one requirement such as pandas==2.2.3")
            if re.match(r"^(\.{1,2}[/\\]|[/\\~]|[A-Za-z][A-Za-z0-9+.-]*://|git\+)", spec):
                raise FieldError(field, f"{shown!r}: URLs, VCS links and local paths are not allowed; "
                                        "name a package from the index")
            if LOCAL_ARCHIVE.search(spec):
                raise FieldError(field, f"{shown!r}: URLs, VCS links and local paths are not allowed; "
                                        "name a package from the index")
            try:
                req = Requirement(spec)
            except InvalidRequirement as e:
                first = str(e).splitlines()[0][:160]
                raise FieldError(field, f"{shown!r} is not a PEP 508 requirement: {first}") from e
            if req.url:
                raise FieldError(field, f"{shown!r}: URLs, VCS links and local paths are not allowed; "
                                        "name a package from the index")
            key = canonicalize_name(req.name)
            if key in seen:
                raise FieldError(field, f"{req.name} is listed twice")
            seen.add(key)
            out.append(str(req))
        return out

    def parse_conda(self, raw: Any) -> list[str]:
        if raw is None or raw == []:
            return []
        if not isinstance(raw, list):
            raise FieldError("packages.conda", "conda packages must be a list of match specs")
        if not self.conda_channels:
            raise FieldError("packages.conda", "this site has no conda channels configured; use pip packages")
        if len(raw) > self.max_packages:
            raise FieldError("packages.conda", f"at most {self.max_packages} conda specs per environment")
        from rattler import Channel, MatchSpec

        allowed = {Channel(c).base_url for c in self.conda_channels}
        shown_channels = ", ".join(redact(c) for c in self.conda_channels)
        out: list[str] = []
        seen: set[str] = set()
        for i, spec in enumerate(raw):
            field = f"packages.conda[{i}]"
            if not isinstance(spec, str) or not spec.strip():
                raise FieldError(field, "a conda spec must be a non-empty string")
            spec = spec.strip()
            shown = spec[:60] + ("…" if len(spec) > 60 else "")
            if len(spec) > self.max_spec_length:
                raise FieldError(field, f"{shown!r} is longer than {self.max_spec_length} characters")
            if CONTROL.search(spec) or spec.startswith("-"):
                raise FieldError(field, f"{shown!r} is not a conda match spec")
            _channel, _sep, rest = spec.rpartition("::")
            if re.match(r"^(\.{1,2}[/\\]|[/\\~]|[A-Za-z][A-Za-z0-9+.-]*://)", rest):
                raise FieldError(field, f"{shown!r}: URLs and local paths are not allowed; name a package")
            try:
                ms = MatchSpec(spec)
            except Exception as e:  # noqa: BLE001 - rattler's own error types
                first = str(e).splitlines()[0][:160]
                raise FieldError(field, f"{shown!r} is not a conda match spec: {first}") from e
            if ms.channel is not None and ms.channel.base_url not in allowed:
                raise FieldError(field, f"{redact(shown)!r}: channel {redact(ms.channel.base_url)[:80]!r} is not "
                                        f"one of this site's channels ({shown_channels})")
            if "/" in rest or "\\" in rest or ("://" in spec and not _sep):
                raise FieldError(field, f"{shown!r}: URLs and local paths are not allowed; name a package")
            name = getattr(ms.name, "normalized", None) or str(ms.name)
            if name in seen:
                raise FieldError(field, f"{name} is listed twice")
            seen.add(name)
            out.append(spec)
        return out

    def parse_request(self, who: Identity, body: Any) -> dict:
        """A POST body, checked field by field; FieldError for the first problem."""
        if not isinstance(body, dict):
            raise FieldError(None, "the body must be a JSON object describing the environment")
        unknown = set(body) - {"name", "display_name", "kind", "resources", "packages", "visibility"}
        if unknown:
            key = sorted(unknown)[0][:40]
            raise FieldError(key, f"unknown field {key!r}")
        name = body.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise FieldError("name", "name must start with a lower-case letter and hold only a-z, 0-9 and '-', "
                                     "at most 40 characters (like spark-pandas)")
        display = body.get("display_name") or name
        display = self._display_name(display)
        kind = body.get("kind", "pyspark")
        if kind not in ("pyspark", "python"):
            raise FieldError("kind", "kind must be pyspark or python")
        visibility = body.get("visibility", "personal")
        if visibility not in ("personal", "shared"):
            raise FieldError("visibility", "visibility must be personal or shared")
        if visibility == "shared" and not who.admin:
            raise FieldError("visibility", "only yardlab admins may create shared environments", status=403)
        packages = body.get("packages") or {}
        if not isinstance(packages, dict) or set(packages) - {"pip", "conda"}:
            raise FieldError("packages", 'packages must be {"pip": [...], "conda": [...]}')
        return {
            "name": name, "display_name": display, "kind": kind, "visibility": visibility,
            "resources": self.parse_resources(who, body.get("resources")),
            "packages": {"pip": self.parse_pip(packages.get("pip")), "conda": self.parse_conda(packages.get("conda"))},
        }

    @staticmethod
    def _display_name(value: Any) -> str:
        if (not isinstance(value, str) or not value.strip() or len(value) > 100 or CONTROL.search(value)
                or any("\ud800" <= ch <= "\udfff" for ch in value)):
            raise FieldError("display_name", "display_name must be text of 1 to 100 characters")
        return value.strip()

    # -- records -------------------------------------------------------------------------------------
    def get_record(self, owner: str, name: str) -> dict | None:
        with Session(self.engine) as s:
            rec = s.get(EnvironmentRecord, (owner, name))
            return self._json(rec) if rec else None

    @staticmethod
    def _json(rec: EnvironmentRecord) -> dict:
        return {
            "owner": rec.owner, "name": rec.name, "display_name": rec.display_name, "kind": rec.kind,
            "resources": json.loads(rec.resources), "packages": json.loads(rec.packages),
            "visibility": rec.visibility, "status": rec.status, "phase": rec.phase, "progress": rec.progress,
            "error": rec.error, "kernel_name": rec.kernel_name if rec.status == "ready" else None,
            "archive": rec.archive, "created": _iso(rec.created), "updated": _iso(rec.updated),
            "build_seconds": rec.build_seconds,
        }

    def _view(self, who: Identity, env: dict) -> dict:
        sha = env.pop("archive", None)
        env["archive"] = f"{self.archive_uri_prefix}{self.hdfs_dir}/{sha}.tar.gz" if sha else None
        try:
            self._may_edit(who, env)
            env["can_edit"] = True
        except PublicError:
            env["can_edit"] = False
        return env

    def _update(self, key: tuple[str, str], **fields: Any) -> dict | None:
        with Session(self.engine) as s, s.begin():
            rec = s.get(EnvironmentRecord, key)
            if rec is None:
                return None
            for k, v in fields.items():
                setattr(rec, k, v)
            rec.updated = now()
            data = self._json(rec)
        if {"status", "phase", "progress", "error"} & set(fields):
            self._emit(key, "progress", {k: data[k] for k in ("status", "phase", "progress", "error")})
        return data

    def _emit(self, key: tuple[str, str], event: str, data: dict) -> None:
        for cb in list(self.listeners.get(key, ())):
            cb(event, data)

    def _sink(self, key: tuple[str, str]) -> LogSink:
        if key not in self.sinks:
            sink = LogSink(self.log_path(key))
            sink.listeners.add(lambda ev, data, key=key: self._emit(key, ev, data))
            self.sinks[key] = sink
        return self.sinks[key]

    def log_path(self, key: tuple[str, str]) -> Path:
        owner_dir = hashlib.sha256(key[0].encode()).hexdigest()[:16] + "-" + re.sub(r"[^A-Za-z0-9]", "_", key[0])[:40]
        return self.root / "logs" / owner_dir / f"{key[1]}.log"

    def visible(self, who: Identity, env: dict) -> bool:
        return env["owner"] == who.name or env["visibility"] == "shared" or who.admin

    # -- API -----------------------------------------------------------------------------------------
    def _require_enabled(self) -> None:
        if not self.enabled:
            raise PublicError(503, "environments are not configured on this edge (EnvironmentService.kernel_site)")

    def list(self, who: Identity, everyone: bool = False) -> list[dict]:
        if everyone and not who.admin:
            raise PublicError(403, "only yardlab admins may list every user's environments")
        with Session(self.engine) as s:
            q = select(EnvironmentRecord).order_by(EnvironmentRecord.owner, EnvironmentRecord.name)
            if not everyone:
                q = q.where((EnvironmentRecord.owner == who.name) | (EnvironmentRecord.visibility == "shared"))
            return [self._view(who, self._json(r)) for r in s.scalars(q)]

    def find(self, who: Identity, owner: str, name: str) -> dict:
        if not valid_owner(owner or "") or not NAME.fullmatch(name or ""):
            raise PublicError(404, "no such environment")
        env = self.get_record(owner, name)
        if env is None or not self.visible(who, env):
            raise PublicError(404, f"no environment {owner}/{name}")
        return env

    def show(self, who: Identity, owner: str, name: str) -> dict:
        env = self._view(who, self.find(who, owner, name))
        env["log_tail"] = self.log_tail((owner, name), 50)
        return env

    def log_tail(self, key: tuple[str, str], lines: int) -> list[str]:
        path = self.log_path(key)
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
        return text.splitlines()[-lines:]

    def read_log(self, who: Identity, owner: str, name: str) -> Path | None:
        self.find(who, owner, name)
        path = self.log_path((owner, name))
        return path if path.exists() else None

    async def create(self, who: Identity, body: Any) -> dict:
        self._require_enabled()
        req = self.parse_request(who, body)
        owner = who.name
        key = (owner, req["name"])
        with Session(self.engine) as s, s.begin():
            if s.get(EnvironmentRecord, key) is not None:
                raise FieldError("name", f"you already have an environment named {req['name']}", status=409)
            count = len(list(s.scalars(select(EnvironmentRecord.name).where(EnvironmentRecord.owner == owner))))
            if count >= self.max_environments_per_user:
                raise PublicError(429, f"you have {count} environments, the most this site allows; delete one first")
            kernel_name = kernel_name_for(owner, req["name"])
            # kernelspec names are unique by construction; a (hash) collision must never let one
            # environment's kernelspec replace another's
            if s.scalars(select(EnvironmentRecord.owner).where(EnvironmentRecord.kernel_name == kernel_name)).first():
                raise FieldError("name", f"the name {req['name']} clashes with another environment's kernel; "
                                         "choose another name", status=409)
            t = now()
            s.add(EnvironmentRecord(
                owner=owner, name=req["name"], display_name=req["display_name"], kind=req["kind"],
                resources=json.dumps(req["resources"]), packages=json.dumps(req["packages"]),
                visibility=req["visibility"], status="queued", phase="queued", progress=0, created=t, updated=t,
                kernel_name=kernel_name))
        self.log_path(key).unlink(missing_ok=True)
        self.audit.record("environment.create", who.name, "queued", environment=f"{owner}/{req['name']}",
                          packages=req["packages"], resources=req["resources"])
        self._sink(key).line(f"queued by {who.name}: {req['kind']}, pip {req['packages']['pip'] or '-'}, "
                             f"conda {req['packages']['conda'] or '-'}")
        self._enqueue(key)
        return self._view(who, self.get_record(*key) or {})

    def _may_edit(self, who: Identity, env: dict) -> None:
        if env["owner"] == self.predefined_owner and env["visibility"] == "shared":
            if who.admin:  # the shipped ones: not a user who happens to be called like their owner
                return
        elif env["owner"] == who.name or (who.admin and env["visibility"] == "shared"):
            return
        raise PublicError(403, f"only {env['owner']} (or an admin, for shared ones) may change {env['owner']}/"
                               f"{env['name']}")

    async def update(self, who: Identity, owner: str, name: str, body: Any) -> dict:
        env = self.find(who, owner, name)
        self._may_edit(who, env)
        if not isinstance(body, dict) or not body or set(body) - {"display_name", "resources"}:
            raise FieldError(None, 'PATCH takes {"display_name": ..., "resources": {...}}; packages need a new '
                                   "environment")
        fields: dict[str, Any] = {}
        if "display_name" in body:
            fields["display_name"] = self._display_name(body["display_name"])
        if "resources" in body:
            fields["resources"] = json.dumps(self.parse_resources(who, body["resources"], base=env["resources"]))
        data = self._update((owner, name), **fields)
        assert data is not None
        if data["status"] == "ready":
            self._write_kernelspec(data)
        self.audit.record("environment.update", who.name, "done", environment=f"{owner}/{name}", changes=body)
        return self._view(who, data)

    async def rebuild(self, who: Identity, owner: str, name: str) -> dict:
        """Resolve and build a failed or ready environment again (newer packages for unpinned specs)."""
        env = self.find(who, owner, name)
        self._may_edit(who, env)
        key = (owner, name)
        if env["status"] in ("queued", "building") or key in self.running:
            raise PublicError(409, f"{owner}/{name} is being built already")
        self.fresh.add(key)
        self.log_path(key).unlink(missing_ok=True)
        data = self._update(key, status="queued", phase="queued", progress=0, error=None)
        assert data is not None
        self._sink(key).line(f"rebuild asked by {who.name}")
        self.audit.record("environment.rebuild", who.name, "queued", environment=f"{owner}/{name}")
        self._enqueue(key)
        return self._view(who, data)

    async def delete(self, who: Identity, owner: str, name: str) -> None:
        env = self.find(who, owner, name)
        self._may_edit(who, env)
        key = (owner, name)
        task = self.running.get(key)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        with Session(self.engine) as s, s.begin():
            rec = s.get(EnvironmentRecord, key)
            spec_name = (rec.kernel_name if rec is not None else None) or kernel_name_for(owner, name)
            if rec is not None:
                s.delete(rec)
        if self.kernels_dir is not None:
            shutil.rmtree(self.kernels_dir / spec_name, ignore_errors=True)
        sink = self.sinks.pop(key, None)
        if sink:
            sink.close()
        self.log_path(key).unlink(missing_ok=True)
        self._emit(key, "deleted", {})
        if env.get("archive"):
            await self._remove_archive_if_unused(env["archive"], f"{owner}/{name}")
        self.audit.record("environment.delete", who.name, "done", environment=f"{owner}/{name}")

    async def _remove_archive_if_unused(self, sha: str, environment: str) -> None:
        """Remove an archive no environment claims and no live kernel of ``environment`` runs on."""
        async with self._archive_lock(sha):
            if self._archive_in_use(sha):
                return
            if any(k.get("environment") == environment for k in self.ledger.live()):
                self.log.info("keeping archive %s: kernels of %s still run on it", sha, environment)
                return
            with Session(self.engine) as s, s.begin():
                for r in s.scalars(select(ResolutionRecord).where(ResolutionRecord.archive == sha)):
                    s.delete(r)
            path = f"{self.hdfs_dir}/{sha}.tar.gz"
            try:
                await self.storage.call(None, path, "delete", path)
            except PublicError as e:
                self.log.warning("could not remove the unused archive %s: %s", path, e)

    def _archive_in_use(self, sha: str) -> bool:
        with Session(self.engine) as s:
            return s.scalars(select(EnvironmentRecord.name).where(EnvironmentRecord.archive == sha)).first() is not None

    async def events(self, who: Identity, owner: str, name: str) -> AsyncIterator[tuple[str, dict]]:
        """Progress and log events of one environment until its build ends (or it is deleted)."""
        env = self.find(who, owner, name)
        key = (owner, name)
        q: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        cb = lambda ev, data: q.put_nowait((ev, data))  # noqa: E731
        self.listeners.setdefault(key, set()).add(cb)
        try:
            yield "progress", {k: env[k] for k in ("status", "phase", "progress", "error")}
            for line in self.log_tail(key, 200):
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
            final = self.get_record(*key)
            if final is not None:
                yield "done", self._view(who, final)
        finally:
            self.listeners.get(key, set()).discard(cb)

    # -- building ------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.pending.discard(key)
            try:
                env = self.get_record(*key)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                self.log.exception("environment %s/%s: could not read its record", *key)
                continue
            if env is None or env["status"] != "queued" or key in self.running:
                continue  # deleted while queued, or already being built
            task = asyncio.create_task(self._build(key))
            self.running[key] = task
            try:
                # asyncio.wait, not wait_for: Python 3.11's wait_for swallows a cancellation that
                # arrives as the build ends, and the worker would then never stop
                done, _ = await asyncio.wait({task}, timeout=self.build_timeout)
                if not done:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self._fail(key, f"the build took longer than {self.build_timeout:.0f} s and was stopped")
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception:  # noqa: BLE001 - keep the worker alive whatever one build did
                self.log.exception("environment %s/%s: the build worker failed", *key)
            finally:
                if self.running.get(key) is task:
                    self.running.pop(key, None)

    def _phase(self, key: tuple[str, str], phase: str) -> None:
        self._update(key, status="building", phase=phase, progress=PHASES[phase])
        self._sink(key).line(f"== {phase}")

    def _fail(self, key: tuple[str, str], message: str) -> None:
        message = redact(message)
        self._sink(key).line(f"FAILED: {message}")
        self._update(key, status="failed", phase="failed", error=message, archive=None)
        if self.kernels_dir is not None:  # a failed (re)build offers no kernel, not even the one before
            shutil.rmtree(self.kernels_dir / self._spec_name(*key), ignore_errors=True)

    async def _run(self, key: tuple[str, str], argv: list[str], cwd: Path, what: str) -> None:
        """Run one build command, its output into the build log; BuildError when it fails."""
        sink = self._sink(key)
        sink.line("$ " + redact(" ".join(argv)))
        # only what a build needs from the edge's environment: no hub tokens, no config paths
        env = {k: v for k, v in os.environ.items() if k in BUILD_ENV_KEYS}
        env.update({"UV_CACHE_DIR": str(self.root / "cache" / "uv"), "NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
        if self.index_url:
            # in the environment, not on the command line: an index URL may carry a password
            env["UV_INDEX_URL"] = self.index_url
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, limit=1024 * 1024,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        tail: list[str] = []
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = redact(raw.decode("utf-8", "replace").rstrip())
                sink.line(line)
                tail = (tail + [line])[-5:]
            code = await proc.wait()
        except BaseException:
            if proc.returncode is None:  # its whole session: uv's own children too
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
            raise
        if code != 0:
            detail = next((ln for ln in reversed(tail) if ln.strip()), "")
            raise BuildError(f"{what} failed: {detail[:300]}" if detail else f"{what} failed (exit {code})")

    def _request_key(self, env: dict) -> str:
        blob = json.dumps({"python": self._python_version(), "launcher": sorted(self.launcher_requirements),
                           "pip": sorted(env["packages"]["pip"]), "conda": sorted(env["packages"]["conda"]),
                           "channels": list(self.conda_channels), "index": self.index_url,
                           "builder": BUILDER_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _python_version(self) -> str:
        if not hasattr(self, "_pyver"):
            import subprocess

            self._pyver = subprocess.run([self.python, "-c", "import sys,platform; print(sys.version.split()[0], "
                                                              "platform.machine())"],
                                         capture_output=True, text=True, check=True).stdout.strip()
        return self._pyver

    async def _archive_exists(self, sha: str) -> bool:
        path = f"{self.hdfs_dir}/{sha}.tar.gz"
        return await self.storage.call(None, path, "status", path, strict=False) is not None

    async def _build(self, key: tuple[str, str]) -> None:
        env = self.get_record(*key)
        if env is None:
            return
        started = time.monotonic()
        sink = self._sink(key)
        work = self.root / "work" / f"{secrets.token_hex(6)}"
        tmp_upload: str | None = None
        try:
            work.mkdir(parents=True)
            self._phase(key, "resolving")
            request_key = self._request_key(env)
            sha = None if key in self.fresh else self._reusable(request_key)
            self.fresh.discard(key)
            if sha and await self._claim(key, sha):
                sink.line(f"same request as one resolved in the last {self.resolution_ttl:.0f} s: "
                          f"reusing archive {sha}")
            else:
                sha, records = await self._resolve(key, env, work)
                if await self._claim(key, sha):
                    sink.line(f"the resolved environment is already packed: reusing archive {sha}")
                else:
                    self._phase(key, "installing")
                    prefix = work / "env"
                    await self._run(key, [self.uv, "venv", "--quiet", "--python", self.python, str(prefix)], work,
                                    "creating the virtualenv")
                    await self._run(key, [self.uv, "pip", "sync", "--no-build", "--python", str(prefix / "bin" / "python"),
                                          str(work / "lock.txt")], work,
                                    "installing the pip packages")
                    if records:
                        await self._install_conda(key, records, prefix)
                    self._phase(key, "packing")
                    archive = work / "env.tar.gz"
                    await _finish_even_if_cancelled(asyncio.to_thread(self._pack, prefix, archive))
                    sink.line(f"packed {archive.stat().st_size / 1e6:.1f} MB")
                    self._phase(key, "uploading")
                    tmp_upload = f"{self.hdfs_dir}/.{sha}.{secrets.token_hex(4)}.tmp"
                    await self._upload(archive, tmp_upload, sha)
                    tmp_upload = None
                with Session(self.engine) as s, s.begin():
                    s.merge(ResolutionRecord(request_key=request_key, archive=sha, resolved=now()))
            self._phase(key, "kernelspec")
            data = self.get_record(*key)
            if data is None:
                return  # deleted meanwhile
            name = self._write_kernelspec(data)
            seconds = round(time.monotonic() - started, 2)
            sink.line(f"ready in {seconds} s: kernel {name}")
            self._update(key, status="ready", phase="ready", progress=100, error=None, kernel_name=name,
                         build_seconds=seconds)
        except asyncio.CancelledError:
            sink.line("build stopped")
            raise
        except BuildError as e:
            self._fail(key, str(e))
        except PublicError as e:
            self._fail(key, e.message)
        except Exception as e:  # noqa: BLE001 - any other failure ends this build, not the edge
            self.log.exception("environment %s/%s: build failed", *key)
            self._fail(key, f"internal error: {type(e).__name__}: {str(e)[:200]}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if tmp_upload:
                try:
                    await self.storage.call(None, tmp_upload, "delete", tmp_upload)
                except PublicError:
                    pass
            sink = self.sinks.pop(key, None)
            if sink is not None:
                sink.close()

    async def _claim(self, key: tuple[str, str], sha: str) -> bool:
        """Mark the archive as this environment's (so no delete removes it), then say whether it exists."""
        async with self._archive_lock(sha):
            self._update(key, archive=sha)
            return await self._archive_exists(sha)

    def _reusable(self, request_key: str) -> str | None:
        """The archive an identical recent request resolved to (whether it still exists, _claim checks)."""
        with Session(self.engine) as s:
            rec = s.get(ResolutionRecord, request_key)
            if rec is None or now() - rec.resolved > self.resolution_ttl:
                return None
            return rec.archive

    async def _resolve(self, key: tuple[str, str], env: dict, work: Path) -> tuple[str, list]:
        """Pin the pip requirements and solve the conda specs; the sha256 of the result names the archive."""
        reqs = work / "requirements.in"
        reqs.write_text("".join(f"{r}\n" for r in [*self.launcher_requirements, *env["packages"]["pip"]]))
        await self._run(key, [self.uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--no-build",
                              "--python", self.python, str(reqs), "-o", str(work / "lock.txt")],
                        work, "resolving the pip requirements")
        lock = (work / "lock.txt").read_text()
        records: list = []
        conda_lines: list[str] = []
        if env["packages"]["conda"]:
            records = await self._solve_conda(key, env["packages"]["conda"])
            conda_lines = sorted(f"{r.url} {r.sha256.hex() if r.sha256 else ''}" for r in records)
        blob = "\n".join([f"builder {BUILDER_VERSION}", f"python {self._python_version()}", lock, *conda_lines])
        sha = hashlib.sha256(blob.encode()).hexdigest()
        self._sink(key).line(f"resolved {len(lock.splitlines())} pip packages and {len(records)} conda packages: "
                             f"archive {sha}")
        return sha, records

    async def _solve_conda(self, key: tuple[str, str], specs: list[str]) -> list:
        import rattler

        self._sink(key).line(f"solving {', '.join(specs)} from {', '.join(self.conda_channels)}")
        try:
            records = await rattler.solve(list(self.conda_channels), specs, platforms=list(self.conda_platforms),
                                          virtual_packages=rattler.VirtualPackage.detect())
        except Exception as e:  # noqa: BLE001 - rattler's solver errors
            raise BuildError(f"the conda specs could not be solved: {str(e).splitlines()[0][:300]}") from e
        for r in records:
            self._sink(key).line(f"  {r.name.normalized} {r.version} {r.build}")
        return records

    async def _install_conda(self, key: tuple[str, str], records: list, prefix: Path) -> None:
        import rattler

        self._sink(key).line(f"installing {len(records)} conda packages")
        try:
            await rattler.install(records, target_prefix=prefix, cache_dir=self.root / "cache" / "conda",
                                  show_progress=False)
        except Exception as e:  # noqa: BLE001
            raise BuildError(f"installing the conda packages failed: {str(e).splitlines()[0][:300]}") from e

    @staticmethod
    def _pack(prefix: Path, output: Path) -> None:
        import venv_pack

        venv_pack.pack(prefix=str(prefix), output=str(output), force=True, verbose=False)

    async def _upload(self, archive: Path, tmp: str, sha: str) -> None:
        final = f"{self.hdfs_dir}/{sha}.tar.gz"
        st = await self.storage.call(None, self.hdfs_dir, "status", self.hdfs_dir, strict=False)
        if st is None:
            await self.storage.call(None, self.hdfs_dir, "makedirs", self.hdfs_dir, permission="755")
            await self.storage.call(None, self.hdfs_dir, "set_permission", self.hdfs_dir, permission="755")
        await _finish_even_if_cancelled(
            self.storage.call(None, tmp, "upload", tmp, str(archive), overwrite=True, permission="644"))
        try:
            await self.storage.call(None, tmp, "rename", tmp, final)
        except PublicError:
            if not await self._archive_exists(sha):  # someone else's identical upload won the race
                raise
            await self.storage.call(None, tmp, "delete", tmp)
        await self.storage.call(None, final, "set_permission", final, permission="644")

    def spark_conf(self, env: dict) -> dict[str, str]:
        res = env["resources"]
        conf = {"spark.yarn.queue": res["queue"],
                "spark.driver.memory": f"{res['driver_memory_mb']}m",
                "spark.driver.cores": str(res["driver_cores"])}
        if env["kind"] == "pyspark":
            conf.update({"spark.executor.memory": f"{res['executor_memory_mb']}m",
                         "spark.executor.cores": str(res["executor_cores"])})
            dyn = res.get("dynamic_allocation")
            if dyn:
                conf.update({"spark.dynamicAllocation.enabled": "true",
                             "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                             "spark.dynamicAllocation.minExecutors": str(dyn["min"]),
                             "spark.dynamicAllocation.initialExecutors": str(dyn["min"]),
                             "spark.dynamicAllocation.maxExecutors": str(dyn["max"])})
            else:
                conf["spark.executor.instances"] = str(res["executor_instances"])
                conf["spark.dynamicAllocation.enabled"] = "false"
        if env.get("archive"):
            conf.update({
                "spark.yarn.dist.archives": f"{self.archive_uri_prefix}{self.hdfs_dir}/{env['archive']}.tar.gz#env",
                "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "./env/bin/python",
                "spark.executorEnv.PYSPARK_PYTHON": "./env/bin/python"})
        return conf

    def _spec_name(self, owner: str, name: str) -> str:
        """The kernelspec name stored with the environment (older rows: the one derived from it)."""
        with Session(self.engine) as s:
            rec = s.get(EnvironmentRecord, (owner, name))
            return (rec.kernel_name if rec is not None else None) or kernel_name_for(owner, name)

    def _write_kernelspec(self, env: dict) -> str:
        assert self.kernels_dir is not None
        name = self._spec_name(env["owner"], env["name"])
        write_kernelspec(self.kernels_dir, self.site, KernelSpecRequest(
            name=name, display_name=env["display_name"], kind=env["kind"],
            environment=f"{env['owner']}/{env['name']}", spark_conf=self.spark_conf(env),
            visibility=env["visibility"], owner=env["owner"]))
        return name


async def _finish_even_if_cancelled(work: Any) -> Any:
    """Await ``work`` (a thread's job); if cancelled meanwhile, let the thread finish before going on,
    so the clean-up that follows does not race it (a thread cannot be stopped)."""
    fut = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.gather(fut, return_exceptions=True)
        raise
