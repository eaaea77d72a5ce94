package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m) }

// Every idle connection holds a Client: a field that pushes it past the
// 208-byte size class costs every connection the next class (224 or
// more), as the 336-byte Client did (docs/benchmarks.md, issue 14).
func TestClientFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Client{}); n > 208 {
		t.Fatalf("Client is %d bytes, more than 208: shrink it or pack its fields", n)
	}
}

// Transport names are interned: each name keeps its index, and names past
// the table's size read as "other".
func TestTransportNamesInterned(t *testing.T) {
	var tn transportNames
	ws, sse := tn.index("ws"), tn.index("sse")
	if ws == sse || tn.index("ws") != ws || tn.name(ws) != "ws" || tn.name(sse) != "sse" {
		t.Fatalf("ws %d sse %d: names %q %q", ws, sse, tn.name(ws), tn.name(sse))
	}
	for i := range 300 {
		tn.index(fmt.Sprintf("t%d", i))
	}
	if got := tn.name(tn.index("t299")); got != otherTransport {
		t.Fatalf("a name past the table reads %q", got)
	}
	if tn.name(ws) != "ws" {
		t.Fatal("an early name lost its index")
	}
}

// A user's clients are indexed as the first one plus the others: every
// order of leaving keeps exactly the clients still there.
func TestUserIndexFirstAndMore(t *testing.T) {
	k := userKey{"acme", "ann"}
	for order := range 6 {
		var sh shard
		sh.users = map[userKey]*Client{}
		cs := []*Client{{}, {}, {}}
		for _, c := range cs {
			sh.add(k, c)
		}
		leave := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}[order]
		left := map[*Client]bool{}
		for _, i := range leave {
			sh.remove(k, cs[i])
			left[cs[i]] = true
			var got []*Client
			if c := sh.users[k]; c != nil {
				got = append(append(got, c), sh.more[k]...)
			}
			for _, c := range cs {
				if slices.Contains(got, c) == left[c] {
					t.Fatalf("order %v after removing %d: index %v", leave, i, got)
				}
			}
			if len(got) != len(cs)-len(left) {
				t.Fatalf("order %v: %d clients indexed, want %d", leave, len(got), len(cs)-len(left))
			}
		}
		if len(sh.users) != 0 || len(sh.more) != 0 {
			t.Fatalf("order %v: index not empty: %v %v", leave, sh.users, sh.more)
		}
	}
}

// fakeStore is an in-memory stream store for one tenant: explicit items per
// user and broadcast items. Since can be paused to inject live events in the
// middle of a replay.
type fakeStore struct {
	mu        sync.Mutex
	user      map[string][]notification.Item // by user, seq = index+1
	bcast     []notification.Item            // seq = index+1
	sinceHook func()                         // called (unlocked) before each Since
	fail      error
	unread    map[string]int64 // HeadUnread's count by user (0 when absent)
}

func newFakeStore() *fakeStore { return &fakeStore{user: map[string][]notification.Item{}} }

func (f *fakeStore) addUser(user string) (*notification.Event, notification.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := int64(len(f.user[user]) + 1)
	n := notification.Notification{ID: fmt.Sprintf("u-%s-%d", user, seq), Tenant: "t",
		Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{user}}, Type: "x", Title: "x", CreatedAt: time.Now()}
	f.user[user] = append(f.user[user], notification.Item{Notification: n, Seq: seq})
	d := notification.Delivery{User: user, Seq: seq, Unread: seq}
	return &notification.Event{Kind: notification.EventNotification, Tenant: "t", Notification: &n, Deliveries: []notification.Delivery{d}}, d
}

func (f *fakeStore) addBroadcast(role string) *notification.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := int64(len(f.bcast) + 1)
	aud := notification.Audience{Kind: notification.AudienceTenant}
	if role != "" {
		aud = notification.Audience{Kind: notification.AudienceRole, Role: role}
	}
	n := notification.Notification{ID: "b-" + strconv.FormatInt(seq, 10), Tenant: "t", Audience: aud, Type: "x", Title: "x", CreatedAt: time.Now()}
	f.bcast = append(f.bcast, notification.Item{Notification: n, Seq: seq})
	return &notification.Event{Kind: notification.EventNotification, Tenant: "t", Notification: &n, TenantSeq: seq}
}

func (f *fakeStore) Since(_ context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error) {
	if f.sinceHook != nil {
		f.sinceHook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, false, f.fail
	}
	var out []notification.Item
	for _, it := range f.user[r.User] {
		if it.Seq > pos.User {
			out = append(out, it)
		}
	}
	for _, it := range f.bcast {
		if it.Seq > pos.Tenant && it.Audience.Matches(r.Role) {
			out = append(out, it)
		}
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (f *fakeStore) Head(_ context.Context, r notification.Recipient) (notification.Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return notification.Position{User: int64(len(f.user[r.User])), Tenant: int64(len(f.bcast))}, f.fail
}

func (f *fakeStore) Counts(context.Context, notification.Recipient) (Counts, error) {
	return Counts{}, nil
}

func (f *fakeStore) HeadCounts(ctx context.Context, r notification.Recipient) (notification.Position, Counts, error) {
	p, err := f.Head(ctx, r)
	f.mu.Lock()
	defer f.mu.Unlock()
	return p, Counts{Unread: f.unread[r.User]}, err
}

func (f *fakeStore) setUnread(user string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unread == nil {
		f.unread = map[string]int64{}
	}
	f.unread[user] = n
}

// fakeSender records frames.
type fakeSender struct {
	mu     sync.Mutex
	frames []Frame
	closed []CloseReason
	full   bool
	gone   bool // the transport is closing: Send wraps ErrSenderClosed
}

func (s *fakeSender) Send(f Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return fmt.Errorf("fake: closing: %w", ErrSenderClosed)
	}
	if s.full {
		return errors.New("full")
	}
	u := f.Unread
	f.Unread = nil
	s.frames = append(s.frames, f)
	if u != nil { // the unread frame that follows f
		s.frames = append(s.frames, Frame{Kind: FrameUnread, Payload: u})
	}
	return nil
}

func (s *fakeSender) Close(r CloseReason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, r)
}

// notifications returns the ids and positions of notification frames.
func (s *fakeSender) notifications() (ids []string, pos []notification.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frames {
		if f.Kind == FrameNotification {
			// the payload starts with {"id":"<id>"
			p := string(f.Payload)
			start := len(`{"id":"`)
			end := start
			for p[end] != '"' {
				end++
			}
			ids = append(ids, p[start:end])
			pos = append(pos, f.Position)
		}
	}
	return ids, pos
}

func (s *fakeSender) closeReasons() []CloseReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CloseReason(nil), s.closed...)
}

// waitLive waits until each client has finished its replay and is live.
func waitLive(t testing.TB, cs ...*Client) {
	t.Helper()
	for _, c := range cs {
		testkit.Eventually(t, 5*time.Second, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.state == stateLive }, "client %s live", c.Recipient().User)
	}
}

func attach(t testing.TB, h *Hub, user, role string, since *notification.Position) (*Client, *fakeSender) {
	t.Helper()
	s := &fakeSender{}
	c, err := h.Attach(s, AttachOptions{ConnID: h.NextConnID(), Transport: "test",
		Recipient: notification.Recipient{Tenant: "t", User: user, Role: role}, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestReplayThenLiveWithoutGapOrDuplicateAtTheSeam(t *testing.T) {
	st := newFakeStore()
	for i := 0; i < 5; i++ {
		st.addUser("u")
	}
	h := New(st, Config{ReplayPage: 2})
	defer h.Close(ReasonShutdown)

	// While the replay reads its first page, more events commit and are
	// delivered live: they must be buffered, and those the replay also
	// reads must not be sent twice.
	var once sync.Once
	st.sinceHook = func() {
		once.Do(func() {
			for i := 0; i < 3; i++ {
				ev, _ := st.addUser("u")
				h.Deliver(ev)
			}
		})
	}
	_, s := attach(t, h, "u", "", &notification.Position{})
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := s.notifications(); return len(ids) >= 8 }, "8 notifications")
	st.sinceHook = nil
	ev, _ := st.addUser("u")
	h.Deliver(ev)
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := s.notifications(); return len(ids) >= 9 }, "9 notifications")
	ids, pos := s.notifications()
	if len(ids) != 9 {
		t.Fatalf("got %d notifications: %v", len(ids), ids)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("u-u-%d", i+1); id != want || pos[i].User != int64(i+1) {
			t.Fatalf("notification %d = %s at %v, want %s", i, id, pos[i], want)
		}
	}
}

func TestGapTriggersCatchUpFromStore(t *testing.T) {
	st := newFakeStore()
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	c, s := attach(t, h, "u", "", nil)
	waitLive(t, c)

	// Events 1 and 2 are "lost" by the broker; 3 arrives and reveals the gap.
	st.addUser("u")
	st.addUser("u")
	ev3, _ := st.addUser("u")
	h.Deliver(ev3)
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := s.notifications(); return len(ids) == 3 }, "3 notifications")
	ids, _ := s.notifications()
	if ids[0] != "u-u-1" || ids[2] != "u-u-3" {
		t.Fatalf("ids = %v", ids)
	}
	// A duplicate delivery is dropped.
	h.Deliver(ev3)
	time.Sleep(20 * time.Millisecond)
	if ids, _ := s.notifications(); len(ids) != 3 {
		t.Fatalf("duplicate delivered: %v", ids)
	}
}

func TestBroadcastRoleFilteringAdvancesCursor(t *testing.T) {
	st := newFakeStore()
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	member, ms := attach(t, h, "m", "member", nil)
	admin, as := attach(t, h, "a", "admin", nil)
	// Both live before the broadcasts: a client still reading its head
	// could read it after the first broadcast and rightly skip it.
	waitLive(t, member)
	waitLive(t, admin)
	h.Deliver(st.addBroadcast("admin"))
	h.Deliver(st.addBroadcast(""))
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := as.notifications(); return len(ids) == 2 }, "admin got 2")
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := ms.notifications(); return len(ids) == 1 }, "member got 1")
	ids, pos := ms.notifications()
	if ids[0] != "b-2" || pos[0] != (notification.Position{User: 0, Tenant: 2}) {
		t.Fatalf("member got %v at %v", ids, pos)
	}
	// Resuming from before the admin-only item must not loop on the filtered gap.
	_, rs := attach(t, h, "m2", "member", &notification.Position{})
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := rs.notifications(); return len(ids) == 1 }, "resumed member got 1")
	h.Deliver(st.addBroadcast(""))
	testkit.Eventually(t, 5*time.Second, func() bool { ids, _ := rs.notifications(); return len(ids) == 2 }, "resumed member got live")
}

// frames returns the client's frames of the given kinds as "kind:payload".
func (s *fakeSender) framesOf(kinds ...FrameKind) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.frames {
		if slices.Contains(kinds, f.Kind) {
			out = append(out, strconv.Itoa(int(f.Kind))+":"+string(f.Payload))
		}
	}
	return out
}

// TestExpiredDeletesAndRecounts: an expiry reaches the clients that could
// see the notification (the user's; the tenant's of the right role) as a
// deleted frame marked expired, followed by the unread count read again
// from the store, but only once the client has applied everything that
// count includes.
func TestExpiredDeletesAndRecounts(t *testing.T) {
	st := newFakeStore()
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	a, as := attach(t, h, "a", "admin", nil)
	m, ms := attach(t, h, "m", "member", nil)
	for _, c := range []*Client{a, m} {
		waitLive(t, c)
	}
	del, unr := strconv.Itoa(int(FrameDeleted))+":", strconv.Itoa(int(FrameUnread))+":"

	st.setUnread("a", 7)
	h.Deliver(&notification.Event{Kind: notification.EventExpired, Tenant: "t", User: "a", IDs: []string{"x1", "x2"}})
	want := []string{del + `{"id":"x1","expired":true}`, del + `{"id":"x2","expired":true}`, unr + `{"count":7,"unseen":0}`}
	testkit.Eventually(t, 5*time.Second, func() bool { return slices.Equal(as.framesOf(FrameDeleted, FrameUnread), want) }, "a's expiry")

	st.setUnread("a", 6)
	h.Deliver(&notification.Event{Kind: notification.EventExpired, Tenant: "t", IDs: []string{"b9"},
		Notification: &notification.Notification{ID: "b9", Tenant: "t", Audience: notification.Audience{Kind: notification.AudienceRole, Role: "admin"}}})
	want = append(want, del+`{"id":"b9","expired":true}`, unr+`{"count":6,"unseen":0}`)
	testkit.Eventually(t, 5*time.Second, func() bool { return slices.Equal(as.framesOf(FrameDeleted, FrameUnread), want) }, "admin broadcast expiry")
	if got := ms.framesOf(FrameDeleted, FrameUnread); len(got) != 0 {
		t.Fatalf("member got %q for an admin broadcast", got)
	}

	// A notification committed but not yet delivered: the store's count
	// includes it, the client's cursor is behind. The recount must not
	// apply (the delivery would count it twice).
	ev, _ := st.addUser("a")
	st.setUnread("a", 99)
	h.Deliver(&notification.Event{Kind: notification.EventExpired, Tenant: "t", User: "a", IDs: []string{"x3"}})
	want = append(want, del+`{"id":"x3","expired":true}`)
	testkit.Eventually(t, 5*time.Second, func() bool {
		h.rc.mu.Lock()
		defer h.rc.mu.Unlock()
		return !h.rc.running && slices.Equal(as.framesOf(FrameDeleted, FrameUnread), want)
	}, "the recount gave up")
	h.Deliver(ev)
	want = append(want, unr+`{"count":7,"unseen":1}`) // 6, plus the notification
	testkit.Eventually(t, 5*time.Second, func() bool { return slices.Equal(as.framesOf(FrameDeleted, FrameUnread), want) }, "the notification's count")
}

func TestPendingOverflowClosesSlowConsumer(t *testing.T) {
	st := newFakeStore()
	release := make(chan struct{})
	st.sinceHook = func() { <-release }
	h := New(st, Config{PendingLimit: 3})
	defer h.Close(ReasonShutdown)
	_, s := attach(t, h, "u", "", &notification.Position{})
	for i := 0; i < 5; i++ {
		ev, _ := st.addUser("u")
		h.Deliver(ev)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(s.closeReasons()) == 1 }, "closed")
	close(release)
	if r := s.closeReasons()[0]; r != ReasonSlowConsumer {
		t.Fatalf("reason = %v", r)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return h.Active() == 0 }, "unregistered")
}

func TestSendFailureClosesSlowConsumer(t *testing.T) {
	_, s := deliverThrough(t, func(s *fakeSender) { s.full = true })
	testkit.Eventually(t, 5*time.Second, func() bool { return len(s.closeReasons()) == 1 }, "closed")
	if r := s.closeReasons()[0]; r != ReasonSlowConsumer {
		t.Fatalf("reason = %v", r)
	}
}

// A delivery that finds the transport already closing (the client left a
// moment ago) must not close the client as a slow consumer: the session
// ends it with the real reason.
func TestSendToClosingTransportLeavesTheCloseToIt(t *testing.T) {
	c, s := deliverThrough(t, func(s *fakeSender) { s.gone = true })
	if closed, r := c.Closed(); closed {
		t.Fatalf("client closed by the hub with %v; the transport's session closes it", r)
	}
	c.Close(ReasonClientClosed)
	if got := s.closeReasons(); len(got) != 1 || got[0] != ReasonClientClosed {
		t.Fatalf("close reasons = %v, want [client_closed]", got)
	}
}

// deliverThrough attaches a live client, sets up its sender with set, and
// delivers one notification to it (synchronously: one client).
func deliverThrough(t *testing.T, set func(*fakeSender)) (*Client, *fakeSender) {
	t.Helper()
	st := newFakeStore()
	h := New(st, Config{})
	t.Cleanup(func() { h.Close(ReasonShutdown) })
	c, s := attach(t, h, "u", "", nil)
	waitLive(t, c)
	s.mu.Lock()
	set(s)
	s.mu.Unlock()
	ev, _ := st.addUser("u")
	h.Deliver(ev)
	return c, s
}

func TestResyncWhenReplayTooLong(t *testing.T) {
	st := newFakeStore()
	for i := 0; i < 30; i++ {
		st.addUser("u")
	}
	h := New(st, Config{ReplayLimit: 10, ReplayPage: 5})
	defer h.Close(ReasonShutdown)
	_, s := attach(t, h, "u", "", &notification.Position{})
	var last Frame
	testkit.Eventually(t, 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range s.frames {
			if f.Kind == FrameResync {
				last = f
				return true
			}
		}
		return false
	}, "resync")
	if string(last.Payload) != `{"position":"30.0"}` {
		t.Fatalf("resync payload %s", last.Payload)
	}
}

func TestReplayFailureClosesWithInternalError(t *testing.T) {
	st := newFakeStore()
	st.fail = errors.New("disk on fire")
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	_, s := attach(t, h, "u", "", &notification.Position{})
	testkit.Eventually(t, 5*time.Second, func() bool { return len(s.closeReasons()) == 1 }, "closed")
	if r := s.closeReasons()[0]; r != ReasonInternalError {
		t.Fatalf("reason = %v", r)
	}
}

func TestRevokeAndExpiryAndClose(t *testing.T) {
	st := newFakeStore()
	h := New(st, Config{})
	_, s1 := attach(t, h, "u", "", nil)
	_, s2 := attach(t, h, "u", "", nil)
	_, other := attach(t, h, "v", "", nil)
	h.Deliver(&notification.Event{Kind: notification.EventRevoke, Tenant: "t", User: "u"})
	testkit.Eventually(t, 5*time.Second, func() bool { return len(s1.closeReasons()) == 1 && len(s2.closeReasons()) == 1 }, "revoked")
	if s1.closeReasons()[0] != ReasonRevoked || len(other.closeReasons()) != 0 {
		t.Fatal("wrong clients revoked")
	}
	es := &fakeSender{}
	if _, err := h.Attach(es, AttachOptions{Recipient: notification.Recipient{Tenant: "t", User: "w"}, Expires: time.Now().Add(30 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(es.closeReasons()) == 1 }, "expired")
	if es.closeReasons()[0] != ReasonTokenExpired {
		t.Fatalf("reason = %v", es.closeReasons())
	}
	h.Close(ReasonShutdown)
	if other.closeReasons()[0] != ReasonShutdown || h.Active() != 0 {
		t.Fatal("close did not close everyone")
	}
	if _, err := h.Attach(&fakeSender{}, AttachOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}

func TestReasonsHaveStableCodes(t *testing.T) {
	want := map[CloseReason]int{ReasonAuthTimeout: 4001, ReasonUnauthorized: 4001, ReasonTokenExpired: 4003,
		ReasonSlowConsumer: 4008, ReasonShutdown: 4009, ReasonMessageTooBig: 1009, ReasonInvalidUTF8: 1007, ReasonProtocolError: 1002}
	for r, code := range want {
		if r.Code() != code {
			t.Errorf("%v code %d, want %d", r, r.Code(), code)
		}
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r.Label()] {
			t.Errorf("duplicate label %s", r.Label())
		}
		seen[r.Label()] = true
	}
}

func BenchmarkDeliverUnicast(b *testing.B) {
	st := newFakeStore()
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	const users = 1000
	cs := make([]*Client, users)
	for i := range cs {
		cs[i], _ = attach(b, h, "u"+strconv.Itoa(i), "", nil)
	}
	waitLive(b, cs...)
	n := &notification.Notification{ID: "01M8D4RNA158PW21GV7ZNT0BFT", Type: "x", Title: "hello", Body: "body", CreatedAt: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := i % users
		seq := int64(i/users + 1)
		h.Deliver(&notification.Event{Kind: notification.EventNotification, Tenant: "t", Notification: n,
			Deliveries: []notification.Delivery{{User: "u" + strconv.Itoa(u), Seq: seq, Unread: seq}}})
	}
}

func BenchmarkDeliverBroadcast10k(b *testing.B) {
	st := newFakeStore()
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	cs := make([]*Client, 10000)
	for i := range cs {
		cs[i], _ = attach(b, h, "u"+strconv.Itoa(i), "", nil)
	}
	waitLive(b, cs...)
	n := &notification.Notification{ID: "01M8D4RNA158PW21GV7ZNT0BFT", Type: "x", Title: "hello", Body: "body",
		Audience: notification.Audience{Kind: notification.AudienceTenant}, CreatedAt: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Deliver(&notification.Event{Kind: notification.EventNotification, Tenant: "t", Notification: n, TenantSeq: int64(i + 1)})
	}
	b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "deliveries/s")
}
