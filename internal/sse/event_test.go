package sse

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/notification"
)

// parseBlocks splits an event stream into dispatched events the way the
// WHATWG parser does (CR, LF and CRLF all end lines; a blank line
// dispatches an event that has data).
func parseBlocks(t testing.TB, stream string) []map[string]string {
	t.Helper()
	stream = strings.ReplaceAll(stream, "\r\n", "\n")
	stream = strings.ReplaceAll(stream, "\r", "\n")
	var out []map[string]string
	cur := map[string]string{}
	for _, line := range strings.Split(stream, "\n") {
		if line == "" {
			if _, ok := cur["data"]; ok {
				out = append(out, cur)
			}
			cur = map[string]string{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		f, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		if f == "data" {
			if old, ok := cur["data"]; ok {
				v = old + "\n" + v
			}
		}
		cur[f] = v
	}
	return out
}

func TestAppendFrameKinds(t *testing.T) {
	n := &notification.Notification{ID: "01J", Type: "t", Title: "a", Body: "b",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cases := []struct {
		name string
		f    hub.Frame
		want string
	}{
		{"ready", hub.Frame{Kind: hub.FrameReady, Payload: []byte(`{"user":"u"}`)}, "event: ready\ndata: {\"user\":\"u\"}\n\n"},
		{"notification", hub.Frame{Kind: hub.FrameNotification, Payload: hub.EncodeNotification(n, false),
			Position: notification.Position{User: 7, Tenant: 2}},
			"id: 7.2\nevent: notification\ndata: {\"id\":\"01J\",\"type\":\"t\",\"title\":\"a\",\"body\":\"b\",\"created_at\":\"2026-01-02T03:04:05Z\",\"read\":false,\"position\":\"7.2\"}\n\n"},
		{"read", hub.Frame{Kind: hub.FrameRead, Payload: []byte(`{"ids":["x"]}`)}, "event: read\ndata: {\"ids\":[\"x\"]}\n\n"},
		{"deleted", hub.Frame{Kind: hub.FrameDeleted, Payload: []byte(`{"id":"x"}`)}, "event: deleted\ndata: {\"id\":\"x\"}\n\n"},
		{"unread", hub.Frame{Kind: hub.FrameUnread, Payload: []byte(`{"count":3}`)}, "event: unread\ndata: {\"count\":3}\n\n"},
		{"resync", hub.Frame{Kind: hub.FrameResync, Payload: []byte(`{"position":"1.1"}`)}, "event: resync\ndata: {\"position\":\"1.1\"}\n\n"},
		{"unknown kind", hub.Frame{Kind: 200, Payload: []byte(`{}`)}, ""},
		{"stray newlines are neutralised", hub.Frame{Kind: hub.FrameUnread, Payload: []byte("{\n\"count\":\r3}")}, "event: unread\ndata: { \"count\": 3}\n\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendFrame(nil, tc.f)); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestAppendCloseAndRetry(t *testing.T) {
	got := string(appendRetry(appendClose(nil, hub.ReasonShutdown), 2500))
	if got != "event: close\ndata: {\"code\":4009,\"reason\":\"shutdown\"}\n\nretry: 2500\n\n" {
		t.Fatalf("got %q", got)
	}
	for _, r := range hub.Reasons() {
		evs := parseBlocks(t, string(appendClose(nil, r)))
		var d struct {
			Code   int
			Reason string
		}
		if len(evs) != 1 || json.Unmarshal([]byte(evs[0]["data"]), &d) != nil || d.Code != r.Code() || d.Reason != r.Label() {
			t.Fatalf("%v: %q", r, evs)
		}
	}
}

// FuzzNotificationEvent: whatever the notification's text, its event is
// exactly one event with the notification's id and position, whose data is
// the notification's JSON.
func FuzzNotificationEvent(f *testing.F) {
	for _, s := range []string{"\n\ndata: x", "\rid: 9", "event: evil", "a\r\n\r\nevent: close\ndata: {}\n\n", "\u2028\u0085\x00", ": c\nretry: 1"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, title, body string) {
		n := &notification.Notification{ID: "01J", Type: "t", Title: title, Body: body, CreatedAt: time.Unix(0, 0)}
		data, _ := json.Marshal(map[string]string{title: body})
		n.Data = data
		b := appendFrame(nil, hub.Frame{Kind: hub.FrameNotification, Payload: hub.EncodeNotification(n, true),
			Position: notification.Position{User: 3, Tenant: 4}})
		b = append(b, appendFrame(nil, hub.Frame{Kind: hub.FrameUnread, Payload: []byte(`{"count":1}`)})...)
		evs := parseBlocks(t, string(b))
		if len(evs) != 2 || evs[0]["id"] != "3.4" || evs[0]["event"] != "notification" || len(evs[0]) != 3 || evs[1]["event"] != "unread" {
			t.Fatalf("events %q from %q", evs, b)
		}
		var got struct {
			Title, Body, Position string
		}
		if err := json.Unmarshal([]byte(evs[0]["data"]), &got); err != nil {
			t.Fatal(err)
		}
		// encoding/json replaces invalid UTF-8 with U+FFFD; compare after the same.
		var wantTitle string
		js, _ := json.Marshal(title)
		_ = json.Unmarshal(js, &wantTitle)
		if wantTitle != got.Title || got.Position != "3.4" {
			t.Fatalf("round trip: %q -> %q", title, got.Title)
		}
	})
}
