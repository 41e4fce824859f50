"""Live progress of one notebook cell's Spark jobs, read from the driver's Spark UI REST API.

The kernel tags every Spark job a cell runs with ``yardlab-cell-<id of the cell's execute request>``
(``edge/kernel_launcher/yardlab_kernel.py``).  The Lab polls ``/api/v1/kernels/<id>/progress?cell=<that
id>`` about once a second while the cell runs; the edge answers with that cell's jobs and their stages.

Why this route (Spark's REST API through YARN's proxy) and not a SparkListener feeding a comm:
nothing is added to the driver's JVM or to spark-submit; it works for any kernel whose driver runs a
Spark UI, through the same owner check as the Spark UI itself; and it costs the driver nothing when
nobody looks.  The cost is one REST call per poll plus one per stage not yet finished; finished
stages are remembered, and answers are shared for half a second between polls of the same cell.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from typing import Any

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from .clients.resourcemanager import ProxyPageError, ResourceManagerClient, RMUnavailable
from .clock import monotonic
from .errors import PublicError

CELL_TAG = "yardlab-cell-"
CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
#: a stage in one of these states cannot change any more (a FAILED attempt may be followed by another)
FINAL_STAGE = ("COMPLETE", "SKIPPED")
JOB_FIELDS = ("numTasks", "numActiveTasks", "numCompletedTasks", "numSkippedTasks", "numFailedTasks",
              "numKilledTasks", "numActiveStages", "numCompletedStages", "numSkippedStages", "numFailedStages")
STAGE_FIELDS = ("numTasks", "numActiveTasks", "numCompleteTasks", "numFailedTasks", "numKilledTasks")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


class SparkProgress(LoggingConfigurable):
    """Reads a kernel's Spark jobs for one cell; bounded caches, no background work."""

    share_for = Float(0.5, help="Seconds one answer for a cell is shared between polls.").tag(config=True)
    max_jobs = Integer(200, help="Most jobs of one cell reported (the newest).").tag(config=True)
    timeout = Float(5.0, help="Seconds one call to the driver's REST API may take.").tag(config=True)
    max_stage_reads = Integer(
        20, help="Most unfinished stages read per poll; the others show what the last poll read.").tag(config=True)

    def __init__(self, rm: ResourceManagerClient, ui_url, **kwargs: Any) -> None:  # noqa: ANN001
        super().__init__(**kwargs)
        self.rm = rm
        self.ui_url = ui_url  # app id -> the Spark UI's URL through the edge
        self._answers: OrderedDict[tuple[str, str], tuple[float, dict]] = OrderedDict()
        self._final_stages: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._last_seen: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}

    async def _rest(self, app_id: str, path: str) -> Any:
        try:
            resp = await self.rm.web_proxy(app_id, f"/api/v1/applications/{app_id}{path}",
                                           accept="application/json", timeout=self.timeout)
        except RMUnavailable as e:
            self.log.warning("progress of %s: %s", app_id, e)
            raise PublicError(503, "the YARN ResourceManager is unreachable; try again shortly") from e
        except ProxyPageError as e:
            raise PublicError(e.status, f"the Spark UI of {app_id} could not be read: {e.message}") from e
        if resp.code in (301, 302, 303, 307, 308):
            raise PublicError(410, f"the Spark UI of {app_id} is gone (its driver has ended)", reason="Gone")
        if resp.code != 200:
            raise PublicError(502, f"the Spark UI of {app_id} answered HTTP {resp.code} for its jobs",
                              reason="Bad Gateway")
        try:
            return json.loads(resp.body or b"null")
        except ValueError as e:
            raise PublicError(502, f"the Spark UI of {app_id} answered something that is not JSON") from e

    async def for_cell(self, app: dict, cell: str) -> dict:
        """The jobs (and their stages) that ``cell`` ran in ``app``, shared briefly between callers."""
        if not CELL_ID.fullmatch(cell or ""):
            raise PublicError(400, "`cell` must be the id of the cell's execute request (letters, digits, - and "
                                   "_, at most 100)")
        app_id = app["id"]
        if app.get("state") != "RUNNING":
            return {"app": app_id, "state": app.get("state") or "", "ui": None, "jobs": []}
        key = (app_id, cell)
        hit = self._answers.get(key)
        if hit is not None and hit[0] > monotonic():
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            answer = await self._read(app_id, cell)
            fut.set_result(answer)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters get it, nobody is left with an unread one
            raise
        finally:
            self._inflight.pop(key, None)
        self._answers[key] = (monotonic() + self.share_for, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > 5000:
            self._answers.popitem(last=False)
        return answer

    async def _read(self, app_id: str, cell: str) -> dict:
        tag = CELL_TAG + cell
        jobs = await self._rest(app_id, "/jobs")
        if not isinstance(jobs, list):
            raise PublicError(502, f"the Spark UI of {app_id} answered its jobs in a form yardlab does not know")
        mine = [j for j in jobs if isinstance(j, dict) and tag in (j.get("jobTags") or ())
                and isinstance(j.get("jobId"), int)]
        mine.sort(key=lambda j: j["jobId"])
        mine = mine[-self.max_jobs:]
        ui = self.ui_url(app_id)
        stage_ids = sorted({s for j in mine for s in (j.get("stageIds") or ()) if isinstance(s, int)})
        stages = {s: self._final_stages[(app_id, s)] for s in stage_ids if (app_id, s) in self._final_stages}
        # the unfinished ones, newest first, at most max_stage_reads per poll (a bound per poll)
        to_read = [s for s in reversed(stage_ids) if s not in stages][:self.max_stage_reads]
        stages.update(zip(to_read, await asyncio.gather(*(self._stage(app_id, s) for s in to_read)), strict=True))
        for s in stage_ids:
            if s not in stages:
                stages[s] = self._last_seen.get((app_id, s))
        out_jobs = []
        for j in mine:
            out_jobs.append({
                "id": j["jobId"],
                "name": str(j.get("name") or "")[:300],
                "status": str(j.get("status") or ""),
                **{f: _count(j.get(f)) for f in JOB_FIELDS},
                "url": f"{ui}jobs/job/?id={j['jobId']}",
                "stages": [stages[s] for s in sorted(j.get("stageIds") or ()) if stages.get(s)],
            })
        return {"app": app_id, "state": "RUNNING", "ui": ui, "jobs": out_jobs}

    async def _stage(self, app_id: str, stage_id: int) -> dict | None:
        """The newest attempt of a stage; remembered once it is final (it cannot change any more)."""
        try:
            data = await self._rest(app_id, f"/stages/{stage_id}?details=false&withSummaries=false")
        except PublicError as e:
            if e.status == 502:
                return None  # a stage Spark no longer keeps (spark.ui.retainedStages): left out
            raise
        attempts = [a for a in data if isinstance(a, dict)] if isinstance(data, list) else []
        if not attempts:
            return None
        a = max(attempts, key=lambda x: _count(x.get("attemptId")))
        ui = self.ui_url(app_id)
        attempt = _count(a.get("attemptId"))
        stage = {"id": stage_id, "attempt": attempt, "name": str(a.get("name") or "")[:300],
                 "status": str(a.get("status") or ""), **{f: _count(a.get(f)) for f in STAGE_FIELDS},
                 "url": f"{ui}stages/stage/?id={stage_id}&attempt={attempt}"}
        if stage["status"] in FINAL_STAGE:
            self._final_stages[(app_id, stage_id)] = stage
            while len(self._final_stages) > 50_000:
                self._final_stages.popitem(last=False)
        else:
            self._last_seen[(app_id, stage_id)] = stage
            self._last_seen.move_to_end((app_id, stage_id))
            while len(self._last_seen) > 50_000:
                self._last_seen.popitem(last=False)
        return stage
