import { HeraldError } from './errors.js';
import type { Resolved } from './options.js';
import type { FetchLike } from './types.js';

/**
 * httpCall makes one authenticated REST call to Herald, bounded by the
 * request timeout, and returns the JSON body; an error answer becomes a
 * HeraldError with the server's code, status, correlation id and
 * Retry-After.
 */
export async function httpCall(
  o: Pick<Resolved, 'url' | 'fetch' | 'requestTimeoutMs'>,
  method: string,
  path: string,
  token: string,
  reqBody?: unknown,
): Promise<unknown> {
  const ctl = typeof AbortController === 'function' ? new AbortController() : undefined;
  const timer = setTimeout(() => ctl?.abort(), o.requestTimeoutMs);
  try {
    let res;
    try {
      const init: Parameters<FetchLike>[1] = { method, headers: { Authorization: `Bearer ${token}` } };
      if (reqBody !== undefined) {
        init.headers = { ...init.headers, 'Content-Type': 'application/json' };
        init.body = JSON.stringify(reqBody);
      }
      if (ctl) init.signal = ctl.signal;
      res = await o.fetch!(o.url + path, init);
    } catch (err) {
      const aborted = ctl?.signal.aborted;
      throw new HeraldError(aborted ? 'timeout' : 'network', aborted ? `no reply to ${method} ${path}` : `${method} ${path} failed`, { cause: err });
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    if (res.ok) return body ?? {};
    const e = (body as { error?: { code?: string; message?: string; correlation_id?: string } } | undefined)?.error;
    const extra: { status: number; correlationId?: string; retryAfterMs?: number } = { status: res.status };
    if (e?.correlation_id) extra.correlationId = e.correlation_id;
    const ra = res.headers.get('Retry-After');
    if (ra && /^\d+$/.test(ra)) extra.retryAfterMs = Number(ra) * 1000;
    throw new HeraldError(e?.code ?? 'http', e?.message ?? `${method} ${path}: HTTP ${res.status}`, extra);
  } finally {
    clearTimeout(timer);
  }
}
