package alerts

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Samples is a Series over the routers' own per-app samples
// (skiff.RouterSample, every 10 s, on metrics.<app>.router.<node>): it
// keeps the last hour of them in memory, filled from the METRICS stream at
// start and by a subscription after. When the metrics store's points
// serve queries of their own, a Series over them can take its place.
type Samples struct {
	keep time.Duration
	now  func() time.Time

	mu   sync.Mutex                      // guards apps
	apps map[string][]skiff.RouterSample // by app, oldest first
}

var _ Series = (*Samples)(nil)

// NewSamples keeps samples for keep (at least the longest window asked).
func NewSamples(keep time.Duration) *Samples {
	return &Samples{keep: keep, now: time.Now, apps: map[string][]skiff.RouterSample{}}
}

// Add takes one sample; one already held (same app, node and time) is
// not counted twice.
func (s *Samples) Add(x skiff.RouterSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.apps[x.App]
	for _, y := range list {
		if y.Node == x.Node && y.Time.Equal(x.Time) {
			return
		}
	}
	cut := s.now().Add(-s.keep)
	kept := list[:0]
	for _, y := range list {
		if y.Time.After(cut) {
			kept = append(kept, y)
		}
	}
	s.apps[x.App] = append(kept, x)
}

// sum adds up app's samples of the last window.
func (s *Samples) sum(app string, window time.Duration) (skiff.StatusCounts, skiff.Histogram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var req skiff.StatusCounts
	var lat skiff.Histogram
	cut := s.now().Add(-window)
	for _, x := range s.apps[app] {
		if x.Time.After(cut) {
			req.Add(x.Requests)
			lat.Add(x.Latency)
		}
	}
	return req, lat
}

// ErrorRate implements Series.
func (s *Samples) ErrorRate(app string, window time.Duration) (float64, int64) {
	req, _ := s.sum(app, window)
	n := req.Total()
	if n == 0 {
		return 0, 0
	}
	return float64(req[4]) / float64(n), n
}

// P99 implements Series.
func (s *Samples) P99(app string, window time.Duration) (float64, int64) {
	_, lat := s.sum(app, window)
	return lat.Quantile(.99) * 1000, lat.Count()
}

// routerSamples is the subject pattern of the routers' samples.
var routerSamples = skiff.MetricsSubject("*", "router", "*")

// Follow fills s from the samples of the last keep in the METRICS stream,
// if there is one, and from every sample published after, until ctx
// ends.
func (s *Samples) Follow(ctx context.Context, st *store.Store) error {
	add := func(data []byte) {
		var x skiff.RouterSample
		if json.Unmarshal(data, &x) == nil && x.App != "" {
			s.Add(x)
		}
	}
	sub, err := st.NC.Subscribe(routerSamples, func(m *nats.Msg) { add(m.Data) })
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	// The history is a head start only: without it, the windows fill as
	// samples come.
	_ = st.Scan(ctx, skiff.StreamMetrics, []string{routerSamples}, s.now().Add(-s.keep), func(_ string, data []byte, _ time.Time) bool {
		add(data)
		return true
	})
	<-ctx.Done()
	return nil
}
