package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// point is a 10 s point with n requests of status class 2xx (and errs
// 5xx), all as fast as bucket b of the latency histogram.
func point(sec int, n, errs int64, b int) skiff.MetricsPoint {
	p := skiff.MetricsPoint{App: "shop", Time: t0.Add(time.Duration(sec) * time.Second)}
	p.Requests[1], p.Requests[4] = n, errs
	p.Latency.Counts[b] = n + errs
	p.Memory = skiff.Gauge{Avg: 100, Max: 200, Seconds: 10}
	p.Derive(10 * time.Second)
	return p
}

func TestDownsample(t *testing.T) {
	// An hour of 10 s points is 360: merged by two, into 180 ≤ 240.
	var points []skiff.MetricsPoint
	for i := range 360 {
		points = append(points, point(i*10, 10, 0, 3)) // 1 req/s at ≤ 10 ms
	}
	points[100] = point(1000, 5, 5, 13) // one slow step, half errors
	got, step := downsample(points, t0, t0.Add(time.Hour), 10*time.Second)
	if len(got) != 180 || step != 20*time.Second {
		t.Fatalf("downsample: %d points of %s, want 180 of 20s", len(got), step)
	}
	if got[0].Requests.Total() != 20 || got[0].RPS != 1 || got[0].Memory.Avg != 100 || got[0].Memory.Seconds != 20 {
		t.Fatalf("a merged point: %+v", got[0])
	}
	// The slow step merged with a fast one: half the requests are slow,
	// so p50 is fast and p95/p99 slow, as the merged histogram says.
	slow := got[50]
	if slow.Requests.Total() != 20 || slow.Requests[4] != 5 || slow.P50 > 10 || slow.P99 < 5000 {
		t.Fatalf("merged slow point: total %d, 5xx %d, p50 %v, p99 %v", slow.Requests.Total(), slow.Requests[4], slow.P50, slow.P99)
	}

	// Few enough points stay as they are.
	same, step := downsample(points[:10], t0, t0.Add(10*time.Minute), 10*time.Second)
	if len(same) != 10 || step != 10*time.Second {
		t.Fatalf("short span: %d points of %s", len(same), step)
	}
}

func TestPathOf(t *testing.T) {
	step := 10 * time.Second
	for _, c := range []struct {
		name   string
		secs   []int
		values []float64
		want   string
	}{
		{"a line", []int{0, 10, 20}, []float64{0, 5, 10}, "M5.0 150.0L15.0 75.0L25.0 0.0"},
		{"a gap breaks it", []int{0, 10, 40, 50}, []float64{10, 10, 0, 0}, "M5.0 0.0L15.0 0.0 M45.0 150.0L55.0 150.0"},
		{"a point alone is a dot", []int{0, 30, 40}, []float64{5, 5, 5}, "M5.0 75.0h0 M35.0 75.0L45.0 75.0"},
		{"nothing", nil, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var points []skiff.MetricsPoint
			for _, s := range c.secs {
				points = append(points, skiff.MetricsPoint{Time: t0.Add(time.Duration(s) * time.Second)})
			}
			// 600 s across 600 units: a unit per second.
			if got := pathOf(points, c.values, t0, t0.Add(600*time.Second), step, 10); got != c.want {
				t.Fatalf("pathOf = %q, want %q", got, c.want)
			}
		})
	}
}

func TestBuildCharts(t *testing.T) {
	s := skiff.MetricsSeries{App: "shop", Step: 10, Since: t0, Until: t0.Add(30 * time.Minute)}
	for i := range 30 {
		s.Points = append(s.Points, point(i*10, 25, 5, 4)) // 3 req/s, 0.5 5xx/s
	}
	charts := buildCharts(s, "30m")
	if len(charts) != len(chartDefs) {
		t.Fatalf("%d charts", len(charts))
	}
	byTitle := map[string]chart{}
	for _, c := range charts {
		byTitle[c.Title] = c
		for _, sr := range c.Series {
			if strings.Count(sr.Path, "L") != 29 {
				t.Fatalf("%s %s: path %q, want 30 points in one line", c.Title, sr.Name, sr.Path)
			}
		}
	}
	if c := byTitle["Requests per second"]; c.Series[0].Last != "3/s" || c.Top != "5/s" {
		t.Fatalf("requests chart: last %s, top %s", c.Series[0].Last, c.Top)
	}
	if c := byTitle["Errors per second"]; c.Series[1].Name != "5xx" || c.Series[1].Last != "0.5/s" || c.Series[0].Last != "0/s" {
		t.Fatalf("errors chart: %+v", c.Series)
	}
	if c := byTitle["Memory"]; c.Series[1].Last != "200 B" {
		t.Fatalf("memory chart: %+v", c.Series)
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0: 0, 0.3: 0.5, 1: 1, 1.1: 2, 3: 5, 7: 10, 10: 10, 42: 50, 180: 200, 0.012: 0.02} {
		if got := niceCeil(v); got < want*0.999 || got > want*1.001 {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

func TestTrimFloat(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 6.56e-05: "0.0000656", 0.5: "0.5", 0.00303: "0.00303", 1: "1", 42.14: "42.1",
		999.6: "1000", 1530.4: "1530", 2.5: "2.5", -0.25: "-0.25"} {
		if got := trimFloat(v); got != want {
			t.Errorf("trimFloat(%v) = %q, want %q", v, got, want)
		}
	}
}
