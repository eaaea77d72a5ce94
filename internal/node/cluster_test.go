package node

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// publishLoad runs `workers` publishers, each publishing `per`
// notifications to random users through rotating nodes, and waits for them.
func publishLoad(t *testing.T, pub *publisher, users []string, workers, per int, between func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if between != nil && w == 0 {
					between(i)
				}
				if err := pub.publish(users[(w*7+i*3)%len(users)], w+i); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func usersN(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "user" + strconv.Itoa(i)
	}
	return out
}

// TestClusterDeliversExactlyOnceWithRandomDisconnects: three nodes,
// publishers on every node, clients on every node dropping their connection
// at random and resuming on another node; every client ends with exactly
// the stored sequence, in order, no duplicate (fault tests 1 and 5).
func TestClusterDeliversExactlyOnceWithRandomDisconnects(t *testing.T) {
	c := newCluster(t, "", 3)
	users := usersN(8)
	fs := c.followAll(users, true)
	pub := newPublisher(c)
	publishLoad(t, pub, users, 4, 40, nil)
	verifyFollowers(t, pub, fs)
}

// TestClusterSurvivesRedisOutage: Redis is SIGKILLed mid-traffic and
// restarted; publishes keep succeeding (the store commits), /readyz fails
// during the outage and recovers, and clients lose nothing (fault test 2).
func TestClusterSurvivesRedisOutage(t *testing.T) {
	testkit.PostgresURL(t) // skip before starting Redis
	redis := testkit.StartRedisServer(t)
	c := newCluster(t, redis.URL(), 2)
	users := usersN(6)
	fs := c.followAll(users, false)
	pub := newPublisher(c)
	publishLoad(t, pub, users, 2, 20, nil)

	redis.Kill()
	// Within 5 s every node has answered /readyz with 503.
	unready := map[int]bool{} // node ids
	testkit.Eventually(t, 5*time.Second, func() bool {
		nodes := c.snapshot()
		for _, p := range nodes {
			if unready[p.id] {
				continue
			}
			if status, _ := getStatus(p.base() + "/readyz"); status == 503 {
				unready[p.id] = true
			}
		}
		return len(unready) == len(nodes)
	}, "every node to be unready after Redis died (unready: %v)", unready)
	// Publishes during the outage are committed and answered 201.
	publishLoad(t, pub, users, 2, 15, nil)
	redis.Start()
	for _, p := range c.snapshot() {
		c.waitReady(p)
	}
	publishLoad(t, pub, users, 2, 10, nil)
	verifyFollowers(t, pub, fs)
}

// TestClusterNodeKilled: a node is SIGKILLed; its clients reconnect to
// another node with their last position and end with exactly the stored
// set (fault test 3).
func TestClusterNodeKilled(t *testing.T) {
	c := newCluster(t, "", 3)
	users := usersN(6)
	fs := c.followAll(users, false)
	pub := newPublisher(c)
	publishLoad(t, pub, users, 3, 30, func(i int) {
		if i == 10 {
			c.nodes[1].kill()
		}
	})
	verifyFollowers(t, pub, fs)
}

// TestClusterRollingRestart: each of three nodes is drained (SIGTERM) and
// restarted in turn under continuous publishing: 0 lost, 0 duplicates, and
// each client reconnects about once per restart of its node (issue 7).
func TestClusterRollingRestart(t *testing.T) {
	c := newCluster(t, "", 3)
	users := usersN(9)
	fs := c.followAll(users, false) // user i starts on node i%3
	pub := newPublisher(c)
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.publish(users[i%len(users)], i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	for i, old := range c.snapshot() {
		old.term(t)
		if !strings.Contains(old.logs.String(), `"msg":"stopped"`) {
			t.Fatalf("node %d did not log a clean stop", i)
		}
		p := c.start(i, old.port)
		c.replace(i, p)
		c.waitReady(p)
		time.Sleep(300 * time.Millisecond)
	}
	close(stop)
	<-loadDone
	verifyFollowers(t, pub, fs)
	total := 0
	for _, f := range fs {
		_, _, conns := f.received()
		total += conns
		if conns > 4 {
			t.Errorf("%s connected %d times during 3 restarts", f.user, conns)
		}
	}
	// Each client's own node restarts once: about one reconnect each.
	if total > len(fs)*3 {
		t.Errorf("%d connections for %d clients over 3 restarts", total, len(fs))
	}
}
