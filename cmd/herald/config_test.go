package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func resolve(t *testing.T, args []string, env map[string]string) (*settings, error) {
	t.Helper()
	s := newSettings()
	err := s.parse(args, func(k string) string { return env[k] }, &bytes.Buffer{})
	return s, err
}

const secret = "0123456789abcdef0123456789abcdef"

func TestEnvAliasesAndPrecedence(t *testing.T) {
	s, err := resolve(t, []string{"--max-connections", "7"}, map[string]string{
		"JWT_SECRET": secret, "HERALD_API_KEYS": "k1-0123456789abcdef,k2-0123456789abcdef@acme",
		"FRONTEND_URL": "https://app.example.com", "HERALD_ALLOWED_ORIGINS": "https://admin.example.com",
		"NODE_ENV": "development", "MAX_WEBSOCKET_CONNECTIONS": "99", "HERALD_AUTH_TIMEOUT": "3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.toConfig()
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.Auth.HMACSecret) != secret {
		t.Error("JWT_SECRET alias not used")
	}
	if cfg.MaxConnections != 7 {
		t.Errorf("flag must beat env: %d", cfg.MaxConnections)
	}
	if strings.Join(cfg.AllowedOrigins, " ") != "https://admin.example.com https://app.example.com" {
		t.Errorf("origins = %v", cfg.AllowedOrigins)
	}
	if !cfg.AllowLocalhost {
		t.Error("NODE_ENV=development should allow localhost")
	}
	if cfg.WS.AuthTimeout != 3*time.Second || len(cfg.APIKeys) != 2 || cfg.Addr != ":8080" {
		t.Errorf("cfg = %+v", cfg)
	}
	// The transport settings reach SSE and Socket.IO too.
	if cfg.SocketIO.AuthTimeout != 3*time.Second || cfg.SocketIO.PingInterval != 25*time.Second ||
		cfg.SocketIO.WriteBufferBytes != 262144 || cfg.SSE.WriteBufferBytes != 262144 {
		t.Errorf("socketio %+v, sse %+v", cfg.SocketIO, cfg.SSE)
	}
	// HERALD_* wins over the alias.
	s, _ = resolve(t, nil, map[string]string{"JWT_SECRET": "a", "HERALD_JWT_SECRET": secret, "MAX_WEBSOCKET_CONNECTIONS": "5", "HERALD_MAX_CONNECTIONS": "6"})
	cfg, _ = s.toConfig()
	if string(cfg.Auth.HMACSecret) != secret || cfg.MaxConnections != 6 {
		t.Errorf("precedence: %q %d", cfg.Auth.HMACSecret, cfg.MaxConnections)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"no key material": {"HERALD_API_KEYS": "k1-0123456789abcdef"},
		"bad duration":    {"HERALD_JWT_SECRET": secret, "HERALD_AUTH_TIMEOUT": "ten"},
		"bad env":         {"HERALD_JWT_SECRET": secret, "HERALD_ENV": "staging"},
		"bad number":      {"HERALD_JWT_SECRET": secret, "HERALD_MAX_CONNECTIONS": "lots"},
		"zero conns":      {"HERALD_JWT_SECRET": secret, "HERALD_MAX_CONNECTIONS": "0"},
	} {
		s, err := resolve(t, nil, env)
		if err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		if _, err := s.toConfig(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRunRefusesUnsafeConfigs(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no key material": {nil, map[string]string{"HERALD_API_KEYS": "k1-0123456789abcdef"}, "no JWT key material"},
		"wildcard origin": {[]string{"--database", t.TempDir() + "/h.db"}, map[string]string{"HERALD_JWT_SECRET": secret, "HERALD_API_KEYS": "k1-0123456789abcdef", "HERALD_ALLOWED_ORIGINS": "*"}, "wildcard"},
		"no api keys":     {[]string{"--database", t.TempDir() + "/h.db"}, map[string]string{"HERALD_JWT_SECRET": secret}, "HERALD_API_KEYS"},
		"short secret":    {[]string{"--database", t.TempDir() + "/h.db"}, map[string]string{"HERALD_JWT_SECRET": "short", "HERALD_API_KEYS": "k1-0123456789abcdef"}, "32"},
		"unknown flag":    {[]string{"--bogus"}, nil, "bogus"},
	} {
		t.Run(name, func(t *testing.T) {
			old := envLookup
			envLookup = func(k string) string { return tc.env[k] }
			defer func() { envLookup = old }()
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), tc.want) {
				t.Fatalf("err = %v (stderr %q), want it to mention %q", err, errOut.String(), tc.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	s := newSettings()
	var out bytes.Buffer
	if err := s.parse([]string{"--help"}, func(string) string { return "" }, &out); err != nil || !s.help {
		t.Fatal(err)
	}
	for _, want := range []string{"HERALD_ADDR", "HERALD_DATABASE", "HERALD_JWT_SECRET", "JWT_SECRET", "HERALD_API_KEYS",
		"HERALD_AUTH_TIMEOUT", "HERALD_ALLOWED_ORIGINS", "FRONTEND_URL", "HERALD_ENV", "NODE_ENV", "MAX_WEBSOCKET_CONNECTIONS", "--dev"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestDevModeStartsAndPrintsBanner(t *testing.T) {
	old := envLookup
	envLookup = func(string) string { return "" }
	defer func() { envLookup = old }()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--database", t.TempDir() + "/dev.db",
			"--debug-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "curl -sS -X POST") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stderr: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"JWT secret", "API key      hk_", "user token   ey"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	// --debug-addr serves pprof on its own listener, never on the public one.
	m := regexp.MustCompile(`debug_addr=(\S+)`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no debug_addr logged: %s", errOut.String())
	}
	if code := getStatus(t, "http://"+m[1]+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("pprof on --debug-addr: %d", code)
	}
	public := regexp.MustCompile(`URL\s+(http://\S+)`).FindStringSubmatch(out.String())
	if public == nil {
		t.Fatal("no URL in the banner")
	}
	if code := getStatus(t, public[1]+"/debug/pprof/cmdline"); code == http.StatusOK {
		t.Errorf("pprof served on the public listener")
	}
	// --metrics-addr moves /metrics off the public listener.
	m = regexp.MustCompile(`metrics_addr=(\S+)`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no metrics_addr logged: %s", errOut.String())
	}
	if code := getStatus(t, "http://"+m[1]+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics on --metrics-addr: %d", code)
	}
	if code := getStatus(t, public[1]+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the public listener: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuf) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }
