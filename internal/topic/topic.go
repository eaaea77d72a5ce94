// Package topic holds the vocabulary of topics: per-tenant names a client
// subscribes to for live events, and the patterns (from a JWT claim) that
// say which names a client may subscribe to. It has no state; every
// function is safe for concurrent use.
package topic

import "strings"

// Limits of names and patterns.
const (
	// MaxNameLen bounds a topic name, in bytes.
	MaxNameLen = 128
	// MaxPatterns bounds the patterns taken from one token's claim; the
	// rest are ignored (a token cannot make every subscribe scan a huge list).
	MaxPatterns = 256
)

// Valid reports whether s is a topic name: 1 to MaxNameLen bytes of ASCII
// letters, digits and . _ : - (the regular expression [A-Za-z0-9._:-]{1,128}).
func Valid(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
}

// ValidPattern reports whether p is a topic name, or a prefix of one
// followed by a final "*" ("project.*", or "*" alone for every topic).
func ValidPattern(p string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return prefix == "" || len(p) <= MaxNameLen && Valid(prefix)
	}
	return Valid(p)
}

// Patterns keeps the valid patterns of a claim's values (at most
// MaxPatterns); invalid ones are dropped, so a malformed entry grants
// nothing.
func Patterns(values []string) []string {
	var out []string
	for _, v := range values {
		if len(out) == MaxPatterns {
			break
		}
		if ValidPattern(v) {
			out = append(out, v)
		}
	}
	return out
}

// Allowed reports whether a pattern in patterns admits the topic name: an
// exact name, or a prefix pattern ("project.*" admits "project.42" and
// "project." but not "project").
func Allowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// Split parses a comma-separated list of names (an SSE ?topics= value),
// trimming spaces. Empty items are kept as "" so that Valid refuses them.
func Split(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
