package router

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// appSeries gathers the router's series of app, as /metrics shows them,
// by metric name.
func appSeries(t testing.TB, app string) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(appsMetrics)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" && l.GetValue() == app {
					out[f.GetName()] = append(out[f.GetName()], m)
				}
			}
		}
	}
	return out
}

// metricValue is what /metrics shows for app's series of name (and code,
// for requests): a counter's value, or a histogram's count; -1 when there
// is no such series.
func metricValue(t testing.TB, name, app, code string) float64 {
	t.Helper()
series:
	for _, m := range appSeries(t, app)[name] {
		for _, l := range m.GetLabel() {
			if l.GetName() == "code" && l.GetValue() != code {
				continue series
			}
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	return -1
}

// TestMetricsExposition: an app's counters are shown as Prometheus's
// own counters and histogram would show them, and forgotten with it.
func TestMetricsExposition(t *testing.T) {
	m := newAppMetrics("expo")
	if newAppMetrics("expo") != m {
		t.Fatal("a second entry of an app does not share its counters")
	}
	m.observe(200, 3*time.Millisecond, 100)
	m.observe(201, 10*time.Millisecond, 50) // on a bound: counted in its bucket
	m.observe(503, time.Minute, 10)         // above every bound
	for code, want := range map[string]float64{"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 0, "5xx": 1} {
		if got := metricValue(t, "skiff_router_requests_total", "expo", code); got != want {
			t.Errorf("requests %s: %v, want %v", code, got, want)
		}
	}
	if got := metricValue(t, "skiff_router_response_bytes_total", "expo", ""); got != 160 {
		t.Errorf("bytes: %v, want 160", got)
	}
	hs := appSeries(t, "expo")["skiff_router_request_duration_seconds"]
	if len(hs) != 1 {
		t.Fatalf("%d duration series, want 1", len(hs))
	}
	h := hs[0].GetHistogram()
	if h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-60.013) > 1e-9 {
		t.Errorf("duration count %d sum %v, want 3 and 60.013", h.GetSampleCount(), h.GetSampleSum())
	}
	// Cumulative, as Prometheus's buckets are.
	want := map[float64]uint64{.001: 0, .0025: 0, .005: 1, .01: 2, .025: 2, 30: 2}
	if len(h.GetBucket()) != len(skiff.LatencyBuckets) {
		t.Fatalf("%d buckets, want %d", len(h.GetBucket()), len(skiff.LatencyBuckets))
	}
	for _, b := range h.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	if c := m.read(); c.latency.Counts[len(skiff.LatencyBuckets)] != 1 || c.requests.Total() != 3 {
		t.Errorf("read: %+v", c)
	}
	m.forget("expo")
	if v := metricValue(t, "skiff_router_requests_total", "expo", "2xx"); v != -1 {
		t.Errorf("a forgotten app still has its series (%v)", v)
	}
}
