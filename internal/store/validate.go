package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/notification"
)

// maxNameLen bounds tenant, user and role names (bytes).
const maxNameLen = 256

// validateRequest checks a publish request before it reaches the writer, so
// a malformed request costs the writer nothing and writes nothing. The
// engines share it.
func validateRequest(req *PublishRequest) error {
	if len(req.Drafts) == 0 {
		return fmt.Errorf("%w: no drafts", ErrInvalid)
	}
	for i := range req.Drafts {
		if err := validateDraft(&req.Drafts[i]); err != nil {
			return fmt.Errorf("%w: draft %d: %w", ErrInvalid, i, err)
		}
	}
	return nil
}

func validateDraft(d *notification.Draft) error {
	if err := validateName("tenant", d.Tenant); err != nil {
		return err
	}
	a := d.Audience
	switch a.Kind {
	case notification.AudienceUsers:
		if len(a.Users) == 0 {
			return fmt.Errorf("audience users: no users")
		}
		if a.Role != "" {
			return fmt.Errorf("audience users: role %q set", a.Role)
		}
		for _, u := range a.Users {
			if err := validateName("user", u); err != nil {
				return err
			}
		}
	case notification.AudienceTenant:
		if len(a.Users) != 0 || a.Role != "" {
			return fmt.Errorf("audience tenant: users or role set")
		}
	case notification.AudienceRole:
		if len(a.Users) != 0 {
			return fmt.Errorf("audience role: users set")
		}
		if err := validateName("role", a.Role); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audience: unknown kind %d", a.Kind)
	}
	if _, err := normalizeData(d.Data); err != nil {
		return err
	}
	if !utf8.ValidString(d.Type) || !utf8.ValidString(d.Title) || !utf8.ValidString(d.Body) {
		return fmt.Errorf("type, title or body: invalid UTF-8")
	}
	return nil
}

// normalizeData returns the data to store: nil for no data (absent, empty or
// JSON null), the object without surrounding white space, an error otherwise.
// The result aliases data.
func normalizeData(data json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if t[0] != '{' || !json.Valid(t) {
		return nil, fmt.Errorf("data: not a JSON object")
	}
	return t, nil
}

func validateName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxNameLen:
		return fmt.Errorf("%s longer than %d bytes", what, maxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

// validateRecipient checks the recipient of a read or a state change.
func validateRecipient(r notification.Recipient) error {
	if r.Tenant == "" || r.User == "" {
		return fmt.Errorf("%w: recipient without tenant or user", ErrInvalid)
	}
	return nil
}

// sinceLimit and listLimit apply the documented defaults and caps.
func sinceLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return min(n, MaxSinceLimit)
}

func listLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return min(n, MaxListLimit)
}
