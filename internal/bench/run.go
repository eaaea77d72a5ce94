package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Timeouts of the coordinator's waits on workers.
const (
	initTimeout    = 2 * time.Minute
	connectTimeout = 15 * time.Minute
	quiesceTimeout = time.Minute
	resultTimeout  = time.Minute
)

// Run executes one scenario and returns its figures; Result.Pass says
// whether every check held. Cancelling ctx cuts the publish (or hold) window
// short; the workers are still finished and counted. All load stops by
// itself: the window is bounded by Config.Duration.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: invalid configuration: %w", err)
	}
	r := &runner{cfg: &cfg, log: cfg.Logger}
	return r.run(ctx)
}

// runner is one run's coordinator state; it is used by one goroutine, except
// for links and streams, which are safe for concurrent use.
type runner struct {
	cfg     *Config
	log     *slog.Logger
	links   []*link
	genPIDs []int
	prog    *progress
	stages  []ServerStage // the node's own latency histograms over the window
	acked   seqSet        // sequence numbers of the items answered 201
	slowPub *worst[PublishSample]

	smu     sync.Mutex
	streams []*stream // guarded by smu; set once when publishing starts
}

func (r *runner) streamsSnapshot() []*stream {
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.streams
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	cfg := r.cfg
	res := &Result{
		Scenario: cfg.Scenario, Transport: cfg.Transport, Client: cfg.Client, Date: time.Now().UTC().Truncate(time.Second),
		URLs: cfg.URLs, Conns: cfg.Conns, Workers: cfg.Workers, Sources: cfg.Sources,
	}
	if cfg.Scenario != ScenarioIdle {
		res.Publishers, res.Batch, res.TargetRate = cfg.Publishers, cfg.Batch, cfg.Rate
	}
	// Workers outlive ctx so that an interrupted run is still counted.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	r.prog = newProgress(cfg, r)
	defer r.prog.stop()
	if err := r.startWorkers(wctx); err != nil {
		r.stopWorkers()
		return nil, err
	}
	defer r.stopWorkers()

	var baseline procSample
	if cfg.ServerPID > 0 {
		var err error
		if baseline, err = sampleProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}

	r.prog.phase("connect", 0)
	cw := openWindow(cfg.ServerPID, r.genPIDs)
	ready, err := r.connect(wctx, res)
	cwr := cw.close()
	res.ConnectPhase = &windowFigures{ServerCPU: round(cwr.ServerCPU, 1), GeneratorCPU: round(cwr.GeneratorCPU, 1), MachineIdle: round(cwr.MachineIdle, 1)}
	if err != nil {
		return nil, err
	}
	if len(ready) == 0 {
		return nil, errors.New("bench: no connection could be established")
	}

	var win windowResult
	if cfg.Scenario == ScenarioIdle {
		r.prog.phase("hold", cfg.Duration)
		w := openWindow(cfg.ServerPID, r.genPIDs)
		select {
		case <-time.After(cfg.Duration):
		case <-ctx.Done():
		}
		win = w.close()
	} else {
		win, err = r.publish(ctx, wctx, ready)
		if err != nil {
			return nil, err
		}
	}
	res.ServerStages = r.stages
	res.DurationS = round(win.Elapsed.Seconds(), 3)
	res.GeneratorCPU = round(win.GeneratorCPU, 1)
	res.MachineIdle = round(win.MachineIdle, 1)
	if cfg.ServerPID > 0 {
		res.Server = &ServerResult{
			PID: cfg.ServerPID, RSSBeforeKiB: baseline.RSSKiB, RSSAfterKiB: win.ServerRSSEnd,
			RSSPerConnKiB: round(float64(win.ServerRSSEnd-baseline.RSSKiB)/float64(res.Connected), 2),
			CPUPercent:    round(win.ServerCPU, 1),
		}
	}
	r.prog.phase("finish", 0)
	if err := r.finish(wctx, res); err != nil {
		return nil, err
	}
	res.check()
	return res, nil
}

func (r *runner) startWorkers(ctx context.Context) error {
	cfg := r.cfg
	r.genPIDs = []int{os.Getpid()}
	for i := range cfg.Workers {
		var (
			p   *WorkerProc
			err error
		)
		if cfg.Spawn == nil || cfg.Workers == 1 {
			p = inProcess(ctx, *cfg)
		} else if p, err = cfg.Spawn(ctx, i); err != nil {
			return err
		}
		if p.PID > 0 {
			r.genPIDs = append(r.genPIDs, p.PID)
		}
		r.links = append(r.links, newLink(i, p))
	}
	lifetime := cfg.Duration + cfg.Grace + connectTimeout + 5*time.Minute
	for i, l := range r.links {
		first, next := i*cfg.Conns/cfg.Workers, (i+1)*cfg.Conns/cfg.Workers
		wc := workerConfig{
			ID: i, Transport: cfg.Transport, Client: cfg.Client, Pollers: cfg.Pollers, URLs: cfg.URLs, Tenant: cfg.Tenant, UserPrefix: cfg.UserPrefix,
			First: first, Count: next - first, Sources: cfg.Sources,
			JWTSecret: cfg.JWTSecret, TenantClaim: cfg.TenantClaim, Issuer: cfg.Issuer, Audience: cfg.Audience,
			TokenTTL: lifetime + time.Hour, AuthMessage: cfg.AuthMessage, Topic: cfg.Topic,
			ConnectConcurrency: cfg.ConnectConcurrency, ConnectRate: cfg.ConnectRate / float64(cfg.Workers),
			Lifetime: lifetime, ProgressEvery: progressInterval, ChurnDown: cfg.ChurnDown,
		}
		if cfg.Scenario.churns() {
			wc.ChurnRate = cfg.ChurnRate / float64(cfg.Workers)
		}
		if err := l.send(command{Op: opInit, Init: &wc}); err != nil {
			return err
		}
	}
	return r.awaitAll(ctx, evReady, initTimeout, nil)
}

// stopWorkers closes every worker's input (ending it) and waits for it.
func (r *runner) stopWorkers() {
	var wg sync.WaitGroup
	for _, l := range r.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.close(); err != nil {
				r.log.Debug("worker ended with error", "worker", l.id, "err", err)
			}
		}()
	}
	wg.Wait()
	r.links = nil
}

// awaitAll waits for ev from every worker, calling fn with each report.
func (r *runner) awaitAll(ctx context.Context, ev string, timeout time.Duration, fn func(report)) error {
	errs := make([]error, len(r.links))
	reps := make([]report, len(r.links))
	var wg sync.WaitGroup
	for i, l := range r.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = l.await(ctx, ev, timeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if fn != nil {
		for _, rep := range reps {
			fn(rep)
		}
	}
	return nil
}

func (r *runner) broadcastOp(op string) error {
	var errs []error
	for _, l := range r.links {
		errs = append(errs, l.send(command{Op: op}))
	}
	return errors.Join(errs...)
}

// connect opens every session and returns the users that connected.
func (r *runner) connect(ctx context.Context, res *Result) ([]int, error) {
	start := time.Now()
	if err := r.broadcastOp(opConnect); err != nil {
		return nil, err
	}
	failed := map[int]bool{}
	err := r.awaitAll(ctx, evConnected, connectTimeout, func(rep report) {
		c := rep.Connect
		if c == nil {
			return
		}
		res.Connected += c.OK
		res.ConnectErrors += c.Errors
		for _, u := range c.Failed {
			failed[u] = true
		}
		if c.FirstError != "" {
			r.log.Warn("connect errors", "worker", rep.Worker, "errors", c.Errors, "failed", len(c.Failed), "first", c.FirstError)
		}
	})
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	res.ConnectFailed = len(failed)
	res.ConnectSeconds = round(elapsed.Seconds(), 3)
	res.ConnectRate = round(float64(res.Connected)/elapsed.Seconds(), 0)
	ready := make([]int, 0, r.cfg.Conns-len(failed))
	for i := range r.cfg.Conns {
		if !failed[i] {
			ready = append(ready, i)
		}
	}
	return ready, nil
}

// publish runs the scenario's streams for the window, then quiesces the
// workers and waits (up to Grace) for the expected deliveries.
func (r *runner) publish(ctx, wctx context.Context, ready []int) (windowResult, error) {
	cfg := r.cfg
	var streams []*stream
	if cfg.Scenario.unicast() {
		streams = append(streams, &stream{name: "unicast", rate: cfg.Rate, publishers: cfg.Publishers, batch: cfg.Batch, users: ready})
	}
	if cfg.Scenario.broadcast() {
		rate, pubs := cfg.Rate, cfg.Publishers
		if cfg.Scenario == ScenarioMixed {
			rate = cfg.BroadcastRate
		}
		if rate > 0 && rate < 100 {
			pubs = 1
		}
		streams = append(streams, &stream{name: "broadcast", broadcast: true, topic: cfg.Topic, rate: rate, publishers: pubs, batch: 1})
	}
	r.smu.Lock()
	r.streams = streams
	r.smu.Unlock()
	if err := r.broadcastOp(opRun); err != nil {
		return windowResult{}, err
	}
	r.prog.phase("publish", cfg.Duration)
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	var seq atomic.Int64
	r.slowPub = newWorst(worstKept, func(s PublishSample) int64 { return s.Seq })
	before := r.scrape(ctx, client)
	w := openWindow(cfg.ServerPID, r.genPIDs)
	stop := time.Now().Add(cfg.Duration)
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runStream(ctx, cfg, s, &seq, &r.acked, r.slowPub, stop)
		}()
	}
	wg.Wait()
	win := w.close()
	if err := errors.Join(errs...); err != nil {
		return win, err
	}

	r.prog.phase("drain", cfg.Grace)
	if err := r.broadcastOp(opQuiesce); err != nil {
		return win, err
	}
	if err := r.awaitAll(wctx, evQuiesced, quiesceTimeout, nil); err != nil {
		return win, err
	}
	expU, expB := r.expected(len(ready))
	deadline := time.Now().Add(cfg.Grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c := r.sum()
		if c.Unicast >= expU && c.Broadcast >= expB {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if before != nil {
		if after := r.scrape(ctx, client); after != nil {
			r.stages = stages(before, after)
		}
	}
	return win, nil
}

// scrape reads the node's metrics, or returns nil (not configured, or failed).
func (r *runner) scrape(ctx context.Context, client *http.Client) scrape {
	if r.cfg.MetricsURL == "" {
		return nil
	}
	s, err := scrapeMetrics(ctx, client, r.cfg.MetricsURL)
	if err != nil {
		r.log.Warn("server metrics not read", "err", err)
		return nil
	}
	return s
}

// expected is the unicast and broadcast deliveries the server owes.
func (r *runner) expected(connected int) (unicast, broadcast int64) {
	for _, s := range r.streamsSnapshot() {
		if s.broadcast {
			broadcast += s.stats.items.Load() * int64(connected)
		} else {
			unicast += s.stats.items.Load()
		}
	}
	return unicast, broadcast
}

// sum adds up the workers' latest progress.
func (r *runner) sum() counters {
	var c counters
	for _, l := range r.links {
		p := l.latest()
		c.add(&p)
	}
	return c
}

// finish ends the workers and fills in the delivery figures.
func (r *runner) finish(ctx context.Context, res *Result) error {
	if err := r.broadcastOp(opFinish); err != nil {
		return err
	}
	var (
		total   counters
		decErrs []error
	)
	hist, replay, dials := newHistogram(), newHistogram(), newHistogram()
	var (
		worst     []LatencySample
		delivered seqSet
	)
	merge := func(into *hdrhistogram.Histogram, b []byte) {
		if len(b) == 0 {
			return
		}
		h, err := decodeHistogram(b)
		if err != nil {
			decErrs = append(decErrs, err)
			return
		}
		into.Merge(h)
	}
	err := r.awaitAll(ctx, evResult, resultTimeout, func(rep report) {
		if rep.Counters != nil {
			total.add(rep.Counters)
		}
		merge(hist, rep.Histogram)
		merge(replay, rep.ReplayHistogram)
		merge(dials, rep.DialHistogram)
		worst = append(worst, rep.Worst...)
		delivered.union(rep.DeliveredSeqs)
	})
	if err = errors.Join(append(decErrs, err)...); err != nil {
		return err
	}
	expU, expB := r.expected(res.Connected)
	res.Expected = expU + expB
	res.Delivered = total.Unicast + total.Broadcast
	res.Duplicates, res.Gaps, res.Misrouted, res.Malformed = total.Duplicates, total.Gaps, total.Misrouted, total.Malformed
	res.Replayed, res.Resyncs, res.ResyncSkipped = total.Replayed, total.Resyncs, total.ResyncSkipped
	res.Churned, res.Reconnects, res.ReconnectFailures = total.Churned, total.Reconnects, total.ReconnectFailures
	res.UnexpectedCloses, res.CloseCodes, res.DialFailures = total.Unexpected, total.CloseCodes, total.DialFailures
	res.SynRetrans = total.SynRetrans
	res.AckedNotDelivered, res.AckedNotDeliveredSeqs = r.acked.missing(&delivered, 20)
	res.DeliveredNotAcked, _ = delivered.missing(&r.acked, 0)
	res.Latency = roundSummary(summarize(hist))
	res.ReplayLatency = roundSummary(summarize(replay))
	res.ResumeDial = roundSummary(summarize(dials))
	res.LatencyWorst, res.ReplayWorst = splitWorst(worst)
	if r.slowPub != nil {
		res.SlowestPublishes = r.slowPub.samples()
	}
	res.latency = hist
	var firstSend int64
	for _, s := range r.streamsSnapshot() {
		httpHist := s.mergedHTTP()
		sr := &StreamResult{
			Calls: s.stats.calls.Load(), Items: s.stats.items.Load(), FailedItems: s.stats.failedItems.Load(),
			HTTP: roundSummary(summarize(httpHist)), http: httpHist,
		}
		first, last := s.stats.firstSend.Load(), s.stats.lastDone.Load()
		if last > first && first > 0 {
			sr.PerS = round(float64(sr.Items)/time.Duration(last-first).Seconds(), 1)
		}
		sr.Saturated = s.rate > 0 && sr.PerS < 0.9*s.rate
		if firstSend == 0 || (first > 0 && first < firstSend) {
			firstSend = first
		}
		s.stats.mu.Lock()
		if len(s.stats.statuses) > 0 {
			sr.Failures = map[string]int{}
			for k, v := range s.stats.statuses {
				sr.Failures[k] = int(v)
			}
		}
		sr.FirstError = s.stats.firstErr
		s.stats.mu.Unlock()
		if s.broadcast {
			res.Broadcast = sr
		} else {
			res.Unicast = sr
		}
	}
	if total.LastDelivery > firstSend && firstSend > 0 {
		res.DeliveriesPerS = round(float64(res.Delivered)/time.Duration(total.LastDelivery-firstSend).Seconds(), 0)
	}
	return nil
}

func roundSummary(s LatencySummary) LatencySummary {
	return LatencySummary{Count: s.Count, Mean: round(s.Mean, 3), P50: round(s.P50, 3), P90: round(s.P90, 3),
		P99: round(s.P99, 3), P999: round(s.P999, 3), Max: round(s.Max, 3)}
}
