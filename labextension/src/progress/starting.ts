import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISessionContext } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { requestAPI } from '../handler';
import { IKernelStartsReply, startText, WAITING } from './startModel';

export { IKernelStartsReply, startText };

/**
 * A toolbar item of notebooks whose kernel is starting through the edge: the start's phase
 * (queued in YARN and why, starting the driver, connecting) instead of a silent wait.
 */
export class KernelStartStatus extends Widget {
  constructor(
    private readonly _session: ISessionContext,
    private readonly _fetch: () => Promise<IKernelStartsReply>,
    private readonly _interval = 1500
  ) {
    super();
    this.addClass('jp-yardlab-kernel-start');
    this.node.setAttribute('role', 'status');
    this.node.setAttribute('aria-live', 'polite');
    this.hide();
    _session.statusChanged.connect(this._check, this);
    _session.connectionStatusChanged.connect(this._check, this);
    _session.kernelChanged.connect(this._check, this);
    this._check();
  }

  dispose(): void {
    this._stop();
    super.dispose();
  }

  private _check(): void {
    if (this.isDisposed) {
      return;
    }
    const waiting =
      WAITING.has(this._session.kernelDisplayStatus) && !this._session.hasNoKernel;
    if (waiting && this._timer === null) {
      this._since = Date.now() / 1000 - 5;
      this._timer = window.setInterval(() => void this._poll(), this._interval);
      void this._poll();
    } else if (!waiting && this._timer !== null) {
      this._stop();
      this.node.textContent = '';
      this.hide();
    }
  }

  private async _poll(): Promise<void> {
    try {
      const reply = await this._fetch();
      if (this._timer === null || this.isDisposed) {
        return;
      }
      const text = startText(
        reply,
        this._session.session?.kernel?.id ?? null,
        this._since
      );
      this.node.textContent = text ?? '';
      this.node.title = text ?? '';
      if (text) {
        this.show();
      } else {
        this.hide();
      }
    } catch {
      // an edge that does not know the route, or a local kernel: nothing to say
      this.hide();
    }
  }

  private _stop(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _timer: number | null = null;
  private _since = 0;
}

/**
 * The kernel start phases in each notebook's toolbar.
 */
export const kernelStartPlugin: JupyterFrontEndPlugin<void> = {
  id: 'yardlab:kernel-start',
  description: "A notebook's kernel start, phase by phase (queued in YARN and why, starting the driver).",
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    const settings = app.serviceManager.serverSettings;
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const item = new KernelStartStatus(panel.sessionContext, () =>
          requestAPI<IKernelStartsReply>('kernels/starting', {}, settings)
        );
        panel.toolbar.insertAfter('spacer', 'yardlabKernelStart', item);
        return item;
      }
    });
  }
};
