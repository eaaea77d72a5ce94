package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/defaults"
	"github.com/heraldhq/herald/internal/topic"
)

// Scenario names a workload.
type Scenario string

// Scenarios.
const (
	// ScenarioIdle holds Conns authenticated connections for Duration.
	ScenarioIdle Scenario = "idle"
	// ScenarioUnicast publishes to random connected users, one user each.
	ScenarioUnicast Scenario = "unicast"
	// ScenarioBroadcast publishes tenant-wide notifications.
	ScenarioBroadcast Scenario = "broadcast"
	// ScenarioChurn is unicast while connections drop and resume.
	ScenarioChurn Scenario = "churn"
	// ScenarioMixed is unicast, broadcast and churn at once.
	ScenarioMixed Scenario = "mixed"
)

// Clients: how a worker reads its WebSocket sessions.
const (
	// ClientEpoll reads every session of a worker in a few poll loops, one
	// epoll instance and one read buffer each (Linux only).
	ClientEpoll = "epoll"
	// ClientGoroutine reads each session in its own goroutine through a
	// bufio.Reader on a net.Conn.
	ClientGoroutine = "goroutine"
)

// Scenarios lists every scenario.
var Scenarios = []Scenario{ScenarioIdle, ScenarioUnicast, ScenarioBroadcast, ScenarioChurn, ScenarioMixed}

func (s Scenario) valid() bool {
	for _, x := range Scenarios {
		if s == x {
			return true
		}
	}
	return false
}

func (s Scenario) unicast() bool {
	return s == ScenarioUnicast || s == ScenarioChurn || s == ScenarioMixed
}

func (s Scenario) broadcast() bool { return s == ScenarioBroadcast || s == ScenarioMixed }
func (s Scenario) churns() bool    { return s == ScenarioChurn || s == ScenarioMixed }

// Config describes one run. The zero value of each field means the default
// given in its comment; Run fills them in and validates the result.
type Config struct {
	Scenario  Scenario // default unicast
	URLs      []string // base URLs of Herald nodes, loopback only; default http://127.0.0.1:8080
	Transport string   // default "ws"
	Conns     int      // connections, one user each; default 1000
	// Client is how WebSocket sessions are read: ClientEpoll (the default on
	// Linux) or ClientGoroutine (the default elsewhere).
	Client string
	// Pollers is the epoll client's poll loops per worker. Default 1.
	Pollers int
	// Rate is the main stream's items per second: unicast notifications, or
	// broadcasts in the broadcast scenario. 0 means the scenario default
	// (1000/s unicast, 10/s broadcast); negative means as fast as the
	// publishers go.
	Rate float64
	// BroadcastRate is the broadcasts per second of the mixed scenario. Default 2.
	BroadcastRate float64
	// ChurnRate is reconnects per second across all connections (churn and
	// mixed). Default Conns/10, at least 1.
	ChurnRate float64
	// ChurnDown is the longest a churned connection stays away. Default 200 ms.
	ChurnDown time.Duration
	Duration  time.Duration // publish (or hold) time; default 10 s
	// Publishers are concurrent HTTP publishers, each with one call in
	// flight. Default: enough for the rate at 10 ms per call (rate/100
	// calls), at least 8, at most 256; 64 when unpaced. A broadcast stream
	// below 100/s uses one.
	Publishers int
	// Batch > 1 publishes through /v1/notifications/batch, Batch items per call.
	Batch int

	JWTSecret   string // HS256 secret the node verifies user tokens with; required
	TenantClaim string // default "tenant_id"
	Issuer      string // iss claim, when the node requires one
	Audience    string // aud claim, when the node requires one
	APIKey      string // publish API key; required unless idle
	Tenant      string // default "bench"
	// UserPrefix names users "<prefix>-<i>". Default "b" plus a random run id,
	// so that runs against the same database start with fresh streams.
	UserPrefix string

	// Workers is the number of workers; connections are split evenly.
	// Default: one per 15,000 connections.
	Workers int
	// Spawn starts a worker process when Workers > 1; with one worker, or a
	// nil Spawn, workers run in-process.
	Spawn SpawnFunc
	// Sources binds client sockets round-robin to 127.0.0.2 … 127.0.0.(1+Sources)
	// so that neither the ephemeral ports of one address (28k) nor the
	// node's per-IP connection cap (2,000 by default) run out. Default: one
	// per 1,500 connections above 1,500, else 0 (no binding).
	Sources int
	// ConnectConcurrency: dials in flight per worker. Default 64.
	ConnectConcurrency int
	// ConnectRate caps connects per second across all workers; 0: no cap.
	ConnectRate float64
	// AuthMessage authenticates with a first {"type":"auth"} message instead
	// of the Authorization header of the upgrade request.
	AuthMessage bool
	// Topic, in the broadcast scenario over WebSocket, makes every
	// connection subscribe to this topic (its token carries it in the
	// topics claim) and the broadcasts live events to it ("ephemeral":
	// true, answered 202): nothing is stored, and deliveries carry no
	// position. Empty: stored tenant-wide broadcasts.
	Topic string
	// Grace is how long to wait for in-flight deliveries after publishing. Default 5 s.
	Grace time.Duration

	// ServerPID, when set, is sampled from /proc for RSS and CPU.
	ServerPID int
	// MetricsURL, when set (http://127.0.0.1:8080/metrics), is scraped
	// before and after the window for the node's own latency histograms.
	MetricsURL string

	// Progress receives progress lines (nil: none); TTY draws a bar in place.
	Progress io.Writer
	TTY      bool
	Logger   *slog.Logger
}

const (
	defaultURL       = "http://127.0.0.1:8080"
	connsPerWorker   = 15000
	connsPerSource   = 1500
	maxSources       = 250
	progressInterval = 250 * time.Millisecond
)

func (c *Config) setDefaults() {
	if c.Scenario == "" {
		c.Scenario = ScenarioUnicast
	}
	if len(c.URLs) == 0 {
		c.URLs = []string{defaultURL}
	}
	if c.Transport == "" {
		c.Transport = "ws"
	}
	if c.Client == "" {
		c.Client = defaultClient
		if c.Transport != "ws" {
			c.Client = ClientGoroutine // the epoll client reads WebSocket only
		}
	}
	if c.Pollers == 0 {
		c.Pollers = 1
	}
	if c.Conns == 0 {
		c.Conns = 1000
	}
	if c.Rate == 0 {
		c.Rate = 1000
		if c.Scenario == ScenarioBroadcast {
			c.Rate = 10
		}
	}
	if c.BroadcastRate == 0 {
		c.BroadcastRate = 2
	}
	if c.ChurnRate == 0 {
		c.ChurnRate = max(1, float64(c.Conns)/10)
	}
	if c.ChurnDown == 0 {
		c.ChurnDown = 200 * time.Millisecond
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Batch == 0 {
		c.Batch = 1
	}
	if c.Publishers == 0 {
		switch calls := c.Rate / float64(c.Batch); {
		case c.Rate < 0:
			c.Publishers = 64
		default:
			c.Publishers = min(256, max(8, int(math.Ceil(calls/100))))
		}
	}
	if c.TenantClaim == "" {
		c.TenantClaim = "tenant_id"
	}
	if c.Tenant == "" {
		c.Tenant = "bench"
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "b" + randomID()
	}
	if c.Workers == 0 {
		c.Workers = (c.Conns + connsPerWorker - 1) / connsPerWorker
	}
	if c.Sources == 0 && c.Conns > connsPerSource {
		c.Sources = (c.Conns + connsPerSource - 1) / connsPerSource
	}
	if c.ConnectConcurrency == 0 {
		c.ConnectConcurrency = 64
	}
	if c.Grace == 0 {
		c.Grace = 5 * time.Second
	}
	defaults.Logger(&c.Logger)
}

// Validate checks the filled-in configuration.
func (c *Config) Validate() error {
	var errs []error
	if !c.Scenario.valid() {
		errs = append(errs, fmt.Errorf("scenario %q: want one of %v", c.Scenario, Scenarios))
	}
	if _, err := transportFor(c.Transport); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.Client != ClientEpoll && c.Client != ClientGoroutine:
		errs = append(errs, fmt.Errorf("client %q: want %s or %s", c.Client, ClientEpoll, ClientGoroutine))
	case c.Client == ClientEpoll && defaultClient != ClientEpoll:
		errs = append(errs, errors.New("the epoll client needs Linux (use --client goroutine)"))
	}
	if c.Pollers < 1 || c.Pollers > 64 {
		errs = append(errs, errors.New("pollers must be 1..64"))
	}
	for _, u := range c.URLs {
		if err := checkLoopbackURL(u, c.Sources > 0); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MetricsURL != "" {
		if err := checkLoopbackURL(c.MetricsURL, false); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Conns < 1 {
		errs = append(errs, errors.New("conns must be at least 1"))
	}
	if c.Topic != "" && (c.Scenario != ScenarioBroadcast || c.Transport != "ws" || !topic.Valid(c.Topic)) {
		errs = append(errs, errors.New("topic needs the broadcast scenario, the ws transport and a name of [A-Za-z0-9._:-]{1,128}"))
	}
	if c.Workers < 1 || c.Workers > c.Conns {
		errs = append(errs, fmt.Errorf("workers must be 1..conns, got %d", c.Workers))
	}
	if c.Sources < 0 || c.Sources > maxSources {
		errs = append(errs, fmt.Errorf("sources must be 0..%d", maxSources))
	}
	if c.Duration <= 0 || c.Grace < 0 || c.ChurnDown < 0 {
		errs = append(errs, errors.New("duration must be positive, grace and churn-down not negative"))
	}
	if c.Publishers < 1 || c.Batch < 1 || c.Batch > 1000 || c.ConnectConcurrency < 1 {
		errs = append(errs, errors.New("publishers and connect concurrency must be positive, batch 1..1000"))
	}
	if c.BroadcastRate < 0 || c.ChurnRate < 0 || c.ConnectRate < 0 {
		errs = append(errs, errors.New("broadcast, churn and connect rates must not be negative"))
	}
	if c.JWTSecret == "" {
		errs = append(errs, errors.New("jwt secret required (the node's --jwt-secret)"))
	}
	if c.APIKey == "" && c.Scenario != ScenarioIdle {
		errs = append(errs, errors.New("api key required to publish (one of the node's --api-keys)"))
	}
	if strings.ContainsAny(c.Tenant+c.UserPrefix, "\"\\") {
		errs = append(errs, errors.New("tenant and user prefix must not contain quotes or backslashes"))
	}
	return errors.Join(errs...)
}

// checkLoopbackURL accepts http://host:port[/prefix] where host is loopback:
// the generator must never load anything but this machine. Source binding
// (127.0.0.x) needs an IPv4 host.
func checkLoopbackURL(raw string, ipv4 bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" || u.Port() == "" {
		return fmt.Errorf("url %q: want http://host:port", raw)
	}
	host := u.Hostname()
	if host == "localhost" && !ipv4 {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("url %q: only loopback IP targets are allowed", raw)
	}
	if ipv4 && ip.To4() == nil {
		return fmt.Errorf("url %q: --sources binds 127.0.0.x, so the target must be IPv4", raw)
	}
	return nil
}
