-- +goose Up
-- Revoked users (token_id = '') and revoked token ids (tenant = user_id = '').
-- revoked_at: user tokens issued before it are rejected; until_ms: when a
-- token revocation may be forgotten (the token's exp); 0 for users.
CREATE TABLE revocations (
    tenant     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    token_id   TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, token_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE revocations;
