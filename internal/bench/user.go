package bench

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// user is one simulated user with at most one session at a time. Its reader
// goroutine (run) owns pos, times and first (the dialling goroutine sets
// them before the session's Read starts, and Sink calls of a session end
// before its Read returns); the counters are atomics because the progress
// ticker sums them.
type user struct {
	w     *worker      // static
	idx   int64        // static: global user index, also data.u of its notifications
	token string       // static
	url   string       // reader goroutine only (set before it starts): the node it dials
	urlAt int          // reader goroutine only: url's index in the worker's URLs
	local *net.TCPAddr // static: source address, nil for any

	mu        sync.Mutex
	sess      Session     // guarded by mu; nil while redialling
	churned   atomic.Bool // set under mu by churn before it closes sess
	live      atomic.Bool // a session is open and not being closed (set under mu)
	connected atomic.Bool // the first connect succeeded

	pos   Position     // reader goroutine only
	times sessionTimes // reader goroutine only: the current session's dial
	first bool         // reader goroutine only: no notification yet on the current session

	unicast, broadcast, dups, gaps, misrouted, malformed atomic.Int64
	replayed, resyncs, resyncSkipped, last               atomic.Int64
}

var _ Sink = (*user)(nil)

const (
	connectAttempts = 5
	backoffMin      = 50 * time.Millisecond
	backoffMax      = time.Second
)

// dial opens a session resuming at since ("" for the head): attempt number
// attempt of a (re)connect whose first attempt began at firstAttempt (unix
// ns). On success it records the session's dial times for the latency
// figures.
func (u *user) dial(since string, attempt int, firstAttempt int64) (Session, Position, error) {
	ctx, cancel := context.WithTimeout(u.w.ctx, wsDialTimeout)
	defer cancel()
	start := time.Now().UnixNano()
	var tcp DialTiming
	s, pos, err := u.w.tr.Dial(ctx, DialTarget{
		BaseURL: u.url, Local: u.local, Token: u.token, Since: since, AuthMessage: u.w.cfg.AuthMessage, Topic: u.w.cfg.Topic, Timing: &tcp,
	})
	u.w.synRetrans.Add(int64(tcp.SynRetrans)) // failed attempts' too
	if err == nil {
		u.times = sessionTimes{firstAttempt: firstAttempt, attempt: start, ready: time.Now().UnixNano(),
			attempts: attempt, resumed: since != "", tcp: tcp}
		u.first = true
		if since != "" {
			u.w.resumeDial.record(int(u.idx), (u.times.ready-start)/1000)
		}
	}
	return s, pos, err
}

// connectFirst opens the first session (from the head), retrying a few
// times, and starts the reader.
func (u *user) connectFirst(errCount *atomic.Int64) error {
	backoff := backoffMin
	began := time.Now().UnixNano()
	var err error
	for attempt := 0; attempt < connectAttempts; attempt++ {
		var (
			s   Session
			pos Position
		)
		if s, pos, err = u.dial("", attempt+1, began); err == nil {
			u.pos = pos
			u.start(s)
			return nil
		}
		errCount.Add(1)
		if u.w.ctx.Err() != nil {
			return err
		}
		u.w.warn("connect failed", "user", u.idx, "attempt", attempt+1, "err", err)
		sleepJitter(u.w.ctx, backoff)
		backoff = min(backoff*2, backoffMax)
	}
	return err
}

func (u *user) start(s Session) {
	u.mu.Lock()
	u.sess = s
	u.live.Store(true)
	u.mu.Unlock()
	u.connected.Store(true)
	u.w.readers.Add(1)
	go u.run(s)
}

// run reads sessions until the worker finishes, replacing each one that
// ends (churned or not) with a session resumed at the last position.
func (u *user) run(s Session) {
	w := u.w
	defer w.readers.Done()
	for {
		err := s.Read(u)
		u.mu.Lock()
		u.sess = nil
		u.live.Store(false)
		churned := u.churned.Swap(false)
		u.mu.Unlock()
		if w.finishing.Load() {
			return
		}
		if churned {
			u.sleepDown()
		} else {
			w.unexpected.Add(1)
			code := closeCode(err)
			w.noteClose(code, false)
			w.warn("session ended by the server", "user", u.idx, "code", code, "err", err)
		}
		if s = u.redial(); s == nil {
			return
		}
		u.mu.Lock()
		u.sess = s
		u.live.Store(true)
		u.mu.Unlock()
		if w.finishing.Load() { // shutdown may have missed the new session
			s.Close(false)
		}
	}
}

// redial resumes from u.pos until it succeeds or the worker finishes.
func (u *user) redial() Session {
	w := u.w
	backoff := backoffMin
	began := time.Now().UnixNano()
	for attempt := 1; !w.finishing.Load() && w.ctx.Err() == nil; attempt++ {
		since := u.pos
		s, pos, err := u.dial(since.String(), attempt, began)
		if err == nil {
			if pos != since {
				// The ready frame of a resume carries the resume position.
				u.gaps.Add(1)
				w.warn("resume position mismatch", "user", u.idx, "since", since.String(), "ready", pos.String())
				u.pos = pos
			}
			w.reconnects.Add(1)
			return s
		}
		w.reconnectFailures.Add(1)
		w.noteClose(closeCode(err), true)
		w.warn("reconnect failed", "user", u.idx, "url", u.url, "err", err)
		u.nextNode()
		sleepJitter(w.ctx, backoff)
		backoff = min(backoff*2, backoffMax)
	}
	return nil
}

// nextNode points the user at the next node, when there are several: a
// failed resume tries another node, as a client behind a load balancer
// would.
func (u *user) nextNode() {
	if urls := u.w.cfg.URLs; len(urls) > 1 {
		u.urlAt = (u.urlAt + 1) % len(urls)
		u.url = urls[u.urlAt]
	}
}

// sleepDown keeps a churned user away for a random time, cut short by quiesce.
func (u *user) sleepDown() {
	d := u.w.cfg.ChurnDown
	if d <= 0 {
		return
	}
	t := time.NewTimer(rand.N(d))
	defer t.Stop()
	select {
	case <-t.C:
	case <-u.w.quiesce:
	case <-u.w.ctx.Done():
	}
}

// churn closes the live session so that run resumes it; false if none, or
// if it is already churned and its reader has not yet seen it end (a
// second churn would count twice for one resume).
func (u *user) churn(graceful bool) bool {
	u.mu.Lock()
	s := u.sess
	if s == nil || u.churned.Load() {
		u.mu.Unlock()
		return false
	}
	u.churned.Store(true)
	u.live.Store(false)
	u.mu.Unlock()
	s.Close(graceful)
	return true
}

func (u *user) closeSession() {
	u.mu.Lock()
	s := u.sess
	u.mu.Unlock()
	if s != nil {
		s.Close(true)
	}
}

// Notification implements Sink: the per-user checks of every delivery.
func (u *user) Notification(d *Delivery) {
	now := time.Now().UnixNano()
	if d.Live { // a live event: no position to check; counted as a broadcast delivery
		u.broadcast.Add(1)
		u.record(d, now)
		u.last.Store(now)
		return
	}
	du, dt := d.Position.User-u.pos.User, d.Position.Tenant-u.pos.Tenant
	if du <= 0 && dt <= 0 {
		u.dups.Add(1)
		return
	}
	if du < 0 || dt < 0 || du+dt != 1 || (d.Broadcast && du != 0) || (!d.Broadcast && dt != 0) {
		u.gaps.Add(1)
		u.w.warn("gap in stream", "user", u.idx, "from", u.pos.String(), "to", d.Position.String(), "broadcast", d.Broadcast)
	}
	u.pos.User = max(u.pos.User, d.Position.User)
	u.pos.Tenant = max(u.pos.Tenant, d.Position.Tenant)
	u.w.delivered.add(d.Seq)
	if !d.Broadcast && d.User != u.idx {
		u.misrouted.Add(1)
		return
	}
	if d.Broadcast {
		u.broadcast.Add(1)
	} else {
		u.unicast.Add(1)
	}
	u.record(d, now)
	u.last.Store(now)
}

// record files a delivery's latency: live when it was published after the
// session was ready, replay otherwise (its latency then includes the time
// the client was away and its dial, which is not the server's delivery
// latency); the slowest of each class are kept with their context.
func (u *user) record(d *Delivery, now int64) {
	w, first := u.w, u.first
	u.first = false
	us := (now - d.Sent) / 1000
	lat, keep := w.lat, w.worstLive
	if d.Sent < u.times.ready {
		u.replayed.Add(1)
		lat, keep = w.replayLat, w.worstReplay
	}
	lat.record(int(u.idx), us)
	keep.offer(us, func() LatencySample {
		s := u.times.sample(d, now, first)
		s.User, s.URL, s.Transport = u.idx, u.url, w.transportName()
		return s
	})
}

// Resync implements Sink: the server skipped ahead (too much to replay).
func (u *user) Resync(p Position) {
	u.resyncs.Add(1)
	if skipped := max(p.User-u.pos.User, 0) + max(p.Tenant-u.pos.Tenant, 0); skipped > 0 {
		u.resyncSkipped.Add(skipped)
	}
	u.pos.User = max(u.pos.User, p.User)
	u.pos.Tenant = max(u.pos.Tenant, p.Tenant)
}

// Malformed implements Sink.
func (u *user) Malformed(msg []byte) {
	u.malformed.Add(1)
	u.w.warn("malformed notification", "user", u.idx, "msg", string(msg[:min(len(msg), 300)]))
}

func sleepJitter(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
