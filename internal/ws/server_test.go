package ws

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// TestChurnEveryAuthGetsReady opens, authenticates (first frame, resuming)
// and ends thousands of connections from several goroutines, ending them in
// the ways clients do: close handshake, close frame then an immediate TCP
// close, plain TCP close, and a close by the server (a refresh for another identity). Every
// connection that authenticates must get its ready frame: a socket closed
// outside the poller while the poller holds a stale event for its fd number
// used to close the next connection given that fd (EOF before ready).
func TestChurnEveryAuthGetsReady(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.CloseGrace = 200 * time.Millisecond })
	churn(t, ts, 8, 750, func(c *rawClient, i int) {
		switch i % 4 {
		case 0: // close handshake
			_ = c.sendClose(1000)
			_, _ = c.closeCode()
		case 1: // close frame, then gone at once
			_ = c.sendClose(1001)
		case 2: // gone without a close frame
		case 3: // closed by the server (4001: a refresh for another user)
			_ = c.send(`{"type":"auth","token":"someone-else"}`)
			_, _ = c.closeCode()
		}
	})
}

// TestChurnServerDropsHitNoOtherConnection: the server closes every
// connection (4001) and drops the TCP connection after a short CloseGrace,
// from a timer, while the client closes its end at about the same moment,
// and other connections are opened all the while. The drop must not free
// the fd number under the poller (wspoll.Drop): a stale event would then
// close whichever connection reuses it, before its ready frame.
func TestChurnServerDropsHitNoOtherConnection(t *testing.T) {
	const grace = 20 * time.Millisecond
	ts := startServer(t, func(c *Config) { c.CloseGrace = grace })
	churn(t, ts, 8, 300, func(c *rawClient, i int) {
		_ = c.send(`{"type":"auth","token":"someone-else"}`)
		_, _ = c.closeCode()
		time.Sleep(time.Duration(i%9) * grace / 4) // before, at or after the drop
		if i%2 == 0 {
			_ = c.sendClose(1000)
		}
	})
}

// churn runs cycles connections on each of workers goroutines: dial,
// authenticate (resuming), read ready, then end(c, i) and close. Every
// connection must get its ready frame, and every socket must be freed.
func churn(t *testing.T, ts *testServer, workers, cycles int, end func(c *rawClient, i int)) {
	t.Helper()
	var (
		wg       sync.WaitGroup
		ready    atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		samples  []string
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			mu.Lock()
			samples = append(samples, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				c, err := dialRaw(ts.addr, "")
				if err != nil {
					fail("dial: %v", err)
					continue
				}
				user := fmt.Sprintf("u%d", (w*cycles+i)%50)
				if err := c.send(`{"type":"auth","token":"` + user + `","since":"0.0"}`); err != nil {
					fail("send auth: %v", err)
					c.Close()
					continue
				}
				if m, err := c.readType("ready"); err != nil {
					fail("cycle %d/%d: before ready: %v (%q)", w, i, err, m)
					c.Close()
					continue
				}
				ready.Add(1)
				end(c, i)
				c.Close()
			}
		}()
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d connections failed before ready; first: %s", n, workers*cycles, strings.Join(samples, "; "))
	}
	if got := ready.Load(); got != int64(workers*cycles) {
		t.Fatalf("ready %d, want %d", got, workers*cycles)
	}
	testkit.Eventually(t, 0, func() bool { return ts.srv.Active() == 0 && ts.hub.Active() == 0 }, "all sockets freed")
}

// authed dials and authenticates user by first frame, up to its ready frame.
func (ts *testServer) authed(t *testing.T, user string) *rawClient {
	t.Helper()
	c, err := dialRaw(ts.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.send(`{"type":"auth","token":"` + user + `"}`); err != nil {
		t.Fatal(err)
	}
	if m, err := c.readType("ready"); err != nil {
		t.Fatalf("%s: %v (%q)", user, err, m)
	}
	return c
}

// waitVerifying waits until a slow token's verification has started.
func (ts *testServer) waitVerifying(t *testing.T) {
	t.Helper()
	select {
	case <-ts.verifier.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow verification did not start")
	}
}

func mustRead(t *testing.T, c *rawClient, typ string) string {
	t.Helper()
	m, err := c.next(typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

// TestSlowVerifierDoesNotBlockThePoller: while one socket's auth message
// waits on the verifier (a JWKS fetch), the only poller keeps serving the
// other sockets: their messages are answered, deliveries reach them, and new
// sockets authenticate. The messages sent behind the slow auth are handled
// after it, in order.
func TestSlowVerifierDoesNotBlockThePoller(t *testing.T) {
	ts := startServer(t) // one poller
	alice := ts.authed(t, "alice")

	bob, err := dialRaw(ts.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if err := bob.send(`{"type":"auth","token":"slow:bob"}`); err != nil {
		t.Fatal(err)
	}
	if err := bob.send(`{"type":"ping","ref":1}`); err != nil {
		t.Fatal(err)
	}
	if err := bob.send(`{"type":"ping","ref":2}`); err != nil {
		t.Fatal(err)
	}
	ts.waitVerifying(t)

	// The poller reads alice's messages and the new socket's auth.
	for i := 1; i <= 3; i++ {
		if err := alice.send(fmt.Sprintf(`{"type":"ping","ref":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		if m := mustRead(t, alice, "pong"); m != fmt.Sprintf(`{"type":"pong","ref":%d}`, i) {
			t.Fatalf("alice: %s", m)
		}
		deliverTo(ts.hub, "alice", int64(i))
		if m := mustRead(t, alice, "notification"); !strings.Contains(m, fmt.Sprintf(`"n-alice-%d"`, i)) {
			t.Fatalf("alice: %s", m)
		}
	}
	ts.authed(t, "carol")

	close(ts.verifier.gate)
	// The hub sends ready on its own (after reading the store), so it may
	// follow the replies to the queued pings; those come in order.
	var got []string
	for len(got) < 3 {
		m, err := bob.read()
		if err != nil {
			t.Fatalf("bob after %q: %v", got, err)
		}
		if strings.HasPrefix(m, `{"type":"ready"`) {
			m = "ready"
		}
		got = append(got, m)
	}
	var pongs []string
	for _, m := range got {
		if m != "ready" {
			pongs = append(pongs, m)
		}
	}
	if len(pongs) != 2 || pongs[0] != `{"type":"pong","ref":1}` || pongs[1] != `{"type":"pong","ref":2}` {
		t.Fatalf("bob got %q, want ready and the two pongs in order", got)
	}
}

// TestFailedSlowAuthDropsQueuedMessages: messages queued behind an auth
// that fails are not run; the socket is closed with 4001.
func TestFailedSlowAuthDropsQueuedMessages(t *testing.T) {
	ts := startServer(t)
	c, err := dialRaw(ts.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.send(`{"type":"auth","token":"slow:bad"}`)
	_ = c.send(`{"type":"ping","ref":1}`)
	ts.waitVerifying(t)
	close(ts.verifier.gate)
	m, err := c.read()
	var ce errClosed
	if !errors.As(err, &ce) || ce.code != 4001 {
		t.Fatalf("got %q, %v; want close 4001", m, err)
	}
}

// TestQueueLimit: a client that keeps sending while its socket's messages
// wait (here behind a slow token refresh) gets rate_limited for what does
// not fit in the queue; before authentication it is closed with 4001.
func TestQueueLimit(t *testing.T) {
	ts := startServer(t)
	const extra = 5

	t.Run("authenticated", func(t *testing.T) {
		c := ts.authed(t, "dave")
		_ = c.send(`{"type":"auth","token":"slow:dave","ref":"refresh"}`)
		ts.waitVerifying(t)
		for i := range maxQueued + extra {
			if err := c.send(fmt.Sprintf(`{"type":"ping","ref":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range extra {
			m := mustRead(t, c, "notification:error")
			if !strings.Contains(m, fmt.Sprintf(`"ref":%d,"code":"rate_limited"`, maxQueued+i)) {
				t.Fatalf("overflow reply %d: %s", i, m)
			}
		}
		ts.verifier.gate <- struct{}{} // let this one verification through
		if m := mustRead(t, c, "ack"); m != `{"type":"ack","ref":"refresh"}` {
			t.Fatalf("refresh: %s", m)
		}
		for i := range maxQueued {
			if m := mustRead(t, c, "pong"); m != fmt.Sprintf(`{"type":"pong","ref":%d}`, i) {
				t.Fatalf("pong %d: %s", i, m)
			}
		}
	})

	t.Run("before auth", func(t *testing.T) {
		c, err := dialRaw(ts.addr, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.send(`{"type":"auth","token":"slow:erin"}`)
		ts.waitVerifying(t)
		for i := range maxQueued + extra {
			_ = c.send(fmt.Sprintf(`{"type":"ping","ref":%d}`, i))
		}
		if code, err := c.closeCode(); code != 4001 {
			t.Fatalf("close %d, %v; want 4001", code, err)
		}
		c.Close()
		before := ts.attached.Load()
		ts.verifier.gate <- struct{}{}
		// The end of the socket is handled after the auth that was running.
		testkit.Eventually(t, 0, func() bool { return ts.srv.Active() == 0 }, "the socket freed")
		if n := ts.attached.Load(); n != before {
			t.Fatal("erin was attached after her socket was closed")
		}
	})
}
