package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/defaults"
)

// worker owns a range of users, one session each.
type worker struct {
	cfg workerConfig // static after init
	log *slog.Logger
	tr  Transport
	// lat and replayLat are the latencies of live and replayed deliveries
	// (see user.record); worstLive and worstReplay keep their slowest.
	lat, replayLat         *latencies
	resumeDial             *latencies // successful resume attempts, connect to ready
	worstLive, worstReplay *worst[LatencySample]
	delivered              seqSet // sequence numbers its users received
	// poll is the epoll client's poll loops (nil for the goroutine client),
	// closed when ServeWorker returns.
	poll *wsPoller

	out   *json.Encoder // guarded by outMu
	outMu sync.Mutex

	users []*user // static after init

	ctx       context.Context // cancelled at finish or when the lifetime ends
	cancel    context.CancelFunc
	finishing atomic.Bool
	quiesce   chan struct{} // closed by opQuiesce: churn stops, downtimes end
	readers   sync.WaitGroup
	churnDone chan struct{} // closed when churnLoop has returned (or never ran)
	running   bool          // handle goroutine only: opRun was received

	reconnects        atomic.Int64
	reconnectFailures atomic.Int64
	unexpected        atomic.Int64
	churned           atomic.Int64
	synRetrans        atomic.Int64 // SYNs sent again by the kernel on this worker's connects
	logged            atomic.Int64 // rate-limits per-session warnings

	codesMu   sync.Mutex
	codes     map[int]int64 // guarded by codesMu: close codes of unexpected ends
	dialCodes map[int]int64 // guarded by codesMu: why resumes failed
}

// ServeWorker runs one worker: it reads commands from in and writes reports
// to out until opFinish, the end of in, or ctx. cmd/herald-bench calls it in
// a child process with --worker; Run calls it in a goroutine for in-process
// workers.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	defaults.Logger(&log)
	w := &worker{log: log, out: json.NewEncoder(out), quiesce: make(chan struct{}),
		churnDone: make(chan struct{}), codes: map[int]int64{}, dialCodes: map[int]int64{}}
	w.ctx, w.cancel = context.WithCancel(ctx)
	defer w.cancel()
	defer func() {
		if w.poll != nil {
			w.poll.close()
		}
	}()
	cmds := make(chan command)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var c command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				readErr <- fmt.Errorf("bench: worker: bad command: %w", err)
				return
			}
			select {
			case cmds <- c:
			case <-w.ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	var lifetime <-chan time.Time
	for {
		select {
		case c := <-cmds:
			done, err := w.handle(c, &lifetime)
			if err != nil {
				w.send(report{Ev: evError, Err: err.Error()})
				w.shutdown()
				return err
			}
			if done {
				return nil
			}
		case err := <-readErr: // the coordinator went away
			w.shutdown()
			return err
		case <-lifetime:
			w.log.Warn("worker lifetime over, stopping", "worker", w.cfg.ID)
			w.shutdown()
			return errors.New("bench: worker lifetime over")
		case <-ctx.Done():
			w.shutdown()
			return ctx.Err()
		}
	}
}

func (w *worker) handle(c command, lifetime *<-chan time.Time) (done bool, err error) {
	switch c.Op {
	case opInit:
		if c.Init == nil {
			return false, errors.New("bench: init without config")
		}
		if err := w.init(*c.Init); err != nil {
			return false, err
		}
		*lifetime = time.After(w.cfg.Lifetime)
		go w.progressLoop()
		w.send(report{Ev: evReady})
	case opConnect:
		cr := w.connectAll()
		w.send(report{Ev: evConnected, Connect: &cr})
	case opRun:
		w.running = true
		if w.cfg.ChurnRate > 0 {
			go w.churnLoop()
		} else {
			close(w.churnDone)
		}
	case opQuiesce:
		close(w.quiesce)
		if !w.running {
			close(w.churnDone)
			w.running = true
		}
		<-w.churnDone
		w.waitAllLive(30 * time.Second)
		c := w.snapshot()
		w.send(report{Ev: evQuiesced, Counters: &c})
	case opFinish:
		w.shutdown()
		c := w.snapshot()
		c.CloseCodes, c.DialFailures = w.closeCodes()
		hist, err := encodeHistogram(w.lat.merged())
		if err != nil {
			return true, err
		}
		replay, err := encodeHistogram(w.replayLat.merged())
		if err != nil {
			return true, err
		}
		dials, err := encodeHistogram(w.resumeDial.merged())
		if err != nil {
			return true, err
		}
		worst := append(w.worstLive.samples(), w.worstReplay.samples()...)
		w.send(report{Ev: evResult, Counters: &c, Histogram: hist, ReplayHistogram: replay, DialHistogram: dials, Worst: worst,
			DeliveredSeqs: w.delivered.words()})
		return true, nil
	default:
		return false, fmt.Errorf("bench: worker: unknown op %q", c.Op)
	}
	return false, nil
}

func (w *worker) send(r report) {
	r.Worker = w.cfg.ID
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if err := w.out.Encode(r); err != nil {
		w.log.Debug("report not sent", "worker", w.cfg.ID, "err", err)
	}
}

func (w *worker) init(cfg workerConfig) error {
	tr, err := transportFor(cfg.Transport)
	if err != nil {
		return err
	}
	switch cfg.Client {
	case ClientGoroutine, "":
	case ClientEpoll:
		if _, ok := tr.(wsTransport); !ok {
			return fmt.Errorf("bench: the epoll client reads WebSocket sessions only, not %q", cfg.Transport)
		}
		if w.poll, err = newWSPoller(cfg.Pollers); err != nil {
			return err
		}
		tr = wsTransport{poll: w.poll}
	default:
		return fmt.Errorf("bench: unknown client %q", cfg.Client)
	}
	w.cfg, w.tr = cfg, tr
	w.newFigures()
	exp := time.Now().Add(cfg.TokenTTL).Unix()
	secret := []byte(cfg.JWTSecret)
	w.users = make([]*user, cfg.Count)
	for i := range w.users {
		idx := cfg.First + i
		name := string(appendUserName(nil, cfg.UserPrefix, idx))
		claims := map[string]any{"sub": name, cfg.TenantClaim: cfg.Tenant, "exp": exp, "iat": time.Now().Unix()}
		if cfg.Issuer != "" {
			claims["iss"] = cfg.Issuer
		}
		if cfg.Audience != "" {
			claims["aud"] = cfg.Audience
		}
		if cfg.Topic != "" {
			claims["topics"] = []string{cfg.Topic}
		}
		tok, err := auth.SignHS256(secret, claims)
		if err != nil {
			return fmt.Errorf("bench: mint token: %w", err)
		}
		u := &user{w: w, idx: int64(idx), token: tok, url: cfg.URLs[idx%len(cfg.URLs)], urlAt: idx % len(cfg.URLs)}
		if cfg.Sources > 0 {
			u.local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+idx%cfg.Sources))}
		}
		w.users[i] = u
	}
	return nil
}

// connectAll opens every user's first session with ConnectConcurrency dialers.
func (w *worker) connectAll() connectReport {
	start := time.Now()
	var (
		next     atomic.Int64
		errCount atomic.Int64
		mu       sync.Mutex
		cr       connectReport
		wg       sync.WaitGroup
	)
	var pace <-chan time.Time
	if w.cfg.ConnectRate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.ConnectRate))
		defer t.Stop()
		pace = t.C
	}
	for range min(w.cfg.ConnectConcurrency, len(w.users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(w.users) || w.ctx.Err() != nil {
					return
				}
				if pace != nil {
					<-pace
				}
				u := w.users[i]
				err := u.connectFirst(&errCount)
				mu.Lock()
				if err != nil {
					cr.Failed = append(cr.Failed, int(u.idx))
					if cr.FirstError == "" {
						cr.FirstError = err.Error()
					}
				} else {
					cr.OK++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cr.Errors = int(errCount.Load())
	cr.Elapsed = time.Since(start)
	return cr
}

func (w *worker) progressLoop() {
	t := time.NewTicker(w.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if w.finishing.Load() {
				return
			}
			c := w.snapshot()
			w.send(report{Ev: evProgress, Counters: &c})
		case <-w.ctx.Done():
			return
		}
	}
}

// churnLoop closes random live sessions at ChurnRate; each user's reader
// then waits a random downtime and resumes from its last position.
func (w *worker) churnLoop() {
	defer close(w.churnDone)
	t := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.ChurnRate))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.quiesce:
			return
		case <-w.ctx.Done():
			return
		}
		u := w.users[rand.N(len(w.users))]
		if u.churn(rand.N(2) == 0) {
			w.churned.Add(1)
		}
	}
}

// waitAllLive waits until every connected user has a session again.
func (w *worker) waitAllLive(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		down := 0
		for _, u := range w.users {
			if u.connected.Load() && !u.live.Load() {
				down++
			}
		}
		if down == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.log.Warn("users still reconnecting at quiesce", "worker", w.cfg.ID, "users", down)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shutdown closes every session and waits for the readers.
func (w *worker) shutdown() {
	if !w.finishing.CompareAndSwap(false, true) {
		return
	}
	w.cancel()
	for _, u := range w.users {
		u.closeSession()
	}
	done := make(chan struct{})
	go func() { w.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		w.log.Warn("readers did not stop in time", "worker", w.cfg.ID)
	}
}

func (w *worker) snapshot() counters {
	c := counters{
		Reconnects:        w.reconnects.Load(),
		ReconnectFailures: w.reconnectFailures.Load(),
		Unexpected:        w.unexpected.Load(),
		Churned:           w.churned.Load(),
		SynRetrans:        w.synRetrans.Load(),
	}
	for _, u := range w.users {
		if u.live.Load() {
			c.Live++
		}
		c.Unicast += u.unicast.Load()
		c.Broadcast += u.broadcast.Load()
		c.Duplicates += u.dups.Load()
		c.Gaps += u.gaps.Load()
		c.Misrouted += u.misrouted.Load()
		c.Malformed += u.malformed.Load()
		c.Replayed += u.replayed.Load()
		c.Resyncs += u.resyncs.Load()
		c.ResyncSkipped += u.resyncSkipped.Load()
		c.LastDelivery = max(c.LastDelivery, u.last.Load())
	}
	return c
}

// newFigures prepares the latency figures.
func (w *worker) newFigures() {
	w.lat, w.replayLat, w.resumeDial = newLatencies(), newLatencies(), newLatencies()
	w.worstLive, w.worstReplay = newLatencyWorst(), newLatencyWorst()
}

// transportName is the transport, and the client for WebSocket.
func (w *worker) transportName() string {
	if w.cfg.Client == "" {
		return w.cfg.Transport
	}
	return w.cfg.Transport + "/" + w.cfg.Client
}

// noteClose counts an unexpected end (dial false) or a failed resume (dial true).
func (w *worker) noteClose(code int, dial bool) {
	w.codesMu.Lock()
	if dial {
		w.dialCodes[code]++
	} else {
		w.codes[code]++
	}
	w.codesMu.Unlock()
}

func (w *worker) closeCodes() (closes, dials map[int]int64) {
	w.codesMu.Lock()
	defer w.codesMu.Unlock()
	return mergeCodes(nil, w.codes), mergeCodes(nil, w.dialCodes)
}

// warn logs the first few per-session problems of a worker, then only counts.
func (w *worker) warn(msg string, args ...any) {
	if w.logged.Add(1) <= 10 {
		w.log.Warn(msg, append(args, "worker", w.cfg.ID)...)
	}
}
