package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer's connection does not go through database/sql: it calls
// SQLite's C API, transpiled to Go by modernc.org/sqlite/lib, directly. It
// is the same library, and so the same VFS and lock tables, as the
// database/sql driver the read pool and the checkpointer use (two copies of
// SQLite in one process would break SQLite's POSIX lock bookkeeping on the
// shared file). database/sql and the driver cost ~60 Go allocations per
// publish (result and rows wrappers, argument conversion and boxing, the
// driver's per-bind C strings and per-row Go strings); here a statement is
// prepared once, its text arguments are copied through one C buffer that
// the connection owns, and integers are read without conversion.

// nconn is a native SQLite connection. It is not safe for concurrent use:
// the writer goroutine is its only user (and Close, after the writer has
// returned).
type nconn struct {
	tls   *libc.TLS
	db    uintptr
	stmts map[string]*nstmt
	// buf is C memory for text and blob arguments, bound with
	// SQLITE_TRANSIENT (SQLite copies them), so it is reused by every bind.
	buf  uintptr
	bufN int
	// pending is the statement a QueryRow stepped and whose row has not
	// been scanned yet; the next statement resets it.
	pending *nstmt
	// row is the result of QueryRow, reused: a row is scanned right away.
	row nrow
}

// nstmt is a statement prepared on an nconn.
type nstmt struct {
	c      *nconn
	p      uintptr
	params int
	cols   int
	// busy is set while the statement runs for an open nrows; a query run
	// again meanwhile gets a statement of its own (owned).
	busy  bool
	owned bool // not in the cache: finalized on reset
}

// nativeError is an error of the native connection, with the SQLite
// (extended) result code; its message is built like modernc's driver
// builds its *sqlite.Error's.
type nativeError struct {
	code int
	msg  string
}

func (e *nativeError) Error() string { return e.msg }

// Code returns the SQLite result code, as (*sqlite.Error).Code does.
func (e *nativeError) Code() int { return e.code }

// errNativeClosed is returned by a connection used after close.
var errNativeClosed = errors.New("sqlite: connection is closed")

// openNative opens path read-write and runs each of pragmas (PRAGMA
// statements) on it.
func openNative(path string, pragmas []string) (_ *nconn, err error) {
	c := &nconn{tls: libc.NewTLS(), stmts: make(map[string]*nstmt)}
	name, err := libc.CString(path)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	pdb := xmalloc(libc.Xmalloc, c.tls, int(ptrSize))
	if pdb == 0 {
		libc.Xfree(c.tls, name)
		c.tls.Close()
		return nil, errors.New("sqlite: out of memory")
	}
	*(*uintptr)(cptr(pdb)) = 0
	// NOMUTEX: the connection has one user at a time (see nconn), so
	// SQLite's per-connection mutex would only cost.
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb,
		sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = *(*uintptr)(cptr(pdb))
	libc.Xfree(c.tls, pdb)
	libc.Xfree(c.tls, name)
	if rc != sqlite3.SQLITE_OK {
		err = c.errorOf(rc)
		_ = c.close()
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = c.close()
		}
	}()
	if rc := sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1); rc != sqlite3.SQLITE_OK {
		return nil, c.errorOf(rc)
	}
	for _, p := range pragmas {
		if _, err := c.exec(p, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return c, nil
}

// ptrSize is the size of a C pointer.
const ptrSize = unsafe.Sizeof(uintptr(0))

// xmalloc calls libc's malloc, whose size type differs between platforms.
func xmalloc[T ~uint32 | ~uint64](malloc func(*libc.TLS, T) uintptr, tls *libc.TLS, n int) uintptr {
	return malloc(tls, T(n))
}

// cptr is the unsafe.Pointer of C memory p (allocated by libc, outside the
// Go heap, so it never moves).
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// errorOf is the error of result code rc, with the connection's message.
// The text is modernc's: "<errstr>: <errmsg> (<rc>)".
func (c *nconn) errorOf(rc int32) error {
	str := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	var busy string
	if rc == sqlite3.SQLITE_BUSY {
		busy = " (SQLITE_BUSY)"
	}
	if c.db != 0 {
		if msg := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); msg != str {
			return &nativeError{code: int(rc), msg: fmt.Sprintf("%s: %s (%v)%s", str, msg, rc, busy)}
		}
	}
	return &nativeError{code: int(rc), msg: fmt.Sprintf("%s (%v)%s", str, rc, busy)}
}

// close finalizes every statement and closes the connection.
func (c *nconn) close() error {
	if c.tls == nil {
		return nil
	}
	for _, s := range c.stmts {
		sqlite3.Xsqlite3_finalize(c.tls, s.p)
	}
	c.stmts = nil
	var err error
	if c.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = c.errorOf(rc)
		}
		c.db = 0
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
		c.buf, c.bufN = 0, 0
	}
	c.tls.Close()
	c.tls = nil
	return err
}

// prepare returns the statement of query, prepared once and cached.
func (c *nconn) prepare(query string) (*nstmt, error) {
	if c.tls == nil {
		return nil, errNativeClosed
	}
	c.finishPending()
	if s, ok := c.stmts[query]; ok {
		if !s.busy {
			return s, nil
		}
		s, err := c.prepareNew(query)
		if s != nil {
			s.owned = true
		}
		return s, err
	}
	s, err := c.prepareNew(query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = s
	return s, nil
}

// prepareNew prepares query, which must be one statement.
func (c *nconn) prepareNew(query string) (*nstmt, error) {
	z, err := libc.CString(query)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, z)
	out := xmalloc(libc.Xmalloc, c.tls, int(2*ptrSize)) // the statement, then the tail
	if out == 0 {
		return nil, errors.New("sqlite: out of memory")
	}
	defer libc.Xfree(c.tls, out)
	pp := (*[2]uintptr)(cptr(out))
	pp[0], pp[1] = 0, 0
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, out, out+ptrSize); rc != sqlite3.SQLITE_OK {
		return nil, c.errorOf(rc)
	}
	p := pp[0]
	if p == 0 {
		return nil, fmt.Errorf("sqlite: no statement in %q", query)
	}
	if tail := strings.TrimSpace(libc.GoString(pp[1])); tail != "" && tail != ";" {
		sqlite3.Xsqlite3_finalize(c.tls, p)
		return nil, fmt.Errorf("sqlite: more than one statement in %q", query)
	}
	return &nstmt{
		c:      c,
		p:      p,
		params: int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, p)),
		cols:   int(sqlite3.Xsqlite3_column_count(c.tls, p)),
	}, nil
}

// finishPending resets the statement a QueryRow left unscanned.
func (c *nconn) finishPending() {
	if s := c.pending; s != nil {
		c.pending = nil
		c.row = nrow{err: errors.New("sqlite: row read after the next statement ran")}
		s.reset()
	}
}

// cbuf returns C memory of at least n bytes (and at least one).
func (c *nconn) cbuf(n int) uintptr {
	if n >= c.bufN {
		size := max(256, c.bufN)
		for size <= n {
			size *= 2
		}
		if c.buf != 0 {
			libc.Xfree(c.tls, c.buf)
		}
		c.buf = xmalloc(libc.Xmalloc, c.tls, size)
		if c.buf == 0 {
			c.bufN = 0
			return 0
		}
		c.bufN = size
	}
	return c.buf
}

// copyC copies v into c's C buffer and returns its address.
func copyC[T string | []byte](c *nconn, v T) (uintptr, error) {
	p := c.cbuf(len(v))
	if p == 0 {
		return 0, errors.New("sqlite: out of memory")
	}
	copy(unsafe.Slice((*byte)(cptr(p)), len(v)), v)
	return p, nil
}

// reset makes s ready to run again (its bindings stay until rebound).
func (s *nstmt) reset() {
	s.busy = false
	sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	if s.owned {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
}

// bindText binds v to parameter i (1-based).
func (s *nstmt) bindText(i int, v string) error {
	c := s.c
	p, err := copyC(c, v)
	if err != nil {
		return err
	}
	if rc := sqlite3.Xsqlite3_bind_text(c.tls, s.p, int32(i), p, int32(len(v)), sqlite3.SQLITE_TRANSIENT); rc != sqlite3.SQLITE_OK {
		return c.errorOf(rc)
	}
	return nil
}

// bindBlob binds v to parameter i; nil binds NULL.
func (s *nstmt) bindBlob(i int, v []byte) error {
	if v == nil {
		return s.bindNull(i)
	}
	c := s.c
	p, err := copyC(c, v)
	if err != nil {
		return err
	}
	if rc := sqlite3.Xsqlite3_bind_blob(c.tls, s.p, int32(i), p, int32(len(v)), sqlite3.SQLITE_TRANSIENT); rc != sqlite3.SQLITE_OK {
		return c.errorOf(rc)
	}
	return nil
}

// bindInt64 binds v to parameter i.
func (s *nstmt) bindInt64(i int, v int64) error {
	if rc := sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return s.c.errorOf(rc)
	}
	return nil
}

// bindNull binds NULL to parameter i.
func (s *nstmt) bindNull(i int) error {
	if rc := sqlite3.Xsqlite3_bind_null(s.c.tls, s.p, int32(i)); rc != sqlite3.SQLITE_OK {
		return s.c.errorOf(rc)
	}
	return nil
}

// bindFloat binds v to parameter i.
func (s *nstmt) bindFloat(i int, v float64) error {
	if rc := sqlite3.Xsqlite3_bind_double(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return s.c.errorOf(rc)
	}
	return nil
}

// step runs s to its next row; false when it is done.
func (s *nstmt) step() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.errorOf(rc)
	}
}

// run steps s to the end, resets it, and returns the rows it changed.
func (s *nstmt) run() (int64, error) {
	for {
		row, err := s.step()
		if err != nil {
			s.reset()
			return 0, err
		}
		if !row {
			break
		}
	}
	s.reset()
	return int64(sqlite3.Xsqlite3_changes64(s.c.tls, s.c.db)), nil
}

// colInt64 reads column i of the current row as an integer.
func (s *nstmt) colInt64(i int) int64 { return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i)) }

// colType is the SQLite type of column i of the current row.
func (s *nstmt) colType(i int) int32 { return sqlite3.Xsqlite3_column_type(s.c.tls, s.p, int32(i)) }

// colBytes is column i of the current row as bytes owned by SQLite, valid
// until the next step or reset.
func (s *nstmt) colBytes(i int) []byte {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := int(sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i)))
	if p == 0 || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cptr(p)), n)
}

// colText reads column i of the current row as a string.
func (s *nstmt) colText(i int) string { return string(s.colBytes(i)) }

// prepareArgs prepares query, checking that it takes n arguments.
func (c *nconn) prepareArgs(query string, n int) (*nstmt, error) {
	s, err := c.prepare(query)
	if err != nil {
		return nil, err
	}
	if n != s.params {
		s.reset()
		return nil, fmt.Errorf("sql: expected %d arguments, got %d", s.params, n)
	}
	return s, nil
}

// bindArgs prepares query and binds args to its parameters.
func (c *nconn) bindArgs(query string, args []any) (*nstmt, error) {
	return bindAll(c, query, args, (*nstmt).bindAny)
}

// bindAll prepares query and binds vals to its parameters with bind.
func bindAll[T any](c *nconn, query string, vals []T, bind func(*nstmt, int, T) error) (*nstmt, error) {
	s, err := c.prepareArgs(query, len(vals))
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if err := bind(s, i+1, v); err != nil {
			s.reset()
			return nil, fmt.Errorf("sql: converting argument $%d: %w", i+1, err)
		}
	}
	return s, nil
}

// bindAny binds a Go value of a type the store passes.
func (s *nstmt) bindAny(i int, a any) error {
	switch v := a.(type) {
	case nil:
		return s.bindNull(i)
	case string:
		return s.bindText(i, v)
	case []byte:
		return s.bindBlob(i, v)
	case int64:
		return s.bindInt64(i, v)
	case int:
		return s.bindInt64(i, int64(v))
	case int32:
		return s.bindInt64(i, int64(v))
	case bool:
		return s.bindInt64(i, boolInt64(v))
	case float64:
		return s.bindFloat(i, v)
	default:
		// Pointers, Valuers, named types: as database/sql converts them.
		cv, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return err
		}
		switch cv.(type) {
		case nil, string, []byte, int64, bool, float64:
			return s.bindAny(i, cv)
		}
		return fmt.Errorf("unsupported type %T", a)
	}
}

// bindTexts prepares query and binds vals, text, to its parameters,
// without boxing them.
func (c *nconn) bindTexts(query string, vals []string) (*nstmt, error) {
	return bindAll(c, query, vals, (*nstmt).bindText)
}

// execTexts is exec with text arguments only, without boxing them.
func (c *nconn) execTexts(query string, vals ...string) (int64, error) {
	s, err := c.bindTexts(query, vals)
	if err != nil {
		return 0, err
	}
	return s.run()
}

// queryInt64Texts runs query, with text arguments only, and returns the
// integer in the first column of its first row (sql.ErrNoRows if none).
func (c *nconn) queryInt64Texts(query string, vals ...string) (int64, error) {
	s, err := c.bindTexts(query, vals)
	if err != nil {
		return 0, err
	}
	defer s.reset()
	switch row, err := s.step(); {
	case err != nil:
		return 0, err
	case !row:
		return 0, sql.ErrNoRows
	}
	return s.colInt64(0), nil
}

// exec runs query with args to the end and returns the rows it changed.
func (c *nconn) exec(query string, args []any) (int64, error) {
	s, err := c.bindArgs(query, args)
	if err != nil {
		return 0, err
	}
	return s.run()
}

// query runs query with args; the caller must Close the rows.
func (c *nconn) query(query string, args []any) (*nrows, error) {
	s, err := c.bindArgs(query, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &nrows{s: s}, nil
}

// queryRow runs query with args up to its first row, which the returned
// row's Scan reads (once, before any other statement runs).
func (c *nconn) queryRow(query string, args []any) *nrow {
	s, err := c.bindArgs(query, args)
	if err != nil {
		c.row = nrow{err: err}
		return &c.row
	}
	ok, err := s.step()
	switch {
	case err != nil:
		s.reset()
		c.row = nrow{err: err}
	case !ok:
		s.reset()
		c.row = nrow{err: sql.ErrNoRows}
	default:
		c.row = nrow{s: s}
		c.pending = s
	}
	return &c.row
}
