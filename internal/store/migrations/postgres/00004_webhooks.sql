-- +goose Up
-- The webhook outbox (see the SQLite migration 00005 for the model). Many
-- nodes send from it: a sender claims due rows with FOR UPDATE SKIP LOCKED
-- and a lease (lease_owner, lease_until); a row whose lease has run out
-- (its sender died) is claimed again by another node.
CREATE TABLE webhook_outbox (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant          text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C" NOT NULL,
    type            text NOT NULL,
    notification_id text COLLATE "C" NOT NULL DEFAULT '',
    payload         text,
    created_at      bigint NOT NULL,
    due_at          bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    lease_owner     text NOT NULL DEFAULT '',
    lease_until     bigint NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT ''
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (due_at);

-- A tenant's own webhook endpoint (admin API), used instead of the global one.
CREATE TABLE webhook_endpoints (
    tenant     text COLLATE "C" NOT NULL PRIMARY KEY,
    url        text NOT NULL,
    secret     text NOT NULL,
    updated_at bigint NOT NULL
);

-- +goose Down
DROP TABLE webhook_endpoints;
DROP TABLE webhook_outbox;
