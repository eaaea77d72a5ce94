package bench

import (
	"io"
	"log/slog"
	"testing"
)

func TestParseNotification(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		ok   bool
		want Delivery
	}{
		{
			name: "unicast",
			msg:  `{"type":"notification","notification":{"id":"01M8D5FCKTHRYSA259YJEEAC92","type":"bench.unicast","title":"bench","body":"","data":{"t":1795738284658809138,"s":3,"u":39},"created_at":"2026-11-27T00:11:24.666Z","read":false,"position":"12.4"}}`,
			ok:   true,
			want: Delivery{Sent: 1795738284658809138, Seq: 3, User: 39, Position: Position{12, 4}},
		},
		{
			name: "broadcast",
			msg:  `{"type":"notification","notification":{"id":"X","type":"bench.broadcast","title":"bench","body":"","data":{"t":5,"s":6,"b":1},"created_at":"x","read":false,"position":"0.7"}}`,
			ok:   true,
			want: Delivery{Sent: 5, Seq: 6, User: -1, Broadcast: true, Position: Position{0, 7}},
		},
		{name: "no data", msg: `{"type":"notification","notification":{"id":"X","position":"1.0"}}`},
		{name: "neither user nor broadcast", msg: `{"data":{"t":5,"s":6},"position":"1.0"}`},
		{name: "both user and broadcast", msg: `{"data":{"t":5,"s":6,"u":1,"b":1},"position":"1.0"}`},
		{name: "no position", msg: `{"data":{"t":5,"s":6,"u":1}}`},
		{name: "bad position", msg: `{"data":{"t":5,"s":6,"u":1},"position":"1"}`},
		{name: "negative", msg: `{"data":{"t":-5,"s":6,"u":1},"position":"1.0"}`},
		{name: "overflow", msg: `{"data":{"t":99999999999999999999,"s":6,"u":1},"position":"1.0"}`},
		{name: "foreign data", msg: `{"data":{"other":"x"},"position":"1.0"}`},
		{name: "truncated", msg: `{"data":{"t":5,"s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Delivery
			ok := parseNotification([]byte(tt.msg), &d)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, d)
			}
			if ok && d != tt.want {
				t.Errorf("got %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestPublishBodiesParse(t *testing.T) {
	// What the publisher embeds must be what the receiver parses, after the
	// server has compacted it and added the position.
	b := appendUnicast(nil, "acme", "bx", 42, 1234567890123456789, 7)
	want := `{"tenant":"acme","to":{"users":["bx-42"]},"type":"bench.unicast","title":"bench","data":{"t":1234567890123456789,"s":7,"u":42}}`
	if string(b) != want {
		t.Fatalf("unicast body\n got %s\nwant %s", b, want)
	}
	var d Delivery
	if !parseNotification(append(b[:len(b)-1], `,"position":"3.0"}`...), &d) {
		t.Fatal("own unicast body does not parse")
	}
	if d.User != 42 || d.Seq != 7 || d.Sent != 1234567890123456789 || d.Broadcast {
		t.Errorf("parsed %+v", d)
	}
	b = appendBroadcast(nil, "acme", 5, 8)
	if !parseNotification(append(b[:len(b)-1], `,"position":"3.9"}`...), &d) || !d.Broadcast || d.Seq != 8 {
		t.Errorf("broadcast body %s parsed as %+v", b, d)
	}
}

func TestPositionRoundTrip(t *testing.T) {
	for _, p := range []Position{{0, 0}, {1, 2}, {9223372036854775807, 12}} {
		got, ok := parsePosition([]byte(p.String()))
		if !ok || got != p {
			t.Errorf("parsePosition(%q) = %v, %v", p.String(), got, ok)
		}
	}
	for _, bad := range []string{"", ".", "1.", ".1", "1", "a.1", "1.2.3", "-1.0"} {
		if _, ok := parsePosition([]byte(bad)); ok {
			t.Errorf("parsePosition(%q) accepted", bad)
		}
	}
}

func TestUserChecks(t *testing.T) {
	w := &worker{codes: map[int]int64{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w.newFigures()
	tests := []struct {
		name                           string
		start                          Position
		deliveries                     []Delivery
		unicast, broadcast, dups, gaps int64
		misrouted                      int64
	}{
		{name: "in order", start: Position{5, 2}, deliveries: []Delivery{
			{User: 1, Position: Position{6, 2}}, {User: -1, Broadcast: true, Position: Position{6, 3}}, {User: 1, Position: Position{7, 3}},
		}, unicast: 2, broadcast: 1},
		{name: "duplicate", start: Position{5, 2}, deliveries: []Delivery{
			{User: 1, Position: Position{6, 2}}, {User: 1, Position: Position{6, 2}},
		}, unicast: 1, dups: 1},
		{name: "gap", start: Position{5, 2}, deliveries: []Delivery{
			{User: 1, Position: Position{7, 2}}, {User: 1, Position: Position{8, 2}},
		}, unicast: 2, gaps: 1},
		{name: "broadcast in the user stream", start: Position{5, 2}, deliveries: []Delivery{
			{User: -1, Broadcast: true, Position: Position{6, 2}},
		}, broadcast: 1, gaps: 1},
		{name: "someone else's", start: Position{0, 0}, deliveries: []Delivery{
			{User: 2, Position: Position{1, 0}},
		}, misrouted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &user{w: w, idx: 1, pos: tt.start}
			for i := range tt.deliveries {
				u.Notification(&tt.deliveries[i])
			}
			got := []int64{u.unicast.Load(), u.broadcast.Load(), u.dups.Load(), u.gaps.Load(), u.misrouted.Load()}
			want := []int64{tt.unicast, tt.broadcast, tt.dups, tt.gaps, tt.misrouted}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("unicast, broadcast, dups, gaps, misrouted = %v, want %v", got, want)
				}
			}
		})
	}
}

// nopSession is a Session that does nothing.
type nopSession struct{}

func (nopSession) Read(Sink) error { return nil }
func (nopSession) Close(bool)      {}

// TestChurnCountsOnce: a session churned again before its reader saw it end
// is not counted a second time (each counted churn must be resumed once).
func TestChurnCountsOnce(t *testing.T) {
	u := &user{sess: nopSession{}}
	u.live.Store(true)
	if !u.churn(false) {
		t.Fatal("first churn refused")
	}
	if u.churn(true) {
		t.Fatal("second churn of the same session counted")
	}
}
