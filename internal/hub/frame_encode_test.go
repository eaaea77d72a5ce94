package hub

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
)

// encodeItemJSON, EncodeItem's fallback, is the encoding/json code of
// before unchanged: the oracle of these tests.
func TestEncodeItemMatchesEncodingJSON(t *testing.T) {
	created := time.Date(2026, 12, 6, 11, 48, 22, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name           string
		n              notification.Notification
		read, archived bool
	}{
		{name: "plain", n: notification.Notification{ID: "01M8D4RNA158PW21GV7ZNT0BFT", Type: "bench.test", Title: "Build 7 passed", Body: "All 1,204 tests passed.", CreatedAt: created}},
		{name: "read archived", n: notification.Notification{ID: "x", Type: "t", Title: "x", CreatedAt: created}, read: true, archived: true},
		{name: "html", n: notification.Notification{ID: "x", Type: "t", Title: `<script>alert("&")</script>`, Body: `a\b "q" </b>`, CreatedAt: created}},
		{name: "controls", n: notification.Notification{ID: "x", Type: "t", Title: "a\x00b\x01\b\f\n\r\t\x1f\x7f", CreatedAt: created}},
		{name: "unicode", n: notification.Notification{ID: "x", Type: "t", Title: "café ☃ 😀 \u2028\u2029 \u00a0", Body: "ok", CreatedAt: created}},
		{name: "invalid utf-8", n: notification.Notification{ID: "x", Type: "t", Title: "a\xffb\xe2\x82c\xed\xa0\x80", CreatedAt: created}},
		{name: "data", n: notification.Notification{ID: "x", Type: "t", Title: "x", Data: json.RawMessage(`{"a":[1,-2.5e+3,true,null],"h":"<b>&amp;</b>","u":"\u2028 \u2029","e":"\"\\\/\u003c"}`), CreatedAt: created}},
		{name: "data with spaces", n: notification.Notification{ID: "x", Type: "t", Title: "x", Data: json.RawMessage(" { \"a\" : [ 1 , 2 ] ,\n\t\"b\":\"x  y\" } "), CreatedAt: created}},
		{name: "data invalid", n: notification.Notification{ID: "x", Type: "t", Title: "x", Data: json.RawMessage(`{"a":`), CreatedAt: created}},
		{name: "empty data", n: notification.Notification{ID: "x", Type: "t", Title: "x", Data: json.RawMessage{}, CreatedAt: created}},
		{name: "times", n: notification.Notification{ID: "x", Type: "t", Title: "x", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ExpiresAt: time.Date(2027, 1, 2, 3, 4, 5, 100, time.FixedZone("", -7*3600))}},
		{name: "zero created", n: notification.Notification{ID: "x", Type: "t", Title: "x"}},
		{name: "inbox fields", n: notification.Notification{ID: "x", Type: "t", Title: "x", Category: "billing.v2", CollapseKey: "k <1> & \"2\"", CreatedAt: created}},
		{name: "empty strings", n: notification.Notification{CreatedAt: created}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := EncodeItem(&tt.n, tt.read, tt.archived), encodeItemJSON(&tt.n, tt.read, tt.archived)
			if !bytes.Equal(got, want) {
				t.Errorf("EncodeItem\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestEncodeItemAllocatesOnce(t *testing.T) {
	n := notification.Notification{ID: "01M8D4RNA158PW21GV7ZNT0BFT", Type: "bench.test", Title: "Build <7> passed", Body: "All 1,204 tests passed.",
		Data: json.RawMessage(`{"build":7,"url":"https://ci.example/7?a=1&b=2"}`), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Category: "ci"}
	if a := testing.AllocsPerRun(100, func() { EncodeItem(&n, false, false) }); a != 1 {
		t.Errorf("EncodeItem: %v allocations, want 1", a)
	}
}

// FuzzEncodeItem compares EncodeItem with encoding/json for any strings
// and data.
func FuzzEncodeItem(f *testing.F) {
	f.Add("Build 7", "<b>&</b> \u2028 \xff", `{"a": "<x>"}`, "cat", int64(1765000000123456789))
	f.Add("", "", ``, "", int64(0))
	f.Fuzz(func(t *testing.T, title, body, data, key string, nanos int64) {
		n := notification.Notification{ID: "x", Type: "t", Title: title, Body: body, Data: json.RawMessage(data),
			CreatedAt: time.Unix(0, nanos), CollapseKey: key}
		if got, want := EncodeItem(&n, true, false), encodeItemJSON(&n, true, false); !bytes.Equal(got, want) {
			t.Fatalf("EncodeItem\n%q\nwant\n%q", got, want)
		}
	})
}

func TestEncodeUnreadMatchesEncodingJSON(t *testing.T) {
	for _, by := range []map[string]int64{nil, {}, {"billing": 3}, {"z": 1, "a": -2, "m.x_y-1": 1 << 40, "<&>": 0}} {
		got := encodeUnread(1000, 70, by)
		want := `{"count":1000,"unseen":70`
		if by != nil {
			cats, _ := json.Marshal(by)
			want += `,"by_category":` + string(cats)
		}
		if want += "}"; string(got) != want {
			t.Errorf("encodeUnread(%v) = %s, want %s", by, got, want)
		}
	}
}

// BenchmarkEncodeItem compares EncodeItem with encoding/json.
func BenchmarkEncodeItem(b *testing.B) {
	n := notification.Notification{ID: "01M8D4RNA158PW21GV7ZNT0BFT", Type: "bench.test", Title: "Build 7 passed", Body: "All 1,204 tests passed.", CreatedAt: time.Now()}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EncodeItem(&n, false, false)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeItemJSON(&n, false, false)
		}
	})
}
