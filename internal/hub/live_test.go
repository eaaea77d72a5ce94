package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// events returns the live-event objects written to s.
func (s *fakeSender) events(t testing.TB) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, f := range s.frames {
		if f.Kind != FrameEvent {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(f.Payload, &m); err != nil {
			t.Fatalf("event payload %q: %v", f.Payload, err)
		}
		out = append(out, m)
	}
	return out
}

func (s *fakeSender) count(k FrameKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.frames {
		if f.Kind == k {
			n++
		}
	}
	return n
}

func liveEvent(l *notification.Live) *notification.Event {
	if l.Tenant == "" {
		l.Tenant = "t"
	}
	if l.ID == "" {
		l.ID = "01J00000000000000000000000"
	}
	if l.Type == "" {
		l.Type = "order:updated"
	}
	return &notification.Event{Kind: notification.EventLive, Tenant: l.Tenant, Live: l}
}

func TestLiveEventAudiences(t *testing.T) {
	h := New(newFakeStore(), Config{})
	defer h.Close(ReasonShutdown)
	a, sa := attach(t, h, "a", "admin", nil)
	b, sb := attach(t, h, "b", "member", nil)
	waitLive(t, a, b)

	h.Deliver(liveEvent(&notification.Live{Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{"a"}},
		Data: []byte(`{"n":1}`)}))
	h.Deliver(liveEvent(&notification.Live{Audience: notification.Audience{Kind: notification.AudienceRole, Role: "member"}}))
	h.Deliver(liveEvent(&notification.Live{Audience: notification.Audience{Kind: notification.AudienceTenant}}))
	h.Deliver(liveEvent(&notification.Live{Tenant: "other", Audience: notification.Audience{Kind: notification.AudienceTenant}}))

	if got := len(sa.events(t)); got != 2 {
		t.Fatalf("a got %d events, want 2 (users, tenant)", got)
	}
	if got := len(sb.events(t)); got != 2 {
		t.Fatalf("b got %d events, want 2 (role, tenant)", got)
	}
	ev := sa.events(t)[0]
	if ev["type"] != "order:updated" || ev["data"].(map[string]any)["n"] != 1.0 || ev["topic"] != nil || ev["created_at"] == nil {
		t.Fatalf("event object %v", ev)
	}
	// No position moved and no unread count was sent for them.
	if a.Position() != (notification.Position{}) || sa.count(FrameUnread) != 0 || sa.count(FrameNotification) != 0 {
		t.Fatalf("a live event touched the stream: pos %v, unread frames %d", a.Position(), sa.count(FrameUnread))
	}
}

func TestTopicSubscribeDeliverUnsubscribe(t *testing.T) {
	h := New(newFakeStore(), Config{})
	defer h.Close(ReasonShutdown)
	a, sa := attach(t, h, "a", "", nil)
	b, sb := attach(t, h, "b", "", nil)
	waitLive(t, a, b)
	if err := a.Subscribe([]string{"p.1", "p.2"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe([]string{"p.2"}, 0); err != nil {
		t.Fatal(err)
	}
	h.Deliver(liveEvent(&notification.Live{Topics: []string{"p.1"}}))
	h.Deliver(liveEvent(&notification.Live{Topics: []string{"p.2", "p.1"}}))                    // a once, under p.2
	h.Deliver(liveEvent(&notification.Live{Topics: []string{"p.3"}}))                           // nobody
	h.Deliver(liveEvent(&notification.Live{Tenant: "other", Topics: []string{"p.1"}}))          // another tenant's p.1
	h.Deliver(liveEvent(&notification.Live{Audience: notification.Audience{Kind: 0}, ID: "x"})) // no audience: nobody

	ea, eb := sa.events(t), sb.events(t)
	if len(ea) != 2 || ea[0]["topic"] != "p.1" || ea[1]["topic"] != "p.2" {
		t.Fatalf("a got %v", ea)
	}
	if len(eb) != 1 || eb[0]["topic"] != "p.2" {
		t.Fatalf("b got %v", eb)
	}
	a.Unsubscribe([]string{"p.1", "never"})
	h.Deliver(liveEvent(&notification.Live{Topics: []string{"p.1"}}))
	if len(sa.events(t)) != 2 {
		t.Fatal("a got an event of a topic it left")
	}
	if topics, subs := h.TopicStats(); topics != 1 || subs != 2 {
		t.Fatalf("index holds %d topics, %d subscriptions; want 1, 2 (p.2 by a and b)", topics, subs)
	}
}

func TestTopicLimitIsAllOrNothing(t *testing.T) {
	h := New(newFakeStore(), Config{})
	defer h.Close(ReasonShutdown)
	a, _ := attach(t, h, "a", "", nil)
	if err := a.Subscribe([]string{"x", "y", "x"}, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe([]string{"y", "z"}, 3); err != nil { // y is held: one new
		t.Fatal(err)
	}
	if err := a.Subscribe([]string{"w", "v"}, 3); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("over the limit: %v", err)
	}
	if got := len(a.Topics()); got != 3 {
		t.Fatalf("holds %d topics after a refused subscribe, want 3", got)
	}
}

// Closing clients, however many topics they hold and whatever runs
// concurrently, leaves nothing in the index.
func TestTopicIndexDoesNotLeak(t *testing.T) {
	h := New(newFakeStore(), Config{})
	defer h.Close(ReasonShutdown)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := attach(t, h, fmt.Sprintf("u%d", i), "", nil)
			done := make(chan struct{})
			go func() { // subscribes racing the close
				defer close(done)
				for j := 0; j < 20; j++ {
					err := c.Subscribe([]string{fmt.Sprintf("t.%d", j%7), "shared"}, 0)
					if errors.Is(err, ErrClosed) {
						return
					}
				}
			}()
			h.Deliver(liveEvent(&notification.Live{Topics: []string{"shared"}}))
			c.Close(ReasonClientClosed)
			<-done
		}()
	}
	wg.Wait()
	if topics, subs := h.TopicStats(); topics != 0 || subs != 0 {
		t.Fatalf("after every client closed the index holds %d topics, %d subscriptions", topics, subs)
	}
	c, _ := attach(t, h, "late", "", nil)
	c.Close(ReasonClientClosed)
	if err := c.Subscribe([]string{"x"}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
	if topics, _ := h.TopicStats(); topics != 0 {
		t.Fatal("a subscribe after close was indexed")
	}
}

// A client whose ready frame has not gone out yet misses live events: they
// are not buffered behind the replay.
func TestLiveEventNotBeforeReady(t *testing.T) {
	st := newFakeStore()
	gate := make(chan struct{})
	st.sinceHook = func() { <-gate }
	h := New(st, Config{})
	defer h.Close(ReasonShutdown)
	since := notification.Position{}
	c, s := attach(t, h, "a", "", &since) // resumes: ready, then Since blocks
	_ = c.Subscribe([]string{"x"}, 0)
	// The ready frame is written before the replay's first Since; wait for it.
	testkit.Eventually(t, 5*time.Second, func() bool { return s.count(FrameReady) == 1 }, "ready frame written")
	h.Deliver(liveEvent(&notification.Live{Topics: []string{"x"}})) // ready, replaying: written
	close(gate)
	waitLive(t, c)
	if got := len(s.events(t)); got != 1 {
		t.Fatalf("a ready client in replay got %d live events, want 1", got)
	}

	h2 := New(newFakeStore(), Config{})
	defer h2.Close(ReasonShutdown)
	c2 := &Client{hub: h2, sender: &fakeSender{}, r: notification.Recipient{Tenant: "t", User: "b"}}
	if c2.offerLive(encodeLive(&notification.Live{ID: "i", Type: "x"}, ""), "") {
		t.Fatal("a client that is not ready was written a live event")
	}
}

// BenchmarkDeliverLiveTopic measures what a node pays for a topic event:
// with no subscriber here (the cost of fanning out to every node and
// filtering, docs/design.md) and with one.
func BenchmarkDeliverLiveTopic(b *testing.B) {
	for _, subs := range []int{0, 1} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := New(newFakeStore(), Config{})
			defer h.Close(ReasonShutdown)
			for i := 0; i < 1000; i++ { // other topics in the index
				c, _ := attach(b, h, fmt.Sprintf("u%d", i), "", nil)
				_ = c.Subscribe([]string{fmt.Sprintf("other.%d", i)}, 0)
			}
			if subs == 1 {
				c, _ := attach(b, h, "sub", "", nil)
				waitLive(b, c)
				_ = c.Subscribe([]string{"project.42"}, 0)
			}
			ev := liveEvent(&notification.Live{Topics: []string{"project.42"}, Data: []byte(`{"order":7}`)})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.Deliver(ev)
			}
		})
	}
}
