package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/topic"
)

// Topics: subscribe and unsubscribe requests, on every transport (an SSE
// stream names its topics in its URL and joins them when it attaches).
// Topic names are per tenant by construction: a session subscribes in the
// hub under its own tenant, so no name can reach another tenant's topic.

// Defaults of Config's topic settings.
const (
	DefaultMaxTopics      = 100 // topics one connection may hold
	DefaultSubscribeRate  = 10  // subscribe requests per second per connection
	DefaultSubscribeBurst = 20
)

// TopicAuthorizer decides about topics the token's claim does not allow:
// the subscribe-authorization hook on the backend. It returns the topics it
// allows among those asked; an error denies them all.
type TopicAuthorizer interface {
	Authorize(ctx context.Context, p auth.Principal, topics []string) (allowed []string, err error)
}

// MaxTopics is the topic limit per connection.
func (c *Core) MaxTopics() int { return c.cfg.MaxTopics }

// CheckTopics decides whether p may subscribe to every one of topics
// (valid names, see ParseTopics), and whether a connection may hold them
// all. A topic is allowed when a pattern of the token's topics claim admits
// it, or else when the TopicAuthorizer (if any) allows it. The refusal is
// all or nothing, recorded (subscribe_forbidden) and returned as the
// client's error: forbidden, or rate_limited over the limit. attrs are
// logged with it.
func (c *Core) CheckTopics(ctx context.Context, p auth.Principal, topics []string, attrs ...any) *Error {
	if len(topics) > c.cfg.MaxTopics {
		return NewError(CodeRateLimited, fmt.Sprintf("at most %d topics per connection", c.cfg.MaxTopics))
	}
	var ask []string
	for _, t := range topics {
		if !topic.Allowed(p.Topics, t) {
			ask = append(ask, t)
		}
	}
	if len(ask) == 0 {
		return nil
	}
	denied := ask[0]
	if c.cfg.TopicAuthorizer != nil {
		allowed, err := c.cfg.TopicAuthorizer.Authorize(ctx, p, ask)
		if err != nil {
			c.audit.Warn(audit.SubscribeAuthFailed, "subscribe authorization hook failed: denied",
				append([]any{"tenant", p.Tenant, "user", p.User, "err", err}, attrs...)...)
		} else {
			i := slices.IndexFunc(ask, func(t string) bool { return !slices.Contains(allowed, t) })
			if i < 0 {
				return nil
			}
			denied = ask[i]
		}
	}
	c.audit.Warn(audit.SubscribeForbidden, "topic not allowed",
		append([]any{"tenant", p.Tenant, "user", p.User, "topic", denied}, attrs...)...)
	return NewError(CodeForbidden, "topic not allowed: "+denied)
}

// Join subscribes an attached session to topics that CheckTopics allowed
// (an SSE stream's ?topics=), without the subscribe rate.
func (s *Session) Join(topics []string) error {
	if !s.Authenticated() {
		return ErrGone
	}
	if err := s.client.Subscribe(topics, s.core.cfg.MaxTopics); err != nil {
		return fmt.Errorf("session: join: %w", err)
	}
	return nil
}

// Topics lists the session's topics.
func (s *Session) Topics() []string {
	if !s.Authenticated() {
		return nil
	}
	return s.client.Topics()
}

// topics runs a subscribe or unsubscribe request inline: requests of one
// connection keep their order, so an unsubscribe never overtakes the
// subscribe before it. The authorization hook, when it is asked, holds up
// this connection's later requests for at most its timeout.
func (s *Session) topics(req Request) {
	if req.Name == NameUnsubscribe {
		s.client.Unsubscribe(req.Topics)
		s.reply(&Reply{Name: req.Name, Ref: req.Ref})
		return
	}
	attrs := []any{"conn", s.id, "transport", s.transport().String()}
	if !s.allowSubscribe() {
		s.core.audit.Warn(audit.RateLimited, "subscribe rate exceeded", append([]any{"scope", "subscribe"}, attrs...)...)
		s.reply(&Reply{Name: req.Name, Ref: req.Ref, Err: NewError(CodeRateLimited, "subscribe rate exceeded")})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.core.cfg.RequestTimeout)
	defer cancel()
	if e := s.core.CheckTopics(ctx, s.Principal(), req.Topics, attrs...); e != nil {
		s.reply(&Reply{Name: req.Name, Ref: req.Ref, Err: e})
		return
	}
	var e *Error
	switch err := s.client.Subscribe(req.Topics, s.core.cfg.MaxTopics); {
	case errors.Is(err, hub.ErrTooManyTopics):
		s.core.audit.Warn(audit.RateLimited, "too many topics", append([]any{"scope", "topics"}, attrs...)...)
		e = NewError(CodeRateLimited, fmt.Sprintf("at most %d topics per connection", s.core.cfg.MaxTopics))
	case err != nil:
		return // closed meanwhile
	}
	s.reply(&Reply{Name: req.Name, Ref: req.Ref, Err: e})
}

// allowSubscribe takes a token of the connection's subscribe rate (a
// one-word bucket: most connections never subscribe, and those that do
// keep it for their lifetime).
func (s *Session) allowSubscribe() bool {
	if s.core.cfg.SubscribeRate < 0 {
		return true
	}
	return s.subLimit.Allow(time.Now(), s.core.cfg.SubscribeRate, s.core.cfg.SubscribeBurst)
}
