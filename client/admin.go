package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// The revocation calls need an admin API key (admin:<key> in Herald's
// --api-keys); any other key gets an *Error with CodeForbidden.

// RevokeUser revokes a user of a tenant: every token of the user issued
// before now (by iat; tokens without iat too) is refused, and the user's
// live connections are closed (4004). Tokens issued afterwards work. It
// lasts until LiftUserRevocation and survives restarts. It returns the
// server's time of the revocation.
func (c *Client) RevokeUser(ctx context.Context, tenant, user string) (revokedAt time.Time, err error) {
	return c.revoke(ctx, map[string]string{"tenant": tenant, "user": user})
}

// RevokeToken revokes the token whose jti claim is jti until expiresAt
// (the token's exp, in the future); live connections authenticated with
// it are closed (4004).
func (c *Client) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) (revokedAt time.Time, err error) {
	return c.revoke(ctx, map[string]string{"jti": jti, "expires_at": expiresAt.UTC().Format(time.RFC3339Nano)})
}

// LiftUserRevocation lifts a user revocation: the user's old tokens are
// accepted again. Lifting one that does not exist succeeds too.
func (c *Client) LiftUserRevocation(ctx context.Context, tenant, user string) error {
	path := "/v1/admin/revocations/users/" + url.PathEscape(tenant) + "/" + url.PathEscape(user)
	_, err := c.do(ctx, &call{op: "lift revocation", method: http.MethodDelete, path: path})
	return err
}

func (c *Client) revoke(ctx context.Context, req map[string]string) (time.Time, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("herald: revoke: %w", err)
	}
	r, err := c.do(ctx, &call{op: "revoke", method: http.MethodPost, path: "/v1/admin/revocations", body: body})
	if err != nil {
		return time.Time{}, err
	}
	var out struct {
		RevokedAt time.Time `json:"revoked_at"`
	}
	if err := decode("revoke", r, &out); err != nil {
		return time.Time{}, err
	}
	return out.RevokedAt, nil
}
