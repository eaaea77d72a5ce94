package testkit

import (
	"testing"

	"go.uber.org/goleak"
)

// LeakMain runs the package's tests and then fails the run if any
// goroutine is left over (goleak.VerifyTestMain). Call it as the whole
// TestMain of every package whose code starts goroutines:
//
//	func TestMain(m *testing.M) { testkit.LeakMain(m) }
//
// opts are goleak exceptions; packages that run servers in-process pass
// [ServerLeakOptions]. LeakMain does not return.
func LeakMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, opts...)
}

// ServerLeakOptions are the goleak exceptions of packages that run HTTP
// servers and clients in-process: the goroutines already running when it
// is called (nbio's package-level default engine starts a task pool at
// init), and those net/http keeps for a moment for idle keep-alive
// connections. Call it in TestMain, before the tests run.
func ServerLeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	}
}
