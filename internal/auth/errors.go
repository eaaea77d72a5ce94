package auth

import (
	"errors"
	"fmt"
)

// ErrInvalidToken matches every error returned by [Verifier.Verify]:
// errors.Is(err, ErrInvalidToken) is true for any [*TokenError].
var ErrInvalidToken = errors.New("auth: invalid token")

// Reason classifies why a token was rejected. Its values are stable and of low
// cardinality, so they are safe as metric labels and audit-log attributes.
type Reason string

// Rejection reasons.
const (
	ReasonMalformed   Reason = "malformed"     // not a well-formed JWS compact token
	ReasonSignature   Reason = "signature"     // signature does not verify
	ReasonAlgorithm   Reason = "algorithm"     // alg not allowed (incl. "none") or unknown
	ReasonExpired     Reason = "expired"       // exp passed (beyond leeway)
	ReasonNotYetValid Reason = "not_yet_valid" // nbf or iat in the future (beyond leeway)
	ReasonMissingExp  Reason = "missing_exp"   // no exp claim
	ReasonIssuer      Reason = "issuer"        // iss missing or wrong (when configured)
	ReasonAudience    Reason = "audience"      // aud missing or wrong (when configured)
	ReasonClaims      Reason = "claims"        // sub/tenant/role/... missing or invalid
	ReasonUnknownKey  Reason = "unknown_key"   // no configured key for this alg/kid
	ReasonTooLarge    Reason = "too_large"     // token longer than the size limit
)

// TokenError is the error returned by [Verifier.Verify]. Log Reason freely;
// Err carries detail for debugging and never includes the token itself.
type TokenError struct {
	Reason Reason
	Err    error
}

// Error implements error.
func (e *TokenError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%v (%s)", ErrInvalidToken, e.Reason)
	}
	return fmt.Sprintf("%v (%s): %v", ErrInvalidToken, e.Reason, e.Err)
}

// Unwrap returns the underlying cause.
func (e *TokenError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalidToken].
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// ReasonOf returns the Reason of the first [*TokenError] in err's tree, or ""
// when err is nil or carries no TokenError.
func ReasonOf(err error) Reason {
	if te, ok := errors.AsType[*TokenError](err); ok {
		return te.Reason
	}
	return ""
}

func tokenErr(r Reason, err error) *TokenError {
	return &TokenError{Reason: r, Err: err}
}

// ReasonMissing: no token was presented at all. Transports record it; the
// verifier never returns it.
const ReasonMissing Reason = "missing"

// ErrMissingToken is a [*TokenError] with [ReasonMissing].
var ErrMissingToken error = &TokenError{Reason: ReasonMissing}
