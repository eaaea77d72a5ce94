//go:build linux

package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The epoll client (--client epoll). Dial, the upgrade and the wait for
// ready run as in the goroutine client, on a net.Conn in the dialing
// goroutine. Then the socket leaves Go's netpoller: its fd is duplicated,
// the net.Conn closed, and the duplicate (non-blocking, as the open file
// description already is) is handed to one of a few poll loops. Each loop is
// a goroutine that owns an epoll instance (edge-triggered) and reads each
// ready socket until a read comes back short, into one shared 64 KiB buffer;
// it parses the frames in place and calls the session's Sink. A connection
// keeps its own bytes only while a frame is split across reads.
//
// So a message costs one recvfrom(2) (raw: no scheduler bookkeeping) and a
// share of an epoll_wait(2), against a goroutine wake-up by the netpoller,
// a read that returns data and one that returns EAGAIN in the goroutine
// client.
//
// Lifetime of a session's fd: before Read registers it with the loop, Read
// and Close own it (under the loop's mutex); once registered, only the loop
// goroutine closes it, after EPOLL_CTL_DEL and after removing it from the
// loop's table, all while no other goroutine can act on that fd number.
// Close from another goroutine queues a request and wakes the loop through
// an eventfd. The loop resolves a batch of events to sessions under its
// mutex before handling any of them, and skips sessions that ended during the
// batch, so that a stale event never reaches a session that reuses the fd
// number. Writes (pongs, the close frame) hold the session's write mutex and
// see fd -1 once it is closed.

const (
	pollBuffer  = 64 << 10 // shared read buffer of a loop
	pollEvents  = 512      // events per epoll_wait
	restKeepCap = 4 << 10  // a session keeps a split-frame buffer up to this capacity
	// readsPerWake bounds the full reads of one session per loop turn, so
	// that a flooded session does not starve the others and Close.
	readsPerWake = 4
)

// Session states, guarded by pollLoop.mu.
const (
	stNew    = iota // dialled; Read has not registered it yet
	stPolled        // registered: the loop owns the fd
	stDone          // ended; fd closed
)

// defaultClient is the client of a Config that names none.
const defaultClient = ClientEpoll

// wsPoller is a worker's set of poll loops.
type wsPoller struct {
	loops []*pollLoop
	next  atomic.Uint32
}

// newWSPoller starts n poll loops.
func newWSPoller(n int) (*wsPoller, error) {
	p := &wsPoller{}
	for range max(n, 1) {
		l, err := newPollLoop()
		if err != nil {
			p.close()
			return nil, err
		}
		p.loops = append(p.loops, l)
		go l.run()
	}
	return p, nil
}

// close stops every loop, ending their sessions with net.ErrClosed, and
// waits for them. Sessions that register afterwards end at once.
func (p *wsPoller) close() {
	for _, l := range p.loops {
		l.stop()
	}
	for _, l := range p.loops {
		<-l.exited
	}
}

// adopt takes the handshaken session's socket out of Go's netpoller and
// gives it to a loop, with the bytes the handshake read ahead. It closes
// s.nc, also on error.
func (p *wsPoller) adopt(s *wsSession) (Session, error) {
	defer s.nc.Close()
	sc, ok := s.nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("bench: epoll client: %T has no file descriptor", s.nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("bench: epoll client: %w", err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("bench: epoll client: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("bench: epoll client: dup: %w", derr)
	}
	c := &epollSession{loop: p.loops[p.next.Add(1)%uint32(len(p.loops))], fd: fd, done: make(chan struct{})}
	if s.discard > 0 {
		_, _ = s.br.Discard(s.discard)
	}
	if n := s.br.Buffered(); n > 0 {
		b, _ := s.br.Peek(n)
		c.rest = append([]byte(nil), b...)
	}
	return c, nil
}

// pollLoop is one goroutine's epoll instance and its sessions.
type pollLoop struct {
	epfd, evfd int           // static until the loop exits
	exited     chan struct{} // closed when run has returned
	buf        []byte        // run only: the shared read buffer

	mu       sync.Mutex
	table    []*epollSession // guarded by mu: registered sessions by fd
	closing  []*epollSession // guarded by mu: Close requests for the loop
	stopping bool            // guarded by mu: stop was called
	dead     bool            // guarded by mu: evfd and epfd are closed
}

func newPollLoop() (*pollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("bench: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("bench: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, fmt.Errorf("bench: epoll_ctl: %w", err)
	}
	return &pollLoop{epfd: epfd, evfd: evfd, exited: make(chan struct{}), buf: make([]byte, pollBuffer)}, nil
}

// wake interrupts epoll_wait. Callers hold mu.
func (l *pollLoop) wake() {
	if l.dead {
		return
	}
	var one [8]byte
	one[0] = 1 // any value below 2^64-1 adds to the counter and wakes the loop
	_, _ = unix.Write(l.evfd, one[:])
}

func (l *pollLoop) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopping {
		l.stopping = true
		l.wake()
	}
}

// register hands c's fd to the loop; false when the session was closed or
// the loop stopped first.
func (l *pollLoop) register(c *epollSession) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closeReq || l.stopping || c.state != stNew {
		c.state = stDone
		return net.ErrClosed
	}
	if c.fd >= len(l.table) {
		t := make([]*epollSession, max(c.fd+1, 2*len(l.table), 1024))
		copy(t, l.table)
		l.table = t
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(c.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		c.state = stDone
		return fmt.Errorf("bench: epoll_ctl add: %w", err)
	}
	l.table[c.fd] = c
	c.state = stPolled
	return nil
}

func (l *pollLoop) run() {
	defer close(l.exited)
	events := make([]unix.EpollEvent, pollEvents)
	type ready struct {
		c   *epollSession
		hup bool // the peer closed or the socket failed: read to the end
	}
	// batch is this turn's sessions to read: those left with unread data
	// by the last turn (pending), then those with new events.
	batch := make([]ready, 0, pollEvents)
	var pending []ready
	var d Delivery
	for {
		timeout := -1
		if len(pending) > 0 {
			timeout = 0
		}
		n, err := l.wait(events, timeout)
		if err != nil {
			l.exit(err)
			return
		}
		woken := false
		batch = append(batch[:0], pending...)
		pending = pending[:0]
		l.mu.Lock()
		for _, ev := range events[:n] {
			r := ready{hup: ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0}
			if fd := int(ev.Fd); fd == l.evfd {
				woken = true
			} else if fd < len(l.table) {
				r.c = l.table[fd]
			}
			batch = append(batch, r)
		}
		l.mu.Unlock()
		for _, r := range batch {
			if r.c != nil && !r.c.ended && l.readable(r.c, r.hup, &d) {
				pending = append(pending, r)
			}
		}
		clear(batch)
		if woken && l.drain() {
			return
		}
	}
}

// wait is epoll_wait: it blocks until events are ready, or for at most
// timeout ms (-1: no limit).
func (l *pollLoop) wait(events []unix.EpollEvent, timeout int) (int, error) {
	for {
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err == nil {
			return n, nil
		}
		if err != unix.EINTR {
			return 0, fmt.Errorf("bench: epoll_wait: %w", err)
		}
	}
}

// drain serves Close requests and stop; true when the loop must return.
func (l *pollLoop) drain() bool {
	var b [8]byte
	_, _ = unix.Read(l.evfd, b[:])
	l.mu.Lock()
	reqs, stopping := l.closing, l.stopping
	l.closing = nil
	l.mu.Unlock()
	for _, c := range reqs {
		l.finish(c, net.ErrClosed)
	}
	if stopping {
		l.exit(net.ErrClosed)
	}
	return stopping
}

// exit ends every session with err and releases the loop's fds.
func (l *pollLoop) exit(err error) {
	l.mu.Lock()
	l.stopping = true
	var all []*epollSession
	for _, c := range l.table {
		if c != nil {
			all = append(all, c)
		}
	}
	l.mu.Unlock()
	for _, c := range all {
		l.finish(c, err)
	}
	l.mu.Lock()
	l.dead = true
	_ = unix.Close(l.evfd)
	_ = unix.Close(l.epfd)
	l.mu.Unlock()
}

// finish ends a registered session: out of epoll and the table, then the
// fd closed, then Read released.
func (l *pollLoop) finish(c *epollSession, err error) {
	if c.ended {
		return
	}
	c.ended = true
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	l.mu.Lock()
	l.table[c.fd] = nil
	c.state = stDone
	l.mu.Unlock()
	c.closeFD()
	c.rest, c.asm.frag = nil, nil
	c.err = err
	close(c.done)
}

// readable reads a ready session until a read comes back short: with
// edge-triggered epoll, data that arrives later raises a new event. After
// the peer's FIN (hup) no event follows, so it reads on to the end. more
// reports unread data left after readsPerWake reads: the caller must come
// back without waiting for an event.
func (l *pollLoop) readable(c *epollSession, hup bool, d *Delivery) (more bool) {
	for i := 0; ; i++ {
		if i == readsPerWake {
			return true
		}
		var space []byte
		big := c.need > len(l.buf)
		off := 0
		if big {
			// A frame larger than the shared buffer: read it in place, no further.
			if cap(c.rest) < c.need {
				c.rest = append(make([]byte, 0, c.need), c.rest...)
			}
			space = c.rest[len(c.rest):c.need]
		} else {
			off = copy(l.buf, c.rest)
			space = l.buf[off:]
		}
		n, err := rawRead(c.fd, space)
		if n <= 0 {
			l.readFailed(c, err)
			return false
		}
		if big {
			if c.rest = c.rest[:len(c.rest)+n]; len(c.rest) == c.need {
				frame := c.rest
				c.rest, c.need = nil, 0
				if _, _, err := c.consume(frame, d); err != nil {
					l.finish(c, err)
					return false
				}
			}
		} else {
			b := l.buf[:off+n]
			used, need, err := c.consume(b, d)
			if err != nil {
				l.finish(c, err)
				return false
			}
			c.keep(b[used:], need)
		}
		if n < len(space) && !hup {
			return false
		}
	}
}

// rawRead is recv(2) without the scheduler's syscall bookkeeping: the
// socket is non-blocking, so the call never blocks. recvfrom skips the VFS
// layer that read(2) goes through.
func rawRead(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func (l *pollLoop) readFailed(c *epollSession, err error) {
	switch err {
	case unix.EAGAIN, unix.EINTR:
	case nil:
		l.finish(c, io.EOF)
	default:
		l.finish(c, os.NewSyscallError("read", err))
	}
}

// epollSession is a WebSocket session served by a poll loop.
type epollSession struct {
	loop   *pollLoop     // static
	done   chan struct{} // closed when the session has ended
	err    error         // why it ended; written before done is closed
	closed atomic.Bool   // Close was called

	state    uint8 // guarded by loop.mu
	closeReq bool  // guarded by loop.mu: Close was called

	wmu sync.Mutex
	fd  int // written under wmu (-1 once closed); the owner reads it freely

	// Owned by Read until it registers the session, then by the loop.
	sink  Sink
	rest  []byte // the start of a frame split across reads
	need  int    // the whole frame's length once rest holds its header, else 0
	asm   assembler
	ended bool // loop only: finish ran
}

var _ Session = (*epollSession)(nil)

// Read implements Session: it handles what the handshake read ahead, hands
// the fd to the loop and waits for the end.
func (c *epollSession) Read(sink Sink) error {
	c.sink = sink
	if len(c.rest) > 0 {
		used, need, err := c.consume(c.rest, new(Delivery))
		if err != nil {
			c.abandon()
			return err
		}
		c.keep(c.rest[used:], need)
	}
	if err := c.loop.register(c); err != nil {
		c.closeFD()
		return err
	}
	<-c.done
	return c.err
}

// abandon ends a session that was never registered.
func (c *epollSession) abandon() {
	c.loop.mu.Lock()
	c.state = stDone
	c.loop.mu.Unlock()
	c.closeFD()
}

// Close implements Session.
func (c *epollSession) Close(graceful bool) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	if graceful {
		_ = c.write(appendMaskedFrame(make([]byte, 0, 8), opClose, []byte{0x03, 0xe8})) // 1000
	}
	l := c.loop
	l.mu.Lock()
	c.closeReq = true
	switch c.state {
	case stNew:
		c.state = stDone
		l.mu.Unlock()
		c.closeFD()
		return
	case stPolled:
		if len(l.closing) == 0 {
			l.wake()
		}
		l.closing = append(l.closing, c)
	}
	l.mu.Unlock()
}

func (c *epollSession) closeFD() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
}

// consume handles the whole frames at the start of b: used is the bytes
// they took, need the length of the incomplete frame that follows when its
// header is there (else 0).
func (c *epollSession) consume(b []byte, d *Delivery) (used, need int, err error) {
	for {
		fin, op, hl, n, err := frameHeader(b[used:])
		if err != nil || hl == 0 {
			return used, 0, err
		}
		if len(b)-used-hl < n {
			return used, hl + n, nil
		}
		p := b[used+hl : used+hl+n]
		used += hl + n
		switch op {
		case opPing:
			err = c.write(appendMaskedFrame(make([]byte, 0, 6+n), opPong, p))
		case opPong:
		case opClose:
			err = closeError(p)
		default:
			var msg []byte
			var ok bool
			if op, msg, ok, err = c.asm.add(fin, op, p); ok && op == opText {
				dispatch(msg, c.sink, d)
			}
		}
		if err != nil {
			return used, 0, err
		}
	}
}

// keep saves the incomplete frame rem (which may alias rest) for the next read.
func (c *epollSession) keep(rem []byte, need int) {
	c.need = need
	if len(rem) == 0 {
		if cap(c.rest) > restKeepCap {
			c.rest = nil
		} else {
			c.rest = c.rest[:0]
		}
		return
	}
	c.rest = append(c.rest[:0], rem...)
}

// write writes b whole on the non-blocking socket, waiting for room when
// the send buffer is full (rare: the client only sends pongs and a close).
func (c *epollSession) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var deadline time.Time
	for len(b) > 0 {
		if c.fd < 0 {
			return net.ErrClosed
		}
		n, err := unix.Write(c.fd, b)
		if n > 0 {
			b = b[n:]
		}
		switch err {
		case nil, unix.EINTR:
		case unix.EAGAIN:
			if deadline.IsZero() {
				deadline = time.Now().Add(wsWriteTimeout)
			} else if time.Now().After(deadline) {
				return os.ErrDeadlineExceeded
			}
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}, 100)
		default:
			return os.NewSyscallError("write", err)
		}
	}
	return nil
}
