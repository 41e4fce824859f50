/**
 * The HDFS drive's codec: server entries to Lab contents models, and file bytes to and from
 * model content (UTF-8 text, base64, notebooks as JSON with their stored trust flags dropped).
 *
 * Pure functions, no requests: `drive.ts` fetches and writes the bytes.
 */
import { PathExt } from '@jupyterlab/coreutils';
import type { Contents } from '@jupyterlab/services';

import type { IHdfsEntry, IStorageRoot } from '../tokens';

/** What `nbformat.v4.new_notebook()` writes. */
export const EMPTY_NOTEBOOK = {
  cells: [],
  metadata: {},
  nbformat: 4,
  nbformat_minor: 5
};

/**
 * What is known about a file from its name alone.
 */
export interface IFileHint {
  /** Mimetype to report, e.g. `image/png`; `null` when unknown. */
  mimetype: string | null;
  /** The format Lab usually reads this kind of file in. */
  format: Contents.FileFormat;
}

/** Whether Lab opens this path as a notebook (by its extension). */
export function isNotebookPath(path: string): boolean {
  return PathExt.extname(path).toLowerCase() === '.ipynb';
}

/** Milliseconds since the epoch as the ISO string Lab expects; '' when unknown. */
function isoDate(millis: number | undefined): string {
  return typeof millis === 'number' && millis > 0
    ? new Date(millis).toISOString()
    : '';
}

/**
 * A Lab contents model for a server entry; directory entries are listed
 * when `withContent` is true.
 */
export function toModel(
  entry: IHdfsEntry,
  withContent: boolean
): Contents.IModel {
  const path = PathExt.removeSlash(entry.path);
  const isDirectory = entry.type === 'directory';
  const base = {
    name: entry.name,
    path,
    writable: entry.writable,
    // HDFS keeps no creation time.
    created: '',
    last_modified: isoDate(entry.modified),
    size: isDirectory ? undefined : entry.size
  };
  if (isDirectory) {
    return {
      ...base,
      type: 'directory',
      mimetype: '',
      content: withContent
        ? (entry.content ?? []).map(child => toModel(child, false))
        : null,
      format: withContent ? 'json' : null
    };
  }
  return {
    ...base,
    type: isNotebookPath(path) ? 'notebook' : 'file',
    mimetype: '',
    content: null,
    format: null
  };
}

/** The virtual top-level directory: one entry per storage root. */
export function rootListing(
  roots: IStorageRoot[],
  withContent: boolean
): Contents.IModel {
  const content: Contents.IModel[] = roots.map(root => ({
    name: root.name,
    path: PathExt.removeSlash(root.path),
    type: 'directory',
    writable: root.writable,
    created: '',
    last_modified: '',
    mimetype: '',
    content: null,
    format: null
  }));
  return {
    name: '',
    path: '',
    type: 'directory',
    writable: false,
    created: '',
    last_modified: '',
    mimetype: '',
    content: withContent ? content : null,
    format: withContent ? 'json' : null
  };
}

/** What `save` returns for a chunk that is buffered, not yet written. */
export function pendingUploadModel(
  path: string,
  bytes: number
): Contents.IModel {
  return {
    name: PathExt.basename(path),
    path,
    type: 'file',
    writable: true,
    created: '',
    last_modified: '',
    mimetype: '',
    content: null,
    format: null,
    size: bytes
  };
}

/**
 * Type, format, mimetype and content of downloaded bytes.
 *
 * Notebooks are parsed JSON; an explicitly requested format wins; otherwise
 * text when the bytes are UTF-8 (unless Lab reads such files as binary),
 * else base64.
 */
export function decode(
  path: string,
  bytes: Uint8Array,
  options: Contents.IFetchOptions,
  hint: IFileHint | null
): Pick<Contents.IModel, 'type' | 'format' | 'mimetype' | 'content'> {
  const wantsNotebook =
    options.type === 'notebook' ||
    options.format === 'json' ||
    (!options.type && !options.format && isNotebookPath(path));
  if (wantsNotebook) {
    const text = utf8(bytes);
    let content: unknown;
    try {
      content = JSON.parse(text ?? '');
    } catch (error) {
      throw new Error(
        `${PathExt.basename(path)} is not a readable notebook: ${(error as Error).message}`
      );
    }
    return {
      type: 'notebook',
      format: 'json',
      mimetype: 'application/x-ipynb+json',
      content: untrusted(content)
    };
  }
  const type = 'file';
  let format = options.format ?? null;
  let text: string | null = null;
  if (format !== 'base64') {
    if (format === 'text' || hint?.format !== 'base64') {
      text = utf8(bytes);
    }
    if (format === 'text' && text === null) {
      throw new Error(`${PathExt.basename(path)} is not UTF-8 encoded text.`);
    }
    format = text === null ? 'base64' : 'text';
  }
  if (format === 'text') {
    return {
      type,
      format,
      mimetype: hint?.mimetype ?? 'text/plain',
      content: text
    };
  }
  return {
    type,
    format: 'base64',
    mimetype: hint?.mimetype ?? 'application/octet-stream',
    content: toBase64(bytes)
  };
}

/**
 * The bytes to write for a model given to `save`.
 */
export function encode(
  path: string,
  options: Partial<Contents.IModel>
): Uint8Array<ArrayBuffer> {
  const { content, format, type } = options;
  if (content === undefined || content === null) {
    throw new Error(`No content to save for ${PathExt.basename(path)}.`);
  }
  if (format === 'base64') {
    return fromBase64(content);
  }
  if (type === 'notebook' || format === 'json') {
    return serializeNotebook(withoutTrust(content));
  }
  return new TextEncoder().encode(String(content));
}

/**
 * A notebook as Jupyter's notary hands out one whose signature it cannot
 * check: code cells marked untrusted, no trust flag elsewhere.
 *
 * Anyone may write `"trusted": true` into a file in /shared or /public, and
 * Lab runs the HTML and JavaScript outputs of trusted cells, so the flags
 * stored in the file must never be believed.
 */
export function untrusted(content: unknown): unknown {
  return mapCells(content, cell => {
    const { trusted, ...metadata } = cell.metadata ?? {};
    return {
      ...cell,
      metadata:
        cell.cell_type === 'code' ? { ...metadata, trusted: false } : metadata
    };
  });
}

/**
 * A notebook without the cells' trust flags, as Jupyter saves it: trust is
 * not a property of the file (see `untrusted`).
 */
export function withoutTrust(content: unknown): unknown {
  return mapCells(content, cell => {
    if (!cell.metadata || !('trusted' in cell.metadata)) {
      return cell;
    }
    const { trusted, ...metadata } = cell.metadata;
    return { ...cell, metadata };
  });
}

/**
 * A copy of a notebook with each cell replaced; anything that is not a
 * notebook (no `cells` list) is returned as it is.
 */
function mapCells(
  content: unknown,
  change: (cell: INotebookCell) => INotebookCell
): unknown {
  const notebook = content as { cells?: unknown };
  if (!notebook || !Array.isArray(notebook.cells)) {
    return content;
  }
  return { ...notebook, cells: notebook.cells.map(change) };
}

/**
 * The parts of an nbformat cell the trust handling looks at.
 */
interface INotebookCell {
  /** `code`, `markdown` or `raw`. */
  cell_type?: string;
  /** Cell metadata, where Lab keeps `trusted`. */
  metadata?: { [key: string]: unknown };
}

/** Notebook JSON as Jupyter writes it: one-space indent, final newline. */
export function serializeNotebook(content: unknown): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(content, null, 1) + '\n');
}

/** The text of UTF-8 bytes, or `null` if they are not valid UTF-8. */
function utf8(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function toBase64(bytes: Uint8Array): string {
  // String.fromCharCode takes arguments, so go in slices below the engines' argument limits.
  const slice = 0x8000;
  let binary = '';
  for (let start = 0; start < bytes.length; start += slice) {
    binary += String.fromCharCode(...bytes.subarray(start, start + slice));
  }
  return btoa(binary);
}

function fromBase64(content: string): Uint8Array<ArrayBuffer> {
  const binary = atob(content);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}
