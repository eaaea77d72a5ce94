// A small inbox page on @herald/react. Open it as
//   /?user=alice&herald=http://127.0.0.1:8080
// Tokens come from /token?user=… on the page's own server (example/server.mjs),
// which stands in for your backend.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { HeraldProvider, useConnectionState, useHerald, useNotifications, useUnreadCount } from '../src/index.js';

const params = new URLSearchParams(location.search);
const user = params.get('user') ?? 'alice';
const heraldUrl = params.get('herald') ?? 'http://127.0.0.1:8080';

async function getToken(): Promise<string> {
  const r = await fetch(`/token?user=${encodeURIComponent(user)}`);
  if (!r.ok) throw new Error(`token: ${r.status}`);
  return (await r.json()).token;
}

function Header() {
  const state = useConnectionState();
  const unread = useUnreadCount();
  const herald = useHerald();
  return (
    <header>
      <h1>Inbox of {user}</h1>
      <span id="state" data-state={state} aria-live="polite">{state}</span>
      <span id="badge" aria-label={`${unread ?? 0} unread`}>{unread ?? '–'}</span>
      <button id="read-all" onClick={() => void herald.markAllRead()}>Mark all read</button>
    </header>
  );
}

function Inbox() {
  const { notifications, loading, error, hasMore, loadMore, markRead, remove } = useNotifications({ limit: 20 });
  if (error) return <p role="alert">Could not load: {error.message}</p>;
  if (loading && notifications.length === 0) return <p className="empty">Loading…</p>;
  if (notifications.length === 0) return <p className="empty" id="empty">Nothing yet.</p>;
  return (
    <>
      <ul id="list">
        {notifications.map((n) => (
          <li key={n.id} className={n.read ? 'read' : 'unread'} data-id={n.id}>
            <div className="text">
              <div className="title">{n.title}</div>
              {n.body && <div>{n.body}</div>}
              <div className="meta">{n.type} · {new Date(n.created_at).toLocaleTimeString()}</div>
            </div>
            {!n.read && <button onClick={() => void markRead(n.id)}>Mark read</button>}
            <button onClick={() => void remove(n.id)}>Delete</button>
          </li>
        ))}
      </ul>
      {hasMore && <button onClick={() => void loadMore()}>Load more</button>}
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <HeraldProvider url={heraldUrl} getToken={getToken} storage={sessionStorage} storageKey={`herald:position:${user}`}>
      <Header />
      <Inbox />
    </HeraldProvider>
  </StrictMode>,
);
