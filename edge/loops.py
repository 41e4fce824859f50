"""The edge's background loops (the YARN snapshot, the reaper, EG's watch, the admin reconciliation) as
one small helper: a step every interval, a capped backoff after failures, and a stop() that waits.
"""
from __future__ import annotations

import asyncio
import logging
from asyncio import sleep  # module-level, so tests can count the pauses
from typing import Awaitable, Callable, TypeVar

from tornado.log import app_log

T = TypeVar("T")


class PeriodicTask:
    """Runs ``step`` every ``interval`` seconds until stopped.

    A step that raises (logged with its traceback) or returns False (it reported the failure itself)
    is followed by a longer pause, doubled after each failure in a row up to ``max_backoff``; the
    first success returns to ``interval``.  The loop survives every error of its step.
    """

    def __init__(self, step: Callable[[], Awaitable[bool | None]], interval: float, *,
                 max_backoff: float | None = None, wait_first: bool = False, name: str = "background task",
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.step = step
        self.interval = interval
        self.max_backoff = interval if max_backoff is None else max_backoff
        self.wait_first = wait_first
        self.name = name
        self.log = log or app_log
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (once: starting a running loop does nothing)."""
        if not self.running:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended, so nothing of it runs after this returns."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself is being cancelled: do not swallow that

    async def _run(self) -> None:
        delay = self.interval
        if self.wait_first:
            await sleep(delay)
        while True:
            try:
                ok = await self.step() is not False
            except Exception:  # noqa: BLE001 - the loop must survive its step
                self.log.exception("%s failed", self.name)
                ok = False
            delay = self.interval if ok else backoff(delay, self.max_backoff)
            await sleep(delay)


def backoff(delay: float, cap: float) -> float:
    """The pause after one more failure in a row: doubled (from at least 0.5 s), at most ``cap``."""
    return min(max(delay, 0.5) * 2, cap)


async def finish_even_if_cancelled(work: Awaitable[T]) -> T:
    """Await ``work`` (a thread's job, a clean-up); if cancelled meanwhile, let it finish before going on,
    so what follows does not race it (a thread cannot be stopped) and nothing is left half done."""
    fut = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.gather(fut, return_exceptions=True)
        raise
