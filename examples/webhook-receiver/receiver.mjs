// A receiver of Herald's webhooks. It verifies every request with the
// Standard Webhooks library (standardwebhooks on npm), drops duplicates by
// webhook-id (Herald delivers at least once, with the same id on every
// retry), and hands each event to onEvent once.
//
//   HERALD_WEBHOOK_SECRET=whsec_... PORT=3000 node receiver.mjs
//
// then run Herald with --webhook-url http://127.0.0.1:3000/herald-webhooks
// and the same --webhook-secret.
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

import { Webhook, WebhookVerificationError } from 'standardwebhooks';

const MAX_BODY = 1 << 20;

/**
 * Returns an http.Server that accepts Herald's webhooks on POST `path`.
 * onEvent(event) is called once per webhook-id, after the signature has
 * been verified; if it throws (or its promise rejects) the answer is 500
 * and Herald retries later with the same id.
 *
 * `seen` remembers handled ids. A Set is enough for an example; a real
 * receiver keeps them in its database (for at least a day: Herald retries
 * for 24 hours), ideally in the same transaction as the event's effect.
 */
export function createReceiver({ secret, onEvent, path = '/herald-webhooks', seen = new Set() }) {
  const wh = new Webhook(secret);
  return createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== path) {
      res.writeHead(404).end();
      return;
    }
    let body;
    try {
      body = await readBody(req);
    } catch {
      res.writeHead(413).end();
      return;
    }
    let event;
    try {
      // verify checks the signature over "id.timestamp.body" and that the
      // timestamp is within 5 minutes, then parses the JSON.
      event = wh.verify(body, req.headers);
    } catch (err) {
      res.writeHead(err instanceof WebhookVerificationError ? 400 : 500).end();
      return;
    }
    const id = req.headers['webhook-id'];
    if (seen.has(id)) {
      res.writeHead(204).end(); // a retry of an event already handled
      return;
    }
    try {
      await onEvent(event);
    } catch {
      res.writeHead(500).end();
      return;
    }
    seen.add(id);
    res.writeHead(204).end();
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** What a backend does with each event: here, log it. */
export function handle(event) {
  switch (event.type) {
    case 'user.online':
    case 'user.offline':
      console.log(`${event.created_at} ${event.tenant}/${event.user} ${event.type === 'user.online' ? 'came online' : 'went offline'}`);
      break;
    case 'notification.unseen':
      // The fallback: the user has not read it in time. Send an email or a push here.
      console.log(`${event.tenant}/${event.user} has not seen "${event.notification.title}": send an email`);
      break;
    default:
      console.log(`${event.type} for ${event.tenant}/${event.user}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const secret = process.env.HERALD_WEBHOOK_SECRET;
  if (!secret) {
    console.error('set HERALD_WEBHOOK_SECRET (whsec_...), the same as Herald\'s');
    process.exit(1);
  }
  const port = Number(process.env.PORT ?? 3000);
  createReceiver({ secret, onEvent: handle }).listen(port, '127.0.0.1', () => {
    console.log(`listening on http://127.0.0.1:${port}/herald-webhooks`);
  });
}
