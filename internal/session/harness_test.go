package session

import (
	"context"
	"github.com/heraldhq/herald/internal/audit/audittest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session/sessiontest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
)

// fakeVerifier accepts "<user>" (tenant "t") and "<tenant>/<user>", with the
// role "admin" when the token ends in "+admin" and the topics claim a,b*
// after "|a,b*"; "bad" fails the signature.
type fakeVerifier struct {
	leeway time.Duration

	mu    sync.Mutex
	calls int // guarded by mu
}

func (v *fakeVerifier) Verify(tok string) (auth.Principal, error) {
	v.mu.Lock()
	v.calls++
	v.mu.Unlock()
	if tok == "bad" || tok == "" {
		return auth.Principal{}, &auth.TokenError{Reason: auth.ReasonSignature}
	}
	p := auth.Principal{Tenant: "t", Role: "user", TokenID: "jti-" + tok, Expires: time.Now().Add(time.Hour)}
	tok, pats, hasTopics := strings.Cut(tok, "|") // "<user>|a,b*": the topics claim
	if hasTopics {
		p.Topics = strings.Split(pats, ",")
	}
	tok, admin := strings.CutSuffix(tok, "+admin")
	if admin {
		p.Role = "admin"
	}
	if tenant, user, ok := strings.Cut(tok, "/"); ok {
		p.Tenant, p.User = tenant, user
	} else {
		p.User = tok
	}
	return p, nil
}

func (v *fakeVerifier) Leeway() time.Duration { return v.leeway }

func (v *fakeVerifier) verified() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

// inboxCall is one call the fake inbox received.
type inboxCall struct {
	name  Name
	r     notification.Recipient
	ids   []string
	id    string
	query store.ListQuery
	all   bool
	prefs notification.Preferences
}

// fakeInbox answers every request with canned results, or err. With a gate
// it holds each call until the gate is closed (or the request's context
// ends), telling started when a call arrives.
type fakeInbox struct {
	err     error
	gate    chan struct{}
	started chan Name

	mu    sync.Mutex
	calls []inboxCall // guarded by mu
}

var testPage = store.Page{Items: []notification.Item{{Notification: notification.Notification{ID: id1, Type: "x",
	Title: "hello", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}, Seq: 1}}, Next: id1}

func (f *fakeInbox) call(ctx context.Context, c inboxCall) error {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- c.name
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.err
}

func (f *fakeInbox) List(ctx context.Context, r notification.Recipient, q store.ListQuery) (store.Page, error) {
	if err := f.call(ctx, inboxCall{name: NameList, r: r, query: q}); err != nil {
		return store.Page{}, err
	}
	return testPage, nil
}

func (f *fakeInbox) Counts(ctx context.Context, r notification.Recipient) (store.Counts, error) {
	if err := f.call(ctx, inboxCall{name: NameUnreadCount, r: r}); err != nil {
		return store.Counts{}, err
	}
	return store.Counts{Unread: 7, Unseen: 2, ByCategory: map[string]int64{"ci": 1}}, nil
}

func (f *fakeInbox) MarkSeen(ctx context.Context, r notification.Recipient, upTo *notification.Position) (store.Change, error) {
	c := inboxCall{name: NameSeen, r: r}
	if upTo != nil {
		c.id = upTo.String()
	}
	if err := f.call(ctx, c); err != nil {
		return store.Change{}, err
	}
	return store.Change{Unread: 3}, nil
}

func (f *fakeInbox) Archive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameArchive, r: r, ids: ids, all: all}); err != nil {
		return store.Change{}, err
	}
	return store.Change{IDs: ids, Unread: 1}, nil
}

func (f *fakeInbox) Unarchive(ctx context.Context, r notification.Recipient, ids []string, all bool) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameUnarchive, r: r, ids: ids, all: all}); err != nil {
		return store.Change{}, err
	}
	return store.Change{IDs: ids, Unread: 4}, nil
}

func (f *fakeInbox) Preferences(ctx context.Context, r notification.Recipient) (notification.Preferences, error) {
	if err := f.call(ctx, inboxCall{name: NamePreferences, r: r}); err != nil {
		return notification.Preferences{}, err
	}
	return notification.Preferences{MutedCategories: []string{"news"}}, nil
}

func (f *fakeInbox) SetPreferences(ctx context.Context, r notification.Recipient, p notification.Preferences) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameSetPreferences, r: r, prefs: p}); err != nil {
		return store.Change{}, err
	}
	return store.Change{}, nil
}

func (f *fakeInbox) MarkRead(ctx context.Context, r notification.Recipient, ids []string) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameMarkRead, r: r, ids: ids}); err != nil {
		return store.Change{}, err
	}
	return store.Change{IDs: ids, Unread: 3}, nil
}

func (f *fakeInbox) MarkAllRead(ctx context.Context, r notification.Recipient) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameMarkAllRead, r: r}); err != nil {
		return store.Change{}, err
	}
	return store.Change{Unread: 0}, nil
}

func (f *fakeInbox) Delete(ctx context.Context, r notification.Recipient, id string) (store.Change, error) {
	if err := f.call(ctx, inboxCall{name: NameDelete, r: r, id: id}); err != nil {
		return store.Change{}, err
	}
	return store.Change{IDs: []string{id}, Unread: 2}, nil
}

func (f *fakeInbox) received() []inboxCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]inboxCall(nil), f.calls...)
}

// fakeTransport records what the session and the hub do to a connection.
type fakeTransport struct {
	mu       sync.Mutex
	replyErr error // guarded by mu: what Reply returns
	frames   []hub.Frame
	replies  []Reply
	closes   []hub.CloseReason
}

var _ Transport = (*fakeTransport)(nil)

func (f *fakeTransport) Send(fr hub.Frame) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, fr)
	return nil
}

func (f *fakeTransport) Close(r hub.CloseReason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes = append(f.closes, r)
}

func (f *fakeTransport) Reply(r *Reply) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, *r)
	return f.replyErr
}

func (f *fakeTransport) setReplyErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replyErr = err
}

func (f *fakeTransport) gotFrames() []hub.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.Frame(nil), f.frames...)
}

func (f *fakeTransport) gotReplies() []Reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Reply(nil), f.replies...)
}

func (f *fakeTransport) gotCloses() []hub.CloseReason {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.CloseReason(nil), f.closes...)
}

// waitReplies waits for n replies and returns them.
func (f *fakeTransport) waitReplies(t testing.TB, n int) []Reply {
	t.Helper()
	testkit.Eventually(t, 0, func() bool { return len(f.gotReplies()) >= n }, "%d replies", n)
	return f.gotReplies()
}

// harness is a Core with a real hub and fakes for everything else.
type harness struct {
	core     *Core
	hub      *hub.Hub
	adm      *admission.Controller
	counter  *audittest.Counter
	verifier *fakeVerifier
	inbox    *fakeInbox
}

// options are what a test may change before the Core is built.
type options struct {
	session   Config
	admission admission.Config
	hub       hub.Config
	inbox     *fakeInbox
}

func newHarness(t testing.TB, mutate ...func(*options)) *harness {
	t.Helper()
	h := &harness{counter: &audittest.Counter{}, verifier: &fakeVerifier{}}
	o := options{inbox: &fakeInbox{}}
	for _, m := range mutate {
		m(&o)
	}
	rec := h.counter.Recorder()
	o.session.Audit, o.admission.Audit = rec, rec
	h.inbox = o.inbox
	h.hub = hub.New(sessiontest.EmptyStore{}, o.hub)
	t.Cleanup(func() { h.hub.Close(hub.ReasonShutdown) })
	h.adm = admission.New(o.admission)
	core, err := New(o.session, h.hub, h.verifier, h.inbox, h.adm)
	if err != nil {
		t.Fatal(err)
	}
	h.core = core
	return h
}

// newSession admits a WebSocket connection and starts its session. The
// slot is released when the test ends.
func (h *harness) newSession(t testing.TB) (*Session, *fakeTransport) {
	t.Helper()
	h.adm.Attempt(admission.WebSocket)
	slot, r := h.adm.Admit(admission.Request{Transport: admission.WebSocket, IP: "192.0.2.1"})
	if r != admission.RefusedNone {
		t.Fatalf("admission refused: %v", r)
	}
	t.Cleanup(slot.Release)
	tr := &fakeTransport{}
	return h.core.NewSession(tr, slot), tr
}

// authed returns a session authenticated with token whose ready frame has
// been sent.
func (h *harness) authed(t testing.TB, token string) (*Session, *fakeTransport) {
	t.Helper()
	s, tr := h.newSession(t)
	if err := s.Authenticate(token, nil); err != nil {
		t.Fatalf("Authenticate(%q): %v", token, err)
	}
	waitReady(t, tr)
	return s, tr
}

// waitReady waits for the hub's ready frame on tr.
func waitReady(t testing.TB, tr *fakeTransport) hub.Frame {
	t.Helper()
	testkit.Eventually(t, 0, func() bool { return len(tr.gotFrames()) > 0 }, "the ready frame")
	f := tr.gotFrames()[0]
	if f.Kind != hub.FrameReady {
		t.Fatalf("first frame %v, want ready", f.Kind)
	}
	return f
}
