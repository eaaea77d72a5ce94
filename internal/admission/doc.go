// Package admission is the one admission layer of a node: every transport
// (WebSocket, SSE, Socket.IO), the publish API and the user API ask it
// whether a new connection or request may go ahead. It owns:
//
//   - the node-wide connection cap, counted across all transports;
//   - the per-IP and per-user connection caps, the handshake rate for
//     unauthenticated handshakes and the cap on unauthenticated sockets;
//   - the per-user request rate and the per-key publish rate;
//   - the one client-IP rule (proxy headers are trusted only from
//     Config.TrustedProxies) and the one limiter key scheme (UserKey, IPKey);
//   - per-transport accounting of attempts, refusals, opens and failures,
//     for metrics and GET /v1/admin/stats.
//
// A Controller is safe for concurrent use; its configuration is static
// after New. A Slot belongs to one connection: its methods are safe to call
// from any goroutine, and Release is idempotent.
package admission
