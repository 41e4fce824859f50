import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import {
  Button,
  HTMLSelect,
  ReactWidget,
  UseSignal,
  addIcon,
  deleteIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import type { IEnvironment } from '../tokens';
import {
  EMPTY_FORM,
  EnvironmentsModel,
  FormErrors,
  IEnvFormValues,
  environmentKey,
  logLines
} from './model';

/**
 * Labels of the resource fields.
 */
const RESOURCE_LABELS: { [key: string]: string } = {
  driver_memory_mb: 'Driver memory (MB)',
  driver_cores: 'Driver cores',
  executor_memory_mb: 'Executor memory (MB)',
  executor_cores: 'Executor cores',
  executor_instances: 'Executors'
};

/**
 * The Environments section: own and shared environments, a create form, build progress and
 * log, delete. Every string from the server is rendered as text.
 */
export class EnvironmentsView extends ReactWidget {
  constructor(options: EnvironmentsView.IOptions) {
    super();
    this._model = options.model;
    this._isAdmin = options.isAdmin;
    this.addClass('jp-yardlab-section');
    this.addClass('jp-yardlab-environments');
    this.title.label = 'Environments';
  }

  /** Show the create form and put the cursor in its name field. */
  openForm(): void {
    this._formOpen = true;
    this._stateChanged.emit();
    requestAnimationFrame(() =>
      this.node.querySelector<HTMLInputElement>('input[name="name"]')?.focus()
    );
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._model.visible = this.isVisible;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._model.visible = true;
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._model.visible = false;
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._stateChanged}>
        {() => (
          <UseSignal signal={this._model.changed}>
            {() => (
              <div className="jp-yardlab-envs">
                {this._formOpen ? (
                  <EnvForm
                    model={this._model}
                    isAdmin={this._isAdmin()}
                    onClose={() => {
                      this._formOpen = false;
                      this._stateChanged.emit();
                    }}
                  />
                ) : (
                  <Button
                    small
                    className="jp-yardlab-newEnv"
                    onClick={() => this.openForm()}
                  >
                    <addIcon.react tag="span" className="jp-yardlab-buttonIcon" />
                    New environment
                  </Button>
                )}
                <EnvList model={this._model} />
              </div>
            )}
          </UseSignal>
        )}
      </UseSignal>
    );
  }

  private _model: EnvironmentsModel;
  private _isAdmin: () => boolean;
  private _formOpen = false;
  private _stateChanged = new Signal<this, void>(this);
}

/**
 * The namespace for `EnvironmentsView` statics.
 */
export namespace EnvironmentsView {
  /**
   * Options to create an `EnvironmentsView`.
   */
  export interface IOptions {
    /** The environments to show. */
    model: EnvironmentsModel;
    /** Whether the user is an admin (who may share environments). */
    isAdmin: () => boolean;
  }
}

/**
 * Ask, then delete an environment, with a notification of the outcome.
 */
async function confirmAndDelete(
  model: EnvironmentsModel,
  env: IEnvironment
): Promise<void> {
  const answer = await showDialog({
    title: 'Delete environment?',
    body: `${env.display_name || env.name} (${environmentKey(env)}) and its kernel will be removed.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
  });
  if (!answer.button.accept) {
    return;
  }
  try {
    await model.remove(env);
    Notification.success(`Environment ${env.name} deleted.`, { autoClose: 5000 });
  } catch (reason) {
    Notification.error(
      `Could not delete ${env.name}: ${reason instanceof Error ? reason.message : String(reason)}`
    );
  }
}

function EnvList(props: { model: EnvironmentsModel }): JSX.Element {
  const { model } = props;
  const envs = model.environments;
  return (
    <div>
      {model.error !== null && (
        <p className="jp-yardlab-error" role="alert">
          Environments unavailable: {model.error}
        </p>
      )}
      {model.loaded && envs.length === 0 && (
        <p className="jp-yardlab-placeholder">No environments yet.</p>
      )}
      <ul className="jp-yardlab-envList" aria-label="Environments">
        {envs.map(env => (
          <EnvItem key={environmentKey(env)} env={env} model={model} />
        ))}
      </ul>
    </div>
  );
}

function EnvItem(props: {
  env: IEnvironment;
  model: EnvironmentsModel;
}): JSX.Element {
  const { env, model } = props;
  const key = environmentKey(env);
  const open = model.selected === key;
  const building = env.status === 'queued' || env.status === 'building';
  const detail = open ? model.detail : null;
  const lines = logLines(detail);
  return (
    <li
      className="jp-yardlab-env"
      data-env={key}
      data-status={env.status}
    >
      <div className="jp-yardlab-env-head">
        <button
          className="jp-yardlab-env-toggle"
          aria-expanded={open}
          title={open ? 'Hide details and build log' : 'Show details and build log'}
          onClick={() => void model.select(open ? null : key)}
        >
          <span className="jp-yardlab-env-name">{env.display_name || env.name}</span>
        </button>
        <span className={`jp-yardlab-badge jp-yardlab-env-${env.status}`}>
          {building ? env.phase : env.status}
        </span>
      </div>
      <div className="jp-yardlab-env-meta">
        {key} · {env.kind} · {env.visibility}
        {env.kernel_name ? ` · kernel ${env.kernel_name}` : ''}
      </div>
      {building && (
        <progress
          className="jp-yardlab-progress"
          max={100}
          value={env.progress}
          aria-label={`Build progress of ${env.name}`}
        >
          {env.progress}%
        </progress>
      )}
      {env.status === 'failed' && env.error && (
        <div className="jp-yardlab-error">{env.error}</div>
      )}
      {open && (
        <div className="jp-yardlab-env-detail">
          <div className="jp-yardlab-env-packages">
            {[...env.packages.pip, ...env.packages.conda, ...(env.packages.maven ?? [])].join(', ') ||
              'No extra packages'}
          </div>
          <pre className="jp-yardlab-log" aria-label={`Build log of ${env.name}`} tabIndex={0}>
            {model.fullLog ?? (lines.length ? lines.join('\n') : 'No build log yet.')}
          </pre>
          <div className="jp-yardlab-env-actions">
            {model.fullLog === null && !building && (
              <Button small minimal onClick={() => void model.loadFullLog()}>
                Whole log
              </Button>
            )}
            {env.can_edit && (
              <Button
                small
                minimal
                className="jp-yardlab-deleteEnv"
                aria-label={`Delete ${env.name}`}
                onClick={() => void confirmAndDelete(model, env)}
              >
                <deleteIcon.react tag="span" className="jp-yardlab-buttonIcon" />
                Delete
              </Button>
            )}
          </div>
        </div>
      )}
    </li>
  );
}

function EnvForm(props: {
  model: EnvironmentsModel;
  isAdmin: boolean;
  onClose: () => void;
}): JSX.Element {
  const { model, isAdmin, onClose } = props;
  const [form, setForm] = React.useState<IEnvFormValues>(EMPTY_FORM);
  const [errors, setErrors] = React.useState<FormErrors>({});
  const [busy, setBusy] = React.useState(false);
  const formRef = React.useRef<HTMLFormElement>(null);

  // after a refusal, take the user to the field the server complained about
  React.useEffect(() => {
    const node = formRef.current;
    const invalid = node?.querySelector<HTMLElement>('[aria-invalid="true"]');
    const message = node?.querySelector<HTMLElement>('.jp-yardlab-fieldError');
    invalid?.focus();
    (invalid ?? message)?.scrollIntoView({ block: 'nearest' });
  }, [errors]);

  const set = (key: keyof IEnvFormValues) => (
    event: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>
  ) => setForm({ ...form, [key]: event.target.value });

  const fieldError = (field: string): JSX.Element | null =>
    errors[field] ? (
      <span className="jp-yardlab-fieldError" role="alert" data-field={field}>
        {errors[field]}
      </span>
    ) : null;

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    const { env, errors } = await model.create(form);
    setBusy(false);
    setErrors(errors);
    if (env !== null) {
      Notification.info(`Building environment ${env.name}…`, { autoClose: 5000 });
      onClose();
    }
  };

  const input = (
    field: keyof IEnvFormValues,
    label: string,
    errorKey: string,
    attrs: React.InputHTMLAttributes<HTMLInputElement> = {}
  ) => (
    <label className="jp-yardlab-field">
      <span className="jp-yardlab-label">{label}</span>
      <input
        className="jp-mod-styled jp-yardlab-input"
        name={field}
        value={form[field]}
        onChange={set(field)}
        aria-invalid={!!errors[errorKey]}
        {...attrs}
      />
      {fieldError(errorKey)}
    </label>
  );

  const select = (
    field: 'kind' | 'visibility',
    label: string,
    options: { value: string; label: string }[]
  ) => (
    <label className="jp-yardlab-field">
      <span className="jp-yardlab-label">{label}</span>
      <HTMLSelect name={field} value={form[field]} onChange={set(field)} options={options} />
      {fieldError(field)}
    </label>
  );

  const textarea = (
    field: 'pip' | 'conda' | 'maven',
    label: string,
    attrs: React.TextareaHTMLAttributes<HTMLTextAreaElement> = {}
  ) => (
    <label className="jp-yardlab-field">
      <span className="jp-yardlab-label">{label}</span>
      <textarea
        className="jp-mod-styled jp-yardlab-input"
        name={field}
        value={form[field]}
        onChange={set(field)}
        aria-invalid={!!errors[`packages.${field}`]}
        {...attrs}
      />
      {fieldError(`packages.${field}`)}
    </label>
  );

  return (
    <form
      ref={formRef}
      className="jp-yardlab-envForm"
      aria-label="New environment"
      onSubmit={event => void submit(event)}
      onKeyDown={event => {
        if (event.key === 'Escape') {
          onClose();
        }
      }}
    >
      {input('name', 'Name', 'name', {
        required: true,
        placeholder: 'e.g. tabulate',
        autoComplete: 'off'
      })}
      {input('display_name', 'Display name', 'display_name', {
        placeholder: 'shown in the Launcher'
      })}
      {select('kind', 'Kind', [
        { value: 'pyspark', label: 'PySpark on YARN' },
        { value: 'python', label: 'Python' }
      ])}
      {isAdmin &&
        select('visibility', 'Visibility', [
          { value: 'personal', label: 'Personal' },
          { value: 'shared', label: 'Shared with everyone' }
        ])}
      <fieldset className="jp-yardlab-fieldset">
        <legend>Resources (empty: site default)</legend>
        {Object.keys(RESOURCE_LABELS).map(key => (
          <React.Fragment key={key}>
            {input(key as keyof IEnvFormValues, RESOURCE_LABELS[key], `resources.${key}`, {
              type: 'number',
              min: 0
            })}
          </React.Fragment>
        ))}
        {input('dynamic', 'Dynamic executors (min:max)', 'resources.dynamic_allocation', {
          placeholder: 'e.g. 0:4 (then Executors is ignored)'
        })}
        {input('queue', 'Queue', 'resources.queue', { placeholder: 'default' })}
      </fieldset>
      {textarea('pip', 'pip packages, one per line', {
        rows: 3,
        placeholder: 'tabulate==0.9.0'
      })}
      {textarea('conda', 'conda packages, one per line', { rows: 2 })}
      {textarea('maven', 'Maven (JVM) packages, group:artifact:version, one per line', {
        rows: 2,
        placeholder: 'org.apache.commons:commons-csv:1.12.0'
      })}
      {fieldError('')}
      <div className="jp-yardlab-formButtons">
        <Button type="button" small minimal onClick={onClose}>
          Cancel
        </Button>
        <Button type="submit" small disabled={busy} className="jp-yardlab-createEnv">
          {busy ? 'Creating…' : 'Create'}
        </Button>
      </div>
    </form>
  );
}
