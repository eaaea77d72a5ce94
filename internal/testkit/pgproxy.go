package testkit

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// PostgresProxy starts an in-process toxiproxy in front of the PostgreSQL
// server of direct (a postgres:// URL over TCP), stopped when the test ends,
// and returns it with direct's URL through it. Fault tests add toxics to it
// (latency, resets) or stop it to cut every connection. A URL that is not
// postgres:// over TCP skips the test.
func PostgresProxy(t testing.TB, direct string) (*toxiproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(direct)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skipf("fault test needs a postgres:// URL, have %q", direct)
	}
	cfg, err := pgconn.ParseConfig(direct)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skip("fault test needs a TCP server, not a socket")
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, "postgres", "127.0.0.1:0", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	u.Host = proxy.Listen
	return proxy, u.String()
}
