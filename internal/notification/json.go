package notification

import "unicode/utf8"

// JSONDepth returns the nesting depth of arrays and objects in data (JSON
// that may be malformed), ignoring brackets inside strings. It stops at the
// first level deeper than limit and returns limit+1, so callers test
// `JSONDepth(data, limit) > limit` before decoding untrusted input. Every
// transport and the publish API use it to bound client and publisher JSON.
func JSONDepth(data []byte, limit int) int {
	depth, maxDepth, inStr, esc := 0, 0, false, false
	for _, c := range data {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
				if maxDepth > limit {
					return limit + 1
				}
			}
		case '}', ']':
			depth--
		}
	}
	return maxDepth
}

// AppendJSONString appends to dst the value of s, the inside of a JSON
// string that a scanner has checked, decoded as encoding/json decodes it:
// escapes, surrogate pairs, and U+FFFD for a lone surrogate or a byte of
// invalid UTF-8 (the publish API's decoder unquotes with it).
func AppendJSONString(dst, s []byte) []byte {
	for len(s) > 0 {
		r, n := nameRune(s)
		dst = utf8.AppendRune(dst, r)
		s = s[n:]
	}
	return dst
}
