import { Widget } from '@lumino/widgets';

import { CellProgress, IJobProgress, IStageProgress } from './model';

/**
 * The Spark jobs of one cell, under the cell: a bar per stage while it runs, one summary line
 * (which opens the details again) once it has ended.  Plain DOM with textContent only: job and
 * stage names come from the user's code and are never read as HTML.
 */
export class CellProgressWidget extends Widget {
  constructor(model: CellProgress) {
    super();
    this.model = model;
    this.addClass('jp-yardlab-sparkprogress');
    this.node.setAttribute('role', 'status');
    this.node.setAttribute('aria-live', 'polite');
    model.changed.connect(this._render, this);
    this._render();
  }

  readonly model: CellProgress;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this._render, this);
    this.model.dispose();
    super.dispose();
  }

  private _render(): void {
    const model = this.model;
    const reply = model.reply;
    const node = this.node;
    node.dataset.state = model.running ? 'running' : 'done';
    node.classList.toggle('jp-mod-hidden', !model.hasJobs);
    if (!model.running && !this._userToggled) {
      this._open = false; // collapses when the cell ends
    }
    node.classList.toggle('jp-mod-collapsed', !this._open);
    node.replaceChildren();
    if (!reply) {
      return;
    }
    const head = document.createElement('div');
    head.className = 'jp-yardlab-sparkprogress-head';
    const toggle = document.createElement('button');
    toggle.className = 'jp-yardlab-sparkprogress-toggle';
    toggle.setAttribute('aria-expanded', String(this._open));
    toggle.title = this._open ? 'Hide the Spark jobs' : 'Show the Spark jobs';
    toggle.textContent = `${this._open ? '▾' : '▸'} ${model.summary()}`;
    toggle.onclick = () => {
      this._open = !this._open;
      this._userToggled = true;
      this._render();
    };
    head.appendChild(toggle);
    if (reply.ui) {
      head.appendChild(link(reply.ui, 'Spark UI', 'jp-yardlab-sparkprogress-ui'));
    }
    if (model.error) {
      const err = document.createElement('span');
      err.className = 'jp-yardlab-sparkprogress-error';
      err.textContent = model.error;
      head.appendChild(err);
    }
    node.appendChild(head);
    if (!this._open) {
      return;
    }
    const list = document.createElement('ul');
    list.className = 'jp-yardlab-sparkprogress-jobs';
    for (const job of reply.jobs) {
      list.appendChild(jobItem(job));
    }
    node.appendChild(list);
  }

  private _open = true;
  private _userToggled = false;
}

function link(href: string, text: string, className: string): HTMLAnchorElement {
  const a = document.createElement('a');
  a.className = className;
  // only a path of this server (the edge's proxy), never a scheme a reply could slip in
  a.href = href.startsWith('/') && !href.startsWith('//') ? href : '#';
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.textContent = text;
  return a;
}

function jobItem(job: IJobProgress): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'jp-yardlab-sparkjob';
  li.dataset.jobId = String(job.id);
  li.dataset.status = job.status;
  const title = document.createElement('div');
  title.className = 'jp-yardlab-sparkjob-title';
  title.appendChild(link(job.url, `Job ${job.id}`, 'jp-yardlab-sparkjob-link'));
  const name = document.createElement('span');
  name.className = 'jp-yardlab-sparkjob-name';
  name.textContent = ` ${job.name} · ${job.status.toLowerCase()}`;
  name.title = job.name;
  title.appendChild(name);
  li.appendChild(title);
  const stages = document.createElement('ul');
  stages.className = 'jp-yardlab-sparkstages';
  for (const stage of job.stages) {
    stages.appendChild(stageItem(stage));
  }
  li.appendChild(stages);
  return li;
}

function stageItem(stage: IStageProgress): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'jp-yardlab-sparkstage';
  li.dataset.stageId = String(stage.id);
  li.dataset.status = stage.status;
  const percent = CellProgress.stagePercent(stage);
  const label = document.createElement('span');
  label.className = 'jp-yardlab-sparkstage-label';
  label.appendChild(link(stage.url, `Stage ${stage.id}`, 'jp-yardlab-sparkstage-link'));
  const text = document.createElement('span');
  text.textContent =
    stage.status === 'SKIPPED'
      ? ' skipped'
      : ` ${stage.numCompleteTasks}/${stage.numTasks} tasks` +
        (stage.numActiveTasks > 0 ? ` (${stage.numActiveTasks} running)` : '') +
        (stage.numFailedTasks > 0 ? ` (${stage.numFailedTasks} failed)` : '');
  label.appendChild(text);
  const bar = document.createElement('div');
  bar.className = 'jp-yardlab-sparkstage-bar';
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(percent));
  const fill = document.createElement('div');
  fill.className = 'jp-yardlab-sparkstage-fill';
  fill.style.width = `${percent}%`;
  bar.appendChild(fill);
  li.appendChild(label);
  li.appendChild(bar);
  return li;
}
