package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// API key entry syntax (HERALD_API_KEYS, one entry per comma-separated item):
//
//	<key>                    plaintext key, any tenant
//	<key>@<tenant>           plaintext key scoped to one tenant
//	sha256:<64 hex>          SHA-256 of the key, any tenant
//	sha256:<64 hex>@<tenant> hashed key scoped to one tenant
//	admin:<key> | admin:sha256:<64 hex>  admin key, never tenant-scoped
//
// Plaintext keys are at least MinAPIKeyLen bytes and may not contain '@',
// ',' or whitespace; a key cannot itself start with "admin:" or "sha256:".
const (
	MinAPIKeyLen     = 16
	apiKeyHashPrefix = "sha256:"
	apiKeyAdmin      = "admin:"
	generatedPrefix  = "hk_"
)

// APIKey describes an authenticated publisher key.
type APIKey struct {
	ID     string // first 8 hex chars of sha256(key): safe to log as "key id"
	Tenant string // "" = any tenant
	Admin  bool   // admin key (admin APIs); never tenant-scoped
}

// Allows reports whether the key may act on tenant. Unscoped keys allow any.
func (a APIKey) Allows(tenant string) bool {
	return a.Tenant == "" || a.Tenant == tenant
}

type keyEntry struct {
	hash [sha256.Size]byte
	key  APIKey
}

// Keyring holds the SHA-256 hashes of the configured API keys; plaintext
// keys are never kept. It is immutable and safe for concurrent use.
type Keyring struct {
	entries []keyEntry
}

// ParseKeyring parses API key entries (see the syntax above). Blank entries
// are skipped. Errors name the entry's index and never echo its content.
func ParseKeyring(entries []string) (*Keyring, error) {
	k := &Keyring{}
	seen := make(map[[sha256.Size]byte]int, len(entries))
	for i, raw := range entries {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		ke, err := parseKeyEntry(e)
		if err != nil {
			return nil, fmt.Errorf("auth: API key entry %d: %w", i, err)
		}
		if j, dup := seen[ke.hash]; dup {
			return nil, fmt.Errorf("auth: API key entry %d: same key as entry %d", i, j)
		}
		seen[ke.hash] = i
		k.entries = append(k.entries, ke)
	}
	return k, nil
}

func parseKeyEntry(e string) (keyEntry, error) {
	var ke keyEntry
	rest, admin := strings.CutPrefix(e, apiKeyAdmin)
	ke.key.Admin = admin
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		if admin {
			return ke, errors.New("admin keys cannot be scoped to a tenant")
		}
		tenant := rest[i+1:]
		if tenant == "" {
			return ke, errors.New("empty tenant after '@'")
		}
		if err := checkText(tenant, maxIDBytes); err != nil {
			return ke, fmt.Errorf("tenant: %w", err)
		}
		ke.key.Tenant = tenant
		rest = rest[:i]
	}
	if h, ok := strings.CutPrefix(rest, apiKeyHashPrefix); ok {
		if len(h) != 2*sha256.Size {
			return ke, fmt.Errorf("sha256 hash must be %d hex characters", 2*sha256.Size)
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			return ke, errors.New("sha256 hash is not valid hex")
		}
		copy(ke.hash[:], b)
	} else {
		if len(rest) < MinAPIKeyLen {
			return ke, fmt.Errorf("plaintext key shorter than %d characters", MinAPIKeyLen)
		}
		if strings.ContainsFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == ',' }) {
			return ke, errors.New("plaintext key contains whitespace, control characters or ','")
		}
		ke.hash = sha256.Sum256([]byte(rest))
	}
	ke.key.ID = hex.EncodeToString(ke.hash[:4])
	return ke, nil
}

// Authenticate checks a presented key. The key is hashed once and compared
// with every configured hash in constant time, without stopping at a match,
// so timing reveals neither which entry matched nor how many bytes did.
func (k *Keyring) Authenticate(presented string) (APIKey, bool) {
	if k == nil || presented == "" {
		return APIKey{}, false
	}
	h := sha256.Sum256([]byte(presented))
	match := -1
	for i := range k.entries {
		eq := subtle.ConstantTimeCompare(h[:], k.entries[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return APIKey{}, false
	}
	return k.entries[match].key, true
}

// Len returns the number of configured keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// GenerateKey returns a new random API key: "hk_" followed by 32 random bytes
// in unpadded base64url.
func GenerateKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return generatedPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}
