package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
)

// The ephemeral path: "ephemeral": true on POST /v1/notifications. It
// shares the request's authentication, rate limit and decoding with the
// stored path (publish.go) and nothing after: no store, no position, no
// unread count. The event is handed to the broker and the request answered
// 202 Accepted once the broker took it; delivery is at most once, to the
// clients connected at that moment.

// LivePublisher hands a live event to the broker (every node's hub).
type LivePublisher interface {
	PublishLive(ctx context.Context, l *notification.Live) error
}

// LiveDedupe remembers the Idempotency-Keys of live events for a short
// window. Claim records key (scoped to the API key) with the request's hash
// and the event's id; when the key is already held it returns the id it
// was first used with and replay true, or ErrLiveKeyReused for another
// request. Release forgets a claim whose publish failed, so that a retry
// can publish.
type LiveDedupe interface {
	Claim(ctx context.Context, scope, key, hash, id string) (firstID string, replay bool, err error)
	Release(ctx context.Context, scope, key string)
}

// ErrLiveKeyReused is LiveDedupe.Claim's answer to a key used with another
// request within the window.
var ErrLiveKeyReused = errors.New("api: idempotency key reused with a different live event")

// Limits of a live event.
const (
	// MaxTopicsPerPublish bounds to.topics.
	MaxTopicsPerPublish = 100
	// DefaultLiveIdempotencyWindow is how long a live event's
	// Idempotency-Key is remembered.
	DefaultLiveIdempotencyWindow = 5 * time.Minute
)

// reservedEventTypes are names a live event may not have: Socket.IO emits
// a live event under its type, so these would collide with the client
// library's own events (connect, disconnect, …) or with Herald's frames
// and replies (notification, unread, …). The request names of the
// protocol (session.Names) are reserved too.
var reservedEventTypes = []string{
	"connect", "connect_error", "disconnect", "disconnecting", "error", "message",
	"newListener", "removeListener", "reconnect", "reconnect_attempt", "reconnect_error", "reconnect_failed", "ping", "pong",
	"ready", "notification", "notification:read", "notification:deleted", "notification:error", "unread", "resync",
	"event", "ack",
}

// ReservedEventType reports whether t may not be a live event's type.
func ReservedEventType(t string) bool {
	if slices.Contains(reservedEventTypes, t) {
		return true
	}
	_, isRequest := session.Lookup(t)
	return isRequest
}

// live answers the request when its body asks for a live event, and
// reports whether it did. A body that does not name "ephemeral" is a
// stored notification. it and parsed are parseItem's result for body.
func (a *API) live(w http.ResponseWriter, r *http.Request, key auth.APIKey, body []byte, ikey string, it *publishItem, parsed error) bool {
	if !bytes.Contains(body, []byte(`"ephemeral"`)) {
		return false
	}
	if parsed == nil && !it.ephemeral() {
		return false
	}
	if parsed != nil { // does the body ask for a live event all the same?
		var probe struct {
			Ephemeral *bool `json:"ephemeral"`
		}
		if json.Unmarshal(body, &probe) != nil || probe.Ephemeral == nil || !*probe.Ephemeral {
			return false // the stored path reports what is wrong with it
		}
	}
	err := parsed
	if err == nil {
		err = it.scope(key)
	}
	if errors.Is(err, errForbidden) {
		a.cfg.Audit.Warn(audit.Forbidden, "api key used outside its tenant", "key_id", key.ID, "ip", a.adm.ClientIP(r))
		a.keyErrs.Fail(w, r, session.CodeForbidden, "this API key may not publish to that tenant", err, "key_id", key.ID)
		return true
	}
	var l *notification.Live
	if err == nil {
		l, err = toLive(it)
	}
	if err != nil {
		a.keyErrs.Fail(w, r, session.CodeInvalidRequest, clientMessage(err, "invalid live event"), err, "key_id", key.ID)
		return true
	}
	a.publishLive(w, r, key, l, ikey, body)
	return true
}

func (a *API) publishLive(w http.ResponseWriter, r *http.Request, key auth.APIKey, l *notification.Live, ikey string, body []byte) {
	if a.cfg.Live == nil {
		a.keyErrs.Fail(w, r, session.CodeUnavailable, "live events are not enabled on this server", nil, "key_id", key.ID)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PublishTimeout)
	defer cancel()
	l.ID, l.CreatedAt = ulid.Make().String(), time.Now().UTC()
	if ikey != "" {
		first, replay, err := a.cfg.LiveDedupe.Claim(ctx, key.ID, ikey, requestHash(r.URL.Path, "\nlive\n", body), l.ID)
		switch {
		case errors.Is(err, ErrLiveKeyReused):
			a.keyErrs.Fail(w, r, session.CodeIdempotencyMismatch, "Idempotency-Key was used with a different request", err, "key_id", key.ID)
			return
		case err != nil:
			w.Header().Set("Retry-After", "1")
			a.keyErrs.Fail(w, r, session.CodeUnavailable, "the Idempotency-Key could not be checked; retry", err, "key_id", key.ID)
			return
		case replay:
			w.Header().Set("Idempotent-Replayed", "true")
			writeAccepted(w, first)
			return
		}
	}
	if err := a.cfg.Live.PublishLive(ctx, l); err != nil {
		if ikey != "" {
			a.cfg.LiveDedupe.Release(context.WithoutCancel(ctx), key.ID, ikey)
		}
		w.Header().Set("Retry-After", "1")
		a.keyErrs.Fail(w, r, session.CodeUnavailable, "the broker did not accept the live event; it was not delivered, retry", err, "key_id", key.ID)
		return
	}
	writeAccepted(w, l.ID)
}

// writeAccepted answers 202 {"id":"…","ephemeral":true}.
func writeAccepted(w http.ResponseWriter, id string) {
	b := make([]byte, 0, 64)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	session.WriteJSONBytes(w, http.StatusAccepted, append(b, "\",\"ephemeral\":true}\n"...))
}

// toLive validates a live event.
func toLive(it *publishItem) (*notification.Live, error) {
	l := &notification.Live{Tenant: it.Tenant, Type: it.Type, Title: it.Title, Body: it.Body}
	if it.To != nil && it.To.Topics != nil {
		if it.To.Users != nil || it.To.Tenant != nil || it.To.Role != nil {
			return nil, shown("to needs exactly one of users, tenant, role, topics")
		}
		topics, err := session.ParseTopics(it.To.Topics)
		if err != nil || len(topics) > MaxTopicsPerPublish {
			return nil, shown("to.topics must hold 1..%d names matching [A-Za-z0-9._:-]{1,128}", MaxTopicsPerPublish)
		}
		l.Topics = topics
	} else {
		aud, err := it.To.audience()
		if err != nil {
			return nil, err
		}
		if aud.Kind == notification.AudienceUsers {
			aud.Users = dedupe(aud.Users) // one frame per connection, however often a user is named
		}
		l.Audience = aud
	}
	if !notification.ValidType(l.Type) {
		return nil, shown("type missing or malformed")
	}
	if ReservedEventType(l.Type) {
		return nil, shown("type %q is reserved (Socket.IO clients receive a live event under its type)", l.Type)
	}
	if len(l.Title) > notification.MaxTitleLen || !utf8.ValidString(l.Title) {
		return nil, shown("title too long")
	}
	if !notification.ValidBody(l.Body) {
		return nil, shown("body too long")
	}
	if it.ExpiresAt != nil {
		return nil, shown("expires_at has no meaning for a live event (it is never stored)")
	}
	data, err := it.checkedData()
	if err != nil {
		return nil, err
	}
	l.Data = data
	return l, nil
}

func dedupe(list []string) []string {
	seen := make(map[string]struct{}, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
