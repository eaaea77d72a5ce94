// Serves the example page and stands in for your backend's token endpoint:
// GET /token?user=… signs an HS256 Herald token (tenant "demo") with
// JWT_SECRET. Never do this without a logged-in session in a real app.
//
//   JWT_SECRET=… PORT=5173 node example/server.mjs   (after npm run build:example)
import { createHmac, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json' };

function sign(claims, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

export function createExampleServer({ secret, tenant = 'demo' }) {
  return createServer(async (req, res) => {
    const url = new URL(req.url, 'http://example');
    if (url.pathname === '/token') {
      const now = Math.floor(Date.now() / 1000);
      const token = sign({ sub: url.searchParams.get('user') ?? 'alice', tenant_id: tenant, role: 'member', iat: now, exp: now + 600, jti: randomUUID() }, secret);
      return res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify({ token }));
    }
    const path = normalize(url.pathname === '/' ? '/index.html' : url.pathname);
    try {
      const body = await readFile(join(root, path));
      res.writeHead(200, { 'Content-Type': types[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { JWT_SECRET, PORT = '5173' } = process.env;
  if (!JWT_SECRET) {
    console.error('set JWT_SECRET (go run ./cmd/herald --dev prints one)');
    process.exit(2);
  }
  createExampleServer({ secret: JWT_SECRET }).listen(Number(PORT), '127.0.0.1', () =>
    console.log(`http://127.0.0.1:${PORT}/?user=alice&herald=http://127.0.0.1:8080`));
}
