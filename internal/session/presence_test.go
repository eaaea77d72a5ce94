package session

import (
	"slices"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/hub"
)

// presenceLog records Presence calls.
type presenceLog struct {
	mu    sync.Mutex
	calls []string
}

func (p *presenceLog) Connected(tenant, user, transport string) {
	p.mu.Lock()
	p.calls = append(p.calls, "+"+tenant+"/"+user+"/"+transport)
	p.mu.Unlock()
}

func (p *presenceLog) Disconnected(tenant, user, transport string) {
	p.mu.Lock()
	p.calls = append(p.calls, "-"+tenant+"/"+user+"/"+transport)
	p.mu.Unlock()
}

func (p *presenceLog) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// TestPresence: an attached session is counted once and uncounted once,
// however often End runs; one that never attached is never counted.
func TestPresence(t *testing.T) {
	pl := &presenceLog{}
	h := newHarness(t, func(o *options) { o.session.Presence = pl })
	s, _ := h.authed(t, "acme/alice")
	if got := pl.got(); !slices.Equal(got, []string{"+acme/alice/ws"}) {
		t.Fatalf("after attach: %v", got)
	}
	s.End(hub.ReasonClientClosed)
	s.End(hub.ReasonClientClosed)
	if got := pl.got(); !slices.Equal(got, []string{"+acme/alice/ws", "-acme/alice/ws"}) {
		t.Fatalf("after End twice: %v", got)
	}
	ended, _ := h.newSession(t)
	ended.End(hub.ReasonClientClosed)
	_ = ended.Authenticate("bob", nil)
	refused, _ := h.newSession(t)
	_ = refused.Authenticate("bad", nil)
	refused.End(hub.ReasonClientClosed)
	if got := pl.got(); len(got) != 2 {
		t.Fatalf("sessions that never attached were counted: %v", got)
	}
}
