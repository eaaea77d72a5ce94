-- Herald PostgreSQL schema, version 1. Same model as the SQLite schema.
--
-- Times are Unix milliseconds (bigint). Audience kinds follow
-- notification.AudienceKind: 1 users, 2 tenant, 3 role. Keys compare
-- bytewise (COLLATE "C"): ids are ULIDs whose order is their byte order, and
-- the read path uses '~' as "after every id", which a locale collation would
-- not sort last.
--
-- Positions: user_streams.seq and tenant_streams.seq are bumped by
-- INSERT ... ON CONFLICT DO UPDATE inside the publishing transaction, whose
-- row lock is held until COMMIT. Writers of one stream are therefore
-- serialised and commit in sequence order: once seq N is visible, every seq
-- below it is too (a bigserial would not be commit-ordered).
--
-- Unread counts are maintained counters, never COUNT(*):
--   explicit unread  = user_streams.unread
--   broadcast unread = (audience_totals["*"] - receipt_counts["*"])
--                    + (audience_totals["role:R"] - receipt_counts["role:R"])
--
-- Counter tables are updated in place at every publish; a fillfactor below
-- 100 leaves room on each page for HOT updates (their updated columns are not
-- indexed).

-- +goose Up
CREATE TABLE notifications (
    id            text COLLATE "C" NOT NULL PRIMARY KEY, -- ULID, time-ordered
    tenant        text COLLATE "C" NOT NULL,
    audience_kind smallint NOT NULL CHECK (audience_kind IN (1, 2, 3)),
    audience_role text COLLATE "C" NOT NULL DEFAULT '',
    type          text NOT NULL DEFAULT '',
    title         text NOT NULL DEFAULT '',
    body          text NOT NULL DEFAULT '',
    data          text,                      -- JSON object as published, or NULL
    created_at    bigint NOT NULL,
    expires_at    bigint,                    -- NULL: never
    tenant_seq    bigint,                    -- broadcasts only
    CHECK ((audience_kind = 1) = (tenant_seq IS NULL))
);
CREATE UNIQUE INDEX notifications_tenant_seq ON notifications (tenant, tenant_seq) WHERE tenant_seq IS NOT NULL;
CREATE INDEX notifications_broadcast_id ON notifications (tenant, id) WHERE tenant_seq IS NOT NULL;
CREATE INDEX notifications_expires ON notifications (expires_at) WHERE expires_at IS NOT NULL;

-- One row per explicit recipient of a notification: the user's stream.
-- Deleting a notification for a user removes its row.
--
-- No foreign key to notifications: inbox rows are only ever inserted with
-- their notification, in the same transaction, and removed before it (the
-- sweeper, Delete), so the key would only cost a trigger and a row lock on
-- the notification per recipient, on the publish path.
CREATE TABLE inbox (
    tenant          text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    notification_id text COLLATE "C" NOT NULL,
    read            boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, user_id, seq)
) WITH (fillfactor = 90);
CREATE UNIQUE INDEX inbox_user_notification ON inbox (tenant, user_id, notification_id);
CREATE INDEX inbox_notification ON inbox (notification_id);
-- Unlike SQLite, no partial index of unread rows: measured here it made
-- inserting inbox rows 1.6-1.8 times slower, and since "read" is then in no
-- index, marking a row read can be a HOT update (fillfactor leaves room for
-- it). An unread-only List walks inbox_user_notification instead.

-- Per-user stream head and explicit unread counter.
CREATE TABLE user_streams (
    tenant  text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    unread  bigint NOT NULL,
    PRIMARY KEY (tenant, user_id)
) WITH (fillfactor = 70);

-- Per-tenant broadcast stream head.
CREATE TABLE tenant_streams (
    tenant text COLLATE "C" NOT NULL PRIMARY KEY,
    seq    bigint NOT NULL
) WITH (fillfactor = 50);

-- Number of live broadcast notifications per audience key ("*" or "role:<r>").
CREATE TABLE audience_totals (
    tenant       text COLLATE "C" NOT NULL,
    audience_key text COLLATE "C" NOT NULL,
    total        bigint NOT NULL,
    PRIMARY KEY (tenant, audience_key)
) WITH (fillfactor = 50);

-- One row per (user, broadcast) the user has read or deleted.
CREATE TABLE receipts (
    tenant          text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C" NOT NULL,
    notification_id text COLLATE "C" NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    audience_key    text COLLATE "C" NOT NULL,
    read            boolean NOT NULL DEFAULT false,
    deleted         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant, user_id, notification_id)
);
CREATE INDEX receipts_notification ON receipts (notification_id);

-- Number of receipt rows per (user, audience key).
CREATE TABLE receipt_counts (
    tenant       text COLLATE "C" NOT NULL,
    user_id      text COLLATE "C" NOT NULL,
    audience_key text COLLATE "C" NOT NULL,
    seen         bigint NOT NULL,
    PRIMARY KEY (tenant, user_id, audience_key)
) WITH (fillfactor = 70);

-- Idempotency records: the ids a (scope, key) produced, kept 24 hours. The
-- primary key is what makes a key single-use across nodes: a publisher
-- claims it with INSERT ... ON CONFLICT DO NOTHING in its transaction.
CREATE TABLE idempotency (
    scope        text COLLATE "C" NOT NULL,
    idem_key     text COLLATE "C" NOT NULL,
    request_hash text NOT NULL,
    ids          text NOT NULL, -- the ids, comma-separated, in draft order
    created_at   bigint NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
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
