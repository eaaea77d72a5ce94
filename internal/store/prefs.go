package store

import (
	"strings"
	"sync"

	"github.com/heraldhq/herald/internal/notification"
)

// Preferences are stored as two comma-separated lists (categories and
// types cannot contain a comma).

func joinMuted(list []string) string { return strings.Join(list, ",") }

func splitMuted(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// prefsCache holds the preferences of every user who has any, for an
// engine whose writes all pass through this process (SQLite): a publish
// looks its recipients up here, without a statement per recipient, and the
// common case (nobody has preferences) costs one atomic load.
type prefsCache struct {
	mu sync.RWMutex
	m  map[[2]string]notification.Preferences // guarded by mu; only non-empty entries
}

// get returns the preferences of (tenant, user).
func (c *prefsCache) get(tenant, user string) notification.Preferences {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[[2]string{tenant, user}]
}

// mutes reports whether (tenant, user) mutes draft d.
func (c *prefsCache) mutes(tenant, user string, d *notification.Draft) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.m) == 0 {
		return false
	}
	p, ok := c.m[[2]string{tenant, user}]
	return ok && p.Mutes(d.Category, d.Type)
}

// set records the preferences of (tenant, user) after they were committed.
func (c *prefsCache) set(tenant, user string, p notification.Preferences) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := [2]string{tenant, user}
	if p.Empty() {
		delete(c.m, k)
		return
	}
	if c.m == nil {
		c.m = make(map[[2]string]notification.Preferences)
	}
	c.m[k] = p
}
