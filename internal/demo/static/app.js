// Herald demo inbox. Plain JavaScript, no build step: it speaks the WebSocket
// protocol (docs/protocol.md) with a small inline client. The full client,
// with SSE fallback, token refresh and typed events, is the TypeScript SDK in
// clients/js; it is not used here because its compiled output is not
// committed, and this page is embedded in the Herald binary as written.

const $ = (id) => document.getElementById(id);
const el = {
  conn: $('conn'), connLabel: $('conn-label'), bell: $('bell'), badge: $('badge'),
  userForm: $('user-form'), user: $('user'),
  publishForm: $('publish-form'), title: $('title'), body: $('body'), publishStatus: $('publish-status'),
  inbox: $('inbox'), count: $('count'), markAll: $('mark-all'), empty: $('empty'), list: $('list'),
  error: $('error'), announcer: $('announcer'),
  unseen: $('unseen'), category: $('category'), collapseKey: $('collapse-key'), markSeen: $('mark-seen'),
  archiveAll: $('archive-all'), tabs: $('tabs'), prefsForm: $('prefs-form'), prefsStatus: $('prefs-status'),
  liveForm: $('live-form'), liveText: $('live-text'), liveStatus: $('live-status'), liveList: $('live-list'),
};

const TOPIC = 'demo.board'; // dev tokens may join demo.* (their topics claim)
const MAX_LIVE = 20;

const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
const BACKOFF_BASE_MS = 300;
const BACKOFF_MAX_MS = 5000;
const AUTH_CODES = [4001, 4003, 4004, 4013]; // never retry with the same token
const MAX_AUTH_FAILURES = 3;

// ---- a minimal resuming WebSocket client ----

const client = {
  user: '',
  token: '',
  ws: null,
  gen: 0,
  state: 'idle',
  position: undefined, // last position seen: sent as `since` on reconnect
  resumed: false, // the current connection resumed from position
  attempt: 0,
  authFailures: 0,
  timer: 0,
  seq: 0,
  pending: new Map(), // ref -> {resolve, reject}
  queue: [], // messages waiting for a live connection
};

async function fetchToken(user) {
  const res = await fetch(`/v1/dev/token?user=${encodeURIComponent(user)}`, { cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message || `token: HTTP ${res.status}`);
  return body.token;
}

function setState(state, detail = '') {
  client.state = state;
  el.conn.dataset.state = state;
  const labels = {
    idle: 'not connected', connecting: 'connecting…', authenticating: 'signing in…', live: 'live',
    reconnecting: 'reconnecting…', failed: 'disconnected', closed: 'closed',
  };
  el.connLabel.textContent = labels[state] + (detail ? ` (${detail})` : '');
}

async function connect() {
  clearTimeout(client.timer);
  const gen = ++client.gen;
  setState('connecting');
  try {
    client.token = await fetchToken(client.user); // a fresh token on every (re)connect
  } catch (err) {
    if (gen !== client.gen) return;
    showError(err.message);
    return scheduleReconnect(gen, 1006, 'token unavailable');
  }
  if (gen !== client.gen) return;
  const ws = new WebSocket(WS_URL);
  client.ws = ws;
  ws.onopen = () => {
    if (gen !== client.gen) return;
    setState('authenticating');
    const auth = { type: 'auth', token: client.token };
    client.resumed = client.position !== undefined;
    if (client.resumed) auth.since = client.position; // resume: the server replays what we missed
    ws.send(JSON.stringify(auth));
  };
  ws.onmessage = (e) => {
    if (gen !== client.gen) return;
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    onMessage(m);
  };
  ws.onclose = (e) => {
    if (gen !== client.gen) return;
    client.ws = null;
    for (const p of client.pending.values()) p.reject(new Error('connection lost'));
    client.pending.clear();
    if (e.code === 1008) return setState('failed', `closed ${e.code}`);
    if (AUTH_CODES.includes(e.code) && ++client.authFailures >= MAX_AUTH_FAILURES) {
      return setState('failed', `token rejected: ${e.code}`);
    }
    scheduleReconnect(gen, e.code, e.reason);
  };
}

function scheduleReconnect(gen, code, reason) {
  if (gen !== client.gen) return;
  // The server's hint on shutdown (4009), else backoff with full jitter.
  const hint = code === 4009 && /reconnect_after_ms=(\d+)/.exec(reason || '');
  const delay = hint ? Number(hint[1]) : Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** client.attempt);
  client.attempt++;
  setState('reconnecting', `code ${code}, retry in ${(delay / 1000).toFixed(1)} s`);
  client.timer = setTimeout(() => connect(), delay);
}

function disconnect() {
  client.gen++;
  clearTimeout(client.timer);
  if (client.ws) client.ws.close(1000);
  client.ws = null;
  for (const p of client.pending.values()) p.reject(new Error('disconnected'));
  client.pending.clear();
  client.queue = [];
}

/** Sends a request and resolves with its reply (matched by ref). Queued while not live. */
function request(msg) {
  return new Promise((resolve, reject) => {
    const ref = `p${++client.seq}`;
    const send = () => {
      client.pending.set(ref, { resolve, reject });
      client.ws.send(JSON.stringify({ ...msg, ref }));
    };
    if (client.state === 'live' && client.ws) send();
    else client.queue.push(send);
  });
}

function onMessage(m) {
  switch (m.type) {
    case 'ready':
      client.attempt = 0;
      client.authFailures = 0;
      client.position = m.position;
      setState('live');
      hideError();
      setUnread(m.unread);
      setUnseen(m.unseen ?? 0);
      setByCategory(m.by_category);
      receivedThisConnection.clear();
      // Topics are per connection: join again after every (re)connect.
      request({ type: 'subscribe', topics: [TOPIC] }).catch((e) => showError(`live events: ${e.message}`));
      for (const send of client.queue.splice(0)) send();
      refreshList(); // replayed notifications follow; the list brings read state up to date
      loadPreferences();
      break;
    case 'notification': {
      const n = m.notification;
      client.position = n.position;
      receivedThisConnection.add(n.id);
      if (!announced.has(n.id)) announce(n);
      if (n.replaces) items.delete(n.replaces); // an update in place (same collapse key)
      if (n.category && !n.read && !n.replaces) setByCategory({ ...byCategory, [n.category]: (byCategory[n.category] || 0) + 1 });
      if (inTab(n)) items.set(n.id, n);
      render();
      break;
    }
    case 'notification:archived':
      if (currentTab === 'archived') { refreshList(); break; }
      if (m.all) items.clear();
      for (const id of m.ids) items.delete(id);
      render();
      break;
    case 'notification:unarchived':
      refreshList();
      break;
    case 'preferences':
      showPreferences(m);
      break;
    case 'notification:read':
      for (const n of items.values()) if (m.all || m.ids.includes(n.id)) n.read = true;
      render();
      break;
    case 'notification:deleted':
      items.delete(m.id);
      render();
      break;
    case 'unread':
      setUnread(m.count);
      if (typeof m.unseen === 'number') setUnseen(m.unseen);
      if (m.by_category) setByCategory(m.by_category);
      break;
    case 'event':
      showLive(m.event);
      break;
    case 'resync': // missed too much: start over from the server's list
      client.position = m.position;
      items.clear();
      refreshList();
      break;
    case 'ack': case 'pong': case 'notification:list': case 'notification:error':
    case 'preferences:get': case 'preferences:set': case 'notification:unread-count': {
      const p = client.pending.get(String(m.ref));
      client.pending.delete(String(m.ref));
      if (!p) { if (m.type === 'notification:error') showError(`${m.code}: ${m.message}`); break; }
      if (m.type === 'notification:error') p.reject(new Error(`${m.message} (${m.code})`));
      else p.resolve(m);
      break;
    }
  }
}

// ---- the inbox ----

const items = new Map(); // id -> notification
const receivedThisConnection = new Set();
const announced = new Set(); // ids announced, or listed when the page loaded

// ---- tabs, seen, archive, preferences ----

let currentTab = ''; // '' (all), a category, or 'archived'
let byCategory = {};

function inTab(n) {
  return currentTab === '' || (currentTab !== 'archived' && n.category === currentTab);
}

function setByCategory(counts) {
  byCategory = { ...(counts || {}) };
  for (const tab of el.tabs.querySelectorAll('[data-tab]')) {
    const c = tab.querySelector('.tab-count');
    if (c) c.textContent = byCategory[tab.dataset.tab] ? `(${byCategory[tab.dataset.tab]})` : '';
  }
}

function setUnseen(count) {
  el.unseen.textContent = `${count > 99 ? '99+' : count} new`;
  el.unseen.dataset.count = String(count);
  el.unseen.hidden = count === 0;
}

function selectTab(tab) {
  currentTab = tab;
  for (const b of el.tabs.querySelectorAll('[data-tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  items.clear();
  render();
  refreshList();
}

async function loadPreferences() {
  try {
    showPreferences(await request({ type: 'preferences:get' }));
  } catch (err) {
    showError(`could not load the preferences: ${err.message}`);
  }
}

function showPreferences(p) {
  const muted = new Set(p.muted_categories || []);
  for (const box of el.prefsForm.querySelectorAll('input[name="muted"]')) box.checked = muted.has(box.value);
}

function listQuery() {
  const q = { type: 'notification:list', limit: 50 };
  if (currentTab === 'archived') q.archived = true;
  else if (currentTab) q.category = currentTab;
  return q;
}

async function refreshList() {
  let reply;
  const tab = currentTab;
  try {
    reply = await request(listQuery());
    if (tab !== currentTab) return; // another tab was chosen meanwhile
  } catch (err) {
    return showError(`could not load the inbox: ${err.message}`);
  }
  const fresh = new Map(reply.notifications.map((n) => [n.id, n]));
  // On a fresh start the list is history, not news. After a resume the
  // replayed notifications (which may arrive after this reply) are news.
  if (!client.resumed) for (const id of fresh.keys()) announced.add(id);
  // Keep notifications delivered on this connection after the list was read.
  if (tab !== 'archived') for (const id of receivedThisConnection) if (!fresh.has(id) && items.has(id)) fresh.set(id, items.get(id));
  items.clear();
  for (const [id, n] of fresh) items.set(id, n);
  render();
}

function setUnread(count) {
  el.badge.textContent = count > 99 ? '99+' : String(count);
  el.badge.dataset.count = String(count);
  el.badge.hidden = count === 0;
  el.bell.setAttribute('aria-label', `Notifications: ${count} unread`);
  el.count.textContent = count ? `(${count} unread)` : '';
}

function render() {
  const sorted = [...items.values()].sort((a, b) => (a.id < b.id ? 1 : -1)); // ULIDs: newest first
  const focusedId = document.activeElement?.closest?.('li')?.dataset.id;
  const focusedAction = document.activeElement?.dataset?.action;
  el.list.replaceChildren(...sorted.map(renderItem));
  el.empty.hidden = sorted.length > 0;
  el.markAll.disabled = !sorted.some((n) => !n.read);
  if (focusedId) { // keep keyboard focus on the same item across re-renders
    const li = el.list.querySelector(`li[data-id="${CSS.escape(focusedId)}"]`);
    (li?.querySelector(`[data-action="${focusedAction}"]:not([disabled])`) || li?.querySelector('button:not([disabled])') || el.list)?.focus?.();
  }
}

function renderItem(n) {
  const li = document.createElement('li');
  li.className = `item ${n.read ? 'read' : 'unread'}`;
  li.dataset.id = n.id;
  const text = document.createElement('div');
  text.className = 'item-text';
  const title = document.createElement('h3');
  title.className = 'item-title';
  const state = document.createElement('span');
  state.className = 'visually-hidden';
  state.textContent = n.read ? 'Read: ' : 'Unread: ';
  title.append(state, n.title);
  text.append(title);
  if (n.body) {
    const body = document.createElement('p');
    body.className = 'item-body';
    body.textContent = n.body;
    text.append(body);
  }
  const time = document.createElement('time');
  time.dateTime = n.created_at;
  time.textContent = new Date(n.created_at).toLocaleString();
  text.append(time);

  const actions = document.createElement('div');
  actions.className = 'item-actions';
  const read = button('Mark read', `Mark “${n.title}” read`, 'mark-read', () => markRead(n.id));
  read.disabled = n.read;
  const arch = n.archived
    ? button('Unarchive', `Unarchive “${n.title}”`, 'unarchive', () => archive(n.id, false))
    : button('Archive', `Archive “${n.title}”`, 'archive', () => archive(n.id, true));
  const del = button('Delete', `Delete “${n.title}”`, 'delete', () => remove(n.id));
  actions.append(read, arch, del);
  li.append(text, actions);
  return li;
}

function button(label, ariaLabel, action, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.dataset.action = action;
  b.setAttribute('aria-label', ariaLabel);
  b.addEventListener('click', onClick);
  return b;
}

// The server pushes notification:read / notification:deleted and unread to
// every tab of the user, this one included: the view updates from those.
function markRead(id) {
  request({ type: 'notification:mark-read', ids: [id] }).catch((e) => showError(e.message));
}
function remove(id) {
  request({ type: 'notification:delete', id }).catch((e) => showError(e.message));
}
function archive(id, on) {
  request({ type: on ? 'notification:archive' : 'notification:unarchive', id }).catch((e) => showError(e.message));
}
function markSeen() {
  request({ type: 'notification:seen' }).catch((e) => showError(e.message));
}

function announce(n) {
  announced.add(n.id);
  el.announcer.textContent = '';
  setTimeout(() => { el.announcer.textContent = `New notification: ${n.title}`; }, 100);
}

function showLive(ev) {
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.dateTime = ev.created_at;
  time.textContent = new Date(ev.created_at).toLocaleTimeString();
  const text = document.createElement('span');
  text.textContent = ` ${ev.topic ? ev.topic + ' · ' : ''}${ev.type}: ${ev.title || ev.body || ''}`;
  li.append(time, text);
  el.liveList.prepend(li);
  while (el.liveList.children.length > MAX_LIVE) el.liveList.lastChild.remove();
}

function showError(msg) {
  el.error.textContent = msg;
  el.error.hidden = false;
}
function hideError() {
  el.error.hidden = true;
}

// ---- wiring ----

el.markAll.addEventListener('click', () => {
  request({ type: 'notification:mark-all-read' }).catch((e) => showError(e.message));
});

el.bell.addEventListener('click', () => {
  const open = el.bell.getAttribute('aria-expanded') !== 'true';
  el.bell.setAttribute('aria-expanded', String(open));
  el.inbox.hidden = !open;
  if (open) {
    el.inbox.focus();
    markSeen(); // opening the inbox clears the "new" badge in every tab
  }
});

el.markSeen.addEventListener('click', markSeen);

el.archiveAll.addEventListener('click', () => {
  request({ type: 'notification:archive', all: true }).catch((e) => showError(e.message));
});

el.tabs.addEventListener('click', (e) => {
  const tab = e.target.closest('[data-tab]');
  if (tab) selectTab(tab.dataset.tab);
});

el.prefsForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const muted = [...el.prefsForm.querySelectorAll('input[name="muted"]:checked')].map((b) => b.value);
  el.prefsStatus.textContent = 'Saving…';
  try {
    await request({ type: 'preferences:set', muted_categories: muted, muted_types: [] });
    el.prefsStatus.textContent = 'Saved.';
  } catch (err) {
    el.prefsStatus.textContent = `Not saved: ${err.message}`;
  }
});

/** POSTs payload to the dev publish endpoint, reporting progress in status. */
async function devPublish(payload, status, [busy, done, failed]) {
  status.textContent = busy;
  try {
    const res = await fetch('/v1/dev/publish', {
      method: 'POST',
      headers: { Authorization: `Bearer ${client.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
    status.textContent = done;
  } catch (err) {
    status.textContent = `${failed}: ${err.message}`;
  }
}

el.publishForm.addEventListener('submit', (e) => {
  e.preventDefault();
  devPublish({ title: el.title.value, body: el.body.value, category: el.category.value,
    collapse_key: el.collapseKey.value.trim() }, el.publishStatus, ['Publishing…', 'Published.', 'Not published']);
});

// A live event to the board's topic: every tab watching it gets it, nothing is stored.
el.liveForm.addEventListener('submit', (e) => {
  e.preventDefault();
  devPublish({ title: `${client.user}: ${el.liveText.value}`, ephemeral: true }, el.liveStatus, ['Sending…', 'Sent.', 'Not sent']);
});

el.userForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!el.user.checkValidity()) return;
  start(el.user.value.trim());
});

function start(user) {
  disconnect();
  client.user = user;
  client.position = undefined;
  client.attempt = 0;
  client.authFailures = 0;
  items.clear();
  announced.clear();
  render();
  setUnread(0);
  setUnseen(0);
  setByCategory({});
  const url = new URL(location.href);
  url.searchParams.set('user', user);
  history.replaceState(null, '', url);
  connect();
}

const initialUser = new URLSearchParams(location.search).get('user');
if (initialUser && /^[A-Za-z0-9._@-]{1,64}$/.test(initialUser)) el.user.value = initialUser;
start(el.user.value);
