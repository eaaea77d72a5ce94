package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/heraldhq/herald/internal/notification"
)

// MemoryConfig tunes the in-process broker.
type MemoryConfig struct {
	// QueueSize bounds the events waiting for the handler. A full queue makes
	// Publish wait (back-pressure on publishers), never drop. Default 8192.
	QueueSize int
}

// Memory is the single-node broker: a bounded queue drained by one goroutine
// that calls the handler in publish order.
type Memory struct {
	handler Handler // static
	queue   chan *notification.Event

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}
}

var _ Broker = (*Memory)(nil)

// NewMemory starts a memory broker delivering to h.
func NewMemory(cfg MemoryConfig, h Handler) *Memory {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8192
	}
	m := &Memory{handler: h, queue: make(chan *notification.Event, cfg.QueueSize), done: make(chan struct{})}
	go m.run()
	return m
}

func (m *Memory) run() {
	defer close(m.done)
	for ev := range m.queue {
		m.handler(ev)
	}
}

// Publish queues ev, waiting while the queue is full.
func (m *Memory) Publish(ctx context.Context, ev *notification.Event) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	select {
	case m.queue <- ev:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: publish: %w", ctx.Err())
	}
}

// Close delivers what is queued, then stops.
func (m *Memory) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	return nil
}
