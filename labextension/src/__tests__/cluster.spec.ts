import { capacityText } from '../cluster';
import type { IClusterInfo } from '../tokens';

const CLUSTER: IClusterInfo = {
  memory: { usedMB: 3072, totalMB: 8192, availableMB: 5120 },
  vcores: { used: 3, total: 8, available: 5 }
};

describe('capacityText', () => {
  it('shows cluster use of total and the user share', () => {
    expect(capacityText(CLUSTER, { memoryMB: 1024, vcores: 1 }, null)).toBe(
      'Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 1.0 GB · 1 vcore'
    );
  });

  it('says how much of the user share is warm kernels kept for them', () => {
    expect(capacityText(CLUSTER, { memoryMB: 3072, vcores: 3, warm: 1, warmMB: 2048 }, null)).toBe(
      'Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 3.0 GB · 3 vcores (1 warm kernel, 2.0 GB)'
    );
    expect(capacityText(CLUSTER, { memoryMB: 1024, vcores: 1, warm: 0, warmMB: 0 }, null)).toBe(
      'Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 1.0 GB · 1 vcore'
    );
  });

  it('says when the cluster cannot be read', () => {
    expect(capacityText(null, { memoryMB: 0, vcores: 0 }, 'Service Unavailable')).toBe(
      'Cluster capacity unavailable: Service Unavailable'
    );
    expect(capacityText(null, { memoryMB: 0, vcores: 0 }, null)).toBe('Reading cluster capacity…');
  });

  it('says whether Kafka is up on a site with Kafka, and nothing of it elsewhere', () => {
    const kafka = { bootstrap_servers: '127.0.0.1:9092', up: true, reason: null, brokers: 1 };
    expect(capacityText({ ...CLUSTER, kafka }, { memoryMB: 1024, vcores: 1 }, null)).toBe(
      'Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 1.0 GB · 1 vcore · Kafka: up'
    );
    const down = { ...kafka, up: false, reason: 'no broker answered at 127.0.0.1:9092', brokers: 0 };
    expect(capacityText({ ...CLUSTER, kafka: down }, { memoryMB: 1024, vcores: 1 }, null)).toBe(
      'Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 1.0 GB · 1 vcore · ' +
        'Kafka: unreachable (no broker answered at 127.0.0.1:9092)'
    );
    expect(
      capacityText({ ...CLUSTER, kafka: { ...kafka, up: null } }, { memoryMB: 1024, vcores: 1 }, null)
    ).toBe('Cluster 3.0 GB of 8.0 GB · 3 of 8 vcores · yours 1.0 GB · 1 vcore');
  });
});
