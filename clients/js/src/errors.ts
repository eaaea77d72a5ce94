/**
 * An error from the client or the server. `code` is one of the server's
 * error codes (`not_found`, `rate_limited`, `invalid_message`, `internal`,
 * `unauthorized`, …) or one of the client's:
 *
 * - `timeout`: a request got no reply in time;
 * - `closed`: close() was called;
 * - `failed`: the client gave up (see the `state` event);
 * - `not_connected`: a request before connect();
 * - `auth_rejected`: the server rejected the token (close code in closeCode);
 * - `token_provider`: getToken() threw or returned no token;
 * - `policy_violation`: the server closed with 1008;
 * - `protocol`: an unparsable server message;
 * - `http`: an unexpected HTTP status (in `status`).
 */
export class HeraldError extends Error {
  readonly code: string;
  /** Server correlation id (for the server log), when the server sent one. */
  readonly correlationId?: string;
  /** WebSocket (or SSE close event) close code, when a close caused it. */
  readonly closeCode?: number;
  /** HTTP status, for REST and ticket requests. */
  readonly status?: number;
  /** The server's Retry-After advice, in milliseconds (HTTP 429 and 503). */
  readonly retryAfterMs?: number;

  constructor(
    code: string,
    message: string,
    extra: { correlationId?: string; closeCode?: number; status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'HeraldError';
    this.code = code;
    if (extra.correlationId !== undefined) this.correlationId = extra.correlationId;
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}
