package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/internal/audit"
)

// JWKS cache policy. The refresh goroutine re-fetches the set every
// jwksRefreshInterval; a token with an unknown kid triggers an extra fetch at
// most once per jwksUnknownKIDEvery, so random kids cannot hammer the IdP.
// A Verify call waits at most jwksRateLimitWait for that slot (and the fetch);
// when the next slot is further away it fails at once with unknown_key.
const (
	jwksRefreshInterval = 15 * time.Minute
	jwksUnknownKIDEvery = 30 * time.Second
	jwksRateLimitWait   = 5 * time.Second
	jwksHTTPTimeout     = 10 * time.Second
)

// errUnknownKey marks key lookups that found nothing usable.
var errUnknownKey = errors.New("no key for this token")

// jwksSource is a remote key set. store is safe for concurrent use (its cache
// is replaced by the refresh goroutine); the other fields are static.
type jwksSource struct {
	ctx   context.Context // bounds refreshes; cancelled on shutdown
	store jwkset.Storage
}

// newJWKS fetches the key set once (failing if that does not work or yields no
// usable key) and starts the refresh goroutine, which exits when ctx ends.
func newJWKS(ctx context.Context, cfg Config) (*jwksSource, error) {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: jwksHTTPTimeout}
	}
	rec := cfg.Audit
	if rec == nil {
		rec = audit.New(cfg.Logger, nil) // nil Logger: discarded
	}
	noErrFirst := false
	override := keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               jwksHTTPTimeout,
		NoErrorReturnFirstHTTPReq: &noErrFirst,
		RateLimitWaitMax:          jwksRateLimitWait,
		RefreshInterval:           jwksRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				rec.Record(ctx, slog.LevelWarn, audit.JWKSRefreshFailed, "JWKS refresh failed", "url", u, "error", err)
			}
		},
	}
	// The refresh goroutine starts before the first fetch; a child context
	// lets us stop it again if construction fails.
	jctx, cancel := context.WithCancel(ctx)
	kf, err := keyfunc.NewDefaultOverrideCtx(jctx, []string{cfg.JWKSURL}, override)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKSURL: %w", err)
	}
	src := &jwksSource{ctx: jctx, store: kf.Storage()}
	all, err := src.store.KeyReadAll(jctx)
	if err == nil && len(all) == 0 {
		err = errors.New("the key set has no supported key")
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: JWKSURL: %w", err)
	}
	// On success jctx lives exactly as long as ctx, which owns the goroutine:
	// cancelling ctx releases it, so cancel need not be kept.
	_ = cancel
	return src, nil
}

// keys returns the public keys of the set that may verify a token with alg
// and (when hasKID) kid. With refresh, an unknown kid triggers a rate-limited
// re-fetch; without it only the cache is consulted.
func (j *jwksSource) keys(kid string, hasKID bool, alg string, refresh bool) ([]jwt.VerificationKey, error) {
	var cands []jwkset.JWK
	if hasKID && refresh {
		k, err := j.store.KeyRead(j.ctx, kid)
		if err != nil {
			return nil, fmt.Errorf("%w: JWKS: %w", errUnknownKey, err)
		}
		cands = []jwkset.JWK{k}
	} else {
		all, err := j.store.KeyReadAll(j.ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: JWKS: %w", errUnknownKey, err)
		}
		for _, k := range all {
			if !hasKID || k.Marshal().KID == kid {
				cands = append(cands, k)
			}
		}
	}
	var out []jwt.VerificationKey
	for _, k := range cands {
		m := k.Marshal()
		if m.ALG != "" && string(m.ALG) != alg {
			continue
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		key := k.Key()
		if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = pk.Public()
		}
		if keyFits(key, alg) {
			out = append(out, key)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no JWKS key fits kid %.64q and alg %s", errUnknownKey, kid, alg)
	}
	return out, nil
}
