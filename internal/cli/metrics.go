package cli

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func metricsCommand(e *env) *cobra.Command {
	var since, until, step string
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Show an app's traffic, latency, CPU and memory over time",
		Long: `Show an app's metrics over a span of time (the last hour by default):
requests per second and by status class, latency percentiles, bytes sent,
CPU used (100% is one core), memory and instances.

The platform keeps a point every 10 seconds for a day, every minute for a
week and every hour for a year; --step auto (the default) takes the finest
that covers the span. The table merges points into at most about 30 rows;
on a terminal, sparklines of the whole span come first. --json prints every
point as the API gives it (docs/api.md). Points appear about 25 seconds
after their 10 seconds end.`,
		Example: `  skiff metrics -a shop
  skiff metrics -a shop --since 1d
  skiff metrics -a shop --since 2026-11-24T10:00:00Z --until 2026-11-24T12:00:00Z --json`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, t := range []struct{ flag, value string }{{"since", since}, {"until", until}} {
				if _, err := skiff.ParseSince(t.value, time.Now()); t.value != "" && err != nil {
					return usageError(cmd, "--%s %q is neither an age (30m, 6h, 7d) nor a time (2026-11-24T10:00:00Z)", t.flag, t.value)
				}
			}
			if _, ok := skiff.ResolutionNamed(step); !ok && step != "auto" {
				return usageError(cmd, "--step %q: give auto, 10s, 1m or 1h", step)
			}
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			series, err := c.Metrics(cmd.Context(), name, since, until, step)
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(series)
			}
			return e.metricsTable(series, isTerminal(e.stdout))
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&since, "since", "1h", "from an age ago (30m, 6h, 7d) or a time (2026-11-24T10:00:00Z)")
	f.StringVar(&until, "until", "", "up to an age ago or a time (default: now)")
	f.StringVar(&step, "step", "auto", "the points' step: auto, 10s, 1m or 1h")
	return cmd
}

// rowSteps are the steps the table merges points into, the first that
// gives at most maxRows rows.
var rowSteps = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour,
	6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

const maxRows = 30

// metricsTable prints the series for people: sparklines first on a
// terminal, then a row per merged step.
func (e *env) metricsTable(s skiff.MetricsSeries, sparklines bool) error {
	span := s.Until.Sub(s.Since)
	if len(s.Points) == 0 {
		fmt.Fprintf(e.stdout, "No metrics for %s in the %s up to %s: it served no request and ran no instance.\n",
			s.App, span.Round(time.Second), s.Until.Local().Format("2006-01-02 15:04:05"))
		return nil
	}
	step := time.Duration(s.Step * float64(time.Second))
	row := rowSteps[len(rowSteps)-1]
	for _, d := range rowSteps {
		if d >= step && span/d <= maxRows {
			row = d
			break
		}
	}
	rows := mergePoints(s.Points, row)
	fmt.Fprintf(e.stdout, "%s, %s to %s, a row per %s (points of %s)\n\n", s.App, s.Since.Local().Format("2006-01-02 15:04"),
		s.Until.Local().Format("15:04"), skiff.FormatAge(row), s.Resolution)
	if sparklines {
		e.sparklines(s)
	}
	layout := "15:04:05"
	if row >= time.Hour {
		layout = "01-02 15:04"
	}
	table := [][]string{{"TIME", "REQ/S", "2XX", "3XX", "4XX", "5XX", "P50", "P95", "P99", "CPU", "MEMORY", "INST"}}
	for _, p := range rows {
		table = append(table, []string{p.Time.Local().Format(layout), fmt.Sprintf("%.2f", p.RPS),
			fmt.Sprint(p.Requests[1]), fmt.Sprint(p.Requests[2]), fmt.Sprint(p.Requests[3]), fmt.Sprint(p.Requests[4]),
			millis(p.P50, p.Latency.Count()), millis(p.P95, p.Latency.Count()), millis(p.P99, p.Latency.Count()),
			fmt.Sprintf("%.1f%%", p.CPU*100), memory(p.Memory), instances(p.Instances)})
	}
	return e.table(table)
}

// mergePoints merges points into steps of d, as the platform's own
// roll-ups do.
func mergePoints(points []skiff.MetricsPoint, d time.Duration) []skiff.MetricsPoint {
	var out []skiff.MetricsPoint
	for _, p := range points {
		t := p.Time.Truncate(d)
		if n := len(out); n > 0 && out[n-1].Time.Equal(t) {
			out[n-1].Add(p)
			continue
		}
		p.Time = t
		out = append(out, p)
	}
	for i := range out {
		out[i].Derive(d)
	}
	return out
}

func millis(ms float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}

func memory(g skiff.Gauge) string {
	if g.Seconds == 0 {
		return "-"
	}
	return skiff.HumanBytes(int64(g.Avg))
}

func instances(g skiff.Gauge) string {
	if g.Seconds == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", g.Max)
}

// sparkWidth is how many columns a sparkline spans.
const sparkWidth = 60

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparklines draws each measure over the whole span, a column per
// sixtieth of it, the largest value in a column; a column without points
// is blank.
func (e *env) sparklines(s skiff.MetricsSeries) {
	lines := []struct {
		name  string
		value func(skiff.MetricsPoint) (float64, bool)
		unit  func(float64) string
	}{
		{"req/s", func(p skiff.MetricsPoint) (float64, bool) { return p.RPS, true }, func(v float64) string { return fmt.Sprintf("%.2f", v) }},
		{"5xx/s", func(p skiff.MetricsPoint) (float64, bool) { return float64(p.Requests[4]) / s.Step, true },
			func(v float64) string { return fmt.Sprintf("%.2f", v) }},
		{"p95", func(p skiff.MetricsPoint) (float64, bool) { return p.P95, p.Latency.Count() > 0 }, func(v float64) string { return fmt.Sprintf("%.1fms", v) }},
		{"cpu", func(p skiff.MetricsPoint) (float64, bool) { return p.CPU * 100, true }, func(v float64) string { return fmt.Sprintf("%.1f%%", v) }},
		{"memory", func(p skiff.MetricsPoint) (float64, bool) { return p.Memory.Max, p.Memory.Seconds > 0 }, func(v float64) string { return skiff.HumanBytes(int64(v)) }},
	}
	span := s.Until.Sub(s.Since)
	for _, l := range lines {
		cols := make([]float64, sparkWidth)
		has := make([]bool, sparkWidth)
		top := 0.0
		for _, p := range s.Points {
			v, ok := l.value(p)
			if !ok {
				continue
			}
			c := int(float64(sparkWidth) * float64(p.Time.Sub(s.Since)) / float64(span))
			c = min(max(c, 0), sparkWidth-1)
			cols[c], has[c] = math.Max(cols[c], v), true
			top = math.Max(top, v)
		}
		var b strings.Builder
		for c := range cols {
			switch {
			case !has[c]:
				b.WriteByte(' ')
			case top == 0:
				b.WriteRune(sparks[0])
			default:
				b.WriteRune(sparks[int(cols[c]/top*float64(len(sparks)-1)+.5)])
			}
		}
		fmt.Fprintf(e.stdout, "  %-7s %s  max %s\n", l.name, b.String(), l.unit(top))
	}
	fmt.Fprintln(e.stdout)
}
