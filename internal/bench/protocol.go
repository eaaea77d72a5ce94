package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Coordinator → worker operations, in the order a run sends them.
const (
	opInit    = "init"    // workerConfig: mint tokens, prepare users
	opConnect = "connect" // open every session; answered by evConnected
	opRun     = "run"     // the publish window starts: begin churning
	opQuiesce = "quiesce" // stop churning, reconnect everyone; answered by evQuiesced
	opFinish  = "finish"  // close everything; answered by evResult, then the worker ends
)

// Worker → coordinator events.
const (
	evReady     = "ready" // init done
	evConnected = "connected"
	evProgress  = "progress"
	evQuiesced  = "quiesced"
	evResult    = "result"
	evError     = "error"
)

// command is one line from the coordinator.
type command struct {
	Op   string        `json:"op"`
	Init *workerConfig `json:"init,omitempty"`
}

// report is one line from a worker.
type report struct {
	Ev        string         `json:"ev"`
	Worker    int            `json:"worker"`
	Counters  *counters      `json:"counters,omitempty"`
	Connect   *connectReport `json:"connect,omitempty"`
	Histogram []byte         `json:"histogram,omitempty"` // evResult: live latencies, HDR V2 encoding, µs
	// ReplayHistogram (evResult): latencies of replayed deliveries, as Histogram.
	ReplayHistogram []byte `json:"replay_histogram,omitempty"`
	// DialHistogram (evResult): durations of successful resume attempts.
	DialHistogram []byte `json:"dial_histogram,omitempty"`
	// Worst (evResult): the worker's slowest deliveries of each class.
	Worst []LatencySample `json:"worst,omitempty"`
	// DeliveredSeqs (evResult): the sequence numbers the worker's users
	// received, a bitmap (see seqSet).
	DeliveredSeqs []uint64 `json:"delivered_seqs,omitempty"`
	Err           string   `json:"err,omitempty"`
}

// workerConfig is everything a worker needs; it travels in the init command.
type workerConfig struct {
	ID                 int           `json:"id"`
	Transport          string        `json:"transport"`
	Client             string        `json:"client"`  // ClientEpoll or ClientGoroutine
	Pollers            int           `json:"pollers"` // epoll client: poll loops
	URLs               []string      `json:"urls"`
	Tenant             string        `json:"tenant"`
	UserPrefix         string        `json:"user_prefix"`
	First              int           `json:"first"` // users [First, First+Count)
	Count              int           `json:"count"`
	Sources            int           `json:"sources"`
	JWTSecret          string        `json:"jwt_secret"`
	TenantClaim        string        `json:"tenant_claim"`
	Issuer             string        `json:"issuer,omitempty"`
	Audience           string        `json:"audience,omitempty"`
	TokenTTL           time.Duration `json:"token_ttl"`
	AuthMessage        bool          `json:"auth_message"`
	Topic              string        `json:"topic,omitempty"` // subscribe to it after ready; in the token's topics claim
	ConnectConcurrency int           `json:"connect_concurrency"`
	ConnectRate        float64       `json:"connect_rate"` // this worker's connects/s; 0: unpaced
	ChurnRate          float64       `json:"churn_rate"`   // this worker's reconnects/s
	ChurnDown          time.Duration `json:"churn_down"`
	Lifetime           time.Duration `json:"lifetime"` // hard stop, whatever the coordinator says
	ProgressEvery      time.Duration `json:"progress_every"`
}

// counters are a worker's running totals.
type counters struct {
	Live              int64         `json:"live"`      // sessions open now
	Unicast           int64         `json:"unicast"`   // unicast deliveries (no duplicates)
	Broadcast         int64         `json:"broadcast"` // broadcast deliveries
	Duplicates        int64         `json:"duplicates"`
	Gaps              int64         `json:"gaps"`
	Misrouted         int64         `json:"misrouted"`
	Malformed         int64         `json:"malformed"`
	Replayed          int64         `json:"replayed"` // published before the session was ready (see ClassReplay)
	Resyncs           int64         `json:"resyncs"`
	ResyncSkipped     int64         `json:"resync_skipped"`
	Reconnects        int64         `json:"reconnects"`
	ReconnectFailures int64         `json:"reconnect_failures"`
	Churned           int64         `json:"churned"`
	Unexpected        int64         `json:"unexpected_closes"` // sessions the server or network ended
	SynRetrans        int64         `json:"syn_retrans"`       // SYNs the kernel sent again on connects
	LastDelivery      int64         `json:"last_delivery_ns"`
	CloseCodes        map[int]int64 `json:"close_codes,omitempty"`   // unexpected ends: close code, 0 for EOF/reset
	DialFailures      map[int]int64 `json:"dial_failures,omitempty"` // failed resumes: HTTP status or close code, 0 for network errors
}

func (c *counters) add(o *counters) {
	c.Live += o.Live
	c.Unicast += o.Unicast
	c.Broadcast += o.Broadcast
	c.Duplicates += o.Duplicates
	c.Gaps += o.Gaps
	c.Misrouted += o.Misrouted
	c.Malformed += o.Malformed
	c.Replayed += o.Replayed
	c.Resyncs += o.Resyncs
	c.ResyncSkipped += o.ResyncSkipped
	c.Reconnects += o.Reconnects
	c.ReconnectFailures += o.ReconnectFailures
	c.Churned += o.Churned
	c.Unexpected += o.Unexpected
	c.SynRetrans += o.SynRetrans
	c.LastDelivery = max(c.LastDelivery, o.LastDelivery)
	c.CloseCodes = mergeCodes(c.CloseCodes, o.CloseCodes)
	c.DialFailures = mergeCodes(c.DialFailures, o.DialFailures)
}

func mergeCodes(into, from map[int]int64) map[int]int64 {
	for k, v := range from {
		if into == nil {
			into = map[int]int64{}
		}
		into[k] += v
	}
	return into
}

// connectReport answers opConnect.
type connectReport struct {
	OK         int           `json:"ok"`
	Failed     []int         `json:"failed,omitempty"` // user indices never connected
	Errors     int           `json:"errors"`           // failed attempts, retried or not
	Elapsed    time.Duration `json:"elapsed"`
	FirstError string        `json:"first_error,omitempty"`
}

// WorkerProc is a started worker: its stdin and stdout carry the protocol.
type WorkerProc struct {
	In   io.WriteCloser
	Out  io.ReadCloser
	Wait func() error
	PID  int // 0 in-process (its CPU is the coordinator's)
}

// SpawnFunc starts worker number id.
type SpawnFunc func(ctx context.Context, id int) (*WorkerProc, error)

// ExecSpawner starts workers as child processes running path with args
// (cmd/herald-bench passes itself and --worker). Their stderr is ours.
func ExecSpawner(path string, args ...string) SpawnFunc {
	return func(ctx context.Context, id int) (*WorkerProc, error) {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("bench: worker %d: %w", id, err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("bench: worker %d: %w", id, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("bench: start worker %d: %w", id, err)
		}
		return &WorkerProc{In: in, Out: out, Wait: cmd.Wait, PID: cmd.Process.Pid}, nil
	}
}

// inProcess runs a worker in a goroutine joined by pipes.
func inProcess(ctx context.Context, cfg Config) *WorkerProc {
	cmdR, cmdW := io.Pipe()
	repR, repW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := ServeWorker(ctx, cmdR, repW, cfg.Logger)
		_ = repW.CloseWithError(io.EOF)
		_ = cmdR.Close()
		done <- err
	}()
	return &WorkerProc{In: cmdW, Out: repR, Wait: func() error { return <-done }}
}

// link is the coordinator's end of one worker.
type link struct {
	id   int
	proc *WorkerProc

	wmu sync.Mutex
	enc *json.Encoder // guarded by wmu

	events chan report // every report but progress, in order

	mu       sync.Mutex
	progress counters // guarded by mu: the latest progress
	err      error    // guarded by mu: why the stream ended
}

func newLink(id int, p *WorkerProc) *link {
	l := &link{id: id, proc: p, enc: json.NewEncoder(p.In), events: make(chan report, 16)}
	go l.readLoop()
	return l
}

func (l *link) readLoop() {
	defer close(l.events)
	sc := bufio.NewScanner(l.proc.Out)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var r report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			l.setErr(fmt.Errorf("bench: worker %d: bad report: %w", l.id, err))
			return
		}
		if r.Ev == evProgress && r.Counters != nil {
			l.mu.Lock()
			l.progress = *r.Counters
			l.mu.Unlock()
			continue
		}
		l.events <- r
	}
	if err := sc.Err(); err != nil {
		l.setErr(fmt.Errorf("bench: worker %d: %w", l.id, err))
	}
}

func (l *link) setErr(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *link) latest() counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.progress
}

func (l *link) send(c command) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.enc.Encode(c); err != nil {
		return fmt.Errorf("bench: worker %d: send %s: %w", l.id, c.Op, err)
	}
	return nil
}

var errWorkerGone = errors.New("bench: worker ended")

// await returns the worker's next report, which must be ev.
func (l *link) await(ctx context.Context, ev string, timeout time.Duration) (report, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r, ok := <-l.events:
		if !ok {
			l.mu.Lock()
			err := l.err
			l.mu.Unlock()
			if err == nil {
				err = errWorkerGone
			}
			return r, fmt.Errorf("bench: worker %d: waiting for %s: %w", l.id, ev, err)
		}
		if r.Ev == evError {
			return r, fmt.Errorf("bench: worker %d: %s", l.id, r.Err)
		}
		if r.Ev != ev {
			return r, fmt.Errorf("bench: worker %d: got %q, want %q", l.id, r.Ev, ev)
		}
		return r, nil
	case <-t.C:
		return report{}, fmt.Errorf("bench: worker %d: no %s within %s", l.id, ev, timeout)
	case <-ctx.Done():
		return report{}, fmt.Errorf("bench: worker %d: waiting for %s: %w", l.id, ev, ctx.Err())
	}
}

// close ends the worker's input and waits for it.
func (l *link) close() error {
	_ = l.proc.In.Close()
	return l.proc.Wait()
}
