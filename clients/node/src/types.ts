/**
 * Who gets a notification: exactly one of named users (1–1000 ids of the
 * tenant), the whole tenant (including users who connect later) or every
 * user of the tenant whose token's role claim equals `role`.
 */
export type Audience = { users: string[] } | { tenant: true } | { role: string };

/**
 * One notification to publish: the JSON body of POST /v1/notifications
 * (docs/openapi.yaml, PublishItem), field by field. Herald validates it; an
 * invalid one rejects with a HeraldError whose code is `invalid_request`.
 */
export interface Notification {
  /** Required unless the API key is scoped to a tenant (then it is the default). */
  tenant?: string;
  to: Audience;
  /** An application-defined kind, e.g. `invoice.paid`: 1–128 of `A–Z a–z 0–9 . _ - : /`. */
  type: string;
  /** 1–512 bytes. */
  title: string;
  /** At most 8 KiB. */
  body?: string;
  /** A JSON object (nested at most 16 levels), or null. */
  data?: Record<string, unknown> | null;
  /** In the future: after it the notification is no longer listed, replayed or counted. */
  expires_at?: string | Date;
}

/**
 * A live event to publish (`"ephemeral": true`, added by publishLive): never
 * stored, delivered at most once to the clients connected now. Besides
 * users, a tenant or a role it may go to topics (1–100 names of
 * `[A-Za-z0-9._:-]{1,128}` that clients subscribed to).
 */
export interface LiveEvent {
  /** Required unless the API key is scoped to a tenant. */
  tenant?: string;
  to: Audience | { topics: string[] };
  /** Its name on Socket.IO (`socket.on(type, …)`); names Socket.IO or Herald use are refused. */
  type: string;
  title?: string;
  body?: string;
  data?: Record<string, unknown> | null;
}

/** When and how long a call waits before trying again (see README). */
export interface RetryOptions {
  /** Most attempts of one call, the first included. Default 4; 1 disables retries. */
  maxAttempts?: number;
  /** The backoff's first cap in ms. Default 200. */
  baseDelayMs?: number;
  /** The backoff's cap in ms (not a Retry-After's). Default 5000. */
  maxDelayMs?: number;
  /** The longest Retry-After the client waits for, in ms. Default 30000. */
  maxRetryAfterMs?: number;
}

export interface HeraldOptions {
  /** Herald's base URL, e.g. `https://herald.example.com`. */
  url: string;
  /** A publish API key, or an admin key for the revocation calls. */
  apiKey: string;
  retry?: RetryOptions;
  /** Bound of one attempt in ms (each retry gets its own). Default 15000. */
  timeoutMs?: number;
  /** The fetch to use. Default the global fetch (Node 20+). */
  fetch?: typeof fetch;
  /** User-Agent header. Default `herald-node`. */
  userAgent?: string;
}

/** Options of one call. */
export interface CallOptions {
  /**
   * The Idempotency-Key of a publish (1–255 printable ASCII, no spaces),
   * e.g. derived from the event that causes it (`order-1234-paid`), so that
   * publishing it again stores nothing new. Without it each call gets a
   * random key, which protects that call's retries.
   */
  idempotencyKey?: string;
  /** Aborts the call, its retries included. */
  signal?: AbortSignal;
}
