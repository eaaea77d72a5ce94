package socketio

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
)

// A session keeps the valid bearer token of its handshake for the CONNECTs
// that carry none (socket.io-client sends the Authorization header with
// the handshake only), and verifies it again at each: expiry, signature
// and key set as of that CONNECT. So every session with header auth holds
// a token for its lifetime, ~180 bytes for a small one.
//
// It holds it packed. A JWT (compact serialization) is three base64url
// segments joined by dots: header.payload.signature. The header segment is
// the same for every token a signer issues: it becomes an index into the
// server's table of the header segments seen. The payload and the
// signature are kept decoded (3/4 of their text). unpackToken gives back
// the same text exactly; a token that would not survive the round trip,
// or whose header does not fit in the table, is kept as it is.

// Tags of a packed token (its first byte).
const (
	tokenPlain  = 0 // the token follows as is
	tokenPacked = 1 // header index, uvarint payload length, payload, signature
)

// maxTokenHeaders bounds the table of header segments. Only verified
// tokens are packed, so only a signer can add to it.
const maxTokenHeaders = 256

// tokenSegment is the strict base64url of JWT segments (no padding, no
// non-zero trailing bits): decoded, a segment encodes back to itself.
var tokenSegment = base64.RawURLEncoding.Strict()

// tokenHeaders is the table of header segments. The zero value is empty
// and ready.
type tokenHeaders struct {
	mu    sync.Mutex
	index map[string]uint8 // guarded by mu
	list  []string         // guarded by mu
}

// indexOf returns the index of header segment h, adding it if there is
// room.
func (t *tokenHeaders) indexOf(h string) (uint8, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[h]; ok {
		return i, true
	}
	if len(t.list) >= maxTokenHeaders {
		return 0, false
	}
	if t.index == nil {
		t.index = make(map[string]uint8)
	}
	h = strings.Clone(h) // not a slice of the request's header
	i := uint8(len(t.list))
	t.index[h] = i
	t.list = append(t.list, h)
	return i, true
}

func (t *tokenHeaders) at(i uint8) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.list[i]
}

// packToken returns the form a session keeps token in; "" for "".
func (t *tokenHeaders) packToken(token string) string {
	if token == "" {
		return ""
	}
	if p, ok := t.pack(token); ok && t.unpackToken(p) == token {
		return p
	}
	return string(append([]byte{tokenPlain}, token...))
}

func (t *tokenHeaders) pack(token string) (string, bool) {
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return "", false
	}
	pl, err := tokenSegment.DecodeString(payload)
	if err != nil {
		return "", false
	}
	sg, err := tokenSegment.DecodeString(sig)
	if err != nil {
		return "", false
	}
	i, ok := t.indexOf(header)
	if !ok {
		return "", false
	}
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(pl)+len(sg))
	b = append(b, tokenPacked, i)
	b = binary.AppendUvarint(b, uint64(len(pl)))
	b = append(b, pl...)
	return string(append(b, sg...)), true
}

// unpackToken returns the token packToken packed.
func (t *tokenHeaders) unpackToken(p string) string {
	if p == "" {
		return ""
	}
	if p[0] == tokenPlain {
		return p[1:]
	}
	n, w := binary.Uvarint([]byte(p[2:]))
	rest := p[2+w:]
	payload, sig := rest[:n], rest[n:]
	header := t.at(p[1])
	b := make([]byte, 0, len(header)+2+tokenSegment.EncodedLen(len(payload))+tokenSegment.EncodedLen(len(sig)))
	b = append(b, header...)
	b = append(b, '.')
	b = tokenSegment.AppendEncode(b, []byte(payload))
	b = append(b, '.')
	b = tokenSegment.AppendEncode(b, []byte(sig))
	return string(b)
}
