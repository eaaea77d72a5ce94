package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// promHist is one Prometheus histogram series: cumulative bucket counts by
// upper bound, sum and count.
type promHist struct {
	les   []float64 // ascending, +Inf last
	cum   []float64
	sum   float64
	count float64
}

// scrape is every herald_*_seconds histogram of a /metrics page, keyed by
// "name{labels}" without the le label.
type scrape map[string]*promHist

// scrapeMetrics fetches and parses the Prometheus text exposition at url.
func scrapeMetrics(ctx context.Context, client *http.Client, url string) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: metrics: %s answered %d", url, resp.StatusCode)
	}
	out := scrape{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.addLine(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	for _, h := range out {
		sort.Sort(h)
	}
	return out, nil
}

func (h *promHist) Len() int           { return len(h.les) }
func (h *promHist) Less(i, j int) bool { return h.les[i] < h.les[j] }
func (h *promHist) Swap(i, j int) {
	h.les[i], h.les[j] = h.les[j], h.les[i]
	h.cum[i], h.cum[j] = h.cum[j], h.cum[i]
}

// addLine takes one exposition line; only herald_*_seconds histograms count.
func (s scrape) addLine(line string) {
	if !strings.HasPrefix(line, "herald_") {
		return
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return
	}
	name, labels := line[:sp], ""
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name, labels = name[:i], strings.TrimSuffix(name[i+1:], "}")
	}
	var kind string
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			name, kind = base, suffix
			break
		}
	}
	// Latency histograms only: a connection's lifetime is not a stage.
	if kind == "" || !strings.HasSuffix(name, "_seconds") || strings.Contains(name, "connection_duration") {
		return
	}
	var le float64
	var rest []string
	for _, l := range splitLabels(labels) {
		if v, ok := strings.CutPrefix(l, "le="); ok {
			le, _ = strconv.ParseFloat(strings.Trim(v, `"`), 64)
			continue
		}
		rest = append(rest, l)
	}
	key := name
	if len(rest) > 0 {
		key += "{" + strings.Join(rest, ",") + "}"
	}
	h := s[key]
	if h == nil {
		h = &promHist{}
		s[key] = h
	}
	switch kind {
	case "_bucket":
		h.les = append(h.les, le)
		h.cum = append(h.cum, v)
	case "_sum":
		h.sum = v
	case "_count":
		h.count = v
	}
}

// splitLabels splits `a="x",b="y"` (label values here never hold commas).
func splitLabels(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ServerStage is one server-side latency histogram over the measured
// window, from the node's /metrics (quantiles interpolated in its buckets).
type ServerStage struct {
	Series string  `json:"series"`
	Count  int64   `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

// stages returns what changed between two scrapes, busiest series first.
func stages(before, after scrape) []ServerStage {
	var out []ServerStage
	for key, a := range after {
		b := before[key]
		if b == nil {
			b = &promHist{}
		}
		n := a.count - b.count
		if n <= 0 || len(a.les) == 0 {
			continue
		}
		cum := make([]float64, len(a.cum))
		for i := range a.cum {
			cum[i] = a.cum[i]
			if i < len(b.cum) && b.les[i] == a.les[i] {
				cum[i] -= b.cum[i]
			}
		}
		out = append(out, ServerStage{
			Series: key, Count: int64(n), MeanMs: round((a.sum-b.sum)/n*1000, 3),
			P50Ms: round(bucketQuantile(a.les, cum, 0.5)*1000, 3),
			P99Ms: round(bucketQuantile(a.les, cum, 0.99)*1000, 3),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// bucketQuantile interpolates quantile q linearly inside the bucket that
// holds it, like PromQL's histogram_quantile.
func bucketQuantile(les, cum []float64, q float64) float64 {
	total := cum[len(cum)-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
	for i, c := range cum {
		if c < rank {
			continue
		}
		if math.IsInf(les[i], 1) {
			if i == 0 {
				return 0
			}
			return les[i-1]
		}
		lo, prev := 0.0, 0.0
		if i > 0 {
			lo, prev = les[i-1], cum[i-1]
		}
		if c == prev {
			return les[i]
		}
		return lo + (les[i]-lo)*(rank-prev)/(c-prev)
	}
	return les[len(les)-1]
}

// newHTTPClient returns a net/http client with up to n keep-alive
// connections per host, for the metrics scrapes (publishers use httpPoster).
func newHTTPClient(n int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        4 * n,
			MaxIdleConnsPerHost: n,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}
