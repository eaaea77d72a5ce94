package node

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/internal/testkit"
)

// Cluster tests run real herald processes against real PostgreSQL and Redis
// on loopback (testkit: skipped loudly when a service is missing, failed
// instead when CI=true).

const clusterAPIKey = "cluster-api-key-0123456789"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// heraldBinary builds cmd/herald once per test process.
func heraldBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/heraldhq/herald/cmd/herald").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// cluster is a group of herald processes sharing one PostgreSQL schema and
// one Redis key prefix.
type cluster struct {
	t        *testing.T
	pgURL    string
	schema   string
	prefix   string
	redisURL string
	mu       sync.Mutex
	nodes    []*proc // guarded by mu once clients and publishers run
}

// snapshot returns the current node list.
func (c *cluster) snapshot() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*proc(nil), c.nodes...)
}

// replace restarts slot i with p.
func (c *cluster) replace(i int, p *proc) {
	c.mu.Lock()
	c.nodes[i] = p
	c.mu.Unlock()
}

type proc struct {
	id   int
	port int
	cmd  *exec.Cmd
	logs *testkit.SyncBuffer
	done chan error
}

func (p *proc) base() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

func newCluster(t *testing.T, redisURL string, n int) *cluster {
	t.Helper()
	// The schema is dropped, and the shared Redis's keys deleted, after
	// the nodes are killed (cleanups run last first).
	pgURL, schema := testkit.PostgresURL(t), testkit.PostgresSchema(t)
	prefix := testkit.UniqueName("hc")
	if redisURL == "" {
		redisURL = testkit.RedisURL(t)
		_, prefix = testkit.Redis(t)
	}
	c := &cluster{t: t, pgURL: pgURL, schema: schema, prefix: prefix, redisURL: redisURL}
	t.Cleanup(func() {
		for _, p := range c.snapshot() {
			p.kill()
		}
	})
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, c.start(i, 0))
	}
	for _, p := range c.nodes {
		c.waitReady(p)
	}
	return c
}

// start launches node i (on port, or a free one when 0).
func (c *cluster) start(i, port int) *proc {
	c.t.Helper()
	if port == 0 {
		port = testkit.FreePort(c.t)
	}
	p := &proc{id: i, port: port, logs: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(heraldBinary(c.t),
		"--addr", "127.0.0.1:"+strconv.Itoa(port),
		"--database", c.pgURL, "--database-schema", c.schema,
		"--redis", c.redisURL, "--redis-prefix", c.prefix, "--node-id", fmt.Sprintf("n%d-%d", i, port),
		"--jwt-secret", testSecret, "--api-keys", clusterAPIKey,
		"--shutdown-grace", "5s", "--log-level", "info", "--log-format", "json",
		"--event-rate", "-1", "--publish-rate", "-1", "--handshake-rate", "-1",
	)
	p.cmd.Env = append(os.Environ(), "HERALD_ENV=development")
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	c.t.Cleanup(func() {
		if c.t.Failed() && os.Getenv("HERALD_TEST_LOGS") != "" {
			c.t.Logf("node %d logs:\n%s", p.id, p.logs.String())
		}
	})
	return p
}

// waitReady waits 30 s at most for node p to answer /readyz with 200.
func (c *cluster) waitReady(p *proc) {
	c.t.Helper()
	testkit.Eventually(c.t, 30*time.Second, func() bool {
		status, _ := getStatus(p.base() + "/readyz")
		return status == 200
	}, "node %d to be ready; logs:\n%s", p.id, p.logs) // the logs as they are then
}

func getStatus(url string) (int, string) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// term sends SIGTERM and waits for a clean exit.
func (p *proc) term(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("node %d exited with %v after SIGTERM; logs:\n%s", p.id, err, p.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("node %d did not exit after SIGTERM", p.id)
	}
}

// publisher publishes explicit-user notifications to the cluster, retrying
// on other nodes with the same Idempotency-Key when a node fails or a
// response is lost, and records the users it published to.
type publisher struct {
	c      *cluster
	client http.Client
	mu     sync.Mutex
	count  map[string]int // user → notifications stored
}

func newPublisher(c *cluster) *publisher {
	return &publisher{c: c, client: http.Client{Timeout: 5 * time.Second}, count: map[string]int{}}
}

// publish stores one notification for user through node start (or the next
// live one). It never gives up before a deadline.
func (p *publisher) publish(user string, start int) error {
	key := testkit.UniqueName("k")
	body, _ := json.Marshal(map[string]any{"tenant": "acme", "to": map[string]any{"users": []string{user}}, "type": "t", "title": "x"})
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		nodes := p.c.snapshot()
		node := nodes[(start+attempt)%len(nodes)]
		req, _ := http.NewRequest("POST", node.base()+"/v1/notifications", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
		req.Header.Set("Idempotency-Key", key)
		resp, err := p.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				if resp.Header.Get("Idempotent-Replayed") == "" || attempt > 0 {
					p.mu.Lock()
					p.count[user]++
					p.mu.Unlock()
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish for %s: gave up (last: %v)", user, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// follower is one user's client that stays connected to the cluster: it
// reconnects (to the next node) whenever its connection ends, resuming from
// the last position it saw, and checks that positions arrive exactly in
// sequence.
type follower struct {
	user   string
	c      *cluster
	mu     sync.Mutex
	seqs   []int64 // user-stream sequence of each notification received
	ids    map[string]bool
	err    error
	conns  int // connections made
	stop   chan struct{}
	done   chan struct{}
	random bool // drop the connection at random
}

// followAll starts a follower for each user, the i-th on node i (modulo the
// cluster's size).
func (c *cluster) followAll(users []string, random bool) []*follower {
	fs := make([]*follower, len(users))
	for i, u := range users {
		fs[i] = c.follow(u, i, random)
	}
	return fs
}

func (c *cluster) follow(user string, startNode int, random bool) *follower {
	f := &follower{user: user, c: c, ids: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{}), random: random}
	go f.run(startNode)
	c.t.Cleanup(f.close)
	return f
}

func (f *follower) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *follower) run(node int) {
	defer close(f.done)
	tok := token(f.c.t, "acme", f.user, "", time.Hour)
	since := "0.0"
	rng := time.Now().UnixNano()
	for attempt := 0; ; attempt++ {
		select {
		case <-f.stop:
			return
		default:
		}
		nodes := f.c.snapshot()
		p := nodes[(node+attempt)%len(nodes)]
		ctx, cancel := context.WithCancel(context.Background())
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		conn, _, err := websocket.Dial(dctx, strings.Replace(p.base(), "http", "ws", 1)+"/v1/ws?since="+since,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
		dcancel()
		if err != nil {
			cancel()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.conns++
		f.mu.Unlock()
		conn.SetReadLimit(1 << 20)
		go func() {
			select {
			case <-f.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		budget := -1
		if f.random {
			rng = rng*6364136223846793005 + 1442695040888963407
			budget = 3 + int(uint64(rng)>>33)%25
		}
		for budget != 0 {
			_, data, err := conn.Read(ctx)
			if err != nil {
				break
			}
			var m msg
			if err := json.Unmarshal(data, &m); err != nil || m.Type != "notification" {
				continue
			}
			pos := m.Notification.Position
			u, _, _ := strings.Cut(pos, ".")
			seq, _ := strconv.ParseInt(u, 10, 64)
			f.mu.Lock()
			if f.ids[m.Notification.ID] {
				f.mu.Unlock()
				f.fail(fmt.Errorf("%s: duplicate %s", f.user, m.Notification.ID))
				break
			}
			if want := int64(len(f.seqs) + 1); seq != want {
				f.mu.Unlock()
				f.fail(fmt.Errorf("%s: got seq %d, want %d (gap or reorder)", f.user, seq, want))
				break
			}
			f.ids[m.Notification.ID] = true
			f.seqs = append(f.seqs, seq)
			f.mu.Unlock()
			since = pos
			budget--
		}
		_ = conn.Close(websocket.StatusNormalClosure, "")
		cancel()
		f.mu.Lock()
		failed := f.err != nil
		f.mu.Unlock()
		if failed {
			return
		}
	}
}

func (f *follower) received() (int, error, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs), f.err, f.conns
}

// String describes the follower's progress (for failure messages).
func (f *follower) String() string {
	n, err, conns := f.received()
	return fmt.Sprintf("%s (%d received in %d connections, error %v)", f.user, n, conns, err)
}

// verifyFollowers waits 30 s at most until every follower has received
// exactly what was stored for its user, in sequence, without duplicates.
func verifyFollowers(t *testing.T, pub *publisher, fs []*follower) {
	t.Helper()
	pub.mu.Lock()
	stored := maps.Clone(pub.count) // publishing is over
	pub.mu.Unlock()
	testkit.Eventually(t, 30*time.Second, func() bool {
		for _, f := range fs {
			got, err, _ := f.received()
			if err != nil {
				t.Fatal(err)
			}
			if want := stored[f.user]; got > want {
				t.Fatalf("%s received %d notifications, %d were stored", f.user, got, want)
			} else if got < want {
				return false
			}
		}
		return true
	}, "every follower to receive what was stored %v: %v", stored, fs)
}
