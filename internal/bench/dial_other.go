//go:build !linux

package bench

import (
	"net"
	"syscall"
)

// dialControl is a no-op where IP_BIND_ADDRESS_NO_PORT does not exist.
func dialControl(_, _ string, _ syscall.RawConn) error { return nil }

// synRetransmits is not read where TCP_INFO does not exist.
func synRetransmits(net.Conn) int { return 0 }
