-- +goose Up
-- The inbox model: categories, collapse keys, seen vs read, archive and
-- preferences (issue 15).
--
-- * notifications.category ('' for none) and collapse_key (NULL for none).
--   A collapse key is looked up per (tenant, key), then the user's inbox
--   row through inbox_notification; the partial index holds only keyed rows,
--   so a publish without a key does not pay for it.
-- * inbox.archived and receipts.archived. An archived item does not count
--   as unread nor as unseen; a receipt row exists only while it is read,
--   deleted or archived (so receipt_counts still counts rows).
-- * user_streams.unseen counts the user's named, unarchived items after
--   seen_seq; seen_tenant_seq is the user's seen mark in the tenant's
--   broadcast stream (unseen broadcasts are counted at read time, capped).
--   Everything published before this migration counts as seen.
-- * category_counts: unread named items per (user, category), beside
--   user_streams.unread. Broadcasts of a category are counted in
--   audience_totals and receipt_counts under a derived audience key:
--   "<key>" || char(31) || 'c' || char(31) || "<category>".
-- * preferences: muted categories and types, comma-separated.
ALTER TABLE notifications ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN collapse_key TEXT;
CREATE INDEX notifications_collapse ON notifications (tenant, collapse_key) WHERE collapse_key IS NOT NULL;

ALTER TABLE inbox ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE receipts ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;

ALTER TABLE user_streams ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_streams ADD COLUMN seen_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_streams ADD COLUMN seen_tenant_seq INTEGER NOT NULL DEFAULT 0;
UPDATE user_streams SET seen_seq = seq,
    seen_tenant_seq = COALESCE((SELECT t.seq FROM tenant_streams t WHERE t.tenant = user_streams.tenant), 0);

CREATE TABLE category_counts (
    tenant   TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    category TEXT    NOT NULL,
    unread   INTEGER NOT NULL,
    PRIMARY KEY (tenant, user_id, category)
) WITHOUT ROWID;

CREATE TABLE preferences (
    tenant           TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    muted_categories TEXT NOT NULL DEFAULT '',
    muted_types      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, user_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE preferences;
DROP TABLE category_counts;
ALTER TABLE user_streams DROP COLUMN seen_tenant_seq;
ALTER TABLE user_streams DROP COLUMN seen_seq;
ALTER TABLE user_streams DROP COLUMN unseen;
ALTER TABLE receipts DROP COLUMN archived;
ALTER TABLE inbox DROP COLUMN archived;
DROP INDEX notifications_collapse;
ALTER TABLE notifications DROP COLUMN collapse_key;
ALTER TABLE notifications DROP COLUMN category;
