package node

import (
	"context"
	"sync"
	"time"
)

// The fan-out's bound: a broker publish after a commit gives up after
// about fanoutTimeout. The deadline is shared by the commits of
// fanoutDeadlineSlack (sharedDeadline), so a commit costs no context and
// no timer of its own.
const (
	fanoutTimeout       = 5 * time.Second
	fanoutDeadlineSlack = 100 * time.Millisecond
)

// sharedDeadline hands out a context that expires between timeout-slack
// and timeout after the call: one context per slack, shared by every
// caller meanwhile. Such a context is never cancelled early (a caller
// may still use it), only by its deadline. Safe for concurrent use.
type sharedDeadline struct {
	timeout, slack time.Duration
	now            func() time.Time // static after construction

	mu     sync.Mutex
	ctx    context.Context    // guarded by mu
	cancel context.CancelFunc // guarded by mu: never called, ctx ends by its deadline
	made   time.Time          // guarded by mu: when ctx was made
}

func newSharedDeadline(timeout, slack time.Duration, now func() time.Time) *sharedDeadline {
	return &sharedDeadline{timeout: timeout, slack: slack, now: now}
}

// get returns a context whose deadline is timeout-slack to timeout away.
func (s *sharedDeadline) get() context.Context {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || now.Sub(s.made) >= s.slack || now.Before(s.made) {
		s.ctx, s.cancel = context.WithDeadline(context.Background(), now.Add(s.timeout))
		s.made = now
	}
	return s.ctx
}
