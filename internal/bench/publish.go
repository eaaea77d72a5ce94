package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// stream is one flow of publishes: unicast to random connected users, or
// tenant-wide broadcasts.
type stream struct {
	name       string  // "unicast" or "broadcast"
	broadcast  bool    // static
	topic      string  // static: broadcasts are live events to this topic (Config.Topic)
	rate       float64 // items per second; negative: unpaced
	publishers int
	batch      int
	users      []int // unicast targets: users whose first connect succeeded
	stats      streamStats
}

// streamStats are a stream's totals; publishers update them concurrently.
type streamStats struct {
	items       atomic.Int64 // items the server answered 201 for
	failedItems atomic.Int64 // items of calls that failed
	calls       atomic.Int64
	failedCalls atomic.Int64
	firstSend   atomic.Int64 // unix ns
	lastDone    atomic.Int64 // unix ns

	mu       sync.Mutex
	statuses map[string]int64          // guarded by mu: failures by status ("error" for transport errors)
	hists    []*hdrhistogram.Histogram // guarded by mu: per publisher, HTTP round trip in µs
	firstErr string                    // guarded by mu
}

func (s *streamStats) fail(status string, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statuses == nil {
		s.statuses = map[string]int64{}
	}
	s.statuses[status]++
	if s.firstErr == "" {
		s.firstErr = detail
	}
}

// publisher sends one call at a time; each has its own keep-alive connection.
type publisher struct {
	s      *stream
	poster *httpPoster
	tenant string
	prefix string
	seq    *atomic.Int64
	hist   *hdrhistogram.Histogram // this publisher's only
	buf    []byte
	seqs   []int64 // this call's items
	log    *slog.Logger
	acked  *seqSet // items answered 201, of every publisher
	slow   *worst[PublishSample]

	// After a transport error (a node down or draining) the publisher moves
	// on to the next node, as a client behind a load balancer would.
	urls         []string
	urlAt        int
	path, apiKey string
}

// runStream publishes until stop with s.publishers goroutines, paced so that
// together they send s.rate items per second, adds the sequence numbers of
// items answered 201 to acked and offers each call to slow. Calls in flight at stop are
// finished (a cancelled call might still commit and later look like an
// unexpected delivery); ctx cancels them.
func runStream(ctx context.Context, cfg *Config, s *stream, seq *atomic.Int64, acked *seqSet, slow *worst[PublishSample], stop time.Time) error {
	var interval time.Duration
	if s.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(s.publishers*s.batch) / s.rate)
	}
	path := "/v1/notifications"
	if s.batch > 1 {
		path += "/batch"
	}
	pubs := make([]*publisher, s.publishers)
	for i := range pubs {
		hc, err := newHTTPPoster(cfg.URLs[i%len(cfg.URLs)]+path, cfg.APIKey)
		if err != nil {
			return err
		}
		pubs[i] = &publisher{
			s: s, poster: hc, tenant: cfg.Tenant, prefix: cfg.UserPrefix, seq: seq, hist: newHistogram(), log: cfg.Logger,
			urls: cfg.URLs, urlAt: i % len(cfg.URLs), path: path, apiKey: cfg.APIKey, acked: acked, slow: slow,
		}
	}
	var wg sync.WaitGroup
	for i, p := range pubs {
		s.stats.mu.Lock()
		s.stats.hists = append(s.stats.hists, p.hist)
		s.stats.mu.Unlock()
		offset := time.Duration(0)
		if interval > 0 {
			offset = interval * time.Duration(i) / time.Duration(s.publishers)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { p.poster.Close() }() // nextNode may replace it
			p.run(ctx, stop, interval, offset)
		}()
	}
	wg.Wait()
	return nil
}

func (p *publisher) run(ctx context.Context, stop time.Time, interval, offset time.Duration) {
	next := time.Now().Add(offset)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			next = next.Add(interval)
		}
		if !time.Now().Before(stop) {
			return
		}
		p.publishOnce(ctx)
	}
}

func (p *publisher) publishOnce(ctx context.Context) {
	s := p.s
	start := time.Now()
	sent := start.UnixNano()
	b, seqs := p.buf[:0], p.seqs[:0]
	if s.batch > 1 {
		b = append(b, `{"notifications":[`...)
	}
	for i := range s.batch {
		if i > 0 {
			b = append(b, ',')
		}
		n := p.seq.Add(1)
		seqs = append(seqs, n)
		if s.topic != "" {
			b = appendLive(b, p.tenant, s.topic, sent, n)
		} else if s.broadcast {
			b = appendBroadcast(b, p.tenant, sent, n)
		} else {
			b = appendUnicast(b, p.tenant, p.prefix, s.users[mrand.N(len(s.users))], sent, n)
		}
	}
	if s.batch > 1 {
		b = append(b, `]}`...)
	}
	p.buf, p.seqs = b, seqs
	s.stats.firstSend.CompareAndSwap(0, sent)
	s.stats.calls.Add(1)
	status, errBody, err := p.poster.post(ctx, b)
	p.noteCall(start, status, err)
	if err != nil {
		s.stats.failedCalls.Add(1)
		s.stats.failedItems.Add(int64(s.batch))
		s.stats.fail("error", err.Error())
		p.nextNode()
		return
	}
	done := time.Now()
	recordClamped(p.hist, done.Sub(start).Microseconds())
	s.stats.lastDone.Store(done.UnixNano())
	if status != 201 && (s.topic == "" || status != 202) { // Created; Accepted for live events
		s.stats.failedCalls.Add(1)
		s.stats.failedItems.Add(int64(s.batch))
		s.stats.fail(strconv.Itoa(status), string(errBody))
		return
	}
	s.stats.items.Add(int64(s.batch))
	if s.topic == "" { // live events are at most once: nothing to hold a 202 to
		p.acked.addAll(seqs)
	}
}

// noteCall offers the call that began at start to the slowest publishes.
func (p *publisher) noteCall(start time.Time, status int, err error) {
	us := time.Since(start).Microseconds()
	p.slow.offer(us, func() PublishSample {
		st := strconv.Itoa(status)
		if err != nil {
			st = "error"
		}
		return PublishSample{HTTPMs: round(float64(us)/1000, 3), Seq: p.seqs[0], Items: len(p.seqs), Stream: p.s.name,
			URL: p.urls[p.urlAt], Status: st, At: start.UTC(), NewConn: p.poster.dialed}
	})
}

// nextNode points the publisher at the next node, when there are several.
func (p *publisher) nextNode() {
	if len(p.urls) < 2 {
		return
	}
	p.urlAt = (p.urlAt + 1) % len(p.urls)
	hc, err := newHTTPPoster(p.urls[p.urlAt]+p.path, p.apiKey)
	if err != nil { // the URLs were checked by Config.Validate
		return
	}
	p.poster.Close()
	p.poster = hc
}

// mergedHTTP returns the stream's HTTP round-trip histogram.
func (s *stream) mergedHTTP() *hdrhistogram.Histogram {
	out := newHistogram()
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	for _, h := range s.stats.hists {
		out.Merge(h)
	}
	return out
}

func randomID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
