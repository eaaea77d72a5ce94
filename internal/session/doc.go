// Package session owns a client's protocol, once for every transport:
// authentication and in-band token refresh, the request set (Name),
// validation (Parse), per-user rate limits and in-flight caps, dispatch to
// the inbox, replies and acknowledgements (Reply), and the typed error
// catalogue (Code). Transports (internal/ws, internal/socketio,
// internal/sse) only decode their wire into requests, encode replies and
// hub frames onto their wire, write and close; the REST user API runs the
// same requests through Core.Do.
//
// This is centrifuge's split (one Client owns the protocol; transports
// implement a small writer interface), kept small: Core holds what every
// connection of a node shares, Session is one connection's protocol state.
//
// Concurrency: Core is immutable after New and safe for concurrent use.
// A Session's methods are safe to call from any goroutine; Handle and
// Authenticate may block (token verification, Redis limiters) and must not
// be called from a poller callback. Requests that reach the inbox run on a
// goroutine of their own, at most Config.MaxInflight per session, and reply
// through Transport.Reply from that goroutine.
package session
