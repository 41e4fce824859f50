import { ISignal, Signal } from '@lumino/signaling';

/** One stage of a cell's Spark job, as the edge reports it (Spark's REST API, trimmed). */
export interface IStageProgress {
  id: number;
  attempt: number;
  name: string;
  /** ACTIVE, PENDING, COMPLETE, SKIPPED or FAILED */
  status: string;
  numTasks: number;
  numActiveTasks: number;
  numCompleteTasks: number;
  numFailedTasks: number;
  numKilledTasks: number;
  /** The stage's page in the Spark UI, through the edge. */
  url: string;
}

/** One Spark job a cell ran. */
export interface IJobProgress {
  id: number;
  name: string;
  /** RUNNING, SUCCEEDED, FAILED or UNKNOWN */
  status: string;
  numTasks: number;
  numActiveTasks: number;
  numCompletedTasks: number;
  numSkippedTasks: number;
  numFailedTasks: number;
  url: string;
  stages: IStageProgress[];
}

/** GET /yardlab/api/kernels/<id>/progress?cell=<execute request id> */
export interface IProgressReply {
  app: string | null;
  state: string;
  /** The application's Spark UI through the edge, or null when it has none now. */
  ui: string | null;
  jobs: IJobProgress[];
}

/**
 * The live progress of one cell's Spark jobs: polled while the cell runs, once more when it ends.
 */
export class CellProgress {
  constructor(options: CellProgress.IOptions) {
    this._fetch = options.fetch;
    this._interval = options.interval ?? 1000;
    this._now = options.now ?? (() => Date.now());
    this._started = this._now();
  }

  /** Emitted after every poll and when the cell ends. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The newest answer, or null before the first. */
  get reply(): IProgressReply | null {
    return this._reply;
  }

  /** Whether the cell still runs (polling goes on). */
  get running(): boolean {
    return this._running;
  }

  /** Why the last poll failed, or null. */
  get error(): string | null {
    return this._error;
  }

  /** The HTTP status that stopped the polling for good (404: not a kernel of the edge's), or null. */
  get stoppedBy(): number | null {
    return this._stoppedBy;
  }

  /** Whether there is anything to show: the cell ran at least one Spark job. */
  get hasJobs(): boolean {
    return (this._reply?.jobs.length ?? 0) > 0;
  }

  /** Seconds from the start of the cell to now (running) or to its end. */
  get seconds(): number {
    return ((this._ended ?? this._now()) - this._started) / 1000;
  }

  /** Begin polling (the first poll after one interval: short cells cost nothing). */
  start(): void {
    if (this._timer !== null || !this._running) {
      return;
    }
    this._timer = setTimeout(() => void this._tick(), this._interval);
  }

  /** The cell ended: one last poll, then stop. */
  async finish(): Promise<void> {
    if (!this._running) {
      return;
    }
    this._running = false;
    this._ended = this._now();
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._polledOnce || this._inFlight) {
      await this._poll();
      // Spark's status store follows its listener bus: a job may still read RUNNING for a moment
      for (let i = 0; i < 5 && this._anyRunning() && this._stoppedBy === null; i++) {
        await new Promise(resolve => setTimeout(resolve, 600));
        await this._poll();
      }
    }
    this._changed.emit();
  }

  /** Stop for good without a last poll (the cell was removed or re-run). */
  dispose(): void {
    this._running = false;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    Signal.clearData(this);
  }

  /** One line: jobs, stages, tasks and time. */
  summary(): string {
    const jobs = this._reply?.jobs ?? [];
    const stages = jobs.reduce((n, j) => n + j.stages.length, 0);
    const done = jobs.reduce((n, j) => n + j.numCompletedTasks, 0);
    const total = jobs.reduce((n, j) => n + j.numTasks - j.numSkippedTasks, 0);
    const failed = jobs.filter(j => j.status === 'FAILED').length;
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    const parts = [
      `Spark: ${plural(jobs.length, 'job')}`,
      plural(stages, 'stage'),
      `${done}/${total} tasks`
    ];
    if (failed > 0) {
      parts.push(`${failed} failed`);
    }
    parts.push(`${this.seconds.toFixed(1)} s`);
    return parts.join(' · ');
  }

  private _anyRunning(): boolean {
    return (this._reply?.jobs ?? []).some(j => j.status === 'RUNNING');
  }

  private async _tick(): Promise<void> {
    this._timer = null;
    await this._poll();
    if (this._running) {
      this._changed.emit();
      this._timer = setTimeout(() => void this._tick(), this._interval);
    }
  }

  private async _poll(): Promise<void> {
    this._inFlight = true;
    try {
      this._reply = await this._fetch();
      this._error = null;
    } catch (e) {
      this._error = e instanceof Error ? e.message : String(e);
      if (CellProgress.isFinal(e)) {
        // not a kernel of the edge's, or not one's own: stop asking
        this._running = false;
        this._stoppedBy = (e as any).response.status;
      }
    } finally {
      this._inFlight = false;
      this._polledOnce = true;
    }
  }

  private _fetch: () => Promise<IProgressReply>;
  private _interval: number;
  private _now: () => number;
  private _started: number;
  private _ended: number | null = null;
  private _stoppedBy: number | null = null;
  private _reply: IProgressReply | null = null;
  private _error: string | null = null;
  private _running = true;
  private _inFlight = false;
  private _polledOnce = false;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _changed = new Signal<this, void>(this);
}

export namespace CellProgress {
  export interface IOptions {
    /** One poll of the edge for this cell. */
    fetch: () => Promise<IProgressReply>;
    /** Milliseconds between polls (default 1000). */
    interval?: number;
    /** The clock (tests). */
    now?: () => number;
  }

  /** An answer that will not change by asking again: no such kernel here, or not the caller's. */
  export function isFinal(e: unknown): boolean {
    const status = (e as { response?: { status?: number } })?.response?.status;
    return status === 400 || status === 403 || status === 404 || status === 410;
  }

  /** Percent of a stage's tasks done (skipped and complete stages count as whole). */
  export function stagePercent(stage: IStageProgress): number {
    if (stage.status === 'COMPLETE' || stage.status === 'SKIPPED') {
      return 100;
    }
    if (stage.numTasks <= 0) {
      return 0;
    }
    return Math.min(100, Math.round((100 * stage.numCompleteTasks) / stage.numTasks));
  }
}
