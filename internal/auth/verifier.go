package auth

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/topic"
)

// Identifier limits.
const (
	maxIDBytes   = 128 // sub, tenant, role
	maxTextBytes = 256 // email, name, jti
)

// Principal is the authenticated identity carried by a verified token.
type Principal struct {
	User, Tenant, Role, Email, Name string
	TokenID                         string // jti, may be ""
	// Topics are the topic patterns of the topics claim (topic.Patterns):
	// the names, or prefixes ending in "*", the token may subscribe to.
	Topics   []string
	IssuedAt time.Time // iat, zero if absent
	Expires  time.Time // exp (always present: required)
}

// Verifier checks JWTs. It is safe for concurrent use; all fields are static
// after construction (the JWKS source has its own synchronized cache).
type Verifier struct {
	parser        *jwt.Parser
	allowed       map[string]bool
	secret        []byte             // nil without HMACSecret
	fileKeys      []crypto.PublicKey // from PublicKeyFile
	jwks          *jwksSource        // nil without JWKSURL
	leeway        time.Duration
	issuer        string
	audience      string
	tenantClaim   string
	roleClaim     string
	topicsClaim   string
	defaultTenant string
}

var errCritHeader = errors.New(`unsupported "crit" header`)

// NewVerifier validates cfg, loads PublicKeyFile and fetches JWKSURL once.
// With a JWKS, a refresh goroutine runs until ctx is cancelled.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		leeway:        cfg.Leeway,
		issuer:        cfg.Issuer,
		audience:      cfg.Audience,
		tenantClaim:   cmp.Or(cfg.TenantClaim, DefaultTenantClaim),
		roleClaim:     cmp.Or(cfg.RoleClaim, DefaultRoleClaim),
		topicsClaim:   cmp.Or(cfg.TopicsClaim, DefaultTopicsClaim),
		defaultTenant: cfg.DefaultTenant,
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if len(cfg.HMACSecret) > 0 {
		v.secret = slices.Clone(cfg.HMACSecret)
	}
	if cfg.PublicKeyFile != "" {
		keys, err := loadPublicKeys(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		v.fileKeys = keys
	}

	algs := slices.Clone(cfg.Algorithms)
	if len(algs) == 0 {
		if v.secret != nil {
			algs = append(algs, hmacAlgs...)
		}
		for _, k := range v.fileKeys {
			algs = append(algs, algsForKey(k)...)
		}
		if cfg.JWKSURL != "" {
			algs = append(algs, jwksAlgs...)
		}
	} else if cfg.JWKSURL == "" {
		// Every allowed asymmetric algorithm must have a key in the file.
		for _, alg := range algs {
			if familyOf(alg) == famHMAC {
				continue
			}
			if !slices.ContainsFunc(v.fileKeys, func(k crypto.PublicKey) bool { return keyFits(k, alg) }) {
				return nil, fmt.Errorf("auth: Algorithms: no key in PublicKeyFile can verify %s", alg)
			}
		}
	}
	slices.Sort(algs)
	algs = slices.Compact(algs)
	v.allowed = make(map[string]bool, len(algs))
	for _, a := range algs {
		v.allowed[a] = true
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	v.parser = jwt.NewParser(opts...)

	if cfg.JWKSURL != "" {
		src, err := newJWKS(ctx, cfg)
		if err != nil {
			return nil, err
		}
		v.jwks = src
	}
	return v, nil
}

// Leeway returns the effective clock-skew tolerance.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// Verify checks token's size, algorithm, signature and claims and returns
// its Principal. Every error is a [*TokenError] matching [ErrInvalidToken].
// It does no I/O, except that with a JWKS a token carrying an unknown kid may
// trigger one rate-limited re-fetch, bounded to a few seconds.
func (v *Verifier) Verify(token string) (Principal, error) {
	if len(token) > MaxTokenBytes {
		return Principal{}, tokenErr(ReasonTooLarge, fmt.Errorf("token is %d bytes, limit %d", len(token), MaxTokenBytes))
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, v.keyFor)
	if err != nil {
		return Principal{}, tokenErr(v.classify(err, tok, claims), err)
	}
	p, err := v.principal(claims)
	if err != nil {
		return Principal{}, tokenErr(ReasonClaims, err)
	}
	return p, nil
}

// keyFor is the jwt.Keyfunc. The parser has already checked alg against the
// allowlist; here the key is chosen by alg family so that an HS* token is
// only ever checked against the HMAC secret and an asymmetric token only
// against public keys of the matching type.
func (v *Verifier) keyFor(tok *jwt.Token) (any, error) {
	if _, ok := tok.Header["crit"]; ok {
		return nil, errCritHeader
	}
	alg := tok.Method.Alg()
	switch familyOf(alg) {
	case famNone:
		return nil, fmt.Errorf("%w: alg %s", errUnknownKey, alg)
	case famHMAC:
		if v.secret == nil {
			return nil, fmt.Errorf("%w: no HMAC secret", errUnknownKey)
		}
		return v.secret, nil
	}
	var keys []jwt.VerificationKey
	for _, k := range v.fileKeys {
		if keyFits(k, alg) {
			keys = append(keys, k)
		}
	}
	if v.jwks != nil {
		kid, hasKID := tok.Header["kid"].(string)
		if _, present := tok.Header["kid"]; present && !hasKID {
			return nil, fmt.Errorf("%w: kid is not a string", errUnknownKey)
		}
		// A matching key file takes precedence over refreshing the JWKS for
		// a kid it does not know.
		jk, err := v.jwks.keys(kid, hasKID, alg, len(keys) == 0)
		if err != nil && len(keys) == 0 {
			return nil, err
		}
		keys = append(keys, jk...)
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%w: no configured key fits alg %s", errUnknownKey, alg)
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// classify maps a jwt/v5 error onto a Reason.
func (v *Verifier) classify(err error, tok *jwt.Token, claims jwt.MapClaims) Reason {
	switch {
	case tok == nil, errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, errCritHeader):
		return ReasonMalformed
	case tok.Method == nil, !v.allowed[tok.Method.Alg()]:
		// alg missing, unknown to jwt ("NONE", "nOnE") or not allowlisted.
		return ReasonAlgorithm
	case errors.Is(err, errUnknownKey), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	}
	// Claim-validation errors are joined and a missing claim does not say
	// which one, so look at the (signature-verified) claims directly.
	if _, ok := claims["exp"]; !ok {
		return ReasonMissingExp
	}
	if v.issuer != "" {
		if iss, ok := claims["iss"].(string); !ok || iss != v.issuer {
			return ReasonIssuer
		}
	}
	if v.audience != "" {
		if aud, aerr := claims.GetAudience(); aerr != nil || !slices.Contains(aud, v.audience) {
			return ReasonAudience
		}
	}
	return ReasonClaims
}

// principal extracts and validates the identity claims.
func (v *Verifier) principal(c jwt.MapClaims) (Principal, error) {
	var p Principal
	sub, ok := c["sub"].(string)
	if !ok {
		return p, errors.New(`claim "sub" is missing or not a string`)
	}
	if err := checkText(sub, maxIDBytes); err != nil {
		return p, fmt.Errorf(`claim "sub": %w`, err)
	}
	p.User = sub

	switch t, present := c[v.tenantClaim]; {
	case !present:
		if v.defaultTenant == "" {
			return p, fmt.Errorf("claim %q is missing and no default tenant is configured", v.tenantClaim)
		}
		p.Tenant = v.defaultTenant
	default:
		s, ok := t.(string)
		if !ok {
			return p, fmt.Errorf("claim %q is not a string", v.tenantClaim)
		}
		if err := checkText(s, maxIDBytes); err != nil {
			return p, fmt.Errorf("claim %q: %w", v.tenantClaim, err)
		}
		p.Tenant = s
	}

	// Optional string claims; values of other types are ignored.
	for _, f := range []struct {
		name string
		max  int
		dst  *string
	}{
		{v.roleClaim, maxIDBytes, &p.Role},
		{"email", maxTextBytes, &p.Email},
		{"name", maxTextBytes, &p.Name},
		{"jti", maxTextBytes, &p.TokenID},
	} {
		s, ok := c[f.name].(string)
		if !ok || s == "" {
			continue
		}
		if err := checkText(s, f.max); err != nil {
			return p, fmt.Errorf("claim %q: %w", f.name, err)
		}
		*f.dst = s
	}

	p.Topics = topicsOf(c[v.topicsClaim])

	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		return p, errors.New(`claim "exp" is invalid`) // unreachable: the parser requires exp
	}
	p.Expires = exp.Time
	if iat, err := c.GetIssuedAt(); err == nil && iat != nil {
		p.IssuedAt = iat.Time
	}
	return p, nil
}

// topicsOf reads the topics claim: an array of strings (other values, and
// entries that are not valid patterns, grant nothing).
func topicsOf(v any) []string {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	names := make([]string, 0, min(len(list), topic.MaxPatterns))
	for _, x := range list {
		if s, ok := x.(string); ok {
			names = append(names, s)
		}
	}
	return topic.Patterns(names)
}

// checkText accepts non-empty, valid UTF-8 without control characters, at
// most max bytes long.
func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("contains control characters")
	}
	return nil
}

// SignHS256 signs claims with HS256. It is meant for tests and the --dev mode;
// production tokens come from the identity provider.
func SignHS256(secret []byte, claims map[string]any) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: SignHS256: empty secret")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: SignHS256: %w", err)
	}
	return s, nil
}
