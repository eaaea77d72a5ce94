import { HeraldError, errorFromResponse } from './errors.js';
import type { CallOptions, HeraldOptions, LiveEvent, Notification, RetryOptions } from './types.js';

const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 5000, maxRetryAfterMs: 30_000 };
const DEFAULT_TIMEOUT_MS = 15_000;

/** One API call: the same method, path, headers and body on every attempt. */
interface Call {
  op: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: string;
  idempotencyKey?: string;
  signal?: AbortSignal;
}

/**
 * A client of one Herald deployment with one API key. Safe to share: it
 * holds no per-call state.
 *
 * Every publish carries an Idempotency-Key and sends the same bytes on
 * every attempt, so a retry never stores twice. A call is retried on 429
 * and 503 (honouring Retry-After) and on network failures and attempt
 * timeouts (every call of this SDK is idempotent), never on another status.
 */
export class Herald {
  readonly url: string;
  private readonly apiKey: string;
  private readonly retry: Required<RetryOptions>;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  private readonly userAgent: string;

  constructor(opts: HeraldOptions) {
    if (!opts?.url) throw new TypeError('Herald: url is required');
    if (!opts.apiKey) throw new TypeError('Herald: apiKey is required');
    this.url = opts.url.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.retry = { ...DEFAULT_RETRY };
    for (const [k, v] of Object.entries(opts.retry ?? {})) {
      if (typeof v === 'number' && v > 0) this.retry[k as keyof RetryOptions] = v;
    }
    this.timeoutMs = opts.timeoutMs && opts.timeoutMs > 0 ? opts.timeoutMs : DEFAULT_TIMEOUT_MS;
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('Herald: no fetch (Node 20+ has one; or pass options.fetch)');
    this.fetchFn = f;
    this.userAgent = opts.userAgent ?? 'herald-node';
  }

  /**
   * Stores one notification durably and resolves to its id (a ULID) once
   * it is committed. Herald then delivers it live and through replay.
   */
  async publish(notification: Notification, opts: CallOptions = {}): Promise<{ id: string }> {
    const out = await this.publishCall('publish', '/v1/notifications', notification, opts);
    if (typeof out?.id !== 'string') throw new HeraldError('protocol', 'publish: the answer has no id');
    return { id: out.id };
  }

  /**
   * Publishes a live event (`"ephemeral": true`): Herald hands it to the
   * broker and resolves (202) without storing it. It reaches the clients
   * connected now, at most once. The idempotency key is remembered for
   * Herald's --live-idempotency-window (5 min), so a retry is not delivered
   * twice within it.
   */
  async publishLive(event: LiveEvent, opts: CallOptions = {}): Promise<{ id: string }> {
    const out = await this.publishCall('publish live', '/v1/notifications', { ...event, ephemeral: true }, opts);
    if (typeof out?.id !== 'string') throw new HeraldError('protocol', 'publish live: the answer has no id');
    return { id: out.id };
  }

  /**
   * Stores 1–1000 notifications in one durable write, all or none, and
   * resolves to their ids in order. One invalid item rejects the batch
   * (`invalid_request`, "invalid notification at index N").
   */
  async publishBatch(notifications: Notification[], opts: CallOptions = {}): Promise<{ ids: string[] }> {
    const out = await this.publishCall('publish batch', '/v1/notifications/batch', { notifications }, opts);
    if (!Array.isArray(out?.ids) || out.ids.length !== notifications.length) {
      throw new HeraldError('protocol', 'publish batch: the answer does not hold one id per notification');
    }
    return { ids: out.ids as string[] };
  }

  /**
   * Revokes a user (admin key): every token of the user issued before now
   * is refused and the user's live connections close (4004), until
   * liftUserRevocation. Tokens issued afterwards work.
   */
  async revokeUser(tenant: string, user: string, opts: CallOptions = {}): Promise<{ revokedAt: string }> {
    return this.revoke({ tenant, user }, opts);
  }

  /** Revokes one token by its `jti` until `expiresAt`, the token's `exp` (admin key). */
  async revokeToken(jti: string, expiresAt: Date | string, opts: CallOptions = {}): Promise<{ revokedAt: string }> {
    const exp = expiresAt instanceof Date ? expiresAt.toISOString() : expiresAt;
    return this.revoke({ jti, expires_at: exp }, opts);
  }

  /** Lifts a user revocation (admin key); lifting one that does not exist succeeds too. */
  async liftUserRevocation(tenant: string, user: string, opts: CallOptions = {}): Promise<void> {
    const path = `/v1/admin/revocations/users/${encodeURIComponent(tenant)}/${encodeURIComponent(user)}`;
    await this.call({ op: 'lift revocation', method: 'DELETE', path, signal: opts.signal });
  }

  private async revoke(body: Record<string, string>, opts: CallOptions): Promise<{ revokedAt: string }> {
    const text = await this.call({ op: 'revoke', method: 'POST', path: '/v1/admin/revocations', body: JSON.stringify(body), signal: opts.signal });
    const out = parse(text, 'revoke') as { revoked_at?: unknown };
    if (typeof out?.revoked_at !== 'string') throw new HeraldError('protocol', 'revoke: the answer has no revoked_at');
    return { revokedAt: out.revoked_at };
  }

  private async publishCall(op: string, path: string, payload: unknown, opts: CallOptions): Promise<{ id?: unknown; ids?: unknown }> {
    // Serialised once: Herald compares the body under the key, byte for byte.
    const body = JSON.stringify(payload);
    const idempotencyKey = opts.idempotencyKey ?? `hn-${crypto.randomUUID()}`;
    const out = parse(await this.call({ op, method: 'POST', path, body, idempotencyKey, signal: opts.signal }), op);
    return (out ?? {}) as { id?: unknown; ids?: unknown };
  }

  /** Runs c with retries and resolves to the 2xx answer's text. */
  private async call(c: Call): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      let err: HeraldError;
      try {
        return await this.attempt(c);
      } catch (e) {
        err = e as HeraldError;
      }
      const attempts = attempt + 1;
      if (err.code === 'aborted') throw err.withAttempts(attempts);
      let wait: number;
      if (err.status !== undefined && !err.temporary) throw err.withAttempts(attempts);
      if (err.retryAfterMs !== undefined && err.temporary) {
        if (err.retryAfterMs > this.retry.maxRetryAfterMs) throw err.withAttempts(attempts);
        wait = err.retryAfterMs + Math.random() * (err.retryAfterMs / 10); // spread clients told the same second
      } else {
        wait = Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** Math.min(attempt, 30));
      }
      if (attempts >= this.retry.maxAttempts) throw err.withAttempts(attempts);
      if (!(await sleep(wait, c.signal))) throw err.withAttempts(attempts);
    }
  }

  /** Sends c once. Rejects with a HeraldError on anything but a 2xx. */
  private async attempt(c: Call): Promise<string> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.apiKey}`,
      Accept: 'application/json',
      'User-Agent': this.userAgent,
    };
    if (c.body !== undefined) headers['Content-Type'] = 'application/json';
    if (c.idempotencyKey) headers['Idempotency-Key'] = c.idempotencyKey;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = c.signal ? AbortSignal.any([c.signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(this.url + c.path, { method: c.method, headers, body: c.body, signal });
      text = await res.text();
    } catch (e) {
      if (c.signal?.aborted) throw new HeraldError('aborted', `${c.op}: aborted`, { cause: c.signal.reason });
      if (timeout.aborted) throw new HeraldError('timeout', `${c.op}: no answer within ${this.timeoutMs} ms`, { cause: e });
      throw new HeraldError('network', `${c.op}: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    if (res.status < 200 || res.status > 299) throw errorFromResponse(res.status, res.headers.get('Retry-After'), text);
    return text;
  }
}

function parse(text: string, op: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HeraldError('protocol', `${op}: unreadable answer`, { cause: e });
  }
}

/** Waits ms; resolves false early when signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
