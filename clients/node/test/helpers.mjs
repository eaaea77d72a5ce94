// Test helpers: a real Herald (the clients/js test harness: build, start,
// mint tokens), this package's keys, a recording fetch and inbox reads.
import { Herald as HeraldProcess, API_KEY, mintToken } from '../../js/test/herald.mjs';

export { HeraldProcess, API_KEY, mintToken };
export { freePort, sleep, waitFor, tempDir } from '../../js/test/herald.mjs';

export const ADMIN_KEY = 'hk_node_admin_key_0123456789abcdef';
export const SCOPED_KEY = 'hk_node_scoped_key_0123456789abcdef';

/** Starts Herald with a publish key, a key scoped to tenant acme and an admin key. */
export function startHerald({ args = [], ...opts } = {}) {
  return HeraldProcess.start({ ...opts, args: ['--api-keys', `${API_KEY},${SCOPED_KEY}@acme,admin:${ADMIN_KEY}`, ...args] });
}

/**
 * A fetch that records every attempt (method, path, Idempotency-Key, body,
 * status or error, time) and otherwise is the real one.
 */
export function recordingFetch(onResult) {
  const attempts = [];
  const f = async (url, init = {}) => {
    const a = { path: new URL(url).pathname, key: init.headers?.['Idempotency-Key'], body: init.body, at: Date.now() };
    attempts.push(a);
    try {
      const res = await fetch(url, init);
      a.status = res.status;
      onResult?.(a);
      return res;
    } catch (e) {
      a.error = e;
      onResult?.(a);
      throw e;
    }
  };
  f.attempts = attempts;
  return f;
}

/** What a user sees in the inbox (GET /v1/me/notifications), newest first. */
export async function inbox(herald, { sub, tenant = 'acme', role = 'member' }) {
  const r = await fetch(`${herald.base}/v1/me/notifications`, { headers: { Authorization: `Bearer ${mintToken({ sub, tenant, role })}` } });
  if (r.status !== 200) throw new Error(`list: ${r.status} ${await r.text()}`);
  return (await r.json()).notifications;
}

/** The status of GET /v1/me/unread-count with token. */
export async function userStatus(herald, token) {
  const r = await fetch(`${herald.base}/v1/me/unread-count`, { headers: { Authorization: `Bearer ${token}` } });
  await r.arrayBuffer();
  return r.status;
}
