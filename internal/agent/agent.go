// Package agent is the agent role: on every node it runs the instances the
// scheduler assigned to that node, and reports what they are doing.
//
// The agent watches the assignments under its node's prefix. Each new
// assignment gets a supervisor goroutine (supervisor.go) that owns the
// instance from then on: it fetches the image (cached by digest), starts
// the process through the Driver, waits for a web process to be ready
// before reporting it up (an answer of 2xx or 3xx to the release's health
// check path, or else a TCP connect), captures its output line by line
// into the LOGS stream, restarts it with exponential backoff when it
// crashes, and reports a crash loop. When the assignment is deleted the
// supervisor reports the instance stopping (the router drops it), waits
// out the drain delay, sends SIGTERM and, after the grace period, SIGKILL.
//
// A process sees Heroku's environment: HOME is the app's root and its
// working directory, the image's .profile.d/*.sh scripts are sourced
// before its command, and the release's default env, the config vars and
// the platform's own variables (PORT, DYNO…) are layered in that order.
//
// A static site (command skiff.StaticCommand) has no process: the agent
// serves the image's files itself (static.go), through a Process backed
// by an HTTP server, so that everything above treats it like any other
// web instance. Such a site stops when its agent stops.
//
// The agent records each process's pid in the instance's directory; if the
// agent dies without stopping its processes, the next start of the agent
// kills what is left before it starts anything.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures an agent.
type Config struct {
	// Node is the name of this node. Required.
	Node string
	// Addr is the host routers reach this node's instances at
	// (default 127.0.0.1).
	Addr string
	// Dir holds the instances' directories. Required.
	Dir string
	// Images is the local image cache. Required.
	Images *image.Cache
	// Driver starts processes (default Exec).
	Driver Driver
	// Limits bound each instance where the driver can (the isolated
	// driver): by default 512 MiB of memory, CPU weight 100 and 512
	// processes.
	Limits isolate.Limits
	// UsageInterval is how often instances are measured, for ps and
	// metering (default 10 s).
	UsageInterval time.Duration
	// HealthInterval is how often a running web instance's health check
	// path is checked (default 10 s); HealthFailures failures in a row
	// (default 3) restart it.
	HealthInterval time.Duration
	HealthFailures int
	// Runs tunes the streams of one-off processes (package oneoff).
	Runs oneoff.Options
	// Roles are the roles of this node, reported in its heartbeat.
	Roles []string
	// StopGrace is how long a process has to exit after SIGTERM before it
	// gets SIGKILL (default 30 s).
	StopGrace time.Duration
	// DrainDelay is how long a web instance keeps running after it is
	// reported stopping, so that routers stop sending it requests and
	// finish the ones under way, before it gets SIGTERM (default 2 s).
	DrainDelay time.Duration
	// Heartbeat is the interval of the node's heartbeats (default 1 s).
	Heartbeat time.Duration
	// PruneInterval is how often the image cache is pruned (default
	// 10 min; negative: never); ImageRetention is how long an image
	// nothing needs stays after its last use (default 24 h). See prune.go.
	PruneInterval, ImageRetention time.Duration
	// Labels are the node's labels (region=eu), reported in its
	// heartbeat for placement.
	Labels map[string]string
	// Memory is what the node's instances may reserve, in bytes (default:
	// the machine's memory less 1 GiB, at least a quarter of it).
	Memory int64
	// PortMin and PortMax bound the ports given to instances
	// (default 20000-29999).
	PortMin, PortMax int
	// LogRate is how many lines a second each instance may log on
	// average, LogBurst how many at once (default 5 s worth); lines over
	// it are dropped and counted in a platform line (loglimit.go). 0: no
	// limit.
	LogRate  float64
	LogBurst int
	Logger   *slog.Logger
}

// Agent is the agent role.
type Agent struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ports *portPool
	ready atomic.Bool
	// count is how many instances run, for the heartbeat.
	count atomic.Int64
	// suspect asks the heartbeat to check at once whether the node was
	// declared dead (an instance's record was taken away).
	suspect chan struct{}
}

// New validates cfg and returns an agent.
func New(cfg Config, st *store.Store) (*Agent, error) {
	if cfg.Node == "" || cfg.Dir == "" || cfg.Images == nil {
		return nil, errors.New("agent: Node, Dir and Images are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if cfg.Driver == nil {
		cfg.Driver = Exec{}
	}
	if cfg.UsageInterval <= 0 {
		cfg.UsageInterval = 10 * time.Second
	}
	if cfg.Limits == (isolate.Limits{}) {
		cfg.Limits = isolate.Limits{Memory: 512 << 20, CPUWeight: 100, PIDs: 512}
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 10 * time.Second
	}
	if cfg.HealthFailures <= 0 {
		cfg.HealthFailures = 3
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 30 * time.Second
	}
	if cfg.DrainDelay < 0 {
		cfg.DrainDelay = 0
	} else if cfg.DrainDelay == 0 {
		cfg.DrainDelay = 2 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	setPruneDefaults(&cfg.PruneInterval, &cfg.ImageRetention)
	if cfg.Memory <= 0 {
		if total := memTotal(); total > 0 {
			cfg.Memory = max(total-1<<30, total/4)
		}
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = 20000, 29999
	}
	if cfg.PortMin <= 0 || cfg.PortMax < cfg.PortMin || cfg.PortMax > 65535 {
		return nil, fmt.Errorf("agent: bad port range %d-%d", cfg.PortMin, cfg.PortMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "instances"), 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Agent{cfg: cfg, st: st, log: cfg.Logger.With("role", "agent"), ports: newPortPool(cfg.PortMin, cfg.PortMax),
		suspect: make(chan struct{}, 1)}, nil
}

// Ready reports whether the agent has taken up its assignments.
func (ag *Agent) Ready() bool { return ag.ready.Load() }

// DriverName is the name of the driver the agent uses.
func (ag *Agent) DriverName() string { return ag.cfg.Driver.Name() }

// Run converges on the node's assignments until ctx ends, then stops every
// instance it runs and returns.
//
// Should the node be declared dead (it was silent past the scheduler's
// grace period, and its instances were started elsewhere), the agent
// learns it from its heartbeat when the bus answers again: it kills every
// instance it runs at once, without a word to the bus about them, and
// only then comes back as a new incarnation of the node and takes up its
// assignments afresh. Until then, an agent that lost the bus keeps its
// instances running: routers that still reach them keep sending requests.
func (ag *Agent) Run(ctx context.Context) error {
	ag.reap()
	var wg sync.WaitGroup
	defer wg.Wait()
	stopRuns, err := ag.serveRuns(ctx)
	if err != nil {
		return err
	}
	defer stopRuns()

	fence := make(chan chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		ag.heartbeat(ctx, fence)
	}()
	wg.Add(1)
	go func() { defer wg.Done(); ag.pruner().Run(ctx) }()
	for {
		err := ag.converge(ctx, fence)
		if !errors.Is(err, errFenced) {
			return err
		}
	}
}

// errFenced ends a converge loop whose instances were killed because the
// node had been declared dead.
var errFenced = errors.New("the node was declared dead")

// converge runs the node's assignments until ctx ends, or until the
// heartbeat finds the node declared dead: then it kills every instance,
// closes the channel it was handed and returns errFenced.
func (ag *Agent) converge(ctx context.Context, fence <-chan chan struct{}) error {
	if err := ag.clearStaleRecords(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := ag.st.Assignments.Watch(wctx, ag.cfg.Node+".>")
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("agent: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]*instance{} // by assignment key; owned by this loop
	exited := make(chan string)
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return nil // ctx ended; supervisors stop their processes
			}
			switch {
			case c.Synced:
				ag.ready.Store(true)
				ag.log.Info("assignments loaded", "instances", len(running), "driver", ag.cfg.Driver.Name())
			case c.Deleted:
				if in := running[c.Key]; in != nil && !in.retired {
					in.retired = true
					close(in.retire)
				}
			default:
				if running[c.Key] != nil {
					continue // assignments do not change once written
				}
				in := &instance{a: c.Value, retire: make(chan struct{}), kill: make(chan struct{})}
				running[c.Key] = in
				ag.count.Add(1)
				wg.Add(1)
				go func(key string) {
					defer wg.Done()
					ag.supervise(ctx, in)
					select {
					case exited <- key:
					case <-ctx.Done():
					}
				}(c.Key)
			}
		case key := <-exited:
			delete(running, key)
			ag.count.Add(-1)
		case done := <-fence:
			ag.log.Warn("this node was declared dead and its instances replaced: killing them", "instances", len(running))
			for _, in := range running {
				close(in.kill)
			}
			for len(running) > 0 {
				delete(running, <-exited)
				ag.count.Add(-1)
			}
			close(done)
			return errFenced
		}
	}
}

// heartbeat keeps the node's record fresh, and removes it when ctx ends.
// Each beat updates the record at the revision of the last one, so that a
// change by another writer shows: a drain (taken into the next beat), or
// the node declared dead, or its record gone (then fence is asked to kill
// every instance, and the node comes back as a new incarnation).
func (ag *Agent) heartbeat(ctx context.Context, fence chan<- chan struct{}) {
	node := skiff.Node{Name: ag.cfg.Node, Addr: ag.cfg.Addr, Roles: ag.cfg.Roles, Driver: ag.cfg.Driver.Name(),
		Labels: ag.cfg.Labels, Memory: ag.cfg.Memory, InstanceMemory: ag.cfg.Limits.Memory, CPUs: runtime.NumCPU(),
		StartedAt: time.Now().UTC(), Incarnation: newIncarnation()}
	var rev uint64 // of the last beat; 0: take the record over
	t := time.NewTicker(ag.cfg.Heartbeat)
	defer t.Stop()
	for {
		node.Heartbeat, node.Load, node.Instances = time.Now().UTC(), loadAverage(), int(ag.count.Load())
		node.DiskTotal, node.DiskUsed = diskUsage(ag.cfg.Dir)
		next, err := ag.beat(ctx, &node, rev)
		switch {
		case errors.Is(err, errFenced):
			done := make(chan struct{})
			select {
			case fence <- done:
				<-done
			case <-ctx.Done():
			}
			node.Incarnation, node.State, node.StateSince, rev = newIncarnation(), "", time.Time{}, 0
			ag.log.Info("back as a new incarnation of the node", "incarnation", node.Incarnation)
			continue
		case err != nil && ctx.Err() == nil:
			ag.log.Warn("heartbeat", "err", err)
		case err == nil:
			rev = next
		}
		select {
		case <-ctx.Done():
			bg, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = ag.st.Nodes.Delete(bg, ag.cfg.Node)
			return
		case <-t.C:
		case <-ag.suspect:
		}
	}
}

// beat writes one heartbeat and returns the record's new revision, or
// errFenced if the record says this incarnation is dead or is gone.
func (ag *Agent) beat(ctx context.Context, node *skiff.Node, rev uint64) (uint64, error) {
	if rev == 0 {
		// This incarnation's first beat: keep what others set.
		if old, _, err := ag.st.Nodes.Get(ctx, node.Name); err == nil {
			node.Drain = old.Drain
		} else if !errors.Is(err, skiff.ErrNotFound) {
			return 0, err
		}
		return ag.st.Nodes.Put(ctx, node.Name, *node)
	}
	next, err := ag.st.Nodes.UpdateAt(ctx, node.Name, *node, rev)
	if !errors.Is(err, skiff.ErrConflict) {
		return next, err
	}
	old, oldRev, err := ag.st.Nodes.Get(ctx, node.Name)
	switch {
	case errors.Is(err, skiff.ErrNotFound):
		return 0, errFenced
	case err != nil:
		return 0, err
	case old.Incarnation != node.Incarnation || old.State == skiff.NodeDead:
		return 0, errFenced
	}
	node.Drain = old.Drain
	return ag.st.Nodes.UpdateAt(ctx, node.Name, *node, oldRev)
}

// suspectDeath has the heartbeat check the node's record at once.
func (ag *Agent) suspectDeath() {
	select {
	case ag.suspect <- struct{}{}:
	default:
	}
}

func newIncarnation() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// loadAverage is the machine's 1-minute load average, 0 if unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// memTotal is the machine's memory in bytes, 0 if unknown.
func memTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// clearStaleRecords deletes instance records this node left behind in an
// earlier life; the supervisors write fresh ones.
func (ag *Agent) clearStaleRecords(ctx context.Context) error {
	recs, err := ag.st.Instances.List(ctx, "")
	if err != nil {
		return fmt.Errorf("agent: list instances: %w", err)
	}
	for _, r := range recs {
		if r.Value.Node == ag.cfg.Node {
			if err := ag.st.Instances.Delete(ctx, r.Key); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
		}
	}
	return nil
}

// reap kills processes left running by an earlier life of the agent, found
// by the pid files in the instance directories and, for a driver that
// keeps them in sandboxes, by the sandboxes' cgroups; then it removes the
// directories. The scheduler's assignments start the instances again:
// a process that lost its agent lost its output and supervision, so it is
// not taken back.
func (ag *Agent) reap() {
	dirs, _ := filepath.Glob(filepath.Join(ag.cfg.Dir, "instances", "*"))
	for _, dir := range dirs {
		id := filepath.Base(dir)
		if pid, start, err := readPidFile(filepath.Join(dir, "pid")); err == nil && processStart(pid) == start {
			ag.log.Info("killing a process left by an earlier run", "pid", pid, "id", id)
			_ = syscall.Kill(pid, syscall.SIGKILL)  // a sandbox's first process: its PID namespace ends with it
			_ = syscall.Kill(-pid, syscall.SIGKILL) // a plain process's group
		}
		if r, ok := ag.cfg.Driver.(reaper); ok {
			if n, err := r.Reap(id); err != nil {
				ag.log.Warn("clean up a sandbox left by an earlier run", "id", id, "err", err)
			} else if n > 0 {
				ag.log.Info("killed the processes left in a sandbox by an earlier run", "id", id, "processes", n)
			}
		}
		os.RemoveAll(dir)
	}
}

// reaper is a driver that can end what an instance left behind when its
// agent died.
type reaper interface {
	Reap(id string) (int, error)
}

func writePidFile(path string, pid int) error {
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, processStart(pid))), 0o600)
}

func readPidFile(path string) (int, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, "", fmt.Errorf("bad pid file %s", path)
	}
	pid, err := strconv.Atoi(f[0])
	return pid, f[1], err
}

// processStart is the start time of pid in clock ticks since boot, from
// /proc/PID/stat, so that a recycled pid is never mistaken for ours; empty
// if there is no such process.
func processStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 of the whole line
}
