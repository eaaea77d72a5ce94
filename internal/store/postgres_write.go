package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/notification"
)

// pgPublish is one publish request queued for the writer goroutine.
type pgPublish struct {
	// ctx is the caller's context, bounded by the request's Deadline. A
	// request whose ctx has ended when the writer picks it up is not run;
	// the batch it joins is abandoned (rolled back) when the contexts of
	// all its requests have ended.
	ctx context.Context
	req *PublishRequest
	// done receives exactly one value, the request's outcome, after the
	// batch has committed or failed. Buffered, so the writer never blocks on
	// a caller that has gone away.
	done chan error

	// Prepared by the caller (see prepare), so that the writer goroutine,
	// which all publishes of a handle go through, does as little as
	// possible: the ids, the creation time, one event per draft (the
	// writer sets its TenantSeq or Deliveries), each draft's data as
	// stored, each draft's distinct users (nil for a broadcast).
	ids    []string
	now    time.Time
	events []*notification.Event
	data   []*string
	users  [][]string
	// deliver are, per draft, the users who do not mute it (set by the
	// writer at each attempt, see filterMuted).
	deliver [][]string

	// Written by the writer goroutine only; read by the caller after a nil
	// error from done.
	res PublishResult
	err error // the request's own outcome in the last attempt (mismatch)
	// fresh is set, per attempt, when the request writes its drafts (it
	// has no key, or claimed it).
	fresh bool
}

// The writer's view of a request (see writeRequest): a request weighs its
// drafts against pgBatchDrafts, so a batch holds at most pgBatchDrafts
// drafts unless it is a single larger request.
func (p *pgPublish) abandoned() error                    { return p.ctx.Err() }
func (p *pgPublish) weight() int                         { return len(p.req.Drafts) }
func (p *pgPublish) commitErr() error                    { return p.err }
func (p *pgPublish) commitEvents() []*notification.Event { return p.res.Events }
func (p *pgPublish) answer(err error)                    { p.done <- err }

// idemRecord is an idempotency record: the request hash and the ids.
type idemRecord struct {
	hash string
	ids  []string
}

type idemKey struct{ scope, key string }

// Publish validates req, then hands it to the writer and waits for the
// commit of the batch it joins. req.Deadline becomes a deadline on ctx, which
// also bounds the batch's queries (see batchContext).
func (s *Postgres) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	if !req.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
		defer cancel()
	}
	if err := entryErr(ctx, s.isClosed()); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	if err := validateRequest(&req); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	if err := validatePGRequest(&req); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	p := &pgPublish{ctx: ctx, req: &req, done: make(chan error, 1)}
	if err := s.prepare(p); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	if err := s.enqueue(ctx, p); err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	select {
	case err := <-p.done:
		return p.result(err)
	case <-ctx.Done():
		// Prefer an outcome that arrived at the same time.
		select {
		case err := <-p.done:
			return p.result(err)
		default:
		}
		return PublishResult{}, fmt.Errorf("store: publish: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// prepare assigns p's ids and creation time and builds its events.
func (s *Postgres) prepare(p *pgPublish) error {
	drafts := p.req.Drafts
	p.now = s.clock()
	p.ids = make([]string, len(drafts))
	p.events = make([]*notification.Event, len(drafts))
	p.data = make([]*string, len(drafts))
	p.users = make([][]string, len(drafts))
	for i := range drafts {
		d := &drafts[i]
		n, err := newNotification(s.ids, d, p.now)
		if err != nil {
			return err
		}
		if n.Data != nil {
			str := string(n.Data)
			p.data[i] = &str
		}
		p.ids[i] = n.ID
		p.events[i] = &notification.Event{Kind: notification.EventNotification, Tenant: d.Tenant, Notification: n}
		if !d.Audience.Broadcast() {
			p.users[i] = distinctUsers(d.Audience.Users)
		}
	}
	return nil
}

func (p *pgPublish) result(err error) (PublishResult, error) {
	if err != nil {
		return PublishResult{}, fmt.Errorf("store: publish: %w", err)
	}
	return p.res, nil
}

func (s *Postgres) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// validatePGRequest rejects what PostgreSQL cannot store although the
// engine-neutral validation accepts it: NUL characters in text. (The rules
// for identifiers and types already exclude them.)
func validatePGRequest(req *PublishRequest) error {
	if hasNUL(req.Scope, req.Key, req.RequestHash) {
		return fmt.Errorf("%w: idempotency scope, key or hash contains NUL", ErrInvalid)
	}
	for i := range req.Drafts {
		d := &req.Drafts[i]
		if hasNUL(d.Title, d.Body) || bytes.IndexByte(d.Data, 0) >= 0 {
			return fmt.Errorf("%w: draft %d: text contains NUL, which PostgreSQL cannot store", ErrInvalid, i)
		}
	}
	return nil
}

func hasNUL(ss ...string) bool {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
	return false
}

// enqueue puts p on the writer queue, waiting for room until ctx ends.
func (s *Postgres) enqueue(ctx context.Context, p *pgPublish) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := entryErr(ctx, s.closed); err != nil {
		return err
	}
	return s.enqueueWait(ctx, nil, p)
}

// batchContext is the context of a batch transaction: it ends after
// TxTimeout, or as soon as every request's caller has gone (nobody waits
// for the outcome, so the transaction is rolled back rather than left to
// hang on a slow database).
func (s *Postgres) batchContext(reqs []*pgPublish) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TxTimeout)
	var left atomic.Int64
	left.Store(int64(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// commitBatch runs reqs in one transaction and sets each request's err
// (nil when committed). When the transaction fails for a reason that is
// neither the database being unavailable nor a deadlock, one request may be
// at fault: each is then run in a transaction of its own.
func (s *Postgres) commitBatch(reqs []*pgPublish) {
	if s.testHookBatch != nil {
		s.testHookBatch(len(reqs))
	}
	ctx, cancel := s.batchContext(reqs)
	defer cancel()
	err := s.inTx(ctx, isIdemVanished, func(tx pgx.Tx) error { return s.publishTx(ctx, tx, reqs) })
	if err == nil {
		return
	}
	if len(reqs) > 1 && !errors.Is(err, ErrUnavailable) {
		s.log.Warn("store: publish batch failed; retrying its requests one by one", "requests", len(reqs), "err", err)
		for _, r := range reqs {
			one := []*pgPublish{r}
			if err := s.inTx(ctx, isIdemVanished, func(tx pgx.Tx) error { return s.publishTx(ctx, tx, one) }); err != nil {
				s.log.Error("store: publish failed", "drafts", len(r.req.Drafts), "err", err)
				r.err = err
			}
		}
		return
	}
	s.log.Error("store: publish batch failed", "requests", len(reqs), "err", err)
	for _, r := range reqs {
		r.err = err
	}
}

// errIdemVanished: an idempotency key conflicted, but its record was gone
// by the time it was read (a sweep purged it meanwhile). Running the
// transaction again claims the key afresh.
var errIdemVanished = errors.New("idempotency record vanished")

func isIdemVanished(err error) bool { return errors.Is(err, errIdemVanished) }

// publishTx writes the batch inside tx: it claims the idempotency keys,
// answers the requests whose key was used before, bumps the stream and
// audience counters of the others, then inserts their notifications and
// inbox rows. Locks are taken in one global order (idempotency keys, tenant
// streams, audience totals, user streams, each sorted) so that concurrent
// batches of several nodes cannot deadlock. It may run several times.
func (s *Postgres) publishTx(ctx context.Context, tx pgx.Tx, reqs []*pgPublish) error {
	for _, r := range reqs {
		r.res, r.err, r.fresh = PublishResult{}, nil, true
	}
	if err := s.lockCollapsing(ctx, tx, reqs); err != nil {
		return err
	}
	if err := s.claimKeys(ctx, tx, reqs); err != nil {
		return err
	}
	if err := s.filterMuted(ctx, tx, reqs); err != nil {
		return err
	}

	tenants, totals, users, cats, rows := counterDemands(reqs)
	if rows == 0 {
		return nil
	}
	tenantEnd, userEnd, err := bumpCounters(ctx, tx, tenants, totals, users, cats)
	if err != nil {
		return err
	}

	// Assign positions in request and draft order: each stream's range
	// ends at the value its counter now holds.
	tenantNext := make(map[string]int64, len(tenants))
	for t, n := range tenants {
		tenantNext[t] = tenantEnd[t] - n + 1
	}
	type next struct{ seq, unread int64 }
	userNext := make(map[[2]string]next, len(users))
	for k, n := range users {
		e := userEnd[k]
		userNext[k] = next{e.seq - n + 1, e.unread - n + 1}
	}
	var (
		nr        notificationRows
		ir        inboxRows
		collapses []runDelivery
		wh        []WebhookEvent
	)
	for _, r := range reqs {
		if !r.fresh {
			continue
		}
		r.res = PublishResult{IDs: r.ids, Events: r.events}
		for i := range r.req.Drafts {
			d := &r.req.Drafts[i]
			ev := r.events[i]
			if d.Audience.Broadcast() {
				ev.TenantSeq = tenantNext[d.Tenant]
				tenantNext[d.Tenant]++
			} else {
				ev.Deliveries = make([]notification.Delivery, 0, len(r.deliver[i]))
				for _, u := range r.deliver[i] {
					k := [2]string{d.Tenant, u}
					nx := userNext[k]
					userNext[k] = next{nx.seq + 1, nx.unread + 1}
					ev.Deliveries = append(ev.Deliveries, notification.Delivery{User: u, Seq: nx.seq, Unread: nx.unread})
					ir.add(d.Tenant, u, nx.seq, ev.Notification.ID)
				}
				if d.CollapseKey != "" {
					for j := range ev.Deliveries {
						collapses = append(collapses, runDelivery{ev, j})
					}
				}
				if len(ev.Deliveries) == 0 {
					continue // every user muted it: nothing to store
				}
				evs, err := unseenEvents(s.outboxEngine.ids, ev.Notification, d, r.deliver[i])
				if err != nil {
					return err
				}
				wh = append(wh, evs...)
			}
			nr.add(ev.Notification, r.data[i], ev.TenantSeq)
		}
	}
	if err := insertRows(ctx, tx, &nr, &ir); err != nil {
		return err
	}
	if err := collapseRows(ctx, tx, collapses); err != nil {
		return err
	}
	return insertUnseenRows(ctx, tx, wh)
}

// counterDemands are the counter increments of the fresh requests, and the
// number of rows they write.
func counterDemands(reqs []*pgPublish) (tenants map[string]int64, totals, users map[[2]string]int64, cats map[[3]string]int64, rows int) {
	tenants, totals, users, cats = map[string]int64{}, map[[2]string]int64{}, map[[2]string]int64{}, map[[3]string]int64{}
	for _, r := range reqs {
		if !r.fresh {
			continue
		}
		for i := range r.req.Drafts {
			d := &r.req.Drafts[i]
			rows++
			if d.Audience.Broadcast() {
				tenants[d.Tenant]++
				for _, k := range counterKeys(d.Audience.Key(), d.Category, d.Type) {
					totals[[2]string{d.Tenant, k}]++
				}
				continue
			}
			for _, u := range r.deliver[i] {
				users[[2]string{d.Tenant, u}]++
				if d.Category != "" {
					cats[[3]string{d.Tenant, u, d.Category}]++
				}
				rows++
			}
		}
	}
	return tenants, totals, users, cats, rows
}

// insertUnseenRows inserts the notification.unseen outbox rows of a batch
// (no payload yet) with one statement.
func insertUnseenRows(ctx context.Context, tx pgx.Tx, wh []WebhookEvent) error {
	if len(wh) == 0 {
		return nil
	}
	var (
		id, tenant, user, nid []string
		created, due          []int64
	)
	for i := range wh {
		e := &wh[i]
		id, tenant, user, nid = append(id, e.ID), append(tenant, e.Tenant), append(user, e.User), append(nid, e.NotificationID)
		created, due = append(created, e.CreatedAt.UnixMilli()), append(due, e.DueAt.UnixMilli())
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_outbox (id, tenant, user_id, type, notification_id, created_at, due_at)
		SELECT u.id, u.tenant, u.user_id, $7, u.nid, u.created, u.due
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[]) AS u(id, tenant, user_id, nid, created, due)`,
		id, tenant, user, nid, created, due, WebhookNotificationUnseen); err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	return nil
}

// distinctUsers returns users (or any strings) without repeats, in
// first-seen order (users itself when it has none).
func distinctUsers(users []string) []string {
	if len(users) <= 16 {
		for j, u := range users {
			if slices.Contains(users[:j], u) {
				return distinctUsersMap(users)
			}
		}
		return users
	}
	return distinctUsersMap(users)
}

func distinctUsersMap(users []string) []string {
	seen := make(map[string]struct{}, len(users))
	out := make([]string, 0, len(users))
	for _, u := range users {
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			out = append(out, u)
		}
	}
	return out
}

// claimKeys claims the idempotency keys of the batch's requests with
// INSERT ... ON CONFLICT DO NOTHING (sorted, so concurrent batches lock keys
// in the same order). A key claimed by another transaction that has not
// committed yet makes the INSERT wait for it. Requests whose key was
// already used are answered from the record (Replayed, or
// ErrIdempotencyMismatch) and marked not fresh; so are later requests of the
// batch that repeat a key of an earlier one.
func (s *Postgres) claimKeys(ctx context.Context, tx pgx.Tx, reqs []*pgPublish) error {
	var (
		first  map[idemKey]*pgPublish
		claims []*pgPublish
	)
	for _, r := range reqs {
		if r.req.Key == "" {
			continue
		}
		if first == nil {
			first = make(map[idemKey]*pgPublish)
		}
		k := idemKey{r.req.Scope, r.req.Key}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = r
		claims = append(claims, r)
	}
	if len(claims) == 0 {
		return nil
	}
	slices.SortFunc(claims, func(a, b *pgPublish) int {
		if c := strings.Compare(a.req.Scope, b.req.Scope); c != 0 {
			return c
		}
		return strings.Compare(a.req.Key, b.req.Key)
	})
	n := len(claims)
	scopes, keys, hashes, idLists, created := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, r := range claims {
		scopes[i], keys[i], hashes[i] = r.req.Scope, r.req.Key, r.req.RequestHash
		idLists[i] = strings.Join(r.ids, ",")
		created[i] = r.now.UnixMilli()
	}
	rows, err := tx.Query(ctx, `INSERT INTO idempotency (scope, idem_key, request_hash, ids, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS c(s, k, h, i, t)
		ORDER BY c.s COLLATE "C", c.k COLLATE "C"
		ON CONFLICT (scope, idem_key) DO NOTHING
		RETURNING scope, idem_key`, scopes, keys, hashes, idLists, created)
	if err != nil {
		return fmt.Errorf("idempotency claim: %w", err)
	}
	claimed := make(map[idemKey]bool, n)
	var k idemKey
	if _, err := pgx.ForEachRow(rows, []any{&k.scope, &k.key}, func() error {
		claimed[k] = true
		return nil
	}); err != nil {
		return fmt.Errorf("idempotency claim: %w", err)
	}

	records := make(map[idemKey]idemRecord, n)
	var lostScopes, lostKeys []string
	for _, r := range claims {
		k := idemKey{r.req.Scope, r.req.Key}
		if claimed[k] {
			records[k] = idemRecord{hash: r.req.RequestHash, ids: r.ids}
		} else {
			lostScopes = append(lostScopes, k.scope)
			lostKeys = append(lostKeys, k.key)
		}
	}
	if len(lostKeys) > 0 {
		rows, err := tx.Query(ctx, `SELECT i.scope, i.idem_key, i.request_hash, i.ids FROM idempotency i
			JOIN unnest($1::text[], $2::text[]) AS c(s, k) ON i.scope = c.s AND i.idem_key = c.k`, lostScopes, lostKeys)
		if err != nil {
			return fmt.Errorf("idempotency record: %w", err)
		}
		var hash, ids string
		if _, err := pgx.ForEachRow(rows, []any{&k.scope, &k.key, &hash, &ids}, func() error {
			records[k] = idemRecord{hash: hash, ids: strings.Split(ids, ",")}
			return nil
		}); err != nil {
			return fmt.Errorf("idempotency record: %w", err)
		}
	}
	for _, r := range reqs {
		if r.req.Key == "" {
			continue
		}
		k := idemKey{r.req.Scope, r.req.Key}
		if first[k] == r && claimed[k] {
			continue // fresh: this request writes its drafts
		}
		r.fresh = false
		rec, ok := records[k]
		switch {
		case !ok:
			return errIdemVanished
		case rec.hash != r.req.RequestHash:
			r.err = ErrIdempotencyMismatch
		default:
			r.res = PublishResult{IDs: slices.Clone(rec.ids), Replayed: true}
		}
	}
	return nil
}

// counterEnd is a user stream's counters after a batch's increments.
type counterEnd struct{ seq, unread int64 }

// bumpCounters adds the batch's increments to the tenant streams, audience
// totals and user streams in one round trip, each upsert sorted by key
// (the lock order), and returns the streams' new values.
func bumpCounters(ctx context.Context, tx pgx.Tx, tenants map[string]int64, totals, users map[[2]string]int64, cats map[[3]string]int64) (map[string]int64, map[[2]string]counterEnd, error) {
	var b pgx.Batch
	tenantEnd := make(map[string]int64, len(tenants))
	userEnd := make(map[[2]string]counterEnd, len(users))
	if len(tenants) > 0 {
		ts := sortedKeys(tenants, strings.Compare)
		ns := make([]int64, len(ts))
		for i, t := range ts {
			ns[i] = tenants[t]
		}
		b.Queue(`INSERT INTO tenant_streams (tenant, seq)
			SELECT * FROM unnest($1::text[], $2::int8[]) AS c(t, n) ORDER BY c.t COLLATE "C"
			ON CONFLICT (tenant) DO UPDATE SET seq = tenant_streams.seq + excluded.seq
			RETURNING tenant, seq`, ts, ns).Query(func(rows pgx.Rows) error {
			var (
				t   string
				seq int64
			)
			_, err := pgx.ForEachRow(rows, []any{&t, &seq}, func() error {
				tenantEnd[t] = seq
				return nil
			})
			return err
		})
	}
	queueAudienceTotals(&b, totals)
	if len(users) > 0 {
		ts, us, ns := pairColumns(users)
		b.Queue(`INSERT INTO user_streams (tenant, user_id, seq, unread, unseen)
			SELECT c.t, c.u, c.n, c.n, c.n FROM unnest($1::text[], $2::text[], $3::int8[]) AS c(t, u, n) ORDER BY c.t COLLATE "C", c.u COLLATE "C"
			ON CONFLICT (tenant, user_id) DO UPDATE
			SET seq = user_streams.seq + excluded.seq, unread = user_streams.unread + excluded.unread,
			    unseen = user_streams.unseen + excluded.unseen
			RETURNING tenant, user_id, seq, unread`, ts, us, ns).Query(func(rows pgx.Rows) error {
			var (
				k [2]string
				e counterEnd
			)
			_, err := pgx.ForEachRow(rows, []any{&k[0], &k[1], &e.seq, &e.unread}, func() error {
				userEnd[k] = e
				return nil
			})
			return err
		})
	}
	queueCategoryCounts(&b, cats)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, nil, fmt.Errorf("counters: %w", err)
	}
	if len(tenantEnd) != len(tenants) || len(userEnd) != len(users) {
		return nil, nil, fmt.Errorf("counters: %d of %d tenant and %d of %d user streams returned",
			len(tenantEnd), len(tenants), len(userEnd), len(users))
	}
	return tenantEnd, userEnd, nil
}

func comparePair(a, b [2]string) int {
	if c := strings.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return strings.Compare(a[1], b[1])
}

// queueAudienceTotals queues the addition of totals (by tenant and
// audience key) to the audience totals, in lock order.
func queueAudienceTotals(b *pgx.Batch, totals map[[2]string]int64) {
	if len(totals) == 0 {
		return
	}
	ts, as, ns := pairColumns(totals)
	b.Queue(`INSERT INTO audience_totals (tenant, audience_key, total)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) AS c(t, a, n) ORDER BY c.t COLLATE "C", c.a COLLATE "C"
		ON CONFLICT (tenant, audience_key) DO UPDATE SET total = audience_totals.total + excluded.total`, ts, as, ns)
}

// pairColumns returns m's keys and values as three columns, sorted by key
// (the lock order).
func pairColumns(m map[[2]string]int64) (first, second []string, values []int64) {
	ks := sortedKeys(m, comparePair)
	first, second, values = make([]string, len(ks)), make([]string, len(ks)), make([]int64, len(ks))
	for i, k := range ks {
		first[i], second[i], values[i] = k[0], k[1], m[k]
	}
	return first, second, values
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, cmp)
	return ks
}

// notificationRows are notifications to insert, column by column.
type notificationRows struct {
	id, tenant, role, typ, title, body, category []string
	kind                                         []int16
	data, collapse                               []*string
	created                                      []int64
	expires, tenantSeq                           []*int64
}

func (r *notificationRows) add(n *notification.Notification, data *string, tenantSeq int64) {
	r.id = append(r.id, n.ID)
	r.tenant = append(r.tenant, n.Tenant)
	r.kind = append(r.kind, int16(n.Audience.Kind))
	r.role = append(r.role, n.Audience.Role)
	r.typ = append(r.typ, n.Type)
	r.title = append(r.title, n.Title)
	r.body = append(r.body, n.Body)
	r.data = append(r.data, data)
	r.created = append(r.created, n.CreatedAt.UnixMilli())
	r.category = append(r.category, n.Category)
	var ck *string
	if n.CollapseKey != "" {
		ck = &n.CollapseKey
	}
	r.collapse = append(r.collapse, ck)
	var ep, sp *int64
	if !n.ExpiresAt.IsZero() {
		ms := n.ExpiresAt.UnixMilli()
		ep = &ms
	}
	if n.Audience.Broadcast() {
		sp = &tenantSeq
	}
	r.expires = append(r.expires, ep)
	r.tenantSeq = append(r.tenantSeq, sp)
}

func (r *notificationRows) Len() int { return len(r.id) }

// inboxRows are inbox rows to insert, column by column.
type inboxRows struct {
	tenant, user, nid []string
	seq               []int64
}

func (r *inboxRows) add(tenant, user string, seq int64, nid string) {
	r.tenant = append(r.tenant, tenant)
	r.user = append(r.user, user)
	r.seq = append(r.seq, seq)
	r.nid = append(r.nid, nid)
}

var (
	notificationColumns = []string{"id", "tenant", "audience_kind", "audience_role", "type", "title", "body", "data", "created_at", "expires_at", "tenant_seq", "category", "collapse_key"}
	inboxColumns        = []string{"tenant", "user_id", "seq", "notification_id"}
)

// insertRows inserts the batch's notifications, then its inbox rows: with
// COPY when there are many, else with one INSERT over arrays each, sent
// together in one round trip.
func insertRows(ctx context.Context, tx pgx.Tx, nr *notificationRows, ir *inboxRows) error {
	if nr.Len()+len(ir.seq) >= pgCopyRows {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"notifications"}, notificationColumns, pgx.CopyFromSlice(nr.Len(), func(i int) ([]any, error) {
			return []any{nr.id[i], nr.tenant[i], nr.kind[i], nr.role[i], nr.typ[i], nr.title[i], nr.body[i], nr.data[i], nr.created[i], nr.expires[i], nr.tenantSeq[i], nr.category[i], nr.collapse[i]}, nil
		})); err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
		if len(ir.seq) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"inbox"}, inboxColumns, pgx.CopyFromSlice(len(ir.seq), func(i int) ([]any, error) {
				return []any{ir.tenant[i], ir.user[i], ir.seq[i], ir.nid[i]}, nil
			})); err != nil {
				return fmt.Errorf("inbox: %w", err)
			}
		}
		return nil
	}
	var b pgx.Batch
	b.Queue(`INSERT INTO notifications (`+strings.Join(notificationColumns, ", ")+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], $13::text[])`,
		nr.id, nr.tenant, nr.kind, nr.role, nr.typ, nr.title, nr.body, nr.data, nr.created, nr.expires, nr.tenantSeq, nr.category, nr.collapse)
	if len(ir.seq) > 0 {
		b.Queue(`INSERT INTO inbox (`+strings.Join(inboxColumns, ", ")+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[])`,
			ir.tenant, ir.user, ir.seq, ir.nid)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}
