import { ISignal, Signal } from '@lumino/signaling';

/**
 * The last reply of one server request, or its error, refreshed on demand.
 */
export class ReplyModel<T> {
  constructor(options: ReplyModel.IOptions<T>) {
    this._fetch = options.fetch;
  }

  /** Emitted whenever `reply`, `error` or `pending` change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last reply, or `null` before the first successful request. */
  get reply(): T | null {
    return this._reply;
  }

  /** The message of the last failed request, or `null` if it succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** Whether a request is in flight. */
  get pending(): boolean {
    return this._pending;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * Send the request again.
   *
   * Never rejects: a failure is stored in `error` and the last good reply is kept.
   * When calls overlap, only the reply to the latest one is kept, so a slow old
   * reply cannot overwrite a newer one.
   */
  async refresh(): Promise<void> {
    const request = ++this._requests;
    this._pending = true;
    this._changed.emit();
    let reply: T | null = null;
    let error: string | null = null;
    try {
      reply = await this._fetch();
    } catch (reason) {
      error = reason instanceof Error ? reason.message : String(reason);
    }
    if (this._isDisposed || request !== this._requests) {
      return;
    }
    this._pending = false;
    if (error === null) {
      this._reply = reply;
    }
    this._error = error;
    this._changed.emit();
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _fetch: () => Promise<T>;
  private _changed = new Signal<this, void>(this);
  private _reply: T | null = null;
  private _error: string | null = null;
  private _pending = false;
  private _requests = 0;
  private _isDisposed = false;
}

/**
 * The namespace for `ReplyModel` statics.
 */
export namespace ReplyModel {
  /**
   * Options to create a `ReplyModel`.
   */
  export interface IOptions<T> {
    /** Sends the request; rejects when the server cannot be reached or refuses. */
    fetch: () => Promise<T>;
  }
}
