package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/backoff"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Crash-loop policy. A process that exits within quickExit of its start
// counts as a quick crash; crashLoopAfter quick crashes in a row make a
// crash loop. Restarts wait backoffBase doubled per quick crash, at most
// backoffMax; a process that stays up for quickExit resets the count.
const (
	quickExit      = 10 * time.Second
	crashLoopAfter = 3
	backoffBase    = 250 * time.Millisecond
	backoffMax     = 30 * time.Second
	probeInterval  = 50 * time.Millisecond
)

// instance is one assignment under supervision. retire and retired belong
// to the agent's loop; the rest to the supervisor goroutine.
type instance struct {
	a       skiff.Assignment
	retire  chan struct{} // closed when the assignment is deleted
	retired bool
	kill    chan struct{} // closed when the node was declared dead

	rec    skiff.Instance // the last report
	rev    uint64         // of the last report written; 0 before the first
	fenced bool           // the record was taken away: write nothing more
	quick  int            // quick crashes in a row
	health string         // the release's health check path, set by start
	log    *slog.Logger

	// What the current process had used at the last sample, and when.
	sampled time.Time
	cpu     time.Duration
}

type outcome int

const (
	exited    outcome = iota // the process ended by itself
	stopped                  // the supervisor stopped it: retired or shutting down
	unhealthy                // the supervisor stopped it: it failed its health check
	killed                   // the supervisor killed it: it was replaced elsewhere
)

// supervise runs an instance until its assignment is deleted or ctx ends.
func (ag *Agent) supervise(ctx context.Context, in *instance) {
	a := in.a
	in.log = ag.log.With("app", a.App, "instance", a.Name(), "id", a.ID)
	in.rec = skiff.Instance{ID: a.ID, App: a.App, Proc: a.Proc, Index: a.Index, Release: a.Release,
		Generation: a.Generation, Node: ag.cfg.Node, State: skiff.StateStarting}
	dir := filepath.Join(ag.cfg.Dir, "instances", a.ID)
	defer func() {
		states.forget(a.ID) // metrics.go
		if !in.fenced {
			bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := ag.st.Instances.Delete(bg, in.rec.Key()); err != nil {
				in.log.Warn("delete instance record", "err", err)
			}
		}
		os.RemoveAll(dir)
	}()

	if a.Once {
		ag.runOnce(ctx, in, dir)
		return
	}
	for {
		started := time.Now()
		proc, port, err := ag.start(ctx, in, dir)
		var reason string
		if err != nil {
			reason = err.Error()
			ag.platformLog(a, "Failed to start: %s", reason)
		} else {
			out, why := ag.run(ctx, in, proc, port)
			_ = proc.Signal(syscall.SIGKILL) // whatever it left behind
			<-proc.Done()
			ag.sample(context.WithoutCancel(ctx), in, proc)
			ag.ports.put(port)
			switch out {
			case stopped:
				return
			case killed:
				ag.platformLog(a, "Killed: %s was replaced on another node while this node was out of reach", a.Name())
				return
			case unhealthy:
				reason = why
			default:
				reason = proc.ExitReason()
				ag.platformLog(a, "Process exited: %s", reason)
				if o, ok := proc.(oomReporter); ok && o.OOMKilled() {
					ag.st.Emit(skiff.Event{App: a.App, Type: skiff.EventInstanceOOM, Release: a.Release, Instance: a.Name(),
						Component: a.Name(), Message: fmt.Sprintf("Out of memory: %s was killed over its %s memory limit",
							a.Name(), bytesLabel(ag.limits(a.Size).Memory))})
				}
			}
		}
		if time.Since(started) < quickExit {
			in.quick++
		} else {
			in.quick = 1
		}
		delay := backoff.Doubling(in.quick, backoffBase, backoffMax)
		prev := in.rec.State
		in.rec.State, in.rec.Addr, in.rec.PID = skiff.StateCrashed, "", 0
		in.rec.Restarts++
		restarts.Inc() // metrics.go
		in.rec.ExitReason = reason
		in.rec.NextStart = time.Now().Add(delay).UTC()
		newLoop := in.quick >= crashLoopAfter && !in.rec.CrashLoop
		in.rec.CrashLoop = in.quick >= crashLoopAfter
		ag.report(ctx, in)
		ag.st.Emit(skiff.Event{App: a.App, Type: skiff.EventInstanceCrashed, Release: a.Release, Instance: a.Name(),
			Component: a.Name(), Message: fmt.Sprintf("State changed from %s to crashed; restarting in %s", prev, delay)})
		if newLoop {
			ag.st.Emit(skiff.Event{App: a.App, Type: skiff.EventCrashLoop, Release: a.Release, Instance: a.Name(),
				Component: a.Name(), Message: fmt.Sprintf("Crash loop: %s exited within %s of each of its last %d starts (%s)",
					a.Name(), quickExit, in.quick, reason)})
		}
		select {
		case <-time.After(delay):
		case <-in.retire:
			return
		case <-in.kill:
			in.fenced = true
			return
		case <-ctx.Done():
			return
		}
	}
}

// runOnce runs a process to its end (the release phase): no restart, no
// health check. The instance is reported up while it runs, then exited
// with its exit code, which the scheduler reads before it deletes the
// assignment.
func (ag *Agent) runOnce(ctx context.Context, in *instance, dir string) {
	a := in.a
	in.rec.Since = time.Now().UTC()
	proc, port, err := ag.start(ctx, in, dir)
	if err != nil {
		ag.platformLog(a, "Failed to start: %s", err)
		in.rec.State, in.rec.ExitCode, in.rec.ExitReason = skiff.StateExited, -1, "could not start: "+err.Error()
	} else {
		in.rec.State, in.rec.PID, in.rec.Port = skiff.StateUp, proc.PID(), port
		ag.report(ctx, in)
		// Measured as any instance is, for metering: a migration may run
		// for long.
		in.sampled, in.cpu = time.Now(), 0
		measure := time.NewTicker(ag.cfg.UsageInterval)
	wait:
		for {
			select {
			case <-proc.Done():
				break wait
			case <-measure.C:
				ag.sample(ctx, in, proc)
			case <-in.kill:
				in.fenced = true
				break wait
			case <-in.retire:
				ag.stop(in, proc, false)
				break wait
			case <-ctx.Done():
				ag.stop(in, proc, false)
				break wait
			}
		}
		measure.Stop()
		_ = proc.Signal(syscall.SIGKILL) // whatever it left behind
		<-proc.Done()
		ag.sample(context.WithoutCancel(ctx), in, proc)
		ag.ports.put(port)
		ag.platformLog(a, "Process exited: %s", proc.ExitReason())
		in.rec.State, in.rec.PID, in.rec.ExitCode, in.rec.ExitReason = skiff.StateExited, 0, proc.ExitCode(), proc.ExitReason()
	}
	in.rec.Since = time.Now().UTC()
	ag.report(ctx, in)
	select {
	case <-in.retire:
	case <-in.kill:
	case <-ctx.Done():
	}
}

// start prepares the instance's image, directories and environment and
// starts its process: through the driver, or in the agent itself for a
// static site.
func (ag *Agent) start(ctx context.Context, in *instance, dir string) (Process, int, error) {
	a := in.a
	port, err := ag.ports.get()
	if err != nil {
		return nil, 0, err
	}
	spec, rel, err := ag.prepare(ctx, a, dir, port, nil)
	if err != nil {
		ag.ports.put(port)
		return nil, 0, err
	}
	in.health = rel.HealthCheck

	ag.platformLog(a, "Starting process with command `%s`", a.Command)
	var proc Process
	stdout, stderr := ag.outputs(a)
	if a.Command == skiff.StaticCommand {
		proc, err = startStatic(spec.Root, net.JoinHostPort(ag.cfg.Addr, strconv.Itoa(port)), stdout, stderr)
	} else {
		spec.Stdout, spec.Stderr = stdout, stderr
		proc, err = ag.cfg.Driver.Start(spec)
	}
	if err != nil {
		ag.ports.put(port)
		return nil, 0, err
	}
	ag.started(in, proc, dir)
	return proc, port, nil
}

// started records the pid of a started process in its instance's
// directory, for the next life of the agent to find.
func (ag *Agent) started(in *instance, proc Process, dir string) {
	if pid := proc.PID(); pid > 0 {
		if err := writePidFile(filepath.Join(dir, "pid"), pid); err != nil {
			in.log.Warn("write pid file", "err", err)
		}
	}
}

// prepare fetches the image, release and config of a and makes its
// instance's directory, and returns the spec of its process, environment
// included (extra on top of the rest), standard files not, and its
// release.
func (ag *Agent) prepare(ctx context.Context, a skiff.Assignment, dir string, port int, extra map[string]string) (Spec, skiff.Release, error) {
	var spec Spec
	if _, err := ag.cfg.Images.Fetch(ctx, a.Image.Digest, func(ctx context.Context) (io.ReadCloser, error) {
		return ag.st.Slugs.Get(ctx, a.Image.Object)
	}); err != nil {
		return spec, skiff.Release{}, err
	}
	root, err := ag.cfg.Images.Unpacked(ctx, a.Image.Digest)
	if err != nil {
		return spec, skiff.Release{}, err
	}
	rel, _, err := ag.st.Release(ctx, a.App, a.Release)
	if err != nil {
		return spec, rel, err
	}
	vars, err := ag.st.OpenConfig(rel.ConfigSealed)
	if err != nil {
		return spec, rel, err
	}
	app, _, err := ag.st.Apps.Get(ctx, a.App)
	if err != nil {
		return spec, rel, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return spec, rel, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return spec, rel, err
	}
	spec = Spec{ID: a.ID, Dir: dir, Root: root, User: a.App, UID: app.UID, Hostname: a.App + "." + a.Name(),
		Limits: ag.limits(a.Size)}
	l := ag.cfg.Driver.Layout(spec)
	spec.Command = withProfile(root, l, a.Command)
	spec.Env = processEnv(a, l, hasProfile(root), port, rel.Env, vars, extra)
	return spec, rel, nil
}

// limits are the limits of a process of size: the agent's own (the 1x
// size) times the size's factor.
func (ag *Agent) limits(size string) isolate.Limits {
	f := skiff.SizeFactor(size)
	l := ag.cfg.Limits
	l.Memory *= f
	l.PIDs *= f
	l.CPUWeight = min(l.CPUWeight*uint64(f), 10000)
	return l
}

// processEnv is the environment of an app process, as on Heroku: the app's
// bin first on the PATH, then, each layer winning over the one before, the
// release's default env (app.json), the config vars, and the variables the
// platform sets. HOME is the app's root while .profile.d scripts run (they
// use it to find the app, as on Heroku), and the process's own home after.
func processEnv(a skiff.Assignment, l Layout, profile bool, port int, defaults, vars, extra map[string]string) []string {
	home := l.Home
	if profile {
		home = l.Root
	}
	env := map[string]string{
		"PATH": l.Root + "/bin:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": l.Tmp, "LANG": "C.UTF-8",
	}
	for _, layer := range []map[string]string{defaults, vars, extra} {
		for k, v := range layer {
			env[k] = v
		}
	}
	env["PORT"] = strconv.Itoa(port)
	env["DYNO"] = a.Name()
	env["SKIFF_APP"] = a.App
	env["SKIFF_RELEASE"] = skiff.VersionLabel(a.Release)
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// hasProfile reports whether the image at root has .profile.d scripts.
func hasProfile(root string) bool {
	fi, err := os.Stat(filepath.Join(root, ".profile.d"))
	return err == nil && fi.IsDir()
}

// withProfile makes command source the image's .profile.d/*.sh scripts
// first, in lexical order, as Heroku does before every dyno command
// (buildpacks put PATH settings there), then set HOME to the process's
// own home if that is not the app's root. The command then runs in a
// shell of its own, exec'd from the one that sourced the scripts: it
// keeps the process's pid, so its exit status is the process's and
// signals reach it as before, and a simple command is exec'd by that
// shell in turn, while commands with shell syntax (a && b) work as they
// always did. Exported variables carry over; plain shell variables and
// functions do not. Without a .profile.d directory the command is left
// as it is.
func withProfile(root string, l Layout, command string) string {
	if !hasProfile(root) {
		return command
	}
	home := ""
	if l.Home != l.Root {
		home = "export HOME=" + shellQuote(l.Home) + "\n"
	}
	// The glob is expanded before any script runs, to absolute paths, so a
	// script that changes directory does not hide the ones after it.
	return `for f in "$PWD"/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; unset f` + "\n" + home +
		`exec "${BASH:-/bin/sh}" -c ` + shellQuote(command)
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// run watches a started process until it exits or is stopped. A web
// process with a health check is checked while it runs; one that fails
// it HealthFailures times in a row is stopped, and run says why.
func (ag *Agent) run(ctx context.Context, in *instance, proc Process, port int) (outcome, string) {
	a := in.a
	in.rec.State, in.rec.PID, in.rec.Port, in.rec.Addr = skiff.StateStarting, proc.PID(), port, ""
	in.rec.NextStart = time.Time{}
	in.rec.Since = time.Now().UTC()
	ag.report(ctx, in)

	in.sampled, in.cpu, in.rec.Usage = time.Now(), 0, nil
	measure := time.NewTicker(ag.cfg.UsageInterval)
	defer measure.Stop()

	addr := net.JoinHostPort(ag.cfg.Addr, strconv.Itoa(port))
	probeCtx, cancelProbe := context.WithCancel(ctx)
	defer cancelProbe()
	healthy := make(chan struct{})
	if a.Proc == "web" {
		go probe(probeCtx, ag.readiness(in, addr), healthy)
	} else {
		close(healthy)
	}
	stable := time.NewTimer(quickExit)
	defer stable.Stop()
	var failing <-chan error // the health check failed too often
	for {
		if in.fenced {
			return killed, ""
		}
		select {
		case <-healthy:
			healthy = nil
			in.rec.State, in.rec.Since = skiff.StateUp, time.Now().UTC()
			if a.Proc == "web" {
				in.rec.Addr = addr
			}
			ag.report(ctx, in)
			ag.platformLog(a, "State changed from starting to up")
			if a.Proc == "web" && in.health != "" {
				failing = ag.liveness(probeCtx, in, addr)
			}
		case err := <-failing:
			ag.platformLog(a, "%s: restarting it", err)
			ag.stop(in, proc, true)
			return unhealthy, err.Error()
		case <-stable.C:
			if in.quick > 0 || in.rec.CrashLoop {
				in.quick, in.rec.CrashLoop = 0, false
				ag.report(ctx, in)
			}
		case <-measure.C:
			ag.sample(ctx, in, proc)
			ag.report(ctx, in)
		case <-proc.Done():
			return exited, ""
		case <-in.kill:
			in.fenced = true
			return killed, ""
		case <-in.retire:
			ag.stop(in, proc, true)
			return stopped, ""
		case <-ctx.Done():
			ag.stop(in, proc, false)
			return stopped, ""
		}
	}
}

// liveness checks a running web instance's health check path every
// HealthInterval, and reports on the returned channel once it has failed
// HealthFailures times in a row.
func (ag *Agent) liveness(ctx context.Context, in *instance, addr string) <-chan error {
	failed := make(chan error, 1)
	go func() {
		check := httpCheck(addr, in.health, func(error) {})
		t := time.NewTicker(ag.cfg.HealthInterval)
		defer t.Stop()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := check(ctx)
			if err == nil {
				n = 0
				continue
			}
			if ctx.Err() != nil {
				return
			}
			n++
			ag.platformLog(in.a, "Health check failed (%d of %d): %v", n, ag.cfg.HealthFailures, err)
			if n >= ag.cfg.HealthFailures {
				failed <- fmt.Errorf("health check failed %d times in a row (%v)", n, err)
				return
			}
		}
	}()
	return failed
}

// oomReporter is a process whose driver tells an out-of-memory kill from
// other deaths (the isolated driver, by its cgroup's oom_kill count).
type oomReporter interface {
	OOMKilled() bool
}

// measured is a process whose driver measures what it uses.
type measured interface {
	Usage() (isolate.Usage, error)
}

// sample measures the instance's process, if its driver can: the usage
// goes into the instance's record (reported with its next change) and a
// sample of what it used since the last one (at least how long it ran)
// into the USAGE stream.
func (ag *Agent) sample(ctx context.Context, in *instance, proc Process) {
	now := time.Now()
	interval := now.Sub(in.sampled).Seconds()
	a := in.a
	s := skiff.UsageSample{App: a.App, Instance: a.Name(), ID: a.ID, Release: a.Release, Node: ag.cfg.Node, Time: now.UTC(),
		Interval: interval, Size: a.Size}
	// A process the driver does not measure still counts its time, for
	// instance-hours.
	if m, ok := proc.(measured); ok {
		u, err := m.Usage()
		if err != nil {
			in.log.Debug("measure instance", "err", err)
			return
		}
		// A measure below the last (the last one lost at the end) adds
		// nothing rather than taking back what was counted.
		s.CPUSeconds = max(u.CPU-in.cpu, 0).Seconds()
		s.MemoryByteSeconds, s.Memory, s.MemoryPeak = float64(u.Memory)*interval, u.Memory, u.MemoryPeak
		in.cpu = max(u.CPU, in.cpu)
		in.rec.Usage = &skiff.Usage{CPUSeconds: u.CPU.Seconds(), Memory: u.Memory, MemoryPeak: u.MemoryPeak, MemoryLimit: ag.limits(a.Size).Memory}
	}
	in.sampled = now
	if err := ag.st.RecordUsage(ctx, s); err != nil {
		in.log.Warn("record usage", "err", err)
	}
}

// A check asks an instance once whether it is ready; nil means it is.
type check func(ctx context.Context) error

// probeTimeout bounds one HTTP health check request.
const probeTimeout = 2 * time.Second

// readiness is how a web instance shows it is ready: an answer to its
// release's health check path, or else a TCP connect.
func (ag *Agent) readiness(in *instance, addr string) check {
	if in.health == "" {
		return tcpCheck(addr)
	}
	var last string
	return httpCheck(addr, in.health, func(err error) {
		// Tell the user why the instance is not up yet, once per answer.
		if msg := err.Error(); msg != last {
			last = msg
			ag.platformLog(in.a, "Health check %s; waiting for a 2xx or 3xx answer before taking traffic", msg)
		}
	})
}

// tcpCheck is ready once something accepts connections at addr.
func tcpCheck(addr string) check {
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	return func(ctx context.Context) error {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// httpCheck is ready once a GET of path at addr answers 2xx or 3xx.
// Redirects are not followed: a 3xx is an answer. The app's hostname is
// not known here, so the request says Host: localhost. notReady hears of
// each answer that is not ready (not of failures to connect, which are
// expected while the app starts).
func httpCheck(addr, path string, notReady func(error)) check {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	client := &http.Client{
		// No proxy from the environment, and a fresh connection each time,
		// so that no idle connection is left to the app.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:       probeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "http://" + addr + path
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			err = fmt.Errorf("GET %s: %w", path, err)
			notReady(err)
			return err
		}
		req.Host = "localhost"
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			err := fmt.Errorf("GET %s answered %s", path, resp.Status)
			notReady(err)
			return err
		}
		return nil
	}
}

// probe runs ready every probeInterval until it passes, then closes
// healthy.
func probe(ctx context.Context, ready check, healthy chan<- struct{}) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		if err := ready(ctx); err == nil {
			close(healthy)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop ends a process: when draining, it first reports the instance
// stopping and gives routers the drain delay to let go of it; then SIGTERM,
// and SIGKILL after the grace period.
func (ag *Agent) stop(in *instance, proc Process, drain bool) {
	a := in.a
	bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if drain {
		wasUp := in.rec.State == skiff.StateUp && a.Proc == "web"
		in.rec.State, in.rec.Addr, in.rec.Since = skiff.StateStopping, "", time.Now().UTC()
		ag.report(bg, in)
		if wasUp && !in.fenced {
			select {
			case <-time.After(ag.cfg.DrainDelay):
			case <-proc.Done():
			case <-in.kill:
			}
		}
	}
	if in.fenced || isClosed(in.kill) {
		// Replaced elsewhere: no grace for a process nobody may reach.
		in.fenced = true
		ag.platformLog(a, "Killed: %s was replaced on another node while this node was out of reach", a.Name())
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
		return
	}
	ag.platformLog(a, "Stopping all processes with SIGTERM")
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
	case <-in.kill:
		in.fenced = true
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
	case <-time.After(ag.cfg.StopGrace):
		ag.platformLog(a, "Processes did not exit within %s of SIGTERM: stopping them with SIGKILL", ag.cfg.StopGrace)
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
	}
	ag.platformLog(a, "Process exited: %s", proc.ExitReason())
}

// isClosed reports whether ch (which is never sent on) is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// report writes the instance's record, at the revision of the last
// report: only the scheduler takes a record away, when it declared the
// node dead and started the instance elsewhere. The supervisor that finds
// its record gone is fenced: it writes nothing more, kills its process,
// and has the heartbeat check the node at once. Other failures are logged:
// the next state change writes the whole record again.
func (ag *Agent) report(ctx context.Context, in *instance) {
	if in.fenced {
		return
	}
	states.set(in.rec.ID, in.rec.State) // metrics.go
	key := in.rec.Key()
	var rev uint64
	var err error
	if in.rev == 0 {
		rev, err = ag.st.Instances.Create(ctx, key, in.rec)
	} else {
		rev, err = ag.st.Instances.UpdateAt(ctx, key, in.rec, in.rev)
	}
	if errors.Is(err, skiff.ErrConflict) {
		// A write whose answer was lost may have landed: the record is
		// ours if it is there at all.
		var have uint64
		if _, have, err = ag.st.Instances.Get(ctx, key); errors.Is(err, skiff.ErrNotFound) && in.rev != 0 {
			in.log.Warn("the instance's record was taken away: it was replaced elsewhere")
			in.fenced = true
			ag.suspectDeath()
			return
		} else if err == nil {
			rev, err = ag.st.Instances.UpdateAt(ctx, key, in.rec, have)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			in.log.Warn("report instance", "err", err)
		}
		return
	}
	in.rev = rev
}

func (ag *Agent) platformLog(a skiff.Assignment, format string, args ...any) {
	ag.st.Log(a.App, skiff.SourcePlatform, a.Name(), fmt.Sprintf(format, args...))
}

// maxLine is the longest log line kept whole; longer ones are split.
const maxLine = 16 << 10

// lineWriter calls emit with each line written to it (ag.outputs makes
// them), and done, if set, once closed.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func([]byte)
	done func()
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(bytes.TrimSuffix(w.buf[:i], []byte("\r")))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		w.emit(w.buf[:maxLine])
		w.buf = w.buf[maxLine:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	if w.done != nil {
		w.done()
	}
	return nil
}
