// Real-client scenarios for Herald's Socket.IO endpoint, run by
// internal/node/socketio_test.go: `node client.mjs <scenario>`.
// Environment: HERALD_URL, CONTROL_URL, API_KEY, ADMIN_KEY, GOOD_ORIGIN,
// TOKEN (and TOKEN2, EXPIRES_AT for resume, TOKENS for revokeupgrade,
// SOCKETS for many).
// Exit status 0 means every check passed.
import { io } from "socket.io-client";

const env = process.env;
const URL = env.HERALD_URL;
const NSP = URL + "/notifications";
const started = Date.now();

function log(...args) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(2)}s]`, ...args);
}

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

// recorder keeps every event of a socket, so that none is missed between
// awaits, and lets the scenario wait for the next one matching a predicate.
function recorder(socket) {
  const seen = [];
  const waiters = [];
  socket.onAny((event, ...args) => push(event, args[0]));
  for (const ev of ["connect", "disconnect", "connect_error"]) {
    socket.on(ev, (arg) => push(ev, arg));
  }
  function push(event, arg) {
    seen.push({ event, arg });
    for (const w of [...waiters]) w();
  }
  // describe names an event, with its reason for the ones whose reason
  // tells a failure apart (which close, which refusal).
  function describe(s) {
    switch (s.event) {
      case "disconnect": return `disconnect(${s.arg})`;
      case "connect_error": return `connect_error(${s.arg?.message})`;
      case "notification:error": return `notification:error(${s.arg?.code})`;
      default: return s.event;
    }
  }
  let cursor = 0;
  return {
    seen,
    // next resolves with the argument of the next `event` satisfying pred.
    next(event, pred = () => true, ms = 10000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(poll), 1);
          reject(new Error(`timed out waiting for ${event}; seen ${JSON.stringify(seen.slice(cursor).map(describe))}`));
        }, ms);
        const poll = () => {
          for (let i = cursor; i < seen.length; i++) {
            if (seen[i].event === event && pred(seen[i].arg)) {
              cursor = i + 1;
              clearTimeout(timer);
              waiters.splice(waiters.indexOf(poll), 1);
              resolve(seen[i].arg);
              return;
            }
          }
        };
        waiters.push(poll);
        poll();
      });
    },
    count(event) {
      return seen.filter((s) => s.event === event).length;
    },
  };
}

async function publish(user, title = "hello") {
  const res = await fetch(URL + "/v1/notifications", {
    method: "POST",
    headers: { Authorization: "Bearer " + env.API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ tenant: "acme", to: { users: [user] }, type: "test.event", title, body: "body" }),
  });
  check(res.status === 201, `publish status ${res.status}`);
  return (await res.json()).id;
}

async function publishLive(to, type, data, extra = {}) {
  const res = await fetch(URL + "/v1/notifications", {
    method: "POST",
    headers: { Authorization: "Bearer " + env.API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ tenant: "acme", to, type, data, ephemeral: true, ...extra }),
  });
  check(res.status === 202, `live publish status ${res.status}`);
  return (await res.json()).id;
}

async function control(path) {
  const res = await fetch(env.CONTROL_URL + path, { method: "POST" });
  return res.text();
}

function waitUntil(cond, what, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error("timed out: " + what));
      setTimeout(tick, 10);
    };
    tick();
  });
}

const scenarios = {
  // Default transports (polling → upgrade), websocket-only and polling-only;
  // auth.token and extraHeaders; live delivery; acks; connect_error for a
  // bad token and a bad origin; notification:error without an ack.
  async basic() {
    for (const transports of [undefined, ["websocket"], ["polling"]]) {
      const name = transports ? transports.join() : "default";
      const socket = io(NSP, { auth: { token: env.TOKEN }, transports, forceNew: true, reconnection: false });
      const rec = recorder(socket);
      const upgraded = new Promise((resolve) => socket.io.on("open", () => socket.io.engine.on("upgrade", resolve)));
      await rec.next("connect");
      const ready = await rec.next("ready");
      check(ready.user === "nina" && ready.tenant === "acme", `${name}: ready ${JSON.stringify(ready)}`);
      if (!transports) {
        await upgraded;
        check(socket.io.engine.transport.name === "websocket", `${name}: upgraded to ${socket.io.engine.transport.name}`);
      }
      const id = await publish("nina", name);
      const n = await rec.next("notification", (n) => n.id === id);
      check(n.title === name && typeof n.position === "string", `${name}: notification ${JSON.stringify(n)}`);
      const ack = await socket.timeout(10000).emitWithAck("notification:mark-read", { id });
      check(ack && ack.ok === true, `${name}: mark-read ack ${JSON.stringify(ack)}`);
      await rec.next("notification:read", (r) => r.ids.includes(id));
      const page = await socket.timeout(10000).emitWithAck("notification:list", { limit: 50 });
      check(page.ok && page.notifications.some((x) => x.id === id && x.read), `${name}: list ${JSON.stringify(page)}`);
      socket.emit("notification:delete", { id: "not-an-id" });
      const err = await rec.next("notification:error");
      check(err.code === "invalid_message" && err.message, `${name}: error ${JSON.stringify(err)}`);
      socket.disconnect();
      check(rec.count("disconnect") === 1, `${name}: one disconnect`);
      log(`${name}: connected, delivered, acked, errors ok`);
    }

    // extraHeaders (honoured by Node's polling transport): no auth payload.
    const hdr = io(NSP, { transports: ["polling"], extraHeaders: { Authorization: "Bearer " + env.TOKEN }, forceNew: true, reconnection: false });
    const hrec = recorder(hdr);
    await hrec.next("connect");
    await hrec.next("ready");
    hdr.disconnect();
    log("extraHeaders: connected");

    const bad = io(NSP, { auth: { token: "not-a-token" }, forceNew: true, reconnection: false });
    const brec = recorder(bad);
    const e = await brec.next("connect_error");
    check(e.message === "unauthorized", `bad token: ${e.message}`);
    check(!bad.connected && brec.count("connect") === 0, "bad token connected");
    bad.close();
    log("bad token: connect_error unauthorized");

    for (const transports of [["polling"], ["websocket"]]) {
      const evil = io(NSP, {
        auth: { token: env.TOKEN }, transports, forceNew: true, reconnection: false,
        extraHeaders: { Origin: "https://evil.example" },
      });
      const erec = recorder(evil);
      const oe = await erec.next("connect_error");
      check(erec.count("connect") === 0, `${transports}: bad origin connected`);
      evil.close();
      log(`bad origin over ${transports}: connect_error (${oe.message})`);
    }
    const good = io(NSP, { auth: { token: env.TOKEN }, transports: ["polling"], forceNew: true, reconnection: false, extraHeaders: { Origin: env.GOOD_ORIGIN } });
    const grec = recorder(good);
    await grec.next("ready");
    good.disconnect();
    log("allowed origin: connected");
  },

  // Forced disconnects: the server closes every transport (the client's
  // Manager reconnects by itself), then the token is revoked (DISCONNECT: the
  // app reconnects with a new token). Both resume with auth.since: nothing
  // lost, nothing twice.
  async resume() {
    const socket = io(NSP, {
      auth: { token: env.TOKEN }, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300,
    });
    const rec = recorder(socket);
    const got = [];
    socket.on("notification", (n) => {
      got.push(n.id);
      socket.auth.since = n.position; // what a resuming frontend keeps
    });
    await rec.next("ready");
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await publish("omar", "before"));
    await waitUntil(() => got.length >= 3, "first notifications");

    await control("/closeall");
    const closeErr = await rec.next("notification:error");
    check(closeErr.code === "shutdown", `close reason ${JSON.stringify(closeErr)}`);
    for (let i = 0; i < 3; i++) sent.push(await publish("omar", "while away"));
    const reason1 = await rec.next("disconnect");
    check(reason1 === "transport close", `first disconnect: ${reason1}`);
    await rec.next("connect"); // the Manager reconnected
    await waitUntil(() => got.length >= 6, "resumed after the forced close");
    log("forced transport close: reconnected and resumed");

    log(`revoking on ${socket.io.engine.transport.name} (upgrading: ${socket.io.engine.upgrading})`);
    const res = await fetch(URL + "/v1/admin/revocations", {
      method: "POST",
      headers: { Authorization: "Bearer " + env.ADMIN_KEY, "Content-Type": "application/json" },
      body: JSON.stringify({ jti: "node-1", expires_at: env.EXPIRES_AT }),
    });
    check(res.status === 201, `revoke status ${res.status}`);
    const revoked = await rec.next("notification:error", (e) => e.code === "revoked");
    check(revoked.code === "revoked", "revoked error");
    const reason2 = await rec.next("disconnect");
    check(reason2 === "io server disconnect", `second disconnect: ${reason2}`);
    for (let i = 0; i < 3; i++) sent.push(await publish("omar", "revoked"));
    socket.auth = { token: env.TOKEN2, since: socket.auth.since };
    socket.connect();
    await rec.next("connect");
    await waitUntil(() => got.length >= 9, "resumed with the new token");
    await new Promise((r) => setTimeout(r, 300)); // anything extra would be a duplicate
    check(JSON.stringify(got) === JSON.stringify(sent), `received ${JSON.stringify(got)}, sent ${JSON.stringify(sent)}`);
    check(rec.count("disconnect") === 2, `disconnects ${rec.count("disconnect")}`);
    socket.disconnect();
    log(`resume: ${got.length} notifications, none lost, none twice`);
  },

  // Revocations that land while the default transports upgrade (the
  // client's GET is held until "3probe" settles): each socket still gets
  // notification:error, then exactly one disconnect, "io server
  // disconnect". TOKENS is a JSON array of {token, jti}; the i-th waits
  // i % 5 ms after ready, to hit the steps of the upgrade.
  async revokeupgrade() {
    const tokens = JSON.parse(env.TOKENS);
    let polling = 0;
    for (const [i, { token, jti }] of tokens.entries()) {
      const socket = io(NSP, { auth: { token }, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
      const rec = recorder(socket);
      await rec.next("ready");
      await new Promise((r) => setTimeout(r, i % 5));
      if (socket.io.engine.transport.name === "polling") polling++;
      const res = await fetch(URL + "/v1/admin/revocations", {
        method: "POST",
        headers: { Authorization: "Bearer " + env.ADMIN_KEY, "Content-Type": "application/json" },
        body: JSON.stringify({ jti, expires_at: env.EXPIRES_AT }),
      });
      check(res.status === 201, `revoke status ${res.status}`);
      const err = await rec.next("notification:error");
      check(err.code === "revoked", `#${i}: error ${JSON.stringify(err)}`);
      const reason = await rec.next("disconnect");
      check(reason === "io server disconnect", `#${i}: disconnect ${reason}`);
      await new Promise((r) => setTimeout(r, 100)); // a second disconnect would show here
      check(rec.count("disconnect") === 1, `#${i}: ${rec.count("disconnect")} disconnects`);
      socket.close();
    }
    log(`revoked ${tokens.length} sockets, ${polling} of them still on polling: error, then one disconnect each`);
  },

  // Open and close many sockets: exactly one disconnect each, on both sides.
  async many() {
    const total = Number(env.SOCKETS || 2000);
    const batch = 100;
    let connects = 0;
    let disconnects = 0;
    for (let done = 0; done < total; done += batch) {
      const sockets = [];
      const ready = [];
      for (let i = 0; i < Math.min(batch, total - done); i++) {
        // Every tenth socket starts on polling and upgrades; the rest are websocket-only.
        const transports = env.MANY_TRANSPORTS ? JSON.parse(env.MANY_TRANSPORTS) : (done + i) % 10 === 0 ? undefined : ["websocket"];
        const s = io(NSP, { auth: { token: env.TOKEN }, transports, forceNew: true, reconnection: false, timeout: 60000 });
        const dbg = { port: null, upgrade: false, open: false, msgs: 0 };
        const ws = s.io.engine?.transport?.ws;
        if (ws && ws.on) {
          ws.on("upgrade", () => { dbg.upgrade = true; dbg.port = ws._socket?.localPort; });
          ws.on("open", () => { dbg.open = true; dbg.port = ws._socket?.localPort; });
          ws.on("message", () => { dbg.msgs++; });
          ws.on("close", (code) => { dbg.close = code; });
        }
        s.dbg = dbg;
        s.once("ready", () => { dbg.ready = true; });
        s.io.on("close", (r) => { dbg.mclose = r; });
        s.io.engine.on("close", (r, d) => { dbg.eclose = r + " " + (d?.message || d?.description || ""); });
        s.on("connect", () => connects++);
        s.on("disconnect", () => disconnects++);
        const idx = done + i;
        ready.push(new Promise((resolve, reject) => {
          s.once("ready", resolve);
          s.once("connect_error", (e) => reject(new Error(`socket ${idx} (${transports || "default"}): ${e.message}; engine ${s.io.engine?.readyState} id ${s.io.engine?.id} ws ${JSON.stringify(s.dbg)}`)));
        }));
        sockets.push(s);
      }
      let timer;
      await Promise.race([Promise.all(ready), new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("batch stuck: " + JSON.stringify(sockets.filter((s) => !s.dbg.ready).map((s) => s.dbg)))), 40000);
      })]);
      clearTimeout(timer);
      for (const s of sockets) s.disconnect();
      if ((done / batch) % 5 === 0) log(`${done + sockets.length} sockets opened and closed`);
    }
    check(connects === total, `connects ${connects}`);
    check(disconnects === total, `client disconnects ${disconnects}`);
    let closed = "";
    for (let i = 0; i < 200; i++) {
      closed = await control("/closed");
      if (Number(closed) >= total) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    check(Number(closed) === total, `server-side disconnects ${closed}`);
    log(`${total} sockets: ${connects} connects, ${disconnects} client disconnects, ${closed} server disconnects`);
  },
};

// Topics and live events: subscribe/unsubscribe with acks, a forbidden
// topic, and a live event emitted under its own type with its data as the
// payload, as handlers written for a Socket.IO gateway expect
// (socket.on("order:updated", (data) => …)). TOKEN carries topics
// ["project.*"].
scenarios.topics = async function topics() {
  for (const transports of [["websocket"], ["polling"]]) {
    const name = transports.join();
    const socket = io(NSP, { auth: { token: env.TOKEN }, transports, forceNew: true, reconnection: false });
    const rec = recorder(socket);
    const orders = [];
    socket.on("order:updated", (data, meta) => orders.push({ data, meta }));
    await rec.next("connect");
    await rec.next("ready");
    let ack = await socket.timeout(10000).emitWithAck("subscribe", { topics: ["project.42"] });
    check(ack && ack.ok === true, `${name}: subscribe ack ${JSON.stringify(ack)}`);
    ack = await socket.timeout(10000).emitWithAck("subscribe", { topics: ["admin.1"] });
    check(ack && ack.ok === false && ack.code === "forbidden", `${name}: forbidden ack ${JSON.stringify(ack)}`);
    ack = await socket.timeout(10000).emitWithAck("subscribe", { topics: ["bad name"] });
    check(ack && ack.ok === false && ack.code === "invalid_message", `${name}: invalid ack ${JSON.stringify(ack)}`);

    const id = await publishLive({ topics: ["project.42"] }, "order:updated", { id: 7, status: "shipped" });
    await waitUntil(() => orders.length === 1, `${name}: order:updated`);
    const { data, meta } = orders[0];
    check(data.id === 7 && data.status === "shipped", `${name}: data ${JSON.stringify(data)}`);
    check(meta.id === id && meta.topic === "project.42" && meta.type === "order:updated" && meta.data === undefined,
      `${name}: meta ${JSON.stringify(meta)}`);

    ack = await socket.timeout(10000).emitWithAck("unsubscribe", { topics: ["project.42"] });
    check(ack && ack.ok === true, `${name}: unsubscribe ack ${JSON.stringify(ack)}`);
    await publishLive({ topics: ["project.42"] }, "order:updated", { id: 8 });
    await publishLive({ users: ["tia"] }, "job:progress", { pct: 50 });
    const progress = await rec.next("job:progress");
    check(progress.pct === 50, `${name}: job:progress ${JSON.stringify(progress)}`);
    check(orders.length === 1, `${name}: an event of a topic left arrived`);
    check(rec.count("notification") === 0 && rec.count("unread") === 0, `${name}: a live event looked stored`);
    socket.disconnect();
    log(`${name}: subscribe, forbidden, emit by type, unsubscribe ok`);
  }
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.log("unknown scenario", name);
  process.exit(2);
}
scenarios[name]().then(
  () => process.exit(0),
  (err) => {
    console.log("FAIL:", err.message);
    process.exit(1);
  },
);
