package testkit

import (
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { LeakMain(m, ServerLeakOptions()...) }

// fakeTB records how a helper ended a test instead of ending this one.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string // guarded by mu
	skipped string // guarded by mu
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "TestFake" }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls helper with f on a goroutine of its own (the helper may end it)
// and returns how it ended: the fatal and skip messages, both empty when
// helper returned.
func (f *fakeTB) run(helper func(t testing.TB)) (fatal, skipped string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal, f.skipped
}

func TestEventually(t *testing.T) {
	calls := 0
	start := time.Now()
	fatal, _ := (&fakeTB{}).run(func(t testing.TB) {
		Eventually(t, time.Second, func() bool { calls++; return calls == 5 }, "five calls")
	})
	if fatal != "" || calls != 5 {
		t.Fatalf("fatal %q after %d calls", fatal, calls)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("five polls took %v", d)
	}

	calls = 0
	start = time.Now()
	fatal, _ = (&fakeTB{}).run(func(t testing.TB) {
		Eventually(t, 50*time.Millisecond, func() bool { calls++; return false }, "the %s", "impossible")
	})
	if want := "timed out after 50ms waiting for the impossible"; fatal != want {
		t.Fatalf("fatal %q, want %q", fatal, want)
	}
	if d := time.Since(start); d < 50*time.Millisecond || calls < 5 {
		t.Fatalf("gave up after %v and %d calls", d, calls)
	}
}

func TestUnavailable(t *testing.T) {
	var out strings.Builder
	stderr = &out
	defer func() { stderr = os.Stderr }()

	t.Setenv("CI", "")
	fatal, skipped := (&fakeTB{}).run(func(t testing.TB) { Unavailable(t, "no %s", "tool") })
	if fatal != "" || !strings.Contains(skipped, "SKIPPING TestFake: no tool") || !strings.Contains(out.String(), skipped) {
		t.Fatalf("outside CI: fatal %q, skipped %q, stderr %q", fatal, skipped, out.String())
	}

	t.Setenv("CI", "true")
	fatal, skipped = (&fakeTB{}).run(func(t testing.TB) { Unavailable(t, "no %s", "tool") })
	if fatal != "no tool (required when CI=true)" || skipped != "" {
		t.Fatalf("in CI: fatal %q, skipped %q", fatal, skipped)
	}
	fatal, _ = (&fakeTB{}).run(func(t testing.TB) { RequireCommand(t, "no-such-command-herald") })
	if !strings.Contains(fatal, "no-such-command-herald is not installed") {
		t.Fatalf("RequireCommand in CI: %q", fatal)
	}
	fatal, _ = (&fakeTB{}).run(func(t testing.TB) { RequireTCP(t, "Nothing", "127.0.0.1:"+strconv.Itoa(FreePort(t))) })
	if !strings.Contains(fatal, "Nothing is not reachable at 127.0.0.1:") {
		t.Fatalf("RequireTCP in CI: %q", fatal)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName("p_"), UniqueName("p_")
	if a == b || len(a) != len("p_")+12 || !strings.HasPrefix(a, "p_") {
		t.Fatalf("%q %q", a, b)
	}
}

func TestUserToken(t *testing.T) {
	secret := []byte("testkit-secret-testkit-secret-0123456789")
	for _, tc := range []struct {
		name     string
		role     string
		wantRole any
	}{
		{name: "with role", role: "admin", wantRole: "admin"},
		{name: "without role", role: "", wantRole: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := UserToken(t, secret, "acme", "alice", tc.role, time.Hour)
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return secret, nil },
				jwt.WithValidMethods([]string{"HS256"})); err != nil {
				t.Fatal(err)
			}
			if claims["sub"] != "alice" || claims["tenant_id"] != "acme" || claims["role"] != tc.wantRole {
				t.Fatalf("claims %v", claims)
			}
			exp, _ := claims.GetExpirationTime()
			if d := time.Until(exp.Time); d < 59*time.Minute || d > time.Hour {
				t.Fatalf("expires in %v", d)
			}
		})
	}
}

func TestServeAndSyncBuffer(t *testing.T) {
	var logs SyncBuffer
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(&logs, "%s\n", r.URL.Path)
	}), ReadHeaderTimeout: time.Second}
	var addr string
	t.Run("serve", func(t *testing.T) {
		addr = Serve(t, srv.Serve, srv.Shutdown)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get("http://" + addr + "/" + strconv.Itoa(i))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
	})
	if n := strings.Count(logs.String(), "\n"); n != 8 {
		t.Fatalf("%d requests logged, want 8:\n%s", n, logs.String())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("server still listening after its test ended")
	}
}

func TestRedis(t *testing.T) {
	var prefix string
	var probe *redis.Client
	t.Run("use", func(t *testing.T) {
		var client *redis.Client
		client, prefix = Redis(t)
		ctx := context.Background()
		if err := client.Set(ctx, "rate:"+prefix+":k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		probe = redis.NewClient(client.Options())
	})
	if prefix == "" {
		t.Skip("no Redis")
	}
	defer probe.Close()
	if n, err := probe.Exists(context.Background(), "rate:"+prefix+":k").Result(); err != nil || n != 0 {
		t.Fatalf("key left after the test: %d %v", n, err)
	}
}

func TestRedisServer(t *testing.T) {
	s := StartRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer client.Close()
	ctx := context.Background()
	ping := func() error { return client.Ping(ctx).Err() }
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	s.Kill() // no-op
	if err := ping(); err == nil {
		t.Fatal("ping after Kill")
	}
	s.Start()
	Eventually(t, 5*time.Second, func() bool { return ping() == nil }, "ping after restart on %s", s.URL())
}

func TestPostgresSchema(t *testing.T) {
	exists := func(schema string) bool {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	var schema string
	t.Run("use", func(t *testing.T) {
		schema = PostgresSchema(t)
		PostgresExec(t, "CREATE TABLE "+schema+".t (x int)", "INSERT INTO "+schema+".t VALUES (1)")
		if !exists(schema) {
			t.Fatalf("schema %s not created", schema)
		}
	})
	if schema == "" {
		t.Skip("no PostgreSQL")
	}
	if exists(schema) {
		t.Fatalf("schema %s left after the test", schema)
	}
}

// TestOnlyTestsImportTestkit: no production file of the module imports
// this package.
func TestOnlyTestsImportTestkit(t *testing.T) {
	const self = "github.com/heraldhq/herald/internal/testkit"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	here, _ := filepath.Abs(".")
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules", "vendor":
				return filepath.SkipDir
			}
			if path == here {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return nil // a file being edited; the compiler will speak of it
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == self {
				t.Errorf("%s imports %s, which is for tests only", path, self)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}
