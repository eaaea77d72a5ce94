package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/testkit"
)

// TestMain starts one real Herald node for the package's Example
// functions, which find it the way a backend would, in HERALD_URL,
// HERALD_API_KEY and HERALD_ADMIN_KEY; then it runs the tests and checks
// that no goroutine is left over.
func TestMain(m *testing.M) {
	leakOpts := testkit.ServerLeakOptions() // before anything starts
	stop, err := startExampleHerald()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the examples' Herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	if code == 0 {
		if err := goleak.Find(leakOpts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func startExampleHerald() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "herald-client-examples-")
	if err != nil {
		return nil, err
	}
	n, err := node.New(context.Background(), node.Config{
		Database: filepath.Join(dir, "herald.db"),
		Auth:     auth.Config{HMACSecret: []byte(testSecret)},
		APIKeys:  []string{publishKey, "admin:" + adminKey},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- n.Serve(l) }()
	os.Setenv("HERALD_URL", "http://"+l.Addr().String())
	os.Setenv("HERALD_API_KEY", publishKey)
	os.Setenv("HERALD_ADMIN_KEY", adminKey)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "shutdown:", err)
		}
		<-done
		os.RemoveAll(dir)
	}, nil
}
