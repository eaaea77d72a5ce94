package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/internal/notification"
)

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

// validateDraft checks d with the rule set of internal/notification (the
// one the publish API applies), so that no caller can store what the API
// would refuse.
func validateDraft(d *notification.Draft) error {
	if err := validateIdent("tenant", d.Tenant); err != nil {
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
			if err := validateIdent("user", u); err != nil {
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
		if err := validateIdent("role", a.Role); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audience: unknown kind %d", a.Kind)
	}
	if _, err := normalizeData(d.Data); err != nil {
		return err
	}
	if d.Category != "" && !notification.ValidCategory(d.Category) {
		return fmt.Errorf("category: longer than %d bytes or not of [a-z0-9._-]", notification.MaxCategoryLen)
	}
	if d.CollapseKey != "" {
		if a.Broadcast() {
			return fmt.Errorf("collapse_key: only for an audience of named users")
		}
		if !notification.ValidCollapseKey(d.CollapseKey) {
			return fmt.Errorf("collapse_key: longer than %d bytes, invalid UTF-8 or with control characters", notification.MaxCollapseKeyLen)
		}
	}
	if d.FallbackAfter < 0 || d.FallbackAfter > notification.MaxFallbackAfter {
		return fmt.Errorf("fallback: after must be within 0..%s", notification.MaxFallbackAfter)
	}
	if d.FallbackAfter > 0 && a.Kind != notification.AudienceUsers {
		return fmt.Errorf("fallback: only for an audience of explicit users")
	}
	switch {
	case !notification.ValidType(d.Type):
		return fmt.Errorf("type: empty, longer than %d bytes or not of [A-Za-z0-9._-:/]", notification.MaxTypeLen)
	case !notification.ValidTitle(d.Title):
		return fmt.Errorf("title: empty, longer than %d bytes or invalid UTF-8", notification.MaxTitleLen)
	case !notification.ValidBody(d.Body):
		return fmt.Errorf("body: longer than %d bytes or invalid UTF-8", notification.MaxBodyLen)
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

// validateIdent checks a tenant, user or role with notification.ValidIdent.
func validateIdent(what, s string) error {
	if !notification.ValidIdent(s) {
		return fmt.Errorf("%s: empty, longer than %d bytes, invalid UTF-8 or with control characters", what, notification.MaxIdentLen)
	}
	return nil
}

// validateRecipient checks the recipient of a read or a state change with
// the rules its identifiers were published under: a recipient that breaks
// them can have no notifications.
func validateRecipient(r notification.Recipient) error {
	err := validateIdent("recipient tenant", r.Tenant)
	if err == nil {
		err = validateIdent("recipient user", r.User)
	}
	if err == nil && r.Role != "" {
		err = validateIdent("recipient role", r.Role)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
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
