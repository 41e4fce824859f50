import { Poll } from '@lumino/polling';

import { PolledModel } from '../polled';

/**
 * The smallest polled model: counts its requests, and fails while `fail` is set.
 */
class Counter extends PolledModel {
  constructor(interval: number = Poll.NEVER) {
    super({ frequency: { interval, backoff: true, max: 60 * 1000 }, name: 'test:counter' });
  }

  calls = 0;
  fail: Error | null = null;

  protected async _update(): Promise<void> {
    this.calls++;
    if (this.fail) {
      this._fail(this.fail);
      throw this.fail;
    }
    this._error = null;
    this._loaded = true;
    this._changed.emit();
  }
}

describe('PolledModel', () => {
  let model: Counter;
  afterEach(() => model?.dispose());

  it('asks on refresh and keeps the error of a failed request', async () => {
    model = new Counter();
    expect(model.loaded).toBe(false);
    expect(model.error).toBeNull();

    await model.refresh();
    expect(model.calls).toBe(1);
    expect(model.loaded).toBe(true);

    let emitted = 0;
    model.changed.connect(() => emitted++);
    model.fail = new Error('down');
    await model.refresh(); // never rejects
    expect(model.error).toBe('down');
    expect(model.poll.state.phase).toBe('rejected');
    expect(emitted).toBe(1);

    model.fail = null;
    await model.refresh();
    expect(model.error).toBeNull();
    expect(emitted).toBe(2);
  });

  it('asks at once when it becomes visible again, and only then', async () => {
    const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));
    model = new Counter();
    await model.refresh();
    const asked = model.calls;

    model.visible = true; // no change: no request
    await sleep(20);
    expect(model.calls).toBe(asked);

    model.visible = false;
    expect(model.visible).toBe(false);
    expect(model.calls).toBe(asked);

    model.visible = true;
    await sleep(20);
    expect(model.calls).toBe(asked + 1);
  });

  it('stops the poll and its signal when disposed', async () => {
    model = new Counter();
    let emitted = 0;
    model.changed.connect(() => emitted++);
    model.dispose();
    expect(model.isDisposed).toBe(true);
    expect(model.poll.isDisposed).toBe(true);
    model.dispose(); // a second time is harmless
    expect(emitted).toBe(0);
  });
});
