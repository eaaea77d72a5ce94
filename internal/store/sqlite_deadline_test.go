package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// TestSQLitePublishDeadline: a publish whose Deadline passes while it is
// queued behind a blocked writer, or has passed when it is made, fails as
// one whose context has that deadline does (same error), and the writer
// does not run it once it picks it up; nor a request whose caller gave up
// while its context and deadline are still alive.
func TestSQLitePublishDeadline(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	ctx := context.Background()
	late := PublishRequest{Drafts: []notification.Draft{toUsers("t", "late")}}
	release := blockWriter(t, s)

	tctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, ctxErr := s.Publish(tctx, late)
	if !errors.Is(ctxErr, ErrUnavailable) {
		t.Fatalf("publish past its context's deadline: %v", ctxErr)
	}
	for _, d := range []time.Duration{10 * time.Millisecond, -time.Second} {
		req := late
		req.Deadline = time.Now().Add(d)
		_, err := s.Publish(ctx, req)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || err.Error() != ctxErr.Error() {
			t.Fatalf("publish with Deadline in %v: %v, want %v", d, err, ctxErr)
		}
	}

	gone := &writeReq{ctx: ctx, deadline: time.Now().Add(time.Hour), done: make(chan error, 1), publish: true, pub: late}
	if err := s.enqueue(ctx, nil, gone); err != nil {
		t.Fatal(err)
	}
	if err := giveUp("publish", gone, context.Canceled); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("give up: %v", err)
	}
	release()
	// Queued after them all, so committed after the writer has seen them.
	onTime := PublishRequest{Drafts: []notification.Draft{toUsers("t", "on-time")}, Deadline: time.Now().Add(time.Minute)}
	if _, err := s.Publish(ctx, onTime); err != nil {
		t.Fatal(err)
	}
	if err := <-gone.done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request whose caller gave up: %v, want ErrUnavailable", err)
	}
	if h, err := s.Head(ctx, rcp("t", "late", "")); err != nil || h != (notification.Position{}) {
		t.Fatalf("abandoned requests were committed: head %v, %v", h, err)
	}
	if h, err := s.Head(ctx, rcp("t", "on-time", "")); err != nil || h.User != 1 {
		t.Fatalf("on-time head %v, %v", h, err)
	}
}
