// Command herald-bench is Herald's load generator. It opens authenticated
// client connections (spread over worker processes and 127.0.0.x source
// addresses), publishes through the HTTP API and checks every delivery:
// latency (HDR histogram), loss, duplicates and gaps, plus the server's RSS
// and CPU when given its pid.
//
//	herald-bench --scenario unicast --conns 10000 --rate 5000 --duration 10s \
//	    --jwt-secret $SECRET --api-key $KEY --server-pid $(pidof herald)
//
// It exits 0 when every check held, 1 when one failed (loss, duplicates,
// gaps, users that never connected) and 2 on errors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/heraldhq/herald/internal/bench"
)

const (
	exitPass   = 0
	exitFailed = 1
	exitError  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the flags that are not plain bench.Config fields.
type options struct {
	cfg      bench.Config
	urls     string
	rate     string
	auth     string
	json     bool
	markdown bool
	quiet    bool
	logLevel string
	worker   bool
	cpuProf  string
	plot     string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("herald-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "unicast", "idle, unicast, broadcast, churn or mixed")
	fs.StringVar(&o.urls, "url", "http://127.0.0.1:8080", "comma-separated base URLs of Herald nodes (loopback only)")
	fs.StringVar(&c.Transport, "transport", "ws", "client transport: ws, sse or socketio (sse and socketio: goroutine client)")
	fs.StringVar(&c.Client, "client", "", `how sessions are read: "epoll" (poll loops, the default on Linux) or "goroutine" (one goroutine and bufio.Reader per connection)`)
	fs.IntVar(&c.Pollers, "pollers", 1, "epoll client: poll loops (goroutines with an epoll instance) per worker")
	fs.IntVar(&c.Conns, "conns", 1000, "connections, one user each")
	fs.StringVar(&o.rate, "rate", "", `items/s of the main stream (unicast notifications, or broadcasts); "max" for unpaced (default 1000, broadcast 10)`)
	fs.Float64Var(&c.BroadcastRate, "broadcast-rate", 2, "broadcasts/s in the mixed scenario")
	fs.Float64Var(&c.ChurnRate, "churn-rate", 0, "reconnects/s across all connections in churn and mixed (default conns/10)")
	fs.DurationVar(&c.ChurnDown, "churn-down", 200*time.Millisecond, "longest time a churned connection stays away")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "publish (or, for idle, hold) window")
	fs.IntVar(&c.Publishers, "publishers", 0, "concurrent HTTP publishers (default rate/100 per batch, 8..256; 64 for --rate max)")
	fs.IntVar(&c.Batch, "batch", 1, "items per call; above 1 uses POST /v1/notifications/batch")
	fs.StringVar(&c.Topic, "topic", "", "broadcast scenario over ws: every connection subscribes to this topic and the broadcasts are live events to it (ephemeral, never stored)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret of the node (env HERALD_JWT_SECRET)")
	fs.StringVar(&c.APIKey, "api-key", os.Getenv("HERALD_API_KEY"), "publish API key (env HERALD_API_KEY)")
	fs.StringVar(&c.Tenant, "tenant", "bench", "tenant of every user")
	fs.StringVar(&c.TenantClaim, "tenant-claim", "tenant_id", "JWT claim holding the tenant")
	fs.StringVar(&c.Issuer, "jwt-issuer", "", "iss claim, when the node requires one")
	fs.StringVar(&c.Audience, "jwt-audience", "", "aud claim, when the node requires one")
	fs.IntVar(&c.Workers, "workers", 0, "worker processes (default one per 15,000 conns); 1 runs in-process")
	fs.IntVar(&c.Sources, "sources", 0, "bind client sockets to 127.0.0.2..127.0.0.(1+N) (default one per 1,500 conns above 1,500, under the node's per-IP cap)")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 64, "dials in flight per worker")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "cap on connects/s (0: none)")
	fs.StringVar(&o.auth, "auth", "header", `"header" (Authorization on the upgrade) or "message" (first {"type":"auth"} frame)`)
	fs.DurationVar(&c.Grace, "grace", 5*time.Second, "wait for in-flight deliveries after publishing")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "server pid to sample RSS and CPU from /proc")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", "node /metrics URL to read its latency histograms over the window (e.g. http://127.0.0.1:8080/metrics)")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON line")
	fs.BoolVar(&o.markdown, "markdown", false, "print the Markdown summary (the default when --json is not given)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress output")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.BoolVar(&o.worker, "worker", false, "internal: run as a worker process on stdin/stdout")
	fs.StringVar(&o.plot, "plot", "", "write an SVG plot of the latency distributions (publish→deliver and HTTP publish) to FILE")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a pprof CPU profile of the generator to FILE (worker processes to FILE.worker<N>)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: herald-bench [flags]\n\nLoad generator for Herald. Flags:")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "worker" {
				return
			}
			fmt.Fprintf(stderr, "  --%s (default %q)\n        %s\n", f.Name, f.DefValue, f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.Scenario = bench.Scenario(*scenario)
	for _, u := range strings.Split(o.urls, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			c.URLs = append(c.URLs, u)
		}
	}
	switch o.rate {
	case "":
	case "max":
		c.Rate = -1
	default:
		r, err := strconv.ParseFloat(o.rate, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("--rate: %q is not a positive number or \"max\"", o.rate)
		}
		c.Rate = r
	}
	switch o.auth {
	case "header":
	case "message":
		c.AuthMessage = true
	default:
		return nil, fmt.Errorf("--auth: %q must be header or message", o.auth)
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitPass
	}
	if err != nil {
		fmt.Fprintln(stderr, "herald-bench:", err)
		return exitError
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "herald-bench: --log-level: %v\n", err)
		return exitError
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.cpuProf != "" {
		stopProf, err := startCPUProfile(o.cpuProf)
		if err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
		defer stopProf()
	}
	if o.worker {
		return runWorker(log)
	}

	cfg := o.cfg
	cfg.Logger = log
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "herald-bench: cannot find own executable for worker processes:", err)
		return exitError
	}
	cfg.Spawn = bench.ExecSpawner(exe, "--worker", "--log-level", o.logLevel)
	if o.cpuProf != "" {
		cfg.Spawn = func(ctx context.Context, id int) (*bench.WorkerProc, error) {
			prof := fmt.Sprintf("%s.worker%d", o.cpuProf, id)
			return bench.ExecSpawner(exe, "--worker", "--log-level", o.logLevel, "--cpuprofile", prof)(ctx, id)
		}
	}
	if !o.quiet {
		cfg.Progress = stderr
		if f, ok := stderr.(*os.File); ok {
			cfg.TTY = term.IsTerminal(int(f.Fd()))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }() // a second signal kills at once
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "herald-bench:", err)
		return exitError
	}
	if o.markdown || !o.json {
		if err := res.WriteMarkdown(stdout); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
	}
	if o.json {
		if err := res.WriteJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
	}
	if o.plot != "" {
		if err := writePlot(o.plot, res); err != nil {
			fmt.Fprintln(stderr, "herald-bench:", err)
			return exitError
		}
	}
	if !res.Pass {
		fmt.Fprintln(stderr, "herald-bench: FAIL:", strings.Join(res.Failures, "; "))
		return exitFailed
	}
	return exitPass
}

// writePlot writes res's latency plot to path.
func writePlot(path string, res *bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := res.WritePlot(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}

// startCPUProfile writes a CPU profile of this process to path until the
// returned function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// runWorker serves the coordinator on stdin/stdout. Interrupts go to the
// whole process group; the worker ignores them and ends when the
// coordinator closes its stdin.
func runWorker(log *slog.Logger) int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	if err := bench.ServeWorker(context.Background(), os.Stdin, os.Stdout, log); err != nil {
		log.Error("worker failed", "err", err)
		return exitError
	}
	return exitPass
}
