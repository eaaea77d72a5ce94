package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is every figure of a run. It is printed as one JSON line and as a
// Markdown table.
type Result struct {
	Scenario   Scenario  `json:"scenario"`
	Transport  string    `json:"transport"`
	Client     string    `json:"client,omitempty"` // epoll or goroutine
	Date       time.Time `json:"date"`
	URLs       []string  `json:"urls"`
	Conns      int       `json:"conns"`
	Workers    int       `json:"workers"`
	Sources    int       `json:"sources"`
	Publishers int       `json:"publishers,omitempty"`
	Batch      int       `json:"batch,omitempty"`
	TargetRate float64   `json:"target_rate,omitempty"` // main stream items/s; negative: unpaced
	DurationS  float64   `json:"duration_s"`            // publish (or hold) window

	Connected      int     `json:"connected"`
	ConnectFailed  int     `json:"connect_failed"` // users that never connected
	ConnectErrors  int     `json:"connect_errors"` // failed attempts, retried included
	ConnectSeconds float64 `json:"connect_s"`
	ConnectRate    float64 `json:"connect_rate"` // connections/s

	Unicast   *StreamResult `json:"unicast,omitempty"`
	Broadcast *StreamResult `json:"broadcast,omitempty"`

	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Duplicates int64 `json:"duplicates"`
	Gaps       int64 `json:"gaps"`
	Misrouted  int64 `json:"misrouted"`
	Malformed  int64 `json:"malformed"`
	// AckedNotDelivered counts items answered 201 that no user received
	// (a false 201, or a loss), AckedNotDeliveredSeqs names the first few;
	// DeliveredNotAcked counts items received whose publish was refused or
	// got no answer (committed all the same: allowed, a publisher retries
	// with an idempotency key).
	AckedNotDelivered     int64          `json:"acked_not_delivered"`
	AckedNotDeliveredSeqs []int64        `json:"acked_not_delivered_seqs,omitempty"`
	DeliveredNotAcked     int64          `json:"delivered_not_acked"`
	Replayed              int64          `json:"replayed"` // deliveries published before their session was ready
	Resyncs               int64          `json:"resyncs"`
	ResyncSkipped         int64          `json:"resync_skipped"`
	DeliveriesPerS        float64        `json:"deliveries_per_s"`
	Latency               LatencySummary `json:"latency"` // live deliveries (ClassLive)
	// ReplayLatency is the publish→deliver time of replayed deliveries
	// (ClassReplay): it includes the client's time away and its dial.
	ReplayLatency LatencySummary `json:"replay_latency"`
	// LatencyWorst and ReplayWorst are the slowest deliveries of each class
	// with their context, slowest first.
	// ResumeDial is the duration of successful resume attempts, from the
	// start of the TCP connect to the ready message.
	ResumeDial   LatencySummary  `json:"resume_dial"`
	LatencyWorst []LatencySample `json:"latency_worst,omitempty"`
	ReplayWorst  []LatencySample `json:"replay_worst,omitempty"`
	// SlowestPublishes are the slowest publish calls (by round trip), with
	// the seq of their first item, to match against the slow deliveries.
	SlowestPublishes []PublishSample `json:"slowest_publishes,omitempty"`

	Churned           int64 `json:"churned"`
	Reconnects        int64 `json:"reconnects"`
	ReconnectFailures int64 `json:"reconnect_failures"`
	UnexpectedCloses  int64 `json:"unexpected_closes"`
	// SynRetrans counts the SYNs the kernel sent again on the sessions'
	// connects (Linux): each is a connect that waited 1 s or more.
	SynRetrans   int64          `json:"syn_retrans"`
	CloseCodes   map[int]int64  `json:"close_codes,omitempty"`
	DialFailures map[int]int64  `json:"dial_failures,omitempty"`
	Server       *ServerResult  `json:"server,omitempty"`
	ServerStages []ServerStage  `json:"server_stages,omitempty"`
	GeneratorCPU float64        `json:"generator_cpu_pct"`
	MachineIdle  float64        `json:"machine_idle_pct"` // during the measured window, all cores
	ConnectPhase *windowFigures `json:"connect_phase,omitempty"`
	Pass         bool           `json:"pass"`
	Failures     []string       `json:"failures,omitempty"`

	latency *hdrhistogram.Histogram // publish→deliver, µs (for WritePlot)
}

// StreamResult is one publish stream's figures.
type StreamResult struct {
	Calls       int64   `json:"calls"`
	Items       int64   `json:"items"` // answered 201
	FailedItems int64   `json:"failed_items"`
	PerS        float64 `json:"per_s"` // items/s achieved
	// Saturated: the stream achieved under 90% of its target rate (the
	// server or the publishers could not keep up).
	Saturated  bool           `json:"saturated,omitempty"`
	Failures   map[string]int `json:"failures,omitempty"`
	FirstError string         `json:"first_error,omitempty"`
	HTTP       LatencySummary `json:"http_latency"`

	http *hdrhistogram.Histogram // round trips, µs (for WritePlot)
}

// ServerResult is what /proc said about the server.
type ServerResult struct {
	PID           int     `json:"pid"`
	RSSBeforeKiB  int64   `json:"rss_before_kib"` // before the first connection
	RSSAfterKiB   int64   `json:"rss_after_kib"`  // at the end of the window
	RSSPerConnKiB float64 `json:"rss_per_conn_kib"`
	CPUPercent    float64 `json:"cpu_pct"` // during the window, percent of one core
}

// windowFigures are CPU figures of the connect phase.
type windowFigures struct {
	ServerCPU    float64 `json:"server_cpu_pct"`
	GeneratorCPU float64 `json:"generator_cpu_pct"`
	MachineIdle  float64 `json:"machine_idle_pct"`
}

// check fills Pass and Failures.
func (r *Result) check() {
	r.Failures = nil
	add := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if r.ConnectFailed > 0 {
		add("%d of %d users never connected", r.ConnectFailed, r.Conns)
	}
	if r.Duplicates > 0 {
		add("%d duplicates", r.Duplicates)
	}
	if r.Gaps > 0 {
		add("%d gaps", r.Gaps)
	}
	if r.Misrouted > 0 {
		add("%d misrouted", r.Misrouted)
	}
	if r.Malformed > 0 {
		add("%d malformed", r.Malformed)
	}
	if r.AckedNotDelivered > 0 && r.Resyncs == 0 {
		add("%d items answered 201 were never delivered (seq %v…)", r.AckedNotDelivered, r.AckedNotDeliveredSeqs)
	}
	if r.Delivered+r.ResyncSkipped < r.Expected {
		add("lost %d of %d expected deliveries", r.Expected-r.Delivered-r.ResyncSkipped, r.Expected)
	}
	r.Pass = len(r.Failures) == 0
}

// WriteJSON writes r as one line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteMarkdown writes r as a two-column table.
func (r *Result) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(format, args...)) }
	status := "PASS"
	if !r.Pass {
		status = "FAIL: " + strings.Join(r.Failures, "; ")
	}
	tr := r.Transport
	if r.Client != "" {
		tr += ", " + r.Client + " client"
	}
	fmt.Fprintf(&b, "\n### herald-bench %s (%s), %s\n\n| figure | value |\n|---|---|\n", r.Scenario, tr, r.Date.Format(time.RFC3339))
	row("result", "%s", status)
	row("connections", "%d of %d (%d workers, %d source addresses)", r.Connected, r.Conns, r.Workers, r.Sources)
	row("connect rate", "%.0f conns/s (%.2f s; %d failed attempts)", r.ConnectRate, r.ConnectSeconds, r.ConnectErrors)
	if r.ConnectPhase != nil {
		row("connect phase CPU", "server %.0f%%, generator %.0f%%, machine idle %.0f%%",
			r.ConnectPhase.ServerCPU, r.ConnectPhase.GeneratorCPU, r.ConnectPhase.MachineIdle)
	}
	if r.Scenario == ScenarioIdle {
		row("window", "held %.1f s", r.DurationS)
	} else {
		rate := "unpaced"
		if r.TargetRate > 0 {
			rate = fmt.Sprintf("%.0f/s", r.TargetRate)
		}
		row("window", "%.1f s, target %s, %d publishers, batch %d", r.DurationS, rate, r.Publishers, r.Batch)
	}
	for _, s := range []struct {
		name string
		s    *StreamResult
	}{{"unicast", r.Unicast}, {"broadcast", r.Broadcast}} {
		if s.s == nil {
			continue
		}
		note := ""
		if s.s.Saturated {
			note = " (SATURATED: under 90% of the target rate)"
		}
		row(s.name+" publishes", "%d ok, %d failed, %.0f/s%s; HTTP p50 %.2f ms, p99 %.2f ms",
			s.s.Items, s.s.FailedItems, s.s.PerS, note, s.s.HTTP.P50, s.s.HTTP.P99)
	}
	if r.Scenario != ScenarioIdle {
		row("delivered / expected", "%d / %d (%.0f deliveries/s)", r.Delivered, r.Expected, r.DeliveriesPerS)
		row("duplicates, gaps, misrouted", "%d, %d, %d", r.Duplicates, r.Gaps, r.Misrouted)
		row("answered 201, never delivered / delivered, not answered 201", "%d / %d", r.AckedNotDelivered, r.DeliveredNotAcked)
		row("latency p50 / p90 / p99 / p99.9 / max", "%.2f / %.2f / %.2f / %.2f / %.2f ms",
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999, r.Latency.Max)
		if r.Churned > 0 || r.Reconnects > 0 {
			row("churn", "%d closed, %d resumed, %d replayed, %d resyncs", r.Churned, r.Reconnects, r.Replayed, r.Resyncs)
			row("replayed latency p50 / p99 / p99.9 / max", "%.2f / %.2f / %.2f / %.2f ms (includes the client's time away and its dial)",
				r.ReplayLatency.P50, r.ReplayLatency.P99, r.ReplayLatency.P999, r.ReplayLatency.Max)
			row("resume dial p50 / p99 / p99.9 / max", "%.2f / %.2f / %.2f / %.2f ms (connect to ready)",
				r.ResumeDial.P50, r.ResumeDial.P99, r.ResumeDial.P999, r.ResumeDial.Max)
		}
		if r.SynRetrans > 0 {
			row("SYN retransmits on connects", "%d (each a connect that waited 1 s or more)", r.SynRetrans)
		}
		if r.ReconnectFailures > 0 {
			row("failed resume attempts", "%d, retried (by HTTP status or close code, 0 = network: %s)", r.ReconnectFailures, formatCodes(r.DialFailures))
		}
	}
	if r.UnexpectedCloses > 0 {
		row("unexpected closes", "%d (codes %s)", r.UnexpectedCloses, formatCodes(r.CloseCodes))
	}
	if s := r.Server; s != nil {
		row("server RSS", "%s before, %s after, %.2f KiB/conn", kib(s.RSSBeforeKiB), kib(s.RSSAfterKiB), s.RSSPerConnKiB)
		row("server CPU", "%.0f%% of one core", s.CPUPercent)
	}
	for _, st := range r.ServerStages {
		row("server "+strings.ReplaceAll(st.Series, "|", "/"), "%d, mean %.2f ms, p50 ~%.2f ms, p99 ~%.2f ms", st.Count, st.MeanMs, st.P50Ms, st.P99Ms)
	}
	row("generator CPU", "%.0f%% of one core", r.GeneratorCPU)
	row("machine idle", "%.0f%% of all cores", r.MachineIdle)
	writeWorst(&b, "Slowest live deliveries", r.LatencyWorst)
	writeWorst(&b, "Slowest replayed deliveries", r.ReplayWorst)
	writeSlowPublishes(&b, r.SlowestPublishes)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSlowPublishes writes the slowest publish calls as a table.
func writeSlowPublishes(b *strings.Builder, calls []PublishSample) {
	if len(calls) == 0 {
		return
	}
	b.WriteString("\nSlowest publish calls:\n\n| HTTP ms | began at | seq | items | stream | node | status | new connection |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range calls {
		fmt.Fprintf(b, "| %.1f | %s | %d | %d | %s | %s | %s | %t |\n",
			c.HTTPMs, c.At.Format("15:04:05.000"), c.Seq, c.Items, c.Stream, c.URL, c.Status, c.NewConn)
	}
}

// writeWorst writes samples as a table under title (nothing if empty).
func writeWorst(b *strings.Builder, title string, samples []LatencySample) {
	if len(samples) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n\n| latency ms | delivered at | user | node | position | kind | first | resumed | dial attempts | dial ms (connect, SYN retransmits) | since dial ms | published before ready ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n", title)
	for _, s := range samples {
		kind := "unicast"
		if s.Broadcast {
			kind = "broadcast"
		}
		fmt.Fprintf(b, "| %.1f | %s | %d | %s | %s | %s | %t | %t | %d | %.1f (%.1f, %d) | %.1f | %.1f |\n",
			s.LatencyMs, s.At.Format("15:04:05.000"), s.User, s.URL, s.Position, kind, s.First, s.Resumed,
			s.DialAttempts, s.DialMs, s.ConnectMs, s.SynRetrans, s.SinceDialMs, s.PublishedBeforeReadyMs)
	}
}

func kib(n int64) string {
	if n >= 10<<10 {
		return fmt.Sprintf("%.1f MiB", float64(n)/1024)
	}
	return fmt.Sprintf("%d KiB", n)
}

func formatCodes(m map[int]int64) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// round keeps JSON figures readable.
func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
