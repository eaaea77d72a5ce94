package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session/sessiontest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestNewRequiresDependencies(t *testing.T) {
	h := hub.New(sessiontest.EmptyStore{}, hub.Config{})
	defer h.Close(hub.ReasonShutdown)
	v, in, adm := &fakeVerifier{}, &fakeInbox{}, admission.New(admission.Config{})
	tests := []struct {
		name string
		h    *hub.Hub
		v    Verifier
		in   Inbox
		adm  *admission.Controller
	}{
		{name: "no hub", v: v, in: in, adm: adm},
		{name: "no verifier", h: h, in: in, adm: adm},
		{name: "no inbox", h: h, v: v, adm: adm},
		{name: "no admission", h: h, v: v, in: in},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{}, tt.h, tt.v, tt.in, tt.adm); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	c, err := New(Config{}, h, v, in, adm)
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthTimeout() != DefaultAuthTimeout || c.Admission() != adm || c.Audit() == nil || c.Logger() == nil {
		t.Errorf("defaults: %v %v %v %v", c.AuthTimeout(), c.Admission(), c.Audit(), c.Logger())
	}
	if a, b := c.NextConnID(), c.NextConnID(); b <= a {
		t.Errorf("connection ids %d then %d", a, b)
	}
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t)
	s, tr := h.newSession(t)
	if s.Authenticated() || s.Principal().User != "" {
		t.Fatal("authenticated before Authenticate")
	}
	if s.IP() != "192.0.2.1" || s.Slot() == nil || s.ID() == 0 {
		t.Errorf("ip %q, slot %v, id %d", s.IP(), s.Slot(), s.ID())
	}
	if err := s.Authenticate("alice+admin", &notification.Position{}); err != nil {
		t.Fatal(err)
	}
	if !s.Authenticated() || s.Principal().User != "alice" || s.Principal().Role != "admin" {
		t.Errorf("principal %+v", s.Principal())
	}
	f := waitReady(t, tr)
	var ready struct{ User, Tenant string }
	if err := json.Unmarshal(f.Payload, &ready); err != nil || ready.User != "alice" || ready.Tenant != "t" {
		t.Errorf("ready %s: %v", f.Payload, err)
	}
	if h.hub.Active() != 1 {
		t.Errorf("hub has %d clients", h.hub.Active())
	}
	if st := h.adm.Stats()["ws"]; st.Opened != 1 || st.Pending != 0 || h.adm.Pending() != 0 {
		t.Errorf("slot not opened: %+v, pending %d", st, h.adm.Pending())
	}
	if got := h.counter.Of(audit.TokenValidated); len(got) != 1 || got[0].Transport != "ws" {
		t.Errorf("token_validated %v", got)
	}
	if err := s.Authenticate("alice", nil); !errors.Is(err, ErrAttached) {
		t.Errorf("second Authenticate: %v, want ErrAttached", err)
	}
	if err := s.Attach(s.Principal(), nil); !errors.Is(err, ErrAttached) {
		t.Errorf("second Attach: %v, want ErrAttached", err)
	}
	s.End(hub.ReasonClientClosed)
	if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonClientClosed}) {
		t.Errorf("closes %v", got)
	}
	if h.hub.Active() != 0 {
		t.Errorf("hub has %d clients after End", h.hub.Active())
	}
}

func TestAuthenticateRefusesBadTokens(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		wantReason string
		verified   bool // whether the verifier is asked
	}{
		{name: "bad signature", token: "bad", wantReason: "signature", verified: true},
		{name: "missing", token: "", wantReason: "missing"},
		// The reason is not pinned: "missing" today, auth.ReasonTooLarge would fit better.
		{name: "too long", token: strings.Repeat("a", MaxTokenLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := sessiontest.NewConns(t, 10)
			h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
			s, tr := h.newSession(t)
			err := s.Authenticate(tt.token, nil)
			if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrUnauthorized wrapping auth.ErrInvalidToken", err)
			}
			if got := auth.ReasonOf(err); tt.wantReason != "" && string(got) != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
			if (h.verifier.verified() > 0) != tt.verified {
				t.Errorf("verifier called %d times", h.verifier.verified())
			}
			got := h.counter.Of(audit.TokenInvalid)
			if len(got) != 1 || got[0].Transport != "ws" || got[0].Reason == "" ||
				(tt.wantReason != "" && got[0].Reason != tt.wantReason) {
				t.Errorf("audited %v, want one token_invalid (reason %q, transport ws)", got, tt.wantReason)
			}
			if s.Authenticated() || h.hub.Active() != 0 || users.Acquires() != 0 {
				t.Errorf("attached %v, hub clients %d, user slots taken %d", s.Authenticated(), h.hub.Active(), users.Acquires())
			}
			if h.adm.Pending() != 1 || h.adm.Stats()["ws"].Opened != 0 {
				t.Errorf("the slot was opened: pending %d", h.adm.Pending())
			}
			if len(tr.gotFrames()) != 0 || len(tr.gotCloses()) != 0 {
				t.Errorf("frames %v, closes %v", tr.gotFrames(), tr.gotCloses())
			}
		})
	}
}

func TestPerUserLimit(t *testing.T) {
	users := sessiontest.NewConns(t, 1)
	h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
	s1, tr1 := h.authed(t, "alice")

	s2, tr2 := h.newSession(t)
	if err := s2.Authenticate("alice", nil); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("second alice: %v, want ErrUserLimit", err)
	}
	if s2.Authenticated() || len(tr2.gotFrames()) != 0 || h.hub.Active() != 1 {
		t.Errorf("second alice attached")
	}
	if got := h.counter.Of(audit.LimitExceeded); len(got) != 1 || got[0].Transport != "ws" {
		t.Errorf("limit_exceeded %v", got)
	}
	if h.adm.Pending() != 0 {
		t.Errorf("a verified but refused connection is still unauthenticated: pending %d", h.adm.Pending())
	}
	// Another user (or tenant) is not limited by alice's cap.
	h.authed(t, "bob")
	h.authed(t, "u/alice")

	// End gives the per-user slot back, once.
	s1.End(hub.ReasonClientClosed)
	s1.End(hub.ReasonTransportError)
	if n := users.Held(admission.UserKey("t", "alice")); n != 0 {
		t.Errorf("alice holds %d slots after End", n)
	}
	if got := tr1.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonClientClosed}) {
		t.Errorf("closes %v, want one client_closed", got)
	}
	if err := s2.Authenticate("alice", nil); err != nil {
		t.Fatalf("alice after End: %v", err)
	}
	waitReady(t, tr2)
	if n := users.Held(admission.UserKey("t", "alice")); n != 1 {
		t.Errorf("alice holds %d slots", n)
	}
}

func TestReserve(t *testing.T) {
	users := sessiontest.NewConns(t, 1)
	h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
	alice := auth.Principal{Tenant: "t", User: "alice", Expires: time.Now().Add(time.Hour)}
	s, tr := h.newSession(t)
	if err := s.Reserve(alice); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(alice); err != nil {
		t.Fatalf("second Reserve of the same user: %v", err)
	}
	if err := s.Reserve(auth.Principal{Tenant: "t", User: "bob"}); !errors.Is(err, ErrAttached) {
		t.Errorf("Reserve of another user: %v, want ErrAttached", err)
	}
	if n := users.Held(admission.UserKey("t", "alice")); n != 1 {
		t.Errorf("alice holds %d slots", n)
	}
	other, _ := h.newSession(t)
	if err := other.Reserve(alice); !errors.Is(err, ErrUserLimit) {
		t.Errorf("Reserve over the cap: %v, want ErrUserLimit", err)
	}
	if err := s.Attach(alice, nil); err != nil {
		t.Fatal(err)
	}
	waitReady(t, tr)
	if n := users.Held(admission.UserKey("t", "alice")); n != 1 {
		t.Errorf("alice holds %d slots after Attach", n)
	}
	s.End(hub.ReasonClientClosed)
	if n := users.Held(admission.UserKey("t", "alice")); n != 0 {
		t.Errorf("alice holds %d slots after End", n)
	}
}

func TestAuthenticateAfterEnd(t *testing.T) {
	users := sessiontest.NewConns(t, 1)
	h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
	s, tr := h.newSession(t)
	s.End(hub.ReasonClientClosed)
	if err := s.Authenticate("alice", nil); !errors.Is(err, ErrGone) {
		t.Fatalf("err = %v, want ErrGone", err)
	}
	if s.Authenticated() || users.Held(admission.UserKey("t", "alice")) != 0 || h.hub.Active() != 0 {
		t.Errorf("attached %v, alice slots %d, hub clients %d", s.Authenticated(), users.Held(admission.UserKey("t", "alice")), h.hub.Active())
	}
	if h.adm.Stats()["ws"].Opened != 0 {
		t.Error("slot opened")
	}
	// An ended session never reaches the hub: no client to close.
	if got := tr.gotCloses(); len(got) != 0 {
		t.Errorf("closes %v, want none (no hub client was attached)", got)
	}
}

func TestHandleBeforeAuth(t *testing.T) {
	h := newHarness(t)
	s, tr := h.newSession(t)
	s.Handle(Request{Name: NamePing})
	if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonUnauthorized}) {
		t.Errorf("closes %v, want unauthorized", got)
	}
	if len(tr.gotReplies()) != 0 {
		t.Errorf("replies %v", tr.gotReplies())
	}
	if got := h.counter.Of(audit.UnauthenticatedMessage); len(got) != 1 {
		t.Errorf("unauthenticated_message %v", got)
	}
}

func TestAuthTimedOut(t *testing.T) {
	h := newHarness(t)
	s, tr := h.newSession(t)
	s.AuthTimedOut()
	if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonAuthTimeout}) {
		t.Errorf("closes %v", got)
	}
	if got := h.counter.Of(audit.AuthTimeout); len(got) != 1 {
		t.Errorf("auth_timeout %v", got)
	}
	s2, tr2 := h.authed(t, "alice")
	s2.AuthTimedOut() // authenticated: nothing happens
	if len(tr2.gotCloses()) != 0 {
		t.Errorf("closes %v", tr2.gotCloses())
	}
}

func TestClose(t *testing.T) {
	h := newHarness(t)
	s, tr := h.newSession(t)
	s.Close(hub.ReasonShutdown) // not attached: the transport directly
	if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonShutdown}) {
		t.Errorf("closes %v", got)
	}
	s2, tr2 := h.authed(t, "alice")
	s2.Close(hub.ReasonShutdown) // through the hub: exactly one disconnect
	s2.Close(hub.ReasonInternalError)
	if got := tr2.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonShutdown}) {
		t.Errorf("closes %v", got)
	}
	if h.hub.Active() != 0 {
		t.Errorf("hub has %d clients", h.hub.Active())
	}
	// A closed client's requests are dropped.
	s2.Handle(Request{Name: NamePing})
	if len(tr2.gotReplies()) != 0 {
		t.Errorf("replies after close %v", tr2.gotReplies())
	}
}

func TestPing(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, func(o *options) {
		o.session.OnRequest = func(tr admission.Transport, n Name) {
			mu.Lock()
			seen = append(seen, tr.String()+" "+n.String())
			mu.Unlock()
		}
	})
	s, tr := h.authed(t, "alice")
	ref := Ref{JSON: []byte(`"p1"`), Ack: 3}
	s.Handle(Request{Name: NamePing, Ref: ref})
	got := tr.waitReplies(t, 1)
	if len(got) != 1 || got[0].Name != NamePing || got[0].Err != nil || !reflect.DeepEqual(got[0].Ref, ref) {
		t.Errorf("replies %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(seen, []string{"ws ping"}) {
		t.Errorf("OnRequest saw %v", seen)
	}
}

func TestRateLimit(t *testing.T) {
	rate := sessiontest.NewRate(1)
	h := newHarness(t, func(o *options) {
		o.admission.Requests = rate
		o.admission.AbuseStrikes = 3
	})
	s, tr := h.authed(t, "alice")
	for i := range 4 {
		s.Handle(Request{Name: NamePing, Ref: Ref{Ack: int64(i)}})
	}
	got := tr.waitReplies(t, 4)
	if got[0].Err != nil {
		t.Errorf("first ping refused: %v", got[0].Err)
	}
	for i, r := range got[1:] {
		if r.Err == nil || r.Err.Code != CodeRateLimited || r.Ref.Ack != int64(i+1) || r.Name != NamePing {
			t.Errorf("reply %d: %+v, want rate_limited", i+1, r)
		}
	}
	// Strikes 1 and 2 are answered; the third reaches AbuseStrikes.
	if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonRateLimited}) {
		t.Errorf("closes %v, want rate_limited", got)
	}
	if n := rate.Calls(admission.UserKey("t", "alice")); n != 4 {
		t.Errorf("limiter asked %d times for alice, want 4", n)
	}
	if got := h.counter.Of(audit.RateLimited); len(got) != 1 {
		t.Errorf("rate_limited audited %d times, want once (the first strike)", len(got))
	}
}

func TestMaxInflight(t *testing.T) {
	inbox := &fakeInbox{gate: make(chan struct{}), started: make(chan Name, 16)}
	h := newHarness(t, func(o *options) { o.inbox = inbox })
	s, tr := h.authed(t, "alice")
	opened := false
	defer func() {
		if !opened {
			close(inbox.gate)
		}
	}()
	for i := range DefaultMaxInflight {
		s.Handle(Request{Name: NameList, Ref: Ref{Ack: int64(i)}})
	}
	for range DefaultMaxInflight {
		select {
		case <-inbox.started:
		case <-time.After(testkit.DefaultTimeout):
			t.Fatal("timed out waiting for the inbox calls")
		}
	}
	s.Handle(Request{Name: NameMarkAllRead, Ref: Ref{Ack: 99}})
	got := tr.gotReplies()
	if len(got) != 1 || got[0].Err == nil || got[0].Err.Code != CodeRateLimited || got[0].Err.Message != "too many requests" ||
		got[0].Ref.Ack != 99 || got[0].Name != NameMarkAllRead {
		t.Fatalf("replies %+v, want one rate_limited %q", got, "too many requests")
	}
	if n := len(h.counter.Of(audit.RateLimited)); n != 1 {
		t.Errorf("rate_limited audited %d times", n)
	}
	// Ping is answered inline, whatever is in flight.
	s.Handle(Request{Name: NamePing})
	if got := tr.gotReplies(); len(got) != 2 || got[1].Name != NamePing || got[1].Err != nil {
		t.Errorf("ping behind in-flight requests: %+v", got)
	}

	close(inbox.gate)
	opened = true
	got = tr.waitReplies(t, 2+DefaultMaxInflight)
	for _, r := range got[2:] {
		if r.Name != NameList || r.Err != nil || r.Page == nil || len(r.Page.Items) != 1 {
			t.Errorf("list reply %+v", r)
		}
	}
	// The slots are free again.
	s.Handle(Request{Name: NameMarkAllRead})
	got = tr.waitReplies(t, 3+DefaultMaxInflight)
	if r := got[len(got)-1]; r.Name != NameMarkAllRead || r.Err != nil {
		t.Errorf("after the burst: %+v", r)
	}
	if len(tr.gotCloses()) != 0 {
		t.Errorf("closed: %v", tr.gotCloses())
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name          string
		authenticated bool
	}{
		{name: "before auth", authenticated: false},
		{name: "after auth", authenticated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.session.MaxInvalid = 3 })
			var s *Session
			var tr *fakeTransport
			if tt.authenticated {
				s, tr = h.authed(t, "alice")
			} else {
				s, tr = h.newSession(t)
			}
			detail := errors.New("field x: bad")
			for i := range 3 {
				s.Invalid(Ref{Ack: int64(i)}, detail)
			}
			got := tr.gotReplies()
			if len(got) != 3 {
				t.Fatalf("%d replies, want 3", len(got))
			}
			for i, r := range got {
				if r.Err == nil || r.Err.Code != CodeInvalidMessage || r.Err.CorrelationID == "" || r.Ref.Ack != int64(i) {
					t.Errorf("reply %d: %+v", i, r)
				}
				if strings.Contains(r.Err.Error(), "field x") {
					t.Errorf("reply %d shows the detail: %v", i, r.Err)
				}
			}
			if len(tr.gotCloses()) != 0 {
				t.Fatalf("closed after %d invalid messages (MaxInvalid 3): %v", 3, tr.gotCloses())
			}
			s.Invalid(Ref{Ack: 3}, detail)
			if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonPolicyViolation}) {
				t.Errorf("closes %v, want policy_violation", got)
			}
			if n := len(h.counter.Of(audit.InvalidMessage)); n != 4 {
				t.Errorf("invalid_message audited %d times, want 4", n)
			}
			if h.hub.Active() != 0 {
				t.Errorf("hub has %d clients", h.hub.Active())
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		wantClose bool
		wantAudit audit.Event // "" for none
	}{
		{name: "same identity", token: "alice+admin"},
		{name: "another user", token: "bob", wantClose: true, wantAudit: audit.Forbidden},
		{name: "same user of another tenant", token: "u/alice", wantClose: true, wantAudit: audit.Forbidden},
		{name: "invalid token", token: "bad", wantClose: true, wantAudit: audit.TokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.session.OnRequest = func(admission.Transport, Name) {} })
			s, tr := h.authed(t, "alice")
			s.Handle(Request{Name: NameAuth, Token: tt.token, Ref: Ref{Ack: 5}})
			if tt.wantClose {
				if got := tr.gotCloses(); !reflect.DeepEqual(got, []hub.CloseReason{hub.ReasonUnauthorized}) {
					t.Errorf("closes %v, want unauthorized", got)
				}
				if len(tr.gotReplies()) != 0 {
					t.Errorf("replies %+v", tr.gotReplies())
				}
				if got := h.counter.Of(tt.wantAudit); len(got) != 1 || got[0].Transport != "ws" {
					t.Errorf("%s audited %v", tt.wantAudit, got)
				}
				return
			}
			got := tr.gotReplies()
			if len(got) != 1 || got[0].Name != NameAuth || got[0].Err != nil || got[0].Ref.Ack != 5 {
				t.Errorf("replies %+v, want the auth ack", got)
			}
			if len(tr.gotCloses()) != 0 {
				t.Errorf("closed %v", tr.gotCloses())
			}
			if r := s.client.Recipient(); r.Role != "admin" || s.client.TokenID() != "jti-alice+admin" {
				t.Errorf("refresh not applied: role %q, jti %q", r.Role, s.client.TokenID())
			}
		})
	}
}

func TestHandleInboxRequests(t *testing.T) {
	tests := []struct {
		name  string
		req   Request
		call  inboxCall
		check func(t *testing.T, r Reply)
	}{
		{name: "list", req: Request{Name: NameList, Query: store.ListQuery{Before: id2, Limit: 5, UnreadOnly: true}},
			call: inboxCall{name: NameList, query: store.ListQuery{Before: id2, Limit: 5, UnreadOnly: true}},
			check: func(t *testing.T, r Reply) {
				if r.Page == nil || !reflect.DeepEqual(*r.Page, testPage) {
					t.Errorf("page %+v", r.Page)
				}
			}},
		{name: "unread count", req: Request{Name: NameUnreadCount}, call: inboxCall{name: NameUnreadCount},
			check: func(t *testing.T, r Reply) {
				if r.Counts.Unread != 7 || r.Counts.Unseen != 2 {
					t.Errorf("counts %+v", r.Counts)
				}
			}},
		{name: "mark read", req: Request{Name: NameMarkRead, IDs: []string{id1, id2}},
			call: inboxCall{name: NameMarkRead, ids: []string{id1, id2}},
			check: func(t *testing.T, r Reply) {
				if !reflect.DeepEqual(r.Change.IDs, []string{id1, id2}) || r.Change.Unread != 3 {
					t.Errorf("change %+v", r.Change)
				}
			}},
		{name: "mark all read", req: Request{Name: NameMarkAllRead}, call: inboxCall{name: NameMarkAllRead},
			check: func(*testing.T, Reply) {}},
		{name: "delete", req: Request{Name: NameDelete, ID: id1}, call: inboxCall{name: NameDelete, id: id1},
			check: func(t *testing.T, r Reply) {
				if !reflect.DeepEqual(r.Change.IDs, []string{id1}) {
					t.Errorf("change %+v", r.Change)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s, tr := h.authed(t, "alice+admin")
			tt.req.Ref = Ref{JSON: []byte("17"), Ack: NoAck}
			s.Handle(tt.req)
			got := tr.waitReplies(t, 1)
			r := got[0]
			if r.Err != nil || r.Name != tt.req.Name || string(r.Ref.JSON) != "17" || r.Ref.Ack != NoAck {
				t.Fatalf("reply %+v", r)
			}
			tt.check(t, r)
			tt.call.r = notification.Recipient{Tenant: "t", User: "alice", Role: "admin"}
			if calls := h.inbox.received(); len(calls) != 1 || !reflect.DeepEqual(calls[0], tt.call) {
				t.Errorf("inbox calls %+v, want %+v", calls, tt.call)
			}
		})
	}
}

func TestDoMapsStoreErrors(t *testing.T) {
	tests := []struct {
		name    string
		req     Name
		err     error
		want    Code // CodeNone: success
		wantLog bool
	}{
		{name: "success", req: NameDelete, want: CodeNone},
		{name: "not found", req: NameDelete, err: fmt.Errorf("store: delete: %w", store.ErrNotFound), want: CodeNotFound},
		{name: "unavailable", req: NameMarkRead, err: fmt.Errorf("store: mark read: %w", store.ErrUnavailable),
			want: CodeUnavailable, wantLog: true},
		{name: "deadline", req: NameList, err: fmt.Errorf("inbox: %w", context.DeadlineExceeded), want: CodeUnavailable,
			wantLog: true},
		{name: "other", req: NameUnreadCount, err: errors.New("boom"), want: CodeInternal, wantLog: true},
		{name: "closed store", req: NameMarkAllRead, err: store.ErrClosed, want: CodeInternal, wantLog: true},
		{name: "not an inbox request", req: NamePing, want: CodeInternal, wantLog: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newHarness(t, func(o *options) {
				o.inbox = &fakeInbox{err: tt.err}
				o.session.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			r := notification.Recipient{Tenant: "t", User: "alice"}
			rep := h.core.Do(context.Background(), r, Request{Name: tt.req, ID: id1, IDs: []string{id1}}, "transport", "rest")
			if rep.Name != tt.req {
				t.Errorf("reply name %v", rep.Name)
			}
			if tt.want == CodeNone {
				if rep.Err != nil {
					t.Fatalf("err %v", rep.Err)
				}
				return
			}
			if rep.Err == nil || rep.Err.Code != tt.want || rep.Err.CorrelationID == "" || rep.Err.Message != "" {
				t.Fatalf("err %+v, want %v with the generic message", rep.Err, tt.want)
			}
			log := logs.String()
			if logged := strings.Contains(log, "correlation_id="+rep.Err.CorrelationID); logged != tt.wantLog {
				t.Errorf("logged %v, want %v: %q", logged, tt.wantLog, log)
			}
			if tt.wantLog && (!strings.Contains(log, "level=ERROR") || !strings.Contains(log, "transport=rest") ||
				!strings.Contains(log, "user=alice")) {
				t.Errorf("log %q", log)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	inbox := &fakeInbox{gate: make(chan struct{})} // never opened: the request times out
	defer close(inbox.gate)
	h := newHarness(t, func(o *options) {
		o.inbox = inbox
		o.session.RequestTimeout = 20 * time.Millisecond
	})
	s, tr := h.authed(t, "alice")
	s.Handle(Request{Name: NameUnreadCount})
	got := tr.waitReplies(t, 1)
	if got[0].Err == nil || got[0].Err.Code != CodeUnavailable {
		t.Errorf("reply %+v, want unavailable", got[0])
	}
}

func TestFullBufferClosesSlowConsumer(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		authed    bool
		req       Name
		wantClose []hub.CloseReason
	}{
		{name: "ping", err: ErrBufferFull, authed: true, req: NamePing,
			wantClose: []hub.CloseReason{hub.ReasonSlowConsumer}},
		{name: "inbox reply", err: fmt.Errorf("ws: %w", ErrBufferFull), authed: true, req: NameUnreadCount,
			wantClose: []hub.CloseReason{hub.ReasonSlowConsumer}},
		{name: "invalid message before auth", err: ErrBufferFull, authed: false,
			wantClose: []hub.CloseReason{hub.ReasonSlowConsumer}},
		{name: "another error", err: errors.New("ws: closed"), authed: true, req: NamePing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var s *Session
			var tr *fakeTransport
			if tt.authed {
				s, tr = h.authed(t, "alice")
			} else {
				s, tr = h.newSession(t)
			}
			tr.setReplyErr(tt.err)
			if tt.req == NameNone {
				s.Invalid(Ref{Ack: NoAck}, errors.New("bad"))
			} else {
				s.Handle(Request{Name: tt.req})
			}
			tr.waitReplies(t, 1)
			if tt.wantClose != nil {
				testkit.Eventually(t, 0, func() bool { return len(tr.gotCloses()) > 0 }, "the close")
			}
			if got := tr.gotCloses(); !reflect.DeepEqual(got, tt.wantClose) {
				t.Errorf("closes %v, want %v", got, tt.wantClose)
			}
		})
	}
}

func TestLeewayExtendsExpiry(t *testing.T) {
	// Two cores share one hub with a fast expiry sweep; their verifiers
	// differ only in leeway. Both clients' tokens expired a second ago.
	h := newHarness(t, func(o *options) { o.hub.ExpiryCheck = 5 * time.Millisecond })
	lenient, err := New(Config{}, h.hub, &fakeVerifier{leeway: time.Hour}, h.inbox, h.adm)
	if err != nil {
		t.Fatal(err)
	}
	expired := auth.Principal{Tenant: "t", User: "alice", Expires: time.Now().Add(-time.Second)}
	attach := func(c *Core) (*Session, *fakeTransport) {
		t.Helper()
		slot, _ := h.adm.Admit(admission.Request{Transport: admission.SSE, IP: "192.0.2.9", Authenticated: true})
		t.Cleanup(slot.Release)
		tr := &fakeTransport{}
		s := c.NewSession(tr, slot)
		if err := s.Attach(expired, nil); err != nil {
			t.Fatal(err)
		}
		return s, tr
	}
	within, withinTr := attach(lenient)
	_, strictTr := attach(h.core)
	testkit.Eventually(t, 0, func() bool { return len(strictTr.gotCloses()) > 0 }, "the expired client to be closed")
	if got := strictTr.gotCloses(); got[0] != hub.ReasonTokenExpired {
		t.Errorf("closes %v, want token_expired", got)
	}
	// The sweep that closed the strict client looked at this one too.
	if closed, _ := within.client.Closed(); closed || len(withinTr.gotCloses()) != 0 {
		t.Errorf("closed within the leeway: %v", withinTr.gotCloses())
	}
}

// TestAuthenticateRacesEnd ends sessions while they authenticate: whichever
// wins, no per-user slot and no hub client is left behind.
func TestAuthenticateRacesEnd(t *testing.T) {
	users := sessiontest.NewConns(t, 100)
	h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
	for i := range 50 {
		s, _ := h.newSession(t)
		var wg sync.WaitGroup
		var err error
		wg.Go(func() { err = s.Authenticate("alice", nil) })
		wg.Go(func() { s.End(hub.ReasonClientClosed) })
		wg.Wait()
		if err != nil && !errors.Is(err, ErrGone) {
			t.Fatalf("round %d: %v", i, err)
		}
		if n := users.Held(admission.UserKey("t", "alice")); n != 0 {
			t.Fatalf("round %d (err %v): alice holds %d slots", i, err, n)
		}
	}
	testkit.Eventually(t, 0, func() bool { return h.hub.Active() == 0 }, "no hub clients (%d)", h.hub.Active())
}

// TestConcurrentRequestsAndEnd runs requests from several goroutines while
// the connection ends; under -race this checks the session's locking, and
// TestMain's leak check that no request goroutine is left.
func TestConcurrentRequestsAndEnd(t *testing.T) {
	h := newHarness(t)
	s, tr := h.authed(t, "alice")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				switch (g + i) % 4 {
				case 0:
					s.Handle(Request{Name: NamePing})
				case 1:
					s.Handle(Request{Name: NameUnreadCount})
				case 2:
					s.Handle(Request{Name: NameAuth, Token: "alice"})
				default:
					s.Invalid(Ref{Ack: NoAck}, errors.New("bad"))
				}
			}
		})
	}
	wg.Go(func() { s.End(hub.ReasonClientClosed) })
	wg.Wait()
	if got := tr.gotCloses(); len(got) != 1 {
		t.Errorf("closes %v, want exactly one", got)
	}
	testkit.Eventually(t, 0, func() bool { return h.hub.Active() == 0 }, "no hub clients")
}

func TestAttachFailures(t *testing.T) {
	t.Run("hub closed", func(t *testing.T) {
		users := sessiontest.NewConns(t, 1)
		h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
		s, _ := h.newSession(t)
		h.hub.Close(hub.ReasonShutdown)
		if err := s.Authenticate("alice", nil); !errors.Is(err, hub.ErrClosed) {
			t.Fatalf("err = %v, want hub.ErrClosed", err)
		}
		if s.Authenticated() || users.Held(admission.UserKey("t", "alice")) != 0 {
			t.Errorf("attached %v, alice slots %d", s.Authenticated(), users.Held(admission.UserKey("t", "alice")))
		}
	})
	t.Run("connection gone", func(t *testing.T) {
		users := sessiontest.NewConns(t, 1)
		h := newHarness(t, func(o *options) { o.admission.ConnsPerUser = users })
		s, _ := h.newSession(t)
		s.End(hub.ReasonClientClosed)
		s.Slot().Release() // the transport let go of the connection
		if err := s.Authenticate("alice", nil); !errors.Is(err, ErrGone) {
			t.Fatalf("err = %v, want ErrGone", err)
		}
		if users.Held(admission.UserKey("t", "alice")) != 0 {
			t.Errorf("alice holds %d slots", users.Held(admission.UserKey("t", "alice")))
		}
	})
}
