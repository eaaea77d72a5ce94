package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// plotSeries is one latency distribution on the plot (values in µs).
type plotSeries struct {
	Name  string
	Hist  *hdrhistogram.Histogram
	Color string
}

// Plot geometry (SVG user units) and style.
const (
	plotW, plotH        = 760, 420
	plotLeft, plotRight = 70, 40
	plotTop, plotBottom = 40, 50
	plotInnerW          = plotW - plotLeft - plotRight
	plotInnerH          = plotH - plotTop - plotBottom
	plotNines           = 5   // the x axis runs to 99.999%
	plotPoints          = 200 // points per curve
	plotYTicks          = 5

	plotFont      = `font-family="sans-serif" font-size="12"`
	plotTitleSize = 14
	plotAxisColor = "#333"
	plotGridColor = "#ddd"
)

// WritePlot writes the run's latency distributions as an SVG: publish to
// delivery, and the HTTP round trip of each publish stream.
func (r *Result) WritePlot(w io.Writer) error {
	series := []plotSeries{{Name: "publish → deliver", Hist: r.latency, Color: "#1f77b4"}}
	if r.Unicast != nil {
		series = append(series, plotSeries{Name: "HTTP publish (unicast)", Hist: r.Unicast.http, Color: "#ff7f0e"})
	}
	if r.Broadcast != nil {
		series = append(series, plotSeries{Name: "HTTP publish (broadcast)", Hist: r.Broadcast.http, Color: "#2ca02c"})
	}
	title := fmt.Sprintf("herald-bench %s (%s), %d conns, %s", r.Scenario, r.Transport, r.Conns, r.Date.UTC().Format("2006-01-02 15:04Z"))
	return writeLatencyPlot(w, title, series)
}

// writeLatencyPlot writes an SVG of the latency percentile distribution
// of each series: latency (ms, linear) against percentile on the usual
// HDR scale, where each step right is one more nine (0, 90, 99, 99.9, …).
// Empty series are left out; with none, the plot says so.
func writeLatencyPlot(w io.Writer, title string, series []plotSeries) error {
	var live []plotSeries
	maxMS := 0.0
	for _, s := range series {
		if s.Hist == nil || s.Hist.TotalCount() == 0 {
			continue
		}
		live = append(live, s)
		maxMS = math.Max(maxMS, float64(s.Hist.Max())/1000)
	}
	yMax := niceCeil(maxMS)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-family="sans-serif" font-size="%d" font-weight="bold">%s</text>`+"\n",
		plotLeft, plotTop-16, plotTitleSize, html.EscapeString(title))
	// Grid and axes.
	for i := 0; i <= plotNines; i++ {
		x := plotLeft + float64(plotInnerW)*float64(i)/plotNines
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, plotTop, x, plotTop+plotInnerH, plotGridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="middle">%s</text>`+"\n", x, plotTop+plotInnerH+18, plotFont, nineLabel(i))
	}
	for i := 0; i <= plotYTicks; i++ {
		v := yMax * float64(i) / plotYTicks
		y := plotTop + float64(plotInnerH)*(1-float64(i)/plotYTicks)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotLeft, y, plotLeft+plotInnerW, y, plotGridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", plotLeft-6, y+4, plotFont, trimFloat(v))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", plotLeft, plotTop, plotInnerW, plotInnerH, plotAxisColor)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="middle">percentile</text>`+"\n", plotLeft+plotInnerW/2, plotH-10, plotFont)
	fmt.Fprintf(&b, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">latency (ms)</text>`+"\n",
		plotTop+plotInnerH/2, plotFont, plotTop+plotInnerH/2)
	if len(live) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="middle">no samples</text>`+"\n", plotLeft+plotInnerW/2, plotTop+plotInnerH/2, plotFont)
	}
	// Curves and legend.
	for i, s := range live {
		var pts strings.Builder
		for k := 0; k <= plotPoints; k++ {
			nines := plotNines * float64(k) / plotPoints
			q := 100 * (1 - math.Pow(10, -nines))
			ms := float64(s.Hist.ValueAtQuantile(q)) / 1000
			x := plotLeft + float64(plotInnerW)*nines/plotNines
			y := plotTop + float64(plotInnerH)*(1-ms/yMax)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.Color, strings.TrimSpace(pts.String()))
		ly := plotTop + 16 + 18*i
		lx := plotLeft + 12
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+20, ly-4, s.Color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" %s>%s (n=%d, p99 %s ms)</text>`+"\n", lx+26, ly, plotFont,
			html.EscapeString(s.Name), s.Hist.TotalCount(), trimFloat(float64(s.Hist.ValueAtQuantile(99))/1000))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// nineLabel is the percentile at i nines: 0%, 90%, 99%, 99.9%, …
func nineLabel(i int) string {
	if i == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.*f%%", max(i-2, 0), 100*(1-math.Pow(10, -float64(i))))
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
