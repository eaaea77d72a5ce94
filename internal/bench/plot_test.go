package bench

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestNineLabels(t *testing.T) {
	want := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for i, w := range want {
		if got := nineLabel(i); got != w {
			t.Errorf("nineLabel(%d) = %q, want %q", i, got, w)
		}
	}
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {230, 500}, {1500, 2000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLatencyPlotIsWellFormedSVG(t *testing.T) {
	h := newHistogram()
	for i := int64(1); i <= 10000; i++ {
		_ = h.RecordValue(i * 10) // 10 µs .. 100 ms
	}
	var b strings.Builder
	err := writeLatencyPlot(&b, `unicast <10k> & "more"`, []plotSeries{
		{Name: "delivery", Hist: h, Color: "#1f77b4"},
		{Name: "empty", Hist: hdrhistogram.New(1, 10, 3), Color: "#ff7f0e"},
		{Name: "nil", Color: "#2ca02c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if e.Name.Local == "polyline" {
				polylines++
			}
			seen := map[string]bool{} // encoding/xml accepts repeated attributes; browsers do not
			for _, a := range e.Attr {
				if seen[a.Name.Local] {
					t.Fatalf("<%s> repeats attribute %q", e.Name.Local, a.Name.Local)
				}
				seen[a.Name.Local] = true
			}
		case xml.CharData:
			texts = append(texts, string(e))
		}
	}
	if polylines != 1 {
		t.Errorf("%d curves, want 1 (empty series are left out)", polylines)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{`unicast <10k> & "more"`, "99.999%", "delivery (n=10000, p99 99", "latency (ms)"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in %q", want, all)
		}
	}

	b.Reset()
	if err := writeLatencyPlot(&b, "nothing", nil); err != nil || !strings.Contains(b.String(), "no samples") {
		t.Fatalf("empty plot: %v %s", err, b.String())
	}
}
