package agent

// One-off processes (skiff run; package oneoff). Agents take run requests
// from a queue group, so any node may run one. A one-off runs in the app's
// current release through the same driver, in the same sandbox, with the
// same config as the app's instances, and shows in skiff ps as run.NNNN
// while it lives. Attached, its standard files are a pseudo terminal or
// pipes whose bytes travel over the bus to the caller; it is stopped
// (SIGHUP, then SIGKILL) as soon as the caller hangs up or goes silent.
// Detached, its output goes to the app's logs and it runs until it ends.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// hangupGrace is how long a one-off whose caller went away has between
// SIGHUP and SIGKILL.
const hangupGrace = 2 * time.Second

// drainLimit bounds the wait for an ended one-off's last output.
const drainLimit = 30 * time.Second

// serveRuns takes run requests until stop is called; stop waits for the
// one-offs under way, which end with ctx.
func (ag *Agent) serveRuns(ctx context.Context) (stop func(), err error) {
	var (
		mu     sync.Mutex
		closed bool
		wg     sync.WaitGroup
	)
	sub, err := ag.st.NC.QueueSubscribe(skiff.SubjectRun, skiff.QueueAgents, func(m *nats.Msg) {
		var req oneoff.Request
		if err := json.Unmarshal(m.Data, &req); err != nil || req.ID == "" || req.App == "" || req.Command == "" {
			respond(m, oneoff.Answer(skiff.Errorf(skiff.KindInvalid, "", "malformed run request")))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			respond(m, oneoff.Answer(skiff.Errorf(skiff.KindUnavailable, "try again", "the agent is stopping")))
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ag.runOneOff(ctx, req, m)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("agent: take runs: %w", err)
	}
	return func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
	}, nil
}

func respond(m *nats.Msg, st oneoff.Started) {
	data, _ := json.Marshal(st)
	_ = m.Respond(data)
}

// runOneOff starts req's process, answers m, and carries the process's
// stream until it ends.
func (ag *Agent) runOneOff(ctx context.Context, req oneoff.Request, m *nats.Msg) {
	var conn *oneoff.Conn
	if !req.Detach {
		// Open the stream first: the caller waits for pings while the
		// image is fetched.
		c, err := oneoff.Accept(ag.st.NC, req, ag.cfg.Runs)
		if err != nil {
			respond(m, oneoff.Answer(err))
			return
		}
		conn = c
		defer conn.Close()
	}
	a, err := ag.oneOffAssignment(ctx, req)
	if err != nil {
		respond(m, oneoff.Answer(err))
		return
	}
	in := &instance{a: a, log: ag.log.With("app", a.App, "instance", a.Name(), "id", a.ID)}
	in.rec = skiff.Instance{ID: a.ID, App: a.App, Proc: a.Proc, Index: a.Index, Release: a.Release, Node: ag.cfg.Node,
		State: skiff.StateStarting, Command: req.Command, Since: time.Now().UTC()}
	dir := filepath.Join(ag.cfg.Dir, "instances", a.ID)
	defer os.RemoveAll(dir)

	port, err := ag.ports.get()
	if err != nil {
		respond(m, oneoff.Answer(err))
		return
	}
	defer ag.ports.put(port)
	spec, _, err := ag.prepare(ctx, a, dir, port, req.Env)
	if err != nil {
		respond(m, oneoff.Answer(err))
		return
	}
	files, err := ag.oneOffFiles(&spec, req, a, conn)
	if err != nil {
		respond(m, oneoff.Answer(err))
		return
	}
	defer files.close()
	proc, err := ag.cfg.Driver.Start(spec)
	files.started()
	if err != nil {
		respond(m, oneoff.Answer(err))
		return
	}
	ag.started(in, proc, dir)
	by := ""
	if req.User != "" {
		by = " by user " + req.User
	}
	ag.platformLog(a, "Starting process with command `%s`%s", req.Command, by)
	in.rec.State, in.rec.PID = skiff.StateUp, proc.PID()
	ag.report(ctx, in)
	defer func() {
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ag.st.Instances.Delete(bg, in.rec.Key()); err != nil {
			in.log.Warn("delete instance record", "err", err)
		}
	}()
	respond(m, oneoff.Started{Name: a.Name(), Node: ag.cfg.Node, Release: a.Release})

	gone := make(chan struct{}) // the caller hung up or went silent
	if conn != nil {
		go files.carryInput(conn, proc, gone)
	}
	in.sampled = time.Now()
	measure := time.NewTicker(ag.cfg.UsageInterval)
	defer measure.Stop()
wait:
	for {
		select {
		case <-proc.Done():
			break wait
		case <-measure.C:
			ag.sample(ctx, in, proc)
			ag.report(ctx, in)
		case <-gone:
			ag.platformLog(a, "Client disconnected: stopping the process with SIGHUP")
			ag.hangup(proc)
			break wait
		case <-ctx.Done():
			ag.hangup(proc)
			break wait
		}
	}
	_ = proc.Signal(syscall.SIGKILL) // whatever it left behind
	<-proc.Done()
	files.drain()
	ag.sample(context.WithoutCancel(ctx), in, proc)
	status := oneoff.Status{Code: proc.ExitCode(), Reason: proc.ExitReason()}
	ag.platformLog(a, "Process exited: %s", status.Reason)
	if conn != nil {
		data, _ := json.Marshal(status)
		_ = conn.Send(oneoff.Exit, data)
	}
}

// hangup stops a one-off whose caller is gone: SIGHUP, as a terminal's
// hangup would, then SIGKILL.
func (ag *Agent) hangup(proc Process) {
	_ = proc.Signal(syscall.SIGHUP)
	select {
	case <-proc.Done():
	case <-time.After(hangupGrace):
		_ = proc.Signal(syscall.SIGKILL)
	}
}

// oneOffAssignment describes req's process as an instance of the app's
// current release.
func (ag *Agent) oneOffAssignment(ctx context.Context, req oneoff.Request) (skiff.Assignment, error) {
	app, _, err := ag.st.Apps.Get(ctx, req.App)
	if errors.Is(err, skiff.ErrNotFound) {
		return skiff.Assignment{}, skiff.Errorf(skiff.KindNotFound, "skiff apps lists your apps", "no app named %s", req.App)
	} else if err != nil {
		return skiff.Assignment{}, err
	}
	if app.Current == 0 {
		return skiff.Assignment{}, skiff.Errorf(skiff.KindConflict, "deploy it first: skiff deploy -a "+app.Name,
			"%s has no release running yet", app.Name)
	}
	rel, _, err := ag.st.Release(ctx, app.Name, app.Current)
	if err != nil {
		return skiff.Assignment{}, err
	}
	return skiff.Assignment{ID: req.ID, App: app.Name, Proc: oneoff.Proc, Index: 1000 + rand.IntN(9000),
		Release: rel.Version, Node: ag.cfg.Node, Image: rel.Image, Command: req.Command, Size: req.ProcessSize, CreatedAt: time.Now().UTC()}, nil
}

// oneOffIO is what carries a one-off's standard files.
type oneOffIO struct {
	conn        *oneoff.Conn
	ptmx, tty   *os.File       // a terminal: the agent's side and the process's
	stdin       *os.File       // the process's end of its input pipe
	input       *os.File       // the agent's end
	outputs     sync.WaitGroup // pipes still copying
	terminalOut chan struct{}  // closed when the terminal's output is all sent
}

// oneOffFiles gives spec its standard files for req: a pseudo terminal,
// pipes to and from conn, or (detached) nothing in and the logs out.
func (ag *Agent) oneOffFiles(spec *Spec, req oneoff.Request, a skiff.Assignment, conn *oneoff.Conn) (*oneOffIO, error) {
	files := &oneOffIO{conn: conn}
	switch {
	case req.Detach:
		spec.Stdout, spec.Stderr = ag.outputs(a)
	case req.TTY:
		ptmx, tty, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("open a terminal: %w", err)
		}
		files.ptmx, files.tty = ptmx, tty
		if req.Size.Cols > 0 && req.Size.Rows > 0 {
			_ = pty.Setsize(ptmx, &pty.Winsize{Cols: req.Size.Cols, Rows: req.Size.Rows})
		}
		spec.Terminal = tty
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		files.stdin, files.input = r, w
		spec.Stdin = r
		files.outputs.Add(2)
		spec.Stdout = &streamWriter{conn: conn, kind: oneoff.Stdout, done: files.outputs.Done}
		spec.Stderr = &streamWriter{conn: conn, kind: oneoff.Stderr, done: files.outputs.Done}
	}
	return files, nil
}

// started lets go of the process's ends of its files, and starts sending
// a terminal's output.
func (files *oneOffIO) started() {
	if files.tty != nil {
		files.tty.Close()
		files.tty = nil
		files.terminalOut = make(chan struct{})
		go func() {
			defer close(files.terminalOut)
			buf := make([]byte, 32<<10)
			for {
				n, err := files.ptmx.Read(buf)
				if n > 0 && files.conn.Send(oneoff.Stdout, buf[:n]) != nil {
					return
				}
				if err != nil {
					return // EIO once no process holds the terminal
				}
			}
		}()
	}
	if files.stdin != nil {
		files.stdin.Close()
		files.stdin = nil
	}
}

// drain waits for the output of an ended process to be sent, or for its
// stream to fail; a process that left something holding its terminal is
// given up on after drainLimit.
func (files *oneOffIO) drain() {
	done := make(chan struct{})
	go func() {
		files.outputs.Wait()
		if files.terminalOut != nil {
			<-files.terminalOut
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainLimit):
	}
}

func (files *oneOffIO) close() {
	for _, f := range []*os.File{files.ptmx, files.tty, files.stdin, files.input} {
		if f != nil {
			f.Close()
		}
	}
}

// input carries the caller's frames to the process until the stream
// ends, then closes gone.
func (files *oneOffIO) carryInput(conn *oneoff.Conn, proc Process, gone chan<- struct{}) {
	defer close(gone)
	// Writes go through a goroutine of their own: a process that does not
	// read its input must not hold up a signal or a resize.
	writes := make(chan []byte, 1024)
	defer close(writes)
	go func() {
		dst := files.input
		if files.ptmx != nil {
			dst = files.ptmx
		}
		for b := range writes {
			if b == nil { // end of input
				if files.input != nil {
					files.input.Close()
				}
				continue
			}
			_, _ = dst.Write(b)
			conn.Consumed(len(b))
		}
	}()
	for {
		kind, p, err := conn.Recv()
		if err != nil {
			return
		}
		switch kind {
		case oneoff.Stdin:
			writes <- p
		case oneoff.EOF:
			if files.ptmx == nil {
				writes <- nil
			}
		case oneoff.Resize:
			if s, err := oneoff.DecodeSize(p); err == nil && files.ptmx != nil && s.Cols > 0 && s.Rows > 0 {
				_ = pty.Setsize(files.ptmx, &pty.Winsize{Cols: s.Cols, Rows: s.Rows})
			}
		case oneoff.Signal:
			if sig := unix.SignalNum("SIG" + string(p)); sig != 0 {
				_ = proc.Signal(sig)
			}
		case oneoff.Hangup:
			return
		}
	}
}

// streamWriter sends what a process writes to one of its pipes as frames
// of kind; done is called when the pipe is closed.
type streamWriter struct {
	conn *oneoff.Conn
	kind byte
	done func()
}

var _ io.WriteCloser = (*streamWriter)(nil)

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.conn.Send(w.kind, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *streamWriter) Close() error {
	w.done()
	return nil
}
