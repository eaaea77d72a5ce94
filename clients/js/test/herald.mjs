// Test helpers: build and run a real Herald, mint tokens, publish.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');
export const artifactsDir = resolve(here, '../test-artifacts');

export const SECRET = 'js-test-secret-js-test-secret-0123456789';
export const API_KEY = 'hk_js_test_key_0123456789abcdef';

let binPath;

/** Builds ./cmd/herald once per test process (go's build cache makes later builds quick). */
export function heraldBinary() {
  if (binPath) return binPath;
  if (process.env.HERALD_BIN) {
    const bin = resolve(process.env.HERALD_BIN);
    if (!existsSync(bin)) throw new Error(`HERALD_BIN=${bin} does not exist`);
    return (binPath = bin);
  }
  const dir = join(tmpdir(), `herald-js-test-bin-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'herald');
  execFileSync('go', ['build', '-o', out, './cmd/herald'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  return (binPath = out);
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export function tempDir(prefix = 'herald-js-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A Herald process on 127.0.0.1:port with its own database. */
export class Herald {
  constructor({ port, database, dev = false, args = [] }) {
    this.port = port;
    this.database = database;
    this.dev = dev;
    this.args = args;
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = '';
  }

  static async start(opts = {}) {
    const dir = opts.dir ?? tempDir();
    const h = new Herald({ port: opts.port ?? (await freePort()), database: opts.database ?? join(dir, 'herald.db'), dev: opts.dev, args: opts.args });
    h.dir = dir;
    await h.run();
    return h;
  }

  /** Starts the process and waits until /livez answers. */
  async run() {
    const args = [
      '--addr', `127.0.0.1:${this.port}`,
      '--database', this.database,
      '--jwt-secret', SECRET,
      '--api-keys', API_KEY,
      '--shutdown-grace', '2s',
      '--log-format', 'text',
      ...this.args,
    ];
    if (this.dev) args.unshift('--dev');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME ?? tmpdir(), HERALD_ENV: 'development' };
    const proc = spawn(heraldBinary(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
    const keep = (d) => {
      this.log += d.toString();
      if (this.log.length > 200_000) this.log = this.log.slice(-100_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`herald exited at start (${proc.exitCode}):\n${this.log}`);
      try {
        const r = await fetch(`${this.base}/livez`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`herald did not start:\n${this.log}`);
      await sleep(50);
    }
  }

  /** Stops the process: SIGKILL (crash) or SIGTERM (drain), and waits for it to exit. */
  async stop(signal = 'SIGTERM') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  async cleanup() {
    await this.stop('SIGKILL');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Publishes to users of a tenant with the API key; returns the id. */
  async publish(users, fields = {}, tenant = 'demo') {
    const r = await fetch(`${this.base}/v1/notifications`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ tenant, to: { users }, type: 'test.event', title: 'hello', body: 'body', ...fields }),
    });
    const body = await r.json();
    if (r.status !== 201) throw new Error(`publish: ${r.status} ${JSON.stringify(body)}`);
    return body.id;
  }
}

/** Publishes a live event (ephemeral) to the audience `to`; returns its id. */
Herald.prototype.publishLive = async function publishLive(to, type, data, tenant = 'demo') {
  const r = await fetch(`${this.base}/v1/notifications`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ tenant, to, type, data, ephemeral: true }),
  });
  const body = await r.json();
  if (r.status !== 202) throw new Error(`live publish: ${r.status} ${JSON.stringify(body)}`);
  return body.id;
};

/** An HS256 JWT signed with SECRET (node:crypto, no library). */
export function mintToken({ sub = 'alice', tenant = 'demo', role = 'member', ttlSec = 3600, secret = SECRET, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const payload = b64({ sub, tenant_id: tenant, role, iat: now, exp: now + ttlSec, jti: randomBytes(8).toString('hex'), ...extra });
  const sig = createHmac('sha256', secret).update(`${head}.${payload}`).digest('base64url');
  return `${head}.${payload}.${sig}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves when cond() is truthy (polling), or rejects after timeoutMs. */
export async function waitFor(cond, { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Collects a client's events for assertions. */
export function record(client) {
  const ev = { notification: [], read: [], deleted: [], unread: [], state: [], error: [], ready: [], resync: [], event: [] };
  for (const k of Object.keys(ev)) client.on(k, (p) => ev[k].push(p));
  return ev;
}
