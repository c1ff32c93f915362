package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiff-paas/skiff/internal/isolate"
)

// Driver starts app processes. The exec driver runs plain child processes;
// an isolating driver runs them in namespaces and cgroups of their own.
type Driver interface {
	// Name is how the agent reports the driver: "exec".
	Name() string
	// Layout tells where the process of spec sees its app, home and
	// temporary directory, for its environment.
	Layout(spec Spec) Layout
	// Start starts the process described by spec.
	Start(spec Spec) (Process, error)
}

// Layout is where a process finds its files.
type Layout struct {
	Root, Home, Tmp string
}

// Spec describes one process to start.
type Spec struct {
	// ID names the instance, for the driver's own bookkeeping.
	ID string
	// Dir is the instance's own directory on the host, emptied when it
	// ends.
	Dir string
	// Root holds the app's files (the image's contents) on the host; the
	// process runs with it as its working directory.
	Root string
	// User and UID are the app's user; Hostname names the instance.
	User     string
	UID      int
	Hostname string
	// Limits bound what the process may use, where the driver can.
	Limits isolate.Limits
	// Command is run by bash -c, as Heroku does with Procfile commands.
	Command string
	// Env is the whole environment of the process.
	Env []string
	// Stdout and Stderr receive the process's output; they are closed when
	// the process and every child holding them have exited.
	Stdout, Stderr io.WriteCloser
	// Stdin is the process's standard input; nil reads nothing.
	Stdin *os.File
	// Terminal, when set, is the process's controlling terminal and its
	// standard input, output and error (the far side of a pseudo
	// terminal); Stdin, Stdout and Stderr are then unused.
	Terminal *os.File
}

// Process is a started process.
type Process interface {
	PID() int
	// Signal sends sig to the process and everything it started.
	Signal(sig syscall.Signal) error
	// Done is closed when the process has exited.
	Done() <-chan struct{}
	// ExitReason describes how the process ended, once Done is closed:
	// "exit status 1", "killed by signal 9 (SIGKILL)".
	ExitReason() string
	// ExitCode is its exit status once Done is closed, 128+N when signal
	// N ended it, as shells report it.
	ExitCode() int
}

// Exec runs app processes as plain children of the agent, each in a
// process group of its own so that a signal reaches everything it started.
// It isolates nothing; it is the driver for development without root.
type Exec struct{}

var _ Driver = Exec{}

// Name implements Driver.
func (Exec) Name() string { return "exec" }

// Layout implements Driver: the host's own paths, with HOME at the app's
// root as on Heroku.
func (Exec) Layout(spec Spec) Layout {
	return Layout{Root: spec.Root, Home: spec.Root, Tmp: filepath.Join(spec.Dir, "tmp")}
}

// Start implements Driver.
func (Exec) Start(spec Spec) (Process, error) {
	shell := "/bin/bash"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/sh"
	}
	cmd := exec.Command(shell, "-c", spec.Command)
	cmd.Dir = spec.Root
	cmd.Env = spec.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	io, err := stdio(spec)
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = io.in, io.out, io.err
	if spec.Terminal != nil {
		// A session of its own, led by the process, with the terminal
		// (its standard input) as the session's.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	}
	err = cmd.Start()
	io.started(err == nil)
	if err != nil {
		return nil, fmt.Errorf("start %q: %w", spec.Command, err)
	}
	p := &execProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.reason = exitReason(cmd.ProcessState, err)
		close(p.done)
	}()
	return p, nil
}

// outputPipe carries one output stream of a process to its spec's
// writer. Pipes of our own rather than exec's copying goroutines: waiting
// for the process must end when it exits, even if a child it left behind
// still holds the pipe open.
type outputPipe struct {
	r, w *os.File
	dst  io.WriteCloser
}

// stdFiles are the standard files a driver gives a process.
type stdFiles struct {
	in, out, err   *os.File // nil: /dev/null
	stdout, stderr *outputPipe
}

// stdio makes the standard files of spec's process: its terminal, or its
// standard input and pipes for its output.
func stdio(spec Spec) (*stdFiles, error) {
	if t := spec.Terminal; t != nil {
		return &stdFiles{in: t, out: t, err: t}, nil
	}
	f := &stdFiles{in: spec.Stdin}
	var err error
	f.stdout = &outputPipe{dst: spec.Stdout}
	if f.stdout.r, f.stdout.w, err = os.Pipe(); err != nil {
		return nil, err
	}
	f.stderr = &outputPipe{dst: spec.Stderr}
	if f.stderr.r, f.stderr.w, err = os.Pipe(); err != nil {
		f.stdout.started(false)
		return nil, err
	}
	f.out, f.err = f.stdout.w, f.stderr.w
	return f, nil
}

// started lets go of the process's ends of its output pipes once it has
// them, or closes the pipes if it did not start.
func (f *stdFiles) started(ok bool) {
	if f.stdout != nil {
		f.stdout.started(ok)
		f.stderr.started(ok)
	}
}

// started lets go of the process's end of the pipe once the process has
// it, and copies what comes out of it; or closes the pipe if the process
// did not start.
func (p *outputPipe) started(ok bool) {
	p.w.Close()
	if !ok {
		p.r.Close()
		return
	}
	go func() {
		_, _ = io.Copy(p.dst, p.r)
		p.r.Close()
		p.dst.Close()
	}()
}

type execProcess struct {
	cmd    *exec.Cmd
	done   chan struct{}
	reason string // set before done is closed
}

func (p *execProcess) PID() int              { return p.cmd.Process.Pid }
func (p *execProcess) Done() <-chan struct{} { return p.done }
func (p *execProcess) ExitReason() string    { <-p.done; return p.reason }

func (p *execProcess) ExitCode() int {
	<-p.done
	ps := p.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func (p *execProcess) Signal(sig syscall.Signal) error {
	// The negative pid names the process group; its leader is the process.
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func exitReason(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("failed: %v", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), unix.SignalName(ws.Signal()))
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}
