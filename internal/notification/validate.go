package notification

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The one rule set for the values of a notification. The publish API checks
// a request with it (to answer 400 with a reason) and the store checks every
// draft and recipient with it again (so that no caller can store what the
// API would refuse); neither has rules of its own for these values.
//
// Identifiers (tenant, user, role) follow the stricter of the two rules the
// API and the store used to apply: at most MaxIdentLen (128) bytes, not 256,
// and no control characters at all (unicode.IsControl: C0, DEL and C1),
// where the store allowed any. That is exactly what internal/auth accepts in
// a token's sub, tenant and role claims and in an API key's tenant, so every
// identity a token can carry can be published to, and nothing else can be
// stored. Control characters would forge lines in logs and headers, and
// PostgreSQL cannot store NUL.

// Field limits, in bytes.
const (
	// MaxIdentLen bounds a tenant, user or role identifier.
	MaxIdentLen = 128
	// MaxTypeLen bounds a notification type.
	MaxTypeLen = 128
	// MaxTitleLen bounds a notification title.
	MaxTitleLen = 512
	// MaxBodyLen bounds a notification body.
	MaxBodyLen = 8 << 10
	// MaxCategoryLen bounds a category.
	MaxCategoryLen = 64
	// MaxCollapseKeyLen bounds a collapse key.
	MaxCollapseKeyLen = 128
)

// ValidCategory reports whether s is a valid category: 1 to MaxCategoryLen
// bytes of [a-z0-9._-].
func ValidCategory(s string) bool {
	if s == "" || len(s) > MaxCategoryLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidCollapseKey reports whether s is a valid collapse key: non-empty, at
// most MaxCollapseKeyLen bytes of valid UTF-8 without control characters
// (the rule of identifiers, with its own length).
func ValidCollapseKey(s string) bool {
	return s != "" && len(s) <= MaxCollapseKeyLen && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// ValidIdent reports whether s is a valid tenant, user or role identifier:
// non-empty, at most MaxIdentLen bytes of valid UTF-8, without control
// characters.
func ValidIdent(s string) bool {
	return s != "" && len(s) <= MaxIdentLen && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// ValidType reports whether s is a valid notification type: non-empty, at
// most MaxTypeLen bytes of ASCII letters, digits and . _ - : / (so that
// clients can match and route on it safely).
func ValidType(s string) bool {
	if s == "" || len(s) > MaxTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// ValidTitle reports whether s is a valid title: non-empty, at most
// MaxTitleLen bytes of valid UTF-8.
func ValidTitle(s string) bool {
	return s != "" && len(s) <= MaxTitleLen && utf8.ValidString(s)
}

// ValidBody reports whether s is a valid body: at most MaxBodyLen bytes of
// valid UTF-8 (it may be empty).
func ValidBody(s string) bool {
	return len(s) <= MaxBodyLen && utf8.ValidString(s)
}

// ValidID reports whether s looks like a notification id (a ULID: 26 characters
// of Crockford base32). It lets callers reject garbage before touching the store.
func ValidID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U':
		default:
			return false
		}
	}
	return true
}

// MaxMuted bounds the entries of each list of a user's preferences.
const MaxMuted = 32

// ValidatePreferences checks a user's preferences: at most MaxMuted muted
// categories (each ValidCategory) and types (each ValidType), without
// repeats. "*" is no category nor type: muting everything is refused (a
// user who wants nothing should not connect).
func ValidatePreferences(p Preferences) error {
	check := func(what string, list []string, valid func(string) bool) error {
		if len(list) > MaxMuted {
			return fmt.Errorf("%s: more than %d entries", what, MaxMuted)
		}
		for i, s := range list {
			switch {
			case s == "*":
				return fmt.Errorf("%s: %q would mute everything, which is not allowed", what, s)
			case !valid(s):
				return fmt.Errorf("%s: %q is not a valid name", what, s)
			case slices.Contains(list[:i], s):
				return fmt.Errorf("%s: %q is listed twice", what, s)
			}
		}
		return nil
	}
	if err := check("muted_categories", p.MutedCategories, ValidCategory); err != nil {
		return err
	}
	return check("muted_types", p.MutedTypes, ValidType)
}
