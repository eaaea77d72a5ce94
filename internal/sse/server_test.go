package sse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/session/sessiontest"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

// memStore is a hub.Store holding explicit-user notifications in memory.
type memStore struct {
	mu    sync.Mutex
	items map[string][]notification.Item // by user
}

func (m *memStore) Since(_ context.Context, r notification.Recipient, pos notification.Position, limit int) ([]notification.Item, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []notification.Item
	for _, it := range m.items[r.User] {
		if it.Seq > pos.User {
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, it)
		}
	}
	return out, false, nil
}

func (m *memStore) Head(_ context.Context, r notification.Recipient) (notification.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return notification.Position{User: int64(len(m.items[r.User]))}, nil
}

func (m *memStore) Counts(context.Context, notification.Recipient) (hub.Counts, error) {
	return hub.Counts{}, nil
}

func (m *memStore) HeadCounts(ctx context.Context, r notification.Recipient) (notification.Position, hub.Counts, error) {
	p, err := m.Head(ctx, r)
	return p, hub.Counts{}, err
}

// publish stores a notification for user and delivers it like the broker.
func (m *memStore) publish(h *hub.Hub, user, body string) {
	m.mu.Lock()
	seq := int64(len(m.items[user]) + 1)
	n := notification.Notification{ID: fmt.Sprintf("n%d", seq), Tenant: "acme", Type: "t", Title: "x", Body: body,
		Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{user}}, CreatedAt: time.Unix(0, 0)}
	m.items[user] = append(m.items[user], notification.Item{Notification: n, Seq: seq})
	m.mu.Unlock()
	h.Deliver(&notification.Event{Kind: notification.EventNotification, Tenant: "acme", Notification: &n,
		Deliveries: []notification.Delivery{{User: user, Seq: seq}}})
}

// fakeVerifier accepts "tok-<user>" tokens.
type fakeVerifier struct{}

func (fakeVerifier) Verify(tok string) (auth.Principal, error) {
	user, ok := strings.CutPrefix(tok, "tok-")
	if !ok || user == "" {
		return auth.Principal{}, &auth.TokenError{Reason: auth.ReasonMalformed}
	}
	return auth.Principal{User: user, Tenant: "acme", Expires: time.Now().Add(time.Hour)}, nil
}

func (fakeVerifier) Leeway() time.Duration { return 0 }

type env struct {
	t     testing.TB
	hub   *hub.Hub
	store *memStore
	adm   *admission.Controller
	srv   *Server
	ts    *httptest.Server
	logs  *testkit.SyncBuffer
}

type mode int

const (
	modeHijack mode = iota
	modeHandler
	modeHTTP2
)

func (m mode) String() string { return [...]string{"hijack", "handler", "http2"}[m] }

// newEnv serves a Server on httptest with short http.Server timeouts, which
// long streams must outlive.
func newEnv(t testing.TB, m mode, mutate ...func(*Config)) *env {
	t.Helper()
	return newEnvAdmission(t, m, admission.Config{}, mutate...)
}

// newEnvAdmission is newEnv with the node's admission policy acfg: the
// Server runs on a session core with a real hub, as on a node.
func newEnvAdmission(t testing.TB, m mode, acfg admission.Config, mutate ...func(*Config)) *env {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := audit.New(log, nil)
	st := &memStore{items: map[string][]notification.Item{}}
	h := hub.New(st, hub.Config{Logger: log})
	acfg.Audit = rec
	adm := admission.New(acfg)
	core, err := session.New(session.Config{Logger: log, Audit: rec}, h, fakeVerifier{}, sessiontest.NopInbox{}, adm)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{AllowOrigin: func(o string) bool { return o == "https://app.example.com" }, Logger: log,
		DisableHijack: m == modeHandler}
	for _, f := range mutate {
		f(&cfg)
	}
	srv, err := New(cfg, core)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ReadTimeout = 300 * time.Millisecond
	ts.Config.WriteTimeout = 300 * time.Millisecond
	if m == modeHTTP2 {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	e := &env{t: t, hub: h, store: st, adm: adm, srv: srv, ts: ts, logs: logs}
	t.Cleanup(func() {
		h.Close(hub.ReasonShutdown)
		ts.CloseClientConnections()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return e
}

// open starts a stream and returns a line reader over its body.
func (e *env) open(tok string, hdr ...string) (*http.Response, *bufio.Reader, context.CancelFunc) {
	e.t.Helper()
	// The timeout bounds every read of a test that would otherwise hang.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/v1/me/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != 200 {
		cancel()
		e.t.Fatalf("status %d", resp.StatusCode)
	}
	return resp, bufio.NewReader(resp.Body), cancel
}

// until reads lines until one has the prefix, and returns it.
func until(t testing.TB, r *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSuffix(line, "\n")
		}
	}
}

func TestStreamModes(t *testing.T) {
	for _, m := range []mode{modeHijack, modeHandler, modeHTTP2} {
		t.Run(m.String(), func(t *testing.T) {
			e := newEnv(t, m, func(c *Config) { c.HeartbeatInterval = 40 * time.Millisecond })
			e.store.publish(e.hub, "alice", "zero")
			resp, r, _ := e.open("tok-alice", "Last-Event-ID", "1.0")
			if want := map[bool]int{true: 2, false: 1}[m == modeHTTP2]; resp.ProtoMajor != want {
				t.Fatalf("proto %s", resp.Proto)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
				t.Fatalf("content type %q", ct)
			}
			if got := until(t, r, "retry:"); got != "retry: 3000" {
				t.Fatalf("retry line %q", got)
			}
			if got := until(t, r, "data:"); !strings.Contains(got, `"position":"1.0"`) {
				t.Fatalf("ready %q", got)
			}
			// Outlive the http.Server's 300 ms read and write timeouts.
			time.Sleep(700 * time.Millisecond)
			e.store.publish(e.hub, "alice", "one")
			e.store.publish(e.hub, "alice", "two")
			if got := until(t, r, "id:"); got != "id: 2.0" { // resumed after 1.0
				t.Fatalf("first id %q", got)
			}
			if got := until(t, r, "id:"); got != "id: 3.0" {
				t.Fatalf("second id %q", got)
			}
			until(t, r, ": hb")
			if e.srv.Active() != 1 || e.hub.Active() != 1 {
				t.Fatalf("active %d/%d", e.srv.Active(), e.hub.Active())
			}
			if want := map[mode]string{modeHijack: "poller", modeHandler: "handler", modeHTTP2: "handler"}[m]; !strings.Contains(e.logs.String(), `"engine":"`+want+`"`) {
				t.Fatalf("stream not served by the %s engine", want)
			}
			e.hub.Clients()[0].Close(hub.ReasonRevoked)
			if got := until(t, r, "data:"); got != `data: {"code":4004,"reason":"revoked"}` {
				t.Fatalf("close %q", got)
			}
			if _, err := io.ReadAll(r); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("after close: %v", err)
			}
			testkit.Eventually(t, 0, func() bool { return e.srv.Active() == 0 }, "stream freed")
		})
	}
}

func TestClientGoneFreesStream(t *testing.T) {
	for _, m := range []mode{modeHijack, modeHandler} {
		t.Run(m.String(), func(t *testing.T) {
			e := newEnv(t, m)
			_, r, cancel := e.open("tok-bob")
			until(t, r, "event: ready")
			cancel()
			testkit.Eventually(t, 0, func() bool { return e.srv.Active() == 0 && e.hub.Active() == 0 }, "stream freed")
			if !strings.Contains(e.logs.String(), `"reason":"client_closed"`) {
				t.Fatal("no client_closed disconnect")
			}
		})
	}
}

// rawStream opens a stream on a plain TCP connection that reads only the
// response head.
func rawStream(t testing.TB, e *env, tok string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /v1/me/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, tok)
	head := make([]byte, 12)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("raw stream: %v %q", err, head)
	}
	return c
}

func TestHijackedStreamRefusesClientData(t *testing.T) {
	e := newEnv(t, modeHijack)
	c := rawStream(t, e, "tok-carol")
	testkit.Eventually(t, 0, func() bool { return e.hub.Active() == 1 }, "attached")
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 0, func() bool { return e.srv.Active() == 0 && e.hub.Active() == 0 }, "stream closed")
	if !strings.Contains(e.logs.String(), `"reason":"protocol_error"`) {
		t.Fatal("no protocol_error close")
	}
}

// TestStalledClientIsClosed: a client that stops reading while its buffer
// is far from full is closed once its pending bytes make no progress for
// WriteTimeout (the per-write deadline), in both engines.
func TestStalledClientIsClosed(t *testing.T) {
	for _, m := range []mode{modeHijack, modeHandler} {
		t.Run(m.String(), func(t *testing.T) {
			e := newEnv(t, m, func(c *Config) {
				c.WriteTimeout = 300 * time.Millisecond
				c.WriteBufferBytes = 64 << 20
			})
			rawStream(t, e, "tok-dora")
			testkit.Eventually(t, 0, func() bool { return e.hub.Active() == 1 }, "attached")
			big := strings.Repeat("y", 16<<10)
			for i := 0; i < 800 && e.hub.Active() == 1; i++ { // up to 12.8 MB
				e.store.publish(e.hub, "dora", big)
			}
			testkit.Eventually(t, 0, func() bool { return e.hub.Active() == 0 }, "stalled stream closed")
			// The hub logs the reason just after unregistering the client.
			testkit.Eventually(t, 0, func() bool {
				logs := e.logs.String()
				return strings.Contains(logs, `"reason":"slow_consumer"`) ||
					// net/http's handler path may surface the stalled write
					// as a broken connection rather than a deadline.
					(m == modeHandler && strings.Contains(logs, `"reason":"transport_error"`))
			}, "close reason logged")
		})
	}
}

// TestRequestsRefusedBeforeStreaming: every refusal is an HTTP error, never
// a stream. The node-wide cap (admission's MaxConnections, which replaced
// the SSE-only MaxStreams) answers 503 with Retry-After.
func TestRequestsRefusedBeforeStreaming(t *testing.T) {
	e := newEnvAdmission(t, modeHijack, admission.Config{MaxConnections: 1})
	do := func(method, path string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(method, e.ts.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	cases := []struct {
		name   string
		hdr    []string
		path   string
		status int
	}{
		{"no credentials", nil, "/v1/me/stream", 401},
		{"bad token", []string{"Authorization", "Bearer nope"}, "/v1/me/stream", 401},
		{"basic auth", []string{"Authorization", "Basic eDp5"}, "/v1/me/stream", 401},
		{"disallowed origin", []string{"Authorization", "Bearer tok-a", "Origin", "https://evil.test"}, "/v1/me/stream", 403},
		{"null origin", []string{"Authorization", "Bearer tok-a", "Origin", "null"}, "/v1/me/stream", 403},
		{"token in URL", []string{"Authorization", "Bearer tok-a"}, "/v1/me/stream?token=tok-a", 400},
		{"bad since", []string{"Authorization", "Bearer tok-a"}, "/v1/me/stream?since=1", 400},
	}
	for _, tc := range cases {
		if resp := do("GET", tc.path, tc.hdr...); resp.StatusCode != tc.status || strings.Contains(resp.Header.Get("Content-Type"), "event-stream") {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	_, r, _ := e.open("tok-a")
	until(t, r, "event: ready")
	if resp := do("GET", "/v1/me/stream", "Authorization", "Bearer tok-b"); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over MaxConnections: %d", resp.StatusCode)
	}
}

// TestAdmissionCapsStreams: streams take the node's per-user and per-IP
// connection slots (shared with the other transports) before the response
// head, give them back when they end, and are counted like WebSockets with
// a header token: refused credentials are an attempt rejected before
// admission, a per-user refusal an admitted connection that failed.
func TestAdmissionCapsStreams(t *testing.T) {
	for _, m := range []mode{modeHijack, modeHandler} {
		t.Run(m.String(), func(t *testing.T) {
			e := newEnvAdmission(t, m, admission.Config{ConnsPerUser: limit.NewCounter(1), ConnsPerIP: limit.NewCounter(2)})
			get := func(tok string) *http.Response {
				t.Helper()
				req, _ := http.NewRequest("GET", e.ts.URL+"/v1/me/stream", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(resp.Header.Get("Content-Type"), "event-stream") || !strings.Contains(string(body), `"rate_limited"`) {
					t.Fatalf("refusal %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				return resp
			}
			_, r, cancel := e.open("tok-ann")
			until(t, r, "event: ready")
			if resp := get("tok-ann"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" {
				t.Fatalf("over the per-user cap: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			_, r2, _ := e.open("tok-ben")
			until(t, r2, "event: ready")
			if resp := get("tok-cat"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" {
				t.Fatalf("over the per-IP cap: %d", resp.StatusCode)
			}
			if resp, err := e.ts.Client().Get(e.ts.URL + "/v1/me/stream"); err != nil || resp.StatusCode != 401 {
				t.Fatalf("no credentials: %v", err)
			} else {
				resp.Body.Close()
			}
			// The hub sends ready from inside Attach, which marks the slot
			// opened (and logs token_validated) only after: a client can
			// read ready a moment before the counter moves.
			want := admission.TransportStats{Attempts: 5, Refused: 2, Opened: 2, Failed: 3, Active: 2}
			var got admission.TransportStats
			testkit.Eventually(t, 0, func() bool { got = e.adm.Stats()["sse"]; return got == want }, "stats %+v, want %+v", &got, want)
			for _, ev := range []string{`"event":"limit_exceeded","scope":"per_user"`, `"event":"limit_exceeded","scope":"per_ip"`,
				`"event":"token_invalid","reason":"missing"`, `"event":"token_validated"`} {
				if !strings.Contains(e.logs.String(), ev) {
					t.Errorf("no %s in logs", ev)
				}
			}
			// The end of a stream gives its slots back.
			cancel()
			testkit.Eventually(t, 0, func() bool { return e.adm.Active() == 1 && e.srv.Active() == 1 }, "slots released")
			_, r3, _ := e.open("tok-ann")
			until(t, r3, "event: ready")
		})
	}
}

func TestLogsNeverContainSecrets(t *testing.T) {
	e := newEnv(t, modeHijack)
	post := func(tok string) (int, string) {
		req, _ := http.NewRequest("POST", e.ts.URL+"/v1/me/stream-tickets", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	secretUser := "s3cr3t-user-name-in-token"
	status, body := post("tok-" + secretUser)
	tk, _, _ := strings.Cut(strings.TrimPrefix(body, `{"ticket":"`), `"`)
	if status != 200 || len(tk) != ticketLen {
		t.Fatalf("ticket: %d %s", status, body)
	}
	if status, _ := post("bad-token-value-0123456789"); status != 401 {
		t.Fatalf("bad token: %d", status)
	}
	get := func(q string) int {
		resp, err := e.ts.Client().Get(e.ts.URL + "/v1/me/stream?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := strings.Repeat("Q", ticketLen)
	for q, want := range map[string]int{"ticket=" + forged: 401, "ticket=short-ticket-value": 401, "access_token=bad-token-value-0123456789": 400} {
		if got := get(q); got != want {
			t.Fatalf("%s: %d", q, got)
		}
	}
	// A used ticket: stream, then replay.
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/me/stream?ticket="+tk, nil)
	resp, err := e.ts.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ticket stream: %v", err)
	}
	until(t, bufio.NewReader(resp.Body), "event: ready")
	resp.Body.Close()
	if got := get("ticket=" + tk); got != 401 {
		t.Fatalf("replay: %d", got)
	}
	logs := e.logs.String()
	for _, s := range []string{tk, forged, "short-ticket-value", "bad-token-value-0123456789", "tok-" + secretUser} {
		if strings.Contains(logs, s) {
			t.Fatalf("secret %q in logs:\n%s", s, logs)
		}
	}
	for _, ev := range []string{`"event":"ticket_invalid","reason":"unknown"`, `"event":"ticket_invalid","reason":"malformed"`, `"event":"token_invalid"`, `"event":"connect"`} {
		if !strings.Contains(logs, ev) {
			t.Errorf("no %s in logs", ev)
		}
	}
}

func TestShutdownClosesUnattachedAndRefusesNew(t *testing.T) {
	e := newEnv(t, modeHijack)
	_, r, _ := e.open("tok-erin")
	until(t, r, "event: ready")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.hub.Close(hub.ReasonShutdown)
	until(t, r, "event: close")
	if got := until(t, r, "data:"); got != `data: {"code":4009,"reason":"shutdown"}` {
		t.Fatalf("close %q", got)
	}
	if got := until(t, r, "retry:"); got < "retry: 1000" || got > "retry: 5000" {
		t.Fatalf("drain retry %q", got)
	}
	// The hub is closed: a new stream is told to go elsewhere at once.
	_, r2, _ := e.open("tok-fay")
	until(t, r2, "event: close")
	if got := until(t, r2, "data:"); got != `data: {"code":4009,"reason":"shutdown"}` {
		t.Fatalf("late stream %q", got)
	}
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := e.ts.Client().Do(func() *http.Request {
		req, _ := http.NewRequest("GET", e.ts.URL+"/v1/me/stream", nil)
		req.Header.Set("Authorization", "Bearer tok-gil")
		return req
	}())
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("after shutdown: %v", err)
	}
	resp.Body.Close()
}
