/**
 * Codes of Herald's error catalogue (docs/protocol.md, Errors) that the
 * backend APIs answer with, plus the SDK's own:
 *
 * - `network`: the request failed before an answer (connection refused,
 *   reset, DNS); the cause is in `cause`;
 * - `timeout`: one attempt got no answer within `timeoutMs`;
 * - `aborted`: the caller's `signal` aborted the call;
 * - `http`: an error answer that is not a Herald error body (a proxy's
 *   page, a plain-text 404);
 * - `protocol`: a 2xx answer the SDK could not read.
 */
export type HeraldErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'too_large'
  | 'idempotency_mismatch'
  | 'rate_limited'
  | 'internal'
  | 'unavailable'
  | 'network'
  | 'timeout'
  | 'aborted'
  | 'http'
  | 'protocol'
  | (string & {});

/**
 * An error of a Herald call. For an error answer, `status` is the HTTP
 * status, `code` the catalogue code, `message` Herald's generic message and
 * `correlationId` the id of the server log line with the details.
 */
export class HeraldError extends Error {
  readonly code: HeraldErrorCode;
  /** HTTP status of an error answer (undefined for network errors). */
  readonly status?: number;
  /** The server's correlation id, when the answer had one. */
  readonly correlationId?: string;
  /** The server's Retry-After advice in milliseconds (429 and 503). */
  readonly retryAfterMs?: number;
  /** How many attempts the call made. */
  readonly attempts: number;

  constructor(
    code: HeraldErrorCode,
    message: string,
    extra: { status?: number; correlationId?: string; retryAfterMs?: number; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'HeraldError';
    this.code = code;
    this.attempts = extra.attempts ?? 1;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.correlationId !== undefined) this.correlationId = extra.correlationId;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }

  /** True for the answers that are retried: 429 and 503. */
  get temporary(): boolean {
    return this.status === 429 || this.status === 503;
  }

  /** A copy that records the number of attempts. */
  withAttempts(attempts: number): HeraldError {
    return new HeraldError(this.code, this.message, {
      status: this.status,
      correlationId: this.correlationId,
      retryAfterMs: this.retryAfterMs,
      attempts,
      cause: this.cause,
    });
  }
}

const MAX_FOREIGN_MESSAGE = 200;

/** Builds the error of a non-2xx answer. */
export function errorFromResponse(status: number, retryAfter: string | null, text: string, now = Date.now()): HeraldError {
  const retryAfterMs = parseRetryAfter(retryAfter, now);
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; correlation_id?: unknown } };
    const e = body?.error;
    if (e && typeof e.code === 'string' && e.code !== '') {
      return new HeraldError(e.code, typeof e.message === 'string' ? e.message : e.code, {
        status,
        correlationId: typeof e.correlation_id === 'string' ? e.correlation_id : undefined,
        retryAfterMs,
      });
    }
  } catch {
    // not JSON: a foreign body
  }
  const msg = text.trim().slice(0, MAX_FOREIGN_MESSAGE) || `HTTP ${status}`;
  return new HeraldError('http', msg, { status, retryAfterMs });
}

/**
 * Parses a Retry-After value: delay-seconds or an HTTP date (RFC 9110,
 * 10.2.3), in milliseconds. Undefined when absent or malformed; a date in
 * the past is 0.
 */
export function parseRetryAfter(v: string | null | undefined, now = Date.now()): number | undefined {
  if (v == null) return undefined;
  const s = v.trim();
  if (s === '') return undefined;
  if (/^\d+$/.test(s)) return Math.min(Number(s), 86_400) * 1000;
  if (/^[+-]?\d/.test(s)) return undefined; // negative, fractional
  const t = Date.parse(s);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}
