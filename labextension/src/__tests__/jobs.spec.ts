import { Poll } from '@lumino/polling';

import type { IConditionalReply } from '../handler';
import {
  JobsModel,
  credentialsNote,
  formatElapsed,
  formatMemory
} from '../jobs/model';
import type { IApp, IAppsReply, IKillReply } from '../tokens';

function app(id: string, state: string, extra: Partial<IApp> = {}): IApp {
  return {
    id,
    name: `name of ${id}`,
    user: 'guest',
    queue: 'default',
    state,
    finalStatus: 'UNDEFINED',
    progress: 10,
    startedTime: 1000,
    finishedTime: null,
    elapsedTime: 5000,
    allocatedMB: 1024,
    allocatedVCores: 1,
    runningContainers: 1,
    trackingUrl: '',
    applicationType: 'SPARK',
    diagnostics: '',
    kernel: null,
    notebook: null,
    environment: null,
    waiting: null,
    ...extra
  };
}

/**
 * A stand-in for `GET apps` that answers 304 when the client sends the current ETag,
 * and records every If-None-Match it got.
 */
class AppsServer {
  apps: IApp[] = [];
  version = 1;
  fail: Error | null = null;
  seen: (string | null)[] = [];

  fetch = async (etag: string | null): Promise<IConditionalReply<IAppsReply>> => {
    this.seen.push(etag);
    if (this.fail) {
      throw this.fail;
    }
    const current = `"v${this.version}"`;
    if (etag === current) {
      return { data: null, etag };
    }
    return { data: { apps: this.apps, next_cursor: null }, etag: current };
  };
}

function models(server: AppsServer, killApp = jest.fn<Promise<IKillReply>, [string]>()) {
  // no timed polls (a pending timer would also keep jest from exiting): the tests call refresh()
  return new JobsModel({ fetchApps: server.fetch, killApp, interval: Poll.NEVER });
}

describe('JobsModel', () => {
  let model: JobsModel;
  afterEach(() => model?.dispose());

  it('sends the last ETag and keeps the list on a 304', async () => {
    const server = new AppsServer();
    server.apps = [app('application_1_0001', 'RUNNING')];
    model = models(server);
    await model.refresh();
    expect(model.apps.map(a => a.id)).toEqual(['application_1_0001']);
    expect(model.etag).toBe('"v1"');

    let emitted = 0;
    model.changed.connect(() => emitted++);
    await model.refresh();

    expect(server.seen[server.seen.length - 1]).toBe('"v1"');
    expect(model.apps.map(a => a.id)).toEqual(['application_1_0001']);
    expect(emitted).toBe(0); // unchanged: nothing to redraw

    server.apps = [...server.apps, app('application_1_0002', 'ACCEPTED')];
    server.version = 2;
    await model.refresh();
    expect(model.apps.map(a => a.id)).toEqual(['application_1_0001', 'application_1_0002']);
    expect(model.etag).toBe('"v2"');
    expect(emitted).toBe(1);
  });

  it('splits running from ended applications and sums the running ones', async () => {
    const server = new AppsServer();
    server.apps = [
      app('a1', 'RUNNING', { allocatedMB: 2048, allocatedVCores: 2 }),
      app('a2', 'ACCEPTED', { allocatedMB: 0, allocatedVCores: 0, waiting: 'waiting in queue default' }),
      app('a3', 'KILLED', { allocatedMB: 0, finishedTime: 9000 }),
      app('a4', 'FINISHED', { finishedTime: 9000 })
    ];
    model = models(server);
    await model.refresh();

    expect(model.active.map(a => a.id)).toEqual(['a1', 'a2']);
    expect(model.finished.map(a => a.id)).toEqual(['a3', 'a4']);
    expect(model.usage).toEqual({ memoryMB: 2048, vcores: 2, warm: 0, warmMB: 0 });
  });

  it('counts warm kernels in the user share and says which part they are', async () => {
    const server = new AppsServer();
    server.apps = [
      app('a1', 'RUNNING', { allocatedMB: 2048, allocatedVCores: 2 }),
      app('a2', 'RUNNING', { allocatedMB: 2048, allocatedVCores: 2, warm: true }),
      app('a3', 'FINISHED', { finishedTime: 9000, warm: true })
    ];
    model = models(server);
    await model.refresh();
    expect(model.usage).toEqual({ memoryMB: 4096, vcores: 4, warm: 1, warmMB: 2048 });
  });

  it('keeps the last list on errors, backs off, and recovers', async () => {
    const server = new AppsServer();
    server.apps = [app('a1', 'RUNNING')];
    model = models(server);
    await model.refresh();

    server.fail = new Error('the yardlab edge service is unreachable');
    await model.refresh();
    expect(model.error).toBe('the yardlab edge service is unreachable');
    expect(model.apps.map(a => a.id)).toEqual(['a1']);
    expect(model.poll.state.phase).toBe('rejected');

    server.fail = null;
    await model.refresh();
    expect(model.error).toBeNull();
    expect(model.poll.state.phase).not.toBe('rejected');
  });

  it('backs off between failed polls, up to the maximum', async () => {
    jest.useFakeTimers();
    // the poll picks each wait at random between the base interval and three times the last one
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.5);
    try {
      const server = new AppsServer();
      server.fail = new Error('down');
      model = new JobsModel({
        fetchApps: server.fetch,
        killApp: jest.fn(),
        interval: 1000,
        maxInterval: 40_000
      });
      const intervals: number[] = [];
      model.poll.ticked.connect((_, state) => {
        if (state.phase === 'rejected') {
          intervals.push(state.interval);
        }
      });
      for (let i = 0; i < 60; i++) {
        await jest.advanceTimersByTimeAsync(10_000);
      }
      // ten minutes at one request a second would be 600; backing off, far fewer
      expect(server.seen.length).toBeLessThan(40);
      expect(Math.max(...intervals)).toBeLessThanOrEqual(40_000);
      expect(intervals[intervals.length - 1]).toBe(40_000);
    } finally {
      model.dispose();
      random.mockRestore();
      jest.useRealTimers();
    }
  });

  it('stands by while the panel is hidden and asks again when shown', async () => {
    const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));
    const server = new AppsServer();
    model = new JobsModel({ fetchApps: server.fetch, killApp: jest.fn(), interval: 20 });
    await sleep(100);
    expect(server.seen.length).toBeGreaterThan(1); // polling while visible

    model.visible = false;
    await sleep(50);
    const hidden = server.seen.length;
    await sleep(200);
    expect(server.seen.length).toBe(hidden);

    model.visible = true;
    await sleep(50);
    expect(server.seen.length).toBeGreaterThan(hidden);
  });

  it('marks an application as being killed until the edge confirms, then refreshes', async () => {
    const server = new AppsServer();
    server.apps = [app('a1', 'RUNNING')];
    let confirm!: (reply: IKillReply) => void;
    const killApp = jest.fn(
      (_id: string) => new Promise<IKillReply>(resolve => (confirm = resolve))
    );
    model = models(server, killApp);
    await model.refresh();

    const killing = model.kill('a1');
    expect(killApp).toHaveBeenCalledWith('a1');
    expect(model.isKilling('a1')).toBe(true);

    server.apps = [app('a1', 'KILLED', { finishedTime: 2000, finalStatus: 'KILLED' })];
    server.version = 2;
    const asked = server.seen.length;
    confirm({ id: 'a1', state: 'KILLED', killed: true });
    await expect(killing).resolves.toEqual({ id: 'a1', state: 'KILLED', killed: true });
    expect(model.isKilling('a1')).toBe(false);
    await model.poll.tick;
    expect(server.seen.length).toBeGreaterThan(asked);
    expect(model.finished.map(a => a.id)).toEqual(['a1']);
  });

  it('passes a refused kill on and clears the mark', async () => {
    const server = new AppsServer();
    server.apps = [app('a1', 'RUNNING')];
    const refusal = new Error('application a1 has already ended (FINISHED); there is nothing to kill');
    model = models(server, jest.fn((_id: string) => Promise.reject(refusal)));
    await model.refresh();

    await expect(model.kill('a1')).rejects.toBe(refusal);
    expect(model.isKilling('a1')).toBe(false);
  });
});

describe('formatting', () => {
  it('formats elapsed times', () => {
    expect(formatElapsed(42_000)).toBe('42s');
    expect(formatElapsed(185_000)).toBe('3m 05s');
    expect(formatElapsed(3_720_000)).toBe('1h 02m');
  });

  it('says when a kernel\'s credentials expire, and warns within a day', () => {
    const now = Date.UTC(2026, 10, 30, 12, 0, 0);
    const hour = 3600 * 1000;
    expect(credentialsNote(null, now)).toBeNull();
    expect(credentialsNote(0, now)).toBeNull();
    expect(credentialsNote(now + 7 * 24 * hour - hour, now)).toEqual({
      text: 'Credentials expire in 6 d 23 h: restart the kernel before then',
      soon: false
    });
    expect(credentialsNote(now + 5 * hour + 30 * 60 * 1000, now)).toEqual({
      text: 'Credentials expire in 5 h 30 min: restart the kernel before then',
      soon: true
    });
    expect(credentialsNote(now + 20 * 1000, now)?.text).toBe(
      'Credentials expire in 1 min: restart the kernel before then'
    );
    expect(credentialsNote(now - 1, now)).toEqual({
      text: 'Credentials expired: restart the kernel to reach HDFS and YARN again',
      soon: true
    });
  });

  it('formats memory', () => {
    expect(formatMemory(512)).toBe('512 MB');
    expect(formatMemory(2048)).toBe('2.0 GB');
  });
});
