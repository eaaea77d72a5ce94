package sse_test

// Real clients against a real node: the npm "eventsource" package on Node
// 20+ and headless Chromium's EventSource. Both need tools from outside Go;
// the tests skip loudly when those are missing, except under CI=true where
// a missing tool fails the test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/testkit"
)

const (
	secret = "test-secret-test-secret-test-secret-0123456789"
	apiKey = "test-api-key-0123456789"
)

var npmOnce struct {
	sync.Once
	err error
}

// nodeDir returns the test-local npm project with its node_modules
// installed (npm ci, once per test binary).
func nodeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.RequireCommand(t, "node")
	testkit.RequireCommand(t, "npm")
	v, err := exec.Command("node", "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); err != nil || major < 20 {
		testkit.Unavailable(t, "node %s is older than 20", strings.TrimSpace(string(v)))
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "eventsource")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err == nil {
				return
			}
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmOnce.err = fmt.Errorf("npm ci: %w\n%s", err, out)
		}
	})
	if npmOnce.err != nil {
		testkit.Unavailable(t, "%v", npmOnce.err)
	}
	return dir
}

type testNode struct {
	n    *node.Node
	base string
	logs *testkit.SyncBuffer
}

func startNode(t *testing.T, origins []string, sc sse.Config) *testNode {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	n, err := node.New(context.Background(), node.Config{
		Database:       filepath.Join(t.TempDir(), "herald.db"),
		Auth:           auth.Config{HMACSecret: []byte(secret)},
		APIKeys:        []string{apiKey},
		AllowedOrigins: origins,
		SSE:            sc,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.Serve(t, n.Serve, n.Shutdown)
	return &testNode{n: n, base: "http://" + addr, logs: logs}
}

func (n *testNode) publish(t *testing.T, user, title string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{user}},
		"type": "test", "title": title, "body": "body\n\ndata: not an event"})
	req, _ := http.NewRequest("POST", n.base+"/v1/notifications", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var r struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(out, &r) != nil {
		t.Fatalf("publish: %d %s", resp.StatusCode, out)
	}
	return r.ID
}

// script runs a node script and yields its JSON output lines.
type script struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan map[string]any
	errb  *testkit.SyncBuffer
}

func runScript(t *testing.T, dir string, env []string, args ...string) *script {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	s := &script{t: t, cmd: cmd, lines: make(chan map[string]any, 1000), errb: &testkit.SyncBuffer{}}
	cmd.Stderr = s.errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"kind": "raw", "line": sc.Text()}
			}
			s.lines <- m
		}
	}()
	t.Cleanup(func() {
		_ = s.stdin.Close()
		<-readDone
		_ = cmd.Wait()
		cancel()
		if t.Failed() {
			t.Logf("script stderr:\n%s", s.errb.String())
		}
	})
	return s
}

// next returns the next line matching pred.
func (s *script) next(what string, pred func(map[string]any) bool) map[string]any {
	s.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("script ended while waiting for %s; stderr:\n%s", what, s.errb.String())
			}
			if pred(m) {
				return m
			}
		case <-deadline:
			s.t.Fatalf("timed out waiting for %s; stderr:\n%s", what, s.errb.String())
		}
	}
}

func kind(k string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["kind"] == k }
}

// TestNodeEventSourceClient: the npm eventsource package connects with a
// ticket, receives live notifications, is disconnected by the server,
// reconnects by itself with Last-Event-ID (and a fresh ticket) and receives
// what was published meanwhile: no loss, no duplicate.
func TestNodeEventSourceClient(t *testing.T) {
	dir := nodeDir(t)
	n := startNode(t, nil, sse.Config{Retry: 200 * time.Millisecond})
	tok := testkit.UserToken(t, []byte(secret), "acme", "nora", "", time.Hour)
	s := runScript(t, dir, []string{"HERALD_BASE=" + n.base, "HERALD_TOKEN=" + tok}, "eventsource-client.mjs")
	if c := s.next("first connect", kind("connect")); c["lastEventId"] != "" {
		t.Fatalf("first connect = %v", c)
	}
	s.next("ready", kind("ready"))
	var want []string
	for i := range 3 {
		want = append(want, n.publish(t, "nora", fmt.Sprintf("before %d", i)))
	}
	var got []string
	lastID := ""
	for len(got) < 3 {
		m := s.next("notification", kind("notification"))
		got = append(got, m["data"].(map[string]any)["id"].(string))
		lastID = m["id"].(string)
	}
	// Server-forced disconnect (as a slow consumer would be), then publish
	// while the client is away.
	for _, c := range n.n.Hub().Clients() {
		c.Close(hub.ReasonSlowConsumer)
	}
	if c := s.next("close event", kind("close")); c["data"].(map[string]any)["reason"] != "slow_consumer" {
		t.Fatalf("close = %v", c)
	}
	for i := range 3 {
		want = append(want, n.publish(t, "nora", fmt.Sprintf("while away %d", i)))
	}
	if c := s.next("reconnect", kind("connect")); c["lastEventId"] != lastID {
		t.Fatalf("reconnect sent Last-Event-ID %v, want %s", c["lastEventId"], lastID)
	}
	want = append(want, n.publish(t, "nora", "after"))
	for len(got) < len(want) {
		m := s.next("notification", kind("notification"))
		got = append(got, m["data"].(map[string]any)["id"].(string))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if logs := n.logs.String(); strings.Count(logs, `"event":"connect"`) < 2 || !strings.Contains(logs, `"auth":"ticket"`) {
		t.Fatalf("expected two ticket connects in the logs")
	}
}

const pageHTML = `<!doctype html><meta charset="utf-8"><title>herald sse</title><script>
window.results = [];
const base = %q, token = %q, preset = %q;
(async () => {
  let ticket = preset;
  try {
    const r = await fetch(base + "/v1/me/stream-tickets", {method: "POST", headers: {Authorization: "Bearer " + token}});
    ticket = (await r.json()).ticket;
    results.push({kind: "ticket"});
  } catch (e) {
    results.push({kind: "fetch-error", message: String(e)});
  }
  const es = new EventSource(base + "/v1/me/stream?ticket=" + encodeURIComponent(ticket));
  es.onopen = () => results.push({kind: "open"});
  es.onerror = () => results.push({kind: "error", readyState: es.readyState});
  for (const name of ["ready", "notification", "unread"]) {
    es.addEventListener(name, (e) => results.push({kind: name, id: e.lastEventId, data: JSON.parse(e.data)}));
  }
})();
</script>`

// TestChromiumEventSource: a page on an allowed origin gets a ticket with
// fetch() and its EventSource receives a published notification; a page on
// a disallowed origin can neither get a ticket nor open the stream (even
// with a valid ticket handed to it) and receives nothing.
func TestChromiumEventSource(t *testing.T) {
	dir := nodeDir(t)
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		testkit.Unavailable(t, "/usr/bin/chromium is missing (apt-get install -y chromium)")
	}

	// Both page servers are listening before the node starts, so the
	// allowlist can name the first one exactly.
	allowedPage := &pageHolder{}
	allowedURL, allowedSet := servePageDeferred(t, allowedPage)
	deniedPage := &pageHolder{}
	deniedURL, deniedSet := servePageDeferred(t, deniedPage)
	n := startNode(t, []string{allowedURL}, sse.Config{})

	tokA := testkit.UserToken(t, []byte(secret), "acme", "alma", "", time.Hour)
	tokD := testkit.UserToken(t, []byte(secret), "acme", "dirk", "", time.Hour)
	allowedSet(fmt.Sprintf(pageHTML, n.base, tokA, ""))
	// The denied page even gets a valid ticket from the test: the stream
	// must still be refused for its origin.
	req, _ := http.NewRequest("POST", n.base+"/v1/me/stream-tickets", nil)
	req.Header.Set("Authorization", "Bearer "+tokD)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tk struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()
	deniedSet(fmt.Sprintf(pageHTML, n.base, tokD, tk.Ticket))

	cfg, _ := json.Marshal(map[string]string{"allowed": allowedURL + "/", "denied": deniedURL + "/", "userDataDir": t.TempDir()})
	s := runScript(t, dir, nil, "browser.mjs", string(cfg))
	step := func(name string) []map[string]any {
		t.Helper()
		m := s.next(name, func(m map[string]any) bool { return m["step"] == name })
		var rs []map[string]any
		b, _ := json.Marshal(m["results"])
		_ = json.Unmarshal(b, &rs)
		t.Logf("%s: %s", name, b)
		return rs
	}
	has := func(rs []map[string]any, k string) bool {
		for _, r := range rs {
			if r["kind"] == k {
				return true
			}
		}
		return false
	}
	if rs := step("allowed-ready"); !has(rs, "ticket") || !has(rs, "ready") {
		t.Fatalf("allowed page: %v", rs)
	}
	id := n.publish(t, "alma", "to the browser")
	fmt.Fprintln(s.stdin, "go")
	rs := step("allowed-notification")
	found := false
	for _, r := range rs {
		if r["kind"] == "notification" {
			d := r["data"].(map[string]any)
			found = d["id"] == id && r["id"] == d["position"] && d["body"] == "body\n\ndata: not an event"
		}
	}
	if !found {
		t.Fatalf("allowed page did not receive %s: %v", id, rs)
	}

	if rs := step("denied-refused"); !has(rs, "fetch-error") || !has(rs, "error") || has(rs, "ready") || has(rs, "open") {
		t.Fatalf("denied page: %v", rs)
	}
	n.publish(t, "dirk", "never delivered")
	fmt.Fprintln(s.stdin, "go")
	if rs := step("denied-final"); has(rs, "ready") || has(rs, "notification") || has(rs, "open") {
		t.Fatalf("denied page received: %v", rs)
	}
	logs := n.logs.String()
	if strings.Count(logs, `"event":"origin_rejected"`) < 2 {
		t.Fatalf("expected origin_rejected for the ticket fetch and the stream")
	}
	if strings.Contains(logs, tk.Ticket) || strings.Contains(logs, tokA) || strings.Contains(logs, tokD) {
		t.Fatal("a ticket or token appears in the logs")
	}
}

// pageHolder is a page whose HTML is set after its server is listening.
type pageHolder struct {
	mu   sync.Mutex
	html string
}

func servePageDeferred(t *testing.T, p *pageHolder) (string, func(string)) {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		html := p.html
		p.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, html)
	})}
	return "http://" + testkit.Serve(t, srv.Serve, srv.Shutdown), func(html string) { p.mu.Lock(); p.html = html; p.mu.Unlock() }
}
