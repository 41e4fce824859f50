import {
  SidePanel,
  ToolbarButton,
  refreshIcon
} from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { AccordionPanel, Panel, Widget } from '@lumino/widgets';

import { ClusterModel, capacityText } from './cluster';
import { EnvironmentsModel } from './environments/model';
import { EnvironmentsView } from './environments/view';
import { StorageUsageModel, StorageUsageView } from './hdfs/usage';
import { JobsModel } from './jobs/model';
import { JobsView } from './jobs/view';
import { StatusModel } from './status';

/**
 * The yardlab sidebar: a header with the capacity line, a status toolbar, and the Jobs,
 * Environments and Storage sections.
 */
export class YardlabSidebar extends SidePanel {
  constructor(options: YardlabSidebar.IOptions) {
    super();
    this.addClass('jp-yardlab-Sidebar');

    const title = new Widget({ node: document.createElement('h2') });
    title.addClass('jp-yardlab-title');
    title.node.textContent = 'yardlab';
    this.header.addWidget(title);
    this.header.addWidget(
      new CapacityLine({ cluster: options.cluster, jobs: options.jobs })
    );

    const { model } = options;
    this.toolbar.addItem('status', new StatusLine({ model }));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Refresh jobs, environments, storage and capacity',
        onClick: () => void options.onRefresh()
      })
    );

    this._jobs = new JobsView({
      model: options.jobs,
      openNotebook: options.openNotebook
    });
    this._environments = new EnvironmentsView({
      model: options.environments,
      isAdmin: options.isAdmin
    });
    const storage = new Panel();
    storage.addClass('jp-yardlab-section');
    storage.addClass('jp-yardlab-storage');
    storage.title.label = 'Storage';
    storage.addWidget(new StorageUsageView({ model: options.storage }));
    for (const section of [this._jobs, this._environments, storage]) {
      this.addWidget(section);
    }
  }

  /** Redraw the sections (e.g. once the user's admin flag is known). */
  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    this._jobs.update();
    this._environments.update();
  }

  /** Expand the Environments section and open its create form. */
  openCreateForm(): void {
    const index = this.widgets.indexOf(this._environments);
    const accordion = this.content as AccordionPanel;
    if (index >= 0 && this._environments.isHidden) {
      accordion.expand(index);
    }
    this._environments.openForm();
  }

  private _jobs: JobsView;
  private _environments: EnvironmentsView;
}

/**
 * The namespace for `YardlabSidebar` statics.
 */
export namespace YardlabSidebar {
  /**
   * Options to create a `YardlabSidebar`.
   */
  export interface IOptions {
    /** The server status shown in the toolbar. */
    model: StatusModel;
    /** The user's YARN applications. */
    jobs: JobsModel;
    /** The user's environments. */
    environments: EnvironmentsModel;
    /** Cluster capacity. */
    cluster: ClusterModel;
    /** HDFS usage. */
    storage: StorageUsageModel;
    /** Whether the user is an admin. */
    isAdmin: () => boolean;
    /** Refresh everything (the toolbar button and the palette command). */
    onRefresh: () => Promise<void>;
    /** Open a notebook (its path relative to the server root) in Lab. */
    openNotebook?: (path: string) => void;
  }
}

/**
 * One line of text mirroring a `StatusModel`.
 */
export class StatusLine extends Widget {
  constructor(options: StatusLine.IOptions) {
    super();
    this.addClass('jp-yardlab-status');
    this._model = options.model;
    this._model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const model = this._model;
    this.node.textContent = model.text;
    this.toggleClass('jp-mod-error', model.error !== null);
    this.toggleClass('jp-mod-pending', model.pending);
    this.node.title = model.status?.edge_url
      ? `Edge service: ${model.status.edge_url}`
      : '';
  }

  private _model: StatusModel;
}

/**
 * The namespace for `StatusLine` statics.
 */
export namespace StatusLine {
  /**
   * Options to create a `StatusLine`.
   */
  export interface IOptions {
    /** The status to display. */
    model: StatusModel;
  }
}

/**
 * One line with the cluster's use and the user's share of it.
 */
export class CapacityLine extends Widget {
  constructor(options: CapacityLine.IOptions) {
    super();
    this.addClass('jp-yardlab-capacity');
    this._cluster = options.cluster;
    this._jobs = options.jobs;
    this._cluster.changed.connect(this._render, this);
    this._jobs.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this._cluster.changed.disconnect(this._render, this);
    this._jobs.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const cluster = this._cluster.reply;
    this.node.textContent = capacityText(cluster, this._jobs.usage, this._cluster.error);
    this.toggleClass('jp-mod-error', cluster === null && this._cluster.error !== null);
    if (cluster) {
      const pct = (used: number, total: number) =>
        total > 0 ? `${Math.round((100 * used) / total)}%` : '—';
      this.node.title =
        `Memory: ${pct(cluster.memory.usedMB, cluster.memory.totalMB)} used, ` +
        `vcores: ${pct(cluster.vcores.used, cluster.vcores.total)} used`;
    }
  }

  private _cluster: ClusterModel;
  private _jobs: JobsModel;
}

/**
 * The namespace for `CapacityLine` statics.
 */
export namespace CapacityLine {
  /**
   * Options to create a `CapacityLine`.
   */
  export interface IOptions {
    /** Cluster totals. */
    cluster: ClusterModel;
    /** The user's applications, for their share. */
    jobs: JobsModel;
  }
}
