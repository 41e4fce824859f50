import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { PanelLayout } from '@lumino/widgets';

import { requestAPI } from '../handler';
import { CellProgress, IProgressReply } from './model';
import { CellProgressWidget } from './widget';

/**
 * Live Spark progress under each running cell of a notebook whose kernel runs through the edge:
 * the kernel tags the cell's Spark jobs with the id of its execute request, and the edge reads
 * them from the driver's Spark UI.
 */
export const sparkProgressPlugin: JupyterFrontEndPlugin<void> = {
  id: 'yardlab:spark-progress',
  description: 'Live Spark jobs and stages under each running notebook cell.',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    const settings = app.serviceManager.serverSettings;
    const shown = new WeakMap<Cell, CellProgressWidget>();
    // kernels the edge does not know (local ones) or that are not the user's: not asked again
    const notOurs = new Set<string>();

    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      if (!(cell instanceof CodeCell)) {
        return;
      }
      const panel = notebook.parent;
      const kernelId =
        panel instanceof NotebookPanel ? panel.sessionContext.session?.kernel?.id : undefined;
      if (!kernelId || notOurs.has(kernelId)) {
        return;
      }
      // the cell's execute request is sent right after it is scheduled
      setTimeout(() => watch(cell, kernelId), 0);
    });

    function watch(cell: CodeCell, kernelId: string): void {
      const future = cell.outputArea.future;
      const msgId = future?.msg?.header?.msg_id;
      if (!future || !msgId || cell.isDisposed) {
        return;
      }
      shown.get(cell)?.dispose();
      const model = new CellProgress({
        fetch: () =>
          requestAPI<IProgressReply>(
            `kernels/${encodeURIComponent(kernelId)}/progress?cell=${encodeURIComponent(msgId)}`,
            {},
            settings
          )
      });
      const widget = new CellProgressWidget(model);
      model.changed.connect(() => {
        // a kernel that is not the user's is not asked about again; a 404 (a local kernel, or one
        // the edge has not recorded yet) only ends this cell's polling
        if (model.stoppedBy === 403) {
          notOurs.add(kernelId);
        }
      });
      const layout = cell.layout as PanelLayout;
      const output = cell.outputArea.parent;
      const index = output ? layout.widgets.indexOf(output) : -1;
      if (index >= 0) {
        layout.insertWidget(index, widget);
      } else {
        layout.addWidget(widget);
      }
      shown.set(cell, widget);
      cell.disposed.connect(() => widget.dispose());
      model.start();
      void future.done
        .catch(() => undefined)
        .then(() => model.finish());
    }
  }
};
