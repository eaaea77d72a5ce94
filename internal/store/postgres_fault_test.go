package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

// pgProxy is an in-process toxiproxy in front of the test server.
type pgProxy struct {
	proxy *toxiproxy.Proxy
	url   string // the test server's URL through the proxy
}

func newPGProxy(t *testing.T) *pgProxy {
	t.Helper()
	proxy, u := testkit.PostgresProxy(t, postgresURL(t))
	return &pgProxy{proxy: proxy, url: u}
}

func (p *pgProxy) addToxic(t *testing.T, name, typ, stream string, attrs string) {
	t.Helper()
	js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatal(err)
	}
}

func (p *pgProxy) removeToxic(t *testing.T, name string) {
	t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// testPGFaults is fault test 4 at the store: with PostgreSQL slow, resetting
// connections or unreachable (toxiproxy in between), Publish answers
// ErrUnavailable within its deadline and never reports success for a
// notification that is not committed; a publish whose COMMIT succeeded but
// whose answer was lost reports ErrUnavailable, and retrying it with the
// same idempotency key creates nothing new.
func testPGFaults(t *testing.T, p *pgSchemas) {
	px := newPGProxy(t)
	schema := p.get(t)
	r := &pgFaultRig{
		px:     px,
		s:      p.open(t, PostgresConfig{URL: px.url, Schema: schema, MaxConns: 4}),
		direct: p.open(t, PostgresConfig{Schema: schema, MaxConns: 2}), // bypasses the proxy
		ctx:    context.Background(),
	}
	if _, _, err := r.pub(10*time.Second, pgFaultOne("a")); err != nil {
		t.Fatal(err)
	}
	r.checkSlowAndReset(t)
	r.checkUnreachable(t)
	r.checkLostAnswer(t)
	r.checkSucceededAreStored(t)
}

// pgFaultDeadline is the publish deadline under a fault; pgFaultSlack allows
// for scheduling on a busy machine.
const (
	pgFaultDeadline = 300 * time.Millisecond
	pgFaultSlack    = 400 * time.Millisecond
)

// pgFaultRig is the store under test behind the proxy, a direct connection
// that bypasses it, and the ids of every publish that reported success.
type pgFaultRig struct {
	px     *pgProxy
	s      *Postgres
	direct *Postgres
	ctx    context.Context

	mu        sync.Mutex
	succeeded []string // ids of publishes that reported success
}

// pub publishes through the proxy within deadline, recording the ids of a
// successful, non-replayed publish.
func (r *pgFaultRig) pub(deadline time.Duration, req PublishRequest) (PublishResult, time.Duration, error) {
	c, cancel := context.WithTimeout(r.ctx, deadline)
	defer cancel()
	start := time.Now()
	res, err := r.s.Publish(c, req)
	took := time.Since(start)
	if err == nil && !res.Replayed {
		r.mu.Lock()
		r.succeeded = append(r.succeeded, res.IDs...)
		r.mu.Unlock()
	}
	return res, took, err
}

// pgFaultOne is a publish of one notification to user u.
func pgFaultOne(u string) PublishRequest {
	return PublishRequest{Drafts: []notification.Draft{toUsers("f", u)}}
}

// checkSlowAndReset publishes concurrently while the database is slow, then
// while it resets connections: each publish succeeds or answers
// ErrUnavailable within its deadline, and the store recovers afterwards.
func (r *pgFaultRig) checkSlowAndReset(t *testing.T) {
	const deadline, slack = pgFaultDeadline, pgFaultSlack
	for _, fault := range []struct {
		name   string
		toxics [][3]string // name, type, stream + attributes below
		attrs  []string
	}{
		{"slow", [][3]string{{"lat_up", "latency", "upstream"}, {"lat_down", "latency", "downstream"}}, []string{`{"latency":1000}`, `{"latency":1000}`}},
		{"reset", [][3]string{{"reset", "reset_peer", "upstream"}}, []string{`{"timeout":0}`}},
	} {
		for i, tx := range fault.toxics {
			r.px.addToxic(t, tx[0], tx[1], tx[2], fault.attrs[i])
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, took, err := r.pub(deadline, pgFaultOne(fmt.Sprintf("u%d", i%3)))
				if err == nil {
					return // committed before the fault bit: fine, it is recorded
				}
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s: publish: %v, want ErrUnavailable", fault.name, err)
				}
				if took > deadline+slack {
					t.Errorf("%s: publish answered after %v, deadline %v", fault.name, took, deadline)
				}
			}()
		}
		wg.Wait()
		for _, tx := range fault.toxics {
			r.px.removeToxic(t, tx[0])
		}
		// The store recovers once the database answers again.
		waitPublish(t, r.pub, pgFaultOne("a"))
	}
}

// checkUnreachable stops the proxy so nothing accepts connections: a publish
// answers ErrUnavailable within its deadline, and the store recovers once the
// proxy is back.
func (r *pgFaultRig) checkUnreachable(t *testing.T) {
	const deadline, slack = pgFaultDeadline, pgFaultSlack
	r.px.proxy.Stop()
	if _, took, err := r.pub(deadline, pgFaultOne("a")); !errors.Is(err, ErrUnavailable) || took > deadline+slack {
		t.Fatalf("unreachable: %v after %v", err, took)
	}
	if err := r.px.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitPublish(t, r.pub, pgFaultOne("a"))
}

// checkLostAnswer covers a lost answer: the COMMIT reaches the server, its
// answer is held back (downstream latency) and the connection dies before it
// arrives. The publish answers ErrUnavailable and retrying it replays the
// stored notification without creating a new one.
func (r *pgFaultRig) checkLostAnswer(t *testing.T) {
	ctx, s, direct, px := r.ctx, r.s, r.direct, r.px
	px.addToxic(t, "hold", "latency", "downstream", `{"latency":400}`)
	req := PublishRequest{Scope: "fault", Key: "lost", RequestHash: "h", Drafts: []notification.Draft{toUsers("f", "lost")}}
	done := make(chan error, 1)
	go func() {
		_, err := s.Publish(ctx, req)
		done <- err
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		var n int
		if err := direct.pool.QueryRow(waitCtx, `SELECT count(*) FROM idempotency WHERE scope = 'fault' AND idem_key = 'lost'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	px.proxy.Stop() // committed; the answer is still in the proxy
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish whose answer was lost: %v, want ErrUnavailable", err)
	}
	px.removeToxic(t, "hold")
	if err := px.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	var retried PublishResult
	waitFor(t, func() bool {
		var err error
		retried, err = s.Publish(ctx, req)
		return err == nil
	})
	lost := rcp("f", "lost", "")
	if items := sinceAll(t, direct, lost, notification.Position{}, 0); !retried.Replayed || len(items) != 1 || !slices.Equal(retried.IDs, ids(items)) {
		t.Fatalf("retry after a lost answer: %+v; stored %v", retried, ids(items))
	}
	checkCounts(t, direct, lost)
}

// checkSucceededAreStored checks that every publish that reported success is
// stored.
func (r *pgFaultRig) checkSucceededAreStored(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, err := r.direct.pool.Query(r.ctx, `SELECT id FROM notifications WHERE id = ANY($1)`, r.succeeded)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(r.succeeded) {
		t.Fatalf("%d publishes reported success, %d of them are stored", len(r.succeeded), len(stored))
	}
	t.Logf("%d publishes succeeded across the faults", len(r.succeeded))
}

// waitPublish retries a publish until it succeeds (the pool replaces the
// connections the fault broke).
func waitPublish(t *testing.T, pub func(time.Duration, PublishRequest) (PublishResult, time.Duration, error), req PublishRequest) {
	t.Helper()
	waitFor(t, func() bool {
		_, _, err := pub(5*time.Second, req)
		return err == nil
	})
}

// waitFor polls ok until it holds, for up to 20 s.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, ok, "recovery")
}
