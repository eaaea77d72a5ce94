package ws

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/session"
)

const validID = "01M8D4RNA158PW21GV7ZNT0BFT"

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"auth", `{"type":"auth","token":"t"}`, true},
		{"auth with since", `{"type":"auth","token":"t","since":"3.4"}`, true},
		{"auth empty since", `{"type":"auth","token":"t","since":""}`, true},
		{"auth bad since", `{"type":"auth","token":"t","since":"x"}`, false},
		{"auth no token", `{"type":"auth"}`, false},
		{"auth token too long", `{"type":"auth","token":"` + strings.Repeat("a", session.MaxTokenLen+1) + `"}`, false},
		{"mark read id", `{"type":"notification:mark-read","id":"` + validID + `"}`, true},
		{"mark read ids", `{"type":"notification:mark-read","ids":["` + validID + `"]}`, true},
		{"mark read none", `{"type":"notification:mark-read"}`, false},
		{"mark read bad id", `{"type":"notification:mark-read","id":"x"}`, false},
		{"mark read id number", `{"type":"notification:mark-read","id":1}`, false},
		{"mark all", `{"type":"notification:mark-all-read","ref":"a"}`, true},
		{"mark all with id", `{"type":"notification:mark-all-read","id":"` + validID + `"}`, false},
		{"delete", `{"type":"notification:delete","id":"` + validID + `","ref":12}`, true},
		{"delete ids", `{"type":"notification:delete","ids":["` + validID + `"]}`, false},
		{"list", `{"type":"notification:list","before":"` + validID + `","limit":20,"unread":true}`, true},
		{"list bad before", `{"type":"notification:list","before":"zz"}`, false},
		{"ping", `{"type":"ping"}`, true},
		{"unread count", `{"type":"notification:unread-count","ref":1}`, true},
		{"unread count with id", `{"type":"notification:unread-count","id":"` + validID + `"}`, false},
		{"ref object", `{"type":"ping","ref":{}}`, false},
		{"ref array", `{"type":"ping","ref":[1]}`, false},
		{"ref bool", `{"type":"ping","ref":true}`, false},
		{"ref too long", `{"type":"ping","ref":"` + strings.Repeat("a", 70) + `"}`, false},
		{"unknown field", `{"type":"ping","x":1}`, false},
		{"unknown type", `{"type":"nope"}`, false},
		{"no type", `{}`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"deep", `{"type":"ping","ref":` + strings.Repeat("[", 10) + strings.Repeat("]", 10) + `}`, false},
		{"trailing", `{"type":"ping"}x`, false},
		{"bad utf8", "{\"type\":\"ping\",\"ref\":\"\xff\"}", false},
		// Duplicate names are refused (issue 18): which one counts would be
		// up to the parser.
		{"duplicate type", `{"type":"nope","type":"ping"}`, false},
		{"duplicate ref", `{"type":"ping","ref":"a","ref":"b"}`, false},
		{"duplicate escaped", `{"type":"ping","type":"ping"}`, false},
		{"duplicate id", `{"type":"notification:mark-read","id":"` + validID + `","id":"` + validID + `"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMessage([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, session.ErrInvalid) {
				t.Fatalf("err %v is not errInvalid", err)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{"type":"auth","token":"x","since":"1.2"}`,
		`{"type":"notification:mark-read","ids":["` + validID + `"]}`, `{"type":"notification:list","limit":5}`, `[`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if !errors.Is(err, session.ErrInvalid) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		switch m.Name {
		case session.NameAuth:
			if m.Token == "" {
				t.Fatal("auth without token accepted")
			}
		case session.NameMarkRead:
			if len(m.IDs) == 0 || len(m.IDs) > session.MaxIDs {
				t.Fatal("bad id count accepted")
			}
		case session.NameDelete, session.NameMarkAllRead, session.NameList, session.NamePing, session.NameUnreadCount:
		default:
			t.Fatalf("unknown type %v accepted", m.Name)
		}
	})
}
