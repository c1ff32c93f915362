package metrics_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/metrics"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// clock is the time the rollers see; the test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

const (
	grace = time.Second
	mib   = 1 << 20
)

// TestRollUpThroughTheBus publishes an hour and ten minutes of samples,
// lets one roller fold half of them and another, taking over, the rest,
// and reads the points back at each resolution: every count exactly
// once, however the work was split.
func TestRollUpThroughTheBus(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, bustest.Start(t), nil, store.Options{LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The samples' hour is in the past: they are published now.
	h := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	fast, slow := skiff.Histogram{}, skiff.Histogram{}
	fast.Counts[2], slow.Counts[2], slow.Counts[6] = 3, 3, 1 // ≤ 5 ms; ≤ 100 ms
	for s := 10 * time.Second; s <= 70*time.Minute; s += 10 * time.Second {
		for _, x := range []skiff.RouterSample{
			{App: "shop", Node: "n1", Time: h.Add(s), Interval: 10, Requests: skiff.StatusCounts{0, 3}, BytesOut: 300, Latency: fast},
			{App: "shop", Node: "n2", Time: h.Add(s), Interval: 10, Requests: skiff.StatusCounts{0, 3, 0, 0, 1}, BytesOut: 400, Latency: slow},
		} {
			if err := st.RecordRouterSample(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		u := skiff.UsageSample{App: "shop", ID: "i1", Instance: "web.1", Time: h.Add(s), Interval: 10, CPUSeconds: .5, Memory: 64 * mib}
		if err := st.RecordUsage(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	c := &clock{t: h.Add(grace)}
	roller := func(node string) (stop func()) {
		r, err := metrics.New(metrics.Config{Node: node, Grace: grace, Tick: 10 * time.Millisecond, Now: c.now}, st)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := r.Run(rctx); err != nil {
				t.Error(err)
			}
		}()
		testkit.Eventually(t, 10*time.Second, node+" ready", r.Ready)
		return func() { cancel(); <-done }
	}
	last := func(res skiff.Resolution) time.Time {
		p, ok, err := st.LastPoint(ctx, res)
		if err != nil || !ok {
			return time.Time{}
		}
		return p.Time
	}

	stop := roller("a")
	c.set(h.Add(35 * time.Minute))
	testkit.Eventually(t, 20*time.Second, "the first roller's points", func() bool {
		return last(skiff.Resolutions[0]).Equal(h.Add(34*time.Minute + 40*time.Second))
	})
	stop()
	c.set(h.Add(75 * time.Minute))
	defer roller("b")()
	testkit.Eventually(t, 20*time.Second, "the last points", func() bool {
		return last(skiff.Resolutions[0]).Equal(h.Add(69*time.Minute+50*time.Second)) &&
			last(skiff.Resolutions[1]).Equal(h.Add(69*time.Minute)) && last(skiff.Resolutions[2]).Equal(h)
	})

	read := func(since, until time.Time, step string) skiff.MetricsSeries {
		t.Helper()
		series, err := st.Metrics(ctx, "shop", store.MetricsQuery{Since: since, Until: until, Step: step})
		if err != nil {
			t.Fatal(err)
		}
		return series
	}
	for _, tc := range []struct {
		step     string
		until    time.Duration
		points   int
		requests skiff.StatusCounts
		cpu      float64
		rps      float64
	}{
		{"10s", 70 * time.Minute, 420, skiff.StatusCounts{0, 6, 0, 0, 1}, .5, .7},
		{"1m", 75 * time.Minute, 70, skiff.StatusCounts{0, 36, 0, 0, 6}, 3, .7},
		{"1h", 2 * time.Hour, 1, skiff.StatusCounts{0, 2160, 0, 0, 360}, 180, .7},
	} {
		t.Run(tc.step, func(t *testing.T) {
			series := read(h, h.Add(tc.until), tc.step)
			if series.Resolution != tc.step || len(series.Points) != tc.points {
				var at []time.Duration
				for _, p := range series.Points {
					at = append(at, p.Time.Sub(h))
				}
				t.Fatalf("%s: %d points, want %d: %v", series.Resolution, len(series.Points), tc.points, at)
			}
			for i, p := range series.Points {
				if p.Requests != tc.requests || p.BytesOut != tc.requests.Total()*100 || p.CPUSeconds != tc.cpu ||
					p.Memory.Avg != 64*mib || p.Memory.Max != 64*mib || p.Instances.Max != 1 {
					t.Fatalf("point %d at %s: %+v", i, p.Time.Sub(h), p)
				}
				if i > 0 && !p.Time.Equal(series.Points[i-1].Time.Add(time.Duration(series.Step)*time.Second)) {
					t.Fatalf("point %d at %s after %s", i, p.Time.Sub(h), series.Points[i-1].Time.Sub(h))
				}
				// 6 of 7 requests took at most 5 ms, one up to 100.
				if p.RPS != tc.rps || p.P50 > 5 || p.P95 <= 5 || p.P99 <= 50 || p.P99 > 100 {
					t.Fatalf("point %d: rps %g p50 %g p95 %g p99 %g", i, p.RPS, p.P50, p.P95, p.P99)
				}
			}
		})
	}
	if series := read(h, h.Add(time.Hour), "auto"); series.Resolution != "10s" || len(series.Points) != 360 {
		t.Errorf("auto: %s, %d points", series.Resolution, len(series.Points))
	}
	if _, err := st.Metrics(ctx, "shop", store.MetricsQuery{Since: h, Until: h.Add(time.Hour), Step: "5m"}); skiff.KindOf(err) != skiff.KindInvalid {
		t.Errorf("a step of 5m: %v", err)
	}
}
