package dashboard

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Charts are drawn on the server as inline SVG: a path per series in a
// viewBox of chartWidth x chartHeight, stretched to the page's width by
// CSS. No script draws them, so they show with JavaScript off, and a page
// stays small: a series has at most maxChartPoints points.
const (
	chartWidth     = 600
	chartHeight    = 150
	maxChartPoints = 240
)

// timeRanges are the spans the app page offers for its charts, as the
// metrics API reads them.
var timeRanges = []string{"1h", "6h", "24h", "7d"}

// rangeName is the range asked for, or the first for one it does not
// know.
func rangeName(name string) string {
	for _, r := range timeRanges {
		if r == name {
			return r
		}
	}
	return timeRanges[0]
}

// chart is one graph as the template draws it.
type chart struct {
	Title  string
	Span   string // the time range, as 1h
	Series []chartSeries
	// Top is the value at the top of the chart, formatted; the bottom is
	// zero.
	Top string
	// Points counts the points drawn, over every series.
	Points int
}

// chartSeries is one line of a chart.
type chartSeries struct {
	Name  string
	Class string // s0, s1, s2: its colour
	Path  string // the d attribute of its SVG path
	Last  string // its newest value, formatted
}

// metric reads one value of a point.
type metric struct {
	name  string
	value func(p skiff.MetricsPoint, step float64) float64
}

// chartDefs are the app page's charts: what each draws and how its values
// read.
var chartDefs = []struct {
	title   string
	format  func(float64) string
	metrics []metric
}{
	{"Requests per second", formatRate, []metric{
		{"all", func(p skiff.MetricsPoint, _ float64) float64 { return p.RPS }},
	}},
	{"Latency", formatMillis, []metric{
		{"p50", func(p skiff.MetricsPoint, _ float64) float64 { return p.P50 }},
		{"p95", func(p skiff.MetricsPoint, _ float64) float64 { return p.P95 }},
		{"p99", func(p skiff.MetricsPoint, _ float64) float64 { return p.P99 }},
	}},
	{"Errors per second", formatRate, []metric{
		{"4xx", func(p skiff.MetricsPoint, step float64) float64 { return float64(p.Requests[3]) / step }},
		{"5xx", func(p skiff.MetricsPoint, step float64) float64 { return float64(p.Requests[4]) / step }},
	}},
	{"CPU (cores)", formatCores, []metric{
		{"used", func(p skiff.MetricsPoint, _ float64) float64 { return p.CPU }},
	}},
	{"Memory", formatBytes, []metric{
		{"average", func(p skiff.MetricsPoint, _ float64) float64 { return p.Memory.Avg }},
		{"peak", func(p skiff.MetricsPoint, _ float64) float64 { return p.Memory.Max }},
	}},
}

// buildCharts draws the charts of a series of points over [since,
// until), a span named span.
func buildCharts(s skiff.MetricsSeries, span string) []chart {
	step := time.Duration(s.Step * float64(time.Second))
	points, step := downsample(s.Points, s.Since, s.Until, step)
	out := make([]chart, 0, len(chartDefs))
	for _, def := range chartDefs {
		c := chart{Title: def.title, Span: span}
		values := make([][]float64, len(def.metrics))
		top := 0.0
		for i, m := range def.metrics {
			values[i] = make([]float64, len(points))
			for j, p := range points {
				v := m.value(p, step.Seconds())
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					v = 0
				}
				values[i][j] = v
				top = math.Max(top, v)
			}
		}
		// A chart of nothing but zeros still has a scale.
		top = max(niceCeil(top), 1)
		c.Top = def.format(top)
		for i, m := range def.metrics {
			cs := chartSeries{Name: m.name, Class: "s" + strconv.Itoa(i), Last: "–"}
			cs.Path = pathOf(points, values[i], s.Since, s.Until, step, top)
			if n := len(points); n > 0 {
				cs.Last = def.format(values[i][n-1])
			}
			c.Series = append(c.Series, cs)
			c.Points += len(points)
		}
		out = append(out, c)
	}
	return out
}

// downsample merges points into buckets of whole steps so that at most
// maxChartPoints remain over [since, until): counts add, histograms
// merge and gauges average as the metrics role's own roll-ups do, so a
// bucket's percentiles are those of its requests. It returns the points
// and the step they now have.
func downsample(points []skiff.MetricsPoint, since, until time.Time, step time.Duration) ([]skiff.MetricsPoint, time.Duration) {
	if step <= 0 {
		step = 10 * time.Second
	}
	k := int64(math.Ceil(float64(until.Sub(since)) / float64(step) / maxChartPoints))
	if k <= 1 {
		return points, step
	}
	bucket := time.Duration(k) * step
	var out []skiff.MetricsPoint
	for _, p := range points {
		t := since.Add(p.Time.Sub(since) / bucket * bucket)
		if n := len(out); n > 0 && out[n-1].Time.Equal(t) {
			out[n-1].Add(p)
			continue
		}
		q := skiff.MetricsPoint{App: p.App, Time: t}
		q.Add(p)
		out = append(out, q)
	}
	for i := range out {
		out[i].Derive(bucket)
	}
	return out, bucket
}

// pathOf is the SVG path of values at the times of points: x from since
// to until, y from 0 at the bottom to top at the top. A gap of more than
// a step between points (no traffic, no instance) breaks the line; a
// point alone is a dot (a round cap on a segment of no length).
func pathOf(points []skiff.MetricsPoint, values []float64, since, until time.Time, step time.Duration, top float64) string {
	span := until.Sub(since).Seconds()
	if span <= 0 || top <= 0 {
		top = 1
	}
	var b strings.Builder
	var prev time.Time
	for i, p := range points {
		// A point covers [Time, Time+step): drawn at its middle.
		x := (p.Time.Sub(since).Seconds() + step.Seconds()/2) / span * chartWidth
		x = math.Max(0, math.Min(chartWidth, x))
		y := chartHeight - values[i]/top*chartHeight
		cmd := "L"
		if i == 0 || p.Time.Sub(prev) > step*3/2 {
			cmd = "M"
		}
		if cmd == "M" && i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s%.1f %.1f", cmd, x, y)
		if cmd == "M" && (i+1 == len(points) || points[i+1].Time.Sub(p.Time) > step*3/2) {
			b.WriteString("h0")
		}
		prev = p.Time
	}
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for the top of
// a chart; 0 stays 0.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*exp*(1+1e-9) {
			return m * exp
		}
	}
	return 10 * exp
}

func formatRate(v float64) string   { return trimFloat(v) + "/s" }
func formatMillis(v float64) string { return trimFloat(v) + " ms" }
func formatCores(v float64) string  { return trimFloat(v) }
func formatBytes(v float64) string  { return skiff.HumanBytes(int64(v)) }

// trimFloat formats v with three significant digits at most, never in
// exponent form: 0.0000656, 0.5, 42.1, 1530.
func trimFloat(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	decimals := max(0, 2-int(math.Floor(math.Log10(math.Abs(v)))))
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
