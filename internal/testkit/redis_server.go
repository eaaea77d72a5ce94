package testkit

import (
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a private redis-server subprocess on a port of its own,
// without persistence, that a test can SIGKILL and start again on the same
// port (fault tests). It starts no goroutine in the test process.
type RedisServer struct {
	t    testing.TB // static after StartRedisServer
	port int        // static after StartRedisServer

	mu  sync.Mutex
	cmd *exec.Cmd // guarded by mu; nil while the server is down
}

// StartRedisServer starts a redis-server on a spare loopback port, killed
// when the test ends. Without redis-server installed the test ends through
// [Unavailable].
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	RequireCommand(t, "redis-server")
	s := &RedisServer{t: t, port: FreePort(t)}
	t.Cleanup(s.Kill)
	s.Start()
	return s
}

// Port returns the server's TCP port.
func (s *RedisServer) Port() int { return s.port }

// Addr returns the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL returns the server's redis:// URL (database 0).
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Start starts the server (again) on its port and waits until it accepts
// connections; it fails the test when the server is already running or
// does not come up within 10 s.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("testkit: private redis-server already running")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
		// nil Stdout and Stderr: /dev/null, without copier goroutines
		if err := cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		if dialable(s.Addr(), 3*time.Second) {
			s.cmd = cmd
			return
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if time.Now().After(deadline) { // the port may still be in TIME_WAIT use
			s.t.Fatalf("testkit: private redis-server on %s did not start", s.Addr())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Kill SIGKILLs the server and waits for it to exit (no-op when it is not
// running).
func (s *RedisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// dialable polls addr until a TCP connection succeeds or within passes.
func dialable(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
