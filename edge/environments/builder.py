"""The environment builder: a queue of builds, each one resolved, installed, packed, uploaded, published.

1. **resolving**: ``uv pip compile`` pins the pip requirements plus what the kernel launcher needs and
   the site's base set (numpy, pandas, pyarrow, matplotlib: by name, so a user's own pins win);
   py-rattler solves the conda specs.  The sha256 of the pinned set names the archive.
2. **installing**: ``uv venv`` + ``uv pip sync`` of the pinned set; py-rattler installs the conda
   records into the same prefix (their link scripts are not run); then everything is compiled to
   bytecode (the archive is unpacked read-only on the nodes: without .pyc files every kernel would
   compile its imports) by the environment's Python with ``-I -S``: a ``.pth`` file a wheel carries
   runs its code whenever that Python starts with its site-packages, and the builder runs as the
   edge's account, which holds the keytab (uv's ``--compile-bytecode`` starts it so).
3. **packing**: venv-pack turns the prefix into a relocatable ``.tar.gz`` (or a plain ``.tar``).
4. **uploading**: the archive goes to HDFS once, as ``/yardlab/envs/<sha256>.tar.gz`` (0644, so every
   NodeManager may cache it as a PUBLIC resource), via a temporary name and a rename.  Maven packages
   (resolved by maven.py during *resolving*) go next to it the same way, one jar each, as
   ``/yardlab/envs/jars/<sha256>.jar``; a jar already there is not uploaded again.
5. **kernelspec**: written atomically, with the Spark properties of ``kernelspecs.spark_properties``;
   the base environment's "kernelspecs" are the built-in ones, which then run on its archive.

An archive that exists for the same resolved set is reused (no install, pack or upload), and so is
the resolution of an identical recent request; two builds that resolve to the same set at the same
time pack it once (the second waits for the first's upload).  Builds run with bounded concurrency; one cut
by an edge restart is queued again, its leftovers (commands an edge killed outright left running, work
folders, HDFS temporaries) removed first.  Commands run as asyncio subprocesses, file work (packing,
copies, removals) in threads.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections import deque
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from pathlib import Path
from typing import Awaitable, Protocol, TypeVar

import rattler
import venv_pack
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..clients.webhdfs import WebHDFSClient, WebHDFSError, WebHDFSUnavailable
from ..clock import monotonic
from ..kernelspecs import (
    KernelSite,
    KernelSpecRequest,
    install_builtin,
    spark_properties,
    write_kernelspec,
)
from ..ledger import KernelLedger
from ..loops import finish_even_if_cancelled
from ..osutil import process_start
from ..storage import HDFSStorage
from . import maven
from .request import redact
from .store import EnvironmentStore, Key

T = TypeVar("T")
#: what build commands inherit from the edge's environment (nothing else: no tokens, no config paths)
BUILD_ENV_KEYS = ("PATH", "HOME", "JAVA_HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
#: bumped whenever the way an archive is built changes, so old archives are not reused
BUILDER_VERSION = "2"  # 2: bytecode compiled into the archive
#: phase -> percent done when the phase starts
PHASES = {"queued": 0, "resolving": 5, "installing": 20, "packing": 55, "uploading": 80, "kernelspec": 95, "ready": 100}
PYTHON_PROBE = "import sys,platform; print(sys.version.split()[0], platform.machine())"


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # gone meanwhile
        return None


class BuildError(Exception):
    """A build step (or HDFS, for the archives) failed; the message is shown to the environment's owner."""


class BuildSettings(Protocol):
    """What the builder reads from EnvironmentService (live: its traits, folders and logger)."""

    log: logging.Logger
    root: Path
    kernels_dir: Path | None
    hdfs_dir: str
    archive_uri_prefix: str
    python: str
    uv: str
    index_url: str
    launcher_requirements: list[str]
    base_packages: list[str]
    build_from_source: list[str]
    compress_level: int
    pack_exclude: list[str]
    conda_channels: list[str]
    conda_platforms: list[str]
    mvn: str
    maven_repositories: list[str]
    maven_provided_groups: list[str]
    kernel_site: dict
    max_concurrent_builds: int
    build_timeout: float
    max_environment_mb: int
    resolution_ttl: float

    def is_base(self, env: dict) -> bool: ...


#: run by the environment's own Python with -I -S (no site-packages, so no .pth file's code): compile
#: every module below argv[1]; a file that does not compile (a template, Python 2 code) is left as it is
COMPILE = ("import compileall, sys\n"
           "ok = compileall.compile_dir(sys.argv[1], quiet=2, workers=0)\n"
           "print('compiled to bytecode' + ('' if ok else ' (files that are not Python 3 left as they are)'))\n")


def tree_bytes(folder: Path) -> int:
    """What the files below ``folder`` take (each hard-linked file once; symlinks as links)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class FairQueue:
    """Builds waiting, taken in turn by owner: each owner's own in the order asked, owners round-robin.

    A plain FIFO let one user who queued twenty builds hold every worker until all twenty were done;
    here the next free worker takes the next owner's oldest build, so a flood delays its sender alone.
    """

    def __init__(self) -> None:
        self._by_owner: dict[str, deque[Key]] = {}  # insertion order = the owners' turn
        self._ready = asyncio.Event()

    def put_nowait(self, key: Key) -> None:
        self._by_owner.setdefault(key[0], deque()).append(key)
        self._ready.set()

    def qsize(self) -> int:
        return sum(len(keys) for keys in self._by_owner.values())

    async def get(self) -> Key:
        while not self._by_owner:
            self._ready.clear()
            await self._ready.wait()
        owner = next(iter(self._by_owner))
        keys = self._by_owner.pop(owner)
        key = keys.popleft()
        if keys:
            self._by_owner[owner] = keys  # to the back of the line
        return key


class EnvironmentBuilder:
    """Builds queued environments a few at a time and publishes each as a kernelspec."""

    def __init__(self, settings: BuildSettings, store: EnvironmentStore, storage: HDFSStorage,
                 ledger: KernelLedger) -> None:
        self.settings = settings
        self.log = settings.log
        self.store = store
        self.storage = storage
        self.ledger = ledger
        self.queue = FairQueue()
        self.pending: set[Key] = set()  # keys in the queue (each at most once)
        self.fresh: set[Key] = set()  # rebuilds: resolve again, whatever was resolved before
        self.workers: list[asyncio.Task] = []
        self.running: dict[Key, asyncio.Task] = {}
        self._archive_locks: dict[str, asyncio.Lock] = {}
        self._pack_locks: dict[str, asyncio.Lock] = {}
        #: the archive the built-in kernelspecs run on now (kept whatever records say)
        self.base_archive: str | None = None
        self._kernelspecs_lock = asyncio.Lock()  # writes and removals run in threads: one at a time
        self._jars_lock = asyncio.Lock()  # a build claims jars, or a delete checks and removes them
        #: one Maven run at a time: they share the local repository (cache/m2), and Maven 3.8 has no
        #: lock of its own for it (two runs fetching one artifact write the same files)
        self._maven_lock = asyncio.Lock()
        self._python_version: str | None = None

    @property
    def webhdfs(self) -> WebHDFSClient:
        return self.storage.webhdfs

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Clean leftovers of an interrupted run, queue its unfinished builds again, start the workers."""
        work = self.settings.root / "work"
        await asyncio.to_thread(self._stop_orphaned_commands)  # before their folders go: they write in them
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        await self._remove_hdfs_temporaries()
        for key in self.store.requeue_unfinished():
            self.log.info("environment %s/%s: build interrupted by a restart, queued again", *key)
            self.store.sink(key).line("--- the edge restarted during this build; building again ---")
            self.enqueue(key)
        self.workers = [asyncio.create_task(self._worker()) for _ in range(max(1, self.settings.max_concurrent_builds))]

    async def stop(self) -> None:
        tasks = [*self.workers, *self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def enqueue(self, key: Key, fresh: bool = False) -> None:
        """Queue a build (``fresh``: resolve again even if an identical request was resolved recently)."""
        if fresh:
            self.fresh.add(key)
        if key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait(key)

    async def cancel(self, key: Key) -> None:
        """Stop ``key``'s build if one runs, and wait until it has cleaned up."""
        task = self.running.get(key)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- build commands an edge killed outright left running ------------------------------------------
    @property
    def commands_dir(self) -> Path:
        """One file per running build command (named by its pid, holding its start time)."""
        return self.settings.root / "commands"

    def _note_command(self, pid: int) -> Path:
        """Mark a build command as running.  Each runs in its own session, so an edge killed outright (SIGKILL,
        the OOM killer: no clean-up of its own runs) leaves it running, writing into a work folder the next
        edge removes and taking the CPU its builds need; the next edge stops it by this mark."""
        self.commands_dir.mkdir(parents=True, exist_ok=True)
        marker = self.commands_dir / str(pid)
        marker.write_text(process_start(pid) or "")
        return marker

    def _stop_orphaned_commands(self) -> None:
        """Stop (with their whole sessions) the build commands an earlier edge left running; a pid that now
        names another process (its start time differs) is left alone."""
        try:
            markers = list(self.commands_dir.iterdir())
        except FileNotFoundError:
            return
        stopped = []
        for marker in markers:
            try:
                pid, started = int(marker.name), marker.read_text().strip()
            except (ValueError, OSError):
                marker.unlink(missing_ok=True)
                continue
            if started and process_start(pid) == started and _session_of(pid) == pid:
                self.log.warning("stopping build command %s, left running by an edge that ended without "
                                 "cleaning up", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                stopped.append(pid)
            marker.unlink(missing_ok=True)
        deadline = time.monotonic() + 10
        while stopped and time.monotonic() < deadline:  # gone before their work folders are removed
            stopped = [pid for pid in stopped if process_start(pid) is not None]
            if stopped:
                time.sleep(0.05)

    def _archive_lock(self, sha: str) -> asyncio.Lock:
        """Held while an archive is claimed and checked by a build, or checked and removed by a delete."""
        return self._archive_locks.setdefault(sha, asyncio.Lock())

    # -- HDFS: the archives --------------------------------------------------------------------------
    async def _hdfs(self, path: str, call: Awaitable[T]) -> T:
        """Await one WebHDFS call about ``path``; its errors become BuildErrors (the one place they do)."""
        try:
            return await call
        except WebHDFSUnavailable as e:
            raise BuildError(e.message) from e  # "WebHDFS at <url> is unreachable: <why>"
        except WebHDFSError as e:
            detail = e.message.splitlines()[0][:200] if e.message else e.kind
            raise BuildError(f"HDFS refused the operation on {path}: {detail}") from e

    def archive_path(self, sha: str) -> str:
        return f"{self.settings.hdfs_dir}/{sha}.{'tar.gz' if self.settings.compress_level else 'tar'}"

    def archive_uri(self, sha: str) -> str:
        """The archive's URI as Spark is given it."""
        return f"{self.settings.archive_uri_prefix}{self.archive_path(sha)}"

    @property
    def jars_dir(self) -> str:
        return f"{self.settings.hdfs_dir}/jars"

    def jar_path(self, sha: str) -> str:
        return f"{self.jars_dir}/{sha}.jar"

    def jar_uri(self, sha: str) -> str:
        return f"{self.settings.archive_uri_prefix}{self.jar_path(sha)}"

    async def _jars_present(self, jars: list[dict]) -> bool:
        for jar in jars:
            path = self.jar_path(jar["sha256"])
            if await self._hdfs(path, self.webhdfs.status(path, strict=False)) is None:
                return False
        return True

    async def archive_exists(self, sha: str) -> bool:
        path = self.archive_path(sha)
        return await self._hdfs(path, self.webhdfs.status(path, strict=False)) is not None

    async def _remove_hdfs_temporaries(self) -> None:
        for folder in (self.settings.hdfs_dir, self.jars_dir):
            await self._remove_temporaries_in(folder)

    async def _remove_temporaries_in(self, folder: str) -> None:
        try:
            names = await self._hdfs(folder, self.webhdfs.names(folder))
        except BuildError:
            return  # no folder yet, or HDFS down: nothing of ours to clean
        for name in names:
            if name.startswith("."):
                path = f"{folder}/{name}"
                self.log.info("removing the unfinished upload %s", path)
                try:
                    await self._hdfs(path, self.webhdfs.delete(path))
                except BuildError as e:
                    self.log.warning("could not remove %s: %s", path, e)

    async def _upload(self, local: Path, tmp: str, final: str) -> None:
        """``local`` to HDFS as ``final`` (0644, in a 0755 folder) through the temporary name ``tmp``."""
        hdfs, folder = self.webhdfs, final.rsplit("/", 1)[0]
        if await self._hdfs(folder, hdfs.status(folder, strict=False)) is None:
            await self._hdfs(folder, hdfs.makedirs(folder, permission="755"))
            await self._hdfs(folder, hdfs.set_permission(folder, "755"))
        await self._hdfs(tmp, finish_even_if_cancelled(
            hdfs.upload(tmp, str(local), overwrite=True, permission="644")))
        try:
            await self._hdfs(tmp, hdfs.rename(tmp, final))
        except BuildError:
            if await self._hdfs(final, hdfs.status(final, strict=False)) is None:
                raise  # not someone else's identical upload that won the race
            await self._hdfs(tmp, hdfs.delete(tmp))
        await self._hdfs(final, hdfs.set_permission(final, "644"))

    async def remove_archive_if_unused(self, sha: str, environment: str) -> None:
        """Remove an archive no environment claims and no live kernel of ``environment`` runs on."""
        async with self._archive_lock(sha):
            if self.store.archive_in_use(sha) or sha == self.base_archive:
                return
            if any(k.get("environment") == environment for k in self.ledger.live()):
                self.log.info("keeping archive %s: kernels of %s still run on it", sha, environment)
                return
            self.store.forget_resolutions(sha)
            path = self.archive_path(sha)
            try:
                await self._hdfs(path, self.webhdfs.delete(path))
            except BuildError as e:
                self.log.warning("could not remove the unused archive %s: %s", path, e)

    async def remove_jars_if_unused(self, jars: list[dict], environment: str) -> None:
        """Remove the jars of a deleted environment that no other environment ships (and no live kernel
        of ``environment`` has on its class path); a resolution naming a removed jar resolves again."""
        if any(k.get("environment") == environment for k in self.ledger.live()):
            return
        async with self._jars_lock:
            for jar in jars:
                if self.store.jar_in_use(jar["sha256"]):
                    continue
                path = self.jar_path(jar["sha256"])
                try:
                    await self._hdfs(path, self.webhdfs.delete(path))
                except BuildError as e:
                    self.log.warning("could not remove the unused jar %s: %s", path, e)

    # -- kernelspecs ---------------------------------------------------------------------------------
    async def write_kernelspec(self, env: dict) -> str:
        """Publish ``env`` (a record) as its kernelspec; its name."""
        assert self.settings.kernels_dir is not None
        archive = self.archive_uri(env["archive"]) if env.get("archive") else None
        jars = [self.jar_uri(j["sha256"]) for j in env.get("jars") or []]
        site = KernelSite(**self.settings.kernel_site)
        if self.settings.is_base(env):
            async with self._kernelspecs_lock:
                paths = await asyncio.to_thread(install_builtin, self.settings.kernels_dir, site, archive)
            self.base_archive = env.get("archive")
            return paths[0].name
        name = self.store.spec_name(env["owner"], env["name"])
        spec = KernelSpecRequest(name=name, display_name=env["display_name"], kind=env["kind"],
                                 environment=f"{env['owner']}/{env['name']}",
                                 spark_conf=spark_properties(env["kind"], env["resources"], archive, jars),
                                 visibility=env["visibility"], owner=env["owner"])
        async with self._kernelspecs_lock:
            await asyncio.to_thread(write_kernelspec, self.settings.kernels_dir, site, spec)
        return name

    async def remove_kernelspec(self, name: str) -> None:
        if self.settings.kernels_dir is not None:
            async with self._kernelspecs_lock:
                await asyncio.to_thread(shutil.rmtree, self.settings.kernels_dir / name, ignore_errors=True)

    # -- the queue -----------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            self.pending.discard(key)
            try:
                env = self.store.get(*key)
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
                done, _ = await asyncio.wait({task}, timeout=self.settings.build_timeout)
                if not done:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    limit = self.settings.build_timeout
                    await self._fail(key, f"the build took longer than {limit:.0f} s and was stopped")
                    self.store.close_sink(key)  # the stopped build closed its own; this line reopened it
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception:  # noqa: BLE001 - keep the worker alive whatever one build did
                self.log.exception("environment %s/%s: the build worker failed", *key)
            finally:
                if self.running.get(key) is task:
                    self.running.pop(key, None)

    def _phase(self, key: Key, phase: str) -> None:
        self.store.update(key, status="building", phase=phase, progress=PHASES[phase])
        self.store.sink(key).line(f"== {phase}")

    async def _fail(self, key: Key, message: str, work: Path | None = None) -> None:
        message = redact(message)
        self.store.sink(key).line(f"FAILED: {message}")
        if work is not None:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)  # gone before anyone sees "failed"
        self.store.update(key, status="failed", phase="failed", error=message, archive=None, jars=None)
        await self.remove_kernelspec(self.store.spec_name(*key))  # a failed (re)build offers no kernel at all

    # -- one build -----------------------------------------------------------------------------------
    async def _build(self, key: Key) -> None:
        env = self.store.get(*key)
        if env is None:
            return
        started = monotonic()
        sink = self.store.sink(key)
        work = self.settings.root / "work" / secrets.token_hex(6)
        tmp_upload: str | None = None
        try:
            work.mkdir(parents=True)
            self._phase(key, "resolving")
            request_key = await self._request_key(env)
            reuse = None if key in self.fresh else self.store.reusable(request_key, self.settings.resolution_ttl)
            self.fresh.discard(key)
            if reuse and await self._claim(key, reuse[0]) and await self._claim_jars(key, reuse[1]):
                sink.line(f"same request as one resolved in the last {self.settings.resolution_ttl:.0f} s: "
                          f"reusing archive {reuse[0]}" + (f" and {len(reuse[1])} jars" if reuse[1] else ""))
            else:
                sha, records = await self._resolve(key, env, work)
                jars = await self._resolve_maven(key, env.get("packages", {}).get("maven") or [], work)
                # one build packs a resolved set at a time: an identical one waits here, then reuses it
                async with self._pack_locks.setdefault(sha, asyncio.Lock()):
                    if await self._claim(key, sha):
                        sink.line(f"the resolved environment is already packed: reusing archive {sha}")
                    else:
                        archive = await self._install_and_pack(key, records, work)
                        self._phase(key, "uploading")
                        tmp_upload = f"{self.settings.hdfs_dir}/.{sha}.{secrets.token_hex(4)}.tmp"
                        await self._upload(archive, tmp_upload, self.archive_path(sha))
                        tmp_upload = None
                await self._upload_jars(key, jars, work)
                self.store.remember_resolution(request_key, sha, [j.as_json() for j in jars])
            self._phase(key, "kernelspec")
            data = self.store.get(*key)
            if data is None:
                return  # deleted meanwhile
            name = await self.write_kernelspec(data)
            seconds = round(monotonic() - started, 2)
            sink.line(f"ready in {seconds} s: kernel {name}")
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)  # gone before anyone sees "ready"
            self.store.update(key, status="ready", phase="ready", progress=100, error=None, kernel_name=name,
                              build_seconds=seconds)
        except asyncio.CancelledError:
            sink.line("build stopped")
            raise
        except BuildError as e:
            await self._fail(key, str(e), work)
        except Exception as e:  # noqa: BLE001 - any other failure ends this build, not the edge
            self.log.exception("environment %s/%s: build failed", *key)
            await self._fail(key, f"internal error: {type(e).__name__}: {str(e)[:200]}", work)
        finally:  # cancelled or not, the clean-up completes
            await finish_even_if_cancelled(self._clean_up(key, work, tmp_upload))

    async def _clean_up(self, key: Key, work: Path, tmp_upload: str | None) -> None:
        self.store.close_sink(key)
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
        if tmp_upload:
            with contextlib.suppress(BuildError):
                await self._hdfs(tmp_upload, self.webhdfs.delete(tmp_upload))

    async def _claim_jars(self, key: Key, jars: list[dict]) -> bool:
        """Mark the jars as this environment's, then say whether they are all on HDFS."""
        async with self._jars_lock:
            self.store.update(key, jars=jars)
            return await self._jars_present(jars)

    async def _upload_jars(self, key: Key, jars: list[maven.ResolvedJar], work: Path) -> None:
        """Upload the jars HDFS does not have yet (each by its sha256) and claim them all."""
        await self._claim_jars(key, [j.as_json() for j in jars])
        missing = []
        for jar in jars:
            path = self.jar_path(jar.sha256)
            if await self._hdfs(path, self.webhdfs.status(path, strict=False)) is None:
                missing.append(jar)
        if missing:
            self._phase(key, "uploading")
        for jar in missing:
            local = work / "maven" / "jars" / jar.local
            tmp = f"{self.jars_dir}/.{jar.sha256}.{secrets.token_hex(4)}.tmp"
            try:
                await self._upload(local, tmp, self.jar_path(jar.sha256))
            except BaseException:
                with contextlib.suppress(BuildError):
                    await finish_even_if_cancelled(self._hdfs(tmp, self.webhdfs.delete(tmp)))
                raise
        if jars:
            self.store.sink(key).line(f"{len(jars)} jars on HDFS ({len(missing)} uploaded): "
                                      + ", ".join(j.coordinate for j in jars))

    async def _resolve_maven(self, key: Key, coordinates: list[str], work: Path) -> list[maven.ResolvedJar]:
        """The requested Maven coordinates and their runtime dependencies, less what Spark carries."""
        if not coordinates:
            return []
        s = self.settings
        folder = work / "maven"
        folder.mkdir()
        if not s.maven_repositories:
            raise BuildError("this site has no Maven repositories configured (EnvironmentService.maven_repositories)")
        (folder / "pom.xml").write_text(maven.pom_xml(coordinates, list(s.maven_repositories)))
        (folder / "settings.xml").write_text(maven.settings_xml(list(s.maven_repositories)))
        output = folder / "jars"
        argv = maven.mvn_argv(s.mvn, folder / "pom.xml", folder / "settings.xml", s.root / "cache" / "m2", output)
        if self._maven_lock.locked():
            self.store.sink(key).line("waiting for another build's Maven run (they share one local repository)")
        async with self._maven_lock:
            await self._run(key, argv, folder, "resolving the Maven packages")
        spark_jars = maven.spark_jar_names(s.kernel_site.get("spark_home", ""))
        jars, left_out = await asyncio.to_thread(maven.collect, output, spark_jars, list(s.maven_provided_groups))
        sink = self.store.sink(key)
        if left_out:
            sink.line(f"left out (Spark's own jars carry them): {', '.join(left_out)}")
        sink.line(f"resolved {len(coordinates)} Maven packages to {len(jars)} jars")
        return jars

    async def _claim(self, key: Key, sha: str) -> bool:
        """Mark the archive as this environment's (so no delete removes it), then say whether it exists."""
        async with self._archive_lock(sha):
            self.store.update(key, archive=sha)
            return await self.archive_exists(sha)

    async def _request_key(self, env: dict) -> str:
        s = self.settings
        blob = json.dumps({"python": await self._base_python(), "launcher": sorted(s.launcher_requirements),
                           "base": sorted(s.base_packages), "source": sorted(s.build_from_source),
                           "compress": s.compress_level, "exclude": s.pack_exclude, "pip": sorted(env["packages"]["pip"]), "conda": sorted(env["packages"]["conda"]),
                           "channels": list(s.conda_channels), "index": s.index_url,
                           "builder": BUILDER_VERSION,
                           # only when asked for: the keys of environments without JVM packages stay the same
                           **({"maven": sorted(env["packages"]["maven"]), "repositories": list(s.maven_repositories),
                               "provided": list(s.maven_provided_groups),
                               "spark": maven.spark_jar_names(s.kernel_site.get("spark_home", ""))}
                              if env["packages"].get("maven") else {})}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def _base_python(self) -> str:
        """The base interpreter's version and machine (asked once): part of what names an archive."""
        if self._python_version is None:
            python = self.settings.python
            try:
                proc = await asyncio.create_subprocess_exec(python, "-c", PYTHON_PROBE, stdin=DEVNULL, stdout=PIPE,
                                                            stderr=STDOUT)
                out = (await proc.communicate())[0].decode("utf-8", "replace").strip()
            except OSError as e:
                raise BuildError(f"the base interpreter {python} cannot be run: {e}") from e
            if proc.returncode != 0:
                raise BuildError(f"the base interpreter {python} failed (exit {proc.returncode}): {out[-300:]}")
            self._python_version = out
        return self._python_version

    async def _run(self, key: Key, argv: list[str], cwd: Path, what: str) -> None:
        """Run one build command, its output into the build log; BuildError when it fails."""
        sink = self.store.sink(key)
        sink.line("$ " + redact(" ".join(argv)))
        # only what a build needs from the edge's environment: no hub tokens, no config paths
        env = {k: v for k, v in os.environ.items() if k in BUILD_ENV_KEYS}
        env.update({"UV_CACHE_DIR": str(self.settings.root / "cache" / "uv"), "NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
        if self.settings.index_url:
            # in the environment, not on the command line: an index URL may carry a password
            env["UV_INDEX_URL"] = self.settings.index_url
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=DEVNULL, stdout=PIPE, stderr=STDOUT,
                                                    limit=1024 * 1024, start_new_session=True)
        marker = self._note_command(proc.pid)
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
        finally:
            marker.unlink(missing_ok=True)
        if code != 0:
            detail = next((ln for ln in reversed(tail) if ln.strip()), "")
            raise BuildError(f"{what} failed: {detail[:300]}" if detail else f"{what} failed (exit {code})")

    async def _resolve(self, key: Key, env: dict, work: Path) -> tuple[str, list]:
        """Pin the pip requirements and solve the conda specs; the sha256 of the result names the archive."""
        s = self.settings
        reqs = work / "requirements.in"
        reqs.write_text("".join(f"{r}\n" for r in [*s.launcher_requirements, *self._base_for(env),
                                                   *env["packages"]["pip"]]))
        await self._run(key, [s.uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", *self._build_flags(),
                              "--python", s.python, str(reqs), "-o", str(work / "lock.txt")],
                        work, "resolving the pip requirements")
        lock = (work / "lock.txt").read_text()
        records: list = []
        conda_lines: list[str] = []
        if env["packages"]["conda"]:
            records = await self._solve_conda(key, env["packages"]["conda"])
            conda_lines = sorted(f"{r.url} {r.sha256.hex() if r.sha256 else ''}" for r in records)
        blob = "\n".join([f"builder {BUILDER_VERSION}", f"python {await self._base_python()}",
                          f"pack {s.compress_level} {json.dumps(sorted(s.pack_exclude))}", lock, *conda_lines])
        sha = hashlib.sha256(blob.encode()).hexdigest()
        self.store.sink(key).line(f"resolved {len(lock.splitlines())} pip packages and {len(records)} conda "
                                  f"packages: archive {sha}")
        return sha, records

    async def _install_and_pack(self, key: Key, records: list, work: Path) -> Path:
        """Install the pinned set into ``work/env`` and pack it; the archive."""
        s = self.settings
        self._phase(key, "installing")
        prefix = work / "env"
        await self._run(key, [s.uv, "venv", "--quiet", "--python", s.python, str(prefix)], work,
                        "creating the virtualenv")
        await self._run(key, [s.uv, "pip", "sync", *self._build_flags(),
                              "--python", str(prefix / "bin" / "python"), str(work / "lock.txt")],
                        work, "installing the pip packages")
        if records:
            await self._install_conda(key, records, prefix)
        await self._run(key, [str(prefix / "bin" / "python"), "-I", "-S", "-c", COMPILE, str(prefix / "lib")],
                        work, "compiling the packages to bytecode")
        size_mb = await asyncio.to_thread(tree_bytes, prefix) / 2**20
        if size_mb > s.max_environment_mb:
            raise BuildError(f"the environment takes {size_mb:,.0f} MB installed, more than this site allows "
                             f"({s.max_environment_mb:,} MB, EnvironmentService.max_environment_mb): ask for "
                             "fewer or smaller packages")
        self._phase(key, "packing")
        archive = work / ("env.tar.gz" if s.compress_level else "env.tar")
        await finish_even_if_cancelled(asyncio.to_thread(
            venv_pack.pack, prefix=str(prefix), output=str(archive), force=True, verbose=False,
            compress_level=s.compress_level or 4, filters=[("exclude", pattern) for pattern in s.pack_exclude]))
        self.store.sink(key).line(f"packed {archive.stat().st_size / 1e6:.1f} MB")
        return archive

    def _base_for(self, env: dict) -> list[str]:
        """The base set an environment gets, less what its own pip requirements name (theirs win)."""
        own = {canonicalize_name(Requirement(r).name) for r in env["packages"]["pip"]}
        return [r for r in self.settings.base_packages if canonicalize_name(Requirement(r).name) not in own]

    def _build_flags(self) -> list[str]:
        """Wheels only (no package's build code runs on the edge), but for the site's named exceptions."""
        allowed = self.settings.build_from_source
        if not allowed:
            return ["--no-build"]
        return ["--only-binary", ":all:", "--no-binary", ",".join(allowed)]

    async def _solve_conda(self, key: Key, specs: list[str]) -> list:
        s = self.settings
        self.store.sink(key).line(f"solving {', '.join(specs)} from {', '.join(s.conda_channels)}")
        try:
            records = await rattler.solve(list(s.conda_channels), specs, platforms=list(s.conda_platforms),
                                          virtual_packages=rattler.VirtualPackage.detect())
        except Exception as e:  # noqa: BLE001 - rattler's solver errors
            raise BuildError(f"the conda specs could not be solved: {str(e).splitlines()[0][:300]}") from e
        for r in records:
            self.store.sink(key).line(f"  {r.name.normalized} {r.version} {r.build}")
        return records

    async def _install_conda(self, key: Key, records: list, prefix: Path) -> None:
        self.store.sink(key).line(f"installing {len(records)} conda packages")
        try:
            await rattler.install(records, target_prefix=prefix, cache_dir=self.settings.root / "cache" / "conda",
                                  show_progress=False, execute_link_scripts=False)  # no package's code runs here
        except Exception as e:  # noqa: BLE001
            raise BuildError(f"installing the conda packages failed: {str(e).splitlines()[0][:300]}") from e
