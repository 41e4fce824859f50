import { formatFileSize } from '@jupyterlab/filebrowser';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { ReplyModel } from '../reply';
import type { IStorageInfo } from '../tokens';

/**
 * How often storage usage is asked for again, in ms. HDFS sums a whole tree
 * for each root, so this is slow; the refresh button asks at once.
 */
const USAGE_INTERVAL = 5 * 60 * 1000;

/**
 * The user's storage roots and their usage, refreshed by a poll while the page is visible.
 */
export class StorageUsageModel extends ReplyModel<IStorageInfo> {
  constructor(options: StorageUsageModel.IOptions) {
    super({ fetch: options.fetchStorage });
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: USAGE_INTERVAL },
      standby: 'when-hidden',
      name: 'yardlab:hdfs-usage'
    });
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private _poll: Poll;
}

/**
 * The namespace for `StorageUsageModel` statics.
 */
export namespace StorageUsageModel {
  /**
   * Options to create a `StorageUsageModel`.
   */
  export interface IOptions {
    /** Fetches `GET /yardlab/api/storage`; rejects when it cannot be reached. */
    fetchStorage: () => Promise<IStorageInfo>;
  }
}

/**
 * One line per storage root: its name, total size and file count.
 */
export class StorageUsageView extends Widget {
  constructor(options: StorageUsageView.IOptions) {
    super();
    this.addClass('jp-yardlab-hdfsUsage');
    this._model = options.model;
    this._model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const { reply: info, error, pending } = this._model;
    const rows: HTMLElement[] = [];
    for (const root of info?.roots ?? []) {
      const usage = info?.usage[root.name.toLowerCase()];
      const row = document.createElement('div');
      row.className = 'jp-yardlab-hdfsUsage-row';
      row.dataset.root = root.name;
      row.title = root.writable ? root.path : `${root.path} (read-only)`;
      const name = document.createElement('span');
      name.className = 'jp-yardlab-hdfsUsage-name';
      name.textContent = root.name;
      const amount = document.createElement('span');
      amount.className = 'jp-yardlab-hdfsUsage-amount';
      amount.textContent = usage
        ? `${formatFileSize(usage.bytes, 1, 1024)} · ${Private.count(usage.files, 'file')}`
        : '—';
      row.append(name, amount);
      rows.push(row);
    }
    if (error !== null) {
      const line = document.createElement('div');
      line.className = 'jp-yardlab-hdfsUsage-error';
      line.textContent = `Storage usage unavailable: ${error}`;
      rows.push(line);
    } else if (info === null) {
      const line = document.createElement('div');
      line.className = 'jp-yardlab-hdfsUsage-pending';
      line.textContent = 'Counting storage usage…';
      rows.push(line);
    }
    this.node.replaceChildren(...rows);
    this.toggleClass('jp-mod-pending', pending);
  }

  private _model: StorageUsageModel;
}

/**
 * The namespace for `StorageUsageView` statics.
 */
export namespace StorageUsageView {
  /**
   * Options to create a `StorageUsageView`.
   */
  export interface IOptions {
    /** The usage to display. */
    model: StorageUsageModel;
  }
}

namespace Private {
  export function count(n: number, noun: string): string {
    return `${n.toLocaleString()} ${noun}${n === 1 ? '' : 's'}`;
  }
}
