// Package socketio is Herald's Socket.IO-compatible endpoint: Engine.IO
// protocol v4 (HTTP long-polling, WebSocket, and the upgrade from one to the
// other) with Socket.IO protocol v5 on top, so that frontends written for a
// Socket.IO gateway (socket.io-client v4: io(url + "/notifications",
// {auth: {token}})) connect unchanged. It is a thin adapter: each connected
// namespace socket is one session.Session (and so one hub client), whose
// transport (socket) implements session.Transport. The request set, its
// validation, the per-user rate and in-flight limits, the replies and the
// error codes are internal/session's, the same as /v1/ws; the auth deadline
// is session.Config's. Sessions are counted and admitted by
// internal/admission together with the other transports' connections
// (node-wide, per-IP and per-user caps, the handshake rate, the
// unauthenticated cap); this package's Config holds only the Engine.IO and
// Socket.IO settings.
//
// # Protocol mapping
//
//   - Handshake: GET /socket.io/?EIO=4&transport=polling (open packet in the
//     body) or transport=websocket (open packet in the first frame). The open
//     packet carries sid, upgrades, pingInterval, pingTimeout, maxPayload.
//   - CONNECT to "/" or "/notifications" with auth {token, since}, or with the
//     handshake's "Authorization: Bearer" header. A bad token gets
//     CONNECT_ERROR {"message":"unauthorized"}; an unknown namespace
//     {"message":"Invalid namespace"}. since resumes after a position (the
//     "position" of the last notification received), exactly as /v1/ws.
//   - Server events: ready, notification, notification:read,
//     notification:deleted, unread, resync (the /v1/ws payloads), and
//     notification:error {code, message}.
//   - Client events: the /v1/ws requests, named like them (session.Name):
//     notification:mark-read {id} or {ids}, notification:delete {id},
//     notification:mark-all-read, notification:list {before, limit, unread},
//     notification:unread-count, ping, auth {token, since} (a refresh; since
//     is ignored). With an ack callback the reply is the ack ({"ok":true},
//     {"ok":false,"code"…}, plus the page for list, the count for
//     unread-count); without one, errors come as notification:error, and a
//     page or a count as an event named like the request.
//   - Close reasons: a notification:error {code: <reason label>} first, then
//     either a DISCONNECT of the namespace (unauthorized, revoked,
//     policy_violation, limit_exceeded: socket.io-client does not reconnect)
//     or the close of the transport (every other reason: the client's Manager
//     reconnects and CONNECTs again with its auth, since included).
//
// # Concurrency contract
//
// The endpoint runs no goroutine per idle session. WebSocket connections
// belong to an nbio poller, which runs nbio's own frame handling (control
// frames, the close handshake) inline; our message callback only copies the
// message and queues it on the session's worker, a goroutine that exists
// while the session has queued work and exits when it has none. The worker
// handles packets in order and may wait (verifier, hub, a remote limiter);
// requests to the inbox run in their own goroutine, at most
// session.Config.MaxInflight per socket. A polling GET waits in its net/http
// handler goroutine until there is something to send; a POST is handled in
// its own. One sweeper goroutine runs every session's deadlines (heartbeat,
// auth deadline, upgrade timeout, close grace) on a tick.
//
// Sockets are closed by the poller whenever the peer may still be active
// (close frame first, TCP close by the client, a CloseGrace backstop), and
// the upgrade holds syscall.ForkLock while nbio dups the socket and marks the
// copy close-on-exec. Both avoid nbio keeping events for an fd number that a
// later connection reuses (see websocket.go).
//
// Each session has two locks. session.in serializes inbound packets — the
// worker's WebSocket messages, POST bodies — and is held while a packet is
// handled, including calls into the verifier and the hub.
// session.mu guards the transports, the sockets, the deadlines and every
// write; it is held only for non-blocking work and never while calling into
// the hub or the protocol session. The hub calls Send with its client lock
// held, and Send and Close take session.mu, so the lock order is
// in → hub → mu. A socket's Close gives its per-user slot back
// (session.Session.End, which may wait on Redis) after releasing mu.
//
// An idle WebSocket session holds its session (160 bytes), a socket per
// connected namespace (128, the protocol session embedded), its transport
// (48) and a registry entry keyed by the sid's 16 bytes: no goroutine and
// no buffer. With header auth it also keeps the handshake's token, packed
// (token.go), to verify again at each CONNECT that carries none.
//
// Closing is idempotent at each level: a socket's Close runs once (atomic),
// the hub closes each client once (so each socket sees exactly one
// disconnect), and a session closes once (state under mu), then is finalized
// once — unregistered, its admission slot released and its transports
// dropped —
// either at once (the client is gone) or after its last packets left, within
// CloseGrace.
//
// # Multi-node
//
// WebSocket sessions need no affinity: any node accepts them. Polling
// sessions live in the memory of the node that made them, so a load balancer
// must route every request carrying a given sid (the query parameter) to the
// same node — sticky sessions on sid, or on a cookie set from it — until the
// client upgrades to WebSocket.
package socketio
