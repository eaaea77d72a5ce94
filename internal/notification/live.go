package notification

import (
	"encoding/json"
	"time"
)

// Live is an ephemeral event ("ephemeral": true on a publish): it goes from
// the publish API through the broker to the hubs and to the clients
// connected right now, and nowhere else. It is never stored, has no
// position in any stream, changes no unread count and is delivered at most
// once. Notifications (Notification, Item) are the opposite on every count;
// the two never share a code path below the publish API's decoding.
type Live struct {
	ID     string // a ULID, so that clients can drop a duplicate they saw
	Tenant string
	// Audience is users, tenant or role; its Kind is zero when Topics is set.
	Audience Audience
	// Topics: the event goes to the clients subscribed to any of them (each
	// client gets it once).
	Topics    []string
	Type      string
	Title     string // optional
	Body      string // optional
	Data      json.RawMessage
	CreatedAt time.Time
}

// ForTopics reports whether the event targets topics.
func (l *Live) ForTopics() bool { return len(l.Topics) > 0 }
