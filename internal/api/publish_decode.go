package api

import (
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/notification"
)

// The reflection-free publish decoder. It decodes the bodies a publisher
// sends every day (publishItem's fields spelt exactly, valid JSON) without
// encoding/json: one string conversion per item, whose substrings are the
// item's strings when they hold no escape, and one compacted copy of data.
//
// It is a fast path only: whatever it does not take on exactly as
// encoding/json would (any error, a name matched only case-insensitively
// or unknown, a number that is no plain integer, data nested beyond
// maxDataDepth, trailing bytes after the value...) makes it report false,
// and the caller decodes the same bytes with decodeFields, which gives the
// verdict and the error message of before. So it accepts nothing
// encoding/json would refuse, and decodes what it accepts to the same
// values (FuzzPublishDecode checks both against encoding/json).

// jsonCursor reads one JSON value: b and s hold the same bytes (s is the
// one string conversion whose substrings become the decoded strings).
type jsonCursor struct {
	b []byte
	s string
	i int
}

// fastDecodeItem decodes one publish item the way decodeFields does, and
// reports false when it cannot (see above); raw's names are checked.
func fastDecodeItem(raw []byte) (publishItem, bool) {
	var it publishItem
	c := jsonCursor{b: raw, s: string(raw)}
	ok := c.object(func(name []byte) bool { return c.itemField(&it, name) })
	if !ok || !c.end() {
		return publishItem{}, false
	}
	it.dataChecked = true // absent, null or compacted
	return it, true
}

// itemField decodes the value of the item's field name.
func (c *jsonCursor) itemField(it *publishItem, name []byte) bool {
	switch string(name) {
	case "tenant":
		return c.stringInto(&it.Tenant)
	case "to":
		return c.audience(&it.To)
	case "type":
		return c.stringInto(&it.Type)
	case "title":
		return c.stringInto(&it.Title)
	case "body":
		return c.stringInto(&it.Body)
	case "data":
		return c.data(it)
	case "expires_at":
		return c.timePtr(&it.ExpiresAt)
	case "ephemeral":
		return c.boolPtr(&it.Ephemeral)
	case "category":
		return c.stringPtr(&it.Category)
	case "collapse_key":
		return c.stringPtr(&it.CollapseKey)
	case "fallback":
		return c.fallback(&it.Fallback)
	}
	return false // unknown, or only a case-insensitive match
}

func (c *jsonCursor) audience(to **audienceJSON) bool {
	if c.null() {
		*to = nil
		return true
	}
	// One allocation for the audience and a short list of users.
	box := new(struct {
		a     audienceJSON
		users [2]string
	})
	a := &box.a
	*to = a
	return c.object(func(name []byte) bool {
		switch string(name) {
		case "users":
			return c.stringSlice(&a.Users, box.users[:])
		case "tenant":
			return c.boolPtr(&a.Tenant)
		case "role":
			return c.stringPtr(&a.Role)
		case "topics":
			return c.stringSlice(&a.Topics, nil)
		}
		return false
	})
}

func (c *jsonCursor) fallback(f **fallbackJSON) bool {
	if c.null() {
		*f = nil
		return true
	}
	fb := new(fallbackJSON)
	*f = fb
	return c.object(func(name []byte) bool {
		return string(name) == "after_s" && c.int64Ptr(&fb.AfterS)
	})
}

// data keeps a data object as a compacted copy (checkData's result, so
// that toDraft need not compact it again); null is no data.
func (c *jsonCursor) data(it *publishItem) bool {
	if c.null() {
		it.Data = nil
		return true
	}
	if c.i >= len(c.b) || c.b[c.i] != '{' {
		return false // checkData's error, by way of decodeFields
	}
	start := c.i
	n := 0 // bytes of whitespace inside the object
	if !c.skipValue(maxDataDepth, &n) {
		return false
	}
	it.Data = compactCopy(c.b[start:c.i], n)
	return true
}

// compactCopy copies a valid JSON value without the ws bytes of
// whitespace outside its strings (json.Compact's result).
func compactCopy(v []byte, ws int) []byte {
	out := make([]byte, 0, len(v)-ws)
	if ws == 0 {
		return append(out, v...)
	}
	inStr := false
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch {
		case inStr:
			if ch == '\\' {
				out = append(out, ch, v[i+1])
				i++
				continue
			}
			inStr = ch != '"'
		case ch == '"':
			inStr = true
		case isSpace(ch):
			continue
		}
		out = append(out, ch)
	}
	return out
}

// fastDecodeBatch splits a batch body {"notifications":[…]} into its
// items (sub-slices of body), as decodeFields into batchBody would; false
// when it cannot, as fastDecodeItem. An empty or null list is left to
// decodeFields too (it is refused either way).
func fastDecodeBatch(body []byte) ([][]byte, bool) {
	c := jsonCursor{b: body}
	var items [][]byte
	ok := c.object(func(name []byte) bool {
		if string(name) != "notifications" || items != nil {
			return false
		}
		items = c.rawList()
		return items != nil
	})
	if !ok || !c.end() || items == nil {
		return nil, false
	}
	return items, true
}

// rawList reads a non-empty array and returns its elements, or nil.
func (c *jsonCursor) rawList() [][]byte {
	if !c.consume('[') {
		return nil
	}
	items := make([][]byte, 0, 8)
	for {
		c.ws()
		start, n := c.i, 0
		if !c.skipValue(maxDataDepth+2, &n) {
			return nil
		}
		items = append(items, c.b[start:c.i])
		c.ws()
		if c.consume(']') {
			return items
		}
		if !c.consume(',') {
			return nil
		}
	}
}

// end reports whether only whitespace is left.
func (c *jsonCursor) end() bool {
	c.ws()
	return c.i == len(c.b)
}

func isSpace(ch byte) bool { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' }

func (c *jsonCursor) ws() {
	for c.i < len(c.b) && isSpace(c.b[c.i]) {
		c.i++
	}
}

// consume skips ch (after whitespace) if it comes next.
func (c *jsonCursor) consume(ch byte) bool {
	c.ws()
	if c.i < len(c.b) && c.b[c.i] == ch {
		c.i++
		return true
	}
	return false
}

// literal skips the literal lit if it comes next.
func (c *jsonCursor) literal(lit string) bool {
	if len(c.b)-c.i >= len(lit) && string(c.b[c.i:c.i+len(lit)]) == lit {
		c.i += len(lit)
		return true
	}
	return false
}

func (c *jsonCursor) null() bool { c.ws(); return c.literal("null") }

// object reads an object, calling field for each name with the cursor
// before the value; field reads the value or reports false.
func (c *jsonCursor) object(field func(name []byte) bool) bool {
	if !c.consume('{') {
		return false
	}
	if c.consume('}') {
		return true
	}
	for {
		c.ws()
		name, ok := c.name()
		if !ok || !c.consume(':') {
			return false
		}
		c.ws()
		if !field(name) {
			return false
		}
		if c.consume('}') {
			return true
		}
		if !c.consume(',') {
			return false
		}
	}
}

// name reads an object's name, unescaped. It is compared with the
// fields' names only (switch string(name) does not allocate).
func (c *jsonCursor) name() ([]byte, bool) {
	start, esc, ok := c.scanString()
	if !ok {
		return nil, false
	}
	if !esc {
		return c.b[start+1 : c.i-1], true
	}
	return unquote(c.b[start:c.i]), true
}

// str reads a string. Without escapes (and with valid UTF-8) it is a
// substring of c.s; else it is unquoted as encoding/json does.
func (c *jsonCursor) str() (string, bool) {
	start, esc, ok := c.scanString()
	if !ok {
		return "", false
	}
	if !esc {
		return c.s[start+1 : c.i-1], true
	}
	return string(unquote(c.b[start:c.i])), true
}

// scanString skips a string at c.i, checking it as encoding/json's
// scanner does. esc reports an escape or bytes that are not valid UTF-8
// (the string must then be unquoted).
func (c *jsonCursor) scanString() (start int, esc, ok bool) {
	start = c.i
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return start, false, false
	}
	high := false
	for c.i++; c.i < len(c.b); c.i++ {
		switch ch := c.b[c.i]; {
		case ch == '"':
			c.i++
			if high && !esc && !utf8.Valid(c.b[start:c.i]) {
				esc = true
			}
			return start, esc, true
		case ch == '\\':
			esc = true
			if !c.escape() {
				return start, esc, false
			}
		case ch < 0x20:
			return start, esc, false
		case ch >= utf8.RuneSelf:
			high = true
		}
	}
	return start, esc, false
}

// escape checks the escape at c.i and leaves c.i on its last byte.
func (c *jsonCursor) escape() bool {
	if c.i+1 >= len(c.b) {
		return false
	}
	c.i++
	switch c.b[c.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	case 'u':
		if c.i+4 >= len(c.b) {
			return false
		}
		for _, h := range c.b[c.i+1 : c.i+5] {
			if !isHex(h) {
				return false
			}
		}
		c.i += 4
		return true
	}
	return false
}

func (c *jsonCursor) stringInto(dst *string) bool {
	if c.null() {
		return true // encoding/json leaves a string as it is for null
	}
	s, ok := c.str()
	*dst = s
	return ok
}

func (c *jsonCursor) stringPtr(dst **string) bool {
	if c.null() {
		*dst = nil
		return true
	}
	s, ok := c.str()
	*dst = &s
	return ok
}

func (c *jsonCursor) boolPtr(dst **bool) bool {
	var v bool
	switch {
	case c.null():
		*dst = nil
		return true
	case c.literal("true"):
		v = true
	case c.literal("false"):
	default:
		return false
	}
	*dst = &v
	return true
}

// stringSlice reads null (nil) or an array of strings (non-nil, even
// empty, as encoding/json decodes []), into spare when it fits.
func (c *jsonCursor) stringSlice(dst *[]string, spare []string) bool {
	if c.null() {
		*dst = nil
		return true
	}
	if !c.consume('[') {
		return false
	}
	var buf [8]string
	list := buf[:0]
	if !c.consume(']') {
		for {
			c.ws()
			s, ok := c.str()
			if !ok {
				return false
			}
			list = append(list, s)
			if c.consume(']') {
				break
			}
			if !c.consume(',') {
				return false
			}
		}
	}
	if len(list) > 0 && len(list) <= len(spare) {
		*dst = spare[:copy(spare, list):len(list)]
		return true
	}
	*dst = append(make([]string, 0, len(list)), list...) // [] is not nil
	return true
}

// int64Ptr reads null or a plain integer (what strconv.ParseInt takes
// of a JSON number: no fraction, no exponent, no overflow).
func (c *jsonCursor) int64Ptr(dst **int64) bool {
	if c.null() {
		*dst = nil
		return true
	}
	neg := c.i < len(c.b) && c.b[c.i] == '-'
	if neg {
		c.i++
	}
	start := c.i
	var n int64
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		n = n*10 + int64(c.b[c.i]-'0')
		c.i++
	}
	digits := c.i - start
	if digits == 0 || digits > 18 || (digits > 1 && c.b[start] == '0') {
		return false
	}
	if c.i < len(c.b) && (c.b[c.i] == '.' || c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		return false
	}
	if neg {
		n = -n
	}
	*dst = &n
	return true
}

// timePtr reads null or a string that time.Time.UnmarshalJSON takes (it
// parses the quoted bytes as they are, escapes included).
func (c *jsonCursor) timePtr(dst **time.Time) bool {
	if c.null() {
		*dst = nil
		return true
	}
	start, _, ok := c.scanString()
	if !ok {
		return false
	}
	t := new(time.Time)
	if t.UnmarshalJSON(c.b[start:c.i]) != nil {
		return false
	}
	*dst = t
	return true
}

// skipValue checks one JSON value of at most depth levels of nesting,
// adding to ws the whitespace bytes inside it.
func (c *jsonCursor) skipValue(depth int, ws *int) bool {
	if c.i >= len(c.b) {
		return false
	}
	switch ch := c.b[c.i]; {
	case ch == '{' || ch == '[':
		if depth == 0 {
			return false
		}
		return c.skipComposite(depth-1, ws)
	case ch == '"':
		_, _, ok := c.scanString()
		return ok
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.skipNumber()
	}
	return false
}

// skipComposite skips an object or array, counting its whitespace.
func (c *jsonCursor) skipComposite(depth int, ws *int) bool {
	closer := byte(']')
	object := c.b[c.i] == '{'
	if object {
		closer = '}'
	}
	c.i++
	c.countWS(ws)
	if c.i < len(c.b) && c.b[c.i] == closer {
		c.i++
		return true
	}
	for {
		if object {
			if _, _, ok := c.scanString(); !ok {
				return false
			}
			c.countWS(ws)
			if c.i >= len(c.b) || c.b[c.i] != ':' {
				return false
			}
			c.i++
			c.countWS(ws)
		}
		if !c.skipValue(depth, ws) {
			return false
		}
		c.countWS(ws)
		if c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case closer:
			c.i++
			return true
		case ',':
			c.i++
			c.countWS(ws)
		default:
			return false
		}
	}
}

func (c *jsonCursor) countWS(ws *int) {
	start := c.i
	c.ws()
	*ws += c.i - start
}

// skipNumber skips a number of JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *jsonCursor) skipNumber() bool {
	if c.b[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.b) && c.b[c.i] == '0':
		c.i++
	case c.digits() == 0:
		return false
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return false
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return false
		}
	}
	return true
}

func (c *jsonCursor) digits() int {
	start := c.i
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
	}
	return c.i - start
}

// unquote is encoding/json's unquoteBytes for a string its scanner has
// accepted: escapes decoded, a surrogate pair joined, a lone surrogate
// and each byte of invalid UTF-8 replaced by U+FFFD.
func unquote(q []byte) []byte {
	return notification.AppendJSONString(make([]byte, 0, len(q)), q[1:len(q)-1])
}

func isHex(ch byte) bool {
	return '0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F'
}
