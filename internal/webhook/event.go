package webhook

import (
	"encoding/json"
	"time"

	"github.com/heraldhq/herald/internal/hub"
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
	// Notification: notification.unseen (see notificationJSON).
	Notification json.RawMessage `json:"notification,omitempty"`
	// NotificationIDs and All: notification.read (All: "mark all read").
	NotificationIDs []string `json:"notification_ids,omitempty"`
	All             bool     `json:"all,omitempty"`
}

// notificationJSON is n in a webhook body: the object the user API and
// every transport show (hub.EncodeNotification), so the shapes cannot drift
// apart (a copy here had missed category and collapse_key once).
func notificationJSON(n *notification.Notification, read bool) json.RawMessage {
	return append(hub.EncodeNotification(n, read), '}')
}

// Encode is b's JSON.
func (b *Body) Encode() []byte {
	b.CreatedAt = b.CreatedAt.UTC()
	out, err := json.Marshal(b)
	if err != nil { // unreachable: the notification is hub's valid JSON
		c := *b
		c.Notification = nil
		out, _ = json.Marshal(&c)
	}
	return out
}
