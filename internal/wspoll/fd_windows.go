//go:build windows

package wspoll

import (
	"net"

	"github.com/lesismal/nbio"
)

// dropPolled closes nc. On Windows nbio reads each connection in a
// goroutine of its own, with no event loop that could hold a stale event
// for a reused handle, so closing from another goroutine is safe (and
// Close is idempotent).
func dropPolled(nc *nbio.Conn) { _ = nc.Close() }

// closeOnExec: Go creates Windows sockets non-inheritable.
func closeOnExec(*nbio.Conn) {}

// tryWrite writes nothing on Windows: every write goes through the
// stream's writer goroutine.
func tryWrite(net.Conn, []byte) int { return 0 }

// shutdownWrite: nbio's Windows connection wraps a net.Conn whose handle
// it does not expose; the connection is closed by its reader goroutine
// once the peer answers the close frame, or by the transport's deadline.
func shutdownWrite(*nbio.Conn) {}
