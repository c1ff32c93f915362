package scheduler

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the leading scheduler, in Prometheus's default registry.
var (
	placements = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "scheduler", Name: "placements_total",
		Help: "Instances placed on a node (assignments created).",
	})
	removals = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "scheduler", Name: "removals_total",
		Help: "Instances taken off their node (assignments deleted).",
	})
	unplacedSlots = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "skiff", Subsystem: "scheduler", Name: "unplaced",
		Help: "Instances wanted that found no node with room in the last round.",
	})
)

func init() { prometheus.MustRegister(placements, removals, unplacedSlots) }
