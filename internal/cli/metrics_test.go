package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// points makes n 10 s points from t on, each with 9 fast requests and a
// slow one, 2 CPU seconds, and 100 MiB of memory (300 MiB in the first).
func points(t time.Time, n int) []skiff.MetricsPoint {
	var out []skiff.MetricsPoint
	for i := range n {
		p := skiff.MetricsPoint{App: "shop", Time: t.Add(time.Duration(i) * 10 * time.Second),
			Requests: skiff.StatusCounts{0, 9, 0, 0, 1}, BytesOut: 1000, CPUSeconds: 2,
			Memory: skiff.Gauge{Avg: 100 << 20, Max: 100 << 20, Seconds: 10}, Instances: skiff.Gauge{Avg: 1, Max: 1, Seconds: 10}}
		if i == 0 {
			p.Memory = skiff.Gauge{Avg: 300 << 20, Max: 300 << 20, Seconds: 10}
		}
		p.Latency.Counts[1], p.Latency.Counts[9] = 9, 1
		p.Derive(10 * time.Second)
		out = append(out, p)
	}
	return out
}

// TestMergePoints: the table's rows merge points as the platform's
// roll-ups do.
func TestMergePoints(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	rows := mergePoints(points(t0, 12), time.Minute)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	r := rows[0]
	if !r.Time.Equal(t0) || r.Requests != (skiff.StatusCounts{0, 54, 0, 0, 6}) || r.RPS != 1 || r.CPU != .2 ||
		r.Memory.Avg != float64(800<<20)/6 || r.Memory.Max != 300<<20 || r.P99 <= 500 || r.P50 > 2.5 {
		t.Errorf("row %+v", r)
	}
}

// TestMetricsTable: a table of merged rows, sparklines before it when
// asked, and a sentence when there is nothing.
func TestMetricsTable(t *testing.T) {
	t0 := time.Now().Truncate(time.Hour)
	s := skiff.MetricsSeries{App: "shop", Resolution: "10s", Step: 10, Since: t0, Until: t0.Add(time.Hour), Points: points(t0, 360)}
	var out bytes.Buffer
	e := &env{g: &globals{}, stdout: &out}
	if err := e.metricsTable(s, true); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("\n%s", text)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	// A title, a blank line, 5 sparklines, a blank line, a header, 12
	// rows of 5 minutes.
	if len(lines) != 21 || !strings.Contains(lines[0], "a row per 5m") || !strings.Contains(lines[2], "req/s") ||
		!strings.Contains(lines[2], "████") || !strings.Contains(lines[8], "P99") || !strings.Contains(lines[10], "100.0 MiB") {
		t.Errorf("table:\n%s", text)
	}
	out.Reset()
	if err := e.metricsTable(skiff.MetricsSeries{App: "shop", Since: t0, Until: t0.Add(time.Hour)}, true); err != nil ||
		!strings.Contains(out.String(), "No metrics for shop") {
		t.Errorf("empty: %v %q", err, out.String())
	}
}

// TestMetricsCommand reads points through the API: JSON as the API
// gives it, bad flags refused before asking.
func TestMetricsCommand(t *testing.T) {
	srv := apitest.Start(t, api.Config{Domain: "apps.test", RouterPort: 80, MaxUpload: 1 << 20})
	w := newWorld(t)
	w.url, w.token = srv.URL, srv.Token
	w.ok("login", "--api", w.url, "--token", w.token)
	w.ok("apps", "create", "shop")
	// Points from before the app was made are another app's, of the
	// same name, destroyed.
	now := time.Now().UTC()
	old, mine := points(now.Add(-5*time.Minute).Truncate(10*time.Second), 3), points(now.Truncate(10*time.Second), 1)
	if err := srv.Store.WritePoints(context.Background(), skiff.Resolutions[0], append(old, mine...)); err != nil {
		t.Fatal(err)
	}
	var series skiff.MetricsSeries
	if err := json.Unmarshal([]byte(w.ok("metrics", "-a", "shop", "--since", "10m", "--json")), &series); err != nil {
		t.Fatal(err)
	}
	if series.Resolution != "10s" || len(series.Points) != 1 || series.Points[0].Requests[1] != 9 || series.Points[0].P99 <= 500 {
		t.Errorf("series %+v", series)
	}
	if out := w.ok("metrics", "-a", "shop", "--since", "10m"); !strings.Contains(out, "REQ/S") {
		t.Errorf("table:\n%s", out)
	}
	w.fails(2, "--step", "metrics", "-a", "shop", "--step", "2m")
	w.fails(2, "--until", "metrics", "-a", "shop", "--until", "soon")
}
