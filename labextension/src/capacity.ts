import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { JobsModel, formatMemory } from './jobs/model';
import { ReplyModel } from './model';
import type { IClusterInfo } from './tokens';

/**
 * Cluster capacity (memory and vcores used of total), refreshed by a poll that stands by
 * while the page is hidden.
 */
export class ClusterModel extends ReplyModel<IClusterInfo> {
  constructor(options: ClusterModel.IOptions) {
    super({ fetch: options.fetchCluster });
    this._poll = new Poll({
      factory: async () => {
        await this.refresh();
        if (this.error !== null) {
          throw new Error(this.error); // back off while the edge is away
        }
      },
      frequency: { interval: options.interval ?? 15 * 1000, backoff: true, max: 5 * 60 * 1000 },
      standby: 'when-hidden',
      name: 'yardlab:cluster'
    });
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private _poll: Poll;
}

/**
 * The namespace for `ClusterModel` statics.
 */
export namespace ClusterModel {
  /**
   * Options to create a `ClusterModel`.
   */
  export interface IOptions {
    /** Fetches `GET /yardlab/api/cluster`. */
    fetchCluster: () => Promise<IClusterInfo>;
    /** Milliseconds between polls; 15 s by default. */
    interval?: number;
  }
}

/**
 * The capacity line: `Cluster 3.0 GB of 6.0 GB · 3 of 4 vcores · yours 1.0 GB · 1 vcore`.
 */
export function capacityText(
  cluster: IClusterInfo | null,
  mine: { memoryMB: number; vcores: number },
  error: string | null
): string {
  if (cluster === null) {
    return error !== null ? `Cluster capacity unavailable: ${error}` : 'Reading cluster capacity…';
  }
  const { memory, vcores } = cluster;
  return (
    `Cluster ${formatMemory(memory.usedMB)} of ${formatMemory(memory.totalMB)} · ` +
    `${vcores.used} of ${vcores.total} vcores · ` +
    `yours ${formatMemory(mine.memoryMB)} · ${mine.vcores} vcore${mine.vcores === 1 ? '' : 's'}`
  );
}

/**
 * One line with the cluster's use and the user's share of it.
 */
export class CapacityLine extends Widget {
  constructor(options: CapacityLine.IOptions) {
    super();
    this.addClass('jp-yardlab-capacity');
    this._cluster = options.cluster;
    this._jobs = options.jobs;
    this._cluster.changed.connect(this._render, this);
    this._jobs.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this._cluster.changed.disconnect(this._render, this);
    this._jobs.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const cluster = this._cluster.reply;
    this.node.textContent = capacityText(cluster, this._jobs.usage, this._cluster.error);
    this.toggleClass('jp-mod-error', cluster === null && this._cluster.error !== null);
    if (cluster) {
      const pct = (used: number, total: number) =>
        total > 0 ? `${Math.round((100 * used) / total)}%` : '—';
      this.node.title =
        `Memory: ${pct(cluster.memory.usedMB, cluster.memory.totalMB)} used, ` +
        `vcores: ${pct(cluster.vcores.used, cluster.vcores.total)} used`;
    }
  }

  private _cluster: ClusterModel;
  private _jobs: JobsModel;
}

/**
 * The namespace for `CapacityLine` statics.
 */
export namespace CapacityLine {
  /**
   * Options to create a `CapacityLine`.
   */
  export interface IOptions {
    /** Cluster totals. */
    cluster: ClusterModel;
    /** The user's applications, for their share. */
    jobs: JobsModel;
  }
}
