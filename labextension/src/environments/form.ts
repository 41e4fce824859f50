import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { APIError } from '../handler';
import type { IEnvironment, IEnvRequest, IEnvResources } from '../tokens';
import type { EnvironmentsModel } from './model';

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
  conda: ''
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
    packages: { pip: lines(form.pip), conda: lines(form.conda) },
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
 * The create form's state: what the user typed, the server's messages and whether a request
 * is in flight. It lives outside React so that nothing typed is lost when the section's React
 * tree is mounted again: Lumino detaching the sidebar (moved to the other side, re-inserted by
 * a layout restore) unmounts it, and a component's own state would start empty again.
 */
export class EnvFormModel implements IDisposable {
  constructor(options: EnvFormModel.IOptions) {
    this._environments = options.environments;
  }

  /** Emitted whenever the form opens or closes, a value, the messages or `busy` change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Whether the form is shown. */
  get isOpen(): boolean {
    return this._isOpen;
  }

  /** The values as typed. */
  get values(): IEnvFormValues {
    return this._values;
  }

  /** The server's messages about the last refused request, keyed by form field. */
  get errors(): FormErrors {
    return this._errors;
  }

  /** Whether a create request is in flight. */
  get busy(): boolean {
    return this._busy;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Show the form, with what was typed before if it was not closed since. */
  open(): void {
    if (!this._isOpen) {
      this._isOpen = true;
      this._changed.emit();
    }
  }

  /** Hide the form and forget what was typed (Cancel, Escape, a queued build). */
  close(): void {
    this._isOpen = false;
    this._values = EMPTY_FORM;
    this._errors = {};
    this._changed.emit();
  }

  /** Take one value as typed. */
  set<K extends keyof IEnvFormValues>(field: K, value: IEnvFormValues[K]): void {
    this._values = { ...this._values, [field]: value };
    this._changed.emit();
  }

  /**
   * Ask the edge to build what the form holds. A refusal keeps the values and shows the
   * messages; a queued build closes the form. While a request is in flight, another
   * submit sends nothing.
   *
   * @returns the queued environment, or `null` when refused (or already submitting).
   */
  async submit(): Promise<IEnvironment | null> {
    if (this._busy) {
      return null;
    }
    this._busy = true;
    this._changed.emit();
    const { env, errors } = await this._environments.create(this._values);
    this._busy = false;
    if (this._isDisposed) {
      return env;
    }
    if (env !== null) {
      this.close();
    } else {
      this._errors = errors;
      this._changed.emit();
    }
    return env;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _environments: EnvironmentsModel;
  private _isOpen = false;
  private _values: IEnvFormValues = EMPTY_FORM;
  private _errors: FormErrors = {};
  private _busy = false;
  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
}

/**
 * The namespace for `EnvFormModel` statics.
 */
export namespace EnvFormModel {
  /**
   * Options to create an `EnvFormModel`.
   */
  export interface IOptions {
    /** The environments a submitted form is created in. */
    environments: EnvironmentsModel;
  }
}
