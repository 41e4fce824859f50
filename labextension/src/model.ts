import { ISignal, Signal } from '@lumino/signaling';

import type { IServerStatus } from './tokens';

/**
 * State of the sidebar's status line: the server extension's last reply or error.
 */
export class StatusModel {
  constructor(options: StatusModel.IOptions) {
    this._fetchStatus = options.fetchStatus;
  }

  /** Emitted whenever `status`, `error` or `pending` change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last status reply, or `null` before the first successful request. */
  get status(): IServerStatus | null {
    return this._status;
  }

  /** The message of the last failed request, or `null` if it succeeded. */
  get error(): string | null {
    return this._error;
  }

  /** Whether a request is in flight. */
  get pending(): boolean {
    return this._pending;
  }

  /** One line describing the current state, for display. */
  get text(): string {
    if (this._error !== null) {
      return `Server extension unavailable: ${this._error}`;
    }
    if (this._status !== null) {
      return `Server extension ${this._status.version}`;
    }
    return 'Checking server extension…';
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /**
   * Ask the server for its status.
   *
   * Never rejects: a failure is stored in `error`. When calls overlap, only the
   * reply to the latest one is kept, so a slow old reply cannot overwrite a newer one.
   */
  async refresh(): Promise<void> {
    const request = ++this._requests;
    this._pending = true;
    this._changed.emit();
    let status: IServerStatus | null = null;
    let error: string | null = null;
    try {
      status = await this._fetchStatus();
    } catch (reason) {
      error = reason instanceof Error ? reason.message : String(reason);
    }
    if (this._isDisposed || request !== this._requests) {
      return;
    }
    this._pending = false;
    if (error === null) {
      this._status = status;
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

  private _fetchStatus: () => Promise<IServerStatus>;
  private _changed = new Signal<this, void>(this);
  private _status: IServerStatus | null = null;
  private _error: string | null = null;
  private _pending = false;
  private _requests = 0;
  private _isDisposed = false;
}

/**
 * The namespace for `StatusModel` statics.
 */
export namespace StatusModel {
  /**
   * Options to create a `StatusModel`.
   */
  export interface IOptions {
    /** Fetches the server extension's status; rejects when it cannot be reached. */
    fetchStatus: () => Promise<IServerStatus>;
  }
}
