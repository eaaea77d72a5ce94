package admission

import (
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/audit"
)

// fakeConns is a ConnLimiter with one cap for every key. It fails the test
// when a key is released more often than it was acquired.
type fakeConns struct {
	t   testing.TB
	max int

	mu       sync.Mutex
	held     map[string]int // guarded by mu
	acquires int            // guarded by mu: successful acquires
	releases int            // guarded by mu
	// block, when set, is called by Acquire before it decides (a slow Redis).
	block func()
}

func newFakeConns(t testing.TB, max int) *fakeConns {
	return &fakeConns{t: t, max: max, held: make(map[string]int)}
}

func (f *fakeConns) Acquire(key string) bool {
	if f.block != nil {
		f.block()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[key] >= f.max {
		return false
	}
	f.held[key]++
	f.acquires++
	return true
}

func (f *fakeConns) Release(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[key] <= 0 {
		f.t.Errorf("release of %q, which is not held", key)
		return
	}
	f.held[key]--
	f.releases++
}

func (f *fakeConns) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[key]
}

func (f *fakeConns) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.held {
		n += v
	}
	return n
}

// fakeRate is a RateLimiter that allows the first `allow` calls per key and
// then refuses, counting consecutive refusals as strikes.
type fakeRate struct {
	allow int

	mu      sync.Mutex
	calls   map[string]int // guarded by mu
	strikes map[string]int // guarded by mu
	keys    []string       // guarded by mu: every key asked, in order
	// block, when set, is called by Allow before it decides.
	block func()
}

func newFakeRate(allow int) *fakeRate {
	return &fakeRate{allow: allow, calls: make(map[string]int), strikes: make(map[string]int)}
}

func (f *fakeRate) Allow(key string) (bool, int) {
	if f.block != nil {
		f.block()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	f.calls[key]++
	if f.calls[key] <= f.allow {
		f.strikes[key] = 0
		return true, 0
	}
	f.strikes[key]++
	return false, f.strikes[key]
}

func (f *fakeRate) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

// auditEvent is one event counted by fakeCounter.
type auditEvent struct {
	ev                audit.Event
	reason, transport string
}

// fakeCounter is an audit.Counter that remembers every event.
type fakeCounter struct {
	mu     sync.Mutex
	events []auditEvent // guarded by mu
}

func (c *fakeCounter) Count(ev audit.Event, reason, transport string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, auditEvent{ev, reason, transport})
}

func (c *fakeCounter) count(ev audit.Event) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e.ev == ev {
			n++
		}
	}
	return n
}

func (c *fakeCounter) all() []auditEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]auditEvent(nil), c.events...)
}

// recorder returns an audit recorder counting into c.
func (c *fakeCounter) recorder() *audit.Recorder { return audit.New(nil, c) }

// attemptAdmit asks for admission the way transports do: Attempt, then Admit.
func attemptAdmit(c *Controller, req Request) (*Slot, Refusal) {
	c.Attempt(req.Transport)
	return c.Admit(req)
}
