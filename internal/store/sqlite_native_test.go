package store

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

func openTestNative(t *testing.T, path string, pragmas ...string) *nconn {
	t.Helper()
	c, err := openNative(path, pragmas)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.close() })
	return c
}

func mustExec(t *testing.T, c *nconn, query string, args ...any) int64 {
	t.Helper()
	n, err := c.exec(query, args)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func nativeCode(err error) int {
	var ne *nativeError
	if errors.As(err, &ne) {
		return ne.Code()
	}
	return -1
}

// TestNativeErrors: a constraint violation and bad SQL are errors with
// SQLite's codes and messages, and the statement and the connection work
// after them.
func TestNativeErrors(t *testing.T) {
	c := openTestNative(t, filepath.Join(t.TempDir(), "n.db"), "PRAGMA journal_mode(WAL)")
	mustExec(t, c, `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`)
	const ins = `INSERT INTO t (k, v) VALUES (?, ?)`
	if n := mustExec(t, c, ins, "a", 1); n != 1 {
		t.Fatalf("changes %d, want 1", n)
	}
	_, err := c.exec(ins, []any{"a", 2})
	if nativeCode(err)&0xff != sqlite3.SQLITE_CONSTRAINT || !strings.Contains(err.Error(), "UNIQUE constraint failed: t.k") {
		t.Fatalf("duplicate key: %v (code %d)", err, nativeCode(err))
	}
	if errors.Is(classify(err), ErrUnavailable) {
		t.Fatalf("a constraint violation classified as unavailable: %v", err)
	}
	mustExec(t, c, ins, "b", 2) // the same statement, reused after its error
	if _, err := c.exec(`SELEC 1`, nil); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("bad SQL: %v", err)
	}
	if _, err := c.exec(ins, []any{"c"}); err == nil || !strings.Contains(err.Error(), "expected 2 arguments, got 1") {
		t.Fatalf("missing argument: %v", err)
	}
	if _, err := c.exec(ins, []any{"c", struct{}{}}); err == nil {
		t.Fatal("unsupported argument type accepted")
	}
	if _, err := c.exec(`SELECT 1; SELECT 2`, nil); err == nil {
		t.Fatal("two statements accepted")
	}
	var n int64
	if err := c.queryRow(`SELECT count(*) FROM t`, nil).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count %d, %v; want 2", n, err)
	}
}

// TestNativeBusy: a write lock held by another connection gives
// SQLITE_BUSY once the busy timeout passes, classified as unavailable; the
// connection works once the lock is released.
func TestNativeBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.db")
	c := openTestNative(t, path, "PRAGMA busy_timeout(1)", "PRAGMA journal_mode(WAL)")
	mustExec(t, c, `CREATE TABLE t (v INTEGER)`)
	other := openTestNative(t, path, "PRAGMA busy_timeout(1)")
	mustExec(t, other, `BEGIN IMMEDIATE`)
	_, err := c.exec(`BEGIN IMMEDIATE`, nil)
	if nativeCode(err)&0xff != sqlite3.SQLITE_BUSY || !errors.Is(classify(err), ErrUnavailable) {
		t.Fatalf("begin while locked: %v (code %d)", err, nativeCode(err))
	}
	mustExec(t, other, `ROLLBACK`)
	mustExec(t, c, `BEGIN IMMEDIATE`)
	mustExec(t, c, `INSERT INTO t VALUES (1)`)
	mustExec(t, c, `COMMIT`)
}

// TestNativeScan: Scan converts what database/sql converts and reports
// mismatches as errors.
func TestNativeScan(t *testing.T) {
	c := openTestNative(t, filepath.Join(t.TempDir(), "n.db"))
	mustExec(t, c, `CREATE TABLE t (s TEXT, i INTEGER, b BLOB)`)
	mustExec(t, c, `INSERT INTO t VALUES (?, ?, ?)`, "12", int64(7), []byte{0, 1})
	mustExec(t, c, `INSERT INTO t VALUES (?, ?, ?)`, nil, nil, nil)
	mustExec(t, c, `INSERT INTO t VALUES (?, ?, ?)`, "abc", true, "")

	const q = `SELECT s, i, b FROM t WHERE rowid = ?`
	var (
		s   string
		i   int64
		n   int
		ok  bool
		bs  []byte
		ns  sql.NullString
		ni  sql.NullInt64
		ps  *string
		val any
	)
	if err := c.queryRow(q, []any{1}).Scan(&n, &i, &bs); err != nil || n != 12 || i != 7 || string(bs) != "\x00\x01" {
		t.Fatalf("row 1: %d %d %q %v", n, i, bs, err)
	}
	if err := c.queryRow(q, []any{2}).Scan(&ns, &ni, &bs); err != nil || ns.Valid || ni.Valid || bs != nil {
		t.Fatalf("row 2: %+v %+v %q %v", ns, ni, bs, err)
	}
	if err := c.queryRow(q, []any{2}).Scan(&ps, &val, &bs); err != nil || ps != nil || val != nil {
		t.Fatalf("row 2 into pointers: %v %v %v", ps, val, err)
	}
	if err := c.queryRow(q, []any{3}).Scan(&s, &ok, &val); err != nil || s != "abc" || !ok || val != "" {
		t.Fatalf("row 3: %q %v %#v %v", s, ok, val, err)
	}
	for _, tc := range []struct {
		name string
		row  int
		dest []any
	}{
		{"text into int", 3, []any{&i, &i, &bs}},
		{"NULL into string", 2, []any{&s, &ni, &bs}},
		{"NULL into int", 2, []any{&ns, &i, &bs}},
		{"unsupported type", 1, []any{&s, &i, new(time.Time)}},
		{"too few", 1, []any{&s}},
	} {
		if err := c.queryRow(q, []any{tc.row}).Scan(tc.dest...); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := c.queryRow(q, []any{9}).Scan(&s, &i, &bs); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("no row: %v", err)
	}
	// A row left unscanned is reset by the next statement.
	row := c.queryRow(q, []any{1})
	mustExec(t, c, `BEGIN`)
	mustExec(t, c, `UPDATE t SET i = 8 WHERE rowid = 1`)
	mustExec(t, c, `COMMIT`)
	if err := row.Scan(&s, &i, &bs); err == nil {
		t.Fatal("a stale row scanned")
	}
}

// TestNativeRows: rows iterate, statements run while they are open (also
// the same query), and Close is idempotent.
func TestNativeRows(t *testing.T) {
	c := openTestNative(t, filepath.Join(t.TempDir(), "n.db"))
	mustExec(t, c, `CREATE TABLE t (v INTEGER)`)
	for v := range 3 {
		mustExec(t, c, `INSERT INTO t VALUES (?)`, v)
	}
	const q = `SELECT v FROM t WHERE v >= ? ORDER BY v`
	rows, err := c.query(q, []any{0})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
		inner, err := c.query(q, []any{v})
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for inner.Next() {
			k++
		}
		if err := inner.Err(); err != nil || k != 3-int(v) {
			t.Fatalf("inner rows %d, %v", k, err)
		}
		_ = inner.Close()
		mustExec(t, c, `UPDATE t SET v = v WHERE v = ?`, v)
	}
	if err := rows.Err(); err != nil || len(got) != 3 || got[2] != 2 {
		t.Fatalf("rows %v, %v", got, err)
	}
	if err := rows.Close(); err != nil || rows.Next() || rows.Scan(new(int64)) == nil {
		t.Fatalf("closed rows still read (%v)", err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.exec(`SELECT 1`, nil); !errors.Is(err, errNativeClosed) {
		t.Fatalf("exec after close: %v", err)
	}
}

// TestSQLiteCloseClosesWriter: Close finalizes the writer's statements and
// closes its native connection.
func TestSQLiteCloseClosesWriter(t *testing.T) {
	s := openTestSQLite(t, SQLiteConfig{})
	publish(t, s, toUsers("t", "a"))
	if len(s.w.c.stmts) == 0 {
		t.Fatal("no statement prepared by a publish")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.w.c.db != 0 || s.w.c.stmts != nil {
		t.Fatalf("writer connection still open after Close (%d statements)", len(s.w.c.stmts))
	}
	if _, err := s.w.c.exec(`SELECT 1`, nil); !errors.Is(err, errNativeClosed) {
		t.Fatalf("exec after Close: %v", err)
	}
}
