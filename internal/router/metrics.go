package router

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Metrics of the router, per app, in Prometheus's registry (served on the
// API's /metrics). Each app's counters are one small struct of atomics,
// looked up once when its table entry is made, so that a request adds to
// a few words in two or three cache lines: with a thousand apps busy,
// Prometheus's own counters and histogram (half a dozen objects an app)
// cost a request several cache misses. A collector turns the structs into
// the series below when /metrics is read.
var (
	requestsDesc = prometheus.NewDesc("skiff_router_requests_total",
		"Requests routed to an app, by the class of the status answered (2xx, 3xx, 4xx, 5xx).", []string{"app", "code"}, nil)
	// The buckets are those of the samples published (sample.go), so
	// that they are read from these counts.
	secondsDesc = prometheus.NewDesc("skiff_router_request_duration_seconds",
		"Time from a request's head to the end of its response, per app.", []string{"app"}, nil)
	bytesDesc = prometheus.NewDesc("skiff_router_response_bytes_total",
		"Bytes sent back to clients, heads included, per app.", []string{"app"}, nil)
	routeChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "router", Name: "route_changes_total",
		Help: "Changes of apps, instances, domains and certificates applied to the routing table.",
	})
)

// appsMetrics holds every app's counters, by app, as a metric vector
// would: entries for the same app share them, and forget removes them.
var appsMetrics = &metricsByApp{apps: map[string]*appMetrics{}}

func init() {
	prometheus.MustRegister(appsMetrics, routeChanges)
}

// classes are the code labels of requestsDesc, by the status's first digit.
var classes = [...]string{1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

// appMetrics are one app's counters, updated with atomic adds. The count
// of requests observed is the sum of the buckets.
type appMetrics struct {
	requests [5]atomic.Int64 // by the status's first digit, 1 to 5
	bytes    atomic.Int64
	nanos    atomic.Int64                                // sum of the durations
	buckets  [len(skiff.LatencyBuckets) + 1]atomic.Int64 // the last: above every bound
}

// metricsByApp is the collector of the apps' counters.
type metricsByApp struct {
	mu   sync.Mutex // guards apps
	apps map[string]*appMetrics
}

func newAppMetrics(app string) *appMetrics {
	appsMetrics.mu.Lock()
	defer appsMetrics.mu.Unlock()
	m := appsMetrics.apps[app]
	if m == nil {
		m = &appMetrics{}
		appsMetrics.apps[app] = m
	}
	return m
}

// forget removes a deleted app's series.
func (m *appMetrics) forget(app string) {
	appsMetrics.mu.Lock()
	delete(appsMetrics.apps, app)
	appsMetrics.mu.Unlock()
}

// bucketNanos are LatencyBuckets in nanoseconds, for observe.
var bucketNanos = func() (b [len(skiff.LatencyBuckets)]time.Duration) {
	for i, s := range skiff.LatencyBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// observe counts one request.
func (m *appMetrics) observe(status int, d time.Duration, bytes int64) {
	if c := status / 100; c >= 1 && c <= 5 {
		m.requests[c-1].Add(1)
	}
	m.bytes.Add(bytes)
	m.nanos.Add(int64(d))
	i := 0
	for i < len(bucketNanos) && d > bucketNanos[i] {
		i++
	}
	m.buckets[i].Add(1)
}

// read reads m's counters.
func (m *appMetrics) read() counts {
	var c counts
	for i := range c.requests {
		c.requests[i] = m.requests[i].Load()
	}
	c.bytes = m.bytes.Load()
	for i := range c.latency.Counts {
		c.latency.Counts[i] = m.buckets[i].Load()
	}
	c.latency.Sum = time.Duration(m.nanos.Load()).Seconds()
	return c
}

func (*metricsByApp) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- secondsDesc
	ch <- bytesDesc
}

func (mb *metricsByApp) Collect(ch chan<- prometheus.Metric) {
	mb.mu.Lock()
	apps := make([]string, 0, len(mb.apps))
	for app := range mb.apps {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	ms := make([]*appMetrics, len(apps))
	for i, app := range apps {
		ms[i] = mb.apps[app]
	}
	mb.mu.Unlock()
	for i, app := range apps {
		c := ms[i].read()
		for class := 1; class <= 5; class++ {
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(c.requests[class-1]), app, classes[class])
		}
		// Prometheus's buckets are cumulative.
		buckets := make(map[float64]uint64, len(skiff.LatencyBuckets))
		var n uint64
		for j, bound := range skiff.LatencyBuckets {
			n += uint64(c.latency.Counts[j])
			buckets[bound] = n
		}
		n += uint64(c.latency.Counts[len(skiff.LatencyBuckets)])
		ch <- prometheus.MustNewConstHistogram(secondsDesc, n, c.latency.Sum, buckets, app)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(c.bytes), app)
	}
}
