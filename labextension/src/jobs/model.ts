import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import type { IConditionalReply } from '../handler';
import type { IApp, IAppsReply, IKillReply } from '../tokens';

/**
 * YARN states after which an application does not change any more.
 */
export const FINAL_STATES: ReadonlySet<string> = new Set([
  'FINISHED',
  'FAILED',
  'KILLED'
]);

/**
 * The user's YARN applications, kept live by a poll that backs off on errors, stands by while
 * the panel or the page is hidden, and asks with `If-None-Match` so unchanged lists cost a 304.
 */
export class JobsModel implements IDisposable {
  constructor(options: JobsModel.IOptions) {
    this._fetchApps = options.fetchApps;
    this._killApp = options.killApp;
    this._poll = new Poll({
      factory: () => this._update(),
      frequency: {
        interval: options.interval ?? 3000,
        backoff: true,
        max: options.maxInterval ?? 60 * 1000
      },
      standby: () => (this._visible ? 'when-hidden' : true),
      name: 'yardlab:jobs'
    });
  }

  /** Emitted whenever the applications, the error or a kill in flight change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** All of the user's applications, as last reported (newest first). */
  get apps(): readonly IApp[] {
    return this._apps;
  }

  /** The applications that have not ended. */
  get active(): IApp[] {
    return this._apps.filter(app => !FINAL_STATES.has(app.state));
  }

  /** The applications that have ended (finished, failed or killed). */
  get finished(): IApp[] {
    return this._apps.filter(app => FINAL_STATES.has(app.state));
  }

  /** Whether the first reply has arrived. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** The message of the last failed request, or `null` if it succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** The ETag of the last reply, sent as `If-None-Match` with the next request. */
  get etag(): string | null {
    return this._etag;
  }

  /** The poll behind the model (its state shows the current interval and phase). */
  get poll(): Poll {
    return this._poll;
  }

  /**
   * Whether the panel showing the model is visible; the poll stands by while it is not,
   * and asks at once when it becomes visible again.
   */
  get visible(): boolean {
    return this._visible;
  }
  set visible(visible: boolean) {
    if (visible === this._visible) {
      return;
    }
    this._visible = visible;
    if (visible) {
      void this.refresh();
    }
  }

  /** Whether a kill of the application is in flight. */
  isKilling(id: string): boolean {
    return this._killing.has(id);
  }

  /** The running applications' total memory (MB) and vcores: the user's share of the cluster. */
  get usage(): { memoryMB: number; vcores: number } {
    let memoryMB = 0;
    let vcores = 0;
    for (const app of this.active) {
      memoryMB += app.allocatedMB;
      vcores += app.allocatedVCores;
    }
    return { memoryMB, vcores };
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /**
   * Ask for the applications now; resolves once the reply is in (errors are kept in `error`).
   */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  /**
   * Kill an application. The edge confirms the kill with YARN before it answers, so the
   * promise settles when the application has really ended (or the kill failed).
   *
   * @returns the edge's confirmation
   * @throws the edge's error, e.g. a 409 `APIError` when the application had already ended
   */
  async kill(id: string): Promise<IKillReply> {
    this._killing.add(id);
    this._changed.emit();
    try {
      return await this._killApp(id);
    } finally {
      this._killing.delete(id);
      if (!this.isDisposed) {
        this._changed.emit();
        void this.refresh();
      }
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _update(): Promise<void> {
    let reply: IConditionalReply<IAppsReply>;
    try {
      reply = await this._fetchApps(this._etag);
    } catch (reason) {
      this._error = reason instanceof Error ? reason.message : String(reason);
      this._changed.emit();
      throw reason; // a rejected tick makes the poll back off
    }
    if (this.isDisposed) {
      return;
    }
    const recovered = this._error !== null;
    this._error = null;
    if (reply.data === null) {
      if (recovered) {
        this._changed.emit();
      }
      return;
    }
    this._apps = reply.data.apps;
    this._etag = reply.etag;
    this._loaded = true;
    this._changed.emit();
  }

  private _fetchApps: JobsModel.IOptions['fetchApps'];
  private _killApp: JobsModel.IOptions['killApp'];
  private _poll: Poll;
  private _apps: IApp[] = [];
  private _etag: string | null = null;
  private _loaded = false;
  private _error: string | null = null;
  private _visible = true;
  private _killing = new Set<string>();
  private _changed = new Signal<this, void>(this);
}

/**
 * The namespace for `JobsModel` statics.
 */
export namespace JobsModel {
  /**
   * Options to create a `JobsModel`.
   */
  export interface IOptions {
    /** `GET /yardlab/api/apps` with `If-None-Match: etag`; `data: null` on a 304. */
    fetchApps: (etag: string | null) => Promise<IConditionalReply<IAppsReply>>;
    /** `DELETE /yardlab/api/apps/<id>`: resolves once YARN confirms the kill. */
    killApp: (id: string) => Promise<IKillReply>;
    /** Milliseconds between polls while all is well; 3 s by default. */
    interval?: number;
    /** Longest interval the poll backs off to after errors; 60 s by default. */
    maxInterval?: number;
  }
}

/**
 * Elapsed time as `1h 02m`, `3m 05s` or `42s`.
 */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) {
    return `${h}h ${pad(m)}m`;
  }
  if (m > 0) {
    return `${m}m ${pad(s)}s`;
  }
  return `${s}s`;
}

/**
 * Memory in MB as `512 MB` or `2.0 GB`.
 */
export function formatMemory(mb: number): string {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb} MB`;
}
