// Connect→ready and connect→upgraded latency of socket.io-client with its
// default transports (polling, then the WebSocket upgrade), one socket at a
// time: HERALD_URL=… SECRET=<jwt secret> N=100 node readyupgrade.mjs
import { io } from "socket.io-client";
import crypto from "node:crypto";
const URL = process.env.HERALD_URL, SECRET = process.env.SECRET;
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
function tok() {
  const h = b64({ alg: "HS256", typ: "JWT" }), p = b64({ sub: "lat", tenant_id: "acme", exp: Math.floor(Date.now() / 1000) + 3600 });
  return h + "." + p + "." + crypto.createHmac("sha256", SECRET).update(h + "." + p).digest("base64url");
}
const N = Number(process.env.N || 100), lat = [], upg = [];
for (let i = 0; i < N; i++) {
  const t0 = performance.now();
  const s = io(URL + "/notifications", { auth: { token: tok() }, forceNew: true, reconnection: false });
  await new Promise((r) => s.once("ready", r));
  lat.push(performance.now() - t0);
  if (s.io.engine.transport.name !== "websocket") await new Promise((r) => s.io.engine.once("upgrade", r));
  upg.push(performance.now() - t0);
  s.close();
}
const q = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))].toFixed(1);
console.log(`ready ms p50 ${q(lat, 0.5)} p90 ${q(lat, 0.9)} max ${q(lat, 1)} | upgraded ms p50 ${q(upg, 0.5)} p90 ${q(upg, 0.9)} max ${q(upg, 1)}`);
