-- +goose Up
-- The webhook outbox: one row per outgoing webhook event until it is
-- delivered (deleted) or given up on. id is the Standard Webhooks message id
-- (webhook-id), the same on every attempt. A notification.unseen row is
-- written in the publish transaction with due_at = created_at + the
-- fallback delay and payload NULL: at due time the sender checks the
-- recipient's state (Outbox.Unseen), then stores the payload once so every
-- retry carries the same body. lease_owner/lease_until: the sender that
-- claimed the row and until when (another may take it over after).
CREATE TABLE webhook_outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    notification_id TEXT    NOT NULL DEFAULT '',
    payload         TEXT,
    created_at      INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (due_at);

-- A tenant's own webhook endpoint (admin API), used instead of the global one.
CREATE TABLE webhook_endpoints (
    tenant     TEXT    NOT NULL PRIMARY KEY,
    url        TEXT    NOT NULL,
    secret     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE webhook_endpoints;
DROP TABLE webhook_outbox;
