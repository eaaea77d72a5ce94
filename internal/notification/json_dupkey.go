package notification

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// DuplicateKey reports the first object in data (JSON, at any depth) that
// has the same name twice, and that name as it appears in data, quotes
// included. Names are compared after unescaping, as encoding/json decodes
// them ("a" and "\u0061" are the same name). encoding/json keeps the last
// of two equal names, another parser may keep the first: the client
// frames of every transport and the publish API reject such objects
// (RFC 8259 §4 says names SHOULD be unique; I-JSON, RFC 7493 §2.3, says
// MUST). Malformed JSON gets no verdict (the decoder rejects it).
//
// It scans data once and allocates nothing for objects of up to 32 names
// nested up to 16 deep; names are compared pairwise within an object, so
// callers bound the input's size first.
func DuplicateKey(data []byte) (name string, dup bool) {
	type span struct{ start, end int } // a name with its quotes
	type level struct {
		object   bool
		expect   bool // object: the next string is a name
		firstKey int  // object: index of its first name in keys
	}
	var keyBuf [32]span
	var stackBuf [16]level
	keys, stack := keyBuf[:0], stackBuf[:0]
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '"':
			start := i
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if i >= len(data) {
				return "", false // unterminated string
			}
			if len(stack) == 0 || !stack[len(stack)-1].object || !stack[len(stack)-1].expect {
				continue // a value
			}
			top := &stack[len(stack)-1]
			top.expect = false
			k := data[start : i+1]
			for _, prev := range keys[top.firstKey:] {
				if sameName(data[prev.start:prev.end], k) {
					return string(k), true
				}
			}
			keys = append(keys, span{start, i + 1})
		case '{', '[':
			stack = append(stack, level{object: c == '{', expect: c == '{', firstKey: len(keys)})
		case '}', ']':
			if len(stack) == 0 {
				return "", false
			}
			keys = keys[:stack[len(stack)-1].firstKey]
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expect = true
			}
		}
	}
	return "", false
}

// sameName compares two quoted JSON strings by their decoded value.
func sameName(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if bytes.IndexByte(a, '\\') < 0 && bytes.IndexByte(b, '\\') < 0 {
		return false
	}
	a, b = a[1:len(a)-1], b[1:len(b)-1]
	for len(a) > 0 && len(b) > 0 {
		ra, na := nameRune(a)
		rb, nb := nameRune(b)
		if ra != rb {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) == 0 && len(b) == 0
}

// nameRune decodes the first character of the inside of a JSON string as
// encoding/json does: escapes, surrogate pairs, and U+FFFD for a lone
// surrogate or an invalid UTF-8 byte.
func nameRune(s []byte) (rune, int) {
	if s[0] != '\\' {
		if s[0] < utf8.RuneSelf {
			return rune(s[0]), 1
		}
		return utf8.DecodeRune(s)
	}
	if len(s) < 2 {
		return utf8.RuneError, len(s)
	}
	switch s[1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r, ok := hex4(s[2:])
		if !ok {
			return utf8.RuneError, len(s)
		}
		if utf16.IsSurrogate(r) {
			if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
				if r2, ok := hex4(s[8:]); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						return d, 12
					}
				}
			}
			return utf8.RuneError, 6
		}
		return r, 6
	}
	return rune(s[1]), 2 // \" \\ \/
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
