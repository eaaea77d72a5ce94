// Package webhook sends Herald's webhooks (user.online, user.offline,
// notification.unseen, notification.read) following the Standard Webhooks
// specification, from the durable outbox in the store.
//
// Signing (Signer) is separate from sending so that any outgoing call of
// Herald can be signed the same way. Sending (Service) claims due outbox
// rows under a lease, posts each to its tenant's endpoint (or the global
// one) with at most PerEndpoint requests in flight per endpoint, and then
// deletes the row (2xx) or puts it back with an exponential, jittered
// delay, until RetryWindow after the event; the webhook-id stays the same
// on every attempt. The HTTP client refuses link-local and cloud-metadata
// addresses at dial time, follows no redirect, times out each attempt and
// reads at most MaxResponseBody of a response.
//
// Publishing never waits for a webhook: events are rows in the store, and
// the sender is its own goroutines.
//
// Concurrency: a Service is safe for concurrent use after New. Start runs
// its loops (the claim loop, the endpoint refresher, the backlog gauge);
// Close stops them and waits for attempts in flight.
package webhook
