package build

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// buildSeconds counts builds by result, and how long they took, in
// Prometheus's default registry.
var buildSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "skiff", Subsystem: "builder", Name: "build_duration_seconds",
	Help:    "Builds by result (succeeded, failed, interrupted) and how long they took, queueing included.",
	Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900},
}, []string{"result"})

func init() { prometheus.MustRegister(buildSeconds) }

// observeBuild counts a build that ended with err after took.
func observeBuild(err error, took time.Duration) {
	buildSeconds.WithLabelValues(skiff.ResultLabel(err)).Observe(took.Seconds())
}
