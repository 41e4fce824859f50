import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { requestAPI } from './handler';
import { hdfsBrowserPlugin } from './hdfs/plugin';
import { yardlabIcon } from './icons';
import { StatusModel } from './model';
import { YardlabSidebar } from './sidebar';
import type { IServerStatus } from './tokens';

/**
 * Command ids of the yardlab extension.
 */
namespace CommandIDs {
  export const openPanel = 'yardlab:open-panel';
}

/**
 * Id of the sidebar widget, also its key in the layout restorer.
 */
const SIDEBAR_ID = 'yardlab-sidebar';

/**
 * Adds the yardlab sidebar to the left area and a palette command to open it.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'yardlab:plugin',
  description: 'A sidebar for YARN jobs, environments and storage.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const serverSettings = app.serviceManager.serverSettings;
    const model = new StatusModel({
      fetchStatus: () =>
        requestAPI<IServerStatus>('status', {}, serverSettings)
    });

    const sidebar = new YardlabSidebar({ model });
    sidebar.id = SIDEBAR_ID;
    sidebar.title.icon = yardlabIcon;
    sidebar.title.caption = 'YARN jobs and environments';
    app.shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, SIDEBAR_ID);

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open yardlab panel',
      caption: 'Show the yardlab sidebar',
      icon: yardlabIcon,
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'yardlab' });

    void model.refresh();
  }
};

export default [plugin, hdfsBrowserPlugin];
