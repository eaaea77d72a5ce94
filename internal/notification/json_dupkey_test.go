package notification

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDuplicateKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string // the duplicate name, "" for none
	}{
		{"none", `{"type":"auth","token":"x"}`, ""},
		{"top level", `{"type":"auth","type":"list"}`, `"type"`},
		{"nested", `{"a":{"b":1,"c":{"d":1,"d":2}}}`, `"d"`},
		{"in an array", `[{"x":1},{"x":1,"y":2,"x":3}]`, `"x"`},
		{"same name in sibling objects", `[{"x":1},{"x":2}]`, ""},
		{"same name at two depths", `{"x":{"x":1}}`, ""},
		{"after a nested object closes", `{"a":{"b":1},"b":2,"a":3}`, `"a"`},
		{"escaped", `{"a":1,"\u0061":2}`, `"\u0061"`},
		{"escaped quote", `{"a\"b":1,"a\u0022b":2}`, `"a\u0022b"`},
		{"surrogate pair", `{"😀":1,"\ud83d\ude00":2}`, `"\ud83d\ude00"`},
		{"lone surrogates decode alike", `{"\ud800":1,"\udfff":2}`, `"\udfff"`},
		{"string values are not names", `{"a":"a","b":"a"}`, ""},
		{"value with a colon and comma", `{"a":"x,\"a\":1","b":2}`, ""},
		{"case differs", `{"type":1,"Type":2}`, ""},
		{"many names (past the stack buffer)", `{` + manyKeys(40) + `,"k7":1}`, `"k7"`},
		{"malformed", `{"a":1,"a`, ""},
		{"not an object", `"a"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dup := DuplicateKey([]byte(tc.in))
			if dup != (tc.want != "") || got != tc.want {
				t.Fatalf("DuplicateKey(%s) = %q %v, want %q", tc.in, got, dup, tc.want)
			}
		})
	}
}

// manyKeys is n distinct members "k0":0 … "k<n-1>":0.
func manyKeys(n int) string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf(`"k%d":0`, i)
	}
	return strings.Join(m, ",")
}

// hasDuplicate is the oracle: encoding/json's token stream, with the
// decoded names of each object in a map.
func hasDuplicate(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type obj struct {
		names  map[string]bool
		expect bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return false
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.names != nil {
					top.expect = true
				}
				stack = append(stack, &obj{names: map[string]bool{}, expect: true})
				continue
			case '[':
				if top != nil && top.names != nil {
					top.expect = true
				}
				stack = append(stack, &obj{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.names != nil && top.expect {
				if top.names[v] {
					return true
				}
				top.names[v] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.names != nil {
			top.expect = true
		}
	}
}

func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `[{"x":{"y":[1,{"y":2,"y":3}]}}]`,
		`{"\ud800":1,"\udbff":2}`, `{"a\\":1,"a\\\\":2}`, `{"":1,"":2}`, `{"k":"\"k\":1","k2":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		name, dup := DuplicateKey(data) // never panics, whatever the input
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		if want := hasDuplicate(data); dup != want {
			t.Fatalf("DuplicateKey(%q) = %q %v, encoding/json says %v", data, name, dup, want)
		}
	})
}

func BenchmarkDuplicateKey(b *testing.B) {
	data := []byte(`{"tenant":"acme","to":{"users":["alice","bob"]},"type":"demo.hello","title":"Hello",` +
		`"body":"It works","data":{"order":{"id":"o-1","items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}}}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, dup := DuplicateKey(data); dup {
			b.Fatal("dup")
		}
	}
}
