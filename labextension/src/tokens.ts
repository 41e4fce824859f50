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

/**
 * One YARN application as the edge describes it, from `GET /yardlab/api/apps`.
 */
export interface IApp {
  /** YARN application id, e.g. `application_1700000000000_0001`. */
  id: string;
  /** Application name, as the submitter chose it (any text: always rendered as text). */
  name: string;
  /** The user who owns it. */
  user: string;
  /** The scheduler queue it runs in. */
  queue: string;
  /** YARN state: NEW, NEW_SAVING, SUBMITTED, ACCEPTED, RUNNING, FINISHED, FAILED or KILLED. */
  state: string;
  /** YARN final status: UNDEFINED while it runs, then SUCCEEDED, FAILED or KILLED. */
  finalStatus: string;
  /** Progress reported by the application master, 0–100. */
  progress: number;
  /** Start time, ms since the epoch. */
  startedTime: number;
  /** End time, ms since the epoch, or `null` while it runs. */
  finishedTime: number | null;
  /** Milliseconds it has been running (or ran). */
  elapsedTime: number;
  /** Memory its containers hold now, in MB. */
  allocatedMB: number;
  /** Virtual cores its containers hold now. */
  allocatedVCores: number;
  /** Number of its containers running now. */
  runningContainers: number;
  /** URL of its tracking UI on YARN (reachable inside the cluster only; scripts), or an empty string. */
  trackingUrl: string;
  /** Its Spark UI through the edge (a path on the hub's address) while it runs, else `null`. */
  sparkUi?: string | null;
  /** Why a Spark application has no Spark UI link now (waiting, ended), or `null`. */
  sparkUiNote?: string | null;
  /** YARN application type, e.g. `SPARK`. */
  applicationType: string;
  /** YARN diagnostics text (why it failed or waits). */
  diagnostics: string;
  /** Id of the Jupyter kernel that started it, or `null` if no kernel did. */
  kernel: string | null;
  /**
   * Path of the notebook that kernel serves (as the Lab server reported its session), the folder
   * it was started in when no session was reported, or `null`.
   */
  notebook: string | null;
  /** What the kernel serves: `notebook`, `console` or `file`; `null` when not reported. */
  session?: string | null;
  /** The yardlab environment of that kernel, or `null`. */
  environment: string | null;
  /** Why it waits in ACCEPTED (queue and resources), or `null`. */
  waiting: string | null;
  /**
   * A warm kernel: started ahead by the edge, as the user, for their next notebook (it goes to
   * the next kernel start of its kernelspec, once). Absent from older edges.
   */
  warm?: boolean;
  /** A warm kernel that is ready (its driver runs and it warmed up); `false` while it starts. */
  warmReady?: boolean;
  /**
   * For a kernel on a Kerberized cluster: when its delegation tokens can no longer be renewed
   * (ms since the epoch), or `null`.
   */
  credentialsExpire?: number | null;
}

/**
 * The reply of `GET /yardlab/api/apps`.
 */
export interface IAppsReply {
  /** The user's applications, newest first. */
  apps: IApp[];
  /** Cursor of the next page, or `null` on the last one. */
  next_cursor: string | null;
}

/**
 * The reply of `DELETE /yardlab/api/apps/<id>`: the kill, confirmed by the edge.
 */
export interface IKillReply {
  /** The application id. */
  id: string;
  /** Its state after the kill, normally KILLED. */
  state: string;
  /** Whether YARN reports it KILLED (it may also have ended on its own meanwhile). */
  killed: boolean;
}

/**
 * The reply of `GET /yardlab/api/cluster` (the parts the sidebar shows).
 */
export interface IClusterInfo {
  /** Cluster memory in MB. */
  memory: { usedMB: number; totalMB: number; availableMB: number };
  /** Cluster virtual cores. */
  vcores: { used: number; total: number; available: number };
  /** The site's Kafka brokers and whether they answered the edge's last metadata request (absent: no Kafka). */
  kafka?: IKafkaInfo;
}

/**
 * Kafka as the edge sees it (it asks the brokers for their metadata every few seconds).
 */
export interface IKafkaInfo {
  /** Bootstrap servers kernels use (`host:port,…`). */
  bootstrap_servers: string;
  /** Whether the brokers answered; `null` before the first answer. */
  up: boolean | null;
  /** Why they did not answer, or `null`. */
  reason: string | null;
  /** Brokers in the cluster's metadata. */
  brokers: number;
}

/**
 * Spark resources of an environment's kernels.
 */
export interface IEnvResources {
  /** Driver memory, MB. */
  driver_memory_mb?: number;
  /** Driver cores. */
  driver_cores?: number;
  /** Memory of each executor, MB. */
  executor_memory_mb?: number;
  /** Cores of each executor. */
  executor_cores?: number;
  /** Number of executors (ignored with dynamic allocation). */
  executor_instances?: number;
  /** Dynamic allocation bounds, or `null` for a fixed number of executors. */
  dynamic_allocation?: { min: number; max: number } | null;
  /** YARN queue. */
  queue?: string;
}

/**
 * The body of `POST /yardlab/api/environments`.
 */
export interface IEnvRequest {
  /** Name, unique per owner: `^[a-z][a-z0-9-]{0,39}$`. */
  name: string;
  /** Name shown in the Launcher. */
  display_name?: string;
  /** `pyspark` (a Spark driver on YARN) or `python` (plain Python). */
  kind: 'pyspark' | 'python';
  /** Spark resources; omitted fields take the site defaults. */
  resources: IEnvResources;
  /** Extra packages to install: pip requirements, conda specs, exact Maven coordinates (JVM jars). */
  packages: { pip: string[]; conda: string[]; maven?: string[] };
  /** `personal`, or `shared` with every user (admins only). */
  visibility: 'personal' | 'shared';
}

/**
 * An environment as the edge describes it.
 */
export interface IEnvironment extends IEnvRequest {
  /** The user who made it. */
  owner: string;
  /** Build status. */
  status: 'queued' | 'building' | 'ready' | 'failed';
  /** Build step: queued, resolving, installing, packing, uploading, kernelspec, ready or failed. */
  phase: string;
  /** Build progress, 0–100. */
  progress: number;
  /** Why the build failed, or `null`. */
  error: string | null;
  /** Name of its kernelspec once ready (the kernel in the Launcher), else `null`. */
  kernel_name: string | null;
  /** Creation time, ISO-8601. */
  created: string;
  /** Last change, ISO-8601. */
  updated: string;
  /** How long the build took, or `null`. */
  build_seconds: number | null;
  /** Whether the caller may change or delete it. */
  can_edit: boolean;
  /** The last lines of the build log (only in `GET .../<owner>/<name>`). */
  log_tail?: string[] | string;
}

/**
 * The reply of `GET /yardlab/api/environments`.
 */
export interface IEnvironmentList {
  /** The caller's own environments and the shared ones. */
  environments: IEnvironment[];
}

/**
 * The reply of `GET /yardlab/api/me`.
 */
export interface IMe {
  /** User name. */
  name: string;
  /** Whether the user is a yardlab admin. */
  admin: boolean;
}
