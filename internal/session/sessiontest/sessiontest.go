// Package sessiontest holds the fakes that the tests of the protocol core
// and of its neighbours share: what a session.Core is built from (a hub
// store with empty streams, an inbox that answers with nothing, admission's
// connection and rate limiters). The audit counter is audittest.Counter.
//
// It is for tests only: import it from _test.go files. It imports nothing
// above notification and store, so that the internal tests of
// packages admission and session can use it too. Each fake is safe for
// concurrent use.
package sessiontest

import (
	"context"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

// EmptyStore is a hub.Store with empty streams: every client starts at 0.0
// and a resume replays nothing.
type EmptyStore struct{}

// Since returns no items.
func (EmptyStore) Since(context.Context, notification.Recipient, notification.Position, int) ([]notification.Item, bool, error) {
	return nil, false, nil
}

// Head returns position 0.0.
func (EmptyStore) Head(context.Context, notification.Recipient) (notification.Position, error) {
	return notification.Position{}, nil
}

// Counts returns no unread notification.
func (EmptyStore) Counts(context.Context, notification.Recipient) (notification.Counts, error) {
	return notification.Counts{}, nil
}

// HeadCounts returns position 0.0 and no unread notification.
func (EmptyStore) HeadCounts(context.Context, notification.Recipient) (notification.Position, notification.Counts, error) {
	return notification.Position{}, notification.Counts{}, nil
}

// NopInbox is a session.Inbox that acknowledges every request with empty
// results.
type NopInbox struct{}

// List returns an empty page.
func (NopInbox) List(context.Context, notification.Recipient, store.ListQuery) (store.Page, error) {
	return store.Page{}, nil
}

// Counts returns no counts.
func (NopInbox) Counts(context.Context, notification.Recipient) (store.Counts, error) {
	return store.Counts{}, nil
}

// MarkSeen changes nothing.
func (NopInbox) MarkSeen(context.Context, notification.Recipient, *notification.Position) (store.Change, error) {
	return store.Change{}, nil
}

// Archive changes nothing.
func (NopInbox) Archive(context.Context, notification.Recipient, []string, bool) (store.Change, error) {
	return store.Change{}, nil
}

// Unarchive changes nothing.
func (NopInbox) Unarchive(context.Context, notification.Recipient, []string, bool) (store.Change, error) {
	return store.Change{}, nil
}

// Preferences returns none.
func (NopInbox) Preferences(context.Context, notification.Recipient) (notification.Preferences, error) {
	return notification.Preferences{}, nil
}

// SetPreferences changes nothing.
func (NopInbox) SetPreferences(context.Context, notification.Recipient, notification.Preferences) (store.Change, error) {
	return store.Change{}, nil
}

// MarkRead changes nothing.
func (NopInbox) MarkRead(context.Context, notification.Recipient, []string) (store.Change, error) {
	return store.Change{}, nil
}

// MarkAllRead changes nothing.
func (NopInbox) MarkAllRead(context.Context, notification.Recipient) (store.Change, error) {
	return store.Change{}, nil
}

// Delete changes nothing.
func (NopInbox) Delete(context.Context, notification.Recipient, string) (store.Change, error) {
	return store.Change{}, nil
}

// Conns is an admission.ConnLimiter with one cap for every key. It fails
// the test when a key is released more often than it was acquired.
type Conns struct {
	// Block, when set, is called by Acquire before it decides (a slow
	// Redis). Set it before the first Acquire.
	Block func()

	t   testing.TB // static
	max int        // static

	mu       sync.Mutex
	held     map[string]int // guarded by mu
	acquires int            // guarded by mu: successful acquires
	releases int            // guarded by mu
}

// NewConns returns a Conns allowing max concurrent uses per key.
func NewConns(t testing.TB, max int) *Conns {
	return &Conns{t: t, max: max, held: make(map[string]int)}
}

// Acquire takes a use of key unless max are held.
func (f *Conns) Acquire(key string) bool {
	if f.Block != nil {
		f.Block()
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

// Release gives a use of key back.
func (f *Conns) Release(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[key] <= 0 {
		f.t.Errorf("release of %q, which is not held", key)
		return
	}
	f.held[key]--
	f.releases++
}

// Held returns the uses of key held now.
func (f *Conns) Held(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[key]
}

// Total returns the uses of every key held now.
func (f *Conns) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.held {
		n += v
	}
	return n
}

// Acquires returns how many Acquire calls succeeded.
func (f *Conns) Acquires() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acquires
}

// Releases returns how many Release calls gave a use back.
func (f *Conns) Releases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.releases
}

// Rate is an admission.RateLimiter that allows the first allow calls per
// key and refuses every later one, each refusal one more strike.
type Rate struct {
	// Block, when set, is called by Allow before it decides. Set it before
	// the first Allow.
	Block func()

	allow int // static

	mu    sync.Mutex
	calls map[string]int // guarded by mu
	keys  []string       // guarded by mu: every key asked, in order
}

// NewRate returns a Rate allowing allow calls per key.
func NewRate(allow int) *Rate {
	return &Rate{allow: allow, calls: make(map[string]int)}
}

// Allow counts a call for key.
func (f *Rate) Allow(key string) (bool, int) {
	if f.Block != nil {
		f.Block()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	f.calls[key]++
	if n := f.calls[key]; n > f.allow {
		return false, n - f.allow
	}
	return true, 0
}

// Asked returns every key asked so far, in order.
func (f *Rate) Asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

// Calls returns how often key was asked.
func (f *Rate) Calls(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}
