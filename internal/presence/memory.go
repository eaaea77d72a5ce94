package presence

import (
	"context"
	"maps"
	"sync"
)

// Memory is the Directory of a single node: its own entries are all there is.
type Memory struct {
	mu      sync.RWMutex
	entries map[Key]Counts // guarded by mu
}

var _ Directory = (*Memory)(nil)

// NewMemory returns an empty directory.
func NewMemory() *Memory { return &Memory{entries: map[Key]Counts{}} }

// Put implements Directory.
func (m *Memory) Put(_ context.Context, k Key, c Counts) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.entries[k]
	m.entries[k] = maps.Clone(c)
	return !had, nil
}

// Remove implements Directory.
func (m *Memory) Remove(_ context.Context, k Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, k)
	return true, nil
}

// Refresh implements Directory: memory entries do not expire.
func (m *Memory) Refresh(context.Context, map[Key]Counts) error { return nil }

// Lookup implements Directory.
func (m *Memory) Lookup(_ context.Context, tenant string, users []string) ([]Status, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Status, len(users))
	for i, u := range users {
		out[i] = statusOf(u, m.entries[Key{tenant, u}])
	}
	return out, nil
}

// statusOf is a user's status from the sum of its live entries.
func statusOf(user string, c Counts) Status {
	s := Status{User: user, Transports: Counts{}}
	for t, n := range c {
		if n > 0 {
			s.Transports[t] += n
			s.Connections += n
		}
	}
	s.Online = s.Connections > 0
	return s
}
