package store

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// idSource hands out notification ids: ULIDs that are strictly increasing
// within a process, even when the clock stalls or steps backwards (the
// millisecond part never goes below the last one handed out). Because ids
// and stream positions are both assigned by the single writer, id order is
// commit order.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy // guarded by mu
	lastMS  uint64                 // guarded by mu
}

func newIDSource() *idSource {
	return &idSource{entropy: ulid.Monotonic(rand.Reader, 0)}
}

// observe makes every later id greater than id (an id found in the database
// at start-up), so ids stay ordered across restarts with a clock that went
// backwards.
func (g *idSource) observe(id string) error {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return fmt.Errorf("store: parse id %q: %w", id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// The next id must be in a later millisecond: the monotonic entropy only
	// orders ids it generated itself.
	if ms := u.Time() + 1; ms > g.lastMS {
		g.lastMS = ms
	}
	return nil
}

// next returns a new id for time t.
func (g *idSource) next(t time.Time) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := max(ulid.Timestamp(t), g.lastMS)
	id, err := ulid.New(ms, g.entropy)
	if err != nil {
		// The monotonic entropy overflowed within this millisecond: move on
		// to the next one, which re-seeds it.
		ms++
		if id, err = ulid.New(ms, g.entropy); err != nil {
			return "", fmt.Errorf("store: new id: %w", err)
		}
	}
	g.lastMS = ms
	return id.String(), nil
}
