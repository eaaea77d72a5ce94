import { HeraldError } from './errors.js';

// The WebSocket protocol as the client speaks it (docs/protocol.md).

/** A server message. */
export type Frame = Record<string, unknown> & { type?: unknown };

export const WS_CONNECTING = 0;
export const WS_OPEN = 1;
/** The server runs at most 4 requests per socket at a time; the client queues the rest. */
export const MAX_INFLIGHT = 4;
/** Ids per notification:mark-read message. */
export const MAX_IDS = 100;
/** Close codes after which the same token must not be used again (docs/protocol.md). */
export const AUTH_CODES = new Set([4001, 4003, 4004, 4013]);
/** Close codes that must not be retried automatically. */
export const FATAL_CODES = new Set([1008]);

export type Kind = 'mark-read' | 'mark-all-read' | 'delete' | 'list' | 'inbox' | 'ping' | 'refresh' | 'subscribe' | 'unsubscribe';
/** Topics per subscribe message (the server's limit). */
export const MAX_TOPICS = 100;

/** A request waiting for its reply. */
export interface Pending {
  ref: string;
  kind: Kind;
  msg: Record<string, unknown>;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Sent on the current socket and not answered yet. */
  sent: boolean;
  /** Sent on an earlier socket that was lost before the reply. */
  resent: boolean;
  settled: boolean;
}

/** textOf is a WebSocket message as text. */
export function textOf(data: unknown): string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}

/** serverError is the HeraldError of an error reply. */
export function serverError(m: Frame): HeraldError {
  const extra: { correlationId?: string } = {};
  if (typeof m.correlation_id === 'string') extra.correlationId = m.correlation_id;
  return new HeraldError(typeof m.code === 'string' ? m.code : 'internal', typeof m.message === 'string' ? m.message : 'request failed', extra);
}
