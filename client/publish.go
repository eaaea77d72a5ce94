package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Notification is one notification to publish: the JSON body of
// POST /v1/notifications (docs/openapi.yaml, PublishItem), field by field.
// Herald validates it; an invalid one is an *Error with CodeInvalidRequest.
type Notification struct {
	// Tenant is required unless the API key is scoped to a tenant (then
	// that tenant is the default).
	Tenant string `json:"tenant,omitempty"`
	// To is the audience: exactly one of users, the whole tenant or a role
	// (ToUsers, ToTenant, ToRole).
	To Audience `json:"to"`
	// Type is an application-defined kind, e.g. "invoice.paid": 1–128
	// characters of A–Z a–z 0–9 . _ - : /.
	Type string `json:"type"`
	// Title: 1–512 bytes.
	Title string `json:"title"`
	// Body: at most 8 KiB; optional.
	Body string `json:"body,omitempty"`
	// Data is optional and must marshal to a JSON object (a map or a
	// struct, nested at most 16 levels), or be nil.
	Data any `json:"data,omitempty"`
	// ExpiresAt, when set, must be in the future: after it the
	// notification is no longer listed, replayed or counted.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Audience is who gets a notification: set exactly one field.
type Audience struct {
	// Users are 1–1000 user ids of the tenant.
	Users []string `json:"users,omitempty"`
	// Tenant: every user of the tenant, including users who connect later.
	Tenant bool `json:"tenant,omitempty"`
	// Role: every user of the tenant whose token's role claim equals it.
	Role string `json:"role,omitempty"`
}

// ToUsers is the audience of named users.
func ToUsers(users ...string) Audience { return Audience{Users: users} }

// ToTenant is the audience of every user of the notification's tenant.
func ToTenant() Audience { return Audience{Tenant: true} }

// ToRole is the audience of every user of the tenant with role.
func ToRole(role string) Audience { return Audience{Role: role} }

// Publish stores n durably and returns its id (a ULID). Herald answers
// once the notification is committed, then delivers it live and through
// replay. The call carries an Idempotency-Key (IdempotencyKey, or a random
// one) and is retried on 429, 503 and network failures (see RetryPolicy).
func (c *Client) Publish(ctx context.Context, n Notification, opts ...CallOption) (id string, err error) {
	r, err := c.publish(ctx, "publish", "/v1/notifications", n, opts)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := decode("publish", r, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// PublishBatch stores 1–1000 notifications in one durable write, all or
// none, and returns their ids in order. One invalid item rejects the whole
// batch (*Error, CodeInvalidRequest, message "invalid notification at
// index N"). Idempotency and retries are those of Publish, for the batch
// as a whole.
func (c *Client) PublishBatch(ctx context.Context, ns []Notification, opts ...CallOption) (ids []string, err error) {
	body := struct {
		Notifications []Notification `json:"notifications"`
	}{ns}
	r, err := c.publish(ctx, "publish batch", "/v1/notifications/batch", body, opts)
	if err != nil {
		return nil, err
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := decode("publish batch", r, &out); err != nil {
		return nil, err
	}
	if len(out.IDs) != len(ns) {
		return nil, fmt.Errorf("herald: publish batch: %d ids for %d notifications", len(out.IDs), len(ns))
	}
	return out.IDs, nil
}

// publish marshals v once (a retry must send the very same bytes: Herald
// compares the body under the Idempotency-Key) and sends it.
func (c *Client) publish(ctx context.Context, op, path string, v any, opts []CallOption) (*response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("herald: %s: %w", op, err)
	}
	cl := &call{op: op, method: http.MethodPost, path: path, body: body}
	for _, o := range opts {
		o(cl)
	}
	if cl.idemKey == "" {
		cl.idemKey = c.newKey()
	}
	return c.do(ctx, cl)
}
