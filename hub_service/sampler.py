"""The sampler: every few seconds, reads the cluster and every application through the edge
(with the service's own token, which carries the admin scope) and stores a sample."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from traitlets import Float, Instance, Integer
from traitlets.config import LoggingConfigurable

from yardlab.edge.client import AsyncEdgeClient, EdgeAPIError

from .store import UsageStore
from .usage import usage_deltas


def wall_clock() -> float:
    return time.time()


async def run_blocking(func: Callable[..., Any], *args: Any) -> Any:
    """The one way blocking calls (the database) leave the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class ClusterSampler(LoggingConfigurable):
    """Samples cluster use into the UsageStore and prunes what is older than the retention."""

    interval = Float(60.0, help="Seconds between samples of cluster and per-user use.").tag(config=True)
    retention_days = Float(90.0, help="Days samples are kept; older ones are deleted.").tag(config=True)
    page_size = Integer(1000, help="Applications asked of the edge per page while sampling.").tag(config=True)
    max_backoff = Float(60.0, help="Longest pause between attempts while the edge is unreachable.").tag(config=True)

    store = Instance(UsageStore)
    edge = Instance(AsyncEdgeClient)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._task: asyncio.Task | None = None
        self.last_error: str | None = None
        self.last_sample: float | None = None
        self._counters: dict[str, tuple[str, int, int]] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        delay = self.interval
        while True:
            try:
                await self.sample_once()
                delay = self.interval
                if self.last_error is not None:
                    self.log.info("sampler: the edge answers again")
                self.last_error = None
            except (EdgeAPIError, OSError) as e:
                if self.last_error is None:
                    self.log.warning("sampler: %s", e)
                self.last_error = str(e)
                delay = min(max(delay, 1.0) * 2, max(self.max_backoff, self.interval))
            except Exception:  # noqa: BLE001 - the loop must survive anything
                self.log.exception("sampler: unexpected error")
                self.last_error = "unexpected error while sampling"
                delay = min(max(delay, 1.0) * 2, max(self.max_backoff, self.interval))
            await asyncio.sleep(delay)

    async def fetch_apps(self) -> list[dict]:
        apps: list[dict] = []
        cursor = None
        while True:
            page = await self.edge.apps(user="*", limit=self.page_size, cursor=cursor)
            apps.extend(page["apps"])
            cursor = page.get("next_cursor")
            if not cursor:
                return apps

    async def sample_once(self) -> None:
        cluster = await self.edge.cluster()
        apps = await self.fetch_apps()
        now = wall_clock()
        if self._counters is None:
            self._counters = await run_blocking(self.store.counters)
        delta = usage_deltas(self._counters, apps)
        await run_blocking(self.store.record, now, cluster, delta, self._counters)
        self._counters.update(delta.counters)
        self.last_sample = now
        keep = self.retention_days * 86400
        # raw per-user samples: only the latest and the current hour are read (hourly sums hold the rest)
        await run_blocking(self.store.prune, now - keep, now - max(keep, 3 * 86400), now - 2 * 86400)
        self._samples = getattr(self, "_samples", 0) + 1
        if self._samples % 100 == 0:
            # the database dropped counters of long-gone applications: forget them here too
            self._counters = await run_blocking(self.store.counters)
