package ws

import (
	"testing"
	"unsafe"
)

// Every idle WebSocket holds a conn: a field that pushes it past the
// 208-byte size class costs every connection the next class (224 or more).
// What a connection needs only until it authenticates is in preAuth.
func TestConnFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 208 {
		t.Fatalf("conn is %d bytes, more than 208: shrink it or pack its fields", n)
	}
}
