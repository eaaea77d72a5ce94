// Package broker carries committed events from the node that wrote them to
// every node's hub. The memory broker serves a single node; the Redis broker
// (cluster mode) fans out between nodes.
//
// A broker is at-most-once: an event can be lost (a Redis outage, a full
// queue on shutdown). Nothing is lost for clients, because the hub detects
// gaps in each stream's sequence and replays from the store, and catches every
// client up after a broker reconnect.
package broker

import (
	"context"
	"errors"

	"github.com/heraldhq/herald/internal/notification"
)

// Handler receives events in publish order. It must not block for long.
type Handler func(*notification.Event)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Broker is the contract of every broker engine.
type Broker interface {
	// Publish hands ev to every node's handler. It returns once ev is queued
	// (memory) or sent (Redis), or when ctx ends.
	Publish(ctx context.Context, ev *notification.Event) error
	// Close stops delivery after the queued events have been handled.
	Close() error
}
