package auth

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/audit"
)

// Defaults applied by [NewVerifier] to zero-valued [Config] fields.
const (
	DefaultLeeway      = 30 * time.Second
	DefaultTenantClaim = "tenant_id"
	DefaultRoleClaim   = "role"
	// DefaultTopicsClaim names the claim listing the topics a token may
	// subscribe to (names, or prefixes ending in "*").
	DefaultTopicsClaim = "topics"

	// MaxTokenBytes is the longest token Verify will parse.
	MaxTokenBytes = 8 << 10
	// MinHMACSecretBytes is the shortest accepted HMACSecret (RFC 7518 §3.2
	// requires a key at least as long as the HS256 output).
	MinHMACSecretBytes = 32
)

// Config configures a [Verifier]. The zero value of each field means the
// documented default; at least one key source must be set.
type Config struct {
	// HMACSecret verifies HS256/HS384/HS512 tokens; at least 32 bytes.
	HMACSecret []byte
	// PublicKeyFile is a PEM file holding one or more public keys or
	// certificates: RSA (RS*, PS*; >= 2048 bits), ECDSA P-256/P-384/P-521
	// (ES256/ES384/ES512) or Ed25519 (EdDSA). Private keys are refused.
	PublicKeyFile string
	// JWKSURL is an http(s) JWKS endpoint. Keys are selected by "kid" and
	// refreshed periodically and on an unknown kid (rate limited).
	JWKSURL string
	// Algorithms is the allowlist of JWS "alg" values. Empty means derived
	// from the key sources: HS* for HMACSecret, the algorithms matching each
	// key in PublicKeyFile, and RS*, PS*, ES*, EdDSA for JWKSURL (never HS*).
	Algorithms []string
	// Issuer, when set, must equal the "iss" claim.
	Issuer string
	// Audience, when set, must be contained in the "aud" claim.
	Audience string
	// Leeway is the clock skew tolerated for exp, nbf and iat. Zero means
	// DefaultLeeway (30s); a negative value means no leeway.
	Leeway time.Duration
	// TenantClaim names the claim holding the tenant; default "tenant_id".
	TenantClaim string
	// RoleClaim names the claim holding the role; default "role".
	RoleClaim string
	// TopicsClaim names the claim listing the topics the token may
	// subscribe to: an array of names or prefixes ending in "*"; default
	// "topics". Invalid entries are ignored (they grant nothing).
	TopicsClaim string
	// DefaultTenant is used for tokens without a tenant claim. When empty,
	// such tokens are rejected.
	DefaultTenant string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// HTTPClient fetches the JWKS; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives JWKS refresh failures; nil discards them.
	Logger *slog.Logger
	// Audit records audit events; nil: logged through Logger, not counted.
	Audit *audit.Recorder
}

// algFamily groups JWS algorithms by the key type they need.
type algFamily int

const (
	famNone algFamily = iota
	famHMAC
	famRSA
	famECDSA
	famEdDSA
)

// knownAlgs maps every supported "alg" to its key family.
var knownAlgs = map[string]algFamily{
	"HS256": famHMAC, "HS384": famHMAC, "HS512": famHMAC,
	"RS256": famRSA, "RS384": famRSA, "RS512": famRSA,
	"PS256": famRSA, "PS384": famRSA, "PS512": famRSA,
	"ES256": famECDSA, "ES384": famECDSA, "ES512": famECDSA,
	"EdDSA": famEdDSA,
}

var (
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	rsaAlgs  = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	// jwksAlgs is the default allowlist for JWKS: every asymmetric algorithm.
	jwksAlgs = []string{
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA",
	}
)

func familyOf(alg string) algFamily { return knownAlgs[alg] }

// Validate checks the cross-field rules of c without touching the network or
// the file system. [NewVerifier] calls it; call it earlier to fail at startup.
func (c Config) Validate() error {
	if len(c.HMACSecret) == 0 && c.PublicKeyFile == "" && c.JWKSURL == "" {
		return errors.New("auth: no key source: set HMACSecret, PublicKeyFile or JWKSURL")
	}
	if len(c.HMACSecret) > 0 && len(c.HMACSecret) < MinHMACSecretBytes {
		return fmt.Errorf("auth: HMACSecret is %d bytes, need at least %d", len(c.HMACSecret), MinHMACSecretBytes)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil {
			return fmt.Errorf("auth: JWKSURL: %w", err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("auth: JWKSURL must be an absolute http(s) URL")
		}
	}
	hasAsym := c.PublicKeyFile != "" || c.JWKSURL != ""
	if len(c.Algorithms) > 0 {
		var sawHMAC, sawAsym bool
		for _, alg := range c.Algorithms {
			if strings.EqualFold(alg, "none") {
				return fmt.Errorf("auth: Algorithms: %q is never allowed", alg)
			}
			switch familyOf(alg) {
			case famNone:
				return fmt.Errorf("auth: Algorithms: unknown algorithm %q", alg)
			case famHMAC:
				if len(c.HMACSecret) == 0 {
					return fmt.Errorf("auth: Algorithms: %s needs HMACSecret (HMAC with a public key would allow key confusion)", alg)
				}
				sawHMAC = true
			default:
				if !hasAsym {
					return fmt.Errorf("auth: Algorithms: %s needs PublicKeyFile or JWKSURL", alg)
				}
				sawAsym = true
			}
		}
		if len(c.HMACSecret) > 0 && !sawHMAC {
			return errors.New("auth: HMACSecret is set but Algorithms allows no HS256/HS384/HS512")
		}
		if hasAsym && !sawAsym {
			return errors.New("auth: PublicKeyFile/JWKSURL is set but Algorithms allows no asymmetric algorithm")
		}
	}
	if cmp.Or(c.TenantClaim, DefaultTenantClaim) == cmp.Or(c.RoleClaim, DefaultRoleClaim) {
		return errors.New("auth: TenantClaim and RoleClaim must differ")
	}
	if tc := cmp.Or(c.TopicsClaim, DefaultTopicsClaim); tc == cmp.Or(c.TenantClaim, DefaultTenantClaim) || tc == cmp.Or(c.RoleClaim, DefaultRoleClaim) {
		return errors.New("auth: TopicsClaim must differ from TenantClaim and RoleClaim")
	}
	if c.DefaultTenant != "" {
		if err := checkText(c.DefaultTenant, maxIDBytes); err != nil {
			return fmt.Errorf("auth: DefaultTenant: %w", err)
		}
	}
	return nil
}
