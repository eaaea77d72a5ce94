package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Standard Webhooks headers.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// SecretPrefix starts every secret: "whsec_" and the base64 of the key.
const SecretPrefix = "whsec_"

// Key sizes a secret may have (decoded): 24 to 64 bytes, as the Standard
// Webhooks specification recommends.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// ErrBadSecret: a secret that is not whsec_ and the base64 of 24..64 bytes.
var ErrBadSecret = errors.New("webhook: secret must be whsec_ followed by the base64 of 24 to 64 random bytes")

// Signer signs outgoing requests the Standard Webhooks way: webhook-id,
// webhook-timestamp (Unix seconds) and webhook-signature "v1,<base64 of
// HMAC-SHA256(key, id.timestamp.body)>". Any feature of Herald that calls
// out to a backend (webhooks, authorization hooks) signs with it, so one
// receiver-side check fits all. Immutable; safe for concurrent use.
type Signer struct {
	wh *standardwebhooks.Webhook // static
}

// NewSigner parses a whsec_ secret.
func NewSigner(secret string) (*Signer, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSecret, err)
	}
	return &Signer{wh: wh}, nil
}

// CheckSecret validates a secret without keeping it.
func CheckSecret(secret string) error {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return ErrBadSecret
	}
	return nil
}

// NewSecret returns a fresh random secret (32 bytes).
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign sets the three Standard Webhooks headers on h for a message id sent
// at ts with body.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) error {
	sig, err := s.wh.Sign(id, ts, body)
	if err != nil {
		return fmt.Errorf("webhook: sign: %w", err)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// SignRequest signs req, whose body is body, as message id at ts.
func (s *Signer) SignRequest(req *http.Request, id string, ts time.Time, body []byte) error {
	return s.Sign(req.Header, id, ts, body)
}

// Verify checks the signature headers of a received message (tests,
// receivers written in Go), with the library's timestamp tolerance.
func (s *Signer) Verify(body []byte, h http.Header) error {
	return s.wh.Verify(body, h)
}
