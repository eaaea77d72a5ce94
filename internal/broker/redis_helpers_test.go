package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald/internal/notification"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // go-redis logs every failed dial of the fault tests
	goleak.VerifyTestMain(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// needRedis skips (or fails, with CI=true) when no Redis answers at addr.
func needRedis(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := fmt.Sprintf("!!! REDIS NOT REACHABLE at %s (%v): Redis broker tests SKIPPED; start redis-server (CI=true makes this fatal)", addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// sharedRedisURL is the machine's Redis (HERALD_TEST_REDIS_URL overrides).
func sharedRedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("HERALD_TEST_REDIS_URL"); u != "" {
		return u
	}
	needRedis(t, "127.0.0.1:6379")
	return "redis://127.0.0.1:6379/0"
}

// testPrefix is a random channel prefix, so that tests sharing a Redis do
// not see each other's messages.
func testPrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "htest-" + hex.EncodeToString(b[:])
}

// privateRedis is a redis-server subprocess on a spare port that a test can
// SIGKILL and restart on the same port.
type privateRedis struct {
	t    testing.TB
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "!!! redis-server NOT FOUND: Redis fault tests SKIPPED (CI=true makes this fatal)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = bin
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &privateRedis{t: t, port: port}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }
func (p *privateRedis) url() string  { return "redis://" + p.addr() + "/0" }

func (p *privateRedis) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatal("private redis already running")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
		// nil Stdout and Stderr: /dev/null, without copier goroutines
		if err := cmd.Start(); err != nil {
			p.t.Fatal(err)
		}
		if waitDial(p.addr(), 3*time.Second) {
			p.cmd = cmd
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if time.Now().After(deadline) { // the port may still be in TIME_WAIT use
			p.t.Fatalf("private redis on %s did not start", p.addr())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill SIGKILLs the server (no-op when it is not running).
func (p *privateRedis) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func waitDial(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sink collects what a broker hands to its handler.
type sink struct {
	mu     sync.Mutex
	events []*notification.Event
}

func (s *sink) handle(ev *notification.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *sink) snapshot() []*notification.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*notification.Event(nil), s.events...)
}

// newTestRedis starts a broker with short probes and test defaults.
func newTestRedis(t testing.TB, cfg RedisConfig) *Redis {
	t.Helper()
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = 200 * time.Millisecond
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = time.Second
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := NewRedis(ctx, cfg)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// proxy is a TCP relay in front of Redis that a test can cut (close every
// connection and refuse new ones) or black-hole (keep connections open but
// drop everything, like a partition).
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	mode  int // guarded by mu: proxyUp, proxyCut, proxyHole
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

const (
	proxyUp = iota
	proxyCut
	proxyHole
)

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "redis://" + p.l.Addr().String() + "/0" }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		if mode == proxyCut {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hole := p.mode == proxyHole
			p.mu.Unlock()
			if !hole {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					err = werr
				}
			}
		}
		if err != nil {
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
			return
		}
	}
}

func (p *proxy) set(mode int) {
	p.mu.Lock()
	p.mode = mode
	var victims []net.Conn
	if mode == proxyCut {
		for c := range p.conns {
			victims = append(victims, c)
		}
	}
	p.mu.Unlock()
	for _, c := range victims {
		_ = c.Close()
	}
}

func (p *proxy) close() {
	_ = p.l.Close()
	p.set(proxyCut)
	p.wg.Wait()
}
