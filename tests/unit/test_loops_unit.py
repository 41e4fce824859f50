"""PeriodicTask, the one helper behind the edge's background loops: steps at the interval, a capped
backoff after failures (raised or reported), back to the interval on success, and a stop() that
returns only once the loop has ended."""
from __future__ import annotations

import asyncio

import pytest

from yardlab.edge import loops
from yardlab.edge.loops import PeriodicTask, backoff


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The pauses the loops asked for; each lets the event loop run but takes no time."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(loops, "sleep", fake_sleep)
    return asked


def run_steps(results: list, n: int, **kw) -> int:
    """Run a loop whose steps give ``results`` in turn (an exception is raised) until ``n`` steps ran."""
    done = 0

    async def step():
        nonlocal done
        done += 1
        outcome = results[(done - 1) % len(results)]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def main():
        task = PeriodicTask(step, 1.0, **kw)
        task.start()
        while done < n:
            await asyncio.sleep(0)
        await task.stop()
        return done

    return asyncio.run(main())


def test_failures_back_off_up_to_the_cap_and_success_returns_to_the_interval(pauses):
    results = [False, RuntimeError("boom"), False, False, False, False, None, True, False]
    run_steps(results, len(results), max_backoff=5.0)
    assert pauses[:len(results)] == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 2.0]


def test_without_a_cap_failures_wait_the_interval(pauses):
    run_steps([RuntimeError("x")], 4)
    assert pauses[:4] == [1.0] * 4


def test_wait_first_pauses_before_the_first_step(pauses):
    run_steps([None], 2, wait_first=True)
    assert pauses[:2] == [1.0, 1.0]


def test_the_capped_backoff():
    assert [backoff(d, 5.0) for d in (0.01, 0.5, 1.0, 2.0, 4.0, 30.0)] == [1.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_stop_waits_for_the_loop_to_end_and_nothing_runs_after_it():
    ran: list[str] = []
    cleaned = asyncio.Event()

    async def step():
        ran.append("step")
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # a step's clean-up takes a moment: stop() must wait for it
            cleaned.set()

    async def main():
        task = PeriodicTask(step, 0.01)
        await task.stop()  # before start: nothing to do
        task.start()
        task.start()  # a second start does not start a second loop
        await asyncio.sleep(0.05)
        await task.stop()
        assert cleaned.is_set() and not task.running
        count = len(ran)
        await asyncio.sleep(0.05)
        assert len(ran) == count == 1

    asyncio.run(main())


def test_a_caller_cancelled_while_stopping_stays_cancelled():
    async def step():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.2)

    async def main():
        task = PeriodicTask(step, 0.01)
        task.start()
        await asyncio.sleep(0.01)
        stopper = asyncio.ensure_future(task.stop())
        await asyncio.sleep(0.01)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper

    asyncio.run(main())
