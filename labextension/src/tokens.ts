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
