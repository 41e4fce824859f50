import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { addIcon, refreshIcon } from '@jupyterlab/ui-components';

import { ClusterModel } from './cluster';
import { EnvironmentsModel } from './environments/model';
import { requestAPI, requestConditional } from './handler';
import { hdfsBrowserPlugin } from './hdfs/plugin';
import { StorageUsageModel } from './hdfs/usage';
import { sparkProgressPlugin } from './progress/plugin';
import { kernelStartPlugin } from './progress/starting';
import { yardlabIcon } from './icons';
import { JobsModel } from './jobs/model';
import { ReplyModel } from './reply';
import { YardlabSidebar } from './sidebar';
import { StatusModel } from './status';
import type {
  IAppsReply,
  IClusterInfo,
  IEnvironment,
  IEnvironmentList,
  IKillReply,
  IMe,
  IServerStatus,
  IStorageInfo
} from './tokens';

/**
 * Command ids of the yardlab extension.
 */
namespace CommandIDs {
  export const openPanel = 'yardlab:open-panel';
  export const refresh = 'yardlab:refresh';
  export const createEnvironment = 'yardlab:create-environment';
}

/**
 * Id of the sidebar widget, also its key in the layout restorer.
 */
const SIDEBAR_ID = 'yardlab-sidebar';

/**
 * Adds the yardlab sidebar to the left area and its commands to the palette.
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
    const settings = app.serviceManager.serverSettings;
    const path = (...parts: string[]) =>
      parts.map(encodeURIComponent).join('/');
    const model = new StatusModel({
      fetchStatus: () => requestAPI<IServerStatus>('status', {}, settings)
    });
    const me = new ReplyModel<IMe>({
      fetch: () => requestAPI<IMe>('me', {}, settings)
    });
    const jobs = new JobsModel({
      fetchApps: etag => requestConditional<IAppsReply>('apps', etag, settings),
      killApp: id =>
        requestAPI<IKillReply>(path('apps', id), { method: 'DELETE' }, settings)
    });
    const environments = new EnvironmentsModel({
      api: {
        list: () => requestAPI<IEnvironmentList>('environments', {}, settings),
        get: (owner, name) =>
          requestAPI<IEnvironment>(path('environments', owner, name), {}, settings),
        log: (owner, name) =>
          requestAPI<string>(path('environments', owner, name, 'log'), {}, settings),
        create: request =>
          requestAPI<IEnvironment>(
            'environments',
            { method: 'POST', body: JSON.stringify(request) },
            settings
          ),
        remove: (owner, name) =>
          requestAPI(path('environments', owner, name), { method: 'DELETE' }, settings)
      }
    });
    const cluster = new ClusterModel({
      fetchCluster: () => requestAPI<IClusterInfo>('cluster', {}, settings)
    });
    const storage = new StorageUsageModel({
      fetchStorage: () => requestAPI<IStorageInfo>('storage', {}, settings)
    });

    // a new environment's kernel goes into the Launcher without a page reload
    environments.ready.connect(async (_, env) => {
      await app.serviceManager.kernelspecs.refreshSpecs();
      Notification.success(
        `Environment ${env.display_name || env.name} is ready: its kernel is in the Launcher.`,
        { autoClose: 8000 }
      );
    });

    const refreshAll = async () => {
      await Promise.all([
        model.refresh(),
        jobs.refresh(),
        environments.refresh(),
        cluster.refresh(),
        storage.refresh()
      ]);
    };

    const sidebar = new YardlabSidebar({
      model,
      jobs,
      environments,
      cluster,
      storage,
      isAdmin: () => me.reply?.admin ?? false,
      onRefresh: refreshAll,
      openNotebook: path => void app.commands.execute('docmanager:open', { path })
    });
    sidebar.id = SIDEBAR_ID;
    sidebar.title.icon = yardlabIcon;
    sidebar.title.caption = 'YARN jobs and environments';
    app.shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, SIDEBAR_ID);
    me.changed.connect(() => sidebar.update());

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open yardlab panel',
      caption: 'Show the yardlab sidebar',
      icon: yardlabIcon,
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh yardlab jobs and environments',
      caption: 'Ask the edge service for jobs, environments, storage and capacity now',
      icon: refreshIcon,
      execute: refreshAll
    });
    app.commands.addCommand(CommandIDs.createEnvironment, {
      label: 'Create yardlab environment…',
      caption: 'Open the form for a new kernel environment',
      icon: addIcon,
      execute: () => {
        app.shell.activateById(SIDEBAR_ID);
        sidebar.openCreateForm();
      }
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'yardlab' });
    }

    void model.refresh();
    void me.refresh();
  }
};

export default [plugin, hdfsBrowserPlugin, sparkProgressPlugin, kernelStartPlugin];
