import { IDisposable } from '@lumino/disposable';
import { IPoll, Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

/**
 * A model kept live by a Lumino `Poll`: the poll backs off on errors, stands by while
 * the panel showing the model or the page is hidden, and asks at once when it is shown again.
 *
 * A subclass implements `_update` (one request and what it changes) and keeps `_loaded`,
 * `_error` and `_changed` up to date.
 */
export abstract class PolledModel implements IDisposable {
  constructor(options: PolledModel.IOptions) {
    this._poll = new Poll({
      factory: () => this._update(),
      frequency: options.frequency,
      standby: () => (this._visible ? 'when-hidden' : true),
      name: options.name
    });
  }

  /** Emitted whenever the model changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Whether the first reply has arrived. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** The message of the last failed request, or `null` if it succeeded. */
  get error(): string | null {
    return this._error;
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

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /**
   * Ask now; resolves once the reply is in (errors are kept in `error`).
   */
  async refresh(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  /**
   * One poll: send the request and take in the reply. A rejection makes the poll back off.
   */
  protected abstract _update(): Promise<void>;

  /**
   * Keep the message of a failed request in `error` and say so; the caller rethrows,
   * so the poll backs off.
   */
  protected _fail(reason: unknown): void {
    this._error = reason instanceof Error ? reason.message : String(reason);
    this._changed.emit();
  }

  protected _loaded = false;
  protected _error: string | null = null;
  protected _changed = new Signal<this, void>(this);
  private _poll: Poll;
  private _visible = true;
}

/**
 * The namespace for `PolledModel` statics.
 */
export namespace PolledModel {
  /**
   * Options to create a `PolledModel`.
   */
  export interface IOptions {
    /** How often to poll, and how far to back off after errors. */
    frequency: Partial<IPoll.Frequency>;
    /** The poll's name, for debugging. */
    name: string;
  }
}
