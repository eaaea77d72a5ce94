package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/notification"
)

// Store is what the hub needs from the store: reading a recipient's stream to
// replay what a client missed.
type Store interface {
	Since(ctx context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error)
	Head(ctx context.Context, r notification.Recipient) (notification.Position, error)
	// Counts are the recipient's unread, unseen and by-category counts,
	// with the preferences they apply.
	Counts(ctx context.Context, r notification.Recipient) (Counts, error)
	// HeadCounts is Head and Counts read together (the head and unread
	// total in one snapshot): what a fresh connection needs for its ready
	// frame.
	HeadCounts(ctx context.Context, r notification.Recipient) (notification.Position, Counts, error)
}

// Counts are a recipient's inbox counters, as the store reads them.
type Counts = notification.Counts

// Sender is a transport's side of a client: it turns frames into wire bytes.
type Sender interface {
	// Send queues f for writing. It must not block. An error wrapping
	// ErrSenderClosed means the transport is already closing: its session
	// ends the client with the real reason, so the hub leaves it be. Any
	// other error means the bounded outbound buffer is full: the hub then
	// closes the client with ReasonSlowConsumer.
	Send(f Frame) error
	// Close writes the close reason when the wire has a way to (close frame,
	// SSE event) and closes the transport. It may be called more than once.
	Close(reason CloseReason)
}

// Observer receives connection lifecycle notices (metrics, audit logs). All
// methods must be fast and non-blocking. Nil fields are skipped.
type Observer struct {
	Opened   func(transport string)
	Closed   func(transport string, reason CloseReason, lifetime time.Duration)
	Replayed func(items int, resync bool)
	// Delivered reports, once per live event, how many clients of this node
	// were written a frame of kind, and the notification's creation time
	// (zero for other kinds).
	Delivered func(kind FrameKind, frames int, created time.Time)
}

// Defaults of Config.
const (
	DefaultReplayLimit       = 1000
	DefaultReplayPage        = 200
	DefaultPendingLimit      = 1024
	DefaultReplayConcurrency = 32
	DefaultReplayTimeout     = 15 * time.Second
	DefaultExpiryCheck       = time.Second
)

// Config tunes the hub. The zero value means the documented defaults.
type Config struct {
	// ReplayLimit: a resume that would replay more items than this gets a
	// resync frame instead (the client refetches its list). Default
	// DefaultReplayLimit.
	ReplayLimit int
	// ReplayPage: items read from the store per query. Default DefaultReplayPage.
	ReplayPage int
	// PendingLimit: live events buffered per client while it replays; over
	// it the client is closed as a slow consumer. Default DefaultPendingLimit.
	PendingLimit int
	// ReplayConcurrency bounds concurrent store reads for replays, so that
	// a reconnect storm queues instead of overloading the store. Default
	// DefaultReplayConcurrency.
	ReplayConcurrency int
	// ReplayTimeout bounds one replay. Default DefaultReplayTimeout.
	ReplayTimeout time.Duration
	// ExpiryCheck: how often clients whose token expired are closed (4003).
	// No event is delivered after expiry in between. Default DefaultExpiryCheck.
	ExpiryCheck time.Duration
	Logger      *slog.Logger
	Observer    Observer
}

func (c *Config) setDefaults() {
	if c.ReplayLimit <= 0 {
		c.ReplayLimit = DefaultReplayLimit
	}
	if c.ReplayPage <= 0 {
		c.ReplayPage = DefaultReplayPage
	}
	if c.PendingLimit <= 0 {
		c.PendingLimit = DefaultPendingLimit
	}
	if c.ReplayConcurrency <= 0 {
		c.ReplayConcurrency = DefaultReplayConcurrency
	}
	if c.ReplayTimeout <= 0 {
		c.ReplayTimeout = DefaultReplayTimeout
	}
	if c.ExpiryCheck <= 0 {
		c.ExpiryCheck = DefaultExpiryCheck
	}
	defaults.Logger(&c.Logger)
}

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("hub: closed")

// ErrSenderClosed is what a Sender's Send returns (wrapped) once its
// transport is closing (see Sender).
var ErrSenderClosed = errors.New("hub: sender closed")

const shardCount = 64

type userKey struct{ tenant, user string }

// shard indexes the clients of its users. Most users have one connection
// per node: users holds it as the map's value (40-byte slots instead of
// 56 plus a slice per user), and more only the clients after the first.
type shard struct {
	mu    sync.RWMutex
	users map[userKey]*Client   // guarded by mu: each user's first client
	more  map[userKey][]*Client // guarded by mu: the others; nil until needed
}

// Hub indexes this node's authenticated clients by tenant and user and fans
// committed events out to them. It is safe for concurrent use.
type Hub struct {
	cfg   Config // static after New
	store Store  // static after New
	log   *slog.Logger
	seed  maphash.Seed

	shards  [shardCount]shard
	tshards [shardCount]topicShard // topic subscriptions (live.go)

	tmu     sync.RWMutex
	tenants map[string]map[*Client]struct{} // guarded by tmu

	transports transportNames // the clients' transport names

	replaySem chan struct{}
	ctx       context.Context // cancelled by Close: stops replays
	cancel    context.CancelFunc
	wg        sync.WaitGroup // replays and recounts in flight
	rc        recounts
	closed    atomic.Bool
	nextID    atomic.Uint64
	active    atomic.Int64
}

// New returns a hub that replays from store.
func New(store Store, cfg Config) *Hub {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:       cfg,
		store:     store,
		log:       cfg.Logger,
		seed:      maphash.MakeSeed(),
		tenants:   make(map[string]map[*Client]struct{}),
		replaySem: make(chan struct{}, cfg.ReplayConcurrency),
		ctx:       ctx,
		cancel:    cancel,
	}
	for i := range h.shards {
		h.shards[i].users = make(map[userKey]*Client)
		h.tshards[i].subs = make(map[topicKey]map[*Client]struct{})
	}
	h.wg.Add(1)
	go h.expiryLoop()
	return h
}

// expiryLoop closes clients whose token has expired. One loop per hub costs
// far less memory than a runtime timer per connection.
func (h *Hub) expiryLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.ExpiryCheck)
	defer t.Stop()
	var expired []*Client
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			expired = expired[:0]
			h.tmu.RLock()
			for _, set := range h.tenants {
				for c := range set {
					c.mu.Lock()
					if c.expiredLocked(now) {
						expired = append(expired, c)
					}
					c.mu.Unlock()
				}
			}
			h.tmu.RUnlock()
			for _, c := range expired {
				c.Close(ReasonTokenExpired)
			}
			clear(expired)
		}
	}
}

// Active is the number of attached clients.
func (h *Hub) Active() int64 { return h.active.Load() }

// NextConnID returns a process-unique connection id for logs.
func (h *Hub) NextConnID() uint64 { return h.nextID.Add(1) }

func (h *Hub) shardFor(k userKey) *shard {
	return &h.shards[h.hashPair(k.tenant, k.user)%shardCount]
}

// hashPair hashes a (tenant, name) pair with the hub's seed, for sharding.
func (h *Hub) hashPair(tenant, name string) uint64 {
	var m maphash.Hash
	m.SetSeed(h.seed)
	m.WriteString(tenant)
	m.WriteByte(0)
	m.WriteString(name)
	return m.Sum64()
}

// AttachOptions describe a newly authenticated client.
type AttachOptions struct {
	ConnID    uint64
	Transport string // "ws", "sse", "socketio": for logs and metrics
	Recipient notification.Recipient
	// Since is where the client resumes; nil means "from now" (the head).
	Since *notification.Position
	// Expires is when the client's token expires (plus leeway); zero: never.
	Expires time.Time
	// TokenID is the token's jti, for token revocation.
	TokenID string
}

// Attach registers an authenticated client and starts its replay: a ready
// frame, then everything after Since (or nothing, from the head), then live
// events, with no gap and no duplicate at the seam.
func (h *Hub) Attach(s Sender, o AttachOptions) (*Client, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	c := &Client{
		hub:       h,
		sender:    s,
		id:        o.ConnID,
		transport: h.transports.index(o.Transport),
		r:         o.Recipient,
		started:   time.Now().UnixNano(),
		state:     stateReplaying,
		tokenID:   o.TokenID,
	}
	if o.Since != nil {
		c.cursor = *o.Since
	}
	c.setExpiryLocked(o.Expires)
	h.register(c)
	h.active.Add(1)
	if f := h.cfg.Observer.Opened; f != nil {
		f(o.Transport)
	}
	h.wg.Add(1)
	go c.catchUp(o.Since == nil, true)
	return c, nil
}

func (h *Hub) register(c *Client) {
	k := userKey{c.r.Tenant, c.r.User}
	sh := h.shardFor(k)
	sh.mu.Lock()
	sh.add(k, c)
	sh.mu.Unlock()

	h.tmu.Lock()
	set := h.tenants[c.r.Tenant]
	if set == nil {
		set = make(map[*Client]struct{})
		h.tenants[c.r.Tenant] = set
	}
	set[c] = struct{}{}
	h.tmu.Unlock()
}

func (h *Hub) unregister(c *Client) {
	k := userKey{c.r.Tenant, c.r.User}
	sh := h.shardFor(k)
	sh.mu.Lock()
	sh.remove(k, c)
	sh.mu.Unlock()

	h.tmu.Lock()
	if set := h.tenants[c.r.Tenant]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.tenants, c.r.Tenant)
		}
	}
	h.tmu.Unlock()
	c.dropTopics()
	h.active.Add(-1)
}

// forUser calls fn for each client of one user. fn runs under the shard's read
// lock and must not block.
func (h *Hub) forUser(tenant, user string, fn func(*Client)) {
	k := userKey{tenant, user}
	sh := h.shardFor(k)
	sh.mu.RLock()
	if c := sh.users[k]; c != nil {
		fn(c)
		for _, c := range sh.more[k] {
			fn(c)
		}
	}
	sh.mu.RUnlock()
}

// add indexes c under k. The caller holds sh.mu.
func (sh *shard) add(k userKey, c *Client) {
	if sh.users[k] == nil {
		sh.users[k] = c
		return
	}
	if sh.more == nil {
		sh.more = make(map[userKey][]*Client)
	}
	sh.more[k] = append(sh.more[k], c)
}

// remove drops c from k's clients; the last of more takes the first's
// place. The caller holds sh.mu.
func (sh *shard) remove(k userKey, c *Client) {
	list := sh.more[k]
	if sh.users[k] == c {
		if len(list) == 0 {
			delete(sh.users, k)
			return
		}
		sh.users[k] = list[len(list)-1]
		c = list[len(list)-1]
	}
	for i, x := range list {
		if x == c {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			list = list[:last]
			break
		}
	}
	if len(list) == 0 {
		delete(sh.more, k)
	} else {
		sh.more[k] = list
	}
}

// Deliver fans a committed event out to this node's clients. It never blocks
// on a client: each client's delivery is a non-blocking write to its bounded
// buffer. Safe for concurrent use, but events of one stream must be delivered
// in commit order (the broker guarantees it per partition).
func (h *Hub) Deliver(ev *notification.Event) {
	if ev == nil || h.closed.Load() {
		return
	}
	switch ev.Kind {
	case notification.EventNotification:
		if ev.Notification == nil {
			return
		}
		out := &outbound{ev: ev, payload: EncodeNotification(ev.Notification, false)}
		sent := 0
		if ev.Notification.Audience.Broadcast() {
			// Copy the tenant's clients and fan out without the index lock,
			// so connects and disconnects never wait for a large broadcast.
			// A client that attaches meanwhile misses nothing: it reads its
			// head after registering, and this event is already committed.
			h.tmu.RLock()
			set := h.tenants[ev.Tenant]
			clients := make([]*Client, 0, len(set))
			for c := range set {
				clients = append(clients, c)
			}
			h.tmu.RUnlock()
			sent = fanOut(clients, func(c *Client) bool { return c.offer(out, nil) })
		} else {
			for i := range ev.Deliveries {
				d := &ev.Deliveries[i]
				h.forUser(ev.Tenant, d.User, func(c *Client) {
					if c.offer(out, d) {
						sent++
					}
				})
			}
		}
		if f := h.cfg.Observer.Delivered; f != nil {
			f(FrameNotification, sent, ev.Notification.CreatedAt)
		}
	case notification.EventRead, notification.EventDeleted, notification.EventArchived, notification.EventUnarchived,
		notification.EventSeen, notification.EventPreferences:
		h.deliverUserChange(ev)
	case notification.EventExpired:
		h.deliverExpired(ev)
	case notification.EventLive:
		if ev.Live != nil {
			h.deliverLive(ev.Live)
		}
	case notification.EventRevoke:
		var victims []*Client
		if ev.User != "" {
			h.forUser(ev.Tenant, ev.User, func(c *Client) { victims = append(victims, c) })
		} else if ev.TokenID != "" {
			for _, c := range h.Clients() {
				if c.TokenID() == ev.TokenID {
					victims = append(victims, c)
				}
			}
		}
		for _, c := range victims {
			c.Close(ReasonRevoked)
		}
	}
}

// userFrames are the frames of the state changes of one user.
var userFrames = map[notification.EventKind]FrameKind{
	notification.EventRead:        FrameRead,
	notification.EventDeleted:     FrameDeleted,
	notification.EventArchived:    FrameArchived,
	notification.EventUnarchived:  FrameUnarchived,
	notification.EventSeen:        FrameUnread,
	notification.EventPreferences: FramePreferences,
}

// deliverUserChange sends a state change of one user to every connection
// of that user on this node (the user's tabs, see docs/protocol.md).
func (h *Hub) deliverUserChange(ev *notification.Event) {
	out := &outbound{ev: ev}
	switch ev.Kind {
	case notification.EventRead, notification.EventArchived, notification.EventUnarchived:
		out.payload = encodeRead(ev.IDs, ev.All)
	case notification.EventDeleted:
		if len(ev.IDs) > 0 {
			out.payload = encodeDeleted(ev.IDs[0])
		}
	case notification.EventPreferences:
		out.payload = encodePreferences(ev.Prefs)
	}
	if ev.Kind != notification.EventPreferences {
		out.unread = encodeUnread(ev.Unread, ev.Unseen, ev.ByCategory)
	}
	sent := 0
	h.forUser(ev.Tenant, ev.User, func(c *Client) {
		if c.offer(out, nil) {
			sent++
		}
	})
	if f := h.cfg.Observer.Delivered; f != nil {
		f(userFrames[ev.Kind], sent, time.Time{})
	}
}

// parallelFanOut is the broadcast size from which fan-out is split over
// GOMAXPROCS goroutines. Each write is a syscall, so a large broadcast is
// bound by one core otherwise. Deliver still returns only when every client
// has been offered the event, so per-client order is kept.
const parallelFanOut = 2048

func fanOut(clients []*Client, offer func(*Client) bool) int {
	workers := runtime.GOMAXPROCS(0)
	if len(clients) < parallelFanOut || workers < 2 {
		sent := 0
		for _, c := range clients {
			if offer(c) {
				sent++
			}
		}
		return sent
	}
	var wg sync.WaitGroup
	var sent atomic.Int64
	chunk := (len(clients) + workers - 1) / workers
	for start := 0; start < len(clients); start += chunk {
		part := clients[start:min(start+chunk, len(clients))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for _, c := range part {
				if offer(c) {
					n++
				}
			}
			sent.Add(int64(n))
		}()
	}
	wg.Wait()
	return int(sent.Load())
}

// CatchUpAll makes every client re-read its stream from its cursor, e.g. after
// the broker reconnected and may have missed events while it was away.
func (h *Hub) CatchUpAll() {
	for _, c := range h.Clients() {
		c.requestCatchUp()
	}
}

// Clients returns a snapshot of attached clients.
func (h *Hub) Clients() []*Client {
	h.tmu.RLock()
	out := make([]*Client, 0, 64)
	for _, set := range h.tenants {
		for c := range set {
			out = append(out, c)
		}
	}
	h.tmu.RUnlock()
	return out
}

// CloseAll closes every client with reason (e.g. ReasonShutdown).
func (h *Hub) CloseAll(reason CloseReason) {
	for _, c := range h.Clients() {
		c.Close(reason)
	}
}

// Close stops accepting clients, closes the attached ones with reason and
// waits for replays in flight to stop.
func (h *Hub) Close(reason CloseReason) {
	if !h.closed.CompareAndSwap(false, true) {
		return
	}
	h.cancel()
	h.CloseAll(reason)
	h.wg.Wait()
}

// outbound is an event encoded once for all of this node's recipients.
type outbound struct {
	ev      *notification.Event
	payload []byte   // notification object (open) or the read/deleted object
	unread  []byte   // read/deleted: the {"count":N} object
	expired [][]byte // expired: one deleted object per id
}
