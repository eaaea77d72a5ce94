package socketio

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestPackToken(t *testing.T) {
	secret := []byte("token-test-secret-token-test-secret-0123")
	jwt := testkit.UserToken(t, secret, "acme", "u-000001", "admin", time.Hour)
	h, p, _ := strings.Cut(jwt, ".")
	p, sig, _ := strings.Cut(p, ".")
	tests := []struct {
		name   string
		token  string
		packed bool // kept decoded (shorter), not as is
	}{
		{"jwt", jwt, true},
		{"jwt of another user", testkit.UserToken(t, secret, "acme", "u-2", "", time.Minute), true},
		{"empty payload", h + ".." + sig, true},
		{"not a jwt", "opaque-token", false},
		{"two segments", h + "." + p, false},
		{"four segments", jwt + ".x", false},
		// The last character of a 43-character signature carries 2 unused
		// bits: a lenient decoder would give these back as canonical text.
		{"non-canonical signature", h + "." + p + "." + sig[:len(sig)-1] + "B", false},
		{"padding", h + "." + p + "." + sig + "=", false},
		{"standard alphabet", h + "." + p + "." + strings.ReplaceAll(sig, "_", "/") + "+", false},
		{"newline in payload", h + "." + p[:4] + "\n" + p[4:] + "." + sig, false},
	}
	var tab tokenHeaders
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tab.packToken(tc.token)
			if back := tab.unpackToken(got); back != tc.token {
				t.Fatalf("unpack(pack(%q)) = %q", tc.token, back)
			}
			if packed := len(got) < len(tc.token); packed != tc.packed {
				t.Errorf("packed %d bytes for a %d-byte token, want packed=%v", len(got), len(tc.token), tc.packed)
			}
		})
	}
	if tab.packToken("") != "" || tab.unpackToken("") != "" {
		t.Error("the empty token does not pack to \"\"")
	}
	// Tokens of one signer share its header segment.
	if n := len(tab.list); n != 1 {
		t.Errorf("%d header segments in the table, want 1", n)
	}
}

func TestPackTokenTableFull(t *testing.T) {
	var tab tokenHeaders
	tokens := make([]string, 0, maxTokenHeaders+2)
	for i := range maxTokenHeaders + 2 {
		tokens = append(tokens, testkit.Token(t, []byte("token-test-secret-token-test-secret-0123"), map[string]any{"sub": "u"}))
		// A distinct header segment per token.
		h := tokenSegment.EncodeToString([]byte(`{"alg":"HS256","kid":"` + strconv.Itoa(i) + `"}`))
		_, rest, _ := strings.Cut(tokens[i], ".")
		tokens[i] = h + "." + rest
	}
	for i, tok := range tokens {
		got := tab.packToken(tok)
		if back := tab.unpackToken(got); back != tok {
			t.Fatalf("token %d: unpack(pack) = %q, want %q", i, back, tok)
		}
		if packed := got[0] == tokenPacked; packed != (i < maxTokenHeaders) {
			t.Errorf("token %d packed=%v with %d headers in the table", i, packed, maxTokenHeaders)
		}
	}
}
