package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/heraldhq/herald/internal/admission"
	"github.com/heraldhq/herald/internal/limit"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/testkit"
)

// Identities used by the metrics tests. They are distinctive so that the
// exposition can be scanned for them: user and tenant ids must never become
// label values.
const (
	metricsTenant   = "tenant-4f1c9e"
	metricsUser     = "user-8b27d3"
	metricsUser2    = "user-c05a61"
	metricsAdminKey = "admin-api-key-0123456789" // the harness's admin key
)

// scrapeMetrics fetches /metrics and parses it.
func scrapeMetrics(t testing.TB, n *testNode) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	status, body, hdr := n.do("GET", "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return string(body), fams
}

// metricSample sums the value of every series of family name whose labels include
// want: counter and gauge values, histogram sample counts.
func metricSample(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// TestMetricsExposeActivityWithoutUserLabels generates one of each kind of
// activity and checks that /metrics shows it, and that no label carries a
// user or tenant id.
func TestMetricsExposeActivityWithoutUserLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNode(t, func(c *Config) {
		c.Registry = reg
		c.Limits.PublishRate = limit.Rate{Per: 0.001, Burst: 2}
	})

	_, before := scrapeMetrics(t, n)
	checkMetricsBeforeActivity(t, before)
	generateMetricsActivity(t, n)
	text, fams := scrapeMetrics(t, n)
	checkMetricsAfterActivity(t, fams)
	checkMetricsHaveNoIDs(t, text, fams)

	// Naming conventions (promlint: _total counters, base units, etc.).
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "herald_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// checkMetricsBeforeActivity checks the exposition of a node that has seen
// no activity yet.
func checkMetricsBeforeActivity(t *testing.T, before map[string]*dto.MetricFamily) {
	t.Helper()
	// Series pre-created for dashboards and alerts read 0 before any event.
	for _, s := range [][]string{
		{"herald_connections_active", "transport", "ws"},
		{"herald_connections_active", "transport", "sse"},
		{"herald_connections_opened_total", "transport", "ws"},
		{"herald_connections_closed_total", "transport", "ws", "reason", "slow_consumer"},
		{"herald_publish_duration_seconds", "outcome", "ok"},
		{"herald_publish_duration_seconds", "outcome", "client_error"},
		{"herald_publish_duration_seconds", "outcome", "server_error"},
		{"herald_rate_limited_total", "scope", "events"},
		{"herald_notifications_published_total"},
		{"herald_delivery_latency_seconds"},
		{"herald_resume_resyncs_total"},
		{"herald_broker_probe_rtt_seconds"},
	} {
		if v, ok := metricSample(before, s[0], s[1:]...); !ok || v != 0 {
			t.Errorf("before any activity: %v = %v (present %v), want a 0 series", s, v, ok)
		}
	}
	if v, ok := metricSample(before, "herald_connections_max"); !ok || v != 10000 {
		t.Errorf("herald_connections_max = %v (present %v), want 10000", v, ok)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("runtime/process collector metric %s missing", name)
		}
	}
}

// generateMetricsActivity produces one of each kind of activity: two
// authenticated WebSockets with one message each way, a rate-limited
// publish, a bad token, a refused origin and a client leaving. One
// WebSocket stays open.
func generateMetricsActivity(t *testing.T, n *testNode) {
	t.Helper()
	// Two authenticated WebSockets, one message each way.
	a := n.mustDial(dialOpts{header: token(t, metricsTenant, metricsUser, "", time.Hour)})
	a.next("ready")
	b := n.mustDial(dialOpts{header: token(t, metricsTenant, metricsUser2, "", time.Hour)})
	b.next("ready")
	a.send(`{"type":"ping"}`)
	a.next("pong")
	n.publish(toUsers(metricsTenant, metricsUser))
	if m := a.next("notification"); m.Notification == nil {
		t.Fatalf("no notification: %s", m.Raw)
	}
	n.publish(toUsers(metricsTenant, metricsUser2))
	b.next("notification")
	// The third publish is over the key's burst of 2.
	if status, body, _ := n.do("POST", "/v1/notifications", n.apiKey, toUsers(metricsTenant, metricsUser)); status != http.StatusTooManyRequests {
		t.Fatalf("third publish: %d %s", status, body)
	}
	// A token signed with another secret.
	bad := testkit.Token(t, []byte("another-secret-another-secret-0123456789"),
		map[string]any{"sub": metricsUser, "tenant_id": metricsTenant, "exp": time.Now().Add(time.Hour).Unix()})
	if _, resp, err := n.dial(dialOpts{header: bad}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token dial: %v %v", err, resp)
	}
	// A browser origin that is not allowed.
	if _, resp, err := n.dial(dialOpts{header: token(t, metricsTenant, metricsUser, "", time.Hour), origin: "https://evil.example.net"}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad origin dial: %v %v", err, resp)
	}
	// One client leaves.
	b.close()
	testkit.Eventually(t, 0, func() bool {
		_, fams := scrapeMetrics(t, n)
		v, _ := metricSample(fams, "herald_connections_active", "transport", "ws")
		return v == 1
	}, "the closed connection to be counted")
}

// checkMetricsAfterActivity checks that the exposition counts what
// generateMetricsActivity did.
func checkMetricsAfterActivity(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	expect := []struct {
		series []string
		min    float64
		exact  bool
	}{
		{[]string{"herald_connections_active", "transport", "ws"}, 1, true},
		{[]string{"herald_connections_opened_total", "transport", "ws"}, 2, true},
		{[]string{"herald_connections_closed_total", "transport", "ws", "reason", "client_closed"}, 1, true},
		{[]string{"herald_connection_duration_seconds", "transport", "ws"}, 1, true},
		{[]string{"herald_connection_attempts_total", "transport", "ws"}, 4, false},
		{[]string{"herald_messages_received_total", "transport", "ws", "type", "ping"}, 1, true},
		{[]string{"herald_messages_sent_total", "kind", "notification"}, 2, true},
		{[]string{"herald_publish_duration_seconds", "outcome", "ok"}, 2, true},
		{[]string{"herald_publish_duration_seconds"}, 3, true}, // ok + refused, whatever the refusal's outcome label
		{[]string{"herald_notifications_published_total"}, 2, true},
		{[]string{"herald_delivery_latency_seconds"}, 2, false},
		{[]string{"herald_store_operation_duration_seconds", "op", "publish"}, 2, true},
		{[]string{"herald_broker_operation_duration_seconds", "op", "publish"}, 2, false},
		{[]string{"herald_rate_limited_total", "scope", "publish"}, 1, true},
		{[]string{"herald_auth_failures_total", "reason", "signature"}, 1, true},
		{[]string{"herald_origin_rejected_total", "transport", "ws"}, 1, true},
		{[]string{"herald_security_events_total", "event", "origin_rejected"}, 1, true},
		{[]string{"herald_security_events_total", "event", "token_invalid"}, 1, true},
	}
	for _, e := range expect {
		v, ok := metricSample(fams, e.series[0], e.series[1:]...)
		switch {
		case !ok:
			t.Errorf("%v: no such series", e.series)
		case e.exact && v != e.min:
			t.Errorf("%v = %v, want %v", e.series, v, e.min)
		case v < e.min:
			t.Errorf("%v = %v, want >= %v", e.series, v, e.min)
		}
	}
	if v, _ := metricSample(fams, "herald_store_errors_total"); v != 0 {
		t.Errorf("store errors: %v", v)
	}
}

// checkMetricsHaveNoIDs checks that no user or tenant id appears anywhere in
// the exposition, and that herald_* label values look like a fixed set.
func checkMetricsHaveNoIDs(t *testing.T, text string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	// No user or tenant id anywhere in the exposition (labels or values).
	for _, id := range []string{metricsTenant, metricsUser, metricsUser2} {
		if strings.Contains(text, id) {
			t.Errorf("/metrics contains the id %q", id)
		}
	}
	// Every herald_* label value comes from a small fixed set: nothing that
	// looks like an id, address or origin.
	idLike := regexp.MustCompile(`[0-9a-f]{6,}|[.:/@]`)
	for name, f := range fams {
		if !strings.HasPrefix(name, "herald_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "le" {
					continue
				}
				if idLike.MatchString(l.GetValue()) {
					t.Errorf("%s has a suspicious label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestMetricsNamedInDeployExist checks that every metric the Grafana
// dashboard and the Prometheus rules in deploy/ refer to is one that Herald
// actually registers, so a rename in internal/metrics breaks this test
// instead of silently emptying a dashboard or disarming an alert.
func TestMetricsNamedInDeployExist(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	// The node registers more (limiter refusals, the connection limit).
	nodeReg := prometheus.NewRegistry()
	startNode(t, func(c *Config) { c.Registry = nodeReg })
	known := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name := fqName.FindStringSubmatch(d.String())[1]
			known[name] = true
			switch v.Field(i).Interface().(type) {
			case prometheus.Histogram, *prometheus.HistogramVec:
				for _, s := range []string{"_bucket", "_count", "_sum"} {
					known[name+s] = true
				}
			}
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	nodeFams, err := nodeReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams = append(fams, nodeFams...)
	for _, f := range fams { // go_* and process_* collectors
		known[f.GetName()] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			known[f.GetName()+"_count"] = true
			known[f.GetName()+"_sum"] = true
			known[f.GetName()+"_bucket"] = true
		}
	}

	root := filepath.Join("..", "..", "deploy")
	files := []string{
		filepath.Join(root, "grafana", "herald-dashboard.json"),
		filepath.Join(root, "prometheus", "herald-alerts.yml"),
	}
	name := regexp.MustCompile(`\b(?:herald|go|process)_[a-z0-9_]+`)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if strings.HasSuffix(file, ".json") {
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
		used := map[string]bool{}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue // YAML comments may name proposed metrics
			}
			for _, n := range name.FindAllString(line, -1) {
				used[n] = true
			}
		}
		if len(used) < 5 {
			t.Errorf("%s: only %d metric names found", file, len(used))
		}
		var missing []string
		for n := range used {
			if !known[n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s refers to metrics Herald does not register: %v", file, missing)
		}
	}
}

// TestAdminStatsEndpoint: GET /v1/admin/stats serves the connection
// monitoring snapshot to admin keys only.
func TestAdminStatsEndpoint(t *testing.T) {
	n := startNode(t, func(c *Config) { c.MaxConnections = 50 })
	for i := range 2 {
		n.mustDial(dialOpts{header: token(t, metricsTenant, fmt.Sprintf("%s-%d", metricsUser, i), "", time.Hour)}).next("ready")
	}
	var st metrics.Stats
	testkit.Eventually(t, 0, func() bool {
		status, body, _ := n.do("GET", "/v1/admin/stats", metricsAdminKey, nil)
		if status != http.StatusOK {
			t.Fatalf("stats with the admin key: %d %s", status, body)
		}
		st = metrics.Stats{}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("stats body %s: %v", body, err)
		}
		return st.ActiveConnections == 2
	}, "stats to show 2 active connections")
	if st.TotalConnections != 2 || st.PeakConnections != 2 || st.MaxConnections != 50 || st.Attempts < 2 ||
		st.Usage != 2.0/50 || st.Draining || st.Goroutines == 0 || st.HeapBytes == 0 {
		t.Errorf("stats: %+v", st)
	}
	// The raw JSON uses the documented snake_case keys.
	_, body, _ := n.do("GET", "/v1/admin/stats", metricsAdminKey, nil)
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"total_connections", "active_connections", "peak_connections", "connection_attempts", "failed_connections", "max_connections", "usage", "heap_bytes", "goroutines", "draining"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, body)
		}
	}

	for _, tc := range []struct {
		key    string
		status int
	}{
		{"", http.StatusUnauthorized},
		{"not-a-key-0123456789", http.StatusUnauthorized},
		{n.apiKey, http.StatusForbidden},
		{"scoped-api-key-0123456789", http.StatusForbidden},
	} {
		if status, body, _ := n.do("GET", "/v1/admin/stats", tc.key, nil); status != tc.status {
			t.Errorf("stats with key %q: %d %s, want %d", tc.key, status, body, tc.status)
		}
	}
}

// prometheusBinary returns the Prometheus server to test against, or skips
// loudly (fails under CI=true, where .ci/run installs the Debian package).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HERALD_PROMETHEUS"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	testkit.Unavailable(t, "no prometheus binary (apt-get install -y prometheus, or set HERALD_PROMETHEUS)")
	return ""
}

// TestPrometheusScrapesNode starts a real Prometheus server that scrapes a
// running node every second, and reads herald_connections_active back
// through Prometheus's query API.
func TestPrometheusScrapesNode(t *testing.T) {
	bin := prometheusBinary(t)
	n := startNode(t)
	const conns = 3
	for i := range conns {
		n.mustDial(dialOpts{header: token(t, metricsTenant, fmt.Sprintf("%s-%d", metricsUser, i), "", time.Hour)}).next("ready")
	}
	n.publish(toUsers(metricsTenant, metricsUser+"-0"))

	promAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	prom := startPrometheus(t, bin, strings.TrimPrefix(n.base, "http://"), promAddr)

	client := &http.Client{Timeout: 2 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	query := func(q string) (float64, bool) { return prometheusQuery(client, promAddr, q) }

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := `herald_connections_active{job="herald",transport="ws"}`
	var last float64
	for {
		v, ok := query(q)
		if ok {
			last = v
			if v == conns {
				break
			}
		}
		select {
		case <-prom.exited:
			t.Fatalf("prometheus exited: %v", prom.waitErr)
		case <-ctx.Done():
			t.Fatalf("Prometheus never returned %s = %d (last %v)", q, conns, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The same scrape carries the rest: the target is up and the publish
	// was counted.
	if v, ok := query(`up{job="herald"}`); !ok || v != 1 {
		t.Errorf("up = %v (%v)", v, ok)
	}
	if v, ok := query(`herald_notifications_published_total{job="herald"}`); !ok || v != 1 {
		t.Errorf("herald_notifications_published_total = %v (%v)", v, ok)
	}
}

// prometheusProcess is a running Prometheus server; waitErr is set before
// exited is closed.
type prometheusProcess struct {
	exited  chan struct{}
	waitErr error
}

// startPrometheus starts bin listening on promAddr and scraping target every
// second; a cleanup kills it and logs its output if the test failed.
func startPrometheus(t *testing.T, bin, target, promAddr string) *prometheusProcess {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: herald
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	p := &prometheusProcess{exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
			if t.Failed() {
				t.Logf("prometheus output:\n%s", out.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("prometheus (pid %d) did not exit", cmd.Process.Pid)
		}
	})
	return p
}

// prometheusQuery runs the instant query q against the Prometheus server at
// promAddr and returns its single result, or false when there is not exactly
// one or the server did not answer.
func prometheusQuery(client *http.Client, promAddr, q string) (float64, bool) {
	resp, err := client.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// TestAdmissionCountsPerTransport: every transport's connection requests
// are counted by admission the same way (attempts = refused + admitted;
// failed = refused + admitted but never authenticated), in
// GET /v1/admin/stats and in the refusal and failure metrics.
func TestAdmissionCountsPerTransport(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.MaxConnsPerUser = 1 })
	tok := token(t, metricsTenant, metricsUser, "", time.Hour)
	n.mustDial(dialOpts{header: tok}).next("ready") // ws: opened
	if _, resp, err := n.dial(dialOpts{header: tok}); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second connection of the user: %v", err) // ws: admitted, then refused per user: failed
	}
	if _, resp, err := n.dial(dialOpts{header: tok, origin: "https://evil.example.net"}); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad origin: %v", err) // ws: refused before admission
	}
	if status, _, _ := n.do("GET", "/v1/me/stream", "not-a-token", nil); status != http.StatusUnauthorized {
		t.Fatalf("stream with a bad token: %d", status) // sse: refused before admission
	}
	if status, body, _ := n.do("GET", "/socket.io/?EIO=4&transport=polling", "", nil); status != http.StatusOK {
		t.Fatalf("socket.io handshake: %d %s", status, body) // socketio: admitted, pending
	}
	want := map[string]admission.TransportStats{
		"ws":       {Attempts: 3, Refused: 1, Opened: 1, Failed: 2, Active: 1},
		"sse":      {Attempts: 1, Refused: 1, Failed: 1},
		"socketio": {Attempts: 1, Active: 1, Pending: 1},
	}
	var st metrics.Stats
	testkit.Eventually(t, 0, func() bool {
		_, body, _ := n.do("GET", "/v1/admin/stats", metricsAdminKey, nil)
		st = metrics.Stats{}
		return json.Unmarshal(body, &st) == nil && reflect.DeepEqual(st.Transports, want)
	}, "per-transport stats %v", want)
	if st.Attempts != 5 || st.Failed != 3 || st.Pending != 1 {
		t.Errorf("totals: attempts %d, failed %d, pending %d; want 5, 3, 1", st.Attempts, st.Failed, st.Pending)
	}
	_, fams := scrapeMetrics(t, n)
	for _, e := range []struct {
		series []string
		want   float64
	}{
		{[]string{"herald_connection_attempts_total", "transport", "ws"}, 3},
		{[]string{"herald_connection_attempts_total", "transport", "sse"}, 1},
		{[]string{"herald_connection_attempts_total", "transport", "socketio"}, 1},
		{[]string{"herald_connection_refusals_total", "transport", "ws", "reason", "per_user"}, 1},
		{[]string{"herald_connection_failures_total", "transport", "ws"}, 1},
	} {
		if v, ok := metricSample(fams, e.series[0], e.series[1:]...); !ok || v != e.want {
			t.Errorf("%v = %v (present %v), want %v", e.series, v, ok, e.want)
		}
	}
}
