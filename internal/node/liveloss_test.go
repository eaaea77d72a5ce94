package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/audit"
	"github.com/heraldhq/herald/internal/testkit"
)

// TestLostCommitAnswerIsDelivered: a publish whose COMMIT succeeded but
// whose answer never came back (PostgreSQL cut off right after the commit)
// is answered 503, and no live event goes out for it. The connected
// recipient must still get it once PostgreSQL answers again, with no
// further publish to reveal the gap: on one node (memory broker), and on
// another node of a cluster (Redis kick).
func TestLostCommitAnswerIsDelivered(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := "one node"
		if cluster {
			name = "client on the other node"
		}
		t.Run(name, func(t *testing.T) { testLostCommitAnswer(t, cluster) })
	}
}

func testLostCommitAnswer(t *testing.T, cluster bool) {
	direct, schema := testkit.PostgresURL(t), testkit.PostgresSchema(t)
	proxy, proxyURL := testkit.PostgresProxy(t, direct)
	var redisURL, prefix string
	if cluster {
		redisURL = testkit.RedisURL(t)
		_, prefix = testkit.Redis(t)
	}
	config := func(dbURL string) func(*Config) {
		return func(c *Config) {
			c.Database, c.DatabaseSchema = dbURL, schema
			c.RedisURL, c.RedisPrefix = redisURL, prefix
		}
	}
	pub := startNode(t, config(proxyURL)) // its answers go through the proxy
	recv := pub
	if cluster {
		recv = startNode(t, config(direct))
	}
	c := recv.mustDial(dialOpts{header: token(t, "acme", "lost", "", time.Hour)})
	c.next("ready")

	// Answers from PostgreSQL now take 300 ms: the publish is still waiting
	// for its COMMIT's answer when the proxy is cut.
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(
		`{"name":"hold","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":300}}`)); err != nil {
		t.Fatal(err)
	}
	status := make(chan int, 1)
	go func() {
		body, _ := json.Marshal(toUsers("acme", "lost"))
		req, _ := http.NewRequest("POST", pub.base+"/v1/notifications", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+pub.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		_ = resp.Body.Close()
		status <- resp.StatusCode
	}()
	testkit.Eventually(t, 20*time.Second, func() bool { return countNotifications(t, direct, schema) == 1 }, "publish committed")
	proxy.Stop() // committed; its answer is still in the proxy
	if got := <-status; got != http.StatusServiceUnavailable {
		t.Fatalf("publish whose answer was lost: status %d, want 503", got)
	}
	if err := proxy.Toxics.RemoveToxic(context.Background(), "hold"); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	// Nothing else is published: only the catch-up can deliver it.
	if m := c.next("notification"); m.Notification == nil || m.Notification.Position != "1.0" {
		t.Errorf("delivered %s, want the lost notification at position 1.0", m.Raw)
	}
	testkit.Eventually(t, 0, func() bool {
		return strings.Contains(pub.logs.String(), `"event":"live_catch_up"`)
	}, "live_catch_up logged")
}

// countNotifications counts the notifications stored in schema.
func countNotifications(t *testing.T, dbURL, schema string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "notifications"}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLiveLossCatchesUpOnceStoreAnswers: losses while the store is down
// schedule one catch-up, run only once a ping succeeds; a loss after it
// schedules another.
func TestLiveLossCatchesUpOnceStoreAnswers(t *testing.T) {
	var (
		up      atomic.Bool
		catchUp atomic.Int64
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	l := &liveLoss{
		ping: func(context.Context) error {
			if up.Load() {
				return nil
			}
			return errors.New("down")
		},
		catchUp: func() { catchUp.Add(1) },
		audit:   audit.New(nil, nil),
		ctx:     ctx,
		wg:      &wg,
	}
	l.lost("a")
	l.lost("b")
	time.Sleep(3 * liveLossPoll) // pings keep failing meanwhile
	if n := catchUp.Load(); n != 0 {
		t.Fatalf("caught up %d times while the store was down", n)
	}
	up.Store(true)
	testkit.Eventually(t, 0, func() bool { return catchUp.Load() == 1 && !l.armed.Load() }, "one catch-up once the store answers")
	l.lost("c")
	testkit.Eventually(t, 0, func() bool { return catchUp.Load() == 2 }, "a later loss catches up again")
}
