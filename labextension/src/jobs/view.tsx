import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import {
  Button,
  ReactWidget,
  UseSignal,
  closeIcon,
  launchIcon
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import type { IApp } from '../tokens';
import {
  JobsModel,
  credentialsNote,
  formatElapsed,
  formatMemory
} from './model';

/**
 * How often elapsed times are redrawn while the list is visible, in ms.
 */
const TICK = 1000;

/**
 * The Jobs section: the user's YARN applications, live, with kill buttons; ended ones in a
 * collapsible group. Every string from YARN is rendered as text.
 */
export class JobsView extends ReactWidget {
  constructor(options: JobsView.IOptions) {
    super();
    this._model = options.model;
    this._openNotebook = options.openNotebook;
    this.addClass('jp-yardlab-section');
    this.addClass('jp-yardlab-jobs');
    this.title.label = 'Jobs';
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._syncVisibility();
  }

  protected onBeforeDetach(msg: Message): void {
    this._model.visible = false;
    window.clearInterval(this._timer);
    this._timer = 0;
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._syncVisibility();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._syncVisibility();
  }

  /** Poll (and redraw elapsed times) only while the section can be seen. */
  private _syncVisibility(): void {
    const visible = this.isVisible;
    this._model.visible = visible;
    if (visible && !this._timer) {
      this._timer = window.setInterval(() => this.update(), TICK);
    } else if (!visible && this._timer) {
      window.clearInterval(this._timer);
      this._timer = 0;
    }
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() => (
          <JobList model={this._model} openNotebook={this._openNotebook} />
        )}
      </UseSignal>
    );
  }

  private _model: JobsModel;
  private _openNotebook?: (path: string) => void;
  private _timer = 0;
}

/**
 * The namespace for `JobsView` statics.
 */
export namespace JobsView {
  /**
   * Options to create a `JobsView`.
   */
  export interface IOptions {
    /** The applications to show. */
    model: JobsModel;
    /** Opens a notebook in Lab: a job's notebook is then a link to it. */
    openNotebook?: (path: string) => void;
  }
}

/**
 * Ask, kill, and follow the kill with a notification until YARN confirms it.
 */
export async function confirmAndKill(
  model: JobsModel,
  app: IApp
): Promise<void> {
  const answer = await showDialog({
    title: 'Kill YARN application?',
    body: `${app.name || app.id} (${app.id}) will be killed; whatever it computes is lost.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Kill' })]
  });
  if (!answer.button.accept) {
    return;
  }
  // Not Notification.promise: it turns the pending toast into the outcome with an update, and
  // JupyterLab drops that update when it arrives before the pending toast has rendered (the first
  // toast of a page loads the toast library; a fast kill wins that race and "Killing…" stays up
  // for good). The outcome is a notification of its own, and the pending one is dismissed.
  const pending = Notification.emit(`Killing ${app.id}…`, 'in-progress', {
    autoClose: false
  });
  try {
    const reply = await model.kill(app.id);
    Notification.dismiss(pending);
    if (reply.killed) {
      Notification.success(`${app.id} was killed.`, { autoClose: 5000 });
    } else {
      Notification.info(`${app.id} had already ended (${reply.state}).`, {
        autoClose: 5000
      });
    }
  } catch (reason) {
    Notification.dismiss(pending);
    Notification.error(
      `Could not kill ${app.id}: ${reason instanceof Error ? reason.message : String(reason)}`,
      { autoClose: false }
    );
  }
}

function JobList(props: {
  model: JobsModel;
  openNotebook?: (path: string) => void;
}): JSX.Element {
  const { model, openNotebook } = props;
  const active = model.active;
  const finished = model.finished;
  return (
    <div className="jp-yardlab-jobList">
      {model.error !== null && (
        <p className="jp-yardlab-error" role="alert">
          Jobs unavailable: {model.error}
        </p>
      )}
      {!model.loaded && model.error === null && (
        <p className="jp-yardlab-placeholder">Loading jobs…</p>
      )}
      {model.loaded && active.length === 0 && (
        <p className="jp-yardlab-placeholder">No running YARN applications.</p>
      )}
      <ul className="jp-yardlab-jobs-active" aria-label="Running applications">
        {active.map(app => (
          <JobItem
            key={app.id}
            app={app}
            model={model}
            openNotebook={openNotebook}
          />
        ))}
      </ul>
      {finished.length > 0 && (
        <details className="jp-yardlab-jobs-finished">
          <summary>Ended ({finished.length})</summary>
          <ul aria-label="Ended applications">
            {finished.map(app => (
              <JobItem
            key={app.id}
            app={app}
            model={model}
            openNotebook={openNotebook}
          />
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

function JobItem(props: {
  app: IApp;
  model: JobsModel;
  openNotebook?: (path: string) => void;
}): JSX.Element {
  const { app, model, openNotebook } = props;
  const ended = app.finishedTime !== null && app.finishedTime > 0;
  const elapsed = ended
    ? app.elapsedTime
    : app.startedTime > 0
      ? Date.now() - app.startedTime
      : app.elapsedTime;
  const killing = model.isKilling(app.id);
  const progress = Math.max(0, Math.min(100, app.progress));
  const owner =
    app.session === 'console'
      ? 'a console (no notebook)'
      : (app.notebook ?? (app.kernel ? `kernel ${app.kernel}` : null));
  // a notebook the Lab server reported opens in Lab (a folder or a console does not)
  const notebook =
    app.session === 'notebook' && app.notebook && openNotebook
      ? app.notebook
      : null;
  // the Spark UI through the edge (the hub's address), never YARN's own tracking URL
  const link = app.sparkUi ? Private.safeUrl(app.sparkUi) : null;
  const credentials = ended ? null : credentialsNote(app.credentialsExpire);
  return (
    <li
      className="jp-yardlab-job"
      data-app-id={app.id}
      data-state={app.state}
    >
      <div className="jp-yardlab-job-head">
        <span className="jp-yardlab-job-name" title={app.name}>
          {app.name || app.id}
        </span>
        <span
          className={`jp-yardlab-badge jp-yardlab-state-${app.warm && !ended ? 'WARM' : app.state}`}
        >
          {killing ? 'KILLING' : app.warm && !ended ? 'WARM' : app.state}
          {app.finalStatus && app.finalStatus !== 'UNDEFINED' && app.finalStatus !== app.state
            ? ` · ${app.finalStatus}`
            : ''}
        </span>
      </div>
      <div className="jp-yardlab-job-id">{app.id}</div>
      {app.waiting && (
        <div className="jp-yardlab-job-waiting">{app.waiting}</div>
      )}
      {app.warm && !ended && (
        <div
          className="jp-yardlab-job-warm"
          title="Started ahead, as you, so that your next notebook's kernel is ready at once; it is given back after an idle time or when others need the room"
        >
          {app.warmReady === false
            ? 'warm kernel starting (for your next notebook)'
            : 'warm (ready for your next notebook)'}
        </div>
      )}
      {!ended && (
        <progress
          className="jp-yardlab-progress"
          max={100}
          value={progress}
          aria-label={`Progress of ${app.id}`}
        >
          {progress.toFixed(0)}%
        </progress>
      )}
      <div className="jp-yardlab-job-meta">
        {!ended &&
          `${formatMemory(app.allocatedMB)} · ${app.allocatedVCores} vcore${app.allocatedVCores === 1 ? '' : 's'} · ${app.runningContainers} container${app.runningContainers === 1 ? '' : 's'} · `}
        {formatElapsed(elapsed)} · {app.queue}
      </div>
      {credentials && (
        <div
          className={`jp-yardlab-job-credentials${credentials.soon ? ' jp-yardlab-job-credentials-soon' : ''}`}
          title={`Its HDFS and YARN delegation tokens cannot be renewed after ${new Date(app.credentialsExpire ?? 0).toLocaleString()}`}
        >
          {credentials.text}
        </div>
      )}
      {owner && !(app.warm && !ended) && (
        <div className="jp-yardlab-job-owner" title={owner}>
          {notebook ? (
            <button
              type="button"
              className="jp-yardlab-job-notebook"
              title={`Open ${notebook}`}
              onClick={() => openNotebook?.(notebook)}
            >
              {notebook}
            </button>
          ) : (
            owner
          )}
          {app.environment ? ` (${app.environment})` : ''}
        </div>
      )}
      <div className="jp-yardlab-job-actions">
        {link && (
          <a
            className="jp-yardlab-link"
            href={link}
            target="_blank"
            rel="noopener noreferrer"
          >
            <launchIcon.react tag="span" className="jp-yardlab-linkIcon" />
            Spark UI
          </a>
        )}
        {!link && app.sparkUiNote && (
          <span className="jp-yardlab-job-uinote">{app.sparkUiNote}</span>
        )}
        {!ended && (
          <Button
            small
            minimal
            className="jp-yardlab-kill"
            disabled={killing}
            title={`Kill ${app.id}`}
            aria-label={`Kill ${app.id}`}
            onClick={() => void confirmAndKill(model, app)}
          >
            <closeIcon.react tag="span" className="jp-yardlab-buttonIcon" />
            Kill
          </Button>
        )}
      </div>
    </li>
  );
}

namespace Private {
  /** Only http(s) links (a path is read on this page's origin): a link never runs script. */
  export function safeUrl(url: string): string | null {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:'
        ? parsed.href
        : null;
    } catch {
      return null;
    }
  }
}
