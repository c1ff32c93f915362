package router

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestSamplesCountWhatWasServed: every interval, the router publishes
// what it served of each app since the last: requests by class, bytes,
// and their latencies, from the counters the requests add to; nothing
// for an interval without requests.
func TestSamplesCountWhatWasServed(t *testing.T) {
	const iv = 200 * time.Millisecond
	e := startWith(t, func(c *Config) { c.Node, c.SampleInterval = "r1", iv })
	var mu sync.Mutex
	var samples []skiff.RouterSample
	sub, err := e.st.NC.Subscribe(skiff.MetricsSubject("sampled", "router", "*"), func(m *nats.Msg) {
		var s skiff.RouterSample
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Error(err)
		}
		mu.Lock()
		samples = append(samples, s)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("fine"))
	}))
	t.Cleanup(backend.Close)
	e.app("sampled", 1)
	e.instance("sampled", "a", 1, skiff.StateUp, strings.TrimPrefix(backend.URL, "http://"))
	e.waitBody("sampled.apps.test", "fine")
	for range 6 {
		e.get("sampled.apps.test", "/")
	}
	for range 2 {
		e.get("sampled.apps.test", "/fail")
	}

	var sum skiff.RouterSample
	sums := func() skiff.RouterSample {
		mu.Lock()
		defer mu.Unlock()
		var s skiff.RouterSample
		for _, x := range samples {
			s.Requests.Add(x.Requests)
			s.BytesOut += x.BytesOut
			s.Latency.Add(x.Latency)
		}
		return s
	}
	eventually(t, func() bool { sum = sums(); return sum.Requests.Total() >= 9 })
	if sum.Requests != (skiff.StatusCounts{0, 7, 0, 0, 2}) || sum.Latency.Count() != 9 || sum.BytesOut < 9*4 {
		t.Fatalf("samples add up to %v, %d latencies, %d bytes", sum.Requests, sum.Latency.Count(), sum.BytesOut)
	}
	mu.Lock()
	n := len(samples)
	for _, s := range samples {
		if s.App != "sampled" || s.Node != "r1" || s.Interval != iv.Seconds() || !s.Time.Equal(s.Time.Truncate(iv)) || s.Requests.Total() == 0 {
			t.Errorf("sample %+v", s)
		}
	}
	mu.Unlock()
	// Idle intervals publish nothing.
	time.Sleep(3 * iv)
	mu.Lock()
	defer mu.Unlock()
	if len(samples) != n {
		t.Errorf("%d samples of idle intervals: %+v", len(samples)-n, samples[n:])
	}
}
