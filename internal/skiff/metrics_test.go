package skiff

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// hist makes a histogram of durations in seconds.
func hist(ds ...float64) Histogram {
	var h Histogram
	for _, d := range ds {
		i := 0
		for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
			i++
		}
		h.Counts[i]++
		h.Sum += d
	}
	return h
}

func TestHistogramQuantile(t *testing.T) {
	many := func(n int, d float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	for _, tc := range []struct {
		name string
		h    Histogram
		q    float64
		want float64
	}{
		{"empty", Histogram{}, .5, 0},
		{"one in the first bucket", hist(.0005), .5, .0005},
		// 100 in (.01, .025]: the median interpolates to the bucket's middle.
		{"middle of a bucket", hist(many(100, .02)...), .5, .0175},
		{"p99 of a spread", hist(append(many(99, .004), 2)...), .99, .005},
		{"the slow tail", hist(append(many(98, .004), 2, 2)...), .99, 1.75},
		{"beyond the last bound", hist(many(10, 60)...), .99, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.Quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Quantile(%g) = %g, want %g", tc.q, got, tc.want)
			}
		})
	}
}

// TestHistogramsMergeByBucket: the quantile of merged histograms is the
// quantile of all their durations, which an average of quantiles is not.
func TestHistogramsMergeByBucket(t *testing.T) {
	fast, slow := hist(.001, .001, .001, .001), hist(.9)
	merged := fast
	merged.Add(slow)
	if all := hist(.001, .001, .001, .001, .9); merged != all {
		t.Fatalf("merged %+v, want %+v", merged, all)
	}
	if p99 := merged.Quantile(.99); p99 <= .5 || p99 > 1 {
		t.Errorf("p99 of merged = %g, want in the (.5, 1] bucket", p99)
	}
}

func TestGaugeAdd(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Gauge
		want Gauge
	}{
		{"into nothing", Gauge{}, Gauge{Avg: 5, Max: 7, Seconds: 10}, Gauge{Avg: 5, Max: 7, Seconds: 10}},
		{"nothing seen adds nothing", Gauge{Avg: 5, Max: 7, Seconds: 10}, Gauge{Avg: 100, Max: 100}, Gauge{Avg: 5, Max: 7, Seconds: 10}},
		{"means weighted by time seen", Gauge{Avg: 10, Max: 10, Seconds: 30}, Gauge{Avg: 20, Max: 25, Seconds: 10},
			Gauge{Avg: 12.5, Max: 25, Seconds: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.a
			g.Add(tc.b)
			if g != tc.want {
				t.Errorf("got %+v, want %+v", g, tc.want)
			}
		})
	}
}

func TestStatusCountsJSON(t *testing.T) {
	c := StatusCounts{0, 12, 1, 3, 2}
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"1xx":0,"2xx":12,"3xx":1,"4xx":3,"5xx":2}` {
		t.Errorf("marshalled %s", data)
	}
	var back StatusCounts
	if err := json.Unmarshal(data, &back); err != nil || back != c || back.Total() != 18 {
		t.Errorf("unmarshalled %v (%v)", back, err)
	}
}

func TestResolutionFor(t *testing.T) {
	for span, want := range map[time.Duration]string{
		time.Minute: "10s", time.Hour: "10s", 4 * time.Hour: "10s",
		6 * time.Hour: "1m", 24 * time.Hour: "1m",
		48 * time.Hour: "1h", 30 * 24 * time.Hour: "1h", 5 * 365 * 24 * time.Hour: "1h",
	} {
		if got := ResolutionFor(span).Name; got != want {
			t.Errorf("ResolutionFor(%s) = %s, want %s", span, got, want)
		}
	}
}

func TestMetricsSubjectKeepsOneTokenPerNode(t *testing.T) {
	for node, want := range map[string]string{
		"n1": "metrics.shop.router.n1", "web1.example.com": "metrics.shop.router.web1_example_com",
		"a b>*": "metrics.shop.router.a_b__", "*": "metrics.shop.router.*",
	} {
		if got := MetricsSubject("shop", "router", node); got != want {
			t.Errorf("MetricsSubject(%q) = %q, want %q", node, got, want)
		}
	}
}
