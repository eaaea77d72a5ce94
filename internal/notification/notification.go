// Package notification holds Herald's domain vocabulary: a notification, its
// audience, a recipient, a position in a recipient's stream and the events that
// flow from the store to the hub. It has no behaviour beyond validation and
// encoding of these values, so every other package can depend on it.
package notification

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AudienceKind says who a notification is for.
type AudienceKind uint8

const (
	// AudienceUsers targets an explicit list of users in one tenant.
	AudienceUsers AudienceKind = iota + 1
	// AudienceTenant targets every user of a tenant, including users who connect later.
	AudienceTenant
	// AudienceRole targets every user of a tenant whose role claim equals Role.
	AudienceRole
)

func (k AudienceKind) String() string {
	switch k {
	case AudienceUsers:
		return "users"
	case AudienceTenant:
		return "tenant"
	case AudienceRole:
		return "role"
	}
	return "unknown"
}

// Audience is the target of a notification.
type Audience struct {
	Kind  AudienceKind
	Users []string // AudienceUsers only
	Role  string   // AudienceRole only
}

// Broadcast reports whether the audience is resolved at read time (tenant or
// role) rather than at write time (explicit users).
func (a Audience) Broadcast() bool { return a.Kind == AudienceTenant || a.Kind == AudienceRole }

// Matches reports whether a broadcast audience includes a user with role.
func (a Audience) Matches(role string) bool {
	switch a.Kind {
	case AudienceTenant:
		return true
	case AudienceRole:
		return role != "" && a.Role == role
	}
	return false
}

// Key is the counter key of a broadcast audience: "*" for the whole tenant,
// "role:<name>" for a role. Explicit-user audiences have no key.
func (a Audience) Key() string {
	switch a.Kind {
	case AudienceTenant:
		return "*"
	case AudienceRole:
		return "role:" + a.Role
	}
	return ""
}

// Draft is a notification as a publisher asks for it, before it has an id.
type Draft struct {
	Tenant    string
	Audience  Audience
	Type      string
	Title     string
	Body      string
	Data      json.RawMessage // a JSON object, or nil
	ExpiresAt time.Time       // zero: never
	// Category groups notifications into inbox tabs and counts
	// (ValidCategory); "" for none.
	Category string
	// CollapseKey, explicit-user audiences only: the notification replaces
	// the user's earlier one with the same key (ValidCollapseKey); "" for none.
	CollapseKey string
	// FallbackAfter, when positive, schedules a notification.unseen webhook
	// for each recipient who has not read it that long after it is stored.
	// Explicit-user audiences only.
	FallbackAfter time.Duration
}

// MaxFallbackAfter bounds Draft.FallbackAfter (publish "fallback.after_s").
const MaxFallbackAfter = 7 * 24 * time.Hour

// Notification is a stored notification. It is immutable once stored; the
// per-recipient state (read, deleted, position) lives beside it.
type Notification struct {
	ID          string
	Tenant      string
	Audience    Audience
	Type        string
	Title       string
	Body        string
	Data        json.RawMessage
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	Category    string
	CollapseKey string
}

// Recipient identifies the reader of a stream: a user of a tenant, with the
// role their token carries (used to match role audiences).
type Recipient struct {
	Tenant string
	User   string
	Role   string
}

// Position is a reader's place in their stream. It is a pair of sequences:
// User counts notifications addressed to that user by name, Tenant counts the
// tenant's broadcast (tenant- and role-wide) notifications. Both are assigned
// inside the committing transaction under a per-stream counter row, so they
// are commit-ordered: once position X is visible, everything before X is too.
// Clients see it as an opaque string "<user>.<tenant>".
type Position struct {
	User   int64
	Tenant int64
}

// ErrBadPosition is returned for a position string that does not parse.
var ErrBadPosition = errors.New("notification: malformed position")

// maxPositionLen bounds the input parsed by ParsePosition (two int64s and a dot).
const maxPositionLen = 41

// String encodes p as "<user>.<tenant>".
func (p Position) String() string {
	b := make([]byte, 0, 24)
	return string(p.Append(b))
}

// Append appends the encoding of p to b.
func (p Position) Append(b []byte) []byte {
	b = strconv.AppendInt(b, p.User, 10)
	b = append(b, '.')
	return strconv.AppendInt(b, p.Tenant, 10)
}

// After reports whether p is strictly after q in either component and not before
// it in the other.
func (p Position) After(q Position) bool {
	return p.User >= q.User && p.Tenant >= q.Tenant && p != q
}

// ParsePosition decodes "<user>.<tenant>" with non-negative decimal parts. An
// empty string is the zero position (the start of the stream).
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	if len(s) > maxPositionLen {
		return Position{}, ErrBadPosition
	}
	u, t, ok := strings.Cut(s, ".")
	if !ok {
		return Position{}, ErrBadPosition
	}
	un, err := parseSeq(u)
	if err != nil {
		return Position{}, err
	}
	tn, err := parseSeq(t)
	if err != nil {
		return Position{}, err
	}
	return Position{User: un, Tenant: tn}, nil
}

func parseSeq(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, ErrBadPosition
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadPosition
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadPosition, err)
	}
	return n, nil
}

// Item is a notification as one recipient sees it.
type Item struct {
	Notification
	Read     bool
	Archived bool
	// Seq is the item's sequence in the stream it belongs to: the user stream
	// for explicit-user notifications, the tenant stream for broadcasts.
	Seq int64
}
