package wspoll

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// HandshakeError is a client opening handshake that RFC 6455 §4.2.1 says
// the server must refuse, with the HTTP status to answer it with.
type HandshakeError struct {
	Status int    // 400, 405 or 426
	Reason string // what is wrong, for logs and the error body
}

func (e *HandshakeError) Error() string { return "wspoll: bad handshake: " + e.Reason }

// SupportedVersion is the only WebSocket version Herald speaks (RFC 6455
// §4.1). Every handshake refusal carries it in Sec-WebSocket-Version.
const SupportedVersion = "13"

// CheckHandshake applies RFC 6455 §4.2.1 to a client's opening handshake,
// before the upgrader sees it (nbio accepts any non-empty key and answers
// an unsupported version with 400). It returns nil for a valid handshake.
// Otherwise the caller answers with Status; SetVersionHeader adds the
// header §4.4 requires on a 426 (harmless on the others).
func CheckHandshake(r *http.Request) *HandshakeError {
	switch {
	case r.Method != http.MethodGet: // §4.2.1 item 1
		return &HandshakeError{http.StatusMethodNotAllowed, "method must be GET"}
	case r.ProtoMajor != 1 || r.ProtoMinor < 1: // §4.2.1 item 1
		return &HandshakeError{http.StatusBadRequest, "HTTP/1.1 or later is required"}
	case !HeaderHasToken(r.Header, "Upgrade", "websocket"): // §4.2.1 item 3
		return &HandshakeError{http.StatusBadRequest, "Upgrade must include websocket"}
	case !HeaderHasToken(r.Header, "Connection", "upgrade"): // §4.2.1 item 4
		return &HandshakeError{http.StatusBadRequest, "Connection must include Upgrade"}
	}
	// §4.2.1 item 5: the key is the base64 encoding of 16 bytes (24
	// characters with padding), sent once.
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 || !validKey(strings.TrimSpace(keys[0])) {
		return &HandshakeError{http.StatusBadRequest, "Sec-WebSocket-Key must be the base64 of 16 bytes"}
	}
	// §4.2.1 item 6 and §4.4: a version other than 13 gets 426 with the
	// versions we support; a missing one is a malformed handshake.
	versions := r.Header.Values("Sec-WebSocket-Version")
	if len(versions) == 0 {
		return &HandshakeError{http.StatusBadRequest, "Sec-WebSocket-Version is missing"}
	}
	if len(versions) != 1 || strings.TrimSpace(versions[0]) != SupportedVersion {
		return &HandshakeError{http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version"}
	}
	return nil
}

// SetVersionHeader adds the Sec-WebSocket-Version a refusal carries
// (RFC 6455 §4.4).
func SetVersionHeader(h http.Header) { h.Set("Sec-WebSocket-Version", SupportedVersion) }

func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(k))
	return err == nil && n == 16
}

// HeaderHasToken reports whether a comma-separated header (every line of
// it) lists token, compared case-insensitively (RFC 6455 §4.2.1 items 3
// and 4; RFC 9110 §5.6.1 lists).
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for item := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}
