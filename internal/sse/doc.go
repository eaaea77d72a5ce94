// Package sse is Herald's Server-Sent Events transport: GET /v1/me/stream
// serves a user's notification stream as text/event-stream, and
// POST /v1/me/stream-tickets issues the single-use tickets with which a
// browser's EventSource (which cannot set an Authorization header)
// authenticates without putting a JWT in a URL.
//
// # Wire format
//
// A stream starts with "retry: <ms>" advice, then one event per hub frame:
//
//	id: <position>                 notifications only, so Last-Event-ID is
//	event: notification            always the last notification's position
//	data: {"id":…,"position":"<position>"}
//
//	event: ready | read | deleted | unread | resync
//	data: <the same JSON object as the WebSocket frame's payload>
//
// Every data value is JSON on a single line: encoding/json escapes CR and
// LF inside strings, and any stray CR/LF byte is replaced, so payload text
// can never end a line, add a field or dispatch a forged event. ": hb"
// comment lines are heartbeats. Before the server ends a stream it sends
// "event: close" with data {"code":<code>,"reason":"<label>"} (the codes and
// labels of hub.CloseReason); on shutdown it also sends a jittered "retry:"
// so that reconnects spread out. A client resumes with the Last-Event-ID
// header (which EventSource sends by itself) or ?since=; Last-Event-ID wins
// when both are present, since EventSource keeps the original URL.
//
// # Two stream engines
//
// On plain HTTP/1.x the handler authenticates, then hijacks the connection,
// writes the response head itself (close-delimited body: no
// Content-Length, "Connection: close") and hands the socket to an nbio
// poller. An idle stream then costs no goroutine and no bufio buffers:
// events are written straight to the socket, and only bytes the kernel does
// not take are held, by nbio, counted against WriteBufferBytes. One
// goroutine (loop) sends heartbeats and enforces the write timeout for all
// of these streams. Where hijacking is impossible (HTTP/2, TLS terminated in
// Go, DisableHijack) the handler goroutine serves the stream itself with
// http.ResponseController: one select over the request context, server
// shutdown, heartbeat ticker, queued events and close, with a write deadline
// on every write. Neither is bound by the http.Server's WriteTimeout.
//
// # Admission and protocol
//
// A stream request is counted and admitted by internal/admission like
// every other connection: the node-wide, per-IP and per-user caps are
// shared with the other transports, and every refusal is an HTTP error
// (session.HTTPErrors), never a stream. The credentials are checked before
// admission, so the handshake rate and the unauthenticated cap never apply.
// Each stream is a session.Session whose transport (stream or pipe)
// encodes hub frames as events; it carries no requests, so its Reply does
// nothing.
//
// # Concurrency
//
// Server is safe for concurrent use; its fields are static after New
// except where noted. A stream's hub.Sender methods (Send, Close) may be
// called from any goroutine (the hub calls Send with its client lock held)
// and never block:
// Send appends to the bounded outbound buffer or fails (the hub then closes
// the client as a slow consumer), Close is idempotent. A hijacked stream
// has no lock of its own: its state (closing, bytes queued, last write
// progress, gone) is atomic, and it never calls into the hub from Send or
// Close. nbio callbacks (OnData, OnClose, OnWrittenSize) run on the poller
// goroutine and do not block; a close decided inside OnWrittenSize (which
// runs under the connection's write lock) is finished on another
// goroutine, and so is the end of a stream's session and the release of
// its admission slot (they may wait on Redis), which Shutdown waits for. A
// stream served by its handler goroutine (pipe) has one mutex, guarding its
// buffer: it is taken inside Send and Close, so the lock order is the hub
// client's lock, then pipe.mu, and pipe.mu is never held while calling
// into the hub or the session.
//
// The in-memory ticket store has its own mutex and no goroutine: expired
// tickets are swept, amortised, when tickets are issued. With Redis
// (Config.Tickets: RedisTickets), tickets live there instead, so that any
// node redeems them, and in memory only while Redis does not answer.
package sse
