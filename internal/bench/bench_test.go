package bench

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

const (
	testSecret = "bench-test-secret-bench-test-secret-0123456789"
	testAPIKey = "bench-test-api-key-0123456789"
)

// startNode runs a Herald node on a loopback port and returns its base URL.
func startNode(t testing.TB) string {
	t.Helper()
	level := slog.LevelError
	if testing.Verbose() {
		level = slog.LevelWarn
	}
	n, err := node.New(context.Background(), node.Config{
		Database: filepath.Join(t.TempDir(), "herald.db"),
		Auth:     auth.Config{HMACSecret: []byte(testSecret)},
		APIKeys:  []string{testAPIKey},
		// Every connection comes from 127.0.0.1: lift the per-IP limits.
		Limits: node.Limits{HandshakeRate: limit.Rate{Per: -1}, MaxConnsPerIP: -1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	return "http://" + testkit.Serve(t, n.Serve, n.Shutdown)
}

// TestScenariosAgainstNode runs short scenarios against a real node
// in-process and requires every notification exactly once, in order.
func TestScenariosAgainstNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and 200 connections")
	}
	base := startNode(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "unicast", cfg: Config{Scenario: ScenarioUnicast, Rate: 300}},
		// Header auth: first-message auth once tripped a data race inside
		// internal/ws under -race (see docs/benchmarks.md); keep CI clear of it.
		{name: "churn", cfg: Config{Scenario: ScenarioChurn, Rate: 400, Batch: 10, Publishers: 4, ChurnRate: 60}},
		{name: "mixed", cfg: Config{Scenario: ScenarioMixed, Conns: 100, Rate: 200, BroadcastRate: 5, ChurnRate: 40}},
		// The cases above use the default client (epoll on Linux); this one
		// keeps the goroutine client covered.
		{name: "mixed-goroutine", cfg: Config{Scenario: ScenarioMixed, Client: ClientGoroutine, Conns: 100, Rate: 200, BroadcastRate: 5, ChurnRate: 40}},
		// SSE: streams resumed with ?since= after churn, broadcasts and
		// unicasts, read with the goroutine client.
		{name: "mixed-sse", cfg: Config{Scenario: ScenarioMixed, Transport: "sse", Conns: 100, Rate: 200, BroadcastRate: 5, ChurnRate: 40}},
		// Live events to a topic every connection subscribed to (issue 17).
		{name: "broadcast-topic", cfg: Config{Scenario: ScenarioBroadcast, Conns: 100, Rate: 20, Topic: "bench.live"}},
		{name: "mixed-socketio", cfg: Config{Scenario: ScenarioMixed, Transport: "socketio", Conns: 100, Rate: 200, BroadcastRate: 5, ChurnRate: 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.URLs = []string{base}
			if cfg.Conns == 0 {
				cfg.Conns = 200
			}
			cfg.Workers = 1
			cfg.Duration = 2 * time.Second
			cfg.JWTSecret = testSecret
			cfg.APIKey = testAPIKey
			cfg.ServerPID = os.Getpid()
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			wantClient := defaultClient
			if cfg.Transport != "" && cfg.Transport != "ws" {
				wantClient = ClientGoroutine
			}
			if want := cmp.Or(cfg.Client, wantClient); res.Client != want {
				t.Errorf("client %q, want %q", res.Client, want)
			}
			t.Logf("connect %.2fs, window %.2fs, delivered %d/%d, p99 %.1f ms, churned %d, replayed %d, unexpected closes %d", res.ConnectSeconds, res.DurationS,
				res.Delivered, res.Expected, res.Latency.P99, res.Churned, res.Replayed, res.UnexpectedCloses)
			if !res.Pass {
				t.Errorf("failures: %v", res.Failures)
			}
			if res.Connected != cfg.Conns || res.Expected == 0 || res.Delivered != res.Expected {
				t.Errorf("connected %d, delivered %d of %d expected", res.Connected, res.Delivered, res.Expected)
			}
			if res.Duplicates != 0 || res.Gaps != 0 || res.Misrouted != 0 || res.Malformed != 0 {
				t.Errorf("duplicates %d, gaps %d, misrouted %d, malformed %d", res.Duplicates, res.Gaps, res.Misrouted, res.Malformed)
			}
			if cfg.Scenario.churns() && (res.Churned == 0 || res.Reconnects < res.Churned) {
				t.Errorf("churned %d, resumed %d: want every churned connection resumed", res.Churned, res.Reconnects)
			}
			if res.AckedNotDelivered != 0 || res.DeliveredNotAcked != 0 {
				t.Errorf("acknowledged but not delivered %d, delivered but not acknowledged %d", res.AckedNotDelivered, res.DeliveredNotAcked)
			}
			if len(res.LatencyWorst) == 0 || len(res.SlowestPublishes) == 0 || res.SlowestPublishes[0].Seq <= 0 ||
				res.LatencyWorst[0].LatencyMs != res.Latency.Max && math.Abs(res.LatencyWorst[0].LatencyMs-res.Latency.Max) > 0.01*res.Latency.Max {
				t.Errorf("slowest deliveries %+v and publishes %+v: want the maximum %.3f ms named", res.LatencyWorst, res.SlowestPublishes, res.Latency.Max)
			}
			if res.Server == nil || res.Server.RSSAfterKiB == 0 {
				t.Errorf("server figures missing: %+v", res.Server)
			}
		})
	}
}
