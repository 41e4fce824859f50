import { Poll } from '@lumino/polling';

import {
  EMPTY_FORM,
  EnvironmentsModel,
  errorsFromReply,
  formFieldOf,
  formToRequest
} from '../environments/model';
import { APIError } from '../handler';
import type { IEnvironment, IEnvRequest } from '../tokens';

function env(name: string, status: IEnvironment['status'], extra: Partial<IEnvironment> = {}): IEnvironment {
  return {
    owner: 'guest',
    name,
    display_name: name,
    kind: 'pyspark',
    resources: {},
    packages: { pip: [], conda: [] },
    visibility: 'personal',
    status,
    phase: status,
    progress: status === 'ready' ? 100 : 0,
    error: null,
    kernel_name: status === 'ready' ? `yl-guest-${name}` : null,
    created: '2026-11-22T00:00:00Z',
    updated: '2026-11-22T00:00:00Z',
    build_seconds: null,
    can_edit: true,
    ...extra
  };
}

/** An edge error reply as the server extension passes it on. */
function refusal(status: number, body: object): APIError {
  const response = new Response(JSON.stringify(body), { status, statusText: 'Bad Request' });
  return new APIError(response, body);
}

/** A stand-in for the environments API that builds in steps the test takes. */
class EnvServer {
  envs: IEnvironment[] = [];
  created: IEnvRequest[] = [];
  refuse: APIError | null = null;
  api: EnvironmentsModel.IApi = {
    list: async () => ({ environments: this.envs.map(e => ({ ...e })) }),
    get: async (owner, name) => {
      const found = this.envs.find(e => e.owner === owner && e.name === name);
      if (!found) {
        throw refusal(404, { message: 'no such environment', field: null });
      }
      return { ...found, log_tail: [`phase ${found.phase}`] };
    },
    log: async () => 'the whole log',
    create: async request => {
      if (this.refuse) {
        throw this.refuse;
      }
      this.created.push(request);
      const made = env(request.name, 'queued');
      this.envs.push(made);
      return made;
    },
    remove: async (owner, name) => {
      this.envs = this.envs.filter(e => !(e.owner === owner && e.name === name));
      return { deleted: true };
    }
  };

  advance(name: string, status: IEnvironment['status'], phase: string, progress: number): void {
    this.envs = this.envs.map(e =>
      e.name === name
        ? { ...e, status, phase, progress, kernel_name: status === 'ready' ? `yl-guest-${name}` : null }
        : e
    );
  }
}

describe('formToRequest', () => {
  it('takes packages one per line and leaves empty resources to the site', () => {
    const request = formToRequest({
      ...EMPTY_FORM,
      name: ' tab ',
      executor_memory_mb: '2048',
      executor_instances: '',
      queue: ' default ',
      pip: 'tabulate==0.9.0\n\n  # a comment\n requests \n',
      conda: '',
      maven: ' org.apache.commons:commons-csv:1.12.0 \n'
    });
    expect(request).toEqual({
      name: 'tab',
      kind: 'pyspark',
      resources: { executor_memory_mb: 2048, queue: 'default' },
      packages: {
        pip: ['tabulate==0.9.0', 'requests'],
        conda: [],
        maven: ['org.apache.commons:commons-csv:1.12.0']
      },
      visibility: 'personal'
    });
  });
});

describe('dynamic allocation', () => {
  it('reads min:max, and leaves other text for the server to judge', () => {
    expect(formToRequest({ ...EMPTY_FORM, name: 'd', dynamic: '0:4' }).resources).toEqual({
      dynamic_allocation: { min: 0, max: 4 }
    });
    expect(formToRequest({ ...EMPTY_FORM, name: 'd', dynamic: 'lots' }).resources).toEqual({
      dynamic_allocation: 'lots'
    });
    expect(formToRequest({ ...EMPTY_FORM, name: 'd' }).resources).toEqual({});
  });
});

describe('form error mapping', () => {
  it('maps server fields to form fields', () => {
    expect(formFieldOf('name')).toBe('name');
    expect(formFieldOf('resources.executor_memory_mb')).toBe('resources.executor_memory_mb');
    expect(formFieldOf('packages.pip[2]')).toBe('packages.pip');
    expect(formFieldOf('packages.maven[0]')).toBe('packages.maven');
    expect(formFieldOf('resources.dynamic_allocation.max')).toBe('resources.dynamic_allocation');
    expect(formFieldOf('something.else')).toBe('');
    expect(formFieldOf(null)).toBe('');
  });

  it('puts the message beside its field, with the package line', () => {
    expect(
      errorsFromReply(refusal(400, { message: 'must be at most 4096', field: 'resources.executor_memory_mb' }))
    ).toEqual({ 'resources.executor_memory_mb': 'must be at most 4096' });
    expect(
      errorsFromReply(refusal(400, { message: "'no such pkg' is not a requirement", field: 'packages.pip[1]' }))
    ).toEqual({ 'packages.pip': "Line 2: 'no such pkg' is not a requirement" });
    expect(errorsFromReply(refusal(403, { message: 'only admins may share', field: null }))).toEqual({
      '': 'only admins may share'
    });
    expect(errorsFromReply(new Error('offline'))).toEqual({ '': 'offline' });
  });
});

describe('EnvironmentsModel', () => {
  let model: EnvironmentsModel;
  afterEach(() => model?.dispose());

  function make(server: EnvServer): EnvironmentsModel {
    return new EnvironmentsModel({ api: server.api, buildingInterval: Poll.NEVER, idleInterval: Poll.NEVER });
  }

  it('returns the server message by field and creates nothing on a refusal', async () => {
    const server = new EnvServer();
    server.refuse = refusal(400, { message: 'name must start with a letter', reason: 'Bad Request', field: 'name' });
    model = make(server);

    const { env: made, errors } = await model.create({ ...EMPTY_FORM, name: '1tab' });

    expect(made).toBeNull();
    expect(errors).toEqual({ name: 'name must start with a letter' });
    expect(model.environments).toEqual([]);
  });

  it('follows a build to ready and says so once', async () => {
    const server = new EnvServer();
    model = make(server);
    const ready: string[] = [];
    model.ready.connect((_, e) => ready.push(e.name));
    await model.refresh();

    const { env: made, errors } = await model.create({ ...EMPTY_FORM, name: 'tab', pip: 'tabulate==0.9.0' });
    expect(errors).toEqual({});
    expect(made?.status).toBe('queued');
    expect(server.created[0].packages.pip).toEqual(['tabulate==0.9.0']);
    expect(model.selected).toBe('guest/tab');
    expect(model.building).toBe(true);

    server.advance('tab', 'building', 'installing', 40);
    await model.refresh();
    expect(model.environments[0].progress).toBe(40);
    expect(model.detail?.log_tail).toEqual(['phase installing']);
    expect(ready).toEqual([]);

    server.advance('tab', 'ready', 'ready', 100);
    await model.refresh();
    expect(ready).toEqual(['tab']);
    expect(model.building).toBe(false);

    await model.refresh();
    expect(ready).toEqual(['tab']);
  });

  it('does not announce environments that were ready before it looked', async () => {
    const server = new EnvServer();
    server.envs = [env('old', 'ready')];
    model = make(server);
    const ready: string[] = [];
    model.ready.connect((_, e) => ready.push(e.name));

    await model.refresh();
    await model.refresh();

    expect(model.environments.map(e => e.name)).toEqual(['old']);
    expect(ready).toEqual([]);
  });

  it('polls quickly while something builds and slowly after', async () => {
    const server = new EnvServer();
    server.envs = [env('b', 'building')];
    model = new EnvironmentsModel({ api: server.api, buildingInterval: 1000, idleInterval: Poll.NEVER });
    await model.refresh();
    expect(model.poll.frequency.interval).toBe(1000);

    server.advance('b', 'ready', 'ready', 100);
    await model.refresh();
    expect(model.poll.frequency.interval).toBe(Poll.NEVER);
  });

  it('deletes and forgets an environment', async () => {
    const server = new EnvServer();
    server.envs = [env('a', 'ready'), env('b', 'failed', { error: 'pip failed' })];
    model = make(server);
    await model.refresh();
    await model.select('guest/b');

    await model.remove(model.environments[1]);

    expect(model.environments.map(e => e.name)).toEqual(['a']);
    expect(model.selected).toBeNull();
    expect(server.envs.map(e => e.name)).toEqual(['a']);
  });
});
