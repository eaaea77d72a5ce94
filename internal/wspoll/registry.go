package wspoll

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

const registryShards = 32

// Registry is a transport's set of open connections (or sessions, by id),
// sharded so that connect storms do not queue on one lock. The zero value
// is not ready: call Init. Safe for concurrent use.
type Registry[K comparable, V any] struct {
	seed   maphash.Seed
	count  atomic.Int64
	shards [registryShards]struct {
		mu sync.Mutex
		m  map[K]V
	}
}

// Init prepares the registry.
func (r *Registry[K, V]) Init() {
	r.seed = maphash.MakeSeed()
	for i := range r.shards {
		r.shards[i].m = make(map[K]V)
	}
}

func (r *Registry[K, V]) shard(k K) *struct {
	mu sync.Mutex
	m  map[K]V
} {
	return &r.shards[maphash.Comparable(r.seed, k)%registryShards]
}

// Add registers v under k.
func (r *Registry[K, V]) Add(k K, v V) {
	sh := r.shard(k)
	sh.mu.Lock()
	if _, ok := sh.m[k]; !ok {
		r.count.Add(1)
	}
	sh.m[k] = v
	sh.mu.Unlock()
}

// Get returns the value under k.
func (r *Registry[K, V]) Get(k K) (V, bool) {
	sh := r.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.m[k]
	return v, ok
}

// Remove drops k if same (nil: any value) says its value is the one to drop.
func (r *Registry[K, V]) Remove(k K, same func(V) bool) {
	sh := r.shard(k)
	sh.mu.Lock()
	if v, ok := sh.m[k]; ok && (same == nil || same(v)) {
		delete(sh.m, k)
		r.count.Add(-1)
	}
	sh.mu.Unlock()
}

// Len is the number of registered entries.
func (r *Registry[K, V]) Len() int { return int(r.count.Load()) }

// Snapshot appends every value to batch.
func (r *Registry[K, V]) Snapshot(batch []V) []V {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for _, v := range sh.m {
			batch = append(batch, v)
		}
		sh.mu.Unlock()
	}
	return batch
}

// Each calls fn for every value, outside of the registry's locks.
func (r *Registry[K, V]) Each(fn func(V)) {
	var batch []V
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for _, v := range sh.m {
			batch = append(batch, v)
		}
		sh.mu.Unlock()
		for _, v := range batch {
			fn(v)
		}
	}
}
