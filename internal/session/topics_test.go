package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestParseTopics(t *testing.T) {
	long := strings.Repeat("a", 129)
	many := make([]string, MaxTopicsPerRequest+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	for _, tc := range []struct {
		name string
		args Args
		ok   bool
	}{
		{"one", Args{Topics: []string{"project.42"}}, true},
		{"duplicates dropped", Args{Topics: []string{"a", "a"}}, true},
		{"missing", Args{}, false},
		{"empty list", Args{Topics: []string{}}, false},
		{"empty name", Args{Topics: []string{""}}, false},
		{"bad byte", Args{Topics: []string{"a b"}}, false},
		{"wildcard is not a name", Args{Topics: []string{"project.*"}}, false},
		{"too long", Args{Topics: []string{long}}, false},
		{"too many", Args{Topics: many}, false},
		{"other field", Args{Topics: []string{"a"}, ID: new(string)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, wire := range []string{"subscribe", "unsubscribe"} {
				req, err := Parse(wire, &tc.args, Ref{Ack: 3})
				if (err == nil) != tc.ok {
					t.Fatalf("%s: err = %v, want ok %v", wire, err, tc.ok)
				}
				if err != nil && !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: error %v does not wrap ErrInvalid", wire, err)
				}
				if req.Ref.Ack != 3 {
					t.Fatalf("%s: ref lost", wire)
				}
			}
		})
	}
	req, _ := Parse("subscribe", &Args{Topics: []string{"a", "b", "a"}}, Ref{})
	if !slices.Equal(req.Topics, []string{"a", "b"}) {
		t.Fatalf("topics %q", req.Topics)
	}
	if _, err := Parse("ping", &Args{Topics: []string{"a"}}, Ref{}); err == nil {
		t.Fatal("topics accepted on ping")
	}
}

func subscribe(s *Session, name Name, topics ...string) {
	s.Handle(Request{Name: name, Topics: topics, Ref: Ref{Ack: NoAck}})
}

// lastErr returns the code of the last reply (CodeNone on success).
func lastErr(t testing.TB, tr *fakeTransport, n int) Code {
	t.Helper()
	reps := tr.waitReplies(t, n)
	r := reps[n-1]
	if r.Err == nil {
		return CodeNone
	}
	return r.Err.Code
}

func liveTo(tenant string, topics ...string) *notification.Event {
	return &notification.Event{Kind: notification.EventLive, Tenant: tenant,
		Live: &notification.Live{ID: "i", Tenant: tenant, Topics: topics, Type: "x"}}
}

func countEvents(tr *fakeTransport) int {
	n := 0
	for _, f := range tr.gotFrames() {
		if f.Kind == hub.FrameEvent {
			n++
		}
	}
	return n
}

func TestSubscribeByClaimAndWildcard(t *testing.T) {
	h := newHarness(t)
	s, tr := h.authed(t, "u1|project.*,chat:general")
	subscribe(s, NameSubscribe, "project.42", "chat:general")
	if c := lastErr(t, tr, 1); c != CodeNone {
		t.Fatalf("allowed topics refused: %v", c)
	}
	subscribe(s, NameSubscribe, "chat:other")
	if c := lastErr(t, tr, 2); c != CodeForbidden {
		t.Fatalf("a topic outside the claim: %v, want forbidden", c)
	}
	subscribe(s, NameSubscribe, "project.1", "secret") // all or nothing
	if c := lastErr(t, tr, 3); c != CodeForbidden {
		t.Fatalf("a list with one refused topic: %v", c)
	}
	if got := s.Topics(); len(got) != 2 {
		t.Fatalf("topics %q, want the first two only", got)
	}
	if n := len(h.counter.Of(audit.SubscribeForbidden)); n != 2 {
		t.Fatalf("%d subscribe_forbidden events, want 2", n)
	}
	if r := tr.gotReplies()[1].Err.Message; !strings.Contains(r, "chat:other") {
		t.Fatalf("refusal message %q does not name the topic", r)
	}
	h.hub.Deliver(liveTo("t", "project.42"))
	testkit.Eventually(t, 0, func() bool { return countEvents(tr) == 1 }, "the topic's event")

	subscribe(s, NameUnsubscribe, "project.42", "never-joined")
	if c := lastErr(t, tr, 4); c != CodeNone {
		t.Fatalf("unsubscribe: %v", c)
	}
	h.hub.Deliver(liveTo("t", "project.42"))
	h.hub.Deliver(liveTo("t", "chat:general"))
	testkit.Eventually(t, 0, func() bool { return countEvents(tr) == 2 }, "chat:general's event")
	if countEvents(tr) != 2 {
		t.Fatal("an event of a topic left was delivered")
	}
}

// Topics live in the token's tenant: the same name in another tenant is
// another topic, whatever the claim says.
func TestSubscribeIsPerTenant(t *testing.T) {
	h := newHarness(t)
	a, ta := h.authed(t, "acme/u1|*")
	b, tb := h.authed(t, "globex/u2|*")
	subscribe(a, NameSubscribe, "project.42")
	subscribe(b, NameSubscribe, "project.42")
	lastErr(t, ta, 1)
	lastErr(t, tb, 1)
	h.hub.Deliver(liveTo("acme", "project.42"))
	testkit.Eventually(t, 0, func() bool { return countEvents(ta) == 1 }, "acme's subscriber gets acme's event")
	h.hub.Deliver(liveTo("globex", "project.43")) // a marker after it, on b's tenant
	if countEvents(tb) != 0 {
		t.Fatal("globex's subscriber got acme's event")
	}
}

func TestSubscribeWithoutClaimIsForbidden(t *testing.T) {
	h := newHarness(t)
	s, tr := h.authed(t, "u1")
	subscribe(s, NameSubscribe, "a")
	if c := lastErr(t, tr, 1); c != CodeForbidden {
		t.Fatalf("no claim, no hook: %v", c)
	}
}

func TestSubscribeLimits(t *testing.T) {
	h := newHarness(t, func(o *options) {
		o.session.MaxTopics = 3
		o.session.SubscribeRate, o.session.SubscribeBurst = 0.001, 3
	})
	s, tr := h.authed(t, "u1|*")
	subscribe(s, NameSubscribe, "a", "b")
	subscribe(s, NameSubscribe, "c", "d") // 4 > 3
	if c := lastErr(t, tr, 2); c != CodeRateLimited {
		t.Fatalf("over the topic limit: %v", c)
	}
	subscribe(s, NameSubscribe, "a", "b", "c", "d") // over the limit in one request
	if c := lastErr(t, tr, 3); c != CodeRateLimited {
		t.Fatalf("a request over the limit: %v", c)
	}
	subscribe(s, NameSubscribe, "c") // the burst of 3 is spent
	if c := lastErr(t, tr, 4); c != CodeRateLimited {
		t.Fatalf("over the subscribe rate: %v", c)
	}
	if got := len(s.Topics()); got != 2 {
		t.Fatalf("holds %d topics, want 2", got)
	}
	subscribe(s, NameUnsubscribe, "a") // unsubscribes are not rate limited
	if c := lastErr(t, tr, 5); c != CodeNone {
		t.Fatalf("unsubscribe: %v", c)
	}
}

// fakeAuthorizer allows the topics in allow; err fails every call.
type fakeAuthorizer struct {
	allow []string
	err   error

	mu    sync.Mutex
	asked [][]string
	who   []auth.Principal
}

func (f *fakeAuthorizer) Authorize(_ context.Context, p auth.Principal, topics []string) ([]string, error) {
	f.mu.Lock()
	f.asked = append(f.asked, topics)
	f.who = append(f.who, p)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []string
	for _, t := range topics {
		if slices.Contains(f.allow, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func TestSubscribeAuthorizer(t *testing.T) {
	fa := &fakeAuthorizer{allow: []string{"room.1"}}
	h := newHarness(t, func(o *options) { o.session.TopicAuthorizer = fa })
	s, tr := h.authed(t, "acme/u1|project.*")
	subscribe(s, NameSubscribe, "project.1", "room.1") // claim + hook
	if c := lastErr(t, tr, 1); c != CodeNone {
		t.Fatalf("claim and hook allow: %v", c)
	}
	if len(fa.asked) != 1 || !slices.Equal(fa.asked[0], []string{"room.1"}) {
		t.Fatalf("the hook was asked %q; want only the topic the claim does not allow", fa.asked)
	}
	if fa.who[0].Tenant != "acme" || fa.who[0].User != "u1" {
		t.Fatalf("the hook was asked for %+v", fa.who[0])
	}
	subscribe(s, NameSubscribe, "room.2")
	if c := lastErr(t, tr, 2); c != CodeForbidden {
		t.Fatalf("hook denies: %v", c)
	}
	fa.err = errors.New("backend down")
	subscribe(s, NameSubscribe, "room.1")
	if c := lastErr(t, tr, 3); c != CodeForbidden {
		t.Fatalf("hook fails: %v, want forbidden (deny on error)", c)
	}
	if n := len(h.counter.Of(audit.SubscribeAuthFailed)); n != 1 {
		t.Fatalf("%d subscribe_auth_failed events", n)
	}
}

func TestSubscribeBeforeAuthCloses(t *testing.T) {
	h := newHarness(t)
	s, tr := h.newSession(t)
	subscribe(s, NameSubscribe, "a")
	if got := tr.gotCloses(); len(got) != 1 || got[0] != hub.ReasonUnauthorized {
		t.Fatalf("closes %v", got)
	}
}

func TestJoin(t *testing.T) {
	h := newHarness(t, func(o *options) { o.session.MaxTopics = 2 })
	s, _ := h.newSession(t)
	if err := s.Join([]string{"a"}); !errors.Is(err, ErrGone) {
		t.Fatalf("join before attach: %v", err)
	}
	s, _ = h.authed(t, "u1")
	if err := s.Join([]string{"a", "b", "c"}); !errors.Is(err, hub.ErrTooManyTopics) {
		t.Fatalf("join over the limit: %v", err)
	}
	if e := h.core.CheckTopics(context.Background(), auth.Principal{Tenant: "t", User: "u", Topics: []string{"*"}}, []string{"a", "b", "c"}); e == nil || e.Code != CodeRateLimited {
		t.Fatalf("CheckTopics over the limit: %v", e)
	}
	if err := s.Join([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
}
