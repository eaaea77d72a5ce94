package main

import (
	"bytes"
	"context"
	"github.com/heraldhq/herald/internal/api"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/hub"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/presence"
	"github.com/heraldhq/herald/internal/session"
	"github.com/heraldhq/herald/internal/socketio"
	"github.com/heraldhq/herald/internal/sse"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/internal/ws"
)

func TestMain(m *testing.M) { testkit.LeakMain(m, testkit.ServerLeakOptions()...) }

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
	// One auth deadline for every transport.
	if cfg.Session.AuthTimeout != 3*time.Second || len(cfg.APIKeys) != 2 || cfg.Addr != ":8080" {
		t.Errorf("cfg = %+v", cfg)
	}
	// The transport settings reach SSE and Socket.IO too.
	if cfg.SocketIO.PingInterval != 25*time.Second ||
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
		"bad proxy":       {"HERALD_JWT_SECRET": secret, "HERALD_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"},
		"bad grace":       {"HERALD_JWT_SECRET": secret, "HERALD_PRESENCE_GRACE": "soon"},
		"bad read flag":   {"HERALD_JWT_SECRET": secret, "HERALD_WEBHOOK_NOTIFICATION_READ": "maybe"},
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
		"metadata webhook": {[]string{"--database", t.TempDir() + "/h.db"}, map[string]string{"HERALD_JWT_SECRET": secret, "HERALD_API_KEYS": "k1-0123456789abcdef",
			"HERALD_WEBHOOK_URL": "http://169.254.169.254/latest", "HERALD_WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}, "link-local"},
		"webhook without secret": {[]string{"--database", t.TempDir() + "/h.db"}, map[string]string{"HERALD_JWT_SECRET": secret, "HERALD_API_KEYS": "k1-0123456789abcdef",
			"HERALD_WEBHOOK_URL": "https://hooks.example.com/"}, "webhook-secret"},
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
	var out, errOut testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--database", t.TempDir() + "/dev.db",
			"--debug-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	testkit.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "curl -sS -X POST") },
		"the banner; stderr so far: %s", &errOut)
	for _, want := range []string{"JWT secret", "API key      hk_", "user token   ey"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	// --debug-addr serves pprof on its own listener, never on the public one.
	// Its log line follows the banner (the listener opens after it): poll.
	debugRE := regexp.MustCompile(`debug_addr=(\S+)`)
	testkit.Eventually(t, 10*time.Second, func() bool { return debugRE.MatchString(errOut.String()) },
		"debug_addr logged; stderr so far: %s", &errOut)
	m := debugRE.FindStringSubmatch(errOut.String())
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

// --idle-gc is on unless turned off, by flag or environment.
func TestIdleGCSetting(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, map[string]string{}, true},
		{[]string{"--idle-gc=false"}, map[string]string{}, false},
		{nil, map[string]string{"HERALD_IDLE_GC": "false"}, false},
		{[]string{"--idle-gc=true"}, map[string]string{"HERALD_IDLE_GC": "false"}, true},
	} {
		c.env["HERALD_JWT_SECRET"] = secret
		s, err := resolve(t, c.args, c.env)
		if err == nil {
			_, err = s.toConfig()
		}
		if err != nil || s.idleGC != c.want {
			t.Errorf("args %v env %v: idleGC %v, err %v; want %v", c.args, c.env, s.idleGC, err, c.want)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	// Default: trust no proxy.
	s, _ := resolve(t, nil, map[string]string{"HERALD_JWT_SECRET": secret})
	cfg, err := s.toConfig()
	if err != nil || cfg.TrustedProxies != nil {
		t.Fatalf("default: %v, %v", cfg.TrustedProxies, err)
	}
	// A valid list, from the environment and from the flag (which wins).
	s, _ = resolve(t, nil, map[string]string{"HERALD_JWT_SECRET": secret, "HERALD_TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32"})
	if cfg, err = s.toConfig(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.TrustedProxies, " "); got != "10.0.0.0/8 192.0.2.7 2001:db8::/32" {
		t.Errorf("TrustedProxies = %q", got)
	}
	s, _ = resolve(t, []string{"--trusted-proxies", "127.0.0.1"}, map[string]string{"HERALD_JWT_SECRET": secret, "HERALD_TRUSTED_PROXIES": "10.0.0.0/8"})
	if cfg, err = s.toConfig(); err != nil || strings.Join(cfg.TrustedProxies, " ") != "127.0.0.1" {
		t.Errorf("flag must beat env: %v, %v", cfg.TrustedProxies, err)
	}
	// An invalid entry is reported with the flag's name.
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1,300.1.1.1"} {
		s, _ = resolve(t, []string{"--trusted-proxies", bad}, map[string]string{"HERALD_JWT_SECRET": secret})
		if _, err := s.toConfig(); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
			t.Errorf("%q: err = %v, want an error naming --trusted-proxies", bad, err)
		}
	}
}

// TestDefaultsAreThePackagesDefaults proves that --help and behaviour
// cannot drift: with no flag and no environment, every setting resolves to
// the default of the package that owns it; and the default --help prints,
// given back as an explicit flag, resolves to the same value.
func TestDefaultsAreThePackagesDefaults(t *testing.T) {
	rows := []struct {
		flag string
		got  func(node.Config) any
		want any
	}{
		{"addr", func(c node.Config) any { return c.Addr }, node.DefaultAddr},
		{"database", func(c node.Config) any { return c.Database }, node.DefaultDatabase},
		{"redis-prefix", func(c node.Config) any { return c.RedisPrefix }, node.DefaultRedisPrefix},
		{"jwt-leeway", func(c node.Config) any { return c.Auth.Leeway }, auth.DefaultLeeway},
		{"tenant-claim", func(c node.Config) any { return c.Auth.TenantClaim }, auth.DefaultTenantClaim},
		{"role-claim", func(c node.Config) any { return c.Auth.RoleClaim }, auth.DefaultRoleClaim},
		{"auth-timeout", func(c node.Config) any { return c.Session.AuthTimeout }, session.DefaultAuthTimeout},
		{"max-connections", func(c node.Config) any { return c.MaxConnections }, node.DefaultMaxConnections},
		{"max-message-bytes", func(c node.Config) any { return c.WS.MaxMessageBytes }, ws.DefaultMaxMessageBytes},
		{"max-body-bytes", func(c node.Config) any { return c.API.MaxBodyBytes }, int64(api.DefaultMaxBodyBytes)},
		{"event-rate", func(c node.Config) any { return c.Limits.EventRate.Per }, node.DefaultEventRate.Per},
		{"event-burst", func(c node.Config) any { return c.Limits.EventRate.Burst }, node.DefaultEventRate.Burst},
		{"publish-rate", func(c node.Config) any { return c.Limits.PublishRate.Per }, node.DefaultPublishRate.Per},
		{"publish-burst", func(c node.Config) any { return c.Limits.PublishRate.Burst }, node.DefaultPublishRate.Burst},
		{"handshake-rate", func(c node.Config) any { return c.Limits.HandshakeRate.Per }, node.DefaultHandshakeRate.Per},
		{"handshake-burst", func(c node.Config) any { return c.Limits.HandshakeRate.Burst }, node.DefaultHandshakeRate.Burst},
		{"max-conns-per-ip", func(c node.Config) any { return c.Limits.MaxConnsPerIP }, node.DefaultMaxConnsPerIP},
		{"max-conns-per-user", func(c node.Config) any { return c.Limits.MaxConnsPerUser }, node.DefaultMaxConnsPerUser},
		// One flag sets three transports: each keeps its own default.
		{"write-buffer-bytes", func(c node.Config) any { return c.WS.WriteBufferBytes }, ws.DefaultWriteBufferBytes},
		{"write-buffer-bytes", func(c node.Config) any { return c.SSE.WriteBufferBytes }, sse.DefaultWriteBufferBytes},
		{"write-buffer-bytes", func(c node.Config) any { return c.SocketIO.WriteBufferBytes }, socketio.DefaultWriteBufferBytes},
		{"ping-interval", func(c node.Config) any { return c.WS.PingInterval }, ws.DefaultPingInterval},
		{"ping-interval", func(c node.Config) any { return c.SocketIO.PingInterval }, socketio.DefaultPingInterval},
		{"socketio-ping-timeout", func(c node.Config) any { return c.SocketIO.PingTimeout }, socketio.DefaultPingTimeout},
		{"socketio-max-payload", func(c node.Config) any { return c.SocketIO.MaxPayload }, socketio.DefaultMaxPayload},
		{"replay-limit", func(c node.Config) any { return c.Hub.ReplayLimit }, hub.DefaultReplayLimit},
		{"presence-grace", func(c node.Config) any { return c.PresenceGrace }, presence.DefaultGrace},
		{"presence-ttl", func(c node.Config) any { return c.PresenceTTL }, presence.DefaultTTL},
		{"shutdown-grace", func(c node.Config) any { return c.ShutdownGrace }, node.DefaultShutdownGrace},
		{"sweep-interval", func(c node.Config) any { return c.SweepInterval }, store.DefaultSweepInterval},
		{"connection-warn-ratio", func(c node.Config) any { return c.ConnectionWarnRatio }, metrics.DefaultWarnRatio},
	}
	env := map[string]string{"HERALD_JWT_SECRET": secret}
	check := func(how string, args []string) {
		t.Helper()
		s, err := resolve(t, args, env)
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		cfg, err := s.toConfig()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		for _, r := range rows {
			if got := r.got(cfg); got != r.want {
				t.Errorf("%s: --%s resolves to %v (%T), the package default is %v (%T)", how, r.flag, got, got, r.want, r.want)
			}
		}
	}
	check("no flags", nil)

	// What --help says each default is, set explicitly.
	s := newSettings()
	var help bytes.Buffer
	if err := s.parse([]string{"--help"}, func(string) string { return "" }, &help); err != nil || !s.help {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  --(\S+)  \(env [^;]*; default (.*)\)$`).FindAllStringSubmatch(help.String(), -1) {
		shown[m[1]] = m[2]
	}
	var args []string
	for _, r := range rows {
		def, ok := shown[r.flag]
		if !ok {
			t.Fatalf("--help shows no default for --%s:\n%s", r.flag, help.String())
		}
		args = append(args, "--"+r.flag, def)
	}
	check("the defaults --help shows", args)
}

// The Engine.IO settings reach socketio.Config from a flag or the
// environment.
func TestSocketIOSettings(t *testing.T) {
	s, err := resolve(t, []string{"--socketio-ping-timeout", "7s"}, map[string]string{
		"HERALD_JWT_SECRET": secret, "HERALD_SOCKETIO_MAX_PAYLOAD": "1000000"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.toConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SocketIO.PingTimeout != 7*time.Second || cfg.SocketIO.MaxPayload != 1_000_000 {
		t.Fatalf("PingTimeout %v MaxPayload %d", cfg.SocketIO.PingTimeout, cfg.SocketIO.MaxPayload)
	}
	s, err = resolve(t, []string{"--socketio-max-payload", "-1"}, map[string]string{"HERALD_JWT_SECRET": secret})
	if err == nil {
		_, err = s.toConfig()
	}
	if err == nil {
		t.Fatal("a negative --socketio-max-payload was accepted")
	}
}
