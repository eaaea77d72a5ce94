package admission

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/audit/audittest"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/session/sessiontest"
)

const (
	ipA = "192.0.2.1"
	ipB = "192.0.2.2"
)

// admitCase is one row of TestAdmit.
type admitCase struct {
	name string
	cfg  func(t *testing.T) Config // fresh limiters for each case
	// prior are admitted first (and must be); draining is switched on after them.
	prior    []Request
	draining bool
	req      Request
	want     Refusal
}

// admitCases is the TestAdmit table.
func admitCases() []admitCase {
	unauth := func(tr Transport, ip string) Request { return Request{Transport: tr, IP: ip} }
	authed := func(tr Transport, ip string) Request { return Request{Transport: tr, IP: ip, Authenticated: true} }
	return []admitCase{
		{name: "no limits", cfg: none, req: unauth(WebSocket, ipA), want: RefusedNone},
		{name: "draining", cfg: none, draining: true, req: authed(SSE, ipA), want: RefusedDraining},
		{name: "draining before node full", cfg: maxConns(1), prior: []Request{authed(WebSocket, ipA)},
			draining: true, req: authed(WebSocket, ipB), want: RefusedDraining},
		{name: "node full", cfg: maxConns(1), prior: []Request{authed(WebSocket, ipA)},
			req: authed(WebSocket, ipB), want: RefusedNodeFull},
		{name: "node cap counts every transport", cfg: maxConns(2),
			prior: []Request{authed(WebSocket, ipA), unauth(SSE, ipA)}, req: authed(SocketIO, ipB), want: RefusedNodeFull},
		{name: "node cap not reached", cfg: maxConns(2), prior: []Request{authed(WebSocket, ipA)},
			req: unauth(SSE, ipB), want: RefusedNone},
		{name: "node full before handshake rate", cfg: func(t *testing.T) Config {
			return Config{MaxConnections: 1, Handshakes: sessiontest.NewRate(0)}
		}, prior: []Request{authed(WebSocket, ipA)}, req: unauth(WebSocket, ipA), want: RefusedNodeFull},
		{name: "handshake rate", cfg: handshakes(1), prior: []Request{unauth(WebSocket, ipA)},
			req: unauth(SSE, ipA), want: RefusedHandshakeRate},
		{name: "handshake rate is per address", cfg: handshakes(1), prior: []Request{unauth(WebSocket, ipA)},
			req: unauth(WebSocket, ipB), want: RefusedNone},
		{name: "handshake rate skips authenticated requests", cfg: handshakes(0),
			req: authed(SSE, ipA), want: RefusedNone},
		{name: "unauthenticated cap", cfg: maxUnauth(1), prior: []Request{unauth(WebSocket, ipA)},
			req: unauth(SocketIO, ipB), want: RefusedUnauthenticated},
		{name: "unauthenticated cap skips authenticated requests", cfg: maxUnauth(1),
			prior: []Request{unauth(WebSocket, ipA)}, req: authed(WebSocket, ipB), want: RefusedNone},
		{name: "authenticated connections are not pending", cfg: maxUnauth(1),
			prior: []Request{authed(WebSocket, ipA), authed(SSE, ipA)}, req: unauth(WebSocket, ipB), want: RefusedNone},
		{name: "handshake rate before unauthenticated cap", cfg: func(t *testing.T) Config {
			return Config{MaxUnauthenticated: 1, Handshakes: sessiontest.NewRate(1)}
		}, prior: []Request{unauth(WebSocket, ipA)}, req: unauth(WebSocket, ipA), want: RefusedHandshakeRate},
		{name: "per address", cfg: perIP(1), prior: []Request{unauth(WebSocket, ipA)},
			req: unauth(SSE, ipA), want: RefusedPerIP},
		{name: "per address applies to authenticated requests", cfg: perIP(1),
			prior: []Request{authed(WebSocket, ipA)}, req: authed(SocketIO, ipA), want: RefusedPerIP},
		{name: "per address other address", cfg: perIP(1), prior: []Request{unauth(WebSocket, ipA)},
			req: unauth(WebSocket, ipB), want: RefusedNone},
		{name: "unauthenticated cap before per address", cfg: func(t *testing.T) Config {
			return Config{MaxUnauthenticated: 1, ConnsPerIP: sessiontest.NewConns(t, 1)}
		}, prior: []Request{unauth(WebSocket, ipA)}, req: unauth(WebSocket, ipA), want: RefusedUnauthenticated},
	}
}

func TestAdmit(t *testing.T) {
	for _, tt := range admitCases() {
		t.Run(tt.name, func(t *testing.T) { runAdmitCase(t, tt) })
	}
}

// runAdmitCase admits tt.prior, then tt.req, and checks the outcome, the
// counters and that releasing every slot returns the controller to empty.
func runAdmitCase(t *testing.T, tt admitCase) {
	cfg := tt.cfg(t)
	var draining atomic.Bool
	cfg.Draining = draining.Load
	c := New(cfg)
	var slots []*Slot
	for _, p := range tt.prior {
		s, r := attemptAdmit(c, p)
		if r != RefusedNone {
			t.Fatalf("prior %+v refused: %v", p, r)
		}
		slots = append(slots, s)
	}
	draining.Store(tt.draining)
	activeBefore, pendingBefore := c.Active(), c.Pending()

	s, r := attemptAdmit(c, tt.req)
	if r != tt.want {
		t.Fatalf("Admit(%+v) = %v, want %v", tt.req, r, tt.want)
	}
	if (s == nil) != (r != RefusedNone) {
		t.Fatalf("Admit returned slot %v with refusal %v", s, r)
	}
	if r != RefusedNone {
		checkAdmitRefused(t, c, tt.req, activeBefore, pendingBefore)
	} else {
		slots = append(slots, s)
		checkAdmitted(t, c, s, tt.req, activeBefore, pendingBefore)
	}
	checkAdmitRelease(t, c, cfg, len(tt.prior)+1, slots)
}

// checkAdmitRefused checks that a refusal left active/pending alone and was
// counted once.
func checkAdmitRefused(t *testing.T, c *Controller, req Request, activeBefore, pendingBefore int64) {
	t.Helper()
	st := c.Stats()[req.Transport.String()]
	if c.Active() != activeBefore || c.Pending() != pendingBefore {
		t.Errorf("a refusal changed active/pending: %d/%d -> %d/%d",
			activeBefore, pendingBefore, c.Active(), c.Pending())
	}
	if st.Refused != 1 {
		t.Errorf("refused = %d, want 1", st.Refused)
	}
}

// checkAdmitted checks the slot an admission returned and the active/pending
// counts it moved.
func checkAdmitted(t *testing.T, c *Controller, s *Slot, req Request, activeBefore, pendingBefore int64) {
	t.Helper()
	if s.IP() != req.IP || s.Transport() != req.Transport {
		t.Errorf("slot is %s/%v, want %s/%v", s.IP(), s.Transport(), req.IP, req.Transport)
	}
	if c.Active() != activeBefore+1 {
		t.Errorf("active %d, want %d", c.Active(), activeBefore+1)
	}
	wantPending := pendingBefore
	if !req.Authenticated {
		wantPending++
	}
	if c.Pending() != wantPending {
		t.Errorf("pending %d, want %d", c.Pending(), wantPending)
	}
}

// checkAdmitRelease checks the attempt count and per-address slots, releases
// slots and checks that nothing is left held.
func checkAdmitRelease(t *testing.T, c *Controller, cfg Config, wantAttempts int, slots []*Slot) {
	t.Helper()
	var attempts int64
	for _, ts := range c.Stats() {
		attempts += ts.Attempts
	}
	if want := int64(wantAttempts); attempts != want {
		t.Errorf("attempts %d, want %d", attempts, want)
	}
	if f, ok := cfg.ConnsPerIP.(*sessiontest.Conns); ok && f.Total() != len(slots) {
		t.Errorf("per-address slots held %d, want %d", f.Total(), len(slots))
	}
	for _, s := range slots {
		s.Release()
	}
	if c.Active() != 0 || c.Pending() != 0 {
		t.Errorf("after release: active %d, pending %d", c.Active(), c.Pending())
	}
	if f, ok := cfg.ConnsPerIP.(*sessiontest.Conns); ok && f.Total() != 0 {
		t.Errorf("per-address slots still held after release: %d", f.Total())
	}
}

func none(*testing.T) Config { return Config{} }

func maxConns(n int64) func(*testing.T) Config {
	return func(*testing.T) Config { return Config{MaxConnections: n} }
}

func maxUnauth(n int64) func(*testing.T) Config {
	return func(*testing.T) Config { return Config{MaxUnauthenticated: n} }
}

func handshakes(allow int) func(*testing.T) Config {
	return func(*testing.T) Config { return Config{Handshakes: sessiontest.NewRate(allow)} }
}

func perIP(n int) func(*testing.T) Config {
	return func(t *testing.T) Config { return Config{ConnsPerIP: sessiontest.NewConns(t, n)} }
}

func TestAdmitDoesNotTakeAHandshakeTokenWhenRefusedEarlier(t *testing.T) {
	rate := sessiontest.NewRate(10)
	c := New(Config{MaxConnections: 1, Handshakes: rate, Draining: func() bool { return false }})
	s, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA, Authenticated: true})
	if r != RefusedNone {
		t.Fatal(r)
	}
	defer s.Release()
	if _, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA}); r != RefusedNodeFull {
		t.Fatalf("got %v, want node_full", r)
	}
	if got := rate.Asked(); len(got) != 0 {
		t.Errorf("handshake limiter asked %v after node_full", got)
	}
}

func TestAdmitRefusalsAreObservedAndAudited(t *testing.T) {
	var counter audittest.Counter
	var mu sync.Mutex
	attempts := map[Transport]int{}
	refused := map[Refusal]int{}
	failed := map[Transport]int{}
	var draining atomic.Bool
	c := New(Config{
		MaxConnections: 2,
		Handshakes:     sessiontest.NewRate(1),
		ConnsPerIP:     sessiontest.NewConns(t, 1),
		Draining:       draining.Load,
		Audit:          counter.Recorder(),
		Observer: Observer{
			Attempt: func(tr Transport) { mu.Lock(); attempts[tr]++; mu.Unlock() },
			Refused: func(_ Transport, r Refusal) { mu.Lock(); refused[r]++; mu.Unlock() },
			Failed:  func(tr Transport) { mu.Lock(); failed[tr]++; mu.Unlock() },
		},
	})
	s1, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
	if r != RefusedNone {
		t.Fatal(r)
	}
	if _, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA}); r != RefusedHandshakeRate {
		t.Fatalf("got %v, want handshake", r)
	}
	if _, r := attemptAdmit(c, Request{Transport: SSE, IP: ipA, Authenticated: true}); r != RefusedPerIP {
		t.Fatalf("got %v, want per_ip", r)
	}
	s2, r := attemptAdmit(c, Request{Transport: SSE, IP: ipB, Authenticated: true})
	if r != RefusedNone {
		t.Fatal(r)
	}
	if _, r := attemptAdmit(c, Request{Transport: SocketIO, IP: ipB, Authenticated: true}); r != RefusedNodeFull {
		t.Fatalf("got %v, want node_full", r)
	}
	draining.Store(true)
	if _, r := attemptAdmit(c, Request{Transport: SocketIO, IP: ipB, Authenticated: true}); r != RefusedDraining {
		t.Fatalf("got %v, want draining", r)
	}
	s1.Release() // never opened: failed
	s2.Opened()
	s2.Release()

	mu.Lock()
	defer mu.Unlock()
	if want := map[Transport]int{WebSocket: 2, SSE: 2, SocketIO: 2}; fmt.Sprint(attempts) != fmt.Sprint(want) {
		t.Errorf("observed attempts %v, want %v", attempts, want)
	}
	wantRefused := map[Refusal]int{RefusedHandshakeRate: 1, RefusedPerIP: 1, RefusedNodeFull: 1, RefusedDraining: 1}
	if fmt.Sprint(refused) != fmt.Sprint(wantRefused) {
		t.Errorf("observed refusals %v, want %v", refused, wantRefused)
	}
	if want := map[Transport]int{WebSocket: 1}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("observed failures %v, want %v", failed, want)
	}
	// Draining is not a security event: three refusals are audited.
	want := []audittest.Event{
		{Event: audit.RateLimited, Transport: "ws"},
		{Event: audit.LimitExceeded, Transport: "sse"},
		{Event: audit.LimitExceeded, Transport: "socketio"},
	}
	if got := counter.All(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audited %v, want %v", got, want)
	}
}

func TestSlotReleaseIsIdempotent(t *testing.T) {
	ips := sessiontest.NewConns(t, 1)
	users := sessiontest.NewConns(t, 1)
	failed := 0
	c := New(Config{MaxConnections: 1, MaxUnauthenticated: 1, ConnsPerIP: ips, ConnsPerUser: users,
		Observer: Observer{Failed: func(Transport) { failed++ }}})
	s, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
	if r != RefusedNone {
		t.Fatal(r)
	}
	if !s.AcquireUser("t", "alice") {
		t.Fatal("AcquireUser refused")
	}
	s.ReleaseUser("t", "alice") // the owner (session.Session) gives it back
	for range 3 {
		s.Release()
	}
	if c.Active() != 0 || c.Pending() != 0 {
		t.Errorf("active %d, pending %d after release", c.Active(), c.Pending())
	}
	if ips.Total() != 0 || users.Total() != 0 || ips.Releases() != 1 || users.Releases() != 1 {
		t.Errorf("limiters: ip held %d released %d, user held %d released %d",
			ips.Total(), ips.Releases(), users.Total(), users.Releases())
	}
	if failed != 1 {
		t.Errorf("failed observed %d times, want 1", failed)
	}
	if st := c.Stats()["ws"]; st.Active != 0 || st.Failed != 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
	// Everything is free again.
	s2, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
	if r != RefusedNone {
		t.Fatalf("after release: %v", r)
	}
	s2.Release()

	var nilSlot *Slot
	nilSlot.Release() // must not panic
}

func TestSlotUsers(t *testing.T) {
	var counter audittest.Counter
	users := sessiontest.NewConns(t, 1)
	c := New(Config{ConnsPerUser: users, Audit: counter.Recorder()})
	admit := func() *Slot {
		t.Helper()
		s, r := attemptAdmit(c, Request{Transport: SocketIO, IP: ipA})
		if r != RefusedNone {
			t.Fatal(r)
		}
		return s
	}
	s1, s2 := admit(), admit()
	alice, bob := UserKey("t", "alice"), UserKey("t", "bob")

	// One slot may hold several users (Socket.IO namespaces).
	if !s1.AcquireUser("t", "alice") || !s1.AcquireUser("t", "bob") {
		t.Fatal("s1 refused")
	}
	if s2.AcquireUser("t", "alice") {
		t.Fatal("second connection of alice admitted over the per-user cap of 1")
	}
	if got := counter.All(); len(got) != 1 || got[0] != (audittest.Event{Event: audit.LimitExceeded, Transport: "socketio"}) {
		t.Errorf("audited %v, want one limit_exceeded", got)
	}
	if !s2.AcquireUser("u", "alice") {
		t.Error("alice of another tenant refused")
	}
	// A refused AcquireUser is not a refused connection.
	if st := c.Stats()["socketio"]; st.Refused != 0 || st.Attempts != 2 {
		t.Errorf("stats %+v", st)
	}

	// ReleaseUser gives back one use (its owner calls it once per
	// AcquireUser).
	s1.ReleaseUser("t", "alice")
	if users.Held(alice) != 0 || users.Held(bob) != 1 {
		t.Errorf("held: alice %d, bob %d", users.Held(alice), users.Held(bob))
	}
	if !s2.AcquireUser("t", "alice") {
		t.Fatal("alice refused after s1 released her")
	}
	s1.ReleaseUser("t", "bob")
	s2.ReleaseUser("t", "alice")
	s2.ReleaseUser("u", "alice")
	s1.Release()
	s2.Release()
	if n := users.Total(); n != 0 {
		t.Errorf("%d per-user slots held after every release", n)
	}
	// A released slot takes no per-user slot (and leaks none).
	if s1.AcquireUser("t", "carol") {
		t.Error("AcquireUser succeeded on a released slot")
	}
	if n := users.Total(); n != 0 {
		t.Errorf("%d per-user slots held after AcquireUser on a released slot", n)
	}
}

func TestSlotUsersWithoutLimiter(t *testing.T) {
	c := New(Config{})
	s, _ := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
	if !s.AcquireUser("t", "alice") || !s.AcquireUser("t", "alice") {
		t.Fatal("refused without a limiter")
	}
	s.ReleaseUser("t", "alice")
	s.Release()
	if s.AcquireUser("t", "alice") {
		t.Error("AcquireUser succeeded on a released slot")
	}
}

func TestSlotOpenedIsIdempotent(t *testing.T) {
	c := New(Config{})
	s, _ := attemptAdmit(c, Request{Transport: SSE, IP: ipA})
	if c.Pending() != 1 {
		t.Fatalf("pending %d, want 1", c.Pending())
	}
	s.Opened()
	s.Opened()
	if c.Pending() != 0 {
		t.Errorf("pending %d after Opened twice, want 0", c.Pending())
	}
	if st := c.Stats()["sse"]; st.Opened != 1 || st.Pending != 0 || st.Active != 1 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	s.Release()
	s.Opened() // after release: no effect on the counts
	if c.Pending() != 0 {
		t.Errorf("pending %d", c.Pending())
	}
	if st := c.Stats()["sse"]; st.Opened != 1 || st.Active != 0 || st.Failed != 0 {
		t.Errorf("stats after release %+v", st)
	}
}

func TestSlotVerified(t *testing.T) {
	c := New(Config{MaxUnauthenticated: 1})
	s, _ := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
	if _, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipB}); r != RefusedUnauthenticated {
		t.Fatalf("got %v, want unauthenticated", r)
	}
	// A verified credential frees the unauthenticated slot, even if the
	// connection then never opens (a per-user refusal).
	s.Verified()
	s.Verified()
	if c.Pending() != 0 {
		t.Errorf("pending %d after Verified, want 0", c.Pending())
	}
	s2, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipB})
	if r != RefusedNone {
		t.Fatalf("after Verified: %v", r)
	}
	s.Opened() // already out of the unauthenticated count
	if c.Pending() != 1 {
		t.Errorf("pending %d, want 1 (s2 only)", c.Pending())
	}
	s.Release()
	s2.Verified()
	s2.Release() // verified, never opened: failed
	if c.Pending() != 0 || c.Active() != 0 {
		t.Errorf("pending %d active %d", c.Pending(), c.Active())
	}
	checkStats(t, c)
	if st := c.Stats()["ws"]; st.Opened != 1 || st.Failed != 2 || st.Refused != 1 {
		t.Errorf("stats %+v", st)
	}
}

// checkStats verifies the identities between the counts of every transport.
func checkStats(t testing.TB, c *Controller) {
	t.Helper()
	for name, st := range c.Stats() {
		if st.Attempts != st.Opened+st.Failed+st.Pending {
			t.Errorf("%s: attempts %d != opened %d + failed %d + pending %d", name, st.Attempts, st.Opened, st.Failed, st.Pending)
		}
		if st.Refused > st.Failed || st.Active < st.Pending || st.Active < 0 || st.Pending < 0 {
			t.Errorf("%s: inconsistent %+v", name, st)
		}
	}
}

func TestStatsAddUp(t *testing.T) {
	c := New(Config{ConnsPerIP: sessiontest.NewConns(t, 2)})
	admit := func(tr Transport, ip string, authed bool) *Slot {
		t.Helper()
		s, r := attemptAdmit(c, Request{Transport: tr, IP: ip, Authenticated: authed})
		if r != RefusedNone {
			t.Fatalf("%v from %s: %v", tr, ip, r)
		}
		return s
	}
	// ws: one opened and closed, one opened and open, one failed, one
	// pending, one refused.
	w1 := admit(WebSocket, "198.51.100.1", false)
	w1.Opened()
	w1.Release()
	w2 := admit(WebSocket, "198.51.100.2", false)
	w2.Opened()
	w3 := admit(WebSocket, "198.51.100.3", false)
	w3.Release()
	w4 := admit(WebSocket, ipA, false)
	w5 := admit(WebSocket, ipA, false)
	w5.Opened()
	if _, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA}); r != RefusedPerIP {
		t.Fatalf("got %v, want per_ip", r)
	}
	// sse: an authenticated request waiting for its Attach is pending too.
	s1 := admit(SSE, ipB, true)
	// socketio: a request the transport refused before admission (origin).
	c.Attempt(SocketIO)
	c.Rejected(SocketIO)
	checkStats(t, c)

	want := map[string]TransportStats{
		"ws":       {Attempts: 6, Refused: 1, Opened: 3, Failed: 2, Active: 3, Pending: 1},
		"sse":      {Attempts: 1, Refused: 0, Opened: 0, Failed: 0, Active: 1, Pending: 1},
		"socketio": {Attempts: 1, Refused: 1, Failed: 1},
	}
	if got := c.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	if c.Active() != 4 || c.Pending() != 1 { // Pending(): unauthenticated only
		t.Errorf("active %d pending %d, want 4 and 1", c.Active(), c.Pending())
	}
	for _, s := range []*Slot{w2, w4, w5, s1} {
		s.Release()
	}
	checkStats(t, c)
	want = map[string]TransportStats{
		"ws":       {Attempts: 6, Refused: 1, Opened: 3, Failed: 3, Active: 0, Pending: 0},
		"sse":      {Attempts: 1, Refused: 0, Opened: 0, Failed: 1, Active: 0, Pending: 0},
		"socketio": {Attempts: 1, Refused: 1, Failed: 1},
	}
	if got := c.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats after release\n got %+v\nwant %+v", got, want)
	}
	if _, ok := c.Stats()["rest"]; ok {
		t.Error("stats include a request transport")
	}
}

func TestStatsUnderConcurrency(t *testing.T) {
	c := New(Config{MaxConnections: 16, MaxUnauthenticated: 8, ConnsPerIP: sessiontest.NewConns(t, 3),
		ConnsPerUser: sessiontest.NewConns(t, 2), Handshakes: sessiontest.NewRate(1 << 30)})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				tr := ConnTransports[(g+i)%len(ConnTransports)]
				s, r := attemptAdmit(c, Request{Transport: tr, IP: fmt.Sprintf("192.0.2.%d", i%5), Authenticated: i%7 == 0})
				if r != RefusedNone {
					continue
				}
				if i%3 != 0 {
					if u := fmt.Sprint("u", i%4); s.AcquireUser("t", u) {
						s.Opened()
						s.ReleaseUser("t", u)
					}
				}
				s.Release()
				s.Release()
			}
		})
	}
	wg.Wait()
	checkStats(t, c)
	var attempts int64
	for _, st := range c.Stats() {
		attempts += st.Attempts
		if st.Active != 0 || st.Pending != 0 {
			t.Errorf("%+v left active or pending", st)
		}
	}
	if attempts != 8*200 {
		t.Errorf("attempts %d, want %d", attempts, 8*200)
	}
	if c.Active() != 0 || c.Pending() != 0 {
		t.Errorf("active %d, pending %d", c.Active(), c.Pending())
	}
	if ips := c.cfg.ConnsPerIP.(*sessiontest.Conns).Total(); ips != 0 {
		t.Errorf("%d per-address slots leaked", ips)
	}
	if users := c.cfg.ConnsPerUser.(*sessiontest.Conns).Total(); users != 0 {
		t.Errorf("%d per-user slots leaked", users)
	}
}

// TestCapsHoldUnderConcurrentAdmits admits two connections at once while
// both wait in a limiter after the cap checks (a Redis round trip).
func TestCapsHoldUnderConcurrentAdmits(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(barrier func()) Config
		req  Request
	}{
		{name: "node cap, waiting on the handshake rate", cfg: func(b func()) Config {
			r := sessiontest.NewRate(100)
			r.Block = b
			return Config{MaxConnections: 1, Handshakes: r}
		}, req: Request{Transport: WebSocket}},
		{name: "node cap, waiting on the per-address cap", cfg: func(b func()) Config {
			ips := sessiontest.NewConns(t, 100)
			ips.Block = b
			return Config{MaxConnections: 1, ConnsPerIP: ips}
		}, req: Request{Transport: WebSocket, Authenticated: true}},
		{name: "unauthenticated cap, waiting on the per-address cap", cfg: func(b func()) Config {
			ips := sessiontest.NewConns(t, 100)
			ips.Block = b
			return Config{MaxUnauthenticated: 1, ConnsPerIP: ips}
		}, req: Request{Transport: WebSocket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The barrier holds each Admit in the limiter until the other
			// one is there too, or has already been decided.
			var (
				mu                sync.Mutex
				cond              = sync.NewCond(&mu)
				arrived, finished int
			)
			barrier := func() {
				mu.Lock()
				defer mu.Unlock()
				arrived++
				cond.Broadcast()
				for arrived < 2 && finished == 0 {
					cond.Wait()
				}
			}
			c := New(tt.cfg(barrier))
			var admitted atomic.Int32
			slots := make(chan *Slot, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					req := tt.req
					req.IP = fmt.Sprint("192.0.2.", i)
					s, r := attemptAdmit(c, req)
					mu.Lock()
					finished++
					cond.Broadcast()
					mu.Unlock()
					if r == RefusedNone {
						admitted.Add(1)
						slots <- s
					}
				})
			}
			wg.Wait()
			close(slots)
			for s := range slots {
				s.Release() // only now: both decisions were made with both held
			}
			if n := admitted.Load(); n != 1 {
				t.Errorf("%d connections admitted under a cap of 1", n)
			}
		})
	}
}

func TestAllowRequest(t *testing.T) {
	t.Run("no limiter", func(t *testing.T) {
		c := New(Config{})
		if ok, abusive := c.AllowRequest(WebSocket, "t", "alice"); !ok || abusive {
			t.Errorf("got %v, %v", ok, abusive)
		}
	})
	tests := []struct {
		name         string
		abuseStrikes int
		wantAbuse    int // strikes from which the user is abusive
	}{
		{name: "default threshold", abuseStrikes: 0, wantAbuse: DefaultAbuseStrikes},
		{name: "configured threshold", abuseStrikes: 3, wantAbuse: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var counter audittest.Counter
			rate := sessiontest.NewRate(2)
			c := New(Config{Requests: rate, AbuseStrikes: tt.abuseStrikes, Audit: counter.Recorder()})
			if c.AbuseStrikes() != tt.wantAbuse {
				t.Errorf("AbuseStrikes() = %d, want %d", c.AbuseStrikes(), tt.wantAbuse)
			}
			for i := range 2 {
				if ok, abusive := c.AllowRequest(SSE, "t", "alice"); !ok || abusive {
					t.Fatalf("request %d: %v, %v", i, ok, abusive)
				}
			}
			for strikes := 1; strikes <= 25; strikes++ {
				ok, abusive := c.AllowRequest(SSE, "t", "alice")
				if ok || abusive != (strikes >= tt.wantAbuse) {
					t.Errorf("strike %d: ok %v abusive %v", strikes, ok, abusive)
				}
			}
			// Another user is not affected.
			if ok, _ := c.AllowRequest(SSE, "t", "bob"); !ok {
				t.Error("bob refused")
			}
			if got := rate.Asked()[0]; got != UserKey("t", "alice") {
				t.Errorf("limiter key %q, want UserKey", got)
			}
			// Refusals are recorded on the first and every tenth strike.
			want := []audittest.Event{{Event: audit.RateLimited, Transport: "sse"}, {Event: audit.RateLimited, Transport: "sse"}, {Event: audit.RateLimited, Transport: "sse"}}
			if got := counter.All(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("audited %v, want %v", got, want)
			}
		})
	}
}

func TestAllowPublish(t *testing.T) {
	if !New(Config{}).AllowPublish("k1") {
		t.Fatal("refused without a limiter")
	}
	var counter audittest.Counter
	rate := sessiontest.NewRate(1)
	c := New(Config{Publishes: rate, Audit: counter.Recorder()})
	if !c.AllowPublish("k1") {
		t.Fatal("first publish refused")
	}
	for i := 1; i <= 10; i++ {
		if c.AllowPublish("k1") {
			t.Fatalf("publish %d allowed over the rate", i+1)
		}
	}
	if !c.AllowPublish("k2") {
		t.Error("another key refused")
	}
	if got := rate.Asked(); got[0] != "k1" || got[len(got)-1] != "k2" {
		t.Errorf("limiter keys %v", got)
	}
	want := []audittest.Event{{Event: audit.RateLimited, Transport: "publish"}, {Event: audit.RateLimited, Transport: "publish"}}
	if got := counter.All(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audited %v, want %v", got, want)
	}
}

func TestTransportNames(t *testing.T) {
	want := map[Transport]string{WebSocket: "ws", SSE: "sse", SocketIO: "socketio", REST: "rest", Publish: "publish",
		transportCount: "unknown", 200: "unknown"}
	for tr, name := range want {
		if tr.String() != name {
			t.Errorf("Transport(%d) = %q, want %q", tr, tr.String(), name)
		}
	}
	if fmt.Sprint(ConnTransports) != "[ws sse socketio]" {
		t.Errorf("ConnTransports = %v", ConnTransports)
	}
}

func TestUserKeySeparatesTenants(t *testing.T) {
	if UserKey("t", "alice") == UserKey("u", "alice") || UserKey("ta", "b") == UserKey("t", "ab") {
		t.Error("user keys collide")
	}
}

// With a deferred limiter (limit.Keyed) a handshake that authenticates
// costs nothing, so any number of users behind one address can connect;
// each one that ends without authenticating costs a token, and once the
// address's budget is gone its handshakes are refused.
func TestAdmitChargesOnlyHandshakesThatNeverAuthenticate(t *testing.T) {
	c := New(Config{Handshakes: limit.NewKeyed(limit.Rate{Per: 0.001, Burst: 3}, 0, nil)})
	for i := range 50 { // 50 honest users behind one NAT
		s, r := attemptAdmit(c, Request{Transport: SocketIO, IP: ipA})
		if r != RefusedNone {
			t.Fatalf("honest handshake %d: %v", i, r)
		}
		s.Verified()
		s.Release()
	}
	for i := range 3 { // three that never authenticate use up the budget
		s, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA})
		if r != RefusedNone {
			t.Fatalf("failing handshake %d: %v", i, r)
		}
		s.Release()
	}
	if _, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipA}); r != RefusedHandshakeRate {
		t.Fatalf("after the budget is spent: %v, want handshake", r)
	}
	if s, r := attemptAdmit(c, Request{Transport: WebSocket, IP: ipB}); r != RefusedNone {
		t.Fatalf("another address: %v", r)
	} else {
		s.Release()
	}
	// A header-authenticated request never consults the handshake limit.
	if s, r := attemptAdmit(c, Request{Transport: SSE, IP: ipA, Authenticated: true}); r != RefusedNone {
		t.Fatalf("authenticated request: %v", r)
	} else {
		s.Release()
	}
}
