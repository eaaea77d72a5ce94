package notification

import (
	"strings"
	"testing"
)

// TestValidate pins the rule set: each row is one value checked by one rule.
func TestValidate(t *testing.T) {
	rules := map[string]func(string) bool{
		"ident": ValidIdent,
		"type":  ValidType,
		"title": ValidTitle,
		"body":  ValidBody,
		"id":    ValidID,
	}
	for _, tc := range []struct {
		rule, name, in string
		want           bool
	}{
		{"ident", "plain", "alice", true},
		{"ident", "one byte", "a", true},
		{"ident", "punctuation and space", "org-1/team a@example.com", true},
		{"ident", "unicode", "zoë-東京", true},
		{"ident", "max length", strings.Repeat("a", MaxIdentLen), true},
		{"ident", "max length multibyte", strings.Repeat("é", MaxIdentLen/2), true},
		{"ident", "empty", "", false},
		{"ident", "too long", strings.Repeat("a", MaxIdentLen+1), false},
		{"ident", "too long multibyte", strings.Repeat("é", MaxIdentLen/2) + "a", false},
		{"ident", "the store's old limit", strings.Repeat("a", 256), false},
		{"ident", "NUL", "a\x00b", false},
		{"ident", "tab", "a\tb", false},
		{"ident", "newline", "a\nb", false},
		{"ident", "unit separator", "a\x1fb", false},
		{"ident", "DEL", "a\x7fb", false},
		{"ident", "C1 NEL", "a\u0085b", false},
		{"ident", "C1 CSI", "a\u009bb", false},
		{"ident", "invalid UTF-8", "a\xffb", false},
		{"ident", "truncated UTF-8", "a\xc3", false},

		{"type", "plain", "invoice", true},
		{"type", "every allowed character", "Az09._-:/", true},
		{"type", "max length", strings.Repeat("t", MaxTypeLen), true},
		{"type", "empty", "", false},
		{"type", "too long", strings.Repeat("t", MaxTypeLen+1), false},
		{"type", "space", "a b", false},
		{"type", "control", "a\nb", false},
		{"type", "NUL", "a\x00", false},
		{"type", "non-ASCII", "café", false},
		{"type", "quote", `a"b`, false},
		{"type", "angle bracket", "<script>", false},

		{"title", "plain", "Your export is ready", true},
		{"title", "newline", "line 1\nline 2", true},
		{"title", "max length", strings.Repeat("x", MaxTitleLen), true},
		{"title", "empty", "", false},
		{"title", "too long", strings.Repeat("x", MaxTitleLen+1), false},
		{"title", "invalid UTF-8", "a\xff", false},

		{"body", "plain", "The export has finished.", true},
		{"body", "empty", "", true},
		{"body", "max length", strings.Repeat("x", MaxBodyLen), true},
		{"body", "too long", strings.Repeat("x", MaxBodyLen+1), false},
		{"body", "invalid UTF-8", "a\xff", false},

		{"id", "ulid", "01M8D4RNA158PW21GV7ZNT0BFT", true},
		{"id", "lower case is not what we issue", "01m8d4rna158pw21gv7znt0bft", false},
		{"id", "short", "01M8D4RNA158PW21GV7ZNT0BF", false},
		{"id", "long", "01M8D4RNA158PW21GV7ZNT0BFTX", false},
		{"id", "I is not Crockford base32", "01M8D4RNA158PW21GV7ZNT0BFI", false},
		{"id", "path", "../../../../../../etc/passwd", false},
		{"id", "empty", "", false},
	} {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			if got := rules[tc.rule](tc.in); got != tc.want {
				t.Fatalf("%s(%q) = %v, want %v", tc.rule, tc.in, got, tc.want)
			}
		})
	}
}
