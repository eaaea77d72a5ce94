package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// stderr is where Unavailable repeats its reason (a variable for its test).
var stderr io.Writer = os.Stderr

// InCI reports whether the tests run in CI (CI=true), where a missing
// service or tool fails a test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends a test that cannot run because something it needs is
// missing: it fails the test under CI=true, and otherwise skips it loudly,
// with the reason on stderr too (go test hides skip messages without -v).
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (required when CI=true)", msg)
	}
	msg = fmt.Sprintf("!!! SKIPPING %s: %s (CI=true makes this fatal)", t.Name(), msg)
	fmt.Fprintln(stderr, msg)
	t.Skip(msg)
}

// RequireTCP ends the test through [Unavailable] unless something accepts
// TCP connections at addr; name says what should be there ("Redis").
func RequireTCP(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		Unavailable(t, "%s is not reachable at %s (%v)", name, addr, err)
		return
	}
	_ = c.Close()
}

// RequireCommand returns the path of the program name, or ends the test
// through [Unavailable] when it is not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (%v)", name, err)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server that cannot be handed a listener (a subprocess). Prefer listening
// on port 0 where possible.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// UniqueName returns prefix followed by 12 random hex digits: a Redis key
// prefix or a schema name no other test (or test process) uses.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
