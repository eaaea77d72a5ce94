// Real-client test of Herald's SSE transport with the npm "eventsource"
// package (run by TestNodeEventSourceClient in internal/sse).
//
// Every connection attempt (the first and each automatic reconnect) fetches
// a fresh single-use ticket through the custom fetch hook, so that
// reconnects keep working after the server closes a stream; the package
// itself adds Last-Event-ID to reconnects. Each event is printed as one
// JSON line on stdout; the process exits when stdin closes.
import { EventSource } from 'eventsource';
import { createInterface } from 'node:readline';

const base = process.env.HERALD_BASE;
const token = process.env.HERALD_TOKEN;
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

async function ticket() {
  const r = await fetch(base + '/v1/me/stream-tickets', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token },
  });
  if (r.status !== 200) throw new Error('ticket: HTTP ' + r.status);
  return (await r.json()).ticket;
}

const es = new EventSource(base + '/v1/me/stream', {
  fetch: async (input, init) => {
    const url = new URL(input);
    url.searchParams.set('ticket', await ticket());
    const headers = new Headers(init.headers || {});
    out({ kind: 'connect', lastEventId: headers.get('Last-Event-ID') || '' });
    return fetch(url, init);
  },
});
es.addEventListener('open', () => out({ kind: 'open' }));
es.addEventListener('error', (e) => out({ kind: 'error', code: e.code ?? null, message: e.message ?? '' }));
for (const name of ['ready', 'notification', 'unread', 'close', 'resync']) {
  es.addEventListener(name, (e) => out({ kind: name, id: e.lastEventId, data: JSON.parse(e.data) }));
}

const rl = createInterface({ input: process.stdin });
rl.on('close', () => {
  es.close();
  process.exit(0);
});
