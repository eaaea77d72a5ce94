-- +goose Up
-- Revoked users (token_id = '') and revoked token ids (tenant = user_id = '').
-- revoked_at: user tokens issued before it are rejected; until_ms: when a
-- token revocation may be forgotten (the token's exp); 0 for users.
CREATE TABLE revocations (
    tenant     text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    token_id   text COLLATE "C" NOT NULL,
    revoked_at bigint NOT NULL,
    until_ms   bigint NOT NULL,
    PRIMARY KEY (tenant, user_id, token_id)
);

-- +goose Down
DROP TABLE revocations;
