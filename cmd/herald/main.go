// Command herald runs a Herald node: a real-time notification gateway.
//
//	go run ./cmd/herald --dev      # try it: embedded SQLite, printed secrets
//	herald --help                  # every flag and environment variable
//	herald --version               # version, commit, build date
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/gctune"
	"github.com/heraldhq/herald/internal/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

// run starts Herald and blocks until ctx is cancelled (a signal), then drains.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := newSettings()
	if err := s.parse(args, envLookup, stderr); err != nil {
		return err
	}
	if s.help {
		return nil
	}
	if s.version {
		_, err := fmt.Fprint(stdout, currentVersion())
		return err
	}
	var dev devSecrets
	if s.dev {
		dev = s.applyDev()
	}
	cfg, err := s.toConfig()
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	cfg.Demo = s.dev // the demo inbox at / and its dev-only endpoints
	logger, err := newLogger(stderr, s.get("log-level"), s.get("log-format"), s.dev)
	if err != nil {
		return err
	}
	cfg.Logger = logger

	n, err := node.New(ctx, cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = n.Shutdown(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	if s.dev {
		printDevBanner(stdout, l.Addr().String(), dev)
	}
	// Private listeners, each with its own mux: their routes never appear on
	// the public one.
	for _, p := range []struct {
		addr, flag, logKey, msg string
		level                   slog.Level
		routes                  func(*http.ServeMux)
	}{
		{s.debugAddr, "debug-addr", "debug_addr", "serving pprof profiles; keep this address private", slog.LevelWarn, func(mux *http.ServeMux) {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}},
		{s.metricsAddr, "metrics-addr", "metrics_addr", "serving metrics", slog.LevelInfo, func(mux *http.ServeMux) {
			mux.Handle("GET /metrics", n.MetricsHandler())
		}},
	} {
		if p.addr == "" {
			continue
		}
		pl, err := net.Listen("tcp", p.addr)
		if err != nil {
			_ = l.Close()
			_ = n.Shutdown(context.Background())
			return fmt.Errorf("listen %s (--%s): %w", p.addr, p.flag, err)
		}
		defer pl.Close()
		logger.Log(ctx, p.level, p.msg, p.logKey, pl.Addr().String())
		go servePrivate(pl, p.flag, logger, p.routes)
	}
	if s.idleGC && !gctune.CollectorOff() {
		gctx, stop := context.WithCancel(ctx)
		defer stop()
		go gctune.NewIdle(gctune.DefaultIdleInterval, logger).Run(gctx)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- n.Serve(l) }()

	select {
	case err := <-serveErr:
		_ = n.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("signal received, draining", "grace", n.ShutdownGrace().String())
	sctx, cancel := context.WithTimeout(context.Background(), n.ShutdownGrace())
	defer cancel()
	if err := n.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// servePrivate serves the routes that routes adds on l until l is closed
// (the --debug-addr and --metrics-addr listeners).
func servePrivate(l net.Listener, name string, logger *slog.Logger, routes func(*http.ServeMux)) {
	mux := http.NewServeMux()
	routes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		logger.Error(name+" listener stopped", "err", err)
	}
}

func newLogger(w io.Writer, level, format string, dev bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q must be debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		if dev {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q must be json or text", format)
}

// devSecrets are generated for --dev and printed once.
type devSecrets struct {
	secret, apiKey string
}

// applyDev fills in generated secrets where none were configured.
func (s *settings) applyDev() devSecrets {
	var d devSecrets
	if s.get("jwt-secret") == "" && s.get("jwt-public-key") == "" && s.get("jwks-url") == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		d.secret = base64.RawURLEncoding.EncodeToString(b)
		*s.byFlag["jwt-secret"].value = d.secret
	} else {
		d.secret = s.get("jwt-secret")
	}
	if s.get("api-keys") == "" {
		d.apiKey = auth.GenerateKey()
		*s.byFlag["api-keys"].value = d.apiKey
	} else {
		d.apiKey = strings.Split(s.get("api-keys"), ",")[0]
	}
	if s.get("default-tenant") == "" {
		*s.byFlag["default-tenant"].value = "demo"
	}
	if s.get("database") == "herald.db" {
		*s.byFlag["database"].value = "herald-dev.db"
	}
	return d
}

func printDevBanner(w io.Writer, addr string, d devSecrets) {
	base := "http://" + addr
	var token string
	if d.secret != "" {
		token, _ = auth.SignHS256([]byte(d.secret), map[string]any{
			"sub": "alice", "tenant_id": "demo", "role": "member", "topics": []string{"demo.*"},
			"exp": time.Now().Add(24 * time.Hour).Unix(), "iat": time.Now().Unix(),
		})
	}
	fmt.Fprintf(w, `
Herald is running in development mode (do not use these settings in production).

  URL          %[1]s
  Demo inbox   %[1]s/  (open it in a browser)
  JWT secret   %[2]s
  API key      %[3]s
  user token   %[4]s
               (user "alice", tenant "demo", valid 24h)

Publish a notification to alice:
  curl -sS -X POST %[1]s/v1/notifications \
    -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' \
    -d '{"tenant":"demo","to":{"users":["alice"]},"type":"demo.hello","title":"Hello","body":"It works"}'

Read alice's inbox:
  curl -sS %[1]s/v1/me/notifications -H 'Authorization: Bearer %[4]s'

Live over WebSocket (e.g. npx wscat): connect to ws://%[5]s/v1/ws and send
  {"type":"auth","token":"%[4]s"}

`, base, d.secret, d.apiKey, token, addr)
}
