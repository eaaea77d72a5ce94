package notification

import "time"

// EventKind says what changed.
type EventKind uint8

const (
	// EventNotification: a notification was committed.
	EventNotification EventKind = iota + 1
	// EventRead: notifications were marked read by one user.
	EventRead
	// EventDeleted: a notification was deleted by one user.
	EventDeleted
	// EventRevoke: a user's connections must be closed (security issue).
	EventRevoke
	// EventLift: a user revocation was lifted; every node forgets it.
	EventLift
	// EventExpired: notifications expired and were removed. For
	// explicit-user notifications the event concerns one user (User, IDs:
	// that user's expired ones); for a broadcast, one notification
	// (Notification: its id and audience, User empty). It carries no unread
	// count: the hub recounts for the connections concerned.
	EventExpired
	// EventLive: an ephemeral event (Live), never stored: the hub writes it
	// to the clients it concerns that are connected now, without positions.
	EventLive
)

// Delivery is one named recipient of an explicit-user notification, with the
// sequence it got in that user's stream and the user's unread count after it.
type Delivery struct {
	User   string
	Seq    int64
	Unread int64
}

// Event is a committed change, published by the writer after commit and
// delivered by every node's hub to the connections it concerns. Events are
// produced by the store (which knows sequences and counts) and are immutable
// once published: hubs share them between goroutines.
type Event struct {
	Kind   EventKind
	Tenant string

	// EventNotification.
	Notification *Notification
	Deliveries   []Delivery // explicit-user audiences
	TenantSeq    int64      // broadcast audiences

	// EventRead, EventDeleted, EventRevoke, EventLift, EventExpired: the
	// user concerned.
	User string
	// EventRead: the ids that became read (empty with All); EventDeleted: one
	// id; EventExpired: the expired ids.
	IDs []string
	All bool
	// EventRead, EventDeleted: the user's unread count after the change.
	Unread int64

	// EventRevoke: a user revocation (User set) or a token revocation
	// (TokenID set, Tenant and User empty). RevokedAt is when it was made;
	// RevokedUntil is when a token revocation expires.
	TokenID      string
	RevokedAt    time.Time
	RevokedUntil time.Time

	// EventLive: the event (Tenant is Live.Tenant).
	Live *Live
}
