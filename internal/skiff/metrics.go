package skiff

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Metrics travel in two layers (docs/metrics.md):
//
//   - samples: every router publishes, every SampleInterval, one
//     RouterSample per app it served on MetricsSubject(app, "router",
//     node) into the METRICS stream; agents publish UsageSample into the
//     USAGE stream (instance.go).
//   - points: the metrics role's leader folds the samples of each step
//     into one MetricsPoint per app and writes it on PointSubject(res,
//     app) into the stream of the resolution (METRICS_10S, METRICS_1M,
//     METRICS_1H), each kept as long as Resolution.Keep says; the 1m
//     points are the 10s points merged, the 1h points the 1m points.

// SampleInterval is how often routers publish their samples. Samples are
// taken at wall-clock multiples of it, so that one interval of every
// router falls in the same 10 s step.
const SampleInterval = 10 * time.Second

// LatencyBuckets are the upper bounds, in seconds, of the latency
// histograms of samples and points; Histogram.Counts has one more bucket
// for what lies beyond the last. They are part of the stored format:
// histograms of every router and every point merge bucket by bucket, so
// the bounds never change (they are the router's Prometheus buckets).
var LatencyBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Histogram counts durations in LatencyBuckets. It merges by adding.
type Histogram struct {
	// Counts[i] is how many fell at or under LatencyBuckets[i] and over
	// the bound before; the last counts those over every bound.
	Counts [len(LatencyBuckets) + 1]int64 `json:"counts"`
	Sum    float64                        `json:"sum"` // seconds, of all counted
}

// Add merges o into h.
func (h *Histogram) Add(o Histogram) {
	for i, n := range o.Counts {
		h.Counts[i] += n
	}
	h.Sum += o.Sum
}

// Count is how many durations h holds.
func (h Histogram) Count() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q < 1) in seconds, interpolating
// linearly within the bucket it falls in, as Prometheus's
// histogram_quantile does; beyond the last bound it answers that bound.
// An empty histogram answers 0.
func (h Histogram) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, c := range h.Counts {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		if i == len(LatencyBuckets) {
			return LatencyBuckets[i-1]
		}
		lower := 0.0
		if i > 0 {
			lower = LatencyBuckets[i-1]
		}
		return lower + (LatencyBuckets[i]-lower)*(rank-float64(seen))/float64(c)
	}
	return LatencyBuckets[len(LatencyBuckets)-1]
}

// StatusCounts counts requests by status class: [0] is 1xx … [4] is 5xx.
// In JSON it is an object {"1xx": n, …, "5xx": n}.
type StatusCounts [5]int64

// Add merges o into c.
func (c *StatusCounts) Add(o StatusCounts) {
	for i, n := range o {
		c[i] += n
	}
}

// Total is the number of requests of every class.
func (c StatusCounts) Total() int64 { return c[0] + c[1] + c[2] + c[3] + c[4] }

var classNames = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// MarshalJSON writes c as an object keyed by class.
func (c StatusCounts) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"1xx":%d,"2xx":%d,"3xx":%d,"4xx":%d,"5xx":%d}`, c[0], c[1], c[2], c[3], c[4]), nil
}

// UnmarshalJSON reads the object MarshalJSON writes; unknown keys are
// ignored.
func (c *StatusCounts) UnmarshalJSON(data []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	for i, name := range classNames {
		c[i] = m[name]
	}
	return nil
}

// RouterSample is what one router served for one app over Interval
// seconds ending at Time, published on MetricsSubject(App, "router",
// Node). A router publishes one only for an app it answered requests of
// in the interval. Usage metering reads BytesOut for bandwidth.
type RouterSample struct {
	App      string    `json:"app"`
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`     // end of the interval, a multiple of SampleInterval
	Interval float64   `json:"interval"` // seconds
	// Requests counts the requests answered in the interval by class.
	Requests StatusCounts `json:"requests"`
	// BytesOut is what was sent back to clients, heads included.
	BytesOut int64 `json:"bytes_out"`
	// Latency is the time from each request's head to the end of its
	// response.
	Latency Histogram `json:"latency"`
}

// MetricsSubject is the subject samples of app from source ("router") on
// node are published on; "*" for app or node matches any. A node's name
// may hold dots (a hostname): in the subject, they and anything else a
// subject's token cannot hold become "_" (the sample names the node as
// it is).
func MetricsSubject(app, source, node string) string {
	if node != "*" {
		node = strings.Map(func(r rune) rune {
			if r == '.' || r == '*' || r == '>' || r <= ' ' {
				return '_'
			}
			return r
		}, node)
	}
	return "metrics." + app + "." + source + "." + node
}

// Resolution is a step at which the metrics role keeps points, and how
// long it keeps them.
type Resolution struct {
	Name   string        // "10s", as in PointSubject and the API's step
	Step   time.Duration // each point covers [Time, Time+Step)
	Keep   time.Duration // the stream's MaxAge
	Stream string
}

// Resolutions of points, finest first: each is folded from the one before
// it (the first from samples).
var Resolutions = []Resolution{
	{Name: "10s", Step: 10 * time.Second, Keep: 24 * time.Hour, Stream: "METRICS_10S"},
	{Name: "1m", Step: time.Minute, Keep: 7 * 24 * time.Hour, Stream: "METRICS_1M"},
	{Name: "1h", Step: time.Hour, Keep: 365 * 24 * time.Hour, Stream: "METRICS_1H"},
}

// ResolutionNamed finds a resolution by name.
func ResolutionNamed(name string) (Resolution, bool) {
	for _, r := range Resolutions {
		if r.Name == name {
			return r, true
		}
	}
	return Resolution{}, false
}

// maxPoints is how many points an automatic step aims to stay under.
const maxPoints = 1500

// ResolutionFor picks the finest resolution that still keeps points as
// old as span and gives at most maxPoints points over it: 10 s up to 4 h,
// 1 min up to a day, 1 h beyond.
func ResolutionFor(span time.Duration) Resolution {
	for _, r := range Resolutions {
		if span <= r.Keep && span/r.Step <= maxPoints {
			return r
		}
	}
	return Resolutions[len(Resolutions)-1]
}

// PointSubject is the subject app's points of resolution res are written
// on, in the stream of res.
func PointSubject(res, app string) string { return "points." + res + "." + app }

// Gauge is a level observed over a step (memory, instances): its mean
// over the seconds it was observed, its maximum, and those seconds, so
// that merging weights each mean by how long it was seen.
type Gauge struct {
	Avg     float64 `json:"avg"`
	Max     float64 `json:"max"`
	Seconds float64 `json:"seconds"`
}

// Add merges o into g.
func (g *Gauge) Add(o Gauge) {
	if o.Seconds <= 0 {
		return
	}
	if sum := g.Seconds + o.Seconds; sum > 0 {
		g.Avg = (g.Avg*g.Seconds + o.Avg*o.Seconds) / sum
	}
	g.Max = math.Max(g.Max, o.Max)
	g.Seconds += o.Seconds
}

// MetricsPoint is one app's metrics over one step of a resolution,
// starting at Time. Counts (requests, bytes, CPU seconds, histogram) add
// up when points merge; gauges keep their weighted mean and maximum. The
// fields after Latency are derived by Derive, for readers of the API.
type MetricsPoint struct {
	App  string    `json:"app"`
	Time time.Time `json:"time"`
	// Requests, BytesOut and Latency sum what every router served.
	Requests StatusCounts `json:"requests"`
	BytesOut int64        `json:"bytes_out"`
	Latency  Histogram    `json:"latency"`
	// CPUSeconds is the CPU time the app's instances used in the step.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Memory is the app's memory in bytes: at 10 s, each instance's
	// largest measure in the step, summed over instances; merged, the
	// mean and maximum of those.
	Memory Gauge `json:"memory"`
	// Instances counts the instances measured in the step.
	Instances Gauge `json:"instances"`

	// Derived.
	RPS float64 `json:"rps"`    // requests per second over the step
	P50 float64 `json:"p50_ms"` // latency percentiles in milliseconds
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	CPU float64 `json:"cpu"` // cores used on average over the step
}

// Add merges o, a point of the same app over a part of p's step, into p.
// It leaves the derived fields for Derive.
func (p *MetricsPoint) Add(o MetricsPoint) {
	p.Requests.Add(o.Requests)
	p.BytesOut += o.BytesOut
	p.Latency.Add(o.Latency)
	p.CPUSeconds += o.CPUSeconds
	p.Memory.Add(o.Memory)
	p.Instances.Add(o.Instances)
}

// Derive sets the derived fields of a point of the given step.
func (p *MetricsPoint) Derive(step time.Duration) {
	s := step.Seconds()
	p.RPS = float64(p.Requests.Total()) / s
	p.CPU = p.CPUSeconds / s
	p.P50 = ms(p.Latency.Quantile(.50))
	p.P95 = ms(p.Latency.Quantile(.95))
	p.P99 = ms(p.Latency.Quantile(.99))
}

// ms turns seconds into milliseconds, rounded to the microsecond.
func ms(s float64) float64 { return math.Round(s*1e6) / 1e3 }

// MetricsSeries is an app's points over a span at one resolution: the
// answer of GET /v1/apps/{app}/metrics.
type MetricsSeries struct {
	App        string         `json:"app"`
	Resolution string         `json:"resolution"` // "10s", "1m", "1h"
	Step       float64        `json:"step"`       // seconds
	Since      time.Time      `json:"since"`
	Until      time.Time      `json:"until"`
	Points     []MetricsPoint `json:"points"` // oldest first; steps without samples have none
}

// ResultLabel names how an operation ended, for the result label of
// Prometheus metrics: succeeded; interrupted (KindUnavailable: the node
// doing it stopped, or a role it needs is away); or failed.
func ResultLabel(err error) string {
	switch {
	case err == nil:
		return "succeeded"
	case KindOf(err) == KindUnavailable:
		return "interrupted"
	}
	return "failed"
}
