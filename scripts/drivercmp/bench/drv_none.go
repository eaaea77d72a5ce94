//go:build !modernc && !ncruces && !mattn

package main

// The "none" writer does nothing: its run is the harness's own cost
// (id generation, random users, the loop), to subtract by eye.
type noneWriter struct{}

func init() { apis["sql"] = func(string) (writer, error) { return noneWriter{}, nil } }

func (noneWriter) exec(string) error         { return nil }
func (noneWriter) prepare(statements) error  { return nil }
func (noneWriter) begin() error              { return nil }
func (noneWriter) commit() error             { return nil }
func (noneWriter) publishOne(p *pub) error   { p.seq, p.unread = 1, 1; return nil }
func (noneWriter) publishRun(ps []pub) error { return nil }
func (noneWriter) version() (string, error)  { return "-", nil }
func (noneWriter) close() error              { return nil }
