/**
 * Shapes of the replies sent by the yardlab server extension.
 */

/**
 * The reply of `GET /yardlab/api/status`.
 */
export interface IServerStatus {
  /** Version of the yardlab Python package serving the API. */
  version: string;
  /** URL of the yardlab edge service, or an empty string when none is configured. */
  edge_url: string;
}

/**
 * One HDFS area the user can browse, from `GET /yardlab/api/storage`.
 */
export interface IStorageRoot {
  /** Display name: `Personal`, `Shared` or `Public`. */
  name: string;
  /** Absolute HDFS path of the area, e.g. `/user/alice`. */
  path: string;
  /** Whether the user may create, change and delete files there. */
  writable: boolean;
}

/**
 * What one storage area holds, as counted by HDFS.
 */
export interface IStorageUsage {
  /** Total size of the files, in bytes (one replica). */
  bytes: number;
  /** Number of files. */
  files: number;
  /** Number of directories, the area itself included. */
  directories: number;
}

/**
 * The reply of `GET /yardlab/api/storage`.
 */
export interface IStorageInfo {
  /** The HDFS user the edge service acts as. */
  user: string;
  /** The areas shown at the top of the HDFS file browser. */
  roots: IStorageRoot[];
  /** Usage per area, keyed by the lower-case root name (`personal`, `shared`, `public`). */
  usage: { [area: string]: IStorageUsage };
}

/**
 * A file or directory as described by `GET /yardlab/api/files/<path>`.
 */
export interface IHdfsEntry {
  /** `file` or `directory`. */
  type: 'file' | 'directory';
  /** Absolute HDFS path, starting with `/`. */
  path: string;
  /** Last path segment. */
  name: string;
  /** HDFS owner. */
  owner: string;
  /** HDFS group. */
  group: string;
  /** Octal permission string, e.g. `755`. */
  permission: string;
  /** Modification time in milliseconds since the epoch. */
  modified: number;
  /** Size in bytes; 0 for directories. */
  size: number;
  /** Whether the user may change or delete it. */
  writable: boolean;
  /** For a directory, its entries (without their own `content`). */
  content?: IHdfsEntry[];
}
