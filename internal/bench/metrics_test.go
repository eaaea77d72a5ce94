package bench

import (
	"strings"
	"testing"
)

func parseScrape(t *testing.T, text string) scrape {
	t.Helper()
	s := scrape{}
	for _, line := range strings.Split(text, "\n") {
		s.addLine(line)
	}
	return s
}

func TestStagesFromScrapes(t *testing.T) {
	before := parseScrape(t, `# HELP herald_delivery_latency_seconds x
herald_delivery_latency_seconds_bucket{le="0.001"} 10
herald_delivery_latency_seconds_bucket{le="0.01"} 10
herald_delivery_latency_seconds_bucket{le="+Inf"} 10
herald_delivery_latency_seconds_sum 0.005
herald_delivery_latency_seconds_count 10
herald_connections_active{transport="ws"} 3`)
	after := parseScrape(t, `herald_delivery_latency_seconds_bucket{le="0.001"} 60
herald_delivery_latency_seconds_bucket{le="0.01"} 110
herald_delivery_latency_seconds_bucket{le="+Inf"} 110
herald_delivery_latency_seconds_sum 0.305
herald_delivery_latency_seconds_count 110
herald_publish_duration_seconds_bucket{outcome="ok",le="0.001"} 0
herald_publish_duration_seconds_bucket{outcome="ok",le="+Inf"} 4
herald_publish_duration_seconds_sum{outcome="ok"} 0.02
herald_publish_duration_seconds_count{outcome="ok"} 4`)
	got := stages(before, after)
	if len(got) != 2 {
		t.Fatalf("stages = %+v", got)
	}
	d := got[0]
	if d.Series != "herald_delivery_latency_seconds" || d.Count != 100 || d.MeanMs != 3 || d.P50Ms != 1 {
		t.Errorf("delivery stage %+v", d)
	}
	if want := 0.001 + 0.009*(99.0-50)/50; d.P99Ms != round(want*1000, 3) {
		t.Errorf("p99 %v, want %v", d.P99Ms, want*1000)
	}
	p := got[1]
	if p.Series != `herald_publish_duration_seconds{outcome="ok"}` || p.Count != 4 || p.P99Ms != 1 {
		t.Errorf("publish stage %+v (p99 falls in +Inf: the last finite bound)", p)
	}
}
