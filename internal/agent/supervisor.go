package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

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

	rec   skiff.Instance // the last report
	quick int            // quick crashes in a row
	log   *slog.Logger
}

type outcome int

const (
	exited  outcome = iota // the process ended by itself
	stopped                // the supervisor stopped it: retired or shutting down
)

func backoff(quick int) time.Duration {
	if quick <= 1 {
		return backoffBase
	}
	d := backoffBase << (quick - 1)
	if d > backoffMax || d <= 0 {
		return backoffMax
	}
	return d
}

// supervise runs an instance until its assignment is deleted or ctx ends.
func (ag *Agent) supervise(ctx context.Context, in *instance) {
	a := in.a
	in.log = ag.log.With("app", a.App, "instance", a.Name(), "id", a.ID)
	in.rec = skiff.Instance{ID: a.ID, App: a.App, Proc: a.Proc, Index: a.Index, Release: a.Release,
		Generation: a.Generation, Node: ag.cfg.Node, State: skiff.StateStarting}
	dir := filepath.Join(ag.cfg.Dir, "instances", a.ID)
	defer func() {
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ag.st.Instances.Delete(bg, in.rec.Key()); err != nil {
			in.log.Warn("delete instance record", "err", err)
		}
		os.RemoveAll(dir)
	}()

	for {
		started := time.Now()
		proc, port, err := ag.start(ctx, in, dir)
		var reason string
		if err != nil {
			reason = err.Error()
			ag.platformLog(a, "Failed to start: %s", reason)
		} else {
			out := ag.run(ctx, in, proc, port)
			_ = proc.Signal(syscall.SIGKILL) // whatever it left behind
			ag.ports.put(port)
			if out == stopped {
				return
			}
			reason = proc.ExitReason()
			ag.platformLog(a, "Process exited: %s", reason)
		}
		if time.Since(started) < quickExit {
			in.quick++
		} else {
			in.quick = 1
		}
		delay := backoff(in.quick)
		prev := in.rec.State
		in.rec.State, in.rec.Addr, in.rec.PID = skiff.StateCrashed, "", 0
		in.rec.Restarts++
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
		case <-ctx.Done():
			return
		}
	}
}

// start prepares the instance's image, directories and environment and
// starts its process.
func (ag *Agent) start(ctx context.Context, in *instance, dir string) (Process, int, error) {
	a := in.a
	if _, err := ag.cfg.Images.Fetch(ctx, a.Image.Digest, func(ctx context.Context) (io.ReadCloser, error) {
		return ag.st.Slugs.Get(ctx, a.Image.Object)
	}); err != nil {
		return nil, 0, err
	}
	root, err := ag.cfg.Images.Unpacked(ctx, a.Image.Digest)
	if err != nil {
		return nil, 0, err
	}
	rel, _, err := ag.st.Release(ctx, a.App, a.Release)
	if err != nil {
		return nil, 0, err
	}
	vars, err := ag.st.OpenConfig(rel.ConfigSealed)
	if err != nil {
		return nil, 0, err
	}
	home, tmp := filepath.Join(dir, "home"), filepath.Join(dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.RemoveAll(d); err != nil {
			return nil, 0, err
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, 0, err
		}
	}
	port, err := ag.ports.get()
	if err != nil {
		return nil, 0, err
	}
	env := map[string]string{
		"PATH": root + "/bin:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
	}
	for k, v := range vars {
		env[k] = v
	}
	env["PORT"] = strconv.Itoa(port)
	env["DYNO"] = a.Name()
	env["SKIFF_APP"] = a.App
	env["SKIFF_RELEASE"] = skiff.VersionLabel(a.Release)
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}

	ag.platformLog(a, "Starting process with command `%s`", a.Command)
	proc, err := ag.cfg.Driver.Start(Spec{
		ID: a.ID, Root: root, Command: a.Command, Env: list,
		Stdout: ag.lineWriter(a), Stderr: ag.lineWriter(a),
	})
	if err != nil {
		ag.ports.put(port)
		return nil, 0, err
	}
	if err := writePidFile(filepath.Join(dir, "pid"), proc.PID()); err != nil {
		in.log.Warn("write pid file", "err", err)
	}
	return proc, port, nil
}

// run watches a started process until it exits or is stopped.
func (ag *Agent) run(ctx context.Context, in *instance, proc Process, port int) outcome {
	a := in.a
	in.rec.State, in.rec.PID, in.rec.Port, in.rec.Addr = skiff.StateStarting, proc.PID(), port, ""
	in.rec.NextStart = time.Time{}
	in.rec.Since = time.Now().UTC()
	ag.report(ctx, in)

	addr := net.JoinHostPort(ag.cfg.Addr, strconv.Itoa(port))
	probeCtx, cancelProbe := context.WithCancel(ctx)
	defer cancelProbe()
	healthy := make(chan struct{})
	if a.Proc == "web" {
		go probe(probeCtx, addr, healthy)
	} else {
		close(healthy)
	}
	stable := time.NewTimer(quickExit)
	defer stable.Stop()
	for {
		select {
		case <-healthy:
			healthy = nil
			in.rec.State, in.rec.Since = skiff.StateUp, time.Now().UTC()
			if a.Proc == "web" {
				in.rec.Addr = addr
			}
			ag.report(ctx, in)
			ag.platformLog(a, "State changed from starting to up")
		case <-stable.C:
			if in.quick > 0 || in.rec.CrashLoop {
				in.quick, in.rec.CrashLoop = 0, false
				ag.report(ctx, in)
			}
		case <-proc.Done():
			return exited
		case <-in.retire:
			ag.stop(in, proc, true)
			return stopped
		case <-ctx.Done():
			ag.stop(in, proc, false)
			return stopped
		}
	}
}

// probe closes healthy once something accepts connections at addr.
func probe(ctx context.Context, addr string, healthy chan<- struct{}) {
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
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
		if wasUp {
			select {
			case <-time.After(ag.cfg.DrainDelay):
			case <-proc.Done():
			}
		}
	}
	ag.platformLog(a, "Stopping all processes with SIGTERM")
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
	case <-time.After(ag.cfg.StopGrace):
		ag.platformLog(a, "Processes did not exit within %s of SIGTERM: stopping them with SIGKILL", ag.cfg.StopGrace)
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
	}
	ag.platformLog(a, "Process exited: %s", proc.ExitReason())
}

// report writes the instance's record. Failures are logged: the next
// state change writes the whole record again.
func (ag *Agent) report(ctx context.Context, in *instance) {
	if _, err := ag.st.Instances.Put(ctx, in.rec.Key(), in.rec); err != nil && ctx.Err() == nil {
		in.log.Warn("report instance", "err", err)
	}
}

func (ag *Agent) platformLog(a skiff.Assignment, format string, args ...any) {
	ag.st.Log(a.App, skiff.SourcePlatform, a.Name(), fmt.Sprintf(format, args...))
}

// maxLine is the longest log line kept whole; longer ones are split.
const maxLine = 16 << 10

// lineWriter returns a writer that publishes each line written to it as a
// log line of a's instance.
func (ag *Agent) lineWriter(a skiff.Assignment) io.WriteCloser {
	return &lineWriter{emit: func(line []byte) {
		ag.st.Log(a.App, skiff.SourceApp, a.Name(), string(line))
	}}
}

type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func([]byte)
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
	return nil
}
