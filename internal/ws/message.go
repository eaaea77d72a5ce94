package ws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/notification"
)

// Client → server message types.
const (
	msgAuth        = "auth"
	msgMarkRead    = "notification:mark-read"
	msgMarkAllRead = "notification:mark-all-read"
	msgDelete      = "notification:delete"
	msgList        = "notification:list"
	msgPing        = "ping"
)

// Limits on client messages.
const (
	maxRefLen    = 64
	maxIDs       = 100
	maxTokenLen  = 8 << 10
	maxJSONDepth = 4
)

// inMessage is every client message; which fields are allowed depends on Type.
type inMessage struct {
	Type   string          `json:"type"`
	Token  string          `json:"token,omitempty"`
	Since  *string         `json:"since,omitempty"`
	ID     string          `json:"id,omitempty"`
	IDs    []string        `json:"ids,omitempty"`
	Before string          `json:"before,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	Unread bool            `json:"unread,omitempty"`
	Ref    json.RawMessage `json:"ref,omitempty"`

	since notification.Position // parsed Since
}

// errInvalid is the one error clients see for any malformed message; the
// wrapped detail goes to the server log only.
var errInvalid = errors.New("invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
}

// decodeMessage parses and validates one text frame.
func decodeMessage(data []byte) (*inMessage, error) {
	if !utf8.Valid(data) {
		return nil, invalid("invalid UTF-8")
	}
	if d := notification.JSONDepth(data, maxJSONDepth); d > maxJSONDepth {
		return nil, invalid("nesting depth %d over %d", d, maxJSONDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m inMessage
	if err := dec.Decode(&m); err != nil {
		return nil, invalid("json: %v", err)
	}
	if dec.More() {
		return nil, invalid("trailing data")
	}
	if err := validateRef(m.Ref); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return &m, err // m carries the ref for the error reply
	}
	return &m, nil
}

func (m *inMessage) validate() error {
	allowed := func(fields ...string) error {
		set := map[string]bool{}
		for _, f := range fields {
			set[f] = true
		}
		present := map[string]bool{
			"token": m.Token != "", "since": m.Since != nil, "id": m.ID != "", "ids": m.IDs != nil,
			"before": m.Before != "", "limit": m.Limit != 0, "unread": m.Unread,
		}
		for f, ok := range present {
			if ok && !set[f] {
				return invalid("field %q not allowed in %q", f, m.Type)
			}
		}
		return nil
	}
	switch m.Type {
	case msgAuth:
		if err := allowed("token", "since"); err != nil {
			return err
		}
		if m.Token == "" || len(m.Token) > maxTokenLen {
			return invalid("auth: token missing or too long")
		}
		if m.Since != nil {
			p, err := notification.ParsePosition(*m.Since)
			if err != nil {
				return invalid("auth: since: %v", err)
			}
			m.since = p
		}
	case msgMarkRead:
		if err := allowed("id", "ids"); err != nil {
			return err
		}
		if m.ID != "" {
			m.IDs = append(m.IDs, m.ID)
		}
		if len(m.IDs) == 0 || len(m.IDs) > maxIDs {
			return invalid("mark-read: 1..%d ids required", maxIDs)
		}
		for _, id := range m.IDs {
			if !notification.ValidID(id) {
				return invalid("mark-read: malformed id")
			}
		}
	case msgDelete:
		if err := allowed("id"); err != nil {
			return err
		}
		if !notification.ValidID(m.ID) {
			return invalid("delete: malformed id")
		}
	case msgMarkAllRead, msgPing:
		if err := allowed(); err != nil {
			return err
		}
	case msgList:
		if err := allowed("before", "limit", "unread"); err != nil {
			return err
		}
		if m.Before != "" && !notification.ValidID(m.Before) {
			return invalid("list: malformed before")
		}
		if m.Limit < 0 {
			return invalid("list: negative limit")
		}
	case "":
		return invalid("type missing")
	default:
		return invalid("unknown type")
	}
	return nil
}

// validateRef accepts a short string or number; anything else is invalid.
func validateRef(ref json.RawMessage) error {
	if len(ref) == 0 {
		return nil
	}
	if len(ref) > maxRefLen {
		return invalid("ref too long")
	}
	switch c := ref[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return nil
	}
	return invalid("ref must be a string or number")
}
