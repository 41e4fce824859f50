import { ReplyModel } from './reply';
import type { IServerStatus } from './tokens';

/**
 * State of the sidebar's status line: the server extension's last reply or error.
 */
export class StatusModel extends ReplyModel<IServerStatus> {
  constructor(options: StatusModel.IOptions) {
    super({ fetch: options.fetchStatus });
  }

  /** The last status reply, or `null` before the first successful request. */
  get status(): IServerStatus | null {
    return this.reply;
  }

  /** One line describing the current state, for display. */
  get text(): string {
    if (this.error !== null) {
      return `Server extension unavailable: ${this.error}`;
    }
    if (this.status !== null) {
      return `Server extension ${this.status.version}`;
    }
    return 'Checking server extension…';
  }
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
