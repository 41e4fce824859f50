import {
  SidePanel,
  ToolbarButton,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { StatusModel } from './model';

/**
 * The yardlab sidebar: a header, a status toolbar and one section per topic.
 */
export class YardlabSidebar extends SidePanel {
  constructor(options: YardlabSidebar.IOptions) {
    super();
    this.addClass('jp-yardlab-Sidebar');

    const title = new Widget({ node: document.createElement('h2') });
    title.addClass('jp-yardlab-title');
    title.node.textContent = 'yardlab';
    this.header.addWidget(title);

    const { model } = options;
    this.toolbar.addItem('status', new StatusLine({ model }));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Check the server extension again',
        onClick: () => void model.refresh()
      })
    );

    for (const label of ['Jobs', 'Environments', 'Storage']) {
      this.addWidget(Private.createPlaceholder(label));
    }
  }
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

namespace Private {
  /**
   * A section that says its topic is not available yet.
   */
  export function createPlaceholder(label: string): Widget {
    const section = new Widget();
    section.addClass('jp-yardlab-section');
    section.title.label = label;
    const text = document.createElement('p');
    text.className = 'jp-yardlab-placeholder';
    text.textContent = 'Coming soon';
    section.node.appendChild(text);
    return section;
  }
}
