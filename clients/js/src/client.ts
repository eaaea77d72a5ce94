import { fullJitter, reconnectAfterMs } from './backoff.js';
import { TypedEmitter } from './emitter.js';
import { HeraldError } from './errors.js';
import { httpCall } from './http.js';
import { refreshDelay, tokenExpiry } from './jwt.js';
import { archiveRequest, inboxEvent, listArgs, listPath, parseCounts, parsePage, parsePreferences, unreadEvent } from './inbox.js';
import { LruSet } from './lru.js';
import { resolveOptions, type Resolved } from './options.js';
import { loadPosition, storePosition } from './position.js';
import {
  AUTH_CODES,
  FATAL_CODES,
  type Frame,
  type Kind,
  MAX_IDS,
  MAX_INFLIGHT,
  MAX_TOPICS,
  type Pending,
  serverError,
  textOf,
  WS_CONNECTING,
  WS_OPEN,
} from './protocol.js';
import { parseEventData, SSE_FRAMES } from './sse.js';
import type {
  ConnectionState,
  Counts,
  EventSourceLike,
  HeraldClientOptions,
  HeraldEvents,
  ListQuery,
  LiveEvent,
  Notification,
  NotificationPage,
  Preferences,
  StateChange,
  WebSocketLike,
} from './types.js';

/**
 * A Herald client: one live connection (WebSocket, or SSE plus REST) that
 * authenticates, resumes from the last position after every reconnect, drops
 * duplicates, refreshes its token before it expires and turns server
 * messages into typed events.
 *
 * ```ts
 * const herald = new HeraldClient({ url: 'https://herald.example.com', getToken: fetchHeraldToken });
 * herald.on('notification', (n) => show(n));
 * herald.on('unread', ({ count }) => setBadge(count));
 * await herald.connect();
 * await herald.markRead(id);
 * ```
 */
export class HeraldClient extends TypedEmitter<HeraldEvents> {
  readonly #o: Resolved;
  #state: ConnectionState = 'idle';
  /** Incremented whenever a connection is opened or abandoned: callbacks of older ones are ignored. */
  #gen = 0;
  #ws: WebSocketLike | undefined;
  #es: EventSourceLike | undefined;
  /** The token of the current or last connection attempt. */
  #token: string | undefined;
  /** The last token the server rejected. */
  #rejected: string | undefined;
  #attempt = 0;
  #authFailures = 0;
  #sentSince = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  /** Requests waiting to be sent (not live yet, or MAX_INFLIGHT reached). */
  #queue: Pending[] = [];
  /** Requests sent on the current socket, by ref (also timed-out ones until their reply: they hold a server slot). */
  #inflight = new Map<string, Pending>();
  #busy = 0;
  #seq = 0;
  #seen: LruSet;
  #position: string | undefined;
  #user: string | undefined;
  #tenant: string | undefined;
  #unread: number | undefined;
  #unseen: number | undefined;
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Topics this client holds: subscribed again after every reconnect. */
  #topics = new Set<string>();

  constructor(options: HeraldClientOptions) {
    super();
    this.#o = resolveOptions(options);
    this.#seen = new LruSet(options.dedupeSize ?? 1000);
    if (options.since !== undefined) this.#position = options.since;
    for (const t of options.topics ?? []) this.#topics.add(t);
  }

  /** The topics this client holds (subscribed again after every reconnect). */
  get topics(): string[] {
    return [...this.#topics];
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The last position seen (opaque), or undefined before the first `ready`. */
  get position(): string | undefined {
    return this.#position;
  }

  /** The last unread count received, or undefined before the first `ready`. */
  get unreadCount(): number | undefined {
    return this.#unread;
  }

  /** The last unseen count (the badge) received, or undefined before the first `ready`. */
  get unseenCount(): number | undefined {
    return this.#unseen;
  }

  /** The authenticated user and tenant (from the last `ready`). */
  get user(): { user: string; tenant: string } | undefined {
    return this.#user === undefined ? undefined : { user: this.#user, tenant: this.#tenant ?? '' };
  }

  /**
   * Starts connecting (from idle, closed or failed; otherwise it only waits).
   * Resolves when the connection is live; rejects (code "failed" or
   * "closed") if the client fails or is closed first. While the server is
   * unreachable it keeps retrying, so the promise stays pending: watch the
   * `state` event for progress.
   */
  connect(): Promise<void> {
    if (this.#state === 'live') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    // Awaiting callers still see the rejection; a caller that ignores the
    // promise gets no unhandled rejection (failures also come as `error` and
    // `state` events).
    p.catch(() => {});
    if (this.#state === 'idle' || this.#state === 'closed' || this.#state === 'failed') {
      this.#attempt = 0;
      this.#authFailures = 0;
      this.#rejected = undefined;
      void this.#open();
    }
    return p;
  }

  /** Closes the connection and stops reconnecting. Pending requests reject with code "closed". */
  close(): void {
    if (this.#state === 'closed') return;
    this.#detach();
    this.#clearReconnect();
    this.#setState('closed', {});
    this.#rejectAll(new HeraldError('closed', 'the client was closed'));
  }

  /** Marks notifications read. Every connection of the user then gets a `read` event. */
  async markRead(ids: string | string[]): Promise<void> {
    const list = typeof ids === 'string' ? [ids] : [...ids];
    if (list.length === 0) return;
    if (this.#o.transport === 'sse') {
      await Promise.all(list.map((id) => this.#rest('POST', `/v1/me/notifications/${encodeURIComponent(id)}/read`)));
      return;
    }
    const chunks: Promise<unknown>[] = [];
    for (let i = 0; i < list.length; i += MAX_IDS) {
      chunks.push(this.#request('mark-read', { type: 'notification:mark-read', ids: list.slice(i, i + MAX_IDS) }));
    }
    await Promise.all(chunks);
  }

  /** Marks every notification of the user read. */
  async markAllRead(): Promise<void> {
    if (this.#o.transport === 'sse') {
      await this.#rest('POST', '/v1/me/notifications/read-all');
      return;
    }
    await this.#request('mark-all-read', { type: 'notification:mark-all-read' });
  }

  /**
   * Deletes a notification for this user. Rejects with code "not_found" when
   * it does not exist (a delete retried after a lost connection resolves
   * instead, since its first attempt may have succeeded).
   */
  async delete(id: string): Promise<void> {
    if (this.#o.transport === 'sse') {
      await this.#rest('DELETE', `/v1/me/notifications/${encodeURIComponent(id)}`);
      return;
    }
    await this.#request('delete', { type: 'notification:delete', id });
  }

  /** Lists notifications, newest first. */
  async list(query: ListQuery = {}): Promise<NotificationPage> {
    const q = listArgs(query);
    if (this.#o.transport === 'sse') return parsePage(await this.#rest('GET', listPath(q)));
    return parsePage(await this.#request('list', { type: 'notification:list', ...q }));
  }

  /** The unread, unseen (badge) and by-category counts, read from the server. */
  async counts(): Promise<Counts> {
    return parseCounts(await this.#call({ type: 'notification:unread-count' }, 'GET', '/v1/me/unread-count'));
  }

  /**
   * Marks the inbox seen (clears the badge; read state is not touched), up
   * to `position` or everything. Every connection of the user gets `unread`.
   */
  async markSeen(position?: string): Promise<void> {
    const args = position === undefined ? {} : { position };
    await this.#call({ type: 'notification:seen', ...args }, 'POST', '/v1/me/notifications/seen', position === undefined ? undefined : args);
  }

  /** Archives notifications, or all of them. Every connection of the user gets `archived`. */
  async archive(ids: string | string[] | 'all'): Promise<void> {
    await this.#archive('archive', ids);
  }

  /** Puts archived notifications (or all of them) back in the inbox. */
  async unarchive(ids: string | string[] | 'all'): Promise<void> {
    await this.#archive('unarchive', ids);
  }

  /** The user's preferences. */
  async preferences(): Promise<Preferences> {
    return parsePreferences(await this.#call({ type: 'preferences:get' }, 'GET', '/v1/me/preferences'));
  }

  /** Replaces the user's preferences (muted categories and types); resolves with what was stored. */
  async setPreferences(p: Partial<Preferences>): Promise<Preferences> {
    const body = { muted_categories: p.muted_categories ?? [], muted_types: p.muted_types ?? [] };
    return parsePreferences(await this.#call({ type: 'preferences:set', ...body }, 'PUT', '/v1/me/preferences', body));
  }

  async #archive(op: 'archive' | 'unarchive', ids: string | string[] | 'all'): Promise<void> {
    const list = ids === 'all' ? 'all' : typeof ids === 'string' ? [ids] : [...ids];
    if (list !== 'all' && list.length === 0) return;
    const req = archiveRequest(op, list);
    if (this.#o.transport === 'sse') {
      await Promise.all(req.rest.map(([method, path]) => this.#rest(method, path)));
      return;
    }
    await this.#request('inbox', req.ws);
  }

  /** One inbox request: over the socket, or over REST with the SSE transport. */
  async #call(ws: Record<string, unknown>, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const reply = this.#o.transport === 'sse' ? await this.#rest(method, path, body) : await this.#request('inbox', ws);
    return (reply && typeof reply === 'object' ? reply : {}) as Record<string, unknown>;
  }

  /**
   * Subscribes to topics (names of the token's tenant) for live events,
   * now and after every reconnect. Resolves once the server accepted them;
   * rejects (code "forbidden", "rate_limited", "invalid_message") when it
   * refused them, and then none of them is held. Before connect() the
   * topics are only remembered. WebSocket transport only: with "sse" pass
   * the `topics` option.
   */
  async subscribe(topics: string | string[]): Promise<void> {
    const list = typeof topics === 'string' ? [topics] : [...topics];
    if (this.#o.transport === 'sse') throw new HeraldError('unsupported', 'topics over SSE are fixed when the stream opens: pass the topics option');
    if (list.length === 0) return;
    if (this.#state === 'idle' || this.#state === 'closed' || this.#state === 'failed') {
      for (const t of list) this.#topics.add(t);
      return;
    }
    const chunks: Promise<unknown>[] = [];
    for (let i = 0; i < list.length; i += MAX_TOPICS) {
      chunks.push(this.#request('subscribe', { type: 'subscribe', topics: list.slice(i, i + MAX_TOPICS) }));
    }
    await Promise.all(chunks);
    for (const t of list) this.#topics.add(t);
  }

  /** Leaves topics: no more of their events, now or after a reconnect. */
  async unsubscribe(topics: string | string[]): Promise<void> {
    const list = typeof topics === 'string' ? [topics] : [...topics];
    if (this.#o.transport === 'sse') throw new HeraldError('unsupported', 'topics over SSE are fixed when the stream opens');
    for (const t of list) this.#topics.delete(t);
    if (list.length === 0 || this.#state !== 'live') return; // a reconnect subscribes to the remaining ones only
    for (let i = 0; i < list.length; i += MAX_TOPICS) {
      await this.#request('unsubscribe', { type: 'unsubscribe', topics: list.slice(i, i + MAX_TOPICS) });
    }
  }

  /** Subscribes the new connection to the topics held, ahead of queued requests. */
  #resubscribe(): void {
    const list = [...this.#topics];
    const again: Pending[] = [];
    for (let i = 0; i < list.length; i += MAX_TOPICS) {
      const part = list.slice(i, i + MAX_TOPICS);
      const p = this.#pending('subscribe', { type: 'subscribe', topics: part }, () => {}, (err) => {
        // Refused now (the new token lacks the claim, the hook said no): drop them.
        for (const t of part) this.#topics.delete(t);
        if ((err as HeraldError).code !== 'closed') this.emit('error', err as HeraldError);
      });
      again.push(p);
    }
    this.#queue.unshift(...again);
  }

  // ---- connection lifecycle ----

  #setState(state: ConnectionState, info: Omit<StateChange, 'state' | 'previous'>): void {
    const previous = this.#state;
    if (previous === state && state !== 'reconnecting') return;
    this.#state = state;
    this.emit('state', { state, previous, ...info });
  }

  async #open(): Promise<void> {
    this.#clearReconnect();
    const gen = ++this.#gen;
    this.#setState('connecting', {});
    let token: string;
    try {
      token = await this.#obtainToken();
    } catch (err) {
      if (gen !== this.#gen) return;
      this.emit('error', err as HeraldError);
      this.#scheduleReconnect(this.#backoff(), undefined, 'token_provider');
      return;
    }
    if (gen !== this.#gen) return;
    if (token === this.#rejected) {
      // The provider has nothing newer than the token the server refused.
      const err = new HeraldError('auth_rejected', 'the token provider returned the token the server rejected');
      if (!this.#o.getToken || ++this.#authFailures >= this.#o.maxAuthFailures) {
        this.#fail(err);
        return;
      }
      this.emit('error', err);
      this.#scheduleReconnect(this.#backoff(), undefined, 'auth_rejected');
      return;
    }
    this.#token = token;
    this.#loadPosition(token);
    this.#connectTimer = setTimeout(() => {
      if (gen === this.#gen) this.#lost(1006, 'connect_timeout');
    }, this.#o.connectTimeoutMs);
    if (this.#o.transport === 'sse') {
      await this.#openSSE(gen, token);
    } else {
      this.#openWS(gen, token);
    }
  }

  #openWS(gen: number, token: string): void {
    let ws: WebSocketLike;
    try {
      ws = new this.#o.WebSocket!(this.#o.wsUrl);
    } catch (err) {
      this.emit('error', new HeraldError('transport', 'unable to open a WebSocket', { cause: err }));
      this.#lost(1006, 'transport_error');
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      if (gen !== this.#gen) return;
      this.#setState('authenticating', {});
      const auth: Record<string, unknown> = { type: 'auth', token };
      this.#sentSince = this.#position !== undefined;
      if (this.#position !== undefined) auth.since = this.#position;
      this.#sendRaw(auth);
    };
    ws.onmessage = (ev) => {
      if (gen !== this.#gen) return;
      let m: unknown;
      try {
        m = JSON.parse(textOf(ev.data));
      } catch {
        this.emit('error', new HeraldError('protocol', 'unparsable server message'));
        return;
      }
      if (m && typeof m === 'object') this.#onFrame(m as Frame);
    };
    ws.onclose = (ev) => {
      if (gen !== this.#gen) return;
      this.#lost(ev.code, ev.reason ?? '');
    };
    ws.onerror = () => {
      // A close event always follows.
    };
  }

  async #openSSE(gen: number, token: string): Promise<void> {
    let ticket: string;
    try {
      const r = (await httpCall(this.#o, 'POST', '/v1/me/stream-tickets', token)) as { ticket?: unknown };
      if (typeof r.ticket !== 'string') throw new HeraldError('protocol', 'no ticket in the stream-tickets reply');
      ticket = r.ticket;
    } catch (err) {
      if (gen !== this.#gen) return;
      const e = err as HeraldError;
      if (e.status === 401) {
        this.#lost(4001, 'unauthorized');
      } else if (e.status === 403) {
        this.#fail(e); // this origin is not allowed: retrying cannot help
      } else {
        this.emit('error', e);
        this.#lost(1006, 'ticket_unavailable', e.retryAfterMs);
      }
      return;
    }
    if (gen !== this.#gen) return;
    const u = new URL(this.#o.url + '/v1/me/stream');
    u.searchParams.set('ticket', ticket);
    this.#sentSince = this.#position !== undefined;
    if (this.#position !== undefined) u.searchParams.set('since', this.#position === '' ? '0.0' : this.#position);
    if (this.#topics.size > 0) u.searchParams.set('topics', [...this.#topics].join(','));
    let es: EventSourceLike;
    try {
      es = new this.#o.EventSource!(u.toString());
    } catch (err) {
      this.emit('error', new HeraldError('transport', 'unable to open an EventSource', { cause: err }));
      this.#lost(1006, 'transport_error');
      return;
    }
    this.#es = es;
    this.#setState('authenticating', {});
    const on = (name: string, fn: (d: Record<string, unknown>) => void) =>
      es.addEventListener(name, (ev) => {
        if (gen !== this.#gen) return;
        const d = parseEventData(ev.data);
        if (d === undefined) this.emit('error', new HeraldError('protocol', 'unparsable server event'));
        else if (d) fn(d);
      });
    for (const [name, frame] of SSE_FRAMES) on(name, (d) => this.#onFrame(frame(d)));
    on('close', (d) => this.#lost(typeof d.code === 'number' ? d.code : 1006, typeof d.reason === 'string' ? d.reason : ''));
    es.onerror = () => {
      // EventSource would reconnect by itself with the same (used) ticket:
      // close it and reconnect with a new ticket instead.
      if (gen === this.#gen) this.#lost(1006, 'transport_error');
    };
  }

  /** Abandons the current connection: callbacks are ignored from now on and unanswered requests are queued again. */
  #detach(): void {
    this.#gen++;
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = () => {}; // the "ws" package throws on an error event without a listener
      if (ws.readyState === WS_CONNECTING || ws.readyState === WS_OPEN) {
        try {
          ws.close(1000);
        } catch {
          // already closing
        }
      }
    }
    const es = this.#es;
    this.#es = undefined;
    if (es) {
      es.onerror = null;
      es.close();
    }
    for (const t of [this.#connectTimer, this.#refreshTimer, this.#pingTimer]) if (t) clearTimeout(t);
    this.#connectTimer = this.#refreshTimer = this.#pingTimer = undefined;
    const requeue: Pending[] = [];
    for (const p of this.#inflight.values()) {
      if (p.settled) continue;
      if (p.kind === 'ping' || p.kind === 'refresh') {
        this.#settle(p, new HeraldError('disconnected', 'the connection was lost'));
        continue;
      }
      p.sent = false;
      p.resent = true;
      requeue.push(p);
    }
    this.#inflight.clear();
    this.#busy = 0;
    this.#queue.unshift(...requeue);
  }

  /** The current connection ended with code and reason: decide what comes next. */
  #lost(code: number, reason: string, hintMs?: number): void {
    this.#detach();
    if (this.#state === 'closed' || this.#state === 'failed') return;
    if (FATAL_CODES.has(code)) {
      this.#fail(new HeraldError('policy_violation', `the server closed the connection (${code} ${reason})`, { closeCode: code }), code, reason);
      return;
    }
    if (AUTH_CODES.has(code)) {
      this.#rejected = this.#token;
      const err = new HeraldError('auth_rejected', `the server rejected the token (${code} ${reason})`, { closeCode: code });
      if (!this.#o.getToken || ++this.#authFailures >= this.#o.maxAuthFailures) {
        this.#fail(err, code, reason);
        return;
      }
      this.emit('error', err);
      this.#scheduleReconnect(this.#backoff(), code, reason);
      return;
    }
    const hint = code === 4009 ? reconnectAfterMs(reason) : hintMs;
    this.#scheduleReconnect(hint ?? this.#backoff(), code, reason);
  }

  #backoff(): number {
    return fullJitter(this.#attempt, this.#o.baseMs, this.#o.maxMs);
  }

  #scheduleReconnect(delayMs: number, closeCode: number | undefined, reason: string): void {
    this.#clearReconnect();
    this.#attempt++;
    const info: Omit<StateChange, 'state' | 'previous'> = { delayMs, reason };
    if (closeCode !== undefined) info.closeCode = closeCode;
    this.#setState('reconnecting', info);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#open();
    }, delayMs);
  }

  #clearReconnect(): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
  }

  #fail(err: HeraldError, closeCode?: number, reason?: string): void {
    this.#detach();
    this.#clearReconnect();
    const info: Omit<StateChange, 'state' | 'previous'> = { error: err };
    if (closeCode !== undefined) info.closeCode = closeCode;
    if (reason !== undefined) info.reason = reason;
    this.emit('error', err);
    this.#setState('failed', info);
    this.#rejectAll(new HeraldError('failed', `the client gave up: ${err.message}`, { cause: err }));
  }

  #rejectAll(err: HeraldError): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const p of queue) this.#settle(p, err);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  async #obtainToken(): Promise<string> {
    if (!this.#o.getToken) return this.#o.token!;
    let t: unknown;
    try {
      t = await this.#o.getToken();
    } catch (err) {
      throw new HeraldError('token_provider', 'getToken() failed', { cause: err });
    }
    if (typeof t !== 'string' || t === '') throw new HeraldError('token_provider', 'getToken() returned no token');
    return t;
  }

  // ---- server messages ----

  #onFrame(m: Frame): void {
    switch (m.type) {
      case 'ready':
        this.#onReady(m);
        return;
      case 'notification': {
        const n = m.notification as Notification | undefined;
        if (!n || typeof n.id !== 'string') return;
        if (typeof n.position === 'string') this.#setPosition(n.position);
        const dup = this.#seen.has(n.id);
        this.#seen.add(n.id);
        if (!dup) this.emit('notification', n);
        return;
      }
      case 'event': {
        const e = m.event as LiveEvent | undefined;
        if (e && typeof e.id === 'string' && typeof e.type === 'string') this.emit('event', e);
        return;
      }
      case 'notification:read':
        this.emit('read', { ids: Array.isArray(m.ids) ? (m.ids as string[]) : [], all: m.all === true });
        return;
      case 'notification:deleted':
        if (typeof m.id === 'string') this.emit('deleted', { id: m.id, expired: m.expired === true });
        return;
      case 'unread': {
        const ev = unreadEvent(m);
        if (ev) {
          this.#unread = ev.count;
          this.#unseen = ev.unseen;
          this.emit('unread', ev);
        }
        return;
      }
      case 'resync':
        if (typeof m.position === 'string') {
          this.#setPosition(m.position);
          this.emit('resync', { position: m.position });
        }
        return;
      case 'ack':
      case 'pong':
      case 'notification:list':
      case 'notification:unread-count':
      case 'preferences:get':
      case 'preferences:set':
      case 'notification:error':
        this.#onReply(m);
        return;
    }
    const ev = inboxEvent(m);
    if (ev?.name === 'preferences') this.emit('preferences', ev.prefs);
    else if (ev) this.emit(ev.name, { ids: ev.ids, all: ev.all });
  }

  #onReady(m: Frame): void {
    const gen = this.#gen;
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#attempt = 0;
    this.#authFailures = 0;
    this.#rejected = undefined;
    this.#user = String(m.user ?? '');
    this.#tenant = String(m.tenant ?? '');
    if (typeof m.position === 'string') this.#setPosition(m.position);
    const counts = parseCounts({ count: m.unread, unseen: m.unseen, by_category: m.by_category });
    this.#unread = counts.count;
    this.#unseen = counts.unseen;
    this.#setState('live', {});
    this.emit('ready', { user: this.#user, tenant: this.#tenant, unread: counts.count, unseen: counts.unseen,
      byCategory: counts.byCategory, position: this.#position ?? '', resumed: this.#sentSince });
    if (gen !== this.#gen) return; // a listener closed the client
    this.emit('unread', { count: counts.count, unseen: counts.unseen, byCategory: counts.byCategory });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve();
    if (gen !== this.#gen) return;
    this.#scheduleRefresh(gen);
    this.#schedulePing(gen);
    if (this.#o.transport === 'websocket' && this.#topics.size > 0) this.#resubscribe();
    this.#pump();
  }

  #onReply(m: Frame): void {
    const ref = m.ref === undefined || m.ref === null ? undefined : String(m.ref);
    const p = ref === undefined ? undefined : this.#inflight.get(ref);
    if (!p) {
      if (m.type === 'notification:error') this.emit('error', serverError(m));
      return;
    }
    this.#inflight.delete(p.ref);
    if (p.kind !== 'ping' && p.kind !== 'refresh') this.#busy--;
    if (p.kind === 'ping') {
      this.#settle(p, undefined, undefined); // any reply proves the connection alive
    } else if (m.type === 'notification:error') {
      if (p.kind === 'delete' && p.resent && m.code === 'not_found') this.#settle(p, undefined, undefined);
      else this.#settle(p, serverError(m));
    } else {
      this.#settle(p, undefined, m);
    }
    this.#pump();
  }

  // ---- requests ----

  #request(kind: Kind, msg: Record<string, unknown>): Promise<unknown> {
    if (this.#state === 'idle') return Promise.reject(new HeraldError('not_connected', 'call connect() first'));
    if (this.#state === 'closed') return Promise.reject(new HeraldError('closed', 'the client was closed'));
    if (this.#state === 'failed') return Promise.reject(new HeraldError('failed', 'the client gave up; call connect() again'));
    return new Promise((resolve, reject) => {
      const p = this.#pending(kind, msg, resolve, reject);
      this.#queue.push(p);
      this.#pump();
    });
  }

  /** A ping or in-band token refresh: sent at once on the live socket, outside the request queue. */
  #control(kind: 'ping' | 'refresh', msg: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const p = this.#pending(kind, msg, resolve, reject);
      if (this.#state !== 'live' || !this.#ws) {
        this.#settle(p, new HeraldError('disconnected', 'not connected'));
        return;
      }
      this.#send(p);
    });
  }

  #pending(kind: Kind, msg: Record<string, unknown>, resolve: (v: unknown) => void, reject: (e: Error) => void): Pending {
    const p: Pending = { ref: `h${++this.#seq}`, kind, msg, resolve, reject, timer: undefined, sent: false, resent: false, settled: false };
    p.timer = setTimeout(() => {
      if (p.settled) return;
      if (!p.sent) this.#queue = this.#queue.filter((q) => q !== p);
      this.#settle(p, new HeraldError('timeout', `no reply to ${String(msg.type)} within ${this.#o.requestTimeoutMs} ms`));
    }, this.#o.requestTimeoutMs);
    return p;
  }

  #settle(p: Pending, err: Error | undefined, value?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    if (p.timer) clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  #pump(): void {
    while (this.#state === 'live' && this.#ws && this.#queue.length > 0 && this.#busy < MAX_INFLIGHT) {
      const p = this.#queue.shift()!;
      if (p.settled) continue;
      this.#busy++;
      this.#send(p);
    }
  }

  #send(p: Pending): void {
    p.sent = true;
    this.#inflight.set(p.ref, p);
    this.#sendRaw({ ...p.msg, ref: p.ref });
  }

  #sendRaw(m: Record<string, unknown>): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WS_OPEN) return; // the close event follows; requests are requeued
    try {
      ws.send(JSON.stringify(m));
    } catch {
      // the close event follows
    }
  }

  /** A REST call of the SSE transport, retried once with a new token after a 401. */
  async #rest(method: string, path: string, body?: unknown): Promise<unknown> {
    if (this.#state === 'idle') throw new HeraldError('not_connected', 'call connect() first');
    if (this.#state === 'closed') throw new HeraldError('closed', 'the client was closed');
    if (this.#state === 'failed') throw new HeraldError('failed', 'the client gave up; call connect() again');
    const token = this.#token ?? (await this.#obtainToken());
    try {
      return await httpCall(this.#o, method, path, token, body);
    } catch (err) {
      if ((err as HeraldError).status !== 401 || !this.#o.getToken) throw err;
      const fresh = await this.#obtainToken();
      if (fresh === token) throw err;
      this.#token = fresh;
      return httpCall(this.#o, method, path, fresh, body);
    }
  }

  // ---- timers: token refresh and ping ----

  #scheduleRefresh(gen: number): void {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (!this.#o.getToken || !this.#token) return;
    const delay = refreshDelay(this.#token, this.#o.refreshBeforeMs);
    if (delay !== undefined) this.#refreshTimer = setTimeout(() => void this.#refresh(gen), delay);
  }

  async #refresh(gen: number): Promise<void> {
    this.#refreshTimer = undefined;
    if (gen !== this.#gen || this.#state !== 'live') return;
    const old = this.#token!;
    let fresh: string;
    try {
      fresh = await this.#obtainToken();
    } catch (err) {
      if (gen !== this.#gen) return;
      this.emit('error', err as HeraldError);
      this.#retryRefresh(gen, old);
      return;
    }
    if (gen !== this.#gen) return;
    if (fresh === old || (tokenExpiry(fresh) ?? Infinity) <= (tokenExpiry(old) ?? 0)) {
      this.#retryRefresh(gen, old); // the provider has nothing newer yet
      return;
    }
    if (this.#o.transport === 'sse') {
      // An event stream cannot be re-authenticated: reopen it with the new token; it resumes.
      this.#detach();
      this.#open().catch(() => {});
      return;
    }
    try {
      await this.#control('refresh', { type: 'auth', token: fresh });
    } catch (err) {
      if (gen !== this.#gen) return;
      this.emit('error', new HeraldError('refresh_failed', 'the in-band token refresh failed', { cause: err }));
      this.#lost(1006, 'refresh_failed');
      return;
    }
    if (gen !== this.#gen) return;
    this.#token = fresh;
    this.#scheduleRefresh(gen);
  }

  #retryRefresh(gen: number, token: string): void {
    const left = (tokenExpiry(token) ?? 0) - Date.now();
    if (left <= 0 || gen !== this.#gen) return; // the server closes with 4003; the reconnect gets a token
    this.#refreshTimer = setTimeout(() => void this.#refresh(gen), Math.max(1000, Math.min(10_000, left / 2)));
  }

  #schedulePing(gen: number): void {
    if (this.#o.pingIntervalMs <= 0 || this.#o.transport !== 'websocket') return;
    this.#pingTimer = setTimeout(async () => {
      this.#pingTimer = undefined;
      if (gen !== this.#gen) return;
      try {
        await this.#control('ping', { type: 'ping' });
      } catch {
        if (gen === this.#gen) this.#lost(4002, 'ping_timeout');
        return;
      }
      if (gen === this.#gen) this.#schedulePing(gen);
    }, this.#o.pingIntervalMs);
  }

  // ---- position ----

  #setPosition(p: string): void {
    this.#position = p;
    if (this.#o.storage) storePosition(this.#o.storage, this.#o.storageKey, p, this.#user, this.#tenant);
  }

  /** Loads the stored position, unless it belongs to another user than token's. */
  #loadPosition(token: string): void {
    if (this.#position !== undefined || !this.#o.storage) return;
    const p = loadPosition(this.#o.storage, this.#o.storageKey, token);
    if (p !== undefined) this.#position = p;
  }
}
