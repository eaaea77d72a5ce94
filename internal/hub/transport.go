package hub

import (
	"slices"
	"sync"
	"sync/atomic"
)

// transportNames interns the transport names of the clients ("ws", "sse",
// "socketio"): a Client keeps a one-byte index, where a string cost every
// idle connection 16 bytes (TestClientFitsItsSizeClass). The table only
// grows; names beyond maxTransports share the last index, read as
// otherTransport.
type transportNames struct {
	mu    sync.Mutex               // serializes additions
	names atomic.Pointer[[]string] // read without the lock
}

const (
	maxTransports  = 255
	otherTransport = "other"
)

// index returns name's index, adding name when it is new.
func (t *transportNames) index(name string) uint8 {
	if p := t.names.Load(); p != nil {
		if i := slices.Index(*p, name); i >= 0 {
			return uint8(i)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur []string
	if p := t.names.Load(); p != nil {
		cur = *p
	}
	if i := slices.Index(cur, name); i >= 0 {
		return uint8(i)
	}
	if len(cur) >= maxTransports {
		return maxTransports
	}
	next := append(slices.Clip(cur), name)
	t.names.Store(&next)
	return uint8(len(next) - 1)
}

// name is the transport name of index i.
func (t *transportNames) name(i uint8) string {
	if p := t.names.Load(); p != nil && int(i) < len(*p) {
		return (*p)[i]
	}
	return otherTransport
}
