package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// The examples of the Socket.IO v5 protocol README ("Packet encoding").
func TestDecodePacketProtocolExamples(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want packet
	}{
		{"connect main", `0`, packet{Type: typeConnect, Namespace: "/", ID: -1}},
		{"connect main with sid", `0{"sid":"wZX3oN0bSVIhsaknAAAI"}`, packet{Type: typeConnect, Namespace: "/", ID: -1, Data: json.RawMessage(`{"sid":"wZX3oN0bSVIhsaknAAAI"}`)}},
		{"connect custom", `0/admin,`, packet{Type: typeConnect, Namespace: "/admin", ID: -1}},
		{"connect custom with sid", `0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`, packet{Type: typeConnect, Namespace: "/admin", ID: -1, Data: json.RawMessage(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}},
		{"connect custom with auth", `0/admin,{"token":"123"}`, packet{Type: typeConnect, Namespace: "/admin", ID: -1, Data: json.RawMessage(`{"token":"123"}`)}},
		{"connect custom no comma", `0/random`, packet{Type: typeConnect, Namespace: "/random", ID: -1}},
		{"connect error", `4{"message":"Not authorized"}`, packet{Type: typeConnectError, Namespace: "/", ID: -1, Data: json.RawMessage(`{"message":"Not authorized"}`)}},
		{"event main", `2["foo"]`, packet{Type: typeEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["foo"]`)}},
		{"event custom", `2/admin,["bar"]`, packet{Type: typeEvent, Namespace: "/admin", ID: -1, Data: json.RawMessage(`["bar"]`)}},
		{"binary event", `51-["baz",{"_placeholder":true,"num":0}]`, packet{Type: typeBinaryEvent, Namespace: "/", ID: -1, Attachments: 1, Data: json.RawMessage(`["baz",{"_placeholder":true,"num":0}]`)}},
		{"binary event custom two attachments", `52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, packet{Type: typeBinaryEvent, Namespace: "/admin", ID: -1, Attachments: 2, Data: json.RawMessage(`["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)}},
		{"event with ack", `212["foo"]`, packet{Type: typeEvent, Namespace: "/", ID: 12, Data: json.RawMessage(`["foo"]`)}},
		{"empty ack", `312[]`, packet{Type: typeAck, Namespace: "/", ID: 12, Data: json.RawMessage(`[]`)}},
		{"event custom with ack", `2/admin,13["foo"]`, packet{Type: typeEvent, Namespace: "/admin", ID: 13, Data: json.RawMessage(`["foo"]`)}},
		{"ack custom", `3/admin,13["bar"]`, packet{Type: typeAck, Namespace: "/admin", ID: 13, Data: json.RawMessage(`["bar"]`)}},
		{"binary event with ack", `51-14["foo",{"_placeholder":true,"num":0}]`, packet{Type: typeBinaryEvent, Namespace: "/", ID: 14, Attachments: 1, Data: json.RawMessage(`["foo",{"_placeholder":true,"num":0}]`)}},
		{"binary ack", `61-15["bar",{"_placeholder":true,"num":0}]`, packet{Type: typeBinaryAck, Namespace: "/", ID: 15, Attachments: 1, Data: json.RawMessage(`["bar",{"_placeholder":true,"num":0}]`)}},
		{"binary ack custom (sample session)", `61-/admin,1[{"_placeholder":true,"num":0}]`, packet{Type: typeBinaryAck, Namespace: "/admin", ID: 1, Attachments: 1, Data: json.RawMessage(`[{"_placeholder":true,"num":0}]`)}},
		{"disconnect main", `1`, packet{Type: typeDisconnect, Namespace: "/", ID: -1}},
		{"disconnect custom", `1/admin,`, packet{Type: typeDisconnect, Namespace: "/admin", ID: -1}},
		{"numeric event name", `2[1,"2"]`, packet{Type: typeEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`[1,"2"]`)}},
		{"test-suite message", `2["message",1,"2",{"3":[true]}]`, packet{Type: typeEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["message",1,"2",{"3":[true]}]`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePacket([]byte(tt.in), 10)
			if err != nil {
				t.Fatalf("decodePacket(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decodePacket(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodePacketRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"unknown type", `7`},
		{"not a digit", `abc`},
		{"event without payload", `2`},
		{"event with object", `2{"a":1}`},
		{"event empty array", `2[]`},
		{"event name object", `2[{"a":1}]`},
		{"reserved event", `2["connect"]`},
		{"reserved event disconnect", `2/admin,["disconnect"]`},
		{"connect with array", `0["a"]`},
		{"disconnect with payload", `1{}`},
		{"ack without id", `3["a"]`},
		{"ack with object", `31{"a":1}`},
		{"binary without dash", `51["a"]`},
		{"binary without count", `5-["a"]`},
		{"too many attachments", `511-["a"]`},
		{"invalid json", `2["a"`},
		{"trailing garbage", `2["a"]x`},
		{"ack id too long", `21234567890123456["a"]`},
		{"invalid payload (test suite 4abc)", `abc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := decodePacket([]byte(tt.in), 10); err == nil {
				t.Fatalf("decodePacket(%q) = %+v, want an error", tt.in, p)
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestEncodePacketProtocolExamples(t *testing.T) {
	tests := []struct {
		p    packet
		want string
	}{
		{packet{Type: typeConnect, Namespace: "/", ID: -1}, `0`},
		{packet{Type: typeConnect, Namespace: "/", ID: -1, Data: json.RawMessage(`{"sid":"wZX3oN0bSVIhsaknAAAI"}`)}, `0{"sid":"wZX3oN0bSVIhsaknAAAI"}`},
		{packet{Type: typeConnect, Namespace: "/admin", ID: -1}, `0/admin,`},
		{packet{Type: typeConnect, Namespace: "/admin", ID: -1, Data: json.RawMessage(`{"sid":"oSO0OpakMV_3jnilAAAA"}`)}, `0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}`},
		{packet{Type: typeConnectError, Namespace: "/", ID: -1, Data: json.RawMessage(`{"message":"Not authorized"}`)}, `4{"message":"Not authorized"}`},
		{packet{Type: typeEvent, Namespace: "/", ID: -1, Data: json.RawMessage(`["foo"]`)}, `2["foo"]`},
		{packet{Type: typeEvent, Namespace: "/admin", ID: -1, Data: json.RawMessage(`["bar"]`)}, `2/admin,["bar"]`},
		{packet{Type: typeBinaryEvent, Namespace: "/", ID: -1, Attachments: 1, Data: json.RawMessage(`["baz",{"_placeholder":true,"num":0}]`)}, `51-["baz",{"_placeholder":true,"num":0}]`},
		{packet{Type: typeEvent, Namespace: "/", ID: 12, Data: json.RawMessage(`["foo"]`)}, `212["foo"]`},
		{packet{Type: typeAck, Namespace: "/", ID: 12, Data: json.RawMessage(`[]`)}, `312[]`},
		{packet{Type: typeAck, Namespace: "/admin", ID: 13, Data: json.RawMessage(`["bar"]`)}, `3/admin,13["bar"]`},
		{packet{Type: typeBinaryAck, Namespace: "/", ID: 15, Attachments: 1, Data: json.RawMessage(`["bar",{"_placeholder":true,"num":0}]`)}, `61-15["bar",{"_placeholder":true,"num":0}]`},
		{packet{Type: typeDisconnect, Namespace: "/", ID: -1}, `1`},
		{packet{Type: typeDisconnect, Namespace: "/admin", ID: -1}, `1/admin,`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := string(encodePacket(tt.p)); got != tt.want {
				t.Fatalf("encodePacket = %q, want %q", got, tt.want)
			}
			back, err := decodePacket([]byte(tt.want), 10)
			if err != nil || !reflect.DeepEqual(back, tt.p) {
				t.Fatalf("round trip of %q: %+v, %v", tt.want, back, err)
			}
		})
	}
}

func TestServerPacketAppenders(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"connect main", string(appendConnect(nil, "/", "abc")), `40{"sid":"abc"}`},
		{"connect nsp", string(appendConnect(nil, "/notifications", "abc")), `40/notifications,{"sid":"abc"}`},
		{"connect error", string(appendConnectError(nil, "/random", "Invalid namespace")), `44/random,{"message":"Invalid namespace"}`},
		{"connect error main", string(appendConnectError(nil, "/", "unauthorized")), `44{"message":"unauthorized"}`},
		{"disconnect main", string(appendDisconnect(nil, "/")), `41`},
		{"disconnect nsp", string(appendDisconnect(nil, "/notifications")), `41/notifications,`},
		{"event", string(appendEvent(nil, "/notifications", "unread", []byte(`{"count":1}`))), `42/notifications,["unread",{"count":1}]`},
		{"event main", string(appendEvent(nil, "/", "hey", []byte(`"Jude"`))), `42["hey","Jude"]`},
		{"ack", string(appendAck(nil, "/notifications", 7, []byte(`{"ok":true}`))), `43/notifications,7[{"ok":true}]`},
		{"ack main", string(appendAck(nil, "/", 0, []byte(`{"ok":true}`))), `430[{"ok":true}]`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestReconstructPlaceholders(t *testing.T) {
	atts := [][]byte{{1, 2}, {3, 4}}
	v, err := reconstruct(json.RawMessage(`["baz",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]`), atts)
	if err != nil {
		t.Fatal(err)
	}
	arr := v.([]any)
	if !bytes.Equal(arr[1].([]byte), atts[0]) || !bytes.Equal(arr[2].(map[string]any)["x"].([]byte), atts[1]) {
		t.Fatalf("placeholders not replaced: %#v", v)
	}
	for _, bad := range []string{
		`["a",{"_placeholder":true,"num":2}]`,
		`["a",{"_placeholder":true,"num":-1}]`,
		`["a",{"_placeholder":true,"num":"0"}]`,
		`["a",{"_placeholder":true}]`,
	} {
		if _, err := reconstruct(json.RawMessage(bad), atts); !errors.Is(err, ErrMalformed) {
			t.Errorf("reconstruct(%s) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{
		`0`, `0/admin,{"token":"123"}`, `2["foo"]`, `212["foo"]`, `3/admin,13["bar"]`,
		`51-["baz",{"_placeholder":true,"num":0}]`, `61-15["bar",{"_placeholder":true,"num":0}]`,
		`1/admin,`, `4{"message":"x"}`, `2/notifications,5["notification:mark-read",{"id":"01J0000000000000000000000A"}]`,
		`52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, `0/random`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := decodePacket(in, 10)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if p.Attachments < 0 || p.Attachments > 10 || p.ID < -1 || p.Namespace == "" {
			t.Fatalf("bad packet %+v", p)
		}
		// Re-encoding and decoding again must give the same packet.
		again, err := decodePacket(encodePacket(p), 10)
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", encodePacket(p), in, err)
		}
		if again.Type != p.Type || again.Namespace != p.Namespace || again.ID != p.ID || again.Attachments != p.Attachments || !bytes.Equal(again.Data, p.Data) {
			t.Fatalf("round trip: %+v → %q → %+v", p, encodePacket(p), again)
		}
		if p.Type == typeEvent || p.Type == typeBinaryEvent {
			_, _ = decodeEvent(p.Data, p.ID)
		}
		if p.Data != nil {
			_, _ = reconstruct(p.Data, [][]byte{{1}})
		}
		// Engine.IO framing of the same bytes, as a polling payload.
		_ = splitPayload(in, func(rec []byte) error {
			_, err := decodeEnginePacket(rec, true)
			return err
		})
	})
}
