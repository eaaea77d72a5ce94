// Package client is Herald's Go SDK for backends: it publishes
// notifications (one, or a batch in one durable write) and revokes users and
// tokens through Herald's HTTP API (docs/openapi.yaml).
//
//	c := client.New("https://herald.example.com", os.Getenv("HERALD_API_KEY"))
//	id, err := c.Publish(ctx, client.Notification{
//		Tenant: "acme",
//		To:     client.ToUsers("alice"),
//		Type:   "invoice.paid",
//		Title:  "Invoice paid",
//	})
//
// # Retries and idempotency
//
// Every publish carries an Idempotency-Key: the one given with
// [IdempotencyKey], or a random one generated for that call. The key and
// the request body are the same on every attempt of the call, so a retry can
// never store a notification twice: Herald answers a repeated request with
// the first one's ids.
//
// A call is retried, with exponential backoff and full jitter, when Herald
// answers 429 (rate_limited) or 503 (unavailable), and when the request
// fails on the network (every call of this package is idempotent: publishes
// through their key, revocations by their nature). A Retry-After header is
// honoured: the next attempt waits at least that long. No other status is
// retried: a 4xx other than 429 is the caller's to fix. See [RetryPolicy].
//
// # Errors
//
// An error answer of Herald is an [*Error] with the HTTP status, the code
// of Herald's error catalogue (docs/protocol.md, Errors), the generic message
// and the correlation id under which the server logged the details. Use
// errors.As to get it. A network failure comes back as the underlying
// error, wrapped with the operation; so does the context's error when it
// ends during a request. When retries run out, a Retry-After is too long,
// or the context ends (or its deadline would pass) while a call waits to
// retry, the call returns the last attempt's error.
//
// # Concurrency
//
// A [Client] is immutable after [New] and safe for concurrent use by many
// goroutines; share one per process. Each call may block for its retries,
// bounded by its context.
package client
