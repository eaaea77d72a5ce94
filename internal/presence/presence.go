// Package presence knows which users are online: this node's connections
// per user and transport (Tracker), shared through a Directory across
// many nodes (Redis; a single node needs none), and the user.online and
// user.offline transitions, debounced by a grace period.
//
// A node holds an entry for a user while the user has a connection on it,
// and for Grace after the last one closed. user.online is emitted by the
// node whose entry is the first live one anywhere; user.offline by the
// node whose entry was the last one, when it removes it after the grace.
// A page reload or a reconnect to any node within the grace therefore
// emits nothing. Entries carry an expiry that every node refreshes: the
// entries of a node that died expire, and another node removes them and
// emits user.offline for the users that did not come back (Redis only).
//
// Concurrency: Connected and Disconnected never block (they are called on
// every connect and disconnect); one goroutine per Tracker talks to the
// Directory and emits the events. Lookup may be called from any goroutine.
package presence

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/defaults"
)

// Counts are a user's connections on a node, by transport ("ws", "sse",
// "socketio").
type Counts map[string]int

// Total is the number of connections.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Status is a user's presence cluster-wide.
type Status struct {
	User        string `json:"user"`
	Online      bool   `json:"online"`
	Connections int    `json:"connections"`
	Transports  Counts `json:"transports"`
}

// Key names a user.
type Key struct{ Tenant, User string }

// Directory shares the entries of every node.
type Directory interface {
	// Put records this node's counts for k (zero counts: held in grace).
	// first is true when no node (this one included) had a live entry.
	Put(ctx context.Context, k Key, c Counts) (first bool, err error)
	// Remove deletes this node's entry for k; last is true when no live
	// entry is left on any node.
	Remove(ctx context.Context, k Key) (last bool, err error)
	// Refresh renews the expiry of this node's entries.
	Refresh(ctx context.Context, entries map[Key]Counts) error
	// Lookup sums the live entries of users of tenant, in order.
	Lookup(ctx context.Context, tenant string, users []string) ([]Status, error)
}

// Put is one user's counts for a PutBatcher.
type Put struct {
	Key    Key
	Counts Counts
}

// PutBatcher is a Directory that records many users' counts in one round
// trip: during a connect storm the worker then costs a round trip per
// round, not per user.
type PutBatcher interface {
	// PutMany is Put for each of puts, in order. first[i] is Put's first
	// for puts[i]; on an error, first holds the results of the puts done
	// (a prefix of puts), and the others are retried.
	PutMany(ctx context.Context, puts []Put) (first []bool, err error)
}

// Reaper is a Directory that can remove the entries of nodes that died.
type Reaper interface {
	// Reap removes the entries of dead nodes (a node's previous run
	// included) and returns the users left with none.
	Reap(ctx context.Context) ([]Key, error)
}

// Emitter is told about transitions ("user.online", "user.offline"), in
// batches: one call per worker round and event.
type Emitter func(ctx context.Context, event string, ks []Key)

// Event names.
const (
	EventOnline  = "user.online"
	EventOffline = "user.offline"
)

// Defaults of Config.
const (
	DefaultGrace = 5 * time.Second
	DefaultTTL   = 30 * time.Second
)

// Config tunes a Tracker. The zero value means the defaults.
type Config struct {
	// Grace: how long after a user's last connection closed the user
	// stays online (--presence-grace). Default DefaultGrace.
	Grace time.Duration
	// TTL of this node's entries in a shared directory; they are renewed
	// every TTL/3. Default DefaultTTL.
	TTL    time.Duration
	Logger *slog.Logger
}

// entry is this node's view of one user. Guarded by Tracker.mu. It is
// kept at 32 bytes, one per online user (TestEntryFitsItsSizeClass).
type entry struct {
	counts compact // the fixed counters; the flags below use its padding
	dirty  bool    // queued for the worker
	held   bool    // the directory has this node's entry (worker only)
	// other counts names outside compactNames; nil until one comes.
	other map[string]int32
	// graceUntil is when the user goes offline here, in Unix nanoseconds;
	// zero: not in grace (worker only).
	graceUntil int64
}

// Tracker counts this node's connections per user and keeps the directory
// and the transitions up to date.
type Tracker struct {
	cfg  Config // static
	dir  Directory
	emit Emitter
	log  *slog.Logger

	mu    sync.Mutex
	users map[Key]*entry // guarded by mu
	queue []Key          // dirty keys, guarded by mu

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Tracker over dir; Start runs it. A nil dir is a single
// node: its own connections are all there is, so the Tracker answers
// Lookup from its counts and keeps no copy of them (a copy cost ~100
// bytes per online user). emit may be nil.
func New(cfg Config, dir Directory, emit Emitter) *Tracker {
	defaults.Positive(&cfg.Grace, DefaultGrace)
	defaults.Positive(&cfg.TTL, DefaultTTL)
	defaults.Logger(&cfg.Logger)
	if emit == nil {
		emit = func(context.Context, string, []Key) {}
	}
	t := &Tracker{cfg: cfg, dir: dir, emit: emit, log: cfg.Logger, users: map[Key]*entry{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// Start runs the worker.
func (t *Tracker) Start() { go t.run() }

// Close stops the worker. Entries stay in the directory until they expire
// (another node then emits user.offline for users that did not reconnect).
func (t *Tracker) Close() {
	t.cancel()
	<-t.done
}

// Connected counts a new connection of k over transport.
func (t *Tracker) Connected(tenant, user, transport string) {
	t.change(Key{tenant, user}, transport, 1)
}

// Disconnected uncounts a connection of k over transport.
func (t *Tracker) Disconnected(tenant, user, transport string) {
	t.change(Key{tenant, user}, transport, -1)
}

func (t *Tracker) change(k Key, transport string, d int) {
	t.mu.Lock()
	e := t.users[k]
	if e == nil {
		e = &entry{}
		t.users[k] = e
	}
	e.add(transport, d)
	if !e.dirty {
		e.dirty = true
		t.queue = append(t.queue, k)
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Lookup answers the presence API.
func (t *Tracker) Lookup(ctx context.Context, tenant string, users []string) ([]Status, error) {
	if t.dir == nil {
		return t.lookupLocal(tenant, users), nil
	}
	return t.dir.Lookup(ctx, tenant, users)
}

// lookupLocal is Lookup on a single node.
func (t *Tracker) lookupLocal(tenant string, users []string) []Status {
	out := make([]Status, len(users))
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, u := range users {
		var c Counts
		if e := t.users[Key{tenant, u}]; e != nil {
			c = e.countsMap()
		}
		out[i] = statusOf(u, c)
	}
	return out
}

// run is the worker: it applies changes, ends graces, refreshes entries
// and reaps dead nodes.
func (t *Tracker) run() {
	defer close(t.done)
	tick := time.NewTicker(min(max(t.cfg.Grace/10, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	refresh := time.NewTicker(t.cfg.TTL / 3)
	defer refresh.Stop()
	reaper, _ := t.dir.(Reaper)
	if reaper != nil {
		t.reap(reaper)
	}
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.wake:
			t.applyDirty()
		case now := <-tick.C:
			t.applyDirty()
			t.endGraces(now)
		case <-refresh.C:
			t.refresh()
			if reaper != nil {
				t.reap(reaper)
			}
		}
	}
}

// opCtx bounds one directory call.
func (t *Tracker) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.ctx, 5*time.Second)
}

// dirtyChange is a queued user's entry and counts, for applyDirty.
type dirtyChange struct {
	k     Key
	e     *entry
	total int    // connections on this node
	c     Counts // the counts for the directory; nil on a single node (no directory)
}

// putChunk bounds the users of one directory round trip.
const putChunk = 500

// applyDirty pushes the changed users' counts to the directory, a chunk of
// users per round trip when the directory batches (PutBatcher).
func (t *Tracker) applyDirty() {
	t.mu.Lock()
	keys := t.queue
	t.queue = nil
	changes := make([]dirtyChange, 0, len(keys))
	for _, k := range keys {
		e := t.users[k]
		e.dirty = false
		ch := dirtyChange{k: k, e: e, total: e.total()}
		if t.dir != nil {
			ch.c = e.countsMap()
		}
		changes = append(changes, ch)
	}
	t.mu.Unlock()
	puts := changes[:0]
	for _, ch := range changes {
		if ch.total == 0 && !ch.e.held {
			t.forget(ch.k, ch.e) // connected and gone before the worker saw it
			continue
		}
		if ch.total == 0 && ch.e.graceUntil == 0 {
			ch.e.graceUntil = time.Now().Add(t.cfg.Grace).UnixNano()
		} else if ch.total > 0 {
			ch.e.graceUntil = 0
		}
		puts = append(puts, ch)
	}
	var (
		online  []Key
		failed  int
		lastErr error
	)
	for len(puts) > 0 {
		chunk := puts[:min(len(puts), putChunk)]
		puts = puts[len(chunk):]
		first, err := t.put(chunk)
		for i, ch := range chunk[:len(first)] {
			ch.e.held = true
			if first[i] && ch.total > 0 {
				online = append(online, ch.k)
			}
		}
		if err != nil { // the directory is failing: retry the rest at the next tick
			failed, lastErr = len(chunk)-len(first)+len(puts), err
			for _, ch := range append(chunk[len(first):], puts...) {
				t.requeue(ch.k, ch.e)
			}
			break
		}
	}
	t.send(EventOnline, online)
	if failed > 0 { // once per round: a directory that is down must not flood the log
		t.log.Warn("presence: directory updates failed; retried", "users", failed, "err", lastErr)
	}
}

// put records chunk in the directory. It returns the first flags of the
// puts done, a prefix of chunk (all of it when err is nil).
func (t *Tracker) put(chunk []dirtyChange) ([]bool, error) {
	if t.dir == nil { // a single node: a user comes online when this node did not hold it
		first := make([]bool, len(chunk))
		for i, ch := range chunk {
			first[i] = !ch.e.held
		}
		return first, nil
	}
	ctx, cancel := t.opCtx()
	defer cancel()
	if b, ok := t.dir.(PutBatcher); ok {
		puts := make([]Put, len(chunk))
		for i, ch := range chunk {
			puts[i] = Put{ch.k, ch.c}
		}
		return b.PutMany(ctx, puts)
	}
	first := make([]bool, 0, len(chunk))
	for _, ch := range chunk {
		f, err := t.dir.Put(ctx, ch.k, ch.c)
		if err != nil {
			return first, err
		}
		first = append(first, f)
	}
	return first, nil
}

func (t *Tracker) requeue(k Key, e *entry) {
	t.mu.Lock()
	if !e.dirty {
		e.dirty = true
		t.queue = append(t.queue, k)
	}
	t.mu.Unlock()
}

// forget drops k's entry if it still has no connection.
func (t *Tracker) forget(k Key, e *entry) {
	t.mu.Lock()
	if e.total() == 0 && !e.dirty {
		delete(t.users, k)
	}
	t.mu.Unlock()
}

// endGraces removes the entries of users whose grace is over.
func (t *Tracker) endGraces(now time.Time) {
	var over []Key
	t.mu.Lock()
	for k, e := range t.users {
		if e.held && e.graceUntil != 0 && now.UnixNano() >= e.graceUntil && e.total() == 0 && !e.dirty {
			over = append(over, k)
		}
	}
	t.mu.Unlock()
	var offline []Key
	defer func() { t.send(EventOffline, offline) }()
	for _, k := range over {
		ctx, cancel := t.opCtx()
		last, err := t.remove(ctx, k)
		cancel()
		if err != nil { // retried at the next tick, with the others
			t.log.Warn("presence: directory remove failed; retried", "users", len(over), "err", err)
			return
		}
		t.mu.Lock()
		e := t.users[k]
		e.held, e.graceUntil = false, 0
		if e.total() == 0 && !e.dirty {
			delete(t.users, k)
		}
		t.mu.Unlock()
		if last {
			offline = append(offline, k)
		}
	}
}

// remove deletes k's entry from the directory; on a single node, k is
// then offline.
func (t *Tracker) remove(ctx context.Context, k Key) (last bool, err error) {
	if t.dir == nil {
		return true, nil
	}
	return t.dir.Remove(ctx, k)
}

// refresh renews every entry this node holds.
func (t *Tracker) refresh() {
	if t.dir == nil {
		return
	}
	held := map[Key]Counts{}
	t.mu.Lock()
	for k, e := range t.users {
		if e.held {
			held[k] = e.countsMap()
		}
	}
	t.mu.Unlock()
	ctx, cancel := t.opCtx()
	defer cancel()
	if err := t.dir.Refresh(ctx, held); err != nil {
		t.log.Warn("presence: refresh failed", "entries", len(held), "err", err)
	}
}

// reap emits user.offline for the users of dead nodes.
func (t *Tracker) reap(r Reaper) {
	ctx, cancel := t.opCtx()
	defer cancel()
	gone, err := r.Reap(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Warn("presence: reaping dead nodes failed", "err", err)
	}
	t.send(EventOffline, gone)
}

// send emits event for ks, if any.
func (t *Tracker) send(event string, ks []Key) {
	if len(ks) == 0 {
		return
	}
	ctx, cancel := t.opCtx()
	defer cancel()
	t.emit(ctx, event, ks)
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
