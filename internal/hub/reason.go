package hub

// CloseReason is why a connection ended. It is the one enum shared by logs
// (Label), metrics (Label), WebSocket close frames (Code, Text) and SSE/Socket.IO
// (which map it onto their own wire forms). Codes are stable and documented in
// docs/protocol.md.
type CloseReason uint8

// Close reasons. Keep in sync with docs/protocol.md.
const (
	ReasonNone            CloseReason = iota
	ReasonClientClosed                // 1000: the client closed or went away
	ReasonProtocolError               // 1002: malformed frames
	ReasonUnsupported                 // 1003: binary frames where text is expected
	ReasonInvalidUTF8                 // 1007: text frame with invalid UTF-8
	ReasonPolicyViolation             // 1008: repeated invalid messages, disallowed use
	ReasonMessageTooBig               // 1009: a message over the size limit
	ReasonInternalError               // 1011: server-side failure (store down); reconnect and resume
	ReasonUnauthorized                // 4001: missing, invalid or mismatching token
	ReasonAuthTimeout                 // 4001: no valid auth message within the deadline
	ReasonPingTimeout                 // 4002: no pong (or any traffic) within the keepalive window
	ReasonTokenExpired                // 4003: the token expired and was not refreshed in band
	ReasonRevoked                     // 4004: the user or token was revoked
	ReasonLimitExceeded               // 4013: too many connections for this user
	ReasonSlowConsumer                // 4008: outbound buffer full; reconnect and resume
	ReasonShutdown                    // 4009: server draining; reconnect (elsewhere) and resume
	ReasonRateLimited                 // 4029: sustained abuse of the rate limit
	ReasonTransportError              // (1006, never sent): the network connection failed
	reasonCount
)

type reasonInfo struct {
	code  int
	label string
}

var reasonTable = [reasonCount]reasonInfo{
	ReasonNone:            {1000, "none"},
	ReasonClientClosed:    {1000, "client_closed"},
	ReasonProtocolError:   {1002, "protocol_error"},
	ReasonUnsupported:     {1003, "unsupported_data"},
	ReasonInvalidUTF8:     {1007, "invalid_utf8"},
	ReasonPolicyViolation: {1008, "policy_violation"},
	ReasonMessageTooBig:   {1009, "message_too_big"},
	ReasonInternalError:   {1011, "internal_error"},
	ReasonUnauthorized:    {4001, "unauthorized"},
	ReasonAuthTimeout:     {4001, "auth_timeout"},
	ReasonPingTimeout:     {4002, "ping_timeout"},
	ReasonTokenExpired:    {4003, "token_expired"},
	ReasonRevoked:         {4004, "revoked"},
	ReasonLimitExceeded:   {4013, "limit_exceeded"},
	ReasonSlowConsumer:    {4008, "slow_consumer"},
	ReasonShutdown:        {4009, "shutdown"},
	ReasonRateLimited:     {4029, "rate_limited"},
	ReasonTransportError:  {1006, "transport_error"},
}

// Code is the WebSocket close code.
func (r CloseReason) Code() int {
	if r >= reasonCount {
		return 1011
	}
	return reasonTable[r].code
}

// Label is the stable snake_case name used in logs, metrics and close frames.
func (r CloseReason) Label() string {
	if r >= reasonCount {
		return "unknown"
	}
	return reasonTable[r].label
}

func (r CloseReason) String() string { return r.Label() }

// Reconnect reports whether a client should reconnect (and resume) after this
// reason. Clients must not reconnect with the same token after an auth failure.
func (r CloseReason) Reconnect() bool {
	switch r {
	case ReasonUnauthorized, ReasonAuthTimeout, ReasonRevoked, ReasonPolicyViolation, ReasonTokenExpired, ReasonLimitExceeded:
		return false
	}
	return true
}

// Reasons lists every reason, for documentation and metric pre-registration.
func Reasons() []CloseReason {
	out := make([]CloseReason, 0, reasonCount-1)
	for r := ReasonClientClosed; r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}
