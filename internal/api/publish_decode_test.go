package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/notification"
)

// oracleDecode is the publish decoder of before the fast path, kept as
// the reference the fast decoder is compared with: encoding/json, unknown
// fields refused, the first value only (Decoder.More, as before).
func oracleDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errBadRequest
	}
	return nil
}

// publishBodies are valid publish items: the fast decoder must take each
// one (else the fast path would not be the common path) and decode it as
// encoding/json does.
var publishBodies = []string{
	`{"tenant":"acme","to":{"users":["bench"]},"type":"bench.test","title":"Build 7 passed","body":"All 1,204 tests passed."}`,
	`{"to":{"users":["u1","u2","u3","u4","u5","u6","u7","u8","u9","u10"]},"type":"t","title":"x"}`,
	`{"tenant":"acme","to":{"tenant":true},"type":"x","title":"t","ephemeral":true}`,
	`{"tenant":"acme","to":{"role":"admin"},"type":"x","title":"t","ephemeral":false,"data":null}`,
	`{"tenant":"acme","to":{"topics":["a","b.c"]},"type":"x","ephemeral":true}`,
	`{"tenant":"acme","to":{"users":["u9"]},"type":"t","title":"x","data":{"title":"y"}}`,
	` { "tenant" : "acme" , "to" : { "users" : [ "u1" ] } , "type" : "t" , "title" : "x" ,
	  "data" : { "a" : [ 1 , -2.5e+3 , true , false , null , "s p\"a{c}e" , { } , [ ] ] } } `,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"caf\u00e9 \ud83d\ude00 \ud800 \udc00x \"q\" \\ \/ \b\f\n\r\t","body":"<b>&amp;</b> ☃ \u2028"}`,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","expires_at":"2030-01-02T03:04:05.123456789+02:00"}`,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","expires_at":null,"category":"billing.v2","collapse_key":"k-1"}`,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","fallback":{"after_s":300}}`,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","fallback":{"after_s":-0},"category":null,"collapse_key":null}`,
	`{"tenant":"acme","to":{"users":[],"tenant":null,"role":null,"topics":null},"type":"t","title":null,"body":null,"fallback":null}`,
	`{"tenant":"acme","to":null,"type":"t","title":"x","fallback":{}}`,
	`{"tenant":"acme","to":{"topics":[]},"type":"x","ephemeral":true}`,
	`{"tenant":"acme","to":{"users":["a","b","c"],"topics":["t"]},"type":"x"}`,
	`{"\u0074enant":"acme","to":{"us\u0065rs":["u1"]},"type":"t","title":"x"}`,
	`{"tenant":"acme","to":{"users":["u1"]},"type":"t","title":"x","data":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":1}}}}}}}}}}}}}}}}`,
	`{"data":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":1}}}}}}}}}}}}}}}}}`,
	`{}`,
}

// rejectedBodies are refused by encoding/json (or taken by it only with
// case-insensitive names): the fast decoder leaves every one of them to
// decodeFields, so parseItem's error is encoding/json's.
var rejectedBodies = []string{
	``, `null`, `[]`, `"x"`, `{`, `{"tenant":"acme"`, `{"tenant":"acme",}`, `{"tenant":"acme"}x`,
	`{"tenant":"acme","extra":1}`,
	`{"Tenant":"acme"}`,
	`{"TITLE":"x"}`,
	`{"title":1}`,
	`{"title":"x\u12"}`,
	"{\"title\":\"x\ty\"}",
	`{"title":"x\qy"}`,
	`{"to":{"users":"u1"}}`,
	`{"to":{"users":[1]}}`,
	`{"to":{"users":[null]}}`,
	`{"to":{"tenant":"true"}}`,
	`{"to":{"tenant":tru}}`,
	`{"to":{"group":"x"}}`,
	`{"to":[]}`,
	`{"ephemeral":1}`,
	`{"fallback":{"after_s":1.5}}`,
	`{"fallback":{"after_s":1e3}}`,
	`{"fallback":{"after_s":"1"}}`,
	`{"fallback":{"after_s":99999999999999999999}}`,
	`{"fallback":{"after_s":01}}`,
	`{"fallback":{"after":1}}`,
	`{"expires_at":"tomorrow"}`,
	`{"expires_at":"2030-01-02T03:04:05\u005a"}`,
	`{"expires_at":1}`,
	`{"data":[1]}`,
	`{"data":"x"}`,
	`{"data":{"a":01}}`,
	`{"data":{"a":1,}}`,
	`{"data":{"a":[1,]}}`,
	`{"data":{"a":-}}`,
	`{"data":{"a":1.}}`,
	`{"data":{"a":nul}}`,
	`{"data":{"a" 1}}`,
	`{"data":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":{"q":1}}}}}}}}}}}}}}}}}}`,
	`{"tenant":"acme"} {"tenant":"acme"}`,
	`{"tenant":"acme"}}`,
}

func TestFastDecodeItemTakesValidBodies(t *testing.T) {
	for _, body := range publishBodies {
		if _, ok := fastDecodeItem([]byte(body)); !ok {
			t.Errorf("fast decoder refused %s", body)
		}
		checkFastItem(t, []byte(body))
	}
}

func TestParseItemRejectsAsEncodingJSON(t *testing.T) {
	for _, body := range rejectedBodies {
		if _, ok := fastDecodeItem([]byte(body)); ok {
			t.Errorf("fast decoder took %s", body)
			continue
		}
		checkFastItem(t, []byte(body))
		var o publishItem
		want := oracleDecode([]byte(body), &o)
		_, got := parseItem([]byte(body))
		switch {
		case want == nil && got != nil:
			t.Errorf("%s: parseItem: %v, encoding/json took it", body, got)
		case want != nil && (got == nil || !strings.HasSuffix(got.Error(), want.Error()) && want != errBadRequest):
			t.Errorf("%s: parseItem: %v, want encoding/json's %v", body, got, want)
		}
	}
}

func TestFastDecodeItemValues(t *testing.T) {
	it, ok := fastDecodeItem([]byte(publishBodies[7]))
	if !ok {
		t.Fatal("refused")
	}
	if want := "café 😀 \ufffd \ufffdx \"q\" \\ / \b\f\n\r\t"; it.Title != want {
		t.Errorf("title %q, want %q", it.Title, want)
	}
	it, ok = fastDecodeItem([]byte(publishBodies[6]))
	if !ok {
		t.Fatal("refused")
	}
	if want := `{"a":[1,-2.5e+3,true,false,null,"s p\"a{c}e",{},[]]}`; string(it.Data) != want {
		t.Errorf("data %s, want %s", it.Data, want)
	}
	// Invalid UTF-8 (which readBody refuses before) decodes as encoding/json does.
	it, ok = fastDecodeItem([]byte("{\"title\":\"a\xffb\xe2\x82\"}"))
	if want := "a\ufffdb\ufffd\ufffd"; !ok || it.Title != want {
		t.Errorf("title %q (ok %v), want %q", it.Title, ok, want)
	}
}

func TestFastDecodeBatch(t *testing.T) {
	for _, body := range []string{
		`{"notifications":[{"tenant":"acme"},{"to":{"users":["u"]}} , 1,"x",null,[{}]]}`,
		`{"notifications":[` + publishBodies[0] + `,` + publishBodies[15] + `]}`,
	} {
		raws, ok := fastDecodeBatch([]byte(body))
		if !ok {
			t.Fatalf("refused %s", body)
		}
		checkFastBatch(t, []byte(body))
		if len(raws) < 2 {
			t.Errorf("%d items", len(raws))
		}
	}
	for _, body := range []string{
		``, `{}`, `{"notifications":null}`, `{"notifications":[]}`, `{"notifications":[1,]}`,
		`{"notifications":[1]`, `{"notifications":[1]}x`, `{"Notifications":[1]}`, `{"notifications":[1],"x":1}`,
	} {
		if _, ok := fastDecodeBatch([]byte(body)); ok {
			t.Errorf("took %s", body)
		}
	}
}

// checkFastItem fails t when the fast decoder takes body and
// encoding/json does not, or decodes it to other values.
func checkFastItem(t *testing.T, body []byte) {
	t.Helper()
	if _, dup := notification.DuplicateKey(body); dup {
		return // refused before either decoder runs
	}
	got, ok := fastDecodeItem(body)
	if !ok {
		return
	}
	var want publishItem
	if err := oracleDecode(body, &want); err != nil {
		t.Fatalf("fast decoder took %q, encoding/json: %v", body, err)
	}
	data, err := checkData(want.Data)
	if err != nil {
		t.Fatalf("fast decoder took the data of %q, checkData: %v", body, err)
	}
	if !got.dataChecked || !bytes.Equal(got.Data, data) || (got.Data == nil) != (data == nil) {
		t.Fatalf("%q: data %q (checked %v), want %q", body, got.Data, got.dataChecked, data)
	}
	got.Data, got.dataChecked, want.Data = nil, false, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded\n%#v\nwant\n%#v", body, got, want)
	}
}

// checkFastBatch is checkFastItem for a batch body.
func checkFastBatch(t *testing.T, body []byte) {
	t.Helper()
	if _, dup := notification.DuplicateKey(body); dup {
		return
	}
	got, ok := fastDecodeBatch(body)
	if !ok {
		return
	}
	var want batchBody
	if err := oracleDecode(body, &want); err != nil {
		t.Fatalf("fast decoder took batch %q, encoding/json: %v", body, err)
	}
	if len(got) != len(want.Notifications) {
		t.Fatalf("%q: %d items, want %d", body, len(got), len(want.Notifications))
	}
	for i := range got {
		if !bytes.Equal(got[i], want.Notifications[i]) {
			t.Fatalf("%q: item %d is %q, want %q", body, i, got[i], want.Notifications[i])
		}
	}
}

// FuzzPublishDecode compares the fast publish decoder with encoding/json
// (oracleDecode): whatever it takes, encoding/json takes too, with the
// same values; what it refuses goes to encoding/json in production.
func FuzzPublishDecode(f *testing.F) {
	for _, b := range publishBodies {
		f.Add([]byte(b))
		f.Add([]byte(`{"notifications":[` + b + `]}`))
	}
	for _, b := range rejectedBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastItem(t, body)
		checkFastBatch(t, body)
		if raws, ok := fastDecodeBatch(body); ok {
			for _, raw := range raws {
				checkFastItem(t, raw)
			}
		}
	})
}

func TestFastDecodeItemAllocations(t *testing.T) {
	body := []byte(publishBodies[0])
	// The string of the body and the audience (with its short user list).
	if a := testing.AllocsPerRun(100, func() { fastDecodeItem(body) }); a != 2 {
		t.Errorf("%v allocations, want 2", a)
	}
}

// BenchmarkDecodePublish compares the two decoders on the common body.
func BenchmarkDecodePublish(b *testing.B) {
	body := []byte(publishBodies[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fastDecodeItem(body); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var it publishItem
			if err := oracleDecode(body, &it); err != nil {
				b.Fatal(err)
			}
		}
	})
}
