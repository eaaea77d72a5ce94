package socketio

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	proto "github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

// The examples of the Engine.IO v4 protocol README ("Packet encoding").
func TestSplitPayloadProtocolExamples(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []enginePacket
	}{
		{"text packets", "4hello\x1e2\x1e4world", []enginePacket{
			{typ: eioMessage, data: []byte("hello")}, {typ: eioPing, data: []byte{}}, {typ: eioMessage, data: []byte("world")}}},
		{"binary as base64", "4hello\x1ebAQIDBA==", []enginePacket{
			{typ: eioMessage, data: []byte("hello")}, {typ: eioMessage, data: []byte{1, 2, 3, 4}, binary: true}}},
		{"socket.io sample (request 5)", "42[\"hello\"]\x1e42[\"world\"]", []enginePacket{
			{typ: eioMessage, data: []byte(`2["hello"]`)}, {typ: eioMessage, data: []byte(`2["world"]`)}}},
		{"probe", "2probe", []enginePacket{{typ: eioPing, data: []byte("probe")}}},
		{"upgrade and noop", "5\x1e6", []enginePacket{{typ: eioUpgrade, data: []byte{}}, {typ: eioNoop, data: []byte{}}}},
		{"close", "1", []enginePacket{{typ: eioClose, data: []byte{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []enginePacket
			err := splitPayload([]byte(tt.in), func(rec []byte) error {
				p, err := decodeEnginePacket(rec, true)
				got = append(got, p)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEnginePacketRejects(t *testing.T) {
	for _, in := range []string{"", "7", "x", "\x1e", "4a\x1e", "4a\x1e\x1e4b", "b!!!"} {
		err := splitPayload([]byte(in), func(rec []byte) error {
			_, err := decodeEnginePacket(rec, true)
			return err
		})
		if in == "" { // an empty body has no packets
			if err != nil {
				t.Errorf("empty payload: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("payload %q: error %v, want ErrMalformed", in, err)
		}
	}
	// Base64 is a polling encoding only: over WebSocket binary is a frame type.
	if _, err := decodeEnginePacket([]byte("bAQID"), false); !errors.Is(err, ErrMalformed) {
		t.Errorf("b-prefixed packet over WebSocket accepted")
	}
}

func TestOpenPacket(t *testing.T) {
	c := Config{PingInterval: 25 * time.Second, PingTimeout: 20 * time.Second, MaxPayload: 1000000}
	id, ok := parseSID("lv_VI97HAXpY6yYWAAAC0w")
	if !ok {
		t.Fatal("parseSID refused a canonical sid")
	}
	got := string(appendOpen(nil, &id, true, &c))
	want := `0{"sid":"lv_VI97HAXpY6yYWAAAC0w","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	if got != want {
		t.Fatalf("open packet\n got %s\nwant %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(appendOpen(nil, &id, false, &c)[1:]), &v); err != nil {
		t.Fatal(err)
	}
	if ups, _ := v["upgrades"].([]any); ups == nil || len(ups) != 0 {
		t.Fatalf("websocket open packet upgrades = %v, want []", v["upgrades"])
	}
}

func TestSID(t *testing.T) {
	for range 100 {
		id := newSID()
		text := string(id.appendTo(nil))
		got, ok := parseSID(text)
		if len(text) != sidLen || !ok || got != id {
			t.Fatalf("sid %x encoded as %q, parsed back as %x (ok %v)", id, text, got, ok)
		}
	}
	// The last character carries 2 unused bits: "0w" and "0x" decode to the
	// same bytes with a lenient decoder; only the canonical one is a sid.
	for _, bad := range []string{"", "lv_VI97HAXpY6yYWAAAC0x", "lv_VI97HAXpY6yYWAAAC0", "lv_VI97HAXpY6yYWAAAC0wA", "lv_VI97HAXpY6yYWAAAC0=", "lv/VI97HAXpY6yYWAAAC0w"} {
		if _, ok := parseSID(bad); ok {
			t.Errorf("parseSID(%q) accepted", bad)
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	const id = "01J00000000000000000000000"
	ack := proto.Ref{Ack: 7}
	good := []struct {
		name string
		in   string
		want proto.Request
	}{
		{"mark-read id", `["notification:mark-read",{"id":"` + id + `"}]`, proto.Request{Name: proto.NameMarkRead, Ref: ack, IDs: []string{id}}},
		{"mark-read ids", `["notification:mark-read",{"ids":["` + id + `"]}]`, proto.Request{Name: proto.NameMarkRead, Ref: ack, IDs: []string{id}}},
		{"delete", `["notification:delete",{"id":"` + id + `"}]`, proto.Request{Name: proto.NameDelete, Ref: ack, ID: id}},
		{"mark-all-read bare", `["notification:mark-all-read"]`, proto.Request{Name: proto.NameMarkAllRead, Ref: ack}},
		{"mark-all-read empty object", `["notification:mark-all-read",{}]`, proto.Request{Name: proto.NameMarkAllRead, Ref: ack}},
		{"list", `["notification:list",{"before":"` + id + `","limit":5,"unread":true}]`,
			proto.Request{Name: proto.NameList, Ref: ack, Query: store.ListQuery{Before: id, Limit: 5, UnreadOnly: true}}},
		{"list bare", `["notification:list"]`, proto.Request{Name: proto.NameList, Ref: ack}},
		{"auth", `["auth",{"token":"t"}]`, proto.Request{Name: proto.NameAuth, Ref: ack, Token: "t"}},
		{"unread count", `["notification:unread-count"]`, proto.Request{Name: proto.NameUnreadCount, Ref: ack}},
		{"ping", `["ping",null]`, proto.Request{Name: proto.NamePing, Ref: ack}},
	}
	for _, tt := range good {
		got, err := decodeEvent(json.RawMessage(tt.in), 7)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	bad := []string{
		`["notification:mark-read",{"id":"nope"}]`,
		`["notification:mark-read",{}]`,
		`["notification:mark-read",{"id":"` + id + `","extra":1}]`,
		`["notification:delete",{"ids":["` + id + `"]}]`,
		`["notification:delete"]`,
		`["notification:list",{"limit":-1}]`,
		`["notification:list",{"before":"x"}]`,
		`["notification:mark-all-read",{"id":"` + id + `"}]`,
		`["notification:unknown"]`,
		`[1]`,
		`["notification:delete",{"id":"` + id + `"},3]`,
		`["notification:mark-read",{"ids":[[[[["a"]]]]]}]`,
		`["auth",{}]`,
	}
	for _, in := range bad {
		if ev, err := decodeEvent(json.RawMessage(in), proto.NoAck); !errors.Is(err, proto.ErrInvalid) || ev.Ref.Ack != proto.NoAck {
			t.Errorf("decodeEvent(%s) = %+v, %v; want ErrInvalid with the ref", in, ev, err)
		}
	}
}

func TestNextSlot(t *testing.T) {
	for _, tc := range []struct {
		name                string
		slot, now, interval int64
		want                int64
	}{
		{"on time", 300, 300, 300, 600},
		{"a tick late", 300, 318, 300, 600},
		{"a slot missed", 300, 650, 300, 900},
		{"not due", 600, 310, 300, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextSlot(tc.slot, tc.now, tc.interval); got != tc.want {
				t.Fatalf("nextSlot(%d, %d, %d) = %d, want %d", tc.slot, tc.now, tc.interval, got, tc.want)
			}
		})
	}
}

func TestSocketSet(t *testing.T) {
	var set socketSet
	a, b, c := &socket{ns: 3}, &socket{ns: 0}, &socket{ns: 7}
	if !set.empty() || set.get(3) != nil {
		t.Fatal("zero set not empty")
	}
	set.put(a) // inline
	set.put(b) // in the array
	set.put(c)
	for ns, want := range map[int]*socket{0: b, 1: nil, 3: a, 7: c} {
		if got := set.get(ns); got != want {
			t.Errorf("get(%d) = %p, want %p", ns, got, want)
		}
	}
	if got := set.appendTo(nil); !reflect.DeepEqual(got, []*socket{b, a, c}) {
		t.Errorf("appendTo: %v, want namespace order", got)
	}
	set.remove(a)
	set.remove(&socket{ns: 0}) // not b: kept
	if set.get(3) != nil || set.get(0) != b || set.empty() {
		t.Fatal("remove dropped the wrong socket")
	}
	d := &socket{ns: 3}
	set.put(d) // the inline place again
	if set.get(3) != d || set.get(7) != c {
		t.Fatal("put after remove")
	}
	for _, k := range []*socket{b, c, d} {
		set.remove(k)
	}
	if !set.empty() || len(set.appendTo(nil)) != 0 {
		t.Fatal("set not empty after removing every socket")
	}
}
