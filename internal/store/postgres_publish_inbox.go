package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// The inbox-model parts of a PostgreSQL publish batch (issue 15): muted
// recipients are skipped (one read of the batch's recipients' preferences
// per batch, never a statement per recipient), and a collapse key removes
// each recipient's earlier notification with that key.

// lockCollapsing takes the state-change lock of every recipient of a draft
// with a collapse key (sorted), first, as every state change does: the
// batch then removes their earlier inbox rows without racing their own
// state changes, and takes locks in the shared order.
func (s *Postgres) lockCollapsing(ctx context.Context, tx pgx.Tx, reqs []*pgPublish) error {
	var rs []notification.Recipient
	for _, r := range reqs {
		for i := range r.req.Drafts {
			d := &r.req.Drafts[i]
			if d.CollapseKey == "" {
				continue
			}
			for _, u := range r.users[i] {
				rs = append(rs, notification.Recipient{Tenant: d.Tenant, User: u})
			}
		}
	}
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b notification.Recipient) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.User, b.User))
	})
	rs = slices.Compact(rs)
	var b pgx.Batch
	for _, r := range rs {
		s.lockRecipient(&b, r)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("collapse locks: %w", err)
	}
	return nil
}

// filterMuted sets each fresh request's deliver lists: its users minus
// those who mute the draft, read in one query for the whole batch.
func (s *Postgres) filterMuted(ctx context.Context, tx pgx.Tx, reqs []*pgPublish) error {
	var ts, us []string
	for _, r := range reqs {
		r.deliver = r.users
		if !r.fresh {
			continue
		}
		for i := range r.req.Drafts {
			for _, u := range r.users[i] {
				ts, us = append(ts, r.req.Drafts[i].Tenant), append(us, u)
			}
		}
	}
	if len(us) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT p.tenant, p.user_id, p.muted_categories, p.muted_types FROM preferences p
		JOIN (SELECT DISTINCT t, u FROM unnest($1::text[], $2::text[]) AS c(t, u)) c ON p.tenant = c.t AND p.user_id = c.u`, ts, us)
	if err != nil {
		return fmt.Errorf("preferences: %w", err)
	}
	var (
		prefs       map[[2]string]notification.Preferences
		t, u, c, ty string
	)
	if _, err := pgx.ForEachRow(rows, []any{&t, &u, &c, &ty}, func() error {
		if prefs == nil {
			prefs = map[[2]string]notification.Preferences{}
		}
		prefs[[2]string{t, u}] = notification.Preferences{MutedCategories: splitMuted(c), MutedTypes: splitMuted(ty)}
		return nil
	}); err != nil {
		return fmt.Errorf("preferences: %w", err)
	}
	if len(prefs) == 0 {
		return nil
	}
	for _, r := range reqs {
		if !r.fresh {
			continue
		}
		r.deliver = make([][]string, len(r.users))
		for i := range r.req.Drafts {
			d := &r.req.Drafts[i]
			for _, u := range r.users[i] {
				if p, ok := prefs[[2]string{d.Tenant, u}]; !ok || !p.Mutes(d.Category, d.Type) {
					r.deliver[i] = append(r.deliver[i], u)
				}
			}
		}
	}
	return nil
}

// collapseDelta is what a batch's collapses take out of one user's counters.
type collapseDelta struct{ unread, unseen int64 }

// collapseRows removes, for each delivery of a draft with a collapse key
// (in delivery order), the user's earlier inbox rows with that key, takes
// them out of the user's counters, records the latest in the delivery
// (Replaces), and deletes notifications left without recipients. The
// users' state-change locks are held (lockCollapsing).
func collapseRows(ctx context.Context, tx pgx.Tx, dels []runDelivery) error {
	if len(dels) == 0 {
		return nil
	}
	var (
		b      pgx.Batch
		users  = map[[2]string]collapseDelta{}
		cats   = map[[3]string]int64{}
		orphan []string
	)
	for _, dl := range dels {
		ev, d := dl.ev, &dl.ev.Deliveries[dl.i]
		k := [2]string{ev.Tenant, d.User}
		// The earlier notifications are locked KEY SHARE, skipping those the
		// sweeper holds (they are leaving anyway): waiting for the sweeper,
		// which deletes inbox rows before it updates user_streams, while
		// holding this batch's user_streams rows would deadlock.
		b.Queue(`DELETE FROM inbox i USING notifications n
			WHERE n.id IN (SELECT x.id FROM notifications x WHERE x.tenant = $1 AND x.collapse_key = $3 AND x.id <> $4
			                 ORDER BY x.id FOR KEY SHARE SKIP LOCKED)
			  AND i.notification_id = n.id AND i.tenant = $1 AND i.user_id = $2 AND i.seq < $5
			RETURNING i.notification_id, i.read, i.archived, i.seq, n.category,
			  (SELECT seen_seq FROM user_streams WHERE tenant = $1 AND user_id = $2)`,
			ev.Tenant, d.User, ev.Notification.CollapseKey, ev.Notification.ID, d.Seq).Query(func(rows pgx.Rows) error {
			var (
				o        inboxRow
				seenSeq  int64
				lastSeq  int64 = -1
				delta          = users[k]
				replaced inboxRow
				unseen   bool
			)
			_, err := pgx.ForEachRow(rows, []any{&o.id, &o.read, &o.archived, &o.seq, &o.category, &seenSeq}, func() error {
				u := !o.archived && o.seq > seenSeq
				if !o.read && !o.archived {
					delta.unread++
					if o.category != "" {
						cats[[3]string{ev.Tenant, d.User, o.category}]--
					}
				}
				if u {
					delta.unseen++
				}
				if o.seq > lastSeq {
					lastSeq, replaced, unseen = o.seq, o, u
				}
				orphan = append(orphan, o.id)
				return nil
			})
			users[k] = delta
			if lastSeq >= 0 {
				d.Replaces, d.ReplacedUnread, d.ReplacedUnseen = replaced.id, !replaced.read && !replaced.archived, unseen
			}
			return err
		})
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("collapse: %w", err)
	}
	// The counts the deliveries carry include the removed rows: removals
	// are applied as if before the batch's inserts.
	for _, dl := range dels {
		d := &dl.ev.Deliveries[dl.i]
		d.Unread -= users[[2]string{dl.ev.Tenant, d.User}].unread
	}
	var c pgx.Batch
	for _, k := range sortedKeys(users, comparePair) {
		if dd := users[k]; dd.unread != 0 || dd.unseen != 0 {
			c.Queue(`UPDATE user_streams SET unread = unread - $3, unseen = unseen - $4 WHERE tenant = $1 AND user_id = $2`,
				k[0], k[1], dd.unread, dd.unseen)
		}
	}
	queueCategoryCounts(&c, cats)
	if len(orphan) > 0 {
		c.Queue(`DELETE FROM notifications WHERE id IN (
			SELECT id FROM notifications n WHERE n.id = ANY($1)
			  AND NOT EXISTS (SELECT 1 FROM inbox WHERE notification_id = n.id)
			ORDER BY n.id FOR UPDATE SKIP LOCKED)`, orphan)
	}
	if err := tx.SendBatch(ctx, &c).Close(); err != nil {
		return fmt.Errorf("collapse counters: %w", err)
	}
	return nil
}

// queueCategoryCounts queues the addition of cats (by tenant, user and
// category) to the category counters, in lock order.
func queueCategoryCounts(b *pgx.Batch, cats map[[3]string]int64) {
	if len(cats) == 0 {
		return
	}
	ks := sortedKeys(cats, compareTriple)
	ts, us, cs, ns := make([]string, len(ks)), make([]string, len(ks)), make([]string, len(ks)), make([]int64, len(ks))
	for i, k := range ks {
		ts[i], us[i], cs[i], ns[i] = k[0], k[1], k[2], cats[k]
	}
	b.Queue(`INSERT INTO category_counts (tenant, user_id, category, unread)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS c(t, u, k, n)
		ORDER BY c.t COLLATE "C", c.u COLLATE "C", c.k COLLATE "C"
		ON CONFLICT (tenant, user_id, category) DO UPDATE SET unread = category_counts.unread + excluded.unread`, ts, us, cs, ns)
}

func compareTriple(a, b [3]string) int {
	return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]), strings.Compare(a[2], b[2]))
}
