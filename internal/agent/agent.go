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
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	// PortMin and PortMax bound the ports given to instances
	// (default 20000-29999).
	PortMin, PortMax int
	Logger           *slog.Logger
}

// Agent is the agent role.
type Agent struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ports *portPool
	ready atomic.Bool
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
	return &Agent{cfg: cfg, st: st, log: cfg.Logger.With("role", "agent"), ports: newPortPool(cfg.PortMin, cfg.PortMax)}, nil
}

// Ready reports whether the agent has taken up its assignments.
func (ag *Agent) Ready() bool { return ag.ready.Load() }

// DriverName is the name of the driver the agent uses.
func (ag *Agent) DriverName() string { return ag.cfg.Driver.Name() }

// Run converges on the node's assignments until ctx ends, then stops every
// instance it runs and returns.
func (ag *Agent) Run(ctx context.Context) error {
	ag.reap()
	if err := ag.clearStaleRecords(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stopRuns, err := ag.serveRuns(ctx)
	if err != nil {
		return err
	}
	defer stopRuns()

	wg.Add(1)
	go func() {
		defer wg.Done()
		ag.heartbeat(ctx)
	}()

	changes, err := ag.st.Assignments.Watch(ctx, ag.cfg.Node+".>")
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("agent: %w", err)
	}
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
				in := &instance{a: c.Value, retire: make(chan struct{})}
				running[c.Key] = in
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
		}
	}
}

// heartbeat keeps the node's record fresh, and removes it when ctx ends.
func (ag *Agent) heartbeat(ctx context.Context) {
	node := skiff.Node{Name: ag.cfg.Node, Addr: ag.cfg.Addr, Roles: ag.cfg.Roles, Driver: ag.cfg.Driver.Name(),
		StartedAt: time.Now().UTC()}
	t := time.NewTicker(ag.cfg.Heartbeat)
	defer t.Stop()
	for {
		node.Heartbeat = time.Now().UTC()
		if _, err := ag.st.Nodes.Put(ctx, ag.cfg.Node, node); err != nil && ctx.Err() == nil {
			ag.log.Warn("heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			bg, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = ag.st.Nodes.Delete(bg, ag.cfg.Node)
			return
		case <-t.C:
		}
	}
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
