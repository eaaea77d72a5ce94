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
--   user_streams.unread. Broadcasts are also counted in audience_totals
--   and receipt_counts under derived keys of their audience key: by type
--   ("<key>" || char(31) || 't' || char(31) || "<type>"), by category
--   ('c') and by both ('ct', "<category>" || char(31) || "<type>"), so
--   that counts by category and without muted categories and types are
--   read from counters. The type keys of existing broadcasts are filled
--   in below (they have no category).
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

INSERT INTO audience_totals (tenant, audience_key, total)
SELECT tenant, (CASE audience_kind WHEN 2 THEN '*' ELSE 'role:' || audience_role END) || char(31) || 't' || char(31) || type, count(*)
FROM notifications WHERE tenant_seq IS NOT NULL GROUP BY 1, 2;
INSERT INTO receipt_counts (tenant, user_id, audience_key, seen)
SELECT rc.tenant, rc.user_id, rc.audience_key || char(31) || 't' || char(31) || n.type, count(*)
FROM receipts rc JOIN notifications n ON n.id = rc.notification_id GROUP BY 1, 2, 3;

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
DELETE FROM audience_totals WHERE audience_key LIKE '%' || char(31) || '%';
DELETE FROM receipt_counts WHERE audience_key LIKE '%' || char(31) || '%';
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
