import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { ConnectionState, ListQuery, Notification } from '@herald/client';

import { useHerald } from './context.js';

/**
 * The client's connection state: 'idle', 'connecting', 'authenticating',
 * 'live', 'reconnecting', 'closed' or 'failed'. Re-renders on change.
 */
export function useConnectionState(): ConnectionState {
  const c = useHerald();
  return useSyncExternalStore(
    (notify) => c.on('state', notify),
    () => c.state,
    () => c.state,
  );
}

/**
 * The user's unread count, live (from every tab and REST call of the user);
 * undefined until the first connection is ready.
 */
export function useUnreadCount(): number | undefined {
  const c = useHerald();
  return useSyncExternalStore(
    (notify) => {
      const offs = [c.on('unread', notify), c.on('ready', notify), c.on('state', notify)];
      return () => offs.forEach((off) => off());
    },
    () => c.unreadCount,
    () => c.unreadCount,
  );
}

export interface UseNotificationsOptions {
  /** Page size (1–200). Default 20. */
  limit?: number;
  /** Only unread notifications (read ones leave the list as they become read). */
  unread?: boolean;
}

export interface NotificationsState {
  /** Newest first: the loaded pages, plus live arrivals at the top. */
  notifications: Notification[];
  /** True while the first page is (re)loading. */
  loading: boolean;
  /** The last load's error, if it failed. */
  error: Error | undefined;
  /** More pages after the loaded ones. */
  hasMore: boolean;
  /** Loads the next page. */
  loadMore: () => Promise<void>;
  /** Reloads the first page. */
  reload: () => Promise<void>;
  markRead: (ids: string | string[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  remove: (id: string) => Promise<void>;
}

interface ListState {
  items: Notification[];
  next: string | null;
  loading: boolean;
  error: Error | undefined;
}

/**
 * The user's inbox, kept current: the first page is loaded on every
 * `ready` (each connect and reconnect) and `resync`; live notifications are
 * added at the top (never twice); reads and deletes from any tab or REST
 * call are applied as they arrive. The actions change Herald, and the list
 * follows from Herald's events, so every tab shows the same.
 */
export function useNotifications(options: UseNotificationsOptions = {}): NotificationsState {
  const c = useHerald();
  const limit = options.limit ?? 20;
  const unreadOnly = options.unread ?? false;
  const [s, setS] = useState<ListState>({ items: [], next: null, loading: true, error: undefined });
  // Live arrivals since the current reload started (null: no reload running).
  const arrived = useRef<Notification[] | null>(null);

  const reload = useCallback(async () => {
    setS((p) => ({ ...p, loading: true, error: undefined }));
    arrived.current = [];
    try {
      const page = await c.list(query(limit, unreadOnly));
      // Live arrivals during the load that the page does not hold stay on top.
      const ids = new Set(page.notifications.map((n) => n.id));
      const live = (arrived.current ?? []).filter((n) => !ids.has(n.id)).reverse();
      arrived.current = null;
      setS({ items: [...live, ...page.notifications], next: page.next, loading: false, error: undefined });
    } catch (e) {
      arrived.current = null;
      setS((p) => ({ ...p, loading: false, error: e as Error }));
    }
  }, [c, limit, unreadOnly]);

  useEffect(() => {
    const offs = [
      c.on('ready', () => void reload()),
      c.on('resync', () => void reload()),
      c.on('notification', (n) => {
        arrived.current?.push(n);
        setS((p) => (p.items.some((x) => x.id === n.id) ? p : { ...p, items: [n, ...p.items] }));
      }),
      c.on('read', ({ ids, all }) =>
        setS((p) => {
          const hit = (n: Notification) => all || ids.includes(n.id);
          const items = unreadOnly ? p.items.filter((n) => !hit(n)) : p.items.map((n) => (hit(n) && !n.read ? { ...n, read: true } : n));
          return { ...p, items };
        }),
      ),
      c.on('deleted', ({ id }) => setS((p) => ({ ...p, items: p.items.filter((n) => n.id !== id) }))),
    ];
    if (c.state === 'live') void reload(); // mounted after the connection was ready
    return () => offs.forEach((off) => off());
  }, [c, reload, unreadOnly]);

  const loadMore = useCallback(async () => {
    const before = s.next;
    if (!before) return;
    try {
      const page = await c.list({ ...query(limit, unreadOnly), before });
      setS((p) => ({ ...p, items: mergeOlder(p.items, page.notifications), next: page.next }));
    } catch (e) {
      setS((p) => ({ ...p, error: e as Error }));
    }
  }, [c, limit, unreadOnly, s.next]);

  const actions = useMemo(
    () => ({
      markRead: (ids: string | string[]) => c.markRead(ids),
      markAllRead: () => c.markAllRead(),
      remove: (id: string) => c.delete(id),
    }),
    [c],
  );

  return { notifications: s.items, loading: s.loading, error: s.error, hasMore: s.next !== null, loadMore, reload, ...actions };
}

function query(limit: number, unread: boolean): ListQuery {
  return unread ? { limit, unread: true } : { limit };
}

/** current followed by the items of an older page that it does not hold. */
function mergeOlder(current: Notification[], older: Notification[]): Notification[] {
  const ids = new Set(current.map((n) => n.id));
  return [...current, ...older.filter((n) => !ids.has(n.id))];
}

