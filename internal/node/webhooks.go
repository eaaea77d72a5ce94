package node

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/webhook"
)

// openPresence starts the webhook sender (from the store's outbox) and the
// presence tracker (its directory in Redis on a cluster, in memory on a
// single node), whose transitions become webhooks.
func (n *Node) openPresence(ctx context.Context, p *parts) error {
	cfg := &n.cfg
	wcfg := cfg.Webhook
	wcfg.Owner = cfg.NodeID
	wcfg.SingleSender = !IsPostgresURL(cfg.Database)
	wcfg.Logger, wcfg.Audit, wcfg.Registerer = cfg.Logger, n.audit, cfg.Registry
	wh, err := webhook.New(wcfg, n.store)
	if err != nil {
		return err
	}
	if err := wh.Start(ctx); err != nil {
		return err
	}
	n.webhooks = wh
	p.started(func() { _ = wh.Close() })

	var dir presence.Directory // nil: this node only
	if n.redis != nil {
		if dir, err = presence.NewRedis(presence.RedisConfig{Client: n.redis, Prefix: cfg.RedisPrefix,
			NodeID: cfg.NodeID, TTL: cfg.PresenceTTL}); err != nil {
			return fmt.Errorf("presence: %w", err)
		}
	}
	n.presence = presence.New(presence.Config{Grace: cfg.PresenceGrace, TTL: cfg.PresenceTTL, Logger: cfg.Logger},
		dir, n.emitPresence)
	n.presence.Start()
	p.started(n.presence.Close)
	return nil
}

// emitPresence writes user.online or user.offline webhooks, a worker
// round's in one transaction.
func (n *Node) emitPresence(ctx context.Context, event string, ks []presence.Key) {
	now := time.Now()
	bodies := make([]webhook.Body, len(ks))
	for i, k := range ks {
		bodies[i] = webhook.Body{Type: event, Tenant: k.Tenant, User: k.User, CreatedAt: now}
	}
	if err := n.webhooks.Emit(ctx, bodies...); err != nil {
		n.log.Warn("webhook: presence events not written to the outbox", "type", event, "users", len(ks), "err", err)
	}
}

// offerRead turns committed read events into notification.read webhooks
// when they are enabled. It runs in the store's commit hook: it only
// queues (see webhook.Service.Offer).
func (n *Node) offerRead(ev *notification.Event) {
	if ev.Kind != notification.EventRead || n.webhooks == nil || !n.webhooks.NotificationRead() {
		return
	}
	n.webhooks.Offer(webhook.Body{Type: store.WebhookNotificationRead, Tenant: ev.Tenant, User: ev.User,
		CreatedAt: time.Now(), NotificationIDs: ev.IDs, All: ev.All})
}

// PutWebhookEndpoint validates and stores a tenant's endpoint, then
// reloads this node's endpoints (other nodes reload within
// webhook.Config.EndpointRefresh).
func (n *Node) PutWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) error {
	if err := webhook.CheckURL(e.URL, n.cfg.Webhook.AllowLinkLocal); err != nil {
		return fmt.Errorf("%w: %w", api.ErrInvalidEndpoint, err)
	}
	if err := webhook.CheckSecret(e.Secret); err != nil {
		return fmt.Errorf("%w: %w", api.ErrInvalidEndpoint, err)
	}
	if err := n.store.PutWebhookEndpoint(ctx, e); err != nil {
		return err
	}
	return n.webhooks.Reload(ctx)
}

// WebhookEndpoints lists the tenants' endpoints.
func (n *Node) WebhookEndpoints(ctx context.Context) ([]store.WebhookEndpoint, error) {
	return n.store.WebhookEndpoints(ctx)
}

// DeleteWebhookEndpoint removes a tenant's endpoint.
func (n *Node) DeleteWebhookEndpoint(ctx context.Context, tenant string) error {
	if err := n.store.DeleteWebhookEndpoint(ctx, tenant); err != nil {
		return err
	}
	return n.webhooks.Reload(ctx)
}

// Presence is the node's presence tracker (tests).
func (n *Node) Presence() *presence.Tracker { return n.presence }
