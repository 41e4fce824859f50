import type { IConditionalReply } from '../handler';
import { PolledModel } from '../polled';
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
 * `changed` is emitted whenever the applications, the error or a kill in flight change.
 */
export class JobsModel extends PolledModel {
  constructor(options: JobsModel.IOptions) {
    super({
      frequency: {
        interval: options.interval ?? 3000,
        backoff: true,
        max: options.maxInterval ?? 60 * 1000
      },
      name: 'yardlab:jobs'
    });
    this._fetchApps = options.fetchApps;
    this._killApp = options.killApp;
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

  /** The ETag of the last reply, sent as `If-None-Match` with the next request. */
  get etag(): string | null {
    return this._etag;
  }

  /** Whether a kill of the application is in flight. */
  isKilling(id: string): boolean {
    return this._killing.has(id);
  }

  /**
   * The running applications' total memory (MB) and vcores: the user's share of the cluster; and
   * how many of those applications are warm kernels, with their memory.
   */
  get usage(): { memoryMB: number; vcores: number; warm: number; warmMB: number } {
    let memoryMB = 0;
    let vcores = 0;
    let warm = 0;
    let warmMB = 0;
    for (const app of this.active) {
      memoryMB += app.allocatedMB;
      vcores += app.allocatedVCores;
      if (app.warm) {
        warm += 1;
        warmMB += app.allocatedMB;
      }
    }
    return { memoryMB, vcores, warm, warmMB };
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

  protected async _update(): Promise<void> {
    let reply: IConditionalReply<IAppsReply>;
    try {
      reply = await this._fetchApps(this._etag);
    } catch (reason) {
      this._fail(reason);
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
  private _apps: IApp[] = [];
  private _etag: string | null = null;
  private _killing = new Set<string>();
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
 * What to say about a kernel's Kerberos credentials: its delegation tokens can be renewed until
 * `expiresMs` (ms since the epoch) and no longer, so a kernel meant to outlive that must be
 * restarted first.  `soon` within a day.  Null when the edge does not know (simple authentication,
 * or not a kernel).
 */
export function credentialsNote(
  expiresMs: number | null | undefined,
  now: number = Date.now()
): { text: string; soon: boolean } | null {
  if (!expiresMs || expiresMs <= 0) {
    return null;
  }
  const left = expiresMs - now;
  if (left <= 0) {
    return {
      text: 'Credentials expired: restart the kernel to reach HDFS and YARN again',
      soon: true
    };
  }
  const day = 24 * 3600 * 1000;
  const d = Math.floor(left / day);
  const h = Math.floor((left % day) / 3600000);
  const m = Math.floor((left % 3600000) / 60000);
  const span =
    d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${Math.max(1, m)} min`;
  return {
    text: `Credentials expire in ${span}: restart the kernel before then`,
    soon: left < day
  };
}

/**
 * Memory in MB as `512 MB` or `2.0 GB`.
 */
export function formatMemory(mb: number): string {
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb} MB`;
}
