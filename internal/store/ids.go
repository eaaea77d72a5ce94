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
	// buf is the id being built. It lives here, not on next's stack, because
	// MonotonicRead passes its slice to an io.Reader, which would move a
	// local ULID to the heap on every call. Guarded by mu.
	buf ulid.ULID
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
	if err := g.fill(ms); err != nil {
		// The monotonic entropy overflowed within this millisecond: move on
		// to the next one, which re-seeds it.
		ms++
		if err = g.fill(ms); err != nil {
			return "", fmt.Errorf("store: new id: %w", err)
		}
	}
	g.lastMS = ms
	return g.buf.String(), nil
}

// fill builds the id for millisecond ms in g.buf, as ulid.New(ms, g.entropy)
// would, without boxing the ULID. g.mu must be held.
func (g *idSource) fill(ms uint64) error {
	if err := g.buf.SetTime(ms); err != nil {
		return err
	}
	return g.entropy.MonotonicRead(ms, g.buf[6:])
}
