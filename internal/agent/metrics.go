package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Metrics of the agents of this process, in Prometheus's default
// registry: the instances they supervise by the state last reported, and
// the restarts of crashed processes.
var (
	restarts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "skiff", Subsystem: "agent", Name: "restarts_total",
		Help: "Instance processes that exited and were restarted.",
	})
	states = &stateCounter{by: map[string]skiff.InstanceState{}}
)

func init() { prometheus.MustRegister(restarts, states) }

// stateCounter is a collector of the instances supervised, by state.
type stateCounter struct {
	mu sync.Mutex
	by map[string]skiff.InstanceState // by instance ID; guarded by mu
}

var instancesDesc = prometheus.NewDesc("skiff_agent_instances", "Instances this node's agent supervises, by state.", []string{"state"}, nil)

func (c *stateCounter) set(id string, s skiff.InstanceState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.by[id] = s
}

func (c *stateCounter) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.by, id)
}

func (c *stateCounter) Describe(ch chan<- *prometheus.Desc) { ch <- instancesDesc }

// Collect reports every state, those with no instance as 0, so that a
// state's series does not vanish.
func (c *stateCounter) Collect(ch chan<- prometheus.Metric) {
	n := map[skiff.InstanceState]int{}
	c.mu.Lock()
	for _, s := range c.by {
		n[s]++
	}
	c.mu.Unlock()
	for _, s := range []skiff.InstanceState{skiff.StateStarting, skiff.StateUp, skiff.StateCrashed, skiff.StateStopping, skiff.StateExited} {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n[s]), string(s))
	}
}
