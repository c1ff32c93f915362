package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiff-paas/skiff/internal/isolate"
)

// Isolated runs each app process in a sandbox of its own (package
// isolate): its app's user, its own namespaces, the image read-only at
// /app, private /tmp and home, and a cgroup with its limits. It needs
// root; it is the agent's default when it has it.
type Isolated struct {
	// Cgroup is the cgroup version, "v1" or "v2"; empty takes the host's.
	Cgroup string
}

var _ Driver = Isolated{}

// Name implements Driver.
func (Isolated) Name() string { return "isolated" }

// Layout implements Driver: the sandbox's own paths.
func (Isolated) Layout(spec Spec) Layout {
	return Layout{Root: "/app", Home: "/home/" + spec.User, Tmp: "/tmp"}
}

// Start implements Driver.
func (d Isolated) Start(spec Spec) (Process, error) {
	if spec.UID <= 0 {
		return nil, fmt.Errorf("%s has no user ID of its own yet: deploy it again", spec.User)
	}
	root := filepath.Join(spec.Dir, "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	io, err := stdio(spec)
	if err != nil {
		return nil, err
	}
	sb, err := isolate.Start(isolate.Spec{
		ID: spec.ID, Root: root, Image: spec.Root, User: spec.User, UID: spec.UID, Hostname: spec.Hostname,
		Args: []string{"/bin/bash", "-c", spec.Command}, Env: spec.Env, Limits: spec.Limits, Cgroup: d.Cgroup,
		Stdin: io.in, Stdout: io.out, Stderr: io.err, TTY: spec.Terminal != nil,
	})
	io.started(err == nil)
	if err != nil {
		return nil, err
	}
	return &sandboxProcess{sb: sb, limit: spec.Limits.Memory}, nil
}

// Reap ends what the sandbox of instance id left running, and removes its
// cgroup.
func (Isolated) Reap(id string) (int, error) { return isolate.Reap(id) }

type sandboxProcess struct {
	sb    *isolate.Sandbox
	limit int64
}

func (p *sandboxProcess) PID() int                        { return p.sb.PID() }
func (p *sandboxProcess) Done() <-chan struct{}           { return p.sb.Done() }
func (p *sandboxProcess) Signal(sig syscall.Signal) error { return p.sb.Signal(sig) }
func (p *sandboxProcess) Usage() (isolate.Usage, error)   { return p.sb.Usage() }

// OOMKilled implements oomReporter: the cgroup's memory.events counted
// an oom_kill.
func (p *sandboxProcess) OOMKilled() bool { return p.sb.Result().OOMKilled }

// ExitCode implements Process.
func (p *sandboxProcess) ExitCode() int {
	res := p.sb.Result()
	switch {
	case res.Signal != 0:
		return 128 + int(res.Signal)
	case res.Err != nil:
		return 1
	}
	return res.Code
}

// ExitReason implements Process; it tells an out-of-memory kill apart.
func (p *sandboxProcess) ExitReason() string {
	res := p.sb.Result()
	var how string
	switch {
	case res.Err != nil:
		how = fmt.Sprintf("failed: %v", res.Err)
	case res.Signal != 0:
		how = fmt.Sprintf("killed by signal %d (%s)", int(res.Signal), unix.SignalName(res.Signal))
	default:
		how = fmt.Sprintf("exit status %d", res.Code)
	}
	if res.OOMKilled {
		return fmt.Sprintf("out of memory: over its %s limit, %s", bytesLabel(p.limit), how)
	}
	return how
}

// bytesLabel writes n bytes in MiB or GiB.
func bytesLabel(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
