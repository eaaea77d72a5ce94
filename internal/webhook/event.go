package webhook

import (
	"encoding/json"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// Body is the JSON body of every webhook. The id is the webhook-id header
// too: receivers drop duplicates by it (delivery is at least once).
type Body struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Tenant    string    `json:"tenant"`
	User      string    `json:"user"`
	// Notification: notification.unseen.
	Notification *Notification `json:"notification,omitempty"`
	// NotificationIDs and All: notification.read (All: "mark all read").
	NotificationIDs []string `json:"notification_ids,omitempty"`
	All             bool     `json:"all,omitempty"`
}

// Notification is a notification in a webhook body, as the user API shows
// it (a notification.unseen one is unread: Read is false).
type Notification struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
	// Category and CollapseKey as the user API shows them (issue 15); the
	// copy of hub's wire shape had missed them when the branches merged.
	Category    string `json:"category,omitempty"`
	CollapseKey string `json:"collapse_key,omitempty"`
	Read        bool   `json:"read"`
}

// NotificationOf is n in a webhook body.
func NotificationOf(n *notification.Notification, read bool) *Notification {
	w := &Notification{ID: n.ID, Type: n.Type, Title: n.Title, Body: n.Body, CreatedAt: n.CreatedAt.UTC(), Read: read,
		Category: n.Category, CollapseKey: n.CollapseKey}
	if len(n.Data) > 0 {
		w.Data = n.Data
	}
	if !n.ExpiresAt.IsZero() {
		t := n.ExpiresAt.UTC()
		w.ExpiresAt = &t
	}
	return w
}

// Encode is b's JSON.
func (b *Body) Encode() []byte {
	b.CreatedAt = b.CreatedAt.UTC()
	out, err := json.Marshal(b)
	if err != nil { // only data that is not JSON; it was validated when stored
		c := *b
		if c.Notification != nil {
			n := *c.Notification
			n.Data = nil
			c.Notification = &n
		}
		out, _ = json.Marshal(&c)
	}
	return out
}
