package session

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/notification"
	"github.com/heraldhq/herald/internal/store"
)

func TestReplyJSON(t *testing.T) {
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	page := &store.Page{
		Items: []notification.Item{
			{Notification: notification.Notification{ID: id2, Type: "comment", Title: `say "hi"`, Body: "héllo\n<b>",
				Data: json.RawMessage(`{"k":[1,2]}`), CreatedAt: created}, Read: true, Seq: 2},
			{Notification: notification.Notification{ID: id1, Type: "x", Title: "t", CreatedAt: created,
				ExpiresAt: created.Add(time.Hour)}, Seq: 1},
		},
		Next: id1,
	}
	items := `[
		{"id":"` + id2 + `","type":"comment","title":"say \"hi\"","body":"héllo\n<b>","data":{"k":[1,2]},
		 "created_at":"2024-05-01T12:00:00Z","read":true},
		{"id":"` + id1 + `","type":"x","title":"t","body":"","created_at":"2024-05-01T12:00:00Z",
		 "expires_at":"2024-05-01T13:00:00Z","read":false}]`
	tests := []struct {
		name   string
		reply  Reply
		want   string // the object AppendObject makes
		result bool   // HasResult
	}{
		{name: "ack", reply: Reply{Name: NameMarkRead, Change: store.Change{IDs: []string{id1}}}, want: `{}`},
		{name: "ping", reply: Reply{Name: NamePing}, want: `{}`},
		{name: "list with next", reply: Reply{Name: NameList, Page: page},
			want: `{"notifications":` + items + `,"next":"` + id1 + `"}`, result: true},
		{name: "list without next", reply: Reply{Name: NameList, Page: &store.Page{Items: page.Items}},
			want: `{"notifications":` + items + `,"next":null}`, result: true},
		{name: "empty list", reply: Reply{Name: NameList, Page: &store.Page{}},
			want: `{"notifications":[],"next":null}`, result: true},
		{name: "unread count", reply: Reply{Name: NameUnreadCount, Counts: store.Counts{Unread: 42, Unseen: 3, ByCategory: map[string]int64{"ci": 2}}},
			want: `{"count":42,"unseen":3,"by_category":{"ci":2}}`, result: true},
		{name: "unread count zero", reply: Reply{Name: NameUnreadCount}, want: `{"count":0,"unseen":0,"by_category":{}}`, result: true},
		{name: "preferences", reply: Reply{Name: NamePreferences, Prefs: &notification.Preferences{MutedTypes: []string{"a.b"}}},
			want: `{"muted_categories":[],"muted_types":["a.b"]}`, result: true},
		{name: "error", reply: Reply{Name: NameDelete, Err: &Error{Code: CodeNotFound, CorrelationID: "00ff"}},
			want: `{"code":"not_found","message":"not found","correlation_id":"00ff"}`},
		{name: "error with a message", reply: Reply{Name: NameList,
			Err: &Error{Code: CodeRateLimited, Message: "too many requests", CorrelationID: "ab"}},
			want: `{"code":"rate_limited","message":"too many requests","correlation_id":"ab"}`},
		{name: "error without correlation id", reply: Reply{Name: NameUnreadCount, Err: &Error{Code: CodeInvalidMessage}},
			want: `{"code":"invalid_message","message":"invalid message"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reply.HasResult() != tt.result {
				t.Errorf("HasResult() = %v, want %v", tt.reply.HasResult(), tt.result)
			}
			// AppendObject, after a prefix it must leave alone.
			obj := tt.reply.AppendObject([]byte("prefix:"))
			if string(obj[:7]) != "prefix:" {
				t.Fatalf("prefix overwritten: %s", obj)
			}
			assertJSON(t, obj[7:], tt.want)

			// AppendFields inside a transport's envelope.
			env := append([]byte(`{"type":"reply","ref":1`), tt.reply.AppendFields(nil)...)
			env = append(env, '}')
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			want["type"], want["ref"] = "reply", 1.0
			wantEnv, _ := json.Marshal(want)
			assertJSON(t, env, string(wantEnv))
		})
	}
}

// assertJSON checks that got is one valid JSON value equal to want.
func assertJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendHelpers(t *testing.T) {
	b := AppendError([]byte("x"), &Error{Code: CodeUnavailable, CorrelationID: "c1"})
	if string(b) != `x,"code":"unavailable","message":"temporarily unavailable","correlation_id":"c1"` {
		t.Errorf("AppendError: %s", b)
	}
	b = AppendPage(nil, &store.Page{Next: id1})
	if string(b) != `,"notifications":[],"next":"`+id1+`"` {
		t.Errorf("AppendPage: %s", b)
	}
}
