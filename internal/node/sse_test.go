package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/testkit"
)

// sseEvent is one parsed server-sent event, or a comment (heartbeat) or a
// retry field, which the parser reports as pseudo-events.
type sseEvent struct {
	ID, Event, Data string
	Comment         string
	Retry           string
	Raw             string // the block's bytes as received
}

// sseNotification is the data of a notification event, and the
// "notification" of a WebSocket notification message (msg).
type sseNotification struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Title    string          `json:"title"`
	Body     string          `json:"body"`
	Data     json.RawMessage `json:"data"`
	Read     bool            `json:"read"`
	Position string          `json:"position"`
}

// sseClient reads an event stream in the background with a small parser
// that follows the WHATWG rules for the fields the server uses.
type sseClient struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
	done   chan struct{}
	err    error // set before done is closed
	cancel context.CancelFunc
}

type streamOpts struct {
	bearer      string
	ticket      string
	since       string
	lastEventID string
	origin      string
	query       string // extra raw query
}

var sseHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func (n *testNode) openStream(o streamOpts) (*sseClient, *http.Response, error) {
	q := url.Values{}
	if o.ticket != "" {
		q.Set("ticket", o.ticket)
	}
	if o.since != "" {
		q.Set("since", o.since)
	}
	u := n.base + "/v1/me/stream?" + q.Encode()
	if o.query != "" {
		u += "&" + o.query
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if o.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	if o.lastEventID != "" {
		req.Header.Set("Last-Event-ID", o.lastEventID)
	}
	if o.origin != "" {
		req.Header.Set("Origin", o.origin)
	}
	resp, err := sseHTTP.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, resp, fmt.Errorf("status %d", resp.StatusCode)
	}
	c := &sseClient{t: n.t, resp: resp, events: make(chan sseEvent, 100000), done: make(chan struct{}), cancel: cancel}
	go c.readLoop()
	n.t.Cleanup(c.close)
	return c, resp, nil
}

func (n *testNode) mustStream(o streamOpts) *sseClient {
	n.t.Helper()
	c, resp, err := n.openStream(o)
	if err != nil {
		var body []byte
		if resp != nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		n.t.Fatalf("open stream: %v %s", err, body)
	}
	return c
}

func (c *sseClient) readLoop() {
	defer close(c.done)
	defer c.resp.Body.Close()
	r := bufio.NewReader(c.resp.Body)
	var ev sseEvent
	var data []string
	var raw strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.err = err
			return
		}
		raw.WriteString(line)
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				ev.Raw = raw.String()
				c.events <- ev
			}
			ev, data = sseEvent{}, nil
			raw.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			c.events <- sseEvent{Comment: value}
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		case "retry":
			c.events <- sseEvent{Retry: value}
		default:
			c.err = fmt.Errorf("unexpected field %q", line)
			return
		}
	}
}

// next returns the next event of one of the given names (any when none),
// skipping comments, retries and other events.
func (c *sseClient) next(names ...string) sseEvent {
	c.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-c.events:
			if ev.Event == "" && ev.Data == "" {
				continue
			}
			if len(names) == 0 {
				return ev
			}
			for _, n := range names {
				if ev.Event == n {
					return ev
				}
			}
		case <-c.done:
			select {
			case ev := <-c.events:
				c.events <- ev // put back and loop to filter it
				continue
			default:
			}
			c.t.Fatalf("stream ended while waiting for %v: %v", names, c.err)
		case <-deadline:
			c.t.Fatalf("timed out waiting for %v", names)
		}
	}
}

func (c *sseClient) nextNotification() (sseEvent, sseNotification) {
	c.t.Helper()
	ev := c.next("notification")
	var n sseNotification
	if err := json.Unmarshal([]byte(ev.Data), &n); err != nil {
		c.t.Fatalf("notification data %q: %v", ev.Data, err)
	}
	return ev, n
}

// ended waits for the server to end the stream.
func (c *sseClient) ended() {
	c.t.Helper()
	awaitEnd(c.t, c.done, "stream not closed by the server")
}

func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

type closeData struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (c *sseClient) closeEvent() closeData {
	c.t.Helper()
	ev := c.next("close")
	var d closeData
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		c.t.Fatalf("close data %q: %v", ev.Data, err)
	}
	return d
}

func (n *testNode) ticket(tok string, hdr ...string) string {
	n.t.Helper()
	status, body, _ := n.do("POST", "/v1/me/stream-tickets", tok, nil, hdr...)
	if status != http.StatusOK {
		n.t.Fatalf("ticket: %d %s", status, body)
	}
	var r struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil || len(r.Ticket) < 22 || r.ExpiresIn <= 0 || r.ExpiresIn > 30 {
		n.t.Fatalf("ticket response %s: %v", body, err)
	}
	return r.Ticket
}

func TestSSELiveDeliveryAndHeaders(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "alice", "", time.Hour)
	c := n.mustStream(streamOpts{bearer: tok})
	h := c.resp.Header
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if first := <-c.events; first.Retry != "3000" {
		t.Fatalf("first field = %+v, want retry 3000", first)
	}
	ready := c.next("ready")
	if ready.ID != "" || ready.Data != `{"user":"alice","tenant":"acme","unread":0,"unseen":0,"by_category":{},"position":"0.0"}` {
		t.Fatalf("ready = %+v", ready)
	}
	id := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"alice"}},
		"type": "invoice.paid", "title": "Paid", "body": "line1\nline2", "data": map[string]any{"amount": 42}})
	ev, m := c.nextNotification()
	if ev.ID != "1.0" || m.ID != id || m.Position != "1.0" || m.Body != "line1\nline2" || string(m.Data) != `{"amount":42}` {
		t.Fatalf("notification = %+v", ev)
	}
	if u := c.next("unread"); u.ID != "" || u.Data != `{"count":1,"unseen":1}` {
		t.Fatalf("unread = %+v", u)
	}
	// read, deleted and unread events follow REST changes, without ids.
	if status, body, _ := n.do("POST", "/v1/me/notifications/"+id+"/read", tok, nil); status != 200 {
		t.Fatalf("read: %d %s", status, body)
	}
	if r := c.next("read"); r.ID != "" || r.Data != `{"ids":["`+id+`"]}` {
		t.Fatalf("read = %+v", r)
	}
	if u := c.next("unread"); u.Data != `{"count":0,"unseen":1,"by_category":{}}` {
		t.Fatalf("unread = %+v", u)
	}
	if status, body, _ := n.do("DELETE", "/v1/me/notifications/"+id, tok, nil); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if d := c.next("deleted"); d.ID != "" || d.Data != `{"id":"`+id+`"}` {
		t.Fatalf("deleted = %+v", d)
	}
	// The node's middleware must keep the connection hijackable: a stream
	// served from a handler goroutine costs ~14x the memory.
	if !strings.Contains(n.logs.String(), `"engine":"poller"`) {
		t.Fatal("the stream was not handed to the poller")
	}
	if n.node.sse.Active() != 1 {
		t.Fatalf("active streams = %d", n.node.sse.Active())
	}
	c.close()
	testkit.Eventually(t, 0, func() bool { return n.node.sse.Active() == 0 && n.node.Hub().Active() == 0 }, "stream freed")
}

func TestSSETicketFlow(t *testing.T) {
	n := startNode(t, func(c *Config) { c.SSE.TicketTTL = 300 * time.Millisecond })
	aliceTok := token(t, "acme", "alice", "", time.Hour)
	bobTok := token(t, "acme", "bob", "", time.Hour)

	tk := n.ticket(aliceTok)
	c := n.mustStream(streamOpts{ticket: tk})
	if r := c.next("ready"); !strings.Contains(r.Data, `"user":"alice"`) {
		t.Fatalf("ready = %+v", r)
	}
	// The ticket is bound to alice: bob's notification never reaches it.
	n.publish(toUsers("acme", "bob"))
	mine := n.publish(toUsers("acme", "alice"))
	if _, m := c.nextNotification(); m.ID != mine {
		t.Fatalf("alice's stream got %s, want %s", m.ID, mine)
	}

	expired := n.ticket(bobTok)
	time.Sleep(400 * time.Millisecond)
	forged := strings.Repeat("A", len(tk))
	for name, o := range map[string]streamOpts{
		"replayed":        {ticket: tk},
		"expired":         {ticket: expired},
		"forged":          {ticket: forged},
		"malformed":       {ticket: "not-a-ticket"},
		"empty":           {ticket: " "},
		"no credentials":  {},
		"bad bearer":      {bearer: aliceTok + "x"},
		"token for query": {query: "access_token=" + aliceTok},
	} {
		_, resp, err := n.openStream(o)
		if err == nil || resp == nil {
			t.Fatalf("%s: stream opened", name)
		}
		want := http.StatusUnauthorized
		if name == "token for query" {
			want = http.StatusBadRequest
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || strings.Contains(resp.Header.Get("Content-Type"), "event-stream") ||
			!strings.Contains(string(body), `"correlation_id"`) {
			t.Fatalf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// Header and ticket together are ambiguous.
	fresh := n.ticket(aliceTok)
	if _, resp, err := n.openStream(streamOpts{ticket: fresh, bearer: aliceTok}); err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("header+ticket: %v", err)
	}
	if status, _, _ := n.do("POST", "/v1/me/stream-tickets", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("ticket without token: %d", status)
	}
	if status, _, _ := n.do("POST", "/v1/me/stream-tickets", "garbage", nil); status != http.StatusUnauthorized {
		t.Fatalf("ticket with bad token: %d", status)
	}
	logs := n.logs.String()
	for _, reason := range []string{"unknown", "expired", "malformed"} {
		if !strings.Contains(logs, `"event":"ticket_invalid","reason":"`+reason+`"`) {
			t.Errorf("no ticket_invalid audit event with reason %s", reason)
		}
	}
	if !strings.Contains(logs, `"event":"token_invalid"`) {
		t.Error("no token_invalid audit event")
	}
	assertNoSecrets(t, logs, aliceTok, bobTok, tk, expired, fresh, forged)
}

// assertNoSecrets fails if any token or ticket (or a long piece of one)
// appears in the logs.
func assertNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret appears in the logs")
		}
		if len(s) > 40 {
			// the JWT signature alone, or a ticket's tail
			if strings.Contains(logs, s[len(s)-30:]) {
				t.Fatalf("a secret's tail appears in the logs")
			}
		}
	}
}

func TestSSEPayloadCannotForgeEvents(t *testing.T) {
	n := startNode(t)
	c := n.mustStream(streamOpts{bearer: token(t, "acme", "ivy", "", time.Hour)})
	c.next("ready")
	evil := []string{
		"\n\ndata: x",
		"\rid: 9",
		"event: evil",
		"a\r\n\r\nevent: close\ndata: {\"code\":4001}\n\n",
		"\u2028\u2029\x00 retry: 1",
		": comment\nid: 99.99",
	}
	for i, body := range evil {
		id := n.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"ivy"}},
			"type": "t", "title": body, "body": body, "data": map[string]any{"k\nid: 1": body}})
		ev, m := c.nextNotification()
		if m.ID != id || m.Body != body || m.Title != body || ev.ID != fmt.Sprintf("%d.0", i+1) {
			t.Fatalf("case %d: got %+v", i, ev)
		}
		var data map[string]string
		if err := json.Unmarshal(m.Data, &data); err != nil || data["k\nid: 1"] != body {
			t.Fatalf("case %d: data %s: %v", i, m.Data, err)
		}
		lines := strings.Split(strings.TrimSuffix(ev.Raw, "\n\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "id: ") || lines[1] != "event: notification" ||
			!strings.HasPrefix(lines[2], "data: {") || strings.ContainsRune(ev.Raw, '\r') {
			t.Fatalf("case %d: raw event %q", i, ev.Raw)
		}
		c.next("unread")
	}
	// Nothing else was dispatched: the next event is the next real one.
	last := n.publish(toUsers("acme", "ivy"))
	if ev, m := c.nextNotification(); m.ID != last || ev.ID != fmt.Sprintf("%d.0", len(evil)+1) {
		t.Fatalf("after injection cases: %+v", ev)
	}
}

func TestSSEOriginsAndCORS(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "olga", "", time.Hour)
	const good, bad = "https://app.example.com", "https://app.example.com.evil.test"

	_, resp, err := n.openStream(streamOpts{bearer: tok, origin: bad})
	if err == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" ||
		strings.Contains(resp.Header.Get("Content-Type"), "event-stream") {
		t.Fatalf("disallowed origin: %v %+v", err, resp)
	}
	resp.Body.Close()
	// A ticket is not consumed by a request refused for its origin... and
	// cannot be fetched from a disallowed origin either.
	if status, _, h := n.do("POST", "/v1/me/stream-tickets", tok, nil, "Origin", bad); status != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("ticket from disallowed origin: %d", status)
	}
	if status, _, _ := n.do("OPTIONS", "/v1/me/stream-tickets", "", nil, "Origin", bad, "Access-Control-Request-Method", "POST"); status != http.StatusForbidden {
		t.Fatalf("preflight from disallowed origin: %d", status)
	}
	if !strings.Contains(n.logs.String(), `"event":"origin_rejected"`) {
		t.Fatal("no origin_rejected audit event")
	}

	status, _, h := n.do("OPTIONS", "/v1/me/stream-tickets", "", nil, "Origin", good, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization")
	if status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != good || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", status, h)
	}
	status, _, h = n.do("POST", "/v1/me/stream-tickets", tok, nil, "Origin", good)
	if status != http.StatusOK || h.Get("Access-Control-Allow-Origin") != good || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("ticket CORS: %d %v", status, h)
	}
	c := n.mustStream(streamOpts{ticket: n.ticket(tok, "Origin", good), origin: good})
	h = c.resp.Header
	if h.Get("Access-Control-Allow-Origin") != good || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Fatalf("stream CORS headers: %v", h)
	}
	c.next("ready")
}

func TestSSEBadResumePositions(t *testing.T) {
	n := startNode(t)
	tok := token(t, "acme", "pia", "", time.Hour)
	for _, o := range []streamOpts{
		{bearer: tok, since: "abc"},
		{bearer: tok, lastEventID: "1"},
		{bearer: tok, lastEventID: "-1.0"},
		{bearer: tok, since: "1.0", lastEventID: "x.y"},
		{bearer: tok, since: strings.Repeat("9", 50) + ".0"},
	} {
		_, resp, err := n.openStream(o)
		if err == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%+v: %v", o, err)
		}
		resp.Body.Close()
	}
	if status, _, _ := n.do("POST", "/v1/me/stream", tok, nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("POST stream: %d", status)
	}
}

func TestSSEHeartbeat(t *testing.T) {
	n := startNode(t, func(c *Config) { c.SSE.HeartbeatInterval = 50 * time.Millisecond })
	c := n.mustStream(streamOpts{bearer: token(t, "acme", "hb", "", time.Hour)})
	deadline := time.After(5 * time.Second)
	for beats := 0; beats < 3; {
		select {
		case ev := <-c.events:
			if ev.Comment == "hb" {
				beats++
			}
		case <-deadline:
			t.Fatal("no heartbeats")
		}
	}
}

func TestSSETokenExpiryClosesStream(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Auth.Leeway = -1 })
	tok := token(t, "acme", "eve", "", 1500*time.Millisecond)
	c := n.mustStream(streamOpts{ticket: n.ticket(tok)})
	c.next("ready")
	if d := c.closeEvent(); d.Code != 4003 || d.Reason != "token_expired" {
		t.Fatalf("close = %+v", d)
	}
	c.ended()
}

func TestSSEDrainSendsCloseAndJitteredRetry(t *testing.T) {
	n := startNode(t)
	c := n.mustStream(streamOpts{bearer: token(t, "acme", "dan", "", time.Hour)})
	c.next("ready")
	done := make(chan error, 1)
	go func() { done <- n.node.Shutdown(context.Background()) }()
	defer func() {
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	if d := c.closeEvent(); d.Code != 4009 || d.Reason != "shutdown" {
		t.Fatalf("close = %+v", d)
	}
	var retry sseEvent
	for retry.Retry == "" {
		select {
		case retry = <-c.events:
		case <-time.After(5 * time.Second):
			t.Fatal("no retry advice after close")
		}
	}
	if ms, err := strconv.Atoi(retry.Retry); err != nil || ms < 1000 || ms > 5000 {
		t.Fatalf("drain retry = %q", retry.Retry)
	}
	c.ended()
}

// TestSSEResumeUnderConcurrentPublishingAndForcedDisconnects: publishers
// write to a set of users while the server closes their streams at random
// (as a slow consumer, the way a real overflow ends a stream). Each client
// resumes with Last-Event-ID, as EventSource does, from the URL it first
// used (whose ?since= is stale). Each must end with exactly the store's
// sequence, in order, with no duplicate.
func TestSSEResumeUnderConcurrentPublishingAndForcedDisconnects(t *testing.T) {
	n := startNode(t)
	const users, publishers, perPub = 5, 4, 60
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("sse%d", i)
	}
	results := make([]sseResumeResult, users)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for u := range users {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			runResumingSSEClient(t, n, names[u], &results[u], stop)
		}(u)
	}
	stopKiller := forceRandomDisconnects(n)
	publishToRandomUsers(t, n, names, publishers, perPub, 9, 3)
	stopKiller()
	// Let the clients catch up (generously: CI machines are loaded), then
	// stop them.
	for u := range users {
		waitSSECatchUp(t, n, names[u], &results[u])
	}
	close(stop)
	wg.Wait()
	total := 0
	for u := range users {
		res := &results[u]
		if res.err != nil {
			t.Fatalf("%s: %v", names[u], res.err)
		}
		want := listAll(t, n, token(t, "acme", names[u], "", time.Hour))
		if strings.Join(res.ids, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: got %d ids, store has %d\n got  %v\n want %v", names[u], len(res.ids), len(want), res.ids, want)
		}
		total += res.sessions
	}
	if total < users*3 {
		t.Fatalf("only %d sessions: the server-forced disconnects did not happen", total)
	}
	t.Logf("%d sessions for %d users", total, users)
}

// sseResumeResult is what one resuming SSE client saw.
type sseResumeResult struct {
	ids      []string
	last     string
	err      error
	sessions int
	progress atomic.Int64 // ids received, or -1 after an error
}

// runResumingSSEClient streams as user name and, each time the server ends
// the stream, reopens it with Last-Event-ID set to the last position seen,
// until stop is closed. A duplicate position or a failed open ends it with
// res.err set.
func runResumingSSEClient(t *testing.T, n *testNode, name string, res *sseResumeResult, stop <-chan struct{}) {
	tok := token(t, "acme", name, "", time.Hour)
	seen := map[string]bool{}
	for {
		c, _, err := n.openStream(streamOpts{bearer: tok, since: "0.0", lastEventID: res.last})
		if err != nil {
			res.err = err
			res.progress.Store(-1)
			return
		}
		res.sessions++
		for open := true; open; {
			select {
			case ev := <-c.events:
				if ev.Event != "notification" {
					continue
				}
				if seen[ev.ID] {
					res.err = fmt.Errorf("duplicate position %s", ev.ID)
					res.progress.Store(-1)
					c.close()
					return
				}
				seen[ev.ID] = true
				var m sseNotification
				_ = json.Unmarshal([]byte(ev.Data), &m)
				res.ids = append(res.ids, m.ID)
				res.last = ev.ID
				res.progress.Add(1)
			case <-c.done:
				open = false
			case <-stop:
				c.close()
				return
			}
		}
		c.close()
	}
}

// forceRandomDisconnects closes a random client of the node as a slow
// consumer every 5-35 ms until the returned stop function is called; stop
// returns once it has ended.
func forceRandomDisconnects(n *testNode) (stop func()) {
	killerStop, killerDone := make(chan struct{}), make(chan struct{})
	go func() { // server-forced disconnects, while publishing goes on
		defer close(killerDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-killerStop:
				return
			case <-time.After(time.Duration(5+rng.IntN(30)) * time.Millisecond):
			}
			cls := n.node.Hub().Clients()
			if len(cls) > 0 {
				cls[rng.IntN(len(cls))].Close(hub.ReasonSlowConsumer)
			}
		}
	}()
	return func() {
		close(killerStop)
		<-killerDone
	}
}

// waitSSECatchUp waits up to 60 s until the client of user name has
// received every notification the store holds for it, or has failed.
func waitSSECatchUp(t *testing.T, n *testNode, name string, res *sseResumeResult) {
	t.Helper()
	want := int64(len(listAll(t, n, token(t, "acme", name, "", time.Hour))))
	deadline := time.Now().Add(60 * time.Second)
	for p := res.progress.Load(); p >= 0 && p < want; p = res.progress.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d notifications after 60 s", name, p, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSSESlowConsumerIsClosed: a client that never reads fills its buffer
// and is closed as a slow consumer, while another user's stream goes on.
func TestSSESlowConsumerIsClosed(t *testing.T) {
	n := startNode(t, func(c *Config) { c.SSE.WriteBufferBytes = 64 << 10 })
	addr := strings.TrimPrefix(n.base, "http://")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	slowTok := token(t, "acme", "slow", "", time.Hour)
	if _, err := fmt.Fprintf(raw, "GET /v1/me/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", addr, slowTok); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 12)
	if _, err := io.ReadFull(raw, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("raw stream: %v %q", err, head)
	}
	fast := n.mustStream(streamOpts{bearer: token(t, "acme", "fast", "", time.Hour)})
	fast.next("ready")
	big := strings.Repeat("x", 8000)
	const batches, per = 8, 100 // 6.4 MB: more than 64 KiB plus the kernel's buffers (4 MiB)
	item := map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"slow", "fast"}}, "type": "bulk", "title": "t", "body": big}
	items := make([]any, per)
	for i := range items {
		items[i] = item
	}
	for range batches {
		if status, body, _ := n.do("POST", "/v1/notifications/batch", n.apiKey, map[string]any{"notifications": items}); status != 201 {
			t.Fatalf("batch: %d %s", status, body)
		}
	}
	for range batches * per {
		fast.next("notification")
	}
	testkit.Eventually(t, 0, func() bool {
		return strings.Contains(n.logs.String(), `"transport":"sse","tenant":"acme","user":"slow","reason":"slow_consumer"`)
	}, "slow consumer closed")
}

// TestSSETicketWorksOnAnyNode: behind a load balancer the ticket request
// and the stream may reach different nodes. With Redis, a ticket issued by
// one node opens a stream on the other, once: replaying it on either node
// is refused.
func TestSSETicketWorksOnAnyNode(t *testing.T) {
	a, b := twoSharedNodes(t)
	tok := token(t, "acme", "alice", "", time.Hour)
	tk := a.ticket(tok)
	c := b.mustStream(streamOpts{ticket: tk})
	if ready := c.next("ready"); !strings.Contains(ready.Data, `"user":"alice"`) {
		t.Fatalf("ready = %+v", ready)
	}
	id := a.publish(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{"alice"}}, "type": "t", "title": "hi"})
	if _, m := c.nextNotification(); m.ID != id {
		t.Fatalf("notification %s, want %s", m.ID, id)
	}
	for _, n := range []*testNode{a, b} {
		if _, resp, err := n.openStream(streamOpts{ticket: tk}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("replayed ticket: %v %v", resp, err)
		}
	}
}
