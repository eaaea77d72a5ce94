package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

const testSecret = "test-secret-test-secret-test-secret-0123456789"

// testNode is a Herald node on a loopback port with its own database.
type testNode struct {
	t      testing.TB
	node   *Node
	base   string // http://127.0.0.1:port
	apiKey string
	logs   *testkit.SyncBuffer
}

func startNode(t testing.TB, mutate ...func(*Config)) *testNode {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	cfg := Config{
		Database:       filepath.Join(t.TempDir(), "herald.db"),
		Auth:           auth.Config{HMACSecret: []byte(testSecret)},
		APIKeys:        []string{"test-api-key-0123456789", "scoped-api-key-0123456789@acme", "other-api-key-0123456789@globex", "admin:admin-api-key-0123456789"},
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AllowedOrigins: []string{"https://app.example.com"},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	addr := testkit.Serve(t, n.Serve, n.Shutdown)
	t.Cleanup(func() { // before Serve's cleanup shuts the node down
		if t.Failed() && os.Getenv("HERALD_TEST_LOGS") != "" {
			t.Logf("node logs:\n%s", logs.String())
		}
	})
	return &testNode{t: t, node: n, base: "http://" + addr, apiKey: "test-api-key-0123456789", logs: logs}
}

// token is a JWT for user of tenant signed with the nodes' secret
// (testkit.UserToken).
func token(t testing.TB, tenant, user, role string, ttl time.Duration) string {
	t.Helper()
	return testkit.UserToken(t, []byte(testSecret), tenant, user, role, ttl)
}

// tokenWith is a JWT of claims signed with the nodes' secret.
func tokenWith(t testing.TB, claims map[string]any) string {
	t.Helper()
	return testkit.Token(t, []byte(testSecret), claims)
}

// do sends an HTTP request and returns status and body.
func (n *testNode) do(method, path, bearer string, body any, hdr ...string) (int, []byte, http.Header) {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

// publish publishes one notification and returns its id (fails the test on non-201).
func (n *testNode) publish(body map[string]any, hdr ...string) string {
	n.t.Helper()
	status, out, _ := n.do("POST", "/v1/notifications", n.apiKey, body, hdr...)
	if status != http.StatusCreated {
		n.t.Fatalf("publish: %d %s", status, out)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(out, &r); err != nil || r.ID == "" {
		n.t.Fatalf("publish response %s: %v", out, err)
	}
	return r.ID
}

// publishN publishes count notifications to user of tenant and returns
// their ids, in order.
func (n *testNode) publishN(count int, tenant, user string) []string {
	n.t.Helper()
	ids := make([]string, count)
	for i := range ids {
		ids[i] = n.publish(toUsers(tenant, user))
	}
	return ids
}

func toUsers(tenant string, users ...string) map[string]any {
	return map[string]any{"tenant": tenant, "to": map[string]any{"users": users}, "type": "test.event", "title": "hello", "body": "body"}
}

// msg is a server message as the tests see it.
type msg struct {
	Type          string            `json:"type"`
	Ref           json.RawMessage   `json:"ref"`
	Code          string            `json:"code"`
	Message       string            `json:"message"`
	Count         int64             `json:"count"`
	Unread        int64             `json:"unread"`
	Position      string            `json:"position"`
	User          string            `json:"user"`
	Tenant        string            `json:"tenant"`
	IDs           []string          `json:"ids"`
	All           bool              `json:"all"`
	ID            string            `json:"id"`
	Notification  *sseNotification  `json:"notification"` // the same JSON as an SSE notification event's
	Notifications []json.RawMessage `json:"notifications"`
	Event         *liveJSON         `json:"event"` // an "event" message
	Raw           string            `json:"-"`
}

// wsClient is a real WebSocket client (coder/websocket) reading in the background.
type wsClient struct {
	t      testing.TB
	c      *websocket.Conn
	msgs   chan msg
	done   chan struct{}
	err    error // set before done is closed
	cancel context.CancelFunc
	// backlog holds messages next skipped; used by the test goroutine only.
	backlog []msg
}

type dialOpts struct {
	header string // bearer token sent on the upgrade request
	origin string
	since  string // query ?since=
}

func (n *testNode) dial(o dialOpts) (*wsClient, *http.Response, error) {
	ctx, cancel := context.WithCancel(context.Background())
	h := http.Header{}
	if o.header != "" {
		h.Set("Authorization", "Bearer "+o.header)
	}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	u := strings.Replace(n.base, "http://", "ws://", 1) + "/v1/ws"
	if o.since != "" {
		u += "?since=" + o.since
	}
	// Generous: the race detector and parallel packages share two cores. A
	// handshake left unanswered still fails the test, with every
	// goroutine's stack (mustDial).
	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	defer dcancel()
	c, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		cancel()
		return nil, resp, err
	}
	c.SetReadLimit(4 << 20)
	w := &wsClient{t: n.t, c: c, msgs: make(chan msg, 100000), done: make(chan struct{}), cancel: cancel}
	go w.readLoop(ctx)
	n.t.Cleanup(func() { w.close() })
	return w, resp, nil
}

func (n *testNode) mustDial(o dialOpts) *wsClient {
	n.t.Helper()
	w, resp, err := n.dial(o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		if resp == nil {
			// No answer at all: show what the node was doing.
			n.t.Logf("goroutines at the failed dial:\n%s", goroutines())
		}
		n.t.Fatalf("dial: %v (status %d)", err, status)
	}
	return w
}

// goroutines is the stack of every goroutine, cut at 256 KiB.
func goroutines() string {
	buf := make([]byte, 256<<10)
	return string(buf[:runtime.Stack(buf, true)])
}

func (w *wsClient) readLoop(ctx context.Context) {
	defer close(w.done)
	for {
		_, data, err := w.c.Read(ctx)
		if err != nil {
			w.err = err
			return
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			w.err = fmt.Errorf("bad server message %q: %w", data, err)
			return
		}
		m.Raw = string(data)
		w.msgs <- m
	}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	var data []byte
	switch b := v.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		data, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, data); err != nil {
		w.t.Fatalf("ws write: %v", err)
	}
}

// next returns the next message of one of the given types. Messages of
// other types are kept (in order) for later calls, so a test does not depend
// on the relative order of independent messages (an event may overtake the
// ack of the request that caused it).
func (w *wsClient) next(types ...string) msg {
	w.t.Helper()
	match := func(m msg) bool {
		if len(types) == 0 {
			return true
		}
		for _, t := range types {
			if m.Type == t {
				return true
			}
		}
		return false
	}
	for i, m := range w.backlog {
		if match(m) {
			w.backlog = append(w.backlog[:i], w.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.msgs:
			if match(m) {
				return m
			}
			w.backlog = append(w.backlog, m)
		case <-w.done:
			select {
			case m := <-w.msgs:
				if match(m) {
					return m
				}
				w.backlog = append(w.backlog, m)
				continue
			default:
			}
			w.t.Fatalf("connection ended while waiting for %v: %v", types, w.err)
		case <-deadline:
			var kept []string
			for _, m := range w.backlog {
				kept = append(kept, m.Raw)
			}
			w.t.Fatalf("timed out waiting for %v; other messages: %q", types, kept)
		}
	}
}

// closeStatus waits for the connection to end and returns the close code.
func (w *wsClient) closeStatus() websocket.StatusCode {
	w.t.Helper()
	awaitEnd(w.t, w.done, "connection not closed")
	return websocket.CloseStatus(w.err)
}

// awaitEnd waits 15 s at most for a client's reader to end (done closed),
// failing the test with msg if it does not.
func awaitEnd(t testing.TB, done <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal(msg)
	}
}

func (w *wsClient) close() {
	_ = w.c.Close(websocket.StatusNormalClosure, "")
	w.cancel()
	<-w.done
}

// rawUpgrade performs a WebSocket handshake on a plain TCP connection and
// then leaves it alone: a client that never reads.
func rawUpgrade(t testing.TB, n *testNode, tok string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(n.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // keep the kernel's share of the backlog small
	}
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	nr, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:nr]), "HTTP/1.1 101") {
		t.Fatalf("raw upgrade: %v %q", err, buf[:nr])
	}
	return c
}
