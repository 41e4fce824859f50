import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * An error reply of the yardlab API: the edge's `{message, reason, field}` body.
 */
export class APIError extends ServerConnection.ResponseError {
  constructor(response: Response, body: any) {
    super(
      response,
      typeof body?.message === 'string'
        ? body.message
        : typeof body === 'string' && body
          ? body
          : `${response.status} ${response.statusText}`
    );
    this.name = 'APIError';
    this.field = typeof body?.field === 'string' ? body.field : null;
    this.reason = typeof body?.reason === 'string' ? body.reason : null;
  }

  /** The request field the message concerns (e.g. `resources.executor_memory_mb`), or `null`. */
  readonly field: string | null;
  /** Short HTTP reason, e.g. `Conflict`, or `null`. */
  readonly reason: string | null;
}

/**
 * A reply that may be `304 Not Modified`.
 */
export interface IConditionalReply<T> {
  /** The decoded reply, or `null` when the server said it has not changed. */
  data: T | null;
  /** The reply's ETag, to send as `If-None-Match` next time, or `null`. */
  etag: string | null;
}

/**
 * Call the yardlab server extension's REST API.
 *
 * @param endPoint - path below `/yardlab/api/`, e.g. `status`
 * @param init - initial values for the request
 * @param settings - server settings; pass `app.serviceManager.serverSettings`
 * @returns the decoded JSON reply
 * @throws {ServerConnection.NetworkError} when the server cannot be reached
 * @throws {APIError} when the server answers with an error status
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const response = await Private.send(endPoint, init, settings);
  const data = await Private.decode(response);
  if (!response.ok) {
    throw new APIError(response, data);
  }
  return data as T;
}

/**
 * GET with `If-None-Match`: resolves to `data: null` when the reply is unchanged (304).
 *
 * @param endPoint - path below `/yardlab/api/`, with its query
 * @param etag - the ETag of the last reply, or `null`
 * @param settings - server settings
 */
export async function requestConditional<T>(
  endPoint: string,
  etag: string | null,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IConditionalReply<T>> {
  const headers: Record<string, string> = {};
  if (etag) {
    headers['If-None-Match'] = etag;
  }
  // `no-cache`: revalidate ourselves; the browser cache would turn 304s into 200s.
  const response = await Private.send(
    endPoint,
    { method: 'GET', headers, cache: 'no-store' },
    settings
  );
  if (response.status === 304) {
    return { data: null, etag };
  }
  const data = await Private.decode(response);
  if (!response.ok) {
    throw new APIError(response, data);
  }
  return { data: data as T, etag: response.headers.get('ETag') };
}

namespace Private {
  export async function send(
    endPoint: string,
    init: RequestInit,
    settings: ServerConnection.ISettings
  ): Promise<Response> {
    const url = URLExt.join(settings.baseUrl, 'yardlab', 'api', endPoint);
    try {
      return await ServerConnection.makeRequest(url, init, settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
  }

  export async function decode(response: Response): Promise<any> {
    const text = await response.text();
    if (text.length === 0) {
      return text;
    }
    try {
      return JSON.parse(text);
    } catch {
      // Not JSON (e.g. an HTML error page from a proxy): keep the raw text.
      return text;
    }
  }
}
