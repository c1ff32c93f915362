// Package isolate runs a command in a sandbox of its own: mount, PID, IPC
// and UTS namespaces, a root assembled from the host's runtime directories
// (read-only), the app's image read-only at /app, a private writable /tmp
// and home that vanish with it, an unprivileged user of the app's own, and
// a cgroup that limits its memory, CPU weight and process count and
// measures what it used.
//
// The sandbox's first process is this same binary, re-executed as
// "skiff-sandbox-init" (see Init): it builds the root inside the new
// namespaces, drops to the app's user, starts the command, reaps orphans,
// forwards signals to every process of the sandbox, and ends them all
// when the command exits. A binary that starts sandboxes must call Init
// at the top of main, and so must a test binary, in TestMain.
//
// Start runs a sandbox under the caller's supervision (the agent's app
// processes). Command instead gives an exec.Cmd-like command for code
// written against os/exec (the builder's buildpacks): starting it
// re-executes this binary once more, as "skiff-sandbox-run", a wrapper
// that takes the command's environment, working directory and standard
// files for the sandbox's, calls Start, and exits as the command did.
//
//	caller ── Cmd.Run ──► skiff-sandbox-run (root, host) ── Start ──► skiff-sandbox-init (new namespaces, cgroup) ──► command (the app's user)
package isolate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits bound what a sandbox may use. Zero values mean no limit.
type Limits struct {
	// Memory is the most memory, in bytes, its processes may hold (page
	// cache and tmpfs files included); past it the kernel's OOM killer
	// ends one of them.
	Memory int64
	// CPUWeight is its share of contended CPU time, 1-10000 (cgroup v2's
	// scale: 100 is the default share).
	CPUWeight uint64
	// PIDs is the most processes and threads it may have at once.
	PIDs int64
}

// Mount is a host directory shown in the sandbox.
type Mount struct {
	Source, Target string
	Writable       bool
}

// Spec describes a sandbox and its command.
type Spec struct {
	// ID names the sandbox's cgroup (skiff/ID). Required, unique.
	ID string
	// Root is an empty host directory where the sandbox's root is put
	// together (on a tmpfs of the sandbox's own). Required. Sandboxes may
	// share one: each mounts its root there in its own mount namespace,
	// and the host's directory stays empty.
	Root string
	// Image is the host directory shown read-only at /app.
	Image string
	// User and UID are the app's user, with a group of the same name and
	// ID; UID must not be 0. Its home is /home/User, private and writable.
	User string
	UID  int
	// Hostname is the sandbox's host name; ID when empty.
	Hostname string
	// Args is the command; Args[0] is looked up in the PATH of Env.
	Args []string
	// Env is the whole environment of the command.
	Env []string
	// Dir is the command's working directory in the sandbox; /app when
	// empty.
	Dir string
	// Mounts are further host directories (or files) to show.
	Mounts []Mount
	Limits Limits
	// Cgroup is "v1" or "v2", or empty to take the one the host has
	// (v1 when its controllers are mounted as v1).
	Cgroup string
	// Stdin, Stdout and Stderr are the command's standard files; nil is
	// /dev/null. They are not closed.
	Stdin, Stdout, Stderr *os.File `json:"-"`
	// TTY makes the command a session leader with Stdin, a terminal, as
	// its controlling terminal.
	TTY bool
	// TmpSize bounds /tmp and the home (each) in bytes; 256 MiB when 0.
	// What they hold counts against Limits.Memory.
	TmpSize int64
	// DieWithParent kills the sandbox when the thread that started it
	// ends: for a sandbox that must not outlive its starter (the wrapper
	// of a Cmd). An agent's sandboxes outlive the agent.
	DieWithParent bool
}

// Sandbox is a started sandbox.
type Sandbox struct {
	cmd    *exec.Cmd
	cg     cgroup
	done   chan struct{}
	mu     sync.Mutex // guards result
	result Result
}

// Result is how a sandbox's command ended.
type Result struct {
	// Code is the exit status, or -1 when a signal ended it.
	Code int
	// Signal ended the command, if not 0.
	Signal syscall.Signal
	// OOMKilled is true when the kernel's OOM killer ended a process of
	// the sandbox.
	OOMKilled bool
	// Err tells why the sandbox failed, when it did not run the command
	// to its end.
	Err error
	Usage
}

// Usage is what a sandbox has used.
type Usage struct {
	CPU        time.Duration // user and system CPU time of all its processes
	Memory     int64         // bytes held now
	MemoryPeak int64         // most bytes held at once
}

// initArg is the name the sandbox's first process is started under.
const initArg = "skiff-sandbox-init"

// Start starts spec's command in a new sandbox. It returns once the
// command has started, or with the reason the sandbox could not be made.
func Start(spec Spec) (*Sandbox, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	cg, err := newCgroup(spec.Cgroup, "skiff/"+spec.ID, spec.Limits)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	s, err := start(spec, cg)
	if err != nil {
		cg.delete()
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	return s, nil
}

func (spec *Spec) check() error {
	switch {
	case spec.ID == "" || spec.Root == "":
		return errors.New("sandbox: ID and Root are required")
	case spec.UID <= 0 || spec.User == "":
		return errors.New("sandbox: a user and a user ID other than root's are required")
	case len(spec.Args) == 0:
		return errors.New("sandbox: no command")
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.ID
	}
	if spec.Dir == "" {
		spec.Dir = "/app"
	}
	if spec.TmpSize == 0 {
		spec.TmpSize = 256 << 20
	}
	return nil
}

// start starts the init process in new namespaces, puts it in the cgroup
// before it does anything, then hands it the spec and waits for word that
// the command started.
func start(spec Spec, cg cgroup) (*Sandbox, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusW.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		statusR.Close()
		return nil, err
	}
	defer devNull.Close()
	std := func(f *os.File) *os.File {
		if f == nil {
			return devNull
		}
		return f
	}
	cmd := &exec.Cmd{
		Path:       self,
		Args:       []string{initArg},
		Env:        []string{},
		Stdin:      std(spec.Stdin),
		Stdout:     std(spec.Stdout),
		Stderr:     std(spec.Stderr),
		ExtraFiles: []*os.File{specR, statusW}, // fds 3 and 4
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		},
	}
	if err := cmd.Start(); err != nil {
		statusR.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	specR.Close()
	statusW.Close()
	s := &Sandbox{cmd: cmd, cg: cg, done: make(chan struct{})}
	fail := func(err error) (*Sandbox, error) {
		cmd.Process.Kill()
		cmd.Wait()
		statusR.Close()
		return nil, err
	}
	if err := cg.add(cmd.Process.Pid); err != nil {
		return fail(fmt.Errorf("join cgroup: %w", err))
	}
	if err := json.NewEncoder(specW).Encode(spec); err != nil {
		return fail(fmt.Errorf("hand over the spec: %w", err))
	}
	specW.Close()
	status := bufio.NewReader(statusR)
	var first report
	if err := readReport(status, &first); err != nil {
		return fail(fmt.Errorf("set up: %w", err))
	}
	if first.Error != "" {
		return fail(&startError{code: first.Code, msg: first.Error})
	}
	go s.wait(status, statusR)
	return s, nil
}

// startError is why a sandbox did not start its command, with the exit
// code a shell would give: 127 when the command was not found, 126 when
// it could not be run, 125 when the sandbox could not be made.
type startError struct {
	code int
	msg  string
}

func (e *startError) Error() string { return e.msg }

// report is what init writes on its status pipe, one JSON line each:
// {"started":true} or {"error":...,"code":N} once set up, then, at the
// end, how the command ended.
type report struct {
	Started bool   `json:"started,omitempty"`
	Error   string `json:"error,omitempty"`
	Code    int    `json:"code"`
	Signal  int    `json:"signal,omitempty"`
}

func readReport(r *bufio.Reader, rep *report) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("sandbox init ended without a word: %w", err)
	}
	return json.Unmarshal(line, rep)
}

func (s *Sandbox) wait(status *bufio.Reader, f *os.File) {
	var last report
	rerr := readReport(status, &last)
	f.Close()
	werr := s.cmd.Wait()
	res := Result{Code: last.Code, Signal: syscall.Signal(last.Signal)}
	if rerr != nil {
		// init itself was killed (SIGKILL from the agent, or the OOM
		// killer): its own status is the sandbox's.
		res.Code, res.Signal = -1, 0
		if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal()
		} else if s.cmd.ProcessState != nil {
			res.Code = s.cmd.ProcessState.ExitCode()
		} else {
			res.Err = werr
		}
	}
	if res.Signal != 0 {
		res.Code = -1
	}
	res.OOMKilled = s.cg.oomKills() > 0
	if u, err := s.cg.usage(); err == nil {
		res.Usage = u
	}
	// Every process of the sandbox died with its init; the cgroup may
	// take a moment to notice.
	for i := 0; i < 50 && s.cg.delete() != nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.result = res
	s.mu.Unlock()
	close(s.done)
}

// PID is the host's process ID of the sandbox's init.
func (s *Sandbox) PID() int { return s.cmd.Process.Pid }

// Done is closed when the command and every process of the sandbox have
// ended.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Result tells how the command ended, once Done is closed.
func (s *Sandbox) Result() Result {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// Signal sends sig to every process of the sandbox. SIGKILL ends them all
// at once, whatever they do.
func (s *Sandbox) Signal(sig syscall.Signal) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	// init forwards signals to everything else in the sandbox; SIGKILL
	// to init ends its PID namespace and every process in it.
	err := s.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Usage reads what the sandbox has used so far.
func (s *Sandbox) Usage() (Usage, error) {
	select {
	case <-s.done:
		return s.Result().Usage, nil
	default:
	}
	return s.cg.usage()
}

// Paths shown read-only from the host, when it has them: the runtime
// directories (as the symlinks they are on a merged-/usr system) and the
// parts of /etc that programs need to run, resolve names and check
// certificates. Nothing else of the host is visible.
var (
	hostDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
	hostEtc  = []string{
		"alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version",
		"gai.conf", "host.conf", "inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
		"magic", "magic.mime", "mime.types", "nsswitch.conf", "os-release", "profile", "protocols",
		"python3", "resolv.conf", "services", "ssl", "terminfo", "timezone",
	}
)

// etcFiles are the files of /etc made for the sandbox.
func etcFiles(spec *Spec) map[string]string {
	uid := spec.UID
	return map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n%s:x:%d:%d:%s:%s:/bin/bash\n",
			spec.User, uid, uid, spec.User, home(spec)),
		"group":    fmt.Sprintf("root:x:0:\nnogroup:x:65534:\n%s:x:%d:\n", spec.User, uid),
		"hostname": spec.Hostname + "\n",
		"hosts":    fmt.Sprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", spec.Hostname),
	}
}

func home(spec *Spec) string { return filepath.Join("/home", spec.User) }
