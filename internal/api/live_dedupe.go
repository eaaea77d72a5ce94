package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultDedupeEntries bounds the in-memory Idempotency-Key set of live
// events; the oldest keys are forgotten first beyond it.
const DefaultDedupeEntries = 100_000

// MemoryDedupe is the single-node LiveDedupe: keys in a map, forgotten
// after the window or, beyond max entries, oldest first.
type MemoryDedupe struct {
	window time.Duration // static
	max    int           // static
	now    func() time.Time

	mu    sync.Mutex
	keys  map[string]dedupeEntry // guarded by mu
	order []string               // guarded by mu: keys in claim order (may hold released ones)
}

type dedupeEntry struct {
	hash, id string
	expires  time.Time
}

var _ LiveDedupe = (*MemoryDedupe)(nil)

// NewMemoryDedupe returns a MemoryDedupe.
func NewMemoryDedupe(window time.Duration, max int) *MemoryDedupe {
	return &MemoryDedupe{window: window, max: max, now: time.Now, keys: make(map[string]dedupeEntry)}
}

func dedupeKey(scope, key string) string { return scope + "\n" + key }

// Claim implements LiveDedupe.
func (m *MemoryDedupe) Claim(_ context.Context, scope, key, hash, id string) (string, bool, error) {
	k := dedupeKey(scope, key)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys[k]; ok && now.Before(e.expires) {
		if e.hash != hash {
			return "", false, ErrLiveKeyReused
		}
		return e.id, true, nil
	}
	m.keys[k] = dedupeEntry{hash: hash, id: id, expires: now.Add(m.window)}
	m.order = append(m.order, k)
	m.evictLocked(now)
	return id, false, nil
}

// evictLocked drops keys from the front of the claim order while they are
// expired (or released), and the oldest ones while over max.
func (m *MemoryDedupe) evictLocked(now time.Time) {
	for len(m.order) > 0 {
		k := m.order[0]
		if e, ok := m.keys[k]; ok && now.Before(e.expires) && len(m.keys) <= m.max {
			return
		}
		delete(m.keys, k)
		m.order[0] = ""
		m.order = m.order[1:]
	}
}

// Release implements LiveDedupe.
func (m *MemoryDedupe) Release(_ context.Context, scope, key string) {
	m.mu.Lock()
	delete(m.keys, dedupeKey(scope, key))
	m.mu.Unlock()
}

// Len is the number of keys held (tests).
func (m *MemoryDedupe) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// RedisDedupe is the cluster LiveDedupe: one key per Idempotency-Key,
// "<prefix>:live-idem:<sha256(scope, key)>", set with SET NX and the
// window as TTL, so that a retry that lands on another node is recognised.
type RedisDedupe struct {
	Client *redis.Client
	Prefix string
	Window time.Duration
}

var _ LiveDedupe = (*RedisDedupe)(nil)

func (d *RedisDedupe) key(scope, key string) string {
	sum := sha256.Sum256([]byte(dedupeKey(scope, key)))
	return d.Prefix + ":live-idem:" + hex.EncodeToString(sum[:])
}

// Claim implements LiveDedupe. The value is "<hash> <id>".
func (d *RedisDedupe) Claim(ctx context.Context, scope, key, hash, id string) (string, bool, error) {
	k := d.key(scope, key)
	ok, err := d.Client.SetNX(ctx, k, hash+" "+id, d.Window).Result()
	if err != nil {
		return "", false, fmt.Errorf("api: live dedupe: %w", err)
	}
	if ok {
		return id, false, nil
	}
	v, err := d.Client.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) { // expired between the two calls: the window is over
		return "", false, fmt.Errorf("api: live dedupe: key expired while read; retry")
	}
	if err != nil {
		return "", false, fmt.Errorf("api: live dedupe: %w", err)
	}
	prevHash, prevID, _ := strings.Cut(v, " ")
	if prevHash != hash {
		return "", false, ErrLiveKeyReused
	}
	return prevID, true, nil
}

// Release implements LiveDedupe.
func (d *RedisDedupe) Release(ctx context.Context, scope, key string) {
	_ = d.Client.Del(ctx, d.key(scope, key)).Err()
}
