// Package auth authenticates Herald's two kinds of callers.
//
// Subscribers (browsers, apps) present a JWT, checked by a [Verifier] against
// an HMAC secret, a PEM public key file and/or a remote JWKS endpoint, and
// mapped onto a [Principal] (user, tenant, role). Backends that publish
// present an API key, checked by a [Keyring] that holds only SHA-256 hashes.
//
// Rejections carry a [Reason] (see [TokenError] and [ReasonOf]) that is safe
// to use as a log attribute or metric label; the wrapped detail is for debug
// logs only and never contains the token.
//
// # Concurrency
//
// [Verifier] and [Keyring] are safe for concurrent use by multiple goroutines.
// Both are immutable after construction, with one exception: a Verifier
// configured with a JWKS URL keeps a key cache that a background goroutine
// refreshes (periodically, and on demand for an unknown "kid", rate limited).
// That goroutine lives until the context given to [NewVerifier] is cancelled.
// The package has no global state.
package auth
