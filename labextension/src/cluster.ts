import { Poll } from '@lumino/polling';

import { formatMemory } from './jobs/model';
import { ReplyModel } from './reply';
import type { IClusterInfo, IKafkaInfo } from './tokens';

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
 * What the capacity line says of Kafka: `Kafka: up`, `Kafka: unreachable (<reason>)`, or nothing
 * when the site has no Kafka (or the edge has not asked it yet).
 */
export function kafkaText(kafka: IKafkaInfo | undefined): string {
  if (!kafka || kafka.up === null) {
    return '';
  }
  return kafka.up ? 'Kafka: up' : `Kafka: unreachable (${kafka.reason ?? 'no answer'})`;
}

/**
 * The capacity line: `Cluster 3.0 GB of 6.0 GB · 3 of 4 vcores · yours 1.0 GB · 1 vcore`, and
 * ` (1 warm kernel, 2.0 GB)` when some of the user's share is warm kernels kept for them, then
 * ` · Kafka: up` (or unreachable, with the reason) on a site with Kafka.
 */
export function capacityText(
  cluster: IClusterInfo | null,
  mine: { memoryMB: number; vcores: number; warm?: number; warmMB?: number },
  error: string | null
): string {
  if (cluster === null) {
    return error !== null ? `Cluster capacity unavailable: ${error}` : 'Reading cluster capacity…';
  }
  const { memory, vcores } = cluster;
  const kafka = kafkaText(cluster.kafka);
  return (
    `Cluster ${formatMemory(memory.usedMB)} of ${formatMemory(memory.totalMB)} · ` +
    `${vcores.used} of ${vcores.total} vcores · ` +
    `yours ${formatMemory(mine.memoryMB)} · ${mine.vcores} vcore${mine.vcores === 1 ? '' : 's'}` +
    (mine.warm
      ? ` (${mine.warm} warm kernel${mine.warm === 1 ? '' : 's'}, ${formatMemory(mine.warmMB ?? 0)})`
      : '') +
    (kafka ? ` · ${kafka}` : '')
  );
}
