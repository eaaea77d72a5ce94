package api

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestMemoryDedupe(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	d := NewMemoryDedupe(time.Minute, 3)
	d.now = func() time.Time { return now }

	if id, replay, err := d.Claim(ctx, "key1", "k", "h1", "id-1"); err != nil || replay || id != "id-1" {
		t.Fatalf("first claim: %q %v %v", id, replay, err)
	}
	if id, replay, err := d.Claim(ctx, "key1", "k", "h1", "id-2"); err != nil || !replay || id != "id-1" {
		t.Fatalf("retry: %q %v %v; want the first id, replayed", id, replay, err)
	}
	if _, _, err := d.Claim(ctx, "key1", "k", "h2", "id-3"); !errors.Is(err, ErrLiveKeyReused) {
		t.Fatalf("another body: %v", err)
	}
	if _, replay, _ := d.Claim(ctx, "key2", "k", "h2", "id-4"); replay {
		t.Fatal("a key is scoped to its API key")
	}
	d.Release(ctx, "key2", "k")
	if _, replay, _ := d.Claim(ctx, "key2", "k", "h2", "id-5"); replay {
		t.Fatal("a released key replayed")
	}
	now = now.Add(2 * time.Minute) // the window is over
	if _, replay, _ := d.Claim(ctx, "key1", "k", "h2", "id-6"); replay {
		t.Fatal("an expired key replayed")
	}
	for i := range 10 { // bounded: the oldest keys go first
		_, _, _ = d.Claim(ctx, "key3", fmt.Sprint(i), "h", "x")
		if d.Len() > 3 {
			t.Fatalf("%d keys held, over the bound of 3", d.Len())
		}
	}
	if _, replay, _ := d.Claim(ctx, "key3", "9", "h", "y"); !replay {
		t.Fatal("the newest key was evicted")
	}
}

// RedisDedupe: the same contract, with a retry on another node (another
// RedisDedupe on the same Redis and prefix) recognised.
func TestRedisDedupe(t *testing.T) {
	client, prefix := testkit.Redis(t)
	a := &RedisDedupe{Client: client, Prefix: prefix, Window: time.Minute}
	b := &RedisDedupe{Client: client, Prefix: prefix, Window: time.Minute}
	ctx := context.Background()
	if id, replay, err := a.Claim(ctx, "key1", "k", "h1", "id-1"); err != nil || replay || id != "id-1" {
		t.Fatalf("first claim: %q %v %v", id, replay, err)
	}
	if id, replay, err := b.Claim(ctx, "key1", "k", "h1", "id-2"); err != nil || !replay || id != "id-1" {
		t.Fatalf("retry on another node: %q %v %v", id, replay, err)
	}
	if _, _, err := b.Claim(ctx, "key1", "k", "h2", "id-3"); !errors.Is(err, ErrLiveKeyReused) {
		t.Fatalf("another body: %v", err)
	}
	a.Release(ctx, "key1", "k")
	if _, replay, err := b.Claim(ctx, "key1", "k", "h2", "id-4"); err != nil || replay {
		t.Fatalf("after release: %v %v", replay, err)
	}
	if ttl := client.TTL(ctx, a.key("key1", "k")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v, want the window", ttl)
	}
}

func TestReservedEventTypes(t *testing.T) {
	for _, typ := range []string{"connect", "disconnect", "notification", "unread", "ready", "event", "subscribe", "auth",
		"notification:list", "ping", "error"} {
		if !ReservedEventType(typ) {
			t.Errorf("%q is not reserved", typ)
		}
	}
	for _, typ := range []string{"order:updated", "job.progress", "notifications", "Connect"} {
		if ReservedEventType(typ) {
			t.Errorf("%q is reserved", typ)
		}
	}
}
