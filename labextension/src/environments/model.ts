import { ISignal, Signal } from '@lumino/signaling';

import { APIError } from '../handler';
import { PolledModel } from '../polled';
import type {
  IEnvironment,
  IEnvironmentList,
  IEnvRequest,
  IEnvResources
} from '../tokens';

/**
 * What the create form holds, as the user typed it.
 */
export interface IEnvFormValues {
  /** Environment name. */
  name: string;
  /** Name shown in the Launcher; empty for the server's default. */
  display_name: string;
  /** `pyspark` or `python`. */
  kind: 'pyspark' | 'python';
  /** `personal` or `shared` (admins only). */
  visibility: 'personal' | 'shared';
  /** Driver memory in MB; empty for the site default. */
  driver_memory_mb: string;
  /** Driver cores; empty for the site default. */
  driver_cores: string;
  /** Executor memory in MB; empty for the site default. */
  executor_memory_mb: string;
  /** Executor cores; empty for the site default. */
  executor_cores: string;
  /** Number of executors; empty for the site default. */
  executor_instances: string;
  /** Dynamic allocation as `min:max` (e.g. `0:4`); empty for a fixed number of executors. */
  dynamic: string;
  /** YARN queue; empty for the site default. */
  queue: string;
  /** pip requirements, one per line. */
  pip: string;
  /** conda packages, one per line. */
  conda: string;
  /** Maven coordinates (`group:artifact:version`) of JVM packages, one per line. */
  maven: string;
}

/**
 * An empty form.
 */
export const EMPTY_FORM: IEnvFormValues = {
  name: '',
  display_name: '',
  kind: 'pyspark',
  visibility: 'personal',
  driver_memory_mb: '',
  driver_cores: '',
  executor_memory_mb: '',
  executor_cores: '',
  executor_instances: '',
  dynamic: '',
  queue: '',
  pip: '',
  conda: '',
  maven: ''
};

/**
 * The resource fields of the form, in the order it shows them.
 */
export const RESOURCE_FIELDS = [
  'driver_memory_mb',
  'driver_cores',
  'executor_memory_mb',
  'executor_cores',
  'executor_instances'
] as const;

/**
 * Messages of a refused create request, keyed by the form field they concern
 * (`name`, `resources.executor_memory_mb`, `packages.pip`, …); `''` holds the others.
 */
export type FormErrors = { [field: string]: string };

/**
 * Turn the form into the request body: one package per line (blank lines and `#` comments
 * skipped), numbers as numbers, empty resource fields left out for the site defaults.
 */
export function formToRequest(form: IEnvFormValues): IEnvRequest {
  const lines = (text: string) =>
    text
      .split('\n')
      .map(line => line.trim())
      .filter(line => line.length > 0 && !line.startsWith('#'));
  const resources: IEnvResources = {};
  for (const key of RESOURCE_FIELDS) {
    const text = form[key].trim();
    if (text !== '') {
      // a value that is not a number goes as typed: the server says what is wrong with it
      const n = Number(text);
      (resources as any)[key] = Number.isFinite(n) ? n : text;
    }
  }
  const dynamic = form.dynamic.trim();
  if (dynamic) {
    const bounds = /^(\d+)\s*[:\-–]\s*(\d+)$/.exec(dynamic);
    // anything else goes as typed, for the server to explain
    (resources as any).dynamic_allocation = bounds
      ? { min: Number(bounds[1]), max: Number(bounds[2]) }
      : dynamic;
  }
  if (form.queue.trim()) {
    resources.queue = form.queue.trim();
  }
  const request: IEnvRequest = {
    name: form.name.trim(),
    kind: form.kind,
    resources,
    packages: { pip: lines(form.pip), conda: lines(form.conda), maven: lines(form.maven) },
    visibility: form.visibility
  };
  if (form.display_name.trim()) {
    request.display_name = form.display_name.trim();
  }
  return request;
}

/**
 * Which form field a server `field` path belongs to: `packages.pip[2]` → `packages.pip`.
 * Fields the form does not show (or none) map to `''`, the form-wide message.
 */
export function formFieldOf(field: string | null): string {
  if (!field) {
    return '';
  }
  // `packages.pip[2]` and `resources.dynamic_allocation.max` belong to one input each
  const base = field
    .replace(/\[\d+\]$/, '')
    .replace(/^(resources\.dynamic_allocation)\..*$/, '$1');
  const known = new Set<string>([
    'name',
    'display_name',
    'kind',
    'visibility',
    'resources.queue',
    'resources.dynamic_allocation',
    'packages.pip',
    'packages.conda',
    'packages.maven',
    ...RESOURCE_FIELDS.map(key => `resources.${key}`)
  ]);
  return known.has(base) ? base : '';
}

/**
 * The message shown for a refused request, keyed by form field. A package error also
 * says which line it is about (`packages.pip[2]` → line 3).
 */
export function errorsFromReply(error: unknown): FormErrors {
  if (error instanceof APIError) {
    const key = formFieldOf(error.field);
    const line = /\[(\d+)\]$/.exec(error.field ?? '');
    const message =
      line && key.startsWith('packages.')
        ? `Line ${Number(line[1]) + 1}: ${error.message}`
        : error.message;
    return { [key]: message };
  }
  return { '': error instanceof Error ? error.message : String(error) };
}

/**
 * The environments the user sees (own and shared), polled quickly while one builds.
 * `changed` is emitted whenever the list, the selection or its log change.
 * Emits `ready` when an environment it saw building is ready, so its kernel can be offered.
 */
export class EnvironmentsModel extends PolledModel {
  constructor(options: EnvironmentsModel.IOptions) {
    const slow = options.idleInterval ?? 30 * 1000;
    super({
      frequency: { interval: slow, backoff: true, max: 5 * 60 * 1000 },
      name: 'yardlab:environments'
    });
    this._api = options.api;
    this._fast = options.buildingInterval ?? 2000;
    this._slow = slow;
  }

  /** Emitted with an environment that has just become ready. */
  get ready(): ISignal<this, IEnvironment> {
    return this._ready;
  }

  /** Own and shared environments, as last reported. */
  get environments(): readonly IEnvironment[] {
    return this._environments;
  }

  /** Whether any environment is queued or building. */
  get building(): boolean {
    return this._environments.some(Private.isBuilding);
  }

  /** The environment whose details and build log are open, as `owner/name`, or `null`. */
  get selected(): string | null {
    return this._selected;
  }

  /** The selected environment in full (with its log tail), once fetched. */
  get detail(): IEnvironment | null {
    return this._detail;
  }

  /** The whole build log of the selected environment, once asked for. */
  get fullLog(): string | null {
    return this._fullLog;
  }

  /** Open (or, with `null`, close) an environment's details and build log. */
  async select(key: string | null): Promise<void> {
    this._selected = key;
    this._detail = null;
    this._fullLog = null;
    this._changed.emit();
    if (key !== null) {
      await this._updateDetail();
    }
  }

  /** Fetch the whole build log of the selected environment. */
  async loadFullLog(): Promise<void> {
    const env = this._detail;
    if (env === null) {
      return;
    }
    this._fullLog = await this._api.log(env.owner, env.name);
    this._changed.emit();
  }

  /**
   * Ask the edge to build a new environment.
   *
   * @returns the queued environment (also selected, so its build log shows), or the
   *   server's messages keyed by form field when it refused.
   */
  async create(
    form: IEnvFormValues
  ): Promise<{ env: IEnvironment | null; errors: FormErrors }> {
    let env: IEnvironment;
    try {
      env = await this._api.create(formToRequest(form));
    } catch (error) {
      return { env: null, errors: errorsFromReply(error) };
    }
    this._merge(env);
    await this.select(Private.key(env));
    void this.refresh();
    return { env, errors: {} };
  }

  /** Delete an environment; resolves once the edge has. */
  async remove(env: IEnvironment): Promise<void> {
    await this._api.remove(env.owner, env.name);
    if (this._selected === Private.key(env)) {
      await this.select(null);
    }
    this._environments = this._environments.filter(
      e => Private.key(e) !== Private.key(env)
    );
    this._changed.emit();
    void this.refresh();
  }

  protected async _update(): Promise<void> {
    let reply: IEnvironmentList;
    try {
      reply = await this._api.list();
    } catch (reason) {
      this._fail(reason);
      throw reason;
    }
    if (this.isDisposed) {
      return;
    }
    this._error = null;
    this._loaded = true;
    this._setList(reply.environments);
    if (this._selected !== null) {
      await this._updateDetail();
    }
    this._changed.emit();
  }

  private async _updateDetail(): Promise<void> {
    const key = this._selected;
    if (key === null) {
      return;
    }
    const known = this._environments.find(e => Private.key(e) === key);
    if (this._detail && !Private.isBuilding(this._detail) && known && known.updated === this._detail.updated) {
      return; // a finished build's log does not change
    }
    const [owner, name] = key.split('/');
    try {
      const detail = await this._api.get(owner, name);
      if (this._selected === key && !this.isDisposed) {
        this._detail = detail;
        this._merge(detail);
        this._changed.emit();
      }
    } catch {
      // the list shows the error state; the detail keeps what it had
    }
  }

  /** Replace the list, noticing builds that have just become ready. */
  private _setList(list: IEnvironment[]): void {
    for (const env of list) {
      this._noticeReady(env);
    }
    this._environments = list;
    this._retune();
  }

  /** Put one fresher environment into the list. */
  private _merge(env: IEnvironment): void {
    this._noticeReady(env);
    const key = Private.key(env);
    const at = this._environments.findIndex(e => Private.key(e) === key);
    const { log_tail: _tail, ...summary } = env;
    if (at < 0) {
      this._environments = [summary, ...this._environments];
    } else {
      this._environments = this._environments.map((e, i) =>
        i === at ? { ...e, ...summary } : e
      );
    }
    this._retune();
  }

  private _noticeReady(env: IEnvironment): void {
    const key = Private.key(env);
    const before = this._statuses.get(key);
    this._statuses.set(key, env.status);
    if (env.status === 'ready' && before !== undefined && before !== 'ready') {
      this._ready.emit(env);
    }
  }

  /** Poll quickly while something builds, slowly otherwise. */
  private _retune(): void {
    const interval = this.building ? this._fast : this._slow;
    if (this.poll.frequency.interval !== interval) {
      this.poll.frequency = { ...this.poll.frequency, interval };
    }
  }

  private _api: EnvironmentsModel.IApi;
  private _fast: number;
  private _slow: number;
  private _environments: IEnvironment[] = [];
  private _statuses = new Map<string, string>();
  private _selected: string | null = null;
  private _detail: IEnvironment | null = null;
  private _fullLog: string | null = null;
  private _ready = new Signal<this, IEnvironment>(this);
}

/**
 * The namespace for `EnvironmentsModel` statics.
 */
export namespace EnvironmentsModel {
  /**
   * The environments API, below `/yardlab/api/environments`.
   */
  export interface IApi {
    /** `GET environments`: own and shared ones. */
    list: () => Promise<IEnvironmentList>;
    /** `GET environments/<owner>/<name>`: one, with its log tail. */
    get: (owner: string, name: string) => Promise<IEnvironment>;
    /** `GET environments/<owner>/<name>/log`: the whole build log. */
    log: (owner: string, name: string) => Promise<string>;
    /** `POST environments`: queue a build; rejects with an `APIError` naming a `field`. */
    create: (request: IEnvRequest) => Promise<IEnvironment>;
    /** `DELETE environments/<owner>/<name>`. */
    remove: (owner: string, name: string) => Promise<unknown>;
  }

  /**
   * Options to create an `EnvironmentsModel`.
   */
  export interface IOptions {
    /** The API to call. */
    api: IApi;
    /** Milliseconds between polls while a build runs; 2 s by default. */
    buildingInterval?: number;
    /** Milliseconds between polls otherwise; 30 s by default. */
    idleInterval?: number;
  }
}

/**
 * The key of an environment: `owner/name`.
 */
export function environmentKey(env: { owner: string; name: string }): string {
  return Private.key(env);
}

/**
 * An environment's log tail as lines (the edge may send a list or one text).
 */
export function logLines(env: IEnvironment | null): string[] {
  const tail = env?.log_tail;
  if (!tail) {
    return [];
  }
  return Array.isArray(tail) ? tail : tail.split('\n');
}

namespace Private {
  export function key(env: { owner: string; name: string }): string {
    return `${env.owner}/${env.name}`;
  }

  export function isBuilding(env: IEnvironment): boolean {
    return env.status === 'queued' || env.status === 'building';
  }
}
