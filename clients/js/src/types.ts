/** A notification as Herald sends it. */
export interface Notification {
  /** ULID: 26 characters, time-ordered. */
  id: string;
  type: string;
  title: string;
  body: string;
  /** Present only when the publisher sent an object. */
  data?: Record<string, unknown>;
  /** RFC 3339 UTC, millisecond precision. */
  created_at: string;
  /** Present only when one was set. */
  expires_at?: string;
  /** Groups notifications into tabs and counts; present only when set. */
  category?: string;
  /** The publisher's collapse key: a later notification with the same key replaces this one. */
  collapse_key?: string;
  /** This user's current read state. */
  read: boolean;
  /** True in lists of archived notifications. */
  archived?: boolean;
  /**
   * Live notifications only: the id of the earlier notification with the
   * same collapse key that this one replaces (update it in place).
   */
  replaces?: string;
  /**
   * The client's position after this notification (live and replayed
   * notifications only; list results have none). Opaque.
   */
  position?: string;
}

/**
 * A live event: published with `ephemeral: true`, never stored, delivered
 * at most once to the connections that are live when it is published.
 */
export interface LiveEvent {
  /** ULID given by the server. */
  id: string;
  /** The topic this connection is subscribed to, for an event published to topics. */
  topic?: string;
  /** The publisher's type, e.g. "order:updated". */
  type: string;
  title?: string;
  body?: string;
  data?: Record<string, unknown>;
  /** RFC 3339 UTC. */
  created_at: string;
}

/** One page of list(). */
export interface NotificationPage {
  notifications: Notification[];
  /** Pass as `before` to get the next page; null on the last page. */
  next: string | null;
}

/** Options of list(). */
export interface ListQuery {
  /** A notification id (the `next` of the previous page): only older ones. */
  before?: string;
  /** 1..200; the server's default is 50. */
  limit?: number;
  /** Only unread notifications. */
  unread?: boolean;
  /** Only this category. */
  category?: string;
  /** The archived notifications instead of the inbox. */
  archived?: boolean;
}

/** The user's counts: unread, unseen (the badge) and unread by category. */
export interface Counts {
  count: number;
  unseen: number;
  byCategory: Record<string, number>;
}

/** What never reaches the user. */
export interface Preferences {
  muted_categories: string[];
  muted_types: string[];
}

/**
 * The connection state machine:
 *
 *     idle → connecting → authenticating → live
 *                ↑                           │ (connection lost)
 *                └──── reconnecting ←────────┘
 *
 * `reconnecting` is the wait before the next attempt. Any state can go to
 * `closed` (close() was called) or `failed` (the client gave up: the token
 * was rejected and no new one could be had, or the server closed with a code
 * that must not be retried automatically).
 */
export type ConnectionState = 'idle' | 'connecting' | 'authenticating' | 'live' | 'reconnecting' | 'closed' | 'failed';

/** Payload of the `state` event. */
export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Close code of the connection that ended (reconnecting, failed). */
  closeCode?: number;
  /** Close reason (label) of the connection that ended. */
  reason?: string;
  /** Delay before the next attempt (reconnecting). */
  delayMs?: number;
  /** Why the client failed (failed). */
  error?: Error;
}

/** Payload of the `ready` event: the connection is authenticated. */
export interface ReadyInfo {
  user: string;
  tenant: string;
  unread: number;
  /** The unseen count (the badge). */
  unseen: number;
  /** Unread by category. */
  byCategory: Record<string, number>;
  /** Where delivery starts. */
  position: string;
  /** True when the connection resumed from an earlier position. */
  resumed: boolean;
}

/** Every event of HeraldClient and its payload. */
export interface HeraldEvents {
  /** A new (live or replayed) notification, never twice for the same id. */
  notification: Notification;
  /** Notifications became read, on any connection of the user. `all`: every notification. */
  read: { ids: string[]; all: boolean };
  /**
   * A notification left the inbox: deleted, on any connection of the user,
   * or `expired` (its `expires_at` passed; an `unread` event follows).
   */
  deleted: { id: string; expired: boolean };
  /**
   * The counts changed (also sent after `ready`). `byCategory` is present when
   * the server sent it (after state changes); after a live notification add
   * one to its category yourself, or keep the last value.
   */
  unread: { count: number; unseen: number; byCategory?: Record<string, number> };
  /** Notifications were archived (or all of them), on any connection of the user. */
  archived: { ids: string[]; all: boolean };
  /** Notifications were unarchived (or all of them), on any connection of the user. */
  unarchived: { ids: string[]; all: boolean };
  /** The user's preferences changed, on any connection. */
  preferences: Preferences;
  /** The client missed too much: drop any displayed list and refetch it. */
  resync: { position: string };
  /** A live event (never stored): see subscribe() for topics. */
  event: LiveEvent;
  /** Authenticated: live delivery (after any replay) follows. Refresh displayed lists here. */
  ready: ReadyInfo;
  /** The connection state changed. */
  state: StateChange;
  /** Something went wrong that no promise reports (see HeraldError.code). */
  error: import('./errors.js').HeraldError;
}

/** The part of the WebSocket API the client uses (browsers' and the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of the EventSource API the client uses. */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  addEventListener(type: string, listener: (ev: { data?: unknown }) => void): void;
  onerror: ((ev: unknown) => void) | null;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** A localStorage-like store for the last position. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem?(key: string): void;
}

export type FetchLike = (input: string, init?: {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}) => Promise<{ status: number; ok: boolean; headers: { get(name: string): string | null }; json(): Promise<unknown>; text(): Promise<string> }>;

/** Options of HeraldClient. */
export interface HeraldClientOptions {
  /**
   * Herald's base URL, e.g. "https://herald.example.com" or
   * "http://127.0.0.1:8080". The WebSocket URL is derived from it
   * (ws(s)://…/v1/ws) unless wsUrl is given.
   */
  url: string;
  /** Overrides the WebSocket URL. */
  wsUrl?: string;
  /** A fixed token. Without getToken the client fails when it is rejected or expires. */
  token?: string;
  /**
   * Returns a current token. Called before every connection attempt, before
   * the token expires (for an in-band refresh) and after the server rejected
   * a token.
   */
  getToken?: () => string | Promise<string>;
  /** "websocket" (default) or "sse" (EventSource + stream ticket; requests go over REST). */
  transport?: 'websocket' | 'sse';
  /** WebSocket constructor; default globalThis.WebSocket. On Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** EventSource constructor for transport "sse"; default globalThis.EventSource. */
  EventSource?: EventSourceConstructor;
  /** fetch for SSE tickets and REST requests; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Where to keep the last position across page loads (e.g. localStorage). Memory only by default. */
  storage?: StorageLike;
  /** Storage key; default "herald:position". */
  storageKey?: string;
  /**
   * Start position. Default: the stored one, else none (delivery starts at
   * the current head). "" replays from the beginning (up to the server's
   * replay limit).
   */
  since?: string;
  /** Reconnect backoff: full jitter between 0 and min(maxMs, baseMs·2^attempt). Defaults 500 ms and 30 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * Consecutive rejected tokens (close codes 4001, 4003, 4004, 4013) after
   * which the client gives up with state "failed". Default 3.
   */
  maxAuthFailures?: number;
  /** Timeout of every request (markRead, list, archive, …), queueing included. Default 10 s. */
  requestTimeoutMs?: number;
  /** Timeout from a connection attempt to `ready`. Default 15 s. */
  connectTimeoutMs?: number;
  /** Refresh the token this long before it expires (at most half its remaining life). Default 60 s. */
  refreshBeforeMs?: number;
  /** Application-level ping interval while live (0: off). Default 25 s. */
  pingIntervalMs?: number;
  /** How many notification ids to remember for duplicate suppression. Default 1000. */
  dedupeSize?: number;
  /**
   * Topics to subscribe to on every connection. With transport "websocket"
   * subscribe() and unsubscribe() change the set later; with "sse" the
   * topics go on the stream's URL and are fixed (a topic the token may not
   * join makes the stream fail to open).
   */
  topics?: string[];
}
