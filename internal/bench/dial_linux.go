package bench

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// dialControl sets IP_BIND_ADDRESS_NO_PORT on sockets bound to a source
// address, so that the kernel picks the port at connect time by the whole
// 4-tuple instead of reserving one per source address at bind time (which
// also keeps TIME_WAIT ports of churned connections usable).
func dialControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// synRetransmits is how many segments the kernel retransmitted on nc, read
// right after connect: the SYNs it sent again (after 1 s, then 3 s, 7 s …)
// because no SYN-ACK came. 0 when it cannot be read.
func synRetransmits(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = int(info.Total_retrans)
		}
	})
	return n
}
