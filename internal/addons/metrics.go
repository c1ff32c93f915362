package addons

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// jobSeconds counts add-on jobs by operation and result, and how long
// they took, in Prometheus's default registry.
var jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "skiff", Subsystem: "addons", Name: "job_duration_seconds",
	Help:    "Add-on jobs by operation (create, destroy, rotate, capture, restore, verify, scheduled_backup) and result (succeeded, failed, interrupted), and how long they took.",
	Buckets: []float64{.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
}, []string{"op", "result"})

func init() { prometheus.MustRegister(jobSeconds) }

// observeJob counts a job of op that ended with err, begun at started.
func observeJob(op string, err error, started time.Time) {
	switch op {
	case skiff.AddonOpCreate, skiff.AddonOpDestroy, skiff.AddonOpRotate, skiff.AddonOpCapture, skiff.AddonOpRestore, skiff.AddonOpVerify:
	default:
		op = "unknown" // a label per string asked for would grow without end
	}
	jobSeconds.WithLabelValues(op, skiff.ResultLabel(err)).Observe(time.Since(started).Seconds())
}
