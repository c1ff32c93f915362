package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runArg is the name a sandboxed command's wrapper is started under.
const runArg = "skiff-sandbox-run"

// The wrapper's environment: its spec, and the command's environment one
// variable per entry (a single variable could not be longer than the
// kernel's 128 KiB for one string).
const (
	specVar   = "SKIFF_SANDBOX_SPEC"
	envPrefix = "SKIFF_SANDBOX_ENV_"
)

// stopGrace is how long a sandboxed command has, after the SIGTERM its
// wrapper passes on, before every process of its sandbox is killed.
const stopGrace = 2 * time.Second

// Cmd is a command that runs in a sandbox of its own, made by Command.
// Set its Env, Dir, Stdin, Stdout and Stderr as those of an exec.Cmd,
// and start it with its own Start, Run, Output or CombinedOutput (or
// Seal it first): those of the exec.Cmd inside refuse an unsealed one.
//
// What runs is this binary again (see Init), as root, in a new process
// group: a wrapper that makes the sandbox with Start, passes SIGTERM,
// SIGINT and SIGHUP on to it, and exits as the command did (128+N when
// signal N ended it; on standard error it says when the sandbox ran out
// of memory). A SIGTERM is followed by SIGKILL to every process of the
// sandbox 2 seconds later. Cancelling the context sends the wrapper
// SIGTERM; WaitDelay (10 seconds) bounds the rest. When the wrapper dies
// without that chance, the sandbox dies with it (Spec.DieWithParent),
// though its empty cgroup is left behind.
type Cmd struct {
	*exec.Cmd
	spec   Spec
	sealed bool
}

// errUnsealed is what the exec.Cmd of an unsealed Cmd says when started.
var errUnsealed = errors.New("isolate: a sandboxed command must be sealed before it starts: use its own Start, Run, Output or CombinedOutput")

// Command returns a command that runs spec's command in a new sandbox.
// Its Env starts as spec.Env and its Dir as spec.Dir (a path in the
// sandbox); Seal takes them as they are then. spec's own Stdin, Stdout
// and Stderr are not used: the command's standard files are those set
// on the Cmd, as for an exec.Cmd. A nil Env is an empty environment,
// never the caller's.
func Command(ctx context.Context, spec Spec) *Cmd {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Args = []string{runArg}
	cmd.Env = slices.Clone(spec.Env)
	cmd.Dir = spec.Dir
	cmd.Err = errUnsealed
	if err != nil {
		cmd.Err = fmt.Errorf("isolate: find this binary: %w", err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// A builder that dies stops its commands the usual way.
		Pdeathsig: syscall.SIGTERM,
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	spec.Env, spec.Dir, spec.Stdin, spec.Stdout, spec.Stderr = nil, "", nil, nil, nil
	return &Cmd{Cmd: cmd, spec: spec}
}

// Seal takes the command's Env and Dir into its sandbox's spec and gives
// the wrapper an environment of its own. Change nothing on the command
// afterwards.
//
// The wrapper runs as root, on the host, so the command's environment,
// which may hold anything (an app's config vars: LD_PRELOAD of a file
// the app wrote, say), must not be its own: the dynamic loader would act
// on it before the wrapper's first instruction. It gets the command's
// environment as data, under names nothing else reads.
func (c *Cmd) Seal() error {
	if c.sealed {
		return nil
	}
	if c.Cmd.Err != nil && c.Cmd.Err != errUnsealed {
		return c.Cmd.Err
	}
	spec := c.spec
	spec.Args = slices.Clone(spec.Args)
	spec.Dir = c.Dir
	if err := spec.check(); err != nil {
		c.Cmd.Err = err
		return err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		c.Cmd.Err = err
		return err
	}
	env := make([]string, 0, len(c.Env)+1)
	env = append(env, specVar+"="+string(data))
	for i, kv := range c.Env {
		env = append(env, envPrefix+strconv.Itoa(i)+"="+kv)
	}
	c.Cmd.Env, c.Cmd.Dir, c.Cmd.Err = env, "/", nil
	c.sealed = true
	return nil
}

// Start seals and starts the command.
func (c *Cmd) Start() error {
	if err := c.Seal(); err != nil {
		return err
	}
	return c.Cmd.Start()
}

// Run seals and runs the command, as exec.Cmd's Run.
func (c *Cmd) Run() error {
	if err := c.Seal(); err != nil {
		return err
	}
	return c.Cmd.Run()
}

// Output seals and runs the command, returning its standard output, as
// exec.Cmd's Output.
func (c *Cmd) Output() ([]byte, error) {
	if err := c.Seal(); err != nil {
		return nil, err
	}
	return c.Cmd.Output()
}

// CombinedOutput seals and runs the command, returning its standard
// output and error, as exec.Cmd's CombinedOutput.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if err := c.Seal(); err != nil {
		return nil, err
	}
	return c.Cmd.CombinedOutput()
}

// runCommand is the wrapper of a Cmd: it runs the command in a sandbox
// with its own standard files and returns the exit code to leave with.
func runCommand() int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "skiff: "+format+"\n", args...)
		return code
	}
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(specVar)), &spec); err != nil {
		return fail(125, "sandboxed command: no spec: %v", err)
	}
	spec.Env = commandEnv(os.Environ())
	spec.Stdin, spec.Stdout, spec.Stderr = os.Stdin, os.Stdout, os.Stderr
	spec.DieWithParent = true
	// Caught before the sandbox exists, so that none is missed.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	s, err := Start(spec)
	if err != nil {
		var se *startError
		if errors.As(err, &se) {
			return fail(se.code, "%v", err)
		}
		return fail(125, "%v", err)
	}
	var kill <-chan time.Time
	for {
		select {
		case sig := <-signals:
			_ = s.Signal(sig.(syscall.Signal))
			if sig == syscall.SIGTERM && kill == nil {
				kill = time.After(stopGrace)
			}
		case <-kill:
			_ = s.Signal(syscall.SIGKILL)
		case <-s.Done():
			res := s.Result()
			if res.OOMKilled {
				fmt.Fprintf(os.Stderr, "skiff: out of memory: the command's sandbox went over its limit of %s\n", mib(spec.Limits.Memory))
			}
			switch {
			case res.Err != nil:
				return fail(125, "sandbox %s: %v", spec.ID, res.Err)
			case res.Signal != 0:
				return 128 + int(res.Signal)
			}
			return res.Code
		}
	}
}

// commandEnv picks the command's environment out of the wrapper's, in
// its order.
func commandEnv(environ []string) []string {
	type entry struct {
		i  int
		kv string
	}
	var entries []entry
	for _, kv := range environ {
		rest, ok := strings.CutPrefix(kv, envPrefix)
		if !ok {
			continue
		}
		n, v, _ := strings.Cut(rest, "=")
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		entries = append(entries, entry{i, v})
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.i - b.i })
	env := make([]string, len(entries))
	for i, e := range entries {
		env[i] = e.kv
	}
	return env
}

func mib(n int64) string {
	if n <= 0 {
		return "none"
	}
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
