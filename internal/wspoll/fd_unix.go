//go:build linux || darwin || netbsd || freebsd || openbsd || dragonfly

package wspoll

import (
	"net"
	"syscall"

	"github.com/lesismal/nbio"
)

// dropPolled shuts nc's socket down without freeing its fd number (see
// Drop).
func dropPolled(nc *nbio.Conn) {
	nc.Lock()
	defer nc.Unlock()
	if closed, _ := nc.IsClosed(); !closed {
		_ = syscall.Shutdown(nc.Hash(), syscall.SHUT_RDWR) // Hash is the fd on unix
	}
}

// closeOnExec marks a dup'ed socket close-on-exec (see Upgrade).
func closeOnExec(nc *nbio.Conn) { syscall.CloseOnExec(nc.Hash()) }

// tryWrite writes what the socket's kernel buffer takes now, without
// blocking (Go's sockets are non-blocking), and returns how much that was:
// 0 when it is full, on an error (the stream's writer meets it again) or
// for connections that are not sockets.
func tryWrite(c net.Conn, b []byte) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Write(func(fd uintptr) bool {
		if w, err := syscall.Write(int(fd), b); err == nil {
			n = w
		}
		return true // never wait for the socket to become writable
	})
	return n
}

// shutdownWrite sends a FIN after what was written (nc's lock is held and
// nc is open).
func shutdownWrite(nc *nbio.Conn) { _ = syscall.Shutdown(nc.Hash(), syscall.SHUT_WR) }
