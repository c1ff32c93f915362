package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Driver starts app processes. The exec driver runs plain child processes;
// an isolating driver runs them in namespaces and cgroups of their own.
type Driver interface {
	// Name is how the agent reports the driver: "exec".
	Name() string
	// Start starts the process described by spec.
	Start(spec Spec) (Process, error)
}

// Spec describes one process to start.
type Spec struct {
	// ID names the instance, for the driver's own bookkeeping.
	ID string
	// Root holds the app's files (the image's contents); the process runs
	// with it as its working directory.
	Root string
	// Command is run by bash -c, as Heroku does with Procfile commands.
	Command string
	// Env is the whole environment of the process.
	Env []string
	// Stdout and Stderr receive the process's output; they are closed when
	// the process and every child holding them have exited.
	Stdout, Stderr io.WriteCloser
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
}

// Exec runs app processes as plain children of the agent, each in a
// process group of its own so that a signal reaches everything it started.
// It isolates nothing; it is the driver for development without root.
type Exec struct{}

var _ Driver = Exec{}

// Name implements Driver.
func (Exec) Name() string { return "exec" }

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
	// Pipes of our own rather than exec's copying goroutines: Wait must
	// return when the process exits even if a child it left behind still
	// holds the pipes open.
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	err = cmd.Start()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		return nil, fmt.Errorf("start %q: %w", spec.Command, err)
	}
	go copyClose(spec.Stdout, stdoutR)
	go copyClose(spec.Stderr, stderrR)
	p := &execProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.reason = exitReason(cmd.ProcessState, err)
		close(p.done)
	}()
	return p, nil
}

func copyClose(w io.WriteCloser, r *os.File) {
	_, _ = io.Copy(w, r)
	r.Close()
	w.Close()
}

type execProcess struct {
	cmd    *exec.Cmd
	done   chan struct{}
	reason string // set before done is closed
}

func (p *execProcess) PID() int              { return p.cmd.Process.Pid }
func (p *execProcess) Done() <-chan struct{} { return p.done }
func (p *execProcess) ExitReason() string    { <-p.done; return p.reason }

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
