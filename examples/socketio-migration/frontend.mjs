// The frontend after the migration: the same socket.io-client, pointed at
// Herald. What changed from the gateway: the URL (Herald's; namespace
// /notifications and path /socket.io/ unchanged), a token Herald accepts
// (fetched from the backend), and `since`, to resume after a reconnect.
//
//   BACKEND_URL=http://127.0.0.1:3000 HERALD_URL=http://127.0.0.1:8080 node frontend.mjs alice
import { pathToFileURL } from 'node:url';

import { io } from 'socket.io-client';

/** Connects user's inbox; returns the socket. */
export function connectInbox({ heraldUrl, backendUrl, user, onNotification = () => {}, onUnread = () => {}, ioOptions = {} }) {
  let position; // the last position seen (a browser would keep it in localStorage)
  const socket = io(`${heraldUrl}/notifications`, {
    // Called before every (re)connect: a fresh token, and where to resume.
    auth: (cb) => {
      fetch(`${backendUrl}/api/herald-token?user=${encodeURIComponent(user)}`)
        .then((r) => r.json())
        .then(({ token }) => cb({ token, ...(position && { since: position }) }), () => cb({}));
    },
    ...ioOptions,
  });
  socket.on('ready', (r) => { position = r.position; onUnread(r.unread); });
  socket.on('notification', (n) => { position = n.position; onNotification(n, socket); });
  socket.on('unread', ({ count }) => onUnread(count));
  socket.on('resync', (r) => { position = r.position; /* missed too much: reload the list */ });
  socket.on('notification:error', (e) => console.warn('herald:', e.code, e.message, e.correlation_id ?? ''));
  socket.on('connect_error', (e) => console.warn('connect_error:', e.message));
  return socket;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { HERALD_URL = 'http://127.0.0.1:8080', BACKEND_URL = 'http://127.0.0.1:3000' } = process.env;
  const user = process.argv[2] ?? 'alice';
  connectInbox({
    heraldUrl: HERALD_URL, backendUrl: BACKEND_URL, user,
    onUnread: (count) => console.log(`unread: ${count}`),
    onNotification: async (n, socket) => {
      console.log(`notification: ${n.title}`, n.data ?? '');
      console.log('mark read:', await socket.emitWithAck('notification:mark-read', { id: n.id })); // unchanged event name
    },
  });
}
