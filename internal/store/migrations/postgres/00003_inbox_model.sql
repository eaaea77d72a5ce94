-- +goose Up
-- The inbox model: categories, collapse keys, seen vs read, archive and
-- preferences (issue 15). Same model as the SQLite migration 00004:
--
-- * notifications.category ('' for none) and collapse_key (NULL for none),
--   with a partial index of keyed rows only.
-- * inbox.archived and receipts.archived: archived items count neither as
--   unread nor as unseen; a receipt row exists only while it is read,
--   deleted or archived.
-- * user_streams.unseen counts the user's named, unarchived items after
--   seen_seq; seen_tenant_seq is the seen mark in the broadcast stream.
--   Everything published before this migration counts as seen.
-- * category_counts: unread named items per (user, category). Broadcasts
--   are also counted in audience_totals and receipt_counts under derived
--   keys of their audience key: by type ("<key>" || chr(31) || 't' ||
--   chr(31) || "<type>"), by category ('c') and by both ('ct'). The type
--   keys of existing broadcasts are filled in below.
-- * preferences: muted categories and types, comma-separated.
ALTER TABLE notifications ADD COLUMN category text NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN collapse_key text COLLATE "C";
CREATE INDEX notifications_collapse ON notifications (tenant, collapse_key) WHERE collapse_key IS NOT NULL;

ALTER TABLE inbox ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TABLE receipts ADD COLUMN archived boolean NOT NULL DEFAULT false;

ALTER TABLE user_streams ADD COLUMN unseen bigint NOT NULL DEFAULT 0;
ALTER TABLE user_streams ADD COLUMN seen_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE user_streams ADD COLUMN seen_tenant_seq bigint NOT NULL DEFAULT 0;
UPDATE user_streams u SET seen_seq = u.seq,
    seen_tenant_seq = COALESCE((SELECT t.seq FROM tenant_streams t WHERE t.tenant = u.tenant), 0);

INSERT INTO audience_totals (tenant, audience_key, total)
SELECT tenant, (CASE audience_kind WHEN 2 THEN '*' ELSE 'role:' || audience_role END) || chr(31) || 't' || chr(31) || type, count(*)
FROM notifications WHERE tenant_seq IS NOT NULL GROUP BY 1, 2;
INSERT INTO receipt_counts (tenant, user_id, audience_key, seen)
SELECT rc.tenant, rc.user_id, rc.audience_key || chr(31) || 't' || chr(31) || n.type, count(*)
FROM receipts rc JOIN notifications n ON n.id = rc.notification_id GROUP BY 1, 2, 3;

CREATE TABLE category_counts (
    tenant   text COLLATE "C" NOT NULL,
    user_id  text COLLATE "C" NOT NULL,
    category text COLLATE "C" NOT NULL,
    unread   bigint NOT NULL,
    PRIMARY KEY (tenant, user_id, category)
) WITH (fillfactor = 70);

CREATE TABLE preferences (
    tenant           text COLLATE "C" NOT NULL,
    user_id          text COLLATE "C" NOT NULL,
    muted_categories text NOT NULL DEFAULT '',
    muted_types      text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, user_id)
);

-- +goose Down
DELETE FROM audience_totals WHERE strpos(audience_key, chr(31)) > 0;
DELETE FROM receipt_counts WHERE strpos(audience_key, chr(31)) > 0;
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
