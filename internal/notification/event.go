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
	// EventSeen: one user marked their inbox seen up to a position; Unseen
	// is their unseen count after it.
	EventSeen
	// EventArchived, EventUnarchived: one user archived or unarchived IDs
	// (or everything, All).
	EventArchived
	EventUnarchived
	// EventPreferences: one user's preferences changed (Prefs).
	EventPreferences
	// EventLive: an ephemeral event (Live), never stored: the hub writes it
	// to the clients it concerns that are connected now, without positions.
	EventLive
)

// LastEventKind is the largest EventKind (codecs check against it).
const LastEventKind = EventPreferences

// Delivery is one named recipient of an explicit-user notification, with the
// sequence it got in that user's stream and the user's unread count after it.
type Delivery struct {
	User   string
	Seq    int64
	Unread int64
	// Replaces is the id of the user's earlier notification with the same
	// collapse key that this one replaced ("" for none). ReplacedUnread and
	// ReplacedUnseen say whether that one counted as unread and as unseen.
	Replaces       string
	ReplacedUnread bool
	ReplacedUnseen bool
}

// Preferences are a user's inbox preferences: what never reaches them.
type Preferences struct {
	MutedCategories []string
	MutedTypes      []string
}

// Empty reports whether p mutes nothing.
func (p Preferences) Empty() bool { return len(p.MutedCategories) == 0 && len(p.MutedTypes) == 0 }

// Mutes reports whether p mutes a notification of category and typ.
func (p Preferences) Mutes(category, typ string) bool {
	for _, c := range p.MutedCategories {
		if c == category {
			return true
		}
	}
	for _, t := range p.MutedTypes {
		if t == typ {
			return true
		}
	}
	return false
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
	// EventRead, EventDeleted, EventArchived, EventUnarchived, EventSeen:
	// the user's unread and unseen counts after the change, and the unread
	// count by category (nil: not known).
	Unread     int64
	Unseen     int64
	ByCategory map[string]int64
	// EventPreferences: the user's preferences after the change.
	Prefs *Preferences

	// EventRevoke: a user revocation (User set) or a token revocation
	// (TokenID set, Tenant and User empty). RevokedAt is when it was made;
	// RevokedUntil is when a token revocation expires.
	TokenID      string
	RevokedAt    time.Time
	RevokedUntil time.Time

	// EventLive: the event (Tenant is Live.Tenant).
	Live *Live
}

// Counts are a recipient's inbox counters, as the store reads them.
type Counts struct {
	// Unread: unread, unarchived notifications (without the broadcasts of
	// the categories the recipient muted).
	Unread int64
	// Unseen: unarchived notifications after the recipient's seen mark
	// (read or not). Broadcasts count up to a cap (store.MaxUnseenBroadcasts).
	Unseen int64
	// ByCategory: Unread by category, for the categories with unread
	// notifications only; never nil from a store read.
	ByCategory map[string]int64
	// Prefs are the recipient's preferences the counts apply (a live
	// connection also skips the broadcasts they mute).
	Prefs Preferences
}
