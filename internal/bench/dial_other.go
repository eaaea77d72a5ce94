//go:build !linux

package bench

import "syscall"

// dialControl is a no-op where IP_BIND_ADDRESS_NO_PORT does not exist.
func dialControl(_, _ string, _ syscall.RawConn) error { return nil }
