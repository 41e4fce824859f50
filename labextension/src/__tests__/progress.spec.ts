import { CellProgress, IProgressReply } from '../progress/model';

function reply(status: string, done: number): IProgressReply {
  return {
    app: 'application_1_1',
    state: 'RUNNING',
    ui: '/services/yardlab-edge/proxy/application_1_1/',
    jobs: [
      {
        id: 3,
        name: 'collect',
        status,
        numTasks: 8,
        numActiveTasks: 8 - done,
        numCompletedTasks: done,
        numSkippedTasks: 0,
        numFailedTasks: 0,
        url: '/services/yardlab-edge/proxy/application_1_1/jobs/job/?id=3',
        stages: [
          {
            id: 5,
            attempt: 0,
            name: 'map',
            status: done === 8 ? 'COMPLETE' : 'ACTIVE',
            numTasks: 8,
            numActiveTasks: 8 - done,
            numCompleteTasks: done,
            numFailedTasks: 0,
            numKilledTasks: 0,
            url: '/s'
          }
        ]
      }
    ]
  };
}

describe('CellProgress', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('polls every interval while the cell runs, once more when it ends, then stops', async () => {
    const answers = [reply('RUNNING', 2), reply('RUNNING', 6), reply('SUCCEEDED', 8)];
    const fetch = jest.fn(async () => answers.shift() ?? reply('SUCCEEDED', 8));
    const model = new CellProgress({ fetch, interval: 1000 });
    model.start();
    expect(fetch).not.toHaveBeenCalled(); // short cells cost nothing
    await jest.advanceTimersByTimeAsync(1000);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(model.hasJobs).toBe(true);
    expect(CellProgress.stagePercent(model.reply!.jobs[0].stages[0])).toBe(25);
    await jest.advanceTimersByTimeAsync(1000);
    expect(fetch).toHaveBeenCalledTimes(2);
    await model.finish();
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(model.running).toBe(false);
    expect(model.summary()).toMatch(/^Spark: 1 job · 1 stage · 8\/8 tasks · /);
    await jest.advanceTimersByTimeAsync(5000);
    expect(fetch).toHaveBeenCalledTimes(3);
  });

  it('stops asking for a kernel the edge does not know', async () => {
    const fetch = jest.fn(async () => {
      throw Object.assign(new Error('no kernel'), { response: { status: 404 } });
    });
    const model = new CellProgress({ fetch, interval: 1000 });
    model.start();
    await jest.advanceTimersByTimeAsync(1000);
    expect(model.running).toBe(false);
    expect(model.stoppedBy).toBe(404);
    await jest.advanceTimersByTimeAsync(5000);
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('keeps polling through a passing error and says what it was', async () => {
    let n = 0;
    const fetch = jest.fn(async () => {
      n += 1;
      if (n === 1) {
        throw Object.assign(new Error('the edge is unreachable'), { response: { status: 503 } });
      }
      return reply('RUNNING', 4);
    });
    const model = new CellProgress({ fetch, interval: 1000 });
    model.start();
    await jest.advanceTimersByTimeAsync(1000);
    expect(model.error).toBe('the edge is unreachable');
    expect(model.running).toBe(true);
    await jest.advanceTimersByTimeAsync(1000);
    expect(model.error).toBeNull();
    expect(model.hasJobs).toBe(true);
    model.dispose();
  });

  it('counts skipped and complete stages as whole', () => {
    const stage = reply('RUNNING', 0).jobs[0].stages[0];
    expect(CellProgress.stagePercent({ ...stage, status: 'SKIPPED' })).toBe(100);
    expect(CellProgress.stagePercent({ ...stage, numTasks: 0 })).toBe(0);
  });
});

describe('CellProgress at the end of a cell', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('asks again while Spark still reports a job running, then shows it ended', async () => {
    const answers = [reply('RUNNING', 4), reply('RUNNING', 8), reply('SUCCEEDED', 8)];
    const fetch = jest.fn(async () => answers.shift() ?? reply('SUCCEEDED', 8));
    const model = new CellProgress({ fetch, interval: 1000 });
    model.start();
    await jest.advanceTimersByTimeAsync(1000);
    const finished = model.finish();
    await jest.advanceTimersByTimeAsync(2000);
    await finished;
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(model.reply!.jobs[0].status).toBe('SUCCEEDED');
  });
});
