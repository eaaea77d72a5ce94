// The inbox model's frames (issue 15): counts, archive, preferences. Pure
// functions, so that the client only routes them.
import type { Counts, HeraldEvents, ListQuery, Notification, NotificationPage, Preferences } from './types.js';

type Frame = Record<string, unknown>;

function numbers(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v && typeof v === 'object') {
    for (const [k, n] of Object.entries(v as Record<string, unknown>)) if (typeof n === 'number') out[k] = n;
  }
  return out;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

/** The counts of an unread-count reply (or a REST change / count body). */
export function parseCounts(m: Frame): Counts {
  return {
    count: typeof m.count === 'number' ? m.count : typeof m.unread === 'number' ? m.unread : 0,
    unseen: typeof m.unseen === 'number' ? m.unseen : 0,
    byCategory: numbers(m.by_category),
  };
}

/** The payload of an `unread` frame. */
export function unreadEvent(m: Frame): HeraldEvents['unread'] | undefined {
  if (typeof m.count !== 'number') return undefined;
  const ev: HeraldEvents['unread'] = { count: m.count, unseen: typeof m.unseen === 'number' ? m.unseen : 0 };
  if (m.by_category && typeof m.by_category === 'object') ev.byCategory = numbers(m.by_category);
  return ev;
}

/** The preferences of a `preferences` frame or reply. */
export function parsePreferences(m: Frame): Preferences {
  return { muted_categories: strings(m.muted_categories), muted_types: strings(m.muted_types) };
}

/** The event of an archive-model frame, if m is one. */
export function inboxEvent(m: Frame): { name: 'archived' | 'unarchived'; ids: string[]; all: boolean } | { name: 'preferences'; prefs: Preferences } | undefined {
  switch (m.type) {
    case 'notification:archived':
    case 'notification:unarchived':
      return { name: m.type === 'notification:archived' ? 'archived' : 'unarchived', ids: strings(m.ids), all: m.all === true };
    case 'preferences':
      return { name: 'preferences', prefs: parsePreferences(m) };
  }
  return undefined;
}

/** The fields of a list request. */
export function listArgs(query: ListQuery): Record<string, unknown> {
  const q: Record<string, unknown> = {};
  if (query.before) q.before = query.before;
  if (query.limit !== undefined && query.limit !== 0) q.limit = query.limit;
  if (query.unread) q.unread = true;
  if (query.category) q.category = query.category;
  if (query.archived) q.archived = true;
  return q;
}

/** The REST path of a list request with fields q (listArgs). */
export function listPath(q: Record<string, unknown>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) params.set(k, String(v));
  const qs = params.toString();
  return '/v1/me/notifications' + (qs ? '?' + qs : '');
}

/** The page of a list reply. */
export function parsePage(reply: unknown): NotificationPage {
  const r = (reply ?? {}) as { notifications?: unknown; next?: unknown };
  return {
    notifications: Array.isArray(r.notifications) ? (r.notifications as Notification[]) : [],
    next: typeof r.next === 'string' ? r.next : null,
  };
}

/** The WebSocket message and REST form of an archive or unarchive request. */
export function archiveRequest(op: 'archive' | 'unarchive', ids: string[] | 'all'): { ws: Frame; rest: Array<[string, string]> } {
  if (ids === 'all') return { ws: { type: `notification:${op}`, all: true }, rest: [['POST', `/v1/me/notifications/${op}-all`]] };
  return {
    ws: { type: `notification:${op}`, ids },
    rest: ids.map((id) => ['POST', `/v1/me/notifications/${encodeURIComponent(id)}/${op}`] as [string, string]),
  };
}
