import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory, Uploader } from '@jupyterlab/filebrowser';
import {
  CommandToolbarButton,
  ToolbarButton,
  newFolderIcon,
  notebookIcon,
  refreshIcon
} from '@jupyterlab/ui-components';

import { hdfsIcon } from '../icons';
import { HdfsDrive } from './drive';
import { StorageUsageModel, StorageUsageView } from './usage';

/**
 * Command ids of the HDFS browser.
 */
namespace CommandIDs {
  export const open = 'yardlab:open-hdfs';
  export const newNotebook = 'yardlab:hdfs-new-notebook';
}

/**
 * Id of the HDFS file browser widget (and of its side tab's `data-id`).
 */
const BROWSER_ID = 'yardlab-hdfs-browser';

/**
 * How often the open HDFS folder is listed again, in ms. Every listing is a
 * NameNode call through the edge service, so this is slower than Lab's default.
 */
const REFRESH_INTERVAL = 30 * 1000;

/**
 * Adds the `HDFS` drive and a second file browser for it in the left area.
 */
export const hdfsBrowserPlugin: JupyterFrontEndPlugin<void> = {
  id: 'yardlab:hdfs-browser',
  description:
    'A file browser for HDFS: personal, shared and public storage.',
  autoStart: true,
  requires: [IDocumentManager, IFileBrowserFactory],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    browserFactory: IFileBrowserFactory,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const { commands } = app;
    const registry = docManager.registry;
    const drive = new HdfsDrive({
      serverSettings: app.serviceManager.serverSettings,
      describeFile: path => {
        const fileType = registry.getFileTypesForPath(path)[0];
        return fileType
          ? {
              mimetype: fileType.mimeTypes[0] ?? null,
              format: fileType.fileFormat
            }
          : null;
      }
    });
    docManager.services.contents.addDrive(drive);

    const browser = browserFactory.createFileBrowser(BROWSER_ID, {
      driveName: drive.name,
      refreshInterval: REFRESH_INTERVAL,
      restore: false
    });
    browser.title.icon = hdfsIcon;
    browser.title.caption = 'HDFS: personal, shared and public storage';
    // The side tab's label when Lab shows labels, like the default file browser's.
    browser.title.dataset = { ...browser.title.dataset, jpTabLabel: 'HDFS' };
    browser.node.setAttribute('aria-label', 'HDFS file browser');

    const usage = new StorageUsageModel({
      fetchStorage: () => drive.fetchStorage()
    });
    browser.header.addWidget(new StorageUsageView({ model: usage }));

    /** The drive-local path of the folder shown, '' at the top (the roots). */
    const localFolder = () =>
      docManager.services.contents.localPath(browser.model.path);

    commands.addCommand(CommandIDs.open, {
      label: 'Open HDFS file browser',
      caption: browser.title.caption,
      icon: hdfsIcon,
      execute: () => app.shell.activateById(BROWSER_ID)
    });

    commands.addCommand(CommandIDs.newNotebook, {
      label: 'New Notebook in HDFS',
      caption:
        'Create a notebook in the folder shown in the HDFS file browser',
      icon: notebookIcon,
      isEnabled: () =>
        commands.hasCommand('notebook:create-new') && localFolder() !== '',
      describedBy: {
        args: {
          type: 'object',
          properties: {
            kernelName: {
              type: 'string',
              description:
                'Kernel to start; without it Lab asks which kernel to use.'
            }
          }
        }
      },
      execute: async args => {
        try {
          return await commands.execute('notebook:create-new', {
            cwd: browser.model.path,
            kernelName: args.kernelName as string | undefined
          });
        } catch (error) {
          void showErrorMessage('Cannot create the notebook', error as Error);
        }
      }
    });
    browser.model.pathChanged.connect(() =>
      commands.notifyCommandChanged(CommandIDs.newNotebook)
    );

    // Lab 4.6's FileBrowserModel.onFileChanged compares `HDFS:` + the dirname of a
    // path that already starts with `HDFS:`, so it never refreshes after changes on a
    // drive; refresh here when a change touches the folder shown.
    drive.fileChanged.connect((_, change) => {
      const folder = localFolder();
      const touched = [change.oldValue?.path, change.newValue?.path].some(
        path => path && PathExt.dirname(path) === folder
      );
      if (touched) {
        void browser.model.refresh();
      }
    });

    browser.toolbar.addItem(
      'new-notebook',
      new CommandToolbarButton({
        commands,
        id: CommandIDs.newNotebook,
        label: '',
        caption: 'New Notebook in this HDFS folder'
      })
    );
    browser.toolbar.addItem(
      'new-folder',
      new ToolbarButton({
        icon: newFolderIcon,
        tooltip: 'New Folder',
        // createNewDirectory shows its own error dialog before rejecting.
        onClick: () => void browser.createNewDirectory().catch(() => undefined)
      })
    );
    browser.toolbar.addItem('upload', new Uploader({ model: browser.model }));
    browser.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Refresh the listing and storage usage',
        onClick: () => {
          void browser.model.refresh();
          void usage.refresh();
        }
      })
    );

    app.shell.add(browser, 'left', { rank: 110 });
    // Remembers whether the panel was open; the folder always starts at the roots.
    restorer?.add(browser, BROWSER_ID);
    void browser.model.cd('/');

    palette?.addItem({ command: CommandIDs.open, category: 'yardlab' });
    palette?.addItem({ command: CommandIDs.newNotebook, category: 'yardlab' });
  }
};
