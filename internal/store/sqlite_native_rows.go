package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	sqlite3 "modernc.org/sqlite/lib"
)

// nrows is the result of a native query: Next, Scan, Err and Close as on
// *sql.Rows.
type nrows struct {
	s      *nstmt
	err    error
	row    bool // positioned on a row
	closed bool
}

// Next advances to the next row; false at the end or on an error (Err).
func (r *nrows) Next() bool {
	if r.closed {
		return false
	}
	ok, err := r.s.step()
	if err != nil || !ok {
		r.err = err
		_ = r.Close()
		return false
	}
	r.row = true
	return true
}

// Scan copies the current row's columns into dest.
func (r *nrows) Scan(dest ...any) error {
	if r.closed || !r.row {
		return errors.New("sql: Scan called without calling Next")
	}
	return r.s.scan(dest)
}

// Err is the error that ended Next, if any.
func (r *nrows) Err() error { return r.err }

// Close resets the statement; it is idempotent.
func (r *nrows) Close() error {
	if !r.closed {
		r.closed, r.row = true, false
		r.s.reset()
	}
	return nil
}

// nrow is the result of a native QueryRow.
type nrow struct {
	s   *nstmt // stepped to the row; nil when err is set
	err error
}

// Scan copies the row into dest, as (*sql.Row).Scan does: sql.ErrNoRows
// when the query returned none.
func (r *nrow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	s := r.s
	r.s, r.err = nil, errors.New("sql: Row.Scan called twice")
	if s.c.pending == s {
		s.c.pending = nil
	}
	err := s.scan(dest)
	s.reset()
	return err
}

// scan copies the current row's columns into dest.
func (s *nstmt) scan(dest []any) error {
	if len(dest) != s.cols {
		return fmt.Errorf("sql: expected %d destination arguments in Scan, not %d", s.cols, len(dest))
	}
	for i, d := range dest {
		if err := s.scanCol(i, d); err != nil {
			return fmt.Errorf("sql: Scan error on column index %d: %w", i, err)
		}
	}
	return nil
}

// scanCol copies column i into d, converting as database/sql would for
// the types the store scans into.
func (s *nstmt) scanCol(i int, d any) error {
	typ := s.colType(i)
	switch d := d.(type) {
	case *string:
		if typ == sqlite3.SQLITE_NULL {
			return errors.New("converting NULL to string is unsupported")
		}
		*d = s.colText(i)
	case *[]byte:
		if typ == sqlite3.SQLITE_NULL {
			*d = nil
			return nil
		}
		*d = append([]byte{}, s.colBytes(i)...)
	case *int64:
		v, err := s.colInt(i, typ, "int64")
		if err != nil {
			return err
		}
		*d = v
	case *int:
		v, err := s.colInt(i, typ, "int")
		if err != nil {
			return err
		}
		*d = int(v)
	case *bool:
		v, err := s.colInt(i, typ, "bool")
		if err != nil {
			return err
		}
		*d = v != 0
	case *sql.NullString:
		d.String, d.Valid = "", typ != sqlite3.SQLITE_NULL
		if d.Valid {
			d.String = s.colText(i)
		}
	case *sql.NullInt64:
		d.Int64, d.Valid = 0, typ != sqlite3.SQLITE_NULL
		if d.Valid {
			v, err := s.colInt(i, typ, "int64")
			if err != nil {
				return err
			}
			d.Int64 = v
		}
	case **string:
		*d = nil
		if typ != sqlite3.SQLITE_NULL {
			v := s.colText(i)
			*d = &v
		}
	case **int64:
		*d = nil
		if typ != sqlite3.SQLITE_NULL {
			v, err := s.colInt(i, typ, "int64")
			if err != nil {
				return err
			}
			*d = &v
		}
	case *float64:
		if typ == sqlite3.SQLITE_NULL {
			return errors.New("converting NULL to float64 is unsupported")
		}
		*d = sqlite3.Xsqlite3_column_double(s.c.tls, s.p, int32(i))
	case *any:
		*d = s.colAny(i, typ)
	case sql.Scanner:
		return d.Scan(s.colAny(i, typ))
	default:
		return fmt.Errorf("unsupported Scan, storing column type %d into type %T", typ, d)
	}
	return nil
}

// colInt reads column i as an integer: an INTEGER, or TEXT holding one.
func (s *nstmt) colInt(i int, typ int32, to string) (int64, error) {
	switch typ {
	case sqlite3.SQLITE_INTEGER:
		return s.colInt64(i), nil
	case sqlite3.SQLITE_NULL:
		return 0, fmt.Errorf("converting NULL to %s is unsupported", to)
	case sqlite3.SQLITE_TEXT:
		v, err := strconv.ParseInt(string(s.colBytes(i)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("converting text %q to a %s: %w", s.colBytes(i), to, err)
		}
		return v, nil
	default:
		return 0, fmt.Errorf("converting column type %d to a %s is unsupported", typ, to)
	}
}

// colAny reads column i as the Go value database/sql's driver gives.
func (s *nstmt) colAny(i int, typ int32) any {
	switch typ {
	case sqlite3.SQLITE_INTEGER:
		return s.colInt64(i)
	case sqlite3.SQLITE_FLOAT:
		return sqlite3.Xsqlite3_column_double(s.c.tls, s.p, int32(i))
	case sqlite3.SQLITE_TEXT:
		return s.colText(i)
	case sqlite3.SQLITE_BLOB:
		return append([]byte{}, s.colBytes(i)...)
	}
	return nil
}
