-- Generated from internal/store/migrations/sqlite/*.sql (the Up sections, in order).
-- Regenerate: see README.md ("Schema").
-- from 00001_init.sql
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
CREATE TABLE user_streams (
    tenant  TEXT    NOT NULL,
    user_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    unread  INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id)
) WITHOUT ROWID;
CREATE TABLE tenant_streams (
    tenant TEXT    NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE audience_totals (
    tenant       TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,
    total        INTEGER NOT NULL,
    PRIMARY KEY (tenant, audience_key)
) WITHOUT ROWID;
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
CREATE TABLE receipt_counts (
    tenant       TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    audience_key TEXT    NOT NULL,
    seen         INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, audience_key)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    ids          TEXT    NOT NULL, -- JSON array of ids
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);
-- from 00002_revocations.sql
CREATE TABLE revocations (
    tenant     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    token_id   TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, token_id)
) WITHOUT ROWID;
-- from 00003_inbox_indexes.sql
DROP INDEX inbox_user_unread;
DROP INDEX inbox_user_notification;
DROP INDEX inbox_notification;
CREATE UNIQUE INDEX inbox_notification ON inbox (notification_id, tenant, user_id);
