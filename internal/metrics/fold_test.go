package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// t0 is the start of an hour that the tests fold.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// lat makes a latency histogram of n requests in bucket i.
func lat(i int, n int64) skiff.Histogram {
	var h skiff.Histogram
	h.Counts[i] = n
	return h
}

func router(app, node string, end float64, ok, errs int64, bytes int64, h skiff.Histogram) skiff.RouterSample {
	return skiff.RouterSample{App: app, Node: node, Time: sec(end), Interval: 10,
		Requests: skiff.StatusCounts{0, ok, 0, 0, errs}, BytesOut: bytes, Latency: h}
}

func usage(app, id string, end, interval, cpu float64, memory int64) skiff.UsageSample {
	return skiff.UsageSample{App: app, ID: id, Instance: id, Time: sec(end), Interval: interval, CPUSeconds: cpu, Memory: memory}
}

// want is what a test checks of a point.
type want struct {
	app       string
	at        float64 // seconds after t0
	requests  skiff.StatusCounts
	bytes     int64
	count     int64 // requests in the histogram
	cpu       float64
	memory    skiff.Gauge
	instances skiff.Gauge
}

func check(t *testing.T, got []skiff.MetricsPoint, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d points, want %d: %+v", len(got), len(wants), got)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	gauge := func(a, b skiff.Gauge) bool {
		return near(a.Avg, b.Avg) && near(a.Max, b.Max) && near(a.Seconds, b.Seconds)
	}
	for i, w := range wants {
		p := got[i]
		if p.App != w.app || !p.Time.Equal(sec(w.at)) || p.Requests != w.requests || p.BytesOut != w.bytes ||
			p.Latency.Count() != w.count || !near(p.CPUSeconds, w.cpu) || !gauge(p.Memory, w.memory) || !gauge(p.Instances, w.instances) {
			t.Errorf("point %d:\n got %s @%s req %v bytes %d lat %d cpu %g mem %+v inst %+v\nwant %+v",
				i, p.App, p.Time.Sub(t0), p.Requests, p.BytesOut, p.Latency.Count(), p.CPUSeconds, p.Memory, p.Instances, w)
		}
	}
}

// TestFoldSteps folds samples into 10 s points.
func TestFoldSteps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		routers []skiff.RouterSample
		usages  []skiff.UsageSample
		until   float64
		want    []want
		late    int
	}{{
		name: "two routers' samples of one step add up",
		routers: []skiff.RouterSample{
			router("shop", "n1", 10, 5, 1, 500, lat(3, 6)),
			router("shop", "n2", 10, 3, 0, 300, lat(4, 3)),
		},
		until: 10,
		want:  []want{{app: "shop", at: 0, requests: skiff.StatusCounts{0, 8, 0, 0, 1}, bytes: 800, count: 9}},
	}, {
		name: "a sample ending at a step's end is of that step; apps apart, by name",
		routers: []skiff.RouterSample{
			router("shop", "n1", 10, 1, 0, 10, lat(0, 1)),
			router("blog", "n1", 20, 2, 0, 20, lat(0, 2)),
		},
		until: 20,
		want: []want{
			{app: "shop", at: 0, requests: skiff.StatusCounts{0, 1}, bytes: 10, count: 1},
			{app: "blog", at: 10, requests: skiff.StatusCounts{0, 2}, bytes: 20, count: 2},
		},
	}, {
		name:    "a step not yet over stays open",
		routers: []skiff.RouterSample{router("shop", "n1", 10, 1, 0, 10, lat(0, 1)), router("shop", "n1", 20, 1, 0, 10, lat(0, 1))},
		until:   19.9,
		want:    []want{{app: "shop", at: 0, requests: skiff.StatusCounts{0, 1}, bytes: 10, count: 1}},
	}, {
		name: "a measure over two steps gives each its share of CPU and its memory",
		// 4 s in the first step, 6 s in the second.
		usages: []skiff.UsageSample{usage("shop", "a", 16, 10, 2, 100<<20)},
		until:  20,
		want: []want{
			{app: "shop", at: 0, cpu: .8, memory: skiff.Gauge{Avg: 100 << 20, Max: 100 << 20, Seconds: 4}, instances: skiff.Gauge{Avg: 1, Max: 1, Seconds: 4}},
			{app: "shop", at: 10, cpu: 1.2, memory: skiff.Gauge{Avg: 100 << 20, Max: 100 << 20, Seconds: 6}, instances: skiff.Gauge{Avg: 1, Max: 1, Seconds: 6}},
		},
	}, {
		name: "memory: each instance's largest measure, summed over instances",
		usages: []skiff.UsageSample{
			usage("shop", "a", 5, 5, .5, 100), usage("shop", "a", 10, 5, .5, 300),
			usage("shop", "b", 10, 10, 1, 50),
		},
		until: 10,
		want: []want{{app: "shop", at: 0, cpu: 2, memory: skiff.Gauge{Avg: 350, Max: 350, Seconds: 10},
			instances: skiff.Gauge{Avg: 2, Max: 2, Seconds: 10}}},
	}, {
		name:    "requests and usage of an app meet in one point",
		routers: []skiff.RouterSample{router("shop", "n1", 10, 4, 0, 40, lat(2, 4))},
		usages:  []skiff.UsageSample{usage("shop", "a", 10, 10, .25, 64)},
		until:   10,
		want: []want{{app: "shop", at: 0, requests: skiff.StatusCounts{0, 4}, bytes: 40, count: 4, cpu: .25,
			memory: skiff.Gauge{Avg: 64, Max: 64, Seconds: 10}, instances: skiff.Gauge{Avg: 1, Max: 1, Seconds: 10}}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFolder(skiff.Resolutions, []time.Time{t0, t0, t0})
			for _, s := range tc.routers {
				f.addRouter(s)
			}
			for _, u := range tc.usages {
				f.addUsage(u)
			}
			check(t, f.advance(sec(tc.until))[0], tc.want)
			if f.late != tc.late {
				t.Errorf("%d late, want %d", f.late, tc.late)
			}
		})
	}
}

// TestFoldLate: a sample whose step closed is dropped and counted; a
// usage sample keeps its part in steps still open.
func TestFoldLate(t *testing.T) {
	f := newFolder(skiff.Resolutions, []time.Time{t0, t0, t0})
	f.advance(sec(10))
	f.addRouter(router("shop", "n1", 10, 1, 0, 10, lat(0, 1)))
	f.addUsage(usage("shop", "a", 15, 10, 1, 10)) // half in the closed step
	if f.late != 2 {
		t.Errorf("%d late, want 2", f.late)
	}
	check(t, f.advance(sec(20))[0], []want{{app: "shop", at: 10, cpu: .5,
		memory: skiff.Gauge{Avg: 10, Max: 10, Seconds: 5}, instances: skiff.Gauge{Avg: 1, Max: 1, Seconds: 5}}})
}

// TestRollUp: a minute is its six 10 s steps merged (counts summed,
// histograms merged, gauges' means weighted by time seen and their
// maximum kept), an hour its minutes.
func TestRollUp(t *testing.T) {
	f := newFolder(skiff.Resolutions, []time.Time{t0, t0, t0})
	for s := 10.0; s <= 3600; s += 10 {
		// 2 requests a step, one fast, one slow; in the minute's first
		// step, 10 more fast ones and a 5xx.
		f.addRouter(router("shop", "n1", s, 2, 0, 100, skiff.Histogram{Counts: [15]int64{1: 1, 9: 1}}))
		if int(s)%60 == 10 {
			f.addRouter(router("shop", "n2", s, 10, 1, 1000, lat(1, 11)))
		}
		// One instance all along at 100 MiB using half a core; a
		// second one in the minute's first 30 s at 300 MiB.
		f.addUsage(usage("shop", "a", s, 10, 5, 100<<20))
		if int(s)%60 <= 30 && int(s)%60 > 0 {
			f.addUsage(usage("shop", "b", s, 10, 1, 300<<20))
		}
	}
	out := f.advance(sec(3600))
	if len(out[0]) != 360 || len(out[1]) != 60 || len(out[2]) != 1 {
		t.Fatalf("%d, %d, %d points, want 360, 60, 1", len(out[0]), len(out[1]), len(out[2]))
	}
	const mib = 1 << 20
	// Per minute: memory is 400 MiB for 30 s and 100 MiB for 30 s.
	minute := want{app: "shop", at: 0, requests: skiff.StatusCounts{0, 22, 0, 0, 1}, bytes: 1600, count: 23, cpu: 33,
		memory: skiff.Gauge{Avg: 250 * mib, Max: 400 * mib, Seconds: 60}, instances: skiff.Gauge{Avg: 1.5, Max: 2, Seconds: 60}}
	check(t, out[1][:1], []want{minute})
	last := minute
	last.at = 3540
	check(t, out[1][59:], []want{last})
	check(t, out[2], []want{{app: "shop", at: 0, requests: skiff.StatusCounts{0, 1320, 0, 0, 60}, bytes: 96000, count: 1380, cpu: 1980,
		memory: skiff.Gauge{Avg: 250 * mib, Max: 400 * mib, Seconds: 3600}, instances: skiff.Gauge{Avg: 1.5, Max: 2, Seconds: 3600}}})

	p := out[1][0]
	if p.RPS != 23.0/60 || p.CPU != 33.0/60 {
		t.Errorf("rps %g cpu %g", p.RPS, p.CPU)
	}
	// 23 requests, 2 slow ones (.5, 1]: p50 is fast, p99 is slow.
	if p.P50 > 2.5 || p.P99 <= 500 || p.P99 > 1000 {
		t.Errorf("p50 %g ms, p99 %g ms", p.P50, p.P99)
	}
	if h := out[2][0]; h.P99 != p.P99 || h.RPS != p.RPS {
		t.Errorf("the hour's p99 %g, rps %g; the minute's %g, %g", h.P99, h.RPS, p.P99, p.RPS)
	}
}

// TestRestoredFolderClosesPendingSteps: a folder made from a past
// leader's progress closes the coarser steps it had left open, from the
// finer points reloaded into it.
func TestRestoredFolderClosesPendingSteps(t *testing.T) {
	// The last leader wrote 10 s points up to 12:00:50 and no minute.
	f := newFolder(skiff.Resolutions, []time.Time{sec(50), t0, t0})
	for s := 0.0; s < 50; s += 10 {
		f.addPoint(1, skiff.MetricsPoint{App: "shop", Time: sec(s), Requests: skiff.StatusCounts{0, 1}})
	}
	f.addRouter(router("shop", "n1", 60, 1, 0, 0, lat(0, 1)))
	out := f.advance(sec(60))
	check(t, out[0], []want{{app: "shop", at: 50, requests: skiff.StatusCounts{0, 1}, count: 1}})
	check(t, out[1], []want{{app: "shop", at: 0, requests: skiff.StatusCounts{0, 6}, count: 1}})
}

// TestNewFolderAligns: a folder's progress is aligned to each step and
// never ahead of the finer resolution's.
func TestNewFolderAligns(t *testing.T) {
	f := newFolder(skiff.Resolutions, []time.Time{sec(75), sec(3700), sec(7300)})
	for i, w := range []time.Time{sec(70), sec(60), t0} {
		if !f.done[i].Equal(w) {
			t.Errorf("done[%d] = %s, want %s", i, f.done[i].Sub(t0), w.Sub(t0))
		}
	}
}
