//go:build windows || herald_nopoller

package wspoll

import (
	"net/http"
	"sync"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

// EventLoop reports whether Upgrade hands sockets to nbio's poller (true)
// or serves each with goroutines of its own (false: Windows, or the build
// tag herald_nopoller).
const EventLoop = false

// readBufferSize is the fallback reader's buffer, per connection.
const readBufferSize = 4 << 10

// Upgrade answers the WebSocket handshake and serves the connection with
// two goroutines of its own, for platforms without nbio's event loop: a
// reader that parses what arrives and runs the upgrader's callbacks inline
// (as the poller does with the engine's ServerExecutor), and a stream
// writer, so that no write blocks its caller on a slow client. wsc.Execute
// is the connection's job queue, as with the poller: its jobs run one at a
// time with the message and close callbacks, and it reports false once the
// connection has closed. The transports see the same *websocket.Conn,
// callbacks, close errors (CloseReason) and Outbound accounting as with the
// poller; Drop closes the stream.
func Upgrade(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	wsc, err := u.UpgradeWithoutHandlingReadForConnFromSTDServer(w, r, nil)
	if err != nil {
		return nil, err
	}
	s := newStream(wsc.Conn, u.Engine.MaxWriteBufferSize, func(n int) { countWritten(wsc, n) })
	wsc.Conn = s
	var (
		mu     sync.Mutex // held while a job or a callback runs
		closed bool       // guarded by mu
	)
	wsc.Execute = func(f func()) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		f()
		return true
	}
	go func() {
		buf := make([]byte, readBufferSize)
		var err error
		for err == nil {
			var n int
			if n, err = s.Read(buf); err == nil {
				mu.Lock()
				err = wsc.Parse(buf[:n])
				mu.Unlock()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		closed = true
		wsc.CloseAndClean(err) // closes the stream, then the close callback
	}()
	return wsc, nil
}
