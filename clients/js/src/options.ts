import type {
  EventSourceConstructor,
  FetchLike,
  HeraldClientOptions,
  StorageLike,
  WebSocketConstructor,
} from './types.js';

/** The client's options with their defaults applied. */
export interface Resolved {
  url: string;
  wsUrl: string;
  transport: 'websocket' | 'sse';
  token: string | undefined;
  getToken: (() => string | Promise<string>) | undefined;
  WebSocket: WebSocketConstructor | undefined;
  EventSource: EventSourceConstructor | undefined;
  fetch: FetchLike | undefined;
  storage: StorageLike | undefined;
  storageKey: string;
  baseMs: number;
  maxMs: number;
  maxAuthFailures: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  refreshBeforeMs: number;
  pingIntervalMs: number;
}

function resolveBase(url: string): string {
  let base = url;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(base)) {
    const loc = (globalThis as { location?: { href: string } }).location;
    if (!loc) throw new TypeError('HeraldClient: url must be absolute (e.g. "https://herald.example.com")');
    base = new URL(base || '/', loc.href).href;
  }
  return base.replace(/\/+$/, '');
}

/** resolveOptions checks options and fills in the defaults (and the global WebSocket, EventSource and fetch). */
export function resolveOptions(options: HeraldClientOptions): Resolved {
  if (!options || typeof options.url !== 'string') throw new TypeError('HeraldClient: url is required');
  if (!options.token && !options.getToken) throw new TypeError('HeraldClient: pass token or getToken');
  const g = globalThis as unknown as {
    WebSocket?: WebSocketConstructor;
    EventSource?: EventSourceConstructor;
    fetch?: FetchLike;
  };
  const url = resolveBase(options.url);
  const transport = options.transport ?? 'websocket';
  const o: Resolved = {
    url,
    wsUrl: options.wsUrl ?? url.replace(/^http(s?):/i, 'ws$1:') + '/v1/ws',
    transport,
    token: options.token,
    getToken: options.getToken,
    WebSocket: options.WebSocket ?? g.WebSocket,
    EventSource: options.EventSource ?? g.EventSource,
    fetch: options.fetch ?? (g.fetch ? g.fetch.bind(globalThis) : undefined),
    storage: options.storage,
    storageKey: options.storageKey ?? 'herald:position',
    baseMs: options.backoff?.baseMs ?? 500,
    maxMs: options.backoff?.maxMs ?? 30_000,
    maxAuthFailures: Math.max(1, options.maxAuthFailures ?? 3),
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
    refreshBeforeMs: options.refreshBeforeMs ?? 60_000,
    pingIntervalMs: options.pingIntervalMs ?? 25_000,
  };
  if (transport === 'websocket' && !o.WebSocket) {
    throw new TypeError('HeraldClient: no WebSocket implementation; pass the WebSocket option (e.g. the "ws" package on Node 20)');
  }
  if (transport === 'sse' && (!o.EventSource || !o.fetch)) {
    throw new TypeError('HeraldClient: transport "sse" needs EventSource and fetch; pass the EventSource (and fetch) options');
  }
  return o;
}
