-- Herald SQLite schema, version 1.
--
-- Times are Unix milliseconds (INTEGER). Audience kinds follow
-- notification.AudienceKind: 1 users, 2 tenant, 3 role.
--
-- Unread counts are maintained counters, never COUNT(*):
--   explicit unread  = user_streams.unread
--   broadcast unread = (audience_totals["*"] - receipt_counts["*"])
--                    + (audience_totals["role:R"] - receipt_counts["role:R"])

-- +goose Up
-- One row per notification. Broadcasts (tenant, role) carry tenant_seq, their
-- position in the tenant stream; explicit-user notifications have it NULL.
CREATE TABLE notifications (
    id            TEXT    NOT NULL PRIMARY KEY, -- ULID, time-ordered
    tenant        TEXT    NOT NULL,
    audience_kind INTEGER NOT NULL CHECK (audience_kind IN (1, 2, 3)),
    audience_role TEXT    NOT NULL DEFAULT '',
    type          TEXT    NOT NULL DEFAULT '',
    title         TEXT    NOT NULL DEFAULT '',
    body          TEXT    NOT NULL DEFAULT '',
    data          TEXT,                          -- JSON object or NULL
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,                       -- NULL: never
    tenant_seq    INTEGER,
    CHECK ((audience_kind = 1) = (tenant_seq IS NULL))
);
CREATE UNIQUE INDEX notifications_tenant_seq ON notifications (tenant, tenant_seq) WHERE tenant_seq IS NOT NULL;
CREATE INDEX notifications_broadcast_id ON notifications (tenant, id) WHERE tenant_seq IS NOT NULL;
CREATE INDEX notifications_expires ON notifications (expires_at) WHERE expires_at IS NOT NULL;

-- One row per explicit recipient of a notification: the user's stream.
-- Deleting a notification for a user removes its row.
CREATE TABLE inbox (
    tenant          TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    read            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, user_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX inbox_user_notification ON inbox (tenant, user_id, notification_id);
CREATE INDEX inbox_user_unread ON inbox (tenant, user_id, notification_id) WHERE read = 0;
CREATE INDEX inbox_notification ON inbox (notification_id);

-- Per-user stream head and explicit unread counter.
CREATE TABLE user_streams (
    tenant  TEXT    NOT NULL,
    user_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    unread  INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id)
) WITHOUT ROWID;

-- Per-tenant broadcast stream head.
CREATE TABLE tenant_streams (
    tenant TEXT    NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL
) WITHOUT ROWID;

-- Number of live broadcast notifications per audience key ("*" or "role:<r>").
CREATE TABLE audience_totals (
    tenant       TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,
    total        INTEGER NOT NULL,
    PRIMARY KEY (tenant, audience_key)
) WITHOUT ROWID;

-- One row per (user, broadcast) the user has read or deleted.
CREATE TABLE receipts (
    tenant          TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    audience_key    TEXT    NOT NULL,
    read            INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, user_id, notification_id)
) WITHOUT ROWID;
CREATE INDEX receipts_notification ON receipts (notification_id);

-- Number of receipt rows per (user, audience key).
CREATE TABLE receipt_counts (
    tenant       TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,
    seen         INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, audience_key)
) WITHOUT ROWID;

-- Idempotency records: the ids a (scope, key) produced, kept 24 hours.
CREATE TABLE idempotency (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    ids          TEXT    NOT NULL, -- JSON array of ids
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);

-- +goose Down
DROP TABLE idempotency;
DROP TABLE receipt_counts;
DROP TABLE receipts;
DROP TABLE audience_totals;
DROP TABLE tenant_streams;
DROP TABLE user_streams;
DROP TABLE inbox;
DROP TABLE notifications;
