package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func keyID(s string) string { return sha256Hex(s)[:8] }

func TestKeyringAuthenticate(t *testing.T) {
	const (
		plain     = "plain-key-0123456789"
		scoped    = "scoped-key-0123456789"
		hashed    = "hashed-key-0123456789"
		hashedSc  = "hashed-scoped-key-0123"
		adminKey  = "admin-key-0123456789"
		adminHash = "admin-hashed-key-0123"
	)
	kr, err := ParseKeyring([]string{
		plain,
		" " + scoped + "@acme ",
		"sha256:" + sha256Hex(hashed),
		"sha256:" + strings.ToUpper(sha256Hex(hashedSc)) + "@globex",
		"admin:" + adminKey,
		"admin:sha256:" + sha256Hex(adminHash),
		"", // blank entries (trailing commas) are skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 6 {
		t.Fatalf("Len() = %d, want 6", kr.Len())
	}
	tests := []struct {
		name      string
		presented string
		want      APIKey
		ok        bool
	}{
		{"plaintext", plain, APIKey{ID: keyID(plain)}, true},
		{"plaintext scoped", scoped, APIKey{ID: keyID(scoped), Tenant: "acme"}, true},
		{"hashed", hashed, APIKey{ID: keyID(hashed)}, true},
		{"hashed scoped", hashedSc, APIKey{ID: keyID(hashedSc), Tenant: "globex"}, true},
		{"admin plaintext", adminKey, APIKey{ID: keyID(adminKey), Admin: true}, true},
		{"admin hashed", adminHash, APIKey{ID: keyID(adminHash), Admin: true}, true},
		{"wrong key", "wrong-key-0123456789", APIKey{}, false},
		{"empty", "", APIKey{}, false},
		{"prefix of a key", plain[:len(plain)-1], APIKey{}, false},
		{"key with tenant suffix", scoped + "@acme", APIKey{}, false},
		{"the hash itself", "sha256:" + sha256Hex(hashed), APIKey{}, false},
		{"admin prefix presented", "admin:" + adminKey, APIKey{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := kr.Authenticate(tt.presented)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("Authenticate() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseKeyringErrors(t *testing.T) {
	const secretish = "SUPERSECRETVALUE"
	tests := []struct {
		name    string
		entry   string
		wantErr string
	}{
		{"short plaintext", "short-" + secretish[:5], "shorter than 16"},
		{"short admin plaintext", "admin:" + secretish[:8], "shorter than 16"},
		{"bad hex", "sha256:" + strings.Repeat("zz", 32), "not valid hex"},
		{"short hash", "sha256:" + sha256Hex(secretish)[:62], "64 hex"},
		{"long hash", "sha256:" + sha256Hex(secretish) + "00", "64 hex"},
		{"empty tenant", secretish + "-key@", "empty tenant"},
		{"bad tenant", secretish + "-key@ac\x01me", "tenant"},
		{"admin scoped", "admin:" + secretish + "@acme", "cannot be scoped"},
		{"whitespace in key", secretish + " " + secretish, "whitespace"},
		{"empty hash", "sha256:", "64 hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyring([]string{"valid-key-0123456789", tt.entry})
			if err == nil {
				t.Fatal("ParseKeyring accepted a bad entry")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, "entry 1") {
				t.Fatalf("error = %q, want it to contain %q and the index", msg, tt.wantErr)
			}
			if strings.Contains(msg, secretish[:5]) || strings.Contains(msg, "zz") || strings.Contains(msg, sha256Hex(secretish)[:16]) {
				t.Fatalf("error echoes the key: %q", msg)
			}
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		k := "dup-key-0123456789"
		_, err := ParseKeyring([]string{k, "sha256:" + sha256Hex(k) + "@acme"})
		if err == nil || !strings.Contains(err.Error(), "same key as entry 0") || strings.Contains(err.Error(), k) {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("empty list", func(t *testing.T) {
		kr, err := ParseKeyring(nil)
		if err != nil || kr.Len() != 0 {
			t.Fatalf("ParseKeyring(nil) = %v, %v", kr, err)
		}
		if _, ok := kr.Authenticate("anything-at-all-123"); ok {
			t.Fatal("empty keyring authenticated a key")
		}
	})
	t.Run("nil keyring", func(t *testing.T) {
		var kr *Keyring
		if _, ok := kr.Authenticate("anything-at-all-123"); ok || kr.Len() != 0 {
			t.Fatal("nil keyring must reject everything")
		}
	})
}

func TestKeyringStoresOnlyHashes(t *testing.T) {
	const key = "never-stored-0123456789"
	kr, err := ParseKeyring([]string{key})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range kr.entries {
		if strings.Contains(string(e.hash[:]), key) || strings.Contains(e.key.ID, key) {
			t.Fatal("plaintext key kept in memory")
		}
	}
}

func TestAPIKeyAllows(t *testing.T) {
	tests := []struct {
		name   string
		key    APIKey
		tenant string
		want   bool
	}{
		{"unscoped any tenant", APIKey{ID: "1"}, "acme", true},
		{"unscoped empty tenant", APIKey{ID: "1"}, "", true},
		{"scoped same", APIKey{ID: "1", Tenant: "acme"}, "acme", true},
		{"scoped other", APIKey{ID: "1", Tenant: "acme"}, "globex", false},
		{"scoped empty", APIKey{ID: "1", Tenant: "acme"}, "", false},
		{"scoped prefix", APIKey{ID: "1", Tenant: "acme"}, "acm", false},
		{"admin", APIKey{ID: "1", Admin: true}, "acme", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.Allows(tt.tenant); got != tt.want {
				t.Fatalf("Allows(%q) = %v, want %v", tt.tenant, got, tt.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		k := GenerateKey()
		body, ok := strings.CutPrefix(k, "hk_")
		if !ok {
			t.Fatalf("key %q lacks the hk_ prefix", k)
		}
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || len(raw) != 32 {
			t.Fatalf("key body is not 32 bytes of base64url: %v", err)
		}
		if seen[k] {
			t.Fatal("GenerateKey repeated a key")
		}
		seen[k] = true
	}
	// A generated key is a valid keyring entry, plain and scoped.
	k := GenerateKey()
	kr, err := ParseKeyring([]string{k + "@acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := kr.Authenticate(k); !ok || got.Tenant != "acme" || got.ID != keyID(k) {
		t.Fatalf("Authenticate(generated) = %+v, %v", got, ok)
	}
}

func TestKeyringConcurrent(t *testing.T) {
	keys := []string{GenerateKey(), GenerateKey()}
	kr, err := ParseKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				if _, ok := kr.Authenticate(keys[i%2]); !ok {
					t.Error("Authenticate failed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkKeyringAuthenticate(b *testing.B) {
	entries := make([]string, 16)
	for i := range entries {
		entries[i] = GenerateKey()
	}
	kr, err := ParseKeyring(entries)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		kr.Authenticate(entries[7])
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	v := newVerifier(b, Config{HMACSecret: testSecret})
	tok := hs(b, claims(nil))
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
