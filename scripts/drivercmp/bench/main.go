// Command bench measures one run of Herald's unicast publish write path on
// one SQLite driver, chosen at build time by tag (modernc, ncruces, mattn;
// no tag: "none", a writer that does nothing, the harness's own cost). It
// prints one JSON result line. The orchestrator (../main.go) builds it once
// per driver and runs it round-robin.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/scripts/drivercmp/report"
)

// The PRAGMAs Herald's writer connection sets (internal/store/sqlite.go),
// run on the one connection that writes, in this order, on every driver.
var writerPragmas = []string{
	`PRAGMA busy_timeout = 5000`,
	`PRAGMA journal_mode = WAL`,
	`PRAGMA synchronous = FULL`,
	`PRAGMA foreign_keys = 1`,
	`PRAGMA temp_store = MEMORY`,
	`PRAGMA cache_size = -65536`, // 64 MiB
	`PRAGMA wal_autocheckpoint = 16384`,
}

// The statements of a publish, as Herald writes them
// (internal/store/sqlite_publish.go, sqlite_publish_run.go).
const (
	notificationCols   = 11
	notificationValues = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	notificationHead   = `INSERT INTO notifications
 (id, tenant, audience_kind, audience_role, type, title, body, data, created_at, expires_at, tenant_seq) VALUES `
	inboxCols   = 4
	inboxValues = `(?, ?, ?, ?, 0)`
	inboxHead   = `INSERT INTO inbox (tenant, user_id, seq, notification_id, read) VALUES `
	bumpCols    = 2
	bumpValues  = `(?, ?, 1, 1)`
	bumpHead    = `INSERT INTO user_streams (tenant, user_id, seq, unread) VALUES `
	bumpTailOne = ` ON CONFLICT (tenant, user_id) DO UPDATE SET seq = seq + 1, unread = unread + 1
 RETURNING seq, unread`
	bumpTailRun = ` ON CONFLICT (tenant, user_id) DO UPDATE SET seq = seq + 1, unread = unread + 1
 RETURNING tenant, user_id, seq, unread`
)

func multiRow(head, row, tail string, n int) string {
	var b strings.Builder
	b.WriteString(head)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}

// Statements of one publish (one row each) and of a run of runRows.
type statements struct {
	notification, bump, inbox          string
	runNotification, runBump, runInbox string
}

func newStatements(runRows int) statements {
	return statements{
		notification:    multiRow(notificationHead, notificationValues, "", 1),
		bump:            multiRow(bumpHead, bumpValues, bumpTailOne, 1),
		inbox:           multiRow(inboxHead, inboxValues, "", 1),
		runNotification: multiRow(notificationHead, notificationValues, "", runRows),
		runBump:         multiRow(bumpHead, bumpValues, bumpTailRun, runRows),
		runInbox:        multiRow(inboxHead, inboxValues, "", runRows),
	}
}

// Constant content of every notification.
const (
	tenant   = "t"
	kindUser = 1
	ntype    = "chat.message"
	title    = "New message"
	body     = "Alice: are we still on for lunch today?"
)

// pub is one publish: a notification to one user.
type pub struct {
	id, user    string
	createdAt   int64
	seq, unread int64
}

// writer is one driver/API's implementation of the write path, on one
// connection.
type writer interface {
	exec(query string) error // no arguments, no rows wanted
	prepare(st statements) error
	begin() error
	commit() error
	publishOne(p *pub) error   // three one-row statements
	publishRun(ps []pub) error // three multi-row statements (len(ps) == run size)
	version() (string, error)
	close() error
}

// apis maps "<api>" to a constructor; the driver's file registers its own.
var apis = map[string]func(path string) (writer, error){}

// checkpointer, when set by the driver's file, starts Herald's checkpointer
// (sqlite_checkpoint.go): a PASSIVE checkpoint on its own connection after
// commits, at most every 250ms. It returns a wake function and a stop
// function.
var checkpointer func(path string) (wake func(), stop func(), err error)

var driverName = "none"

func main() {
	variant := flag.String("variant", "b1", "b1 | b32 | multi32: batch of 1, batch of 32 one-row statements, batch of 32 multi-row statements")
	api := flag.String("api", "sql", "sql (database/sql) or native (the driver's own API, where it has one)")
	n := flag.Int("n", 20000, "measured publishes")
	warmup := flag.Int("warmup", 2000, "publishes before measuring")
	users := flag.Int("users", 10000, "users publishes go to, at random")
	round := flag.Int("round", 0, "round number (also the random seed)")
	dir := flag.String("dir", "", "directory for the database (default: a new temp dir, removed after)")
	ckpt := flag.Bool("checkpointer", true, "run Herald's background checkpointer")
	migrations := flag.String("migrations", "../../internal/store/migrations/sqlite", "Herald's SQLite migrations; their Up sections are the schema")
	flag.Parse()

	res := report.Result{Driver: driverName, API: *api, Variant: *variant, Round: *round, GoVersion: runtime.Version(), CGO: cgoEnabled}
	if err := run(&res, *variant, *api, *n, *warmup, *users, *round, *dir, *migrations, *ckpt); err != nil {
		res.Error = err.Error()
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Error != "" {
		os.Exit(1)
	}
}

func run(res *report.Result, variant, api string, n, warmup, users, round int, dir, migrations string, ckpt bool) error {
	batch, multi := 1, false
	switch variant {
	case "b1":
	case "b32":
		batch = 32
	case "multi32":
		batch, multi = 32, true
	default:
		return fmt.Errorf("unknown variant %q", variant)
	}
	open, ok := apis[api]
	if !ok {
		return fmt.Errorf("driver %s has no api %q", driverName, api)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "drivercmp-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	path := filepath.Join(dir, "herald.db")

	w, err := open(path)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer w.close()
	if err := setUp(w, res, migrations, users); err != nil {
		return err
	}

	wake, stop := func() {}, func() {}
	if ckpt && checkpointer != nil {
		if wake, stop, err = checkpointer(path); err != nil {
			return fmt.Errorf("checkpointer: %w", err)
		}
	}
	defer stop()

	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user-%05d", i)
	}
	rng := rand.New(rand.NewPCG(uint64(round), 0x4e52414c44))
	ids := newIDs(rng)
	ps := make([]pub, batch)
	commits := 0
	publish := func(count int) error {
		for done := 0; done < count; done += batch {
			now := time.Now().UnixMilli()
			for i := range ps {
				ps[i] = pub{id: ids.next(now), user: names[rng.IntN(users)], createdAt: now}
			}
			if err := w.begin(); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			if multi {
				if err := w.publishRun(ps); err != nil {
					return err
				}
			} else {
				for i := range ps {
					if err := w.publishOne(&ps[i]); err != nil {
						return err
					}
				}
			}
			if err := w.commit(); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			commits++
			wake()
		}
		return nil
	}
	warmup = (warmup + batch - 1) / batch * batch
	n = (n + batch - 1) / batch * batch
	if err := publish(warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	commits = 0

	if err := measure(res, n, func() error { return publish(n) }); err != nil {
		return err
	}
	res.Commits = commits
	// Check the store is what Herald's would be.
	return w.exec(`PRAGMA foreign_key_check`)
}

// setUp applies Herald's writer PRAGMAs and schema to w, records the SQLite
// version, gives every user a stream (as in a store that has been running:
// the counter bump is then almost always the UPDATE of the upsert) and
// prepares the statements.
func setUp(w writer, res *report.Result, migrations string, users int) error {
	for _, p := range writerPragmas {
		if err := w.exec(p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	schema, err := loadSchema(migrations)
	if err != nil {
		return err
	}
	for _, s := range schema {
		if err := w.exec(s); err != nil {
			return fmt.Errorf("schema: %w\n%s", err, s)
		}
	}
	if res.SQLiteVersion, err = w.version(); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if err := w.exec(fmt.Sprintf(`WITH RECURSIVE u(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM u WHERE i + 1 < %d)
 INSERT INTO user_streams (tenant, user_id, seq, unread) SELECT 't', printf('user-%%05d', i), 0, 0 FROM u`, users)); err != nil {
		return fmt.Errorf("seed user_streams: %w", err)
	}
	if err := w.prepare(newStatements(32)); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// measure runs publish (n publishes) and records its CPU, wall time and
// Go allocations per publish in res.
func measure(res *report.Result, n int, publish func() error) error {
	runtime.GC()
	var m0, m1 runtime.MemStats
	var r0, r1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r0); err != nil {
		return err
	}
	t0 := time.Now()
	if err := publish(); err != nil {
		return err
	}
	wall := time.Since(t0)
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); err != nil {
		return err
	}
	runtime.ReadMemStats(&m1)
	fn := float64(n)
	user := float64(tvNs(r1.Utime) - tvNs(r0.Utime))
	sys := float64(tvNs(r1.Stime) - tvNs(r0.Stime))
	res.Publishes = n
	res.UserUs, res.SysUs = user/fn/1e3, sys/fn/1e3
	res.CPUus = res.UserUs + res.SysUs
	res.WallUs = float64(wall.Nanoseconds()) / fn / 1e3
	res.Allocs = float64(m1.Mallocs-m0.Mallocs) / fn
	res.Bytes = float64(m1.TotalAlloc-m0.TotalAlloc) / fn
	res.MaxRSSKiB = r1.Maxrss
	return nil
}

// loadSchema returns the statements of the "+goose Up" sections of the
// migrations in dir, in file order: the schema Herald's store has.
func loadSchema(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("migrations in %s: none found (%v)", dir, err)
	}
	slices.Sort(files)
	var stmts []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var up strings.Builder
		in := false
		for line := range strings.Lines(string(b)) {
			t := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(t, "-- +goose Up"):
				in = true
			case strings.HasPrefix(t, "-- +goose Down"):
				in = false
			case in && !strings.HasPrefix(t, "--"):
				up.WriteString(line)
			}
		}
		for _, s := range strings.Split(up.String(), ";\n") {
			if strings.TrimSpace(s) != "" {
				stmts = append(stmts, s)
			}
		}
	}
	return stmts, nil
}

func tvNs(tv syscall.Timeval) int64 { return tv.Sec*1e9 + tv.Usec*1e3 }

// ids makes 26-character, time-ordered, monotonic ids in Crockford base32,
// like Herald's ULIDs (10 characters of milliseconds, 16 of entropy that
// increments within a millisecond).
type ids struct {
	lastMS int64
	hi     uint16
	lo     uint64
	rng    *rand.Rand
	buf    [26]byte
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func newIDs(rng *rand.Rand) *ids { return &ids{rng: rng} }

func (g *ids) next(ms int64) string {
	if ms > g.lastMS {
		g.lastMS, g.hi, g.lo = ms, uint16(g.rng.Uint32()), g.rng.Uint64()>>1
	} else {
		g.lo++
	}
	t := uint64(g.lastMS)
	for i := 9; i >= 0; i-- {
		g.buf[i] = crockford[t&31]
		t >>= 5
	}
	// 80 bits: hi (16) then lo (64), 5 bits a character.
	lo, hi := g.lo, uint64(g.hi)
	for i := 25; i >= 10; i-- {
		g.buf[i] = crockford[lo&31]
		lo = lo>>5 | (hi&31)<<59
		hi >>= 5
	}
	return string(g.buf[:])
}

// assignRun sets each publish's seq and unread from the rows the multi-row
// counter bump returned, as Herald's bumpStreams does: rows sorted by user
// then seq; each publish takes its user's next row, in publish order.
type bumpRow struct {
	key         string
	seq, unread int64
}

func assignRun(ps []pub, got []bumpRow) error {
	if len(got) != len(ps) {
		return fmt.Errorf("counter bump returned %d rows for %d publishes", len(got), len(ps))
	}
	slices.SortFunc(got, func(a, b bumpRow) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.seq, b.seq))
	})
	next := make(map[string]int, len(got))
	for i := range ps {
		key := tenant + "\x00" + ps[i].user
		j, seen := next[key]
		if !seen {
			j, _ = slices.BinarySearchFunc(got, key, func(b bumpRow, k string) int { return strings.Compare(b.key, k) })
		}
		if j >= len(got) || got[j].key != key {
			return fmt.Errorf("counter bump returned no row for a publish")
		}
		ps[i].seq, ps[i].unread = got[j].seq, got[j].unread
		next[key] = j + 1
	}
	return nil
}
