//go:build ncruces

package main

import (
	"fmt"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver"
)

const sqlDriver = "sqlite3"

func init() {
	driverName = "ncruces"
	apis["native"] = openNative
}

func dsn(path string) string { return "file:" + path }

// nativeWriter is the same write path on ncruces's own API
// (github.com/ncruces/go-sqlite3: Conn, Stmt, Bind*, Step, Column*), with
// no database/sql in between.
type nativeWriter struct {
	c *sqlite3.Conn

	begin_, commit_                    *sqlite3.Stmt
	notification, bump, inbox          *sqlite3.Stmt
	runNotification, runBump, runInbox *sqlite3.Stmt
}

func openNative(path string) (writer, error) {
	c, err := sqlite3.Open("file:" + path)
	if err != nil {
		return nil, err
	}
	return &nativeWriter{c: c}, nil
}

func (w *nativeWriter) exec(query string) error { return w.c.Exec(query) }

func (w *nativeWriter) prepare(st statements) error {
	for _, p := range []struct {
		dst   **sqlite3.Stmt
		query string
	}{
		{&w.begin_, `BEGIN IMMEDIATE`}, {&w.commit_, `COMMIT`},
		{&w.notification, st.notification}, {&w.bump, st.bump}, {&w.inbox, st.inbox},
		{&w.runNotification, st.runNotification}, {&w.runBump, st.runBump}, {&w.runInbox, st.runInbox},
	} {
		s, _, err := w.c.Prepare(p.query)
		if err != nil {
			return fmt.Errorf("%w: %s", err, p.query)
		}
		*p.dst = s
	}
	return nil
}

func (w *nativeWriter) begin() error  { return w.begin_.Exec() }
func (w *nativeWriter) commit() error { return w.commit_.Exec() }

// bindNotification binds the 11 values of p's notification row from
// parameter base+1 on.
func bindNotification(s *sqlite3.Stmt, base int, p *pub) error {
	return firstErr(
		s.BindText(base+1, p.id),
		s.BindText(base+2, tenant),
		s.BindInt(base+3, kindUser),
		s.BindText(base+4, ""),
		s.BindText(base+5, ntype),
		s.BindText(base+6, title),
		s.BindText(base+7, body),
		s.BindNull(base+8),
		s.BindInt64(base+9, p.createdAt),
		s.BindNull(base+10),
		s.BindNull(base+11),
	)
}

func bindInbox(s *sqlite3.Stmt, base int, p *pub) error {
	return firstErr(
		s.BindText(base+1, tenant),
		s.BindText(base+2, p.user),
		s.BindInt64(base+3, p.seq),
		s.BindText(base+4, p.id),
	)
}

func (w *nativeWriter) publishOne(p *pub) error {
	if err := bindNotification(w.notification, 0, p); err != nil {
		return err
	}
	if err := w.notification.Exec(); err != nil {
		return fmt.Errorf("notification: %w", err)
	}
	s := w.bump
	if err := firstErr(s.BindText(1, tenant), s.BindText(2, p.user)); err != nil {
		return err
	}
	if !s.Step() {
		err := s.Reset()
		return fmt.Errorf("user stream: no row: %v", err)
	}
	p.seq, p.unread = s.ColumnInt64(0), s.ColumnInt64(1)
	if err := s.Reset(); err != nil {
		return fmt.Errorf("user stream: %w", err)
	}
	if err := bindInbox(w.inbox, 0, p); err != nil {
		return err
	}
	if err := w.inbox.Exec(); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

func (w *nativeWriter) publishRun(ps []pub) error {
	for i := range ps {
		if err := bindNotification(w.runNotification, i*notificationCols, &ps[i]); err != nil {
			return err
		}
	}
	if err := w.runNotification.Exec(); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	s := w.runBump
	for i := range ps {
		if err := firstErr(s.BindText(i*bumpCols+1, tenant), s.BindText(i*bumpCols+2, ps[i].user)); err != nil {
			return err
		}
	}
	got := make([]bumpRow, 0, len(ps))
	for s.Step() {
		got = append(got, bumpRow{
			key: s.ColumnText(0) + "\x00" + s.ColumnText(1),
			seq: s.ColumnInt64(2), unread: s.ColumnInt64(3),
		})
	}
	if err := s.Reset(); err != nil {
		return fmt.Errorf("user streams: %w", err)
	}
	if err := assignRun(ps, got); err != nil {
		return err
	}
	for i := range ps {
		if err := bindInbox(w.runInbox, i*inboxCols, &ps[i]); err != nil {
			return err
		}
	}
	if err := w.runInbox.Exec(); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}

func (w *nativeWriter) version() (string, error) {
	s, _, err := w.c.Prepare(`SELECT sqlite_version()`)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if !s.Step() {
		return "", s.Err()
	}
	return s.ColumnText(0), nil
}

func (w *nativeWriter) close() error {
	for _, s := range []*sqlite3.Stmt{w.begin_, w.commit_, w.notification, w.bump, w.inbox, w.runNotification, w.runBump, w.runInbox} {
		if s != nil {
			_ = s.Close()
		}
	}
	return w.c.Close()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
