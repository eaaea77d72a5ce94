// Package audittest has a fake audit.Counter for tests (an interface
// Herald owns). Import it from tests only.
package audittest

import (
	"sync"

	"github.com/heraldhq/herald/internal/audit"
)

// Event is one event a [Counter] counted.
type Event struct {
	Event     audit.Event
	Reason    string
	Transport string
}

// Counter is an audit.Counter that remembers every event, in order. The
// zero value is ready to use.
type Counter struct {
	mu     sync.Mutex
	events []Event // guarded by mu
}

// Count remembers the event.
func (c *Counter) Count(ev audit.Event, reason, transport string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, Event{Event: ev, Reason: reason, Transport: transport})
}

// All returns every event counted so far.
func (c *Counter) All() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// Of returns the events named ev counted so far.
func (c *Counter) Of(ev audit.Event) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, e := range c.events {
		if e.Event == ev {
			out = append(out, e)
		}
	}
	return out
}

// Recorder returns an audit recorder that counts into c and logs nowhere.
func (c *Counter) Recorder() *audit.Recorder { return audit.New(nil, c) }
