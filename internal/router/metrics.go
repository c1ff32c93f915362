package router

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Metrics of the router, per app, in Prometheus's registry (served on the
// API's /metrics). Each app entry holds its own counters, looked up once
// when the entry is made, so that a request only adds to them.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "router", Name: "requests_total",
		Help: "Requests routed to an app, by the class of the status answered (2xx, 3xx, 4xx, 5xx).",
	}, []string{"app", "code"})
	requestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "skiff", Subsystem: "router", Name: "request_duration_seconds",
		Help: "Time from a request's head to the end of its response, per app.",
		// The buckets of the samples published (sample.go), so that they
		// are read from these counts.
		Buckets: skiff.LatencyBuckets[:],
	}, []string{"app"})
	responseBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "router", Name: "response_bytes_total",
		Help: "Bytes sent back to clients, heads included, per app.",
	}, []string{"app"})
	routeChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "router", Name: "route_changes_total",
		Help: "Changes of apps, instances, domains and certificates applied to the routing table.",
	})
)

func init() {
	prometheus.MustRegister(requestsTotal, requestSeconds, responseBytes, routeChanges)
}

// appMetrics are one app's counters.
type appMetrics struct {
	byClass [6]prometheus.Counter // by the status's first digit
	seconds prometheus.Observer
	bytes   prometheus.Counter
}

func newAppMetrics(app string) *appMetrics {
	m := &appMetrics{seconds: requestSeconds.WithLabelValues(app), bytes: responseBytes.WithLabelValues(app)}
	for c := 1; c <= 5; c++ {
		m.byClass[c] = requestsTotal.WithLabelValues(app, string(rune('0'+c))+"xx")
	}
	return m
}

// forget removes a deleted app's series.
func (m *appMetrics) forget(app string) {
	for c := 1; c <= 5; c++ {
		requestsTotal.DeleteLabelValues(app, string(rune('0'+c))+"xx")
	}
	requestSeconds.DeleteLabelValues(app)
	responseBytes.DeleteLabelValues(app)
}

// observe counts one request.
func (m *appMetrics) observe(status int, d time.Duration, bytes int64) {
	if c := status / 100; c >= 1 && c <= 5 {
		m.byClass[c].Inc()
	}
	m.seconds.Observe(d.Seconds())
	m.bytes.Add(float64(bytes))
}
