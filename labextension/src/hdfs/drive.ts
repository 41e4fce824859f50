import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from '../handler';
import type { IHdfsEntry, IStorageInfo, IStorageRoot } from '../tokens';
import * as codec from './codec';

/**
 * The largest file the drive will buffer and send in one PUT, in bytes.
 *
 * Lab's uploader sends big files in 1 MB chunks; the edge service takes a file
 * in one request, so the chunks are joined in the browser's memory first.
 */
export const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

/**
 * A JupyterLab drive backed by HDFS through `/yardlab/api/files`.
 *
 * Its local paths are HDFS absolute paths without the leading slash, so Lab
 * shows `/user/alice/x.ipynb` as `HDFS:user/alice/x.ipynb`. The empty path is a
 * virtual directory listing the user's storage roots (Personal, Shared, Public).
 * The drive makes the requests; `codec.ts` turns entries and bytes into models.
 */
export class HdfsDrive implements Contents.IDrive {
  constructor(options: HdfsDrive.IOptions = {}) {
    this.serverSettings =
      options.serverSettings ?? ServerConnection.makeSettings();
    this._describeFile = options.describeFile ?? (() => null);
    this._maxUploadBytes = options.maxUploadBytes ?? MAX_UPLOAD_BYTES;
  }

  /** The drive name, the prefix of its paths in Lab (`HDFS:`). */
  readonly name = 'HDFS';

  /** The settings used to reach the Jupyter server. */
  readonly serverSettings: ServerConnection.ISettings;

  /** Emitted after every successful change: new, save, rename, delete. */
  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._uploads.clear();
    Signal.clearData(this);
  }

  /**
   * Ask the server for the user's storage roots and their usage.
   *
   * The roots are remembered for the virtual top-level directory. Calls made
   * while a request is in flight share it: the edge sums whole trees for usage.
   */
  fetchStorage(): Promise<IStorageInfo> {
    if (this._storageRequest === null) {
      this._storageRequest = requestAPI<IStorageInfo>(
        'storage',
        {},
        this.serverSettings
      )
        .then(info => {
          this._roots = info.roots;
          return info;
        })
        .finally(() => {
          this._storageRequest = null;
        });
    }
    return this._storageRequest;
  }

  /**
   * Get a file or directory, with its content unless `options.content` is false.
   */
  async get(
    localPath: string,
    options: Contents.IFetchOptions = {}
  ): Promise<Contents.IModel> {
    const path = Private.normalize(localPath);
    const withContent = options.content !== false;
    if (path === '') {
      const roots = this._roots ?? (await this.fetchStorage()).roots;
      return codec.rootListing(roots, withContent);
    }
    const entry = await this._fetchEntry(path);
    if (entry.type === 'directory') {
      return codec.toModel(entry, withContent);
    }
    if (!withContent) {
      return codec.toModel(entry, false);
    }
    const bytes = await this._download(path);
    return {
      ...codec.toModel(entry, false),
      ...codec.decode(path, bytes, options, this._describeFile(path))
    };
  }

  /**
   * The URL that downloads a file's raw bytes.
   *
   * Like Lab's own drive, the `_xsrf` cookie is added as a query parameter:
   * the browser follows the link without the `X-XSRFToken` header.
   */
  async getDownloadUrl(localPath: string): Promise<string> {
    let url = this._url(Private.normalize(localPath), { download: '1' });
    let cookie = '';
    try {
      cookie = document.cookie;
    } catch {
      // No document (tests) or a sandboxed page without cookie access.
    }
    const xsrf = cookie.match('\\b_xsrf=([^;]*)\\b');
    if (xsrf) {
      const fullUrl = new URL(url);
      fullUrl.searchParams.append('_xsrf', xsrf[1]);
      url = fullUrl.toString();
    }
    return url;
  }

  /**
   * Create `untitled.ipynb`, `untitled.txt` (or the given extension) or
   * `Untitled Folder` in a directory, numbered to avoid existing names.
   */
  async newUntitled(
    options: Contents.ICreateOptions = {}
  ): Promise<Contents.IModel> {
    const dir = Private.normalize(options.path ?? '');
    Private.assertNotVirtualRoot(dir);
    const type = options.type ?? 'file';
    let naming: Private.INaming;
    let body: Uint8Array<ArrayBuffer> | null = null;
    if (type === 'directory') {
      naming = { base: 'Untitled Folder', separator: ' ', ext: '' };
    } else if (type === 'notebook') {
      naming = { base: 'untitled', separator: '', ext: '.ipynb' };
      body = codec.serializeNotebook(codec.EMPTY_NOTEBOOK);
    } else {
      naming = {
        base: 'untitled',
        separator: '',
        ext: PathExt.normalizeExtension(options.ext ?? '.txt')
      };
      body = new Uint8Array(0);
    }
    return this._createFreeName(dir, naming, path =>
      body === null
        ? this._mkdir(path)
        : this._put(path, new Blob([body]), 'new', false)
    );
  }

  /**
   * Delete a file, or a directory with everything in it.
   *
   * Recursive because Lab's file browser has already asked "Are you sure you
   * want to permanently delete…?", as it does for local folders; HDFS has no
   * trash here, so that answer is final.
   */
  async delete(localPath: string): Promise<void> {
    const path = Private.normalize(localPath);
    this._assertMovable(path);
    await this._request(path, { recursive: '1' }, { method: 'DELETE' });
    this._fileChanged.emit({
      type: 'delete',
      oldValue: { path },
      newValue: null
    });
  }

  /** Rename or move a file or directory. */
  async rename(
    oldLocalPath: string,
    newLocalPath: string
  ): Promise<Contents.IModel> {
    const oldPath = Private.normalize(oldLocalPath);
    const newPath = Private.normalize(newLocalPath);
    this._assertMovable(oldPath);
    Private.assertBelowRoot(newPath);
    const response = await this._request(
      oldPath,
      {},
      {
        method: 'PATCH',
        body: JSON.stringify({ path: `/${newPath}` }),
        headers: { 'Content-Type': 'application/json' }
      }
    );
    const model = codec.toModel(await response.json(), false);
    this._fileChanged.emit({
      type: 'rename',
      oldValue: { path: oldPath },
      newValue: model
    });
    return model;
  }

  /**
   * Write a whole file (or create a directory when `options.type` is `directory`).
   *
   * Chunks sent by Lab's uploader (`options.chunk` 1, 2, …, then -1 for the last)
   * are kept in memory and written with one PUT when the last one arrives.
   */
  async save(
    localPath: string,
    options: Partial<Contents.IModel> = {}
  ): Promise<Contents.IModel> {
    const path = Private.normalize(localPath);
    Private.assertBelowRoot(path);
    if (options.type === 'directory') {
      return this._mkdir(path);
    }
    const piece = codec.encode(path, options);
    const chunk = options.chunk;
    if (chunk === undefined) {
      this._assertUploadSize(path, piece.byteLength);
      return this._put(path, new Blob([piece]), 'save', true);
    }

    this._dropStaleUploads();
    let upload = this._uploads.get(path);
    if (chunk === 1 || upload === undefined) {
      if (chunk > 1) {
        throw new Error(
          `The upload of ${PathExt.basename(path)} lost its first part; please upload it again.`
        );
      }
      upload = { parts: [], bytes: 0, touched: 0 };
    }
    upload.parts.push(piece);
    upload.bytes += piece.byteLength;
    upload.touched = Date.now();
    try {
      this._assertUploadSize(path, upload.bytes);
    } catch (error) {
      this._uploads.delete(path);
      throw error;
    }
    if (chunk !== -1) {
      this._uploads.set(path, upload);
      return codec.pendingUploadModel(path, upload.bytes);
    }
    this._uploads.delete(path);
    return this._put(path, new Blob(upload.parts), 'save', true);
  }

  /**
   * Copy a file into a directory as `<name>-Copy<n><ext>`.
   *
   * The bytes travel through the browser (GET then PUT); directories cannot be copied.
   */
  async copy(localPath: string, toLocalDir: string): Promise<Contents.IModel> {
    const path = Private.normalize(localPath);
    const dir = Private.normalize(toLocalDir);
    Private.assertNotVirtualRoot(dir);
    const source = await this._fetchEntry(path);
    if (source.type === 'directory') {
      throw new Error(
        `Copying folders is not supported on HDFS here: ${source.path}`
      );
    }
    const bytes = await this._download(path);
    const ext = PathExt.extname(source.name);
    const base = source.name
      .slice(0, source.name.length - ext.length)
      .replace(/-Copy\d*$/, '');
    return this._createFreeName(
      dir,
      { base: `${base}-Copy`, separator: '', ext, first: 1 },
      target => this._put(target, new Blob([bytes]), 'new', false)
    );
  }

  /**
   * HDFS has no checkpoints here: this returns a checkpoint model and stores nothing.
   *
   * Lab creates a checkpoint after every save; answering without one keeps
   * saving working, and "Revert to checkpoint" finds none (`listCheckpoints`).
   */
  async createCheckpoint(
    localPath: string
  ): Promise<Contents.ICheckpointModel> {
    return { id: 'none', last_modified: new Date().toISOString() };
  }

  /** HDFS has no checkpoints here: always an empty list. */
  async listCheckpoints(
    localPath: string
  ): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  /** HDFS has no checkpoints here: nothing to restore. */
  async restoreCheckpoint(
    localPath: string,
    checkpointID: string
  ): Promise<void> {
    return;
  }

  /** HDFS has no checkpoints here: nothing to delete. */
  async deleteCheckpoint(
    localPath: string,
    checkpointID: string
  ): Promise<void> {
    return;
  }

  /**
   * Refuse to delete or move a storage root or anything at the top level.
   */
  private _assertMovable(path: string): void {
    Private.assertBelowRoot(path);
    const root = this._roots?.find(
      candidate => PathExt.removeSlash(candidate.path) === path
    );
    if (root) {
      throw new Error(
        `${root.name} (${root.path}) is a storage root; it cannot be renamed or deleted.`
      );
    }
  }

  /**
   * Forget uploads whose next chunk never came (cancelled, or the tab lost
   * its connection), so their memory is freed.
   */
  private _dropStaleUploads(): void {
    const cutoff = Date.now() - Private.STALE_UPLOAD_MS;
    for (const [path, upload] of this._uploads) {
      if (upload.touched < cutoff) {
        this._uploads.delete(path);
      }
    }
  }

  private _assertUploadSize(path: string, bytes: number): void {
    if (bytes > this._maxUploadBytes) {
      const megabytes = Math.floor(this._maxUploadBytes / 1024 / 1024);
      throw new Error(
        `${PathExt.basename(path)} is larger than ${megabytes} MB, the most the HDFS ` +
          'browser can upload. Use `hdfs dfs -put` from a terminal instead.'
      );
    }
  }

  /** The API URL of an HDFS path (drive path without leading slash). */
  private _url(path: string, query: { [key: string]: string } = {}): string {
    const segments = path === '' ? [] : path.split('/');
    const url = URLExt.join(
      this.serverSettings.baseUrl,
      'yardlab',
      'api',
      'files',
      ...segments.map(encodeURIComponent)
    );
    return Object.keys(query).length > 0
      ? url + URLExt.objectToQueryString(query)
      : url;
  }

  /** Send a request about a path; error replies become `ResponseError`s. */
  private async _request(
    path: string,
    query: { [key: string]: string },
    init: RequestInit
  ): Promise<Response> {
    const response = await ServerConnection.makeRequest(
      this._url(path, query),
      init,
      this.serverSettings
    );
    if (!response.ok) {
      // Reads the server's `{"message": ...}` so Lab's error dialog shows it.
      throw await ServerConnection.ResponseError.create(response);
    }
    return response;
  }

  private async _fetchEntry(path: string): Promise<IHdfsEntry> {
    const response = await this._request(path, {}, { method: 'GET' });
    return response.json();
  }

  private async _download(path: string): Promise<Uint8Array<ArrayBuffer>> {
    const response = await this._request(
      path,
      { download: '1' },
      { method: 'GET' }
    );
    return new Uint8Array(await response.arrayBuffer());
  }

  private async _mkdir(path: string): Promise<Contents.IModel> {
    const response = await this._request(
      path,
      { op: 'mkdir' },
      { method: 'POST' }
    );
    const model = codec.toModel(await response.json(), false);
    this._fileChanged.emit({ type: 'new', oldValue: null, newValue: model });
    return model;
  }

  private async _put(
    path: string,
    body: Blob,
    change: 'new' | 'save',
    overwrite: boolean
  ): Promise<Contents.IModel> {
    const response = await this._request(
      path,
      overwrite ? {} : { overwrite: '0' },
      {
        method: 'PUT',
        body,
        headers: { 'Content-Type': 'application/octet-stream' }
      }
    );
    const model = codec.toModel(await response.json(), false);
    this._fileChanged.emit({ type: change, oldValue: null, newValue: model });
    return model;
  }

  /**
   * Create something under the first name in `dir` that is not taken.
   *
   * Names seen in the listing are skipped; a 409 (someone else was faster)
   * moves on to the next number.
   */
  private async _createFreeName(
    dir: string,
    naming: Private.INaming,
    create: (path: string) => Promise<Contents.IModel>
  ): Promise<Contents.IModel> {
    const listing = await this._fetchEntry(dir);
    if (listing.type !== 'directory') {
      throw new Error(`Not a directory: ${listing.path}`);
    }
    const taken = new Set((listing.content ?? []).map(entry => entry.name));
    let conflicts = 0;
    for (let n = naming.first ?? 0; ; n++) {
      const name = Private.numberedName(naming, n);
      if (taken.has(name)) {
        continue;
      }
      try {
        return await create(PathExt.join(dir, name));
      } catch (error) {
        const status = (error as ServerConnection.ResponseError).response
          ?.status;
        if (status !== 409 || ++conflicts >= Private.MAX_NAME_CONFLICTS) {
          throw error;
        }
      }
    }
  }

  private _describeFile: (path: string) => HdfsDrive.IFileHint | null;
  private _maxUploadBytes: number;
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _roots: IStorageRoot[] | null = null;
  private _storageRequest: Promise<IStorageInfo> | null = null;
  private _uploads = new Map<string, Private.IUpload>();
  private _isDisposed = false;
}

/**
 * The namespace for `HdfsDrive` statics.
 */
export namespace HdfsDrive {
  /**
   * Options to create an `HdfsDrive`.
   */
  export interface IOptions {
    /** Settings to reach the Jupyter server; Lab's `serviceManager.serverSettings`. */
    serverSettings?: ServerConnection.ISettings;
    /**
     * What Lab knows about a file from its name (e.g. from the document
     * registry's file types); used to pick a format and mimetype on `get`.
     */
    describeFile?: (path: string) => IFileHint | null;
    /** Largest file `save` writes, in bytes; `MAX_UPLOAD_BYTES` (512 MB) by default. */
    maxUploadBytes?: number;
  }

  /**
   * What is known about a file from its name alone (see `codec.ts`).
   */
  export type IFileHint = codec.IFileHint;
}

namespace Private {
  /** How long a chunked upload may wait for its next chunk, in ms. */
  export const STALE_UPLOAD_MS = 10 * 60 * 1000;

  /** How many 409 replies `newUntitled`/`copy` accept before giving up. */
  export const MAX_NAME_CONFLICTS = 10;

  /**
   * How to number new names: `base`, then `base<separator><n>`, plus `ext`.
   */
  export interface INaming {
    /** Name without number and extension. */
    base: string;
    /** Put between the base and the number. */
    separator: string;
    /** Extension with its dot, or an empty string. */
    ext: string;
    /** First number to try; 0 means the bare name first. */
    first?: number;
  }

  /**
   * Chunks of one upload received so far.
   */
  export interface IUpload {
    /** Decoded chunks, in order. */
    parts: Uint8Array<ArrayBuffer>[];
    /** Their total size. */
    bytes: number;
    /** When the last chunk arrived (`Date.now()`). */
    touched: number;
  }

  export function numberedName(naming: INaming, n: number): string {
    const number = n === 0 ? '' : `${naming.separator}${n}`;
    return `${naming.base}${number}${naming.ext}`;
  }

  /**
   * A drive path without leading slash, `.` or `..` segments.
   */
  export function normalize(localPath: string): string {
    const path = PathExt.normalize(localPath);
    if (path === '.') {
      return '';
    }
    if (path === '..' || path.startsWith('../')) {
      throw new Error(`Path outside HDFS: ${localPath}`);
    }
    return path;
  }

  const TOP_LEVEL_MESSAGE =
    'Open Personal or Shared first: nothing can be written at the top of the HDFS browser.';

  /**
   * Refuse a directory that is the virtual top-level one.
   */
  export function assertNotVirtualRoot(dir: string): void {
    if (dir === '') {
      throw new Error(TOP_LEVEL_MESSAGE);
    }
  }

  /**
   * Refuse a path to write whose parent is the virtual top-level directory:
   * the user sees the roots there, not HDFS's `/`.
   */
  export function assertBelowRoot(path: string): void {
    if (!path.includes('/')) {
      throw new Error(TOP_LEVEL_MESSAGE);
    }
  }
}
