package wspoll

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// ErrBufferFull is what Outbound.Push returns when n more bytes would pass
// the soft cap.
var ErrBufferFull = errors.New("wspoll: outbound buffer full")

// ErrFailed is what Outbound.Push returns once the frame guard has sent
// the close frame of a connection that broke RFC 6455 (frameguard.go).
var ErrFailed = errors.New("wspoll: connection failed")

// Outbound counts the bytes handed to nbio for one socket and not yet
// written to the kernel, against a soft cap: the socket's session value
// embeds it, and the engine's written-size callback (NewEngine) counts the
// bytes down as the kernel takes them.
type Outbound struct {
	queued atomic.Int64
	failed atomic.Bool // the frame guard failed the connection and sent its close frame
}

// Queued is the number of bytes waiting.
func (o *Outbound) Queued() int64 { return o.queued.Load() }

func (o *Outbound) written(n int) { o.queued.Add(-int64(n)) }

// Push runs write for n bytes on the wire unless (without force) they
// would pass limit. Control frames use force: they are tiny, and a close
// frame must be able to follow a full buffer. Once the frame guard has
// failed the connection, nothing more is written (ErrFailed).
func (o *Outbound) Push(n int64, limit int, force bool, write func() error) error {
	if o.failed.Load() {
		return ErrFailed
	}
	if !force && o.queued.Load()+n > int64(limit) {
		return ErrBufferFull
	}
	o.queued.Add(n)
	if err := write(); err != nil {
		o.queued.Add(-n)
		return err
	}
	return nil
}

// outboundOf is implemented by session values that embed an Outbound.
type outboundOf interface{ outbound() *Outbound }

func (o *Outbound) outbound() *Outbound { return o }

// FrameLen is the size of a server frame (unmasked) carrying n bytes.
func FrameLen(n int) int64 {
	switch {
	case n < 126:
		return int64(n) + 2
	case n <= 65535:
		return int64(n) + 4
	}
	return int64(n) + 10
}

// NewEngine builds the nbhttp engine of a WebSocket transport.
//
// nbio's handlers run inline in the poller (ServerExecutor): nbio's own
// frame handling (control frames, the close handshake and its close of the
// socket) then happens in the poller. A socket closed from another
// goroutine while the poller holds a pending event for its fd lets that
// stale event close the next connection given the same fd number (seen
// under connection churn: about 1 in 1,000-3,000 connections got EOF before
// ready). So no transport callback may block: they copy the message and
// queue it for a short-lived goroutine.
//
// The hard write cap (nbio drops a connection whose unwritten data would
// exceed it) sits 64 KiB above the transport's soft cap, which closes the
// socket first, as a slow consumer. The bytes the kernel takes are counted
// down on the socket's Outbound.
func NewEngine(name string, pollers, softCap int) *nbhttp.Engine {
	logging.SetLevel(logging.LevelError) // nbio's own logger writes to stdout
	e := nbhttp.NewEngine(nbhttp.Config{
		Name:                    name,
		NPoller:                 pollers,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      softCap + 64<<10,
		ServerExecutor:          func(f func()) { f() },
		// Herald never uses nbio as an HTTP client: without this, every
		// engine starts a client task pool with a 64k-slot queue (512 KiB
		// of heap and a goroutine each).
		SupportServerOnly: true,
	})
	(&guard{}).install(e)
	e.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
		if wsc, ok := c.Session().(*websocket.Conn); ok {
			countWritten(wsc, n)
		}
	})
	return e
}

// countWritten counts n bytes written to the kernel down on the Outbound of
// wsc's session.
func countWritten(wsc *websocket.Conn, n int) {
	if o, ok := wsc.Session().(outboundOf); ok {
		o.outbound().written(n)
	}
}

// NewUpgrader returns an upgrader on e for messages up to maxMessage bytes.
// It has no nbio keepalive (a runtime timer per socket, reset on every
// frame, closing the socket from the timer's goroutine, outside the
// poller): transports run their own deadlines. Origins are checked by the
// transport before the upgrade; compression stays off (a read limit must
// count decompressed bytes, DESIGN.md §4).
func NewUpgrader(e *nbhttp.Engine, maxMessage int) *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.Engine = e
	u.KeepaliveTime = 0
	u.MessageLengthLimit = maxMessage
	u.CheckOrigin = func(*http.Request) bool { return true }
	u.BlockingModAsyncWrite = false
	u.EnableCompression(false)
	return u
}

// PollerStartGrace is how long after Start StopEngine waits at least
// before it stops an engine.
const PollerStartGrace = 250 * time.Millisecond

// StopEngine stops e, which was started at startedNs (UnixNano; 0: never
// started, nothing to wait for). nbio v1.6.8's poller loop clears its
// shutdown flag when it begins, so a Stop that lands before a poller
// goroutine has reached its loop is lost, and Stop then waits for that
// poller forever. Seen twice in CI, in a test that starts a node and shuts
// it down at once on a loaded machine. Stopping no sooner than
// PollerStartGrace after Start leaves the pollers time to begin. The fix
// that belongs upstream: set the flag before the poller goroutine starts,
// not inside its loop.
func StopEngine(e *nbhttp.Engine, startedNs int64) {
	if startedNs != 0 {
		if d := time.Until(time.Unix(0, startedNs).Add(PollerStartGrace)); d > 0 {
			time.Sleep(d)
		}
	}
	e.Stop()
}
