package bench

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// progress prints the run's state every half second: a bar redrawn in place
// on a terminal, plain lines (every two seconds) otherwise.
type progress struct {
	cfg *Config
	r   *runner

	mu        sync.Mutex
	name      string        // guarded by mu: current phase
	started   time.Time     // guarded by mu
	length    time.Duration // guarded by mu: expected phase length, 0 if unknown
	lastItems int64         // guarded by mu
	lastDeliv int64         // guarded by mu
	lastAt    time.Time     // guarded by mu

	done chan struct{}
	wg   sync.WaitGroup
}

func newProgress(cfg *Config, r *runner) *progress {
	p := &progress{cfg: cfg, r: r, done: make(chan struct{}), started: time.Now(), lastAt: time.Now()}
	if cfg.Progress == nil {
		return p
	}
	every := 2 * time.Second
	if cfg.TTY {
		every = 500 * time.Millisecond
	}
	p.wg.Add(1)
	go p.loop(every)
	return p
}

func (p *progress) phase(name string, length time.Duration) {
	p.mu.Lock()
	p.name, p.started, p.length = name, time.Now(), length
	p.mu.Unlock()
}

func (p *progress) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.wg.Wait()
	if p.cfg.Progress != nil && p.cfg.TTY {
		fmt.Fprint(p.cfg.Progress, "\r\033[K")
	}
}

func (p *progress) loop(every time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *progress) print() {
	c := p.r.sum()
	var items int64
	for _, s := range p.r.streamsSnapshot() {
		items += s.stats.items.Load()
	}
	deliv := c.Unicast + c.Broadcast
	now := time.Now()
	p.mu.Lock()
	name, elapsed, length := p.name, now.Sub(p.started), p.length
	dt := now.Sub(p.lastAt).Seconds()
	pubRate, delRate := float64(items-p.lastItems)/dt, float64(deliv-p.lastDeliv)/dt
	p.lastItems, p.lastDeliv, p.lastAt = items, deliv, now
	p.mu.Unlock()

	status := fmt.Sprintf("%-7s %5.1fs  conns %d/%d  pub %.0f/s  deliv %.0f/s  dup %d gap %d",
		name, elapsed.Seconds(), c.Live, p.cfg.Conns, pubRate, delRate, c.Duplicates, c.Gaps)
	if !p.cfg.TTY {
		fmt.Fprintln(p.cfg.Progress, "herald-bench:", status)
		return
	}
	const width = 24
	frac := 0.0
	switch {
	case length > 0:
		frac = min(1, elapsed.Seconds()/length.Seconds())
	case name == "connect":
		frac = float64(c.Live) / float64(p.cfg.Conns)
	}
	n := int(frac * width)
	fmt.Fprintf(p.cfg.Progress, "\r\033[K[%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, status)
}
