//go:build modernc || ncruces || mattn

package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// sqlWriter is the write path through database/sql, as Herald's writer runs
// it (internal/store/sqlite_write.go, wtx): one *sql.Conn held for the run,
// BEGIN IMMEDIATE and COMMIT as statements on it, every statement prepared
// on it once.
type sqlWriter struct {
	ctx  context.Context
	db   *sql.DB
	conn *sql.Conn

	begin_, commit_                    *sql.Stmt
	notification, bump, inbox          *sql.Stmt
	runNotification, runBump, runInbox *sql.Stmt
}

func init() {
	apis["sql"] = openSQL
	checkpointer = sqlCheckpointer
}

func openDB(path string) (*sql.DB, error) {
	db, err := sql.Open(sqlDriver, dsn(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

func openSQL(path string) (writer, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &sqlWriter{ctx: ctx, db: db, conn: conn}, nil
}

func (w *sqlWriter) exec(query string) error {
	// Query, not Exec: some statements (PRAGMA journal_mode) return a row.
	rows, err := w.conn.QueryContext(w.ctx, query)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

func (w *sqlWriter) prepare(st statements) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&w.begin_, `BEGIN IMMEDIATE`}, {&w.commit_, `COMMIT`},
		{&w.notification, st.notification}, {&w.bump, st.bump}, {&w.inbox, st.inbox},
		{&w.runNotification, st.runNotification}, {&w.runBump, st.runBump}, {&w.runInbox, st.runInbox},
	} {
		s, err := w.conn.PrepareContext(w.ctx, p.query)
		if err != nil {
			return fmt.Errorf("%w: %s", err, p.query)
		}
		*p.dst = s
	}
	return nil
}

func (w *sqlWriter) begin() error {
	_, err := w.begin_.ExecContext(w.ctx)
	return err
}

func (w *sqlWriter) commit() error {
	_, err := w.commit_.ExecContext(w.ctx)
	return err
}

// publishOne is Herald's insertDraft for a draft to one user.
func (w *sqlWriter) publishOne(p *pub) error {
	if _, err := w.notification.ExecContext(w.ctx,
		p.id, tenant, kindUser, "", ntype, title, body, nil, p.createdAt, nil, nil); err != nil {
		return fmt.Errorf("notification: %w", err)
	}
	if err := w.bump.QueryRowContext(w.ctx, tenant, p.user).Scan(&p.seq, &p.unread); err != nil {
		return fmt.Errorf("user stream: %w", err)
	}
	if _, err := w.inbox.ExecContext(w.ctx, tenant, p.user, p.seq, p.id); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

// publishRun is Herald's publishRun for publishes to one user each.
func (w *sqlWriter) publishRun(ps []pub) error {
	var nargs []any
	for i := range ps {
		p := &ps[i]
		nargs = append(nargs, p.id, tenant, kindUser, "", ntype, title, body, nil, p.createdAt, nil, nil)
	}
	if _, err := w.runNotification.ExecContext(w.ctx, nargs...); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	bargs := make([]any, 0, len(ps)*bumpCols)
	for i := range ps {
		bargs = append(bargs, tenant, ps[i].user)
	}
	got := make([]bumpRow, 0, len(ps))
	rows, err := w.runBump.QueryContext(w.ctx, bargs...)
	if err != nil {
		return fmt.Errorf("user streams: %w", err)
	}
	for rows.Next() {
		var t, u string
		var b bumpRow
		if err := rows.Scan(&t, &u, &b.seq, &b.unread); err != nil {
			_ = rows.Close()
			return err
		}
		b.key = t + "\x00" + u
		got = append(got, b)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := assignRun(ps, got); err != nil {
		return err
	}
	iargs := make([]any, 0, len(ps)*inboxCols)
	for i := range ps {
		iargs = append(iargs, tenant, ps[i].user, ps[i].seq, ps[i].id)
	}
	if _, err := w.runInbox.ExecContext(w.ctx, iargs...); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

func (w *sqlWriter) version() (v string, err error) {
	err = w.conn.QueryRowContext(w.ctx, `SELECT sqlite_version()`).Scan(&v)
	return v, err
}

func (w *sqlWriter) close() error {
	_ = w.conn.Close()
	return w.db.Close()
}

// sqlCheckpointer is Herald's runCheckpointer (sqlite_checkpoint.go) on a
// connection of its own.
func sqlCheckpointer(path string) (wake func(), stop func(), err error) {
	db, err := openDB(path)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range []string{`PRAGMA busy_timeout = 5000`, `PRAGMA synchronous = FULL`} {
		if _, err := db.Exec(p); err != nil {
			_ = db.Close()
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	committed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-committed:
			}
			var busy, logPages, ckpt int
			_ = db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &ckpt)
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	wake = func() {
		select {
		case committed <- struct{}{}:
		default:
		}
	}
	stop = func() {
		cancel()
		<-done
		_ = db.Close()
	}
	return wake, stop, nil
}
