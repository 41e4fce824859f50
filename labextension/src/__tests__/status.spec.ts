import { StatusModel } from '../status';
import type { IServerStatus } from '../tokens';

/**
 * A promise with its resolve and reject functions exposed, to finish requests in any order.
 */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const STATUS: IServerStatus = { version: '1.2.3', edge_url: '' };

describe('StatusModel', () => {
  it('reports that it is checking before the first reply', () => {
    const model = new StatusModel({ fetchStatus: () => Promise.resolve(STATUS) });
    expect(model.status).toBeNull();
    expect(model.error).toBeNull();
    expect(model.text).toBe('Checking server extension…');
  });

  it('stores the reply and shows the version', async () => {
    const model = new StatusModel({ fetchStatus: () => Promise.resolve(STATUS) });
    const seen: boolean[] = [];
    model.changed.connect(() => seen.push(model.pending));

    await model.refresh();

    expect(model.status).toEqual(STATUS);
    expect(model.error).toBeNull();
    expect(model.text).toBe('Server extension 1.2.3');
    expect(seen).toEqual([true, false]);
  });

  it('stores the error message instead of rejecting', async () => {
    const model = new StatusModel({
      fetchStatus: () => Promise.reject(new Error('Forbidden'))
    });

    await expect(model.refresh()).resolves.toBeUndefined();

    expect(model.status).toBeNull();
    expect(model.error).toBe('Forbidden');
    expect(model.pending).toBe(false);
    expect(model.text).toBe('Server extension unavailable: Forbidden');
  });

  it('keeps the last good status but clears the error after a recovery', async () => {
    let fail = true;
    const model = new StatusModel({
      fetchStatus: () =>
        fail ? Promise.reject('offline') : Promise.resolve(STATUS)
    });

    await model.refresh();
    expect(model.error).toBe('offline');
    fail = false;
    await model.refresh();

    expect(model.error).toBeNull();
    expect(model.status).toEqual(STATUS);
  });

  it('ignores a slow reply to an older request', async () => {
    const first = deferred<IServerStatus>();
    const second = deferred<IServerStatus>();
    const replies = [first.promise, second.promise];
    const model = new StatusModel({ fetchStatus: () => replies.shift()! });

    const older = model.refresh();
    const newer = model.refresh();
    second.resolve({ version: '2.0.0', edge_url: 'http://edge:8080' });
    await newer;
    first.resolve({ version: '1.0.0', edge_url: '' });
    await older;

    expect(model.status?.version).toBe('2.0.0');
    expect(model.pending).toBe(false);
  });

  it('stops emitting once disposed', async () => {
    const reply = deferred<IServerStatus>();
    const model = new StatusModel({ fetchStatus: () => reply.promise });
    const refreshing = model.refresh();
    let emitted = 0;
    model.changed.connect(() => emitted++);

    model.dispose();
    reply.resolve(STATUS);
    await refreshing;

    expect(model.isDisposed).toBe(true);
    expect(model.status).toBeNull();
    expect(emitted).toBe(0);
  });
});
