package store

import (
	"context"
	"sync"
)

// lifecycle is how both engines start and stop their goroutines: the
// writer, which drains the queue until Close closes it, and background
// goroutines (the expiry sweeper, SQLite's checkpointer), which run until
// Close cancels their context.
type lifecycle struct {
	// mu guards closed against the close of the writer queue: senders hold
	// it for reading while they send, stop takes it for writing to close
	// the queue.
	mu     sync.RWMutex
	closed bool // guarded by mu

	stopBackground context.CancelFunc // static after start
	background     sync.WaitGroup
	writerDone     chan struct{} // closed when the writer goroutine returns

	closeOnce sync.Once
}

// start runs writer and each of background (given the context that stop
// cancels) in goroutines of their own.
func (l *lifecycle) start(writer func(), background ...func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopBackground = cancel
	l.writerDone = make(chan struct{})
	go func() {
		defer close(l.writerDone)
		writer()
	}()
	for _, run := range background {
		l.background.Go(func() { run(ctx) })
	}
}

// stop tears down in order: it stops the background goroutines, marks the
// store closed and closes the writer queue (closeQueue, called under mu),
// then waits for the writer to commit what was queued.
func (l *lifecycle) stop(closeQueue func()) {
	l.stopBackground()
	l.background.Wait()

	l.mu.Lock()
	l.closed = true
	closeQueue()
	l.mu.Unlock()
	<-l.writerDone
}
