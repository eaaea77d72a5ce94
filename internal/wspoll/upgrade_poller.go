//go:build !windows && !herald_nopoller

package wspoll

import (
	"net/http"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// EventLoop reports whether Upgrade hands sockets to nbio's poller (true)
// or serves each with goroutines of its own (false: Windows, or the build
// tag herald_nopoller).
const EventLoop = true

// Upgrade answers the WebSocket handshake and hands the connection to u's
// poller. nbio dups the socket without close-on-exec: a process forked
// meanwhile (os/exec) would inherit it and keep it open, so the client would
// never see our close, and the poller could see events for an fd number a
// later connection reuses. Holding ForkLock across the dup and marking the
// copy close-on-exec prevents both.
func Upgrade(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	wsc, err := u.UpgradeAndTransferConnToPoller(w, r, nil)
	if err != nil {
		return nil, err
	}
	if c, ok := wsc.Conn.(*nbio.Conn); ok {
		closeOnExec(c)
	}
	return wsc, nil
}
