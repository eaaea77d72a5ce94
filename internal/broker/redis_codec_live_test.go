package broker

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/testkit"
)

func liveCases() []*notification.Live {
	at := time.Date(2026, 12, 6, 9, 0, 0, 123, time.UTC)
	return []*notification.Live{
		{ID: "01J0000000000000000000000A", Tenant: "acme", Topics: []string{"project.42", "chat:x"}, Type: "order:updated",
			Data: []byte(`{"id":7}`), CreatedAt: at},
		{ID: "b", Tenant: "acme", Audience: notification.Audience{Kind: notification.AudienceUsers, Users: []string{"u1", "u2"}},
			Type: "typing", Title: "t", Body: "b", CreatedAt: at},
		{ID: "c", Tenant: "acme", Audience: notification.Audience{Kind: notification.AudienceRole, Role: "admin"}, Type: "x", CreatedAt: at},
		{ID: "d", Tenant: "acme", Audience: notification.Audience{Kind: notification.AudienceTenant}, Type: "x"},
	}
}

func TestRedisLiveCodec(t *testing.T) {
	for i, l := range liveCases() {
		msg := encodeLive(l)
		ev, err := decodeLive(string(msg))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if ev.Kind != notification.EventLive || ev.Tenant != l.Tenant || !reflect.DeepEqual(ev.Live, l) {
			t.Fatalf("case %d round trip:\n got %+v\nwant %+v", i, ev.Live, l)
		}
		for j := 0; j < len(msg); j++ {
			if _, err := decodeLive(string(msg[:j])); err == nil {
				t.Fatalf("case %d: truncated at %d/%d decoded", i, j, len(msg))
			}
		}
		if _, err := decodeLive(string(msg) + "x"); !errors.Is(err, errCodec) {
			t.Fatalf("case %d: trailing byte: %v", i, err)
		}
		if _, err := decodeEvent(string(msg)); err == nil {
			t.Fatalf("case %d: a live message decodes as a stored event", i)
		}
	}
}

func FuzzRedisDecodeLive(f *testing.F) {
	for _, l := range liveCases() {
		f.Add(encodeLive(l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeLive(string(b))
		if err != nil {
			return
		}
		again, err := decodeLive(string(encodeLive(ev.Live)))
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}

// A live event published on one node reaches the handler of every node,
// through the tenant's partition.
func TestRedisLiveReachesEveryNode(t *testing.T) {
	url := testkit.RedisURL(t)
	prefix := testkit.UniqueName("htest-")
	got := [2]chan *notification.Event{make(chan *notification.Event, 8), make(chan *notification.Event, 8)}
	handler := func(i int) Handler {
		return func(ev *notification.Event) {
			if ev.Kind == notification.EventLive {
				got[i] <- ev
			}
		}
	}
	a := newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, NodeID: "a", Handler: handler(0)})
	newTestRedis(t, RedisConfig{URL: url, Prefix: prefix, NodeID: "b", Handler: handler(1)})
	l := liveCases()[0]
	if err := a.Publish(context.Background(), &notification.Event{Kind: notification.EventLive, Tenant: l.Tenant, Live: l}); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		select {
		case ev := <-got[i]:
			if !reflect.DeepEqual(ev.Live, l) {
				t.Fatalf("node %d got %+v", i, ev.Live)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("node %d got no live event", i)
		}
	}
}
