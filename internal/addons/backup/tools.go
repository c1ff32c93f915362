package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/addons/account"
)

// Tools names the programs the package runs and where it may write. The
// zero value works on a Debian host with PostgreSQL and Redis installed.
type Tools struct {
	// PostgresBin is the directory holding pg_dump, pg_restore, initdb and
	// postgres; by default the newest /usr/lib/postgresql/*/bin.
	PostgresBin string
	// RedisServer and RedisCLI are the redis-server and redis-cli
	// programs; by default found on PATH.
	RedisServer, RedisCLI string
	// User is the OS user scratch servers run as when this process is
	// root (PostgreSQL refuses to run as root); by default "skiff-addons",
	// created with useradd --system if missing. Directories given to
	// scratch servers must be reachable (searchable) by this user.
	User string
	// TempDir is where snapshots and scratch servers are written; by
	// default os.TempDir(). It needs room for a backup (Redis: two) and
	// for a restored copy of a PostgreSQL database, and User must be able
	// to reach it.
	TempDir string

	// afterCount, when set, runs in CapturePostgres between counting the
	// rows and starting pg_dump (tests).
	afterCount func()
}

// withDefaults returns t with its empty fields filled in; a program that
// cannot be found stays empty, for needPostgres or needRedis to report.
func (t Tools) withDefaults() Tools {
	if t.PostgresBin == "" {
		t.PostgresBin = account.PostgresBin("pg_dump")
	}
	if t.RedisServer == "" {
		t.RedisServer, _ = exec.LookPath("redis-server")
	}
	if t.RedisCLI == "" {
		t.RedisCLI, _ = exec.LookPath("redis-cli")
	}
	if t.User == "" {
		t.User = account.DefaultName
	}
	if t.TempDir == "" {
		t.TempDir = os.TempDir()
	}
	return t
}

// needPostgres reports why the PostgreSQL programs cannot be run.
func (t Tools) needPostgres() error {
	if t.PostgresBin == "" {
		return errors.New("no PostgreSQL programs in /usr/lib/postgresql/*/bin: install postgresql or set Tools.PostgresBin")
	}
	return nil
}

// needRedis reports why redis-server or redis-cli cannot be run.
func (t Tools) needRedis() error {
	if t.RedisServer == "" || t.RedisCLI == "" {
		return errors.New("redis-server or redis-cli is not on PATH: install redis or set Tools.RedisServer and Tools.RedisCLI")
	}
	return nil
}

// pg is the path of the PostgreSQL program name.
func (t Tools) pg(name string) string { return filepath.Join(t.PostgresBin, name) }

// account is the user scratch servers run as (see account.Ensure).
func (t Tools) account() (account.Account, error) {
	a, err := account.Ensure(t.User)
	if err != nil {
		return account.Account{}, fmt.Errorf("the scratch servers' user (Tools.User): %w", err)
	}
	return a, nil
}

// scratchDir makes a directory of its own under dir (TempDir when empty)
// for a scratch server, owned by the account, after checking the account
// can reach it.
func (t Tools) scratchDir(dir, pattern string, a account.Account) (string, error) {
	if dir == "" {
		dir = t.TempDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	// Running as ourselves, MkdirTemp says what we cannot reach.
	if a.Cred != nil {
		if err := a.Reachable(abs); err != nil {
			return "", fmt.Errorf("scratch servers run as user %s, who cannot reach %s: %w, or use a directory every user may traverse, such as one under /tmp", a.Name, abs, err)
		}
	}
	root, err := os.MkdirTemp(abs, pattern)
	if err != nil {
		return "", fmt.Errorf("make scratch directory: %w", diskFull(err, abs))
	}
	if err := a.Chown(root); err != nil {
		os.RemoveAll(root)
		return "", fmt.Errorf("make scratch directory: %w", err)
	}
	return root, nil
}

// copyFile copies src to dst (created with mode 0600) and gives it to the
// account.
func copyFile(dst, src string, a account.Account) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return diskFull(err, filepath.Dir(dst))
	}
	if err := out.Close(); err != nil {
		return diskFull(err, filepath.Dir(dst))
	}
	return a.Chown(dst)
}

// diskFull says that the disk is full, and where, when err is ENOSPC.
func diskFull(err error, where string) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("disk full: no space left writing %s: %w", where, err)
	}
	return err
}

// outOfSpace reports whether a child process that failed writing in dir
// did so for want of space: it said so, or the file system is all but full
// (some programs only say "short write").
func outOfSpace(out *tail, dir string) bool {
	if out.contains(enospcText) {
		return true
	}
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Bavail*uint64(st.Bsize) < 1<<20
}

// noSpace is the error for a child process that ran out of disk in dir.
func noSpace(dir string) error {
	return fmt.Errorf("disk full: no space left in %s (free some, or set a TempDir with more room): %w", dir, syscall.ENOSPC)
}

// writeTo copies r to w, telling the errors of w apart: they are returned
// as werr, said to be a full disk when they are.
func writeTo(w io.Writer, r io.Reader) (n int64, rerr, werr error) {
	ew := &errWriter{w: w}
	n, err := io.Copy(ew, r)
	if ew.err != nil {
		where := "the backup"
		if f, ok := w.(interface{ Name() string }); ok {
			where = f.Name()
		}
		if errors.Is(ew.err, syscall.ENOSPC) {
			return n, nil, fmt.Errorf("disk full: no space left writing %s: %w", where, ew.err)
		}
		return n, nil, fmt.Errorf("write %s: %w", where, ew.err)
	}
	return n, err, nil
}

// errWriter remembers the error of its writer.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		e.err = err
	}
	return n, err
}

// tail keeps the end of what a child process writes, for error messages.
type tail struct {
	mu sync.Mutex // guards b
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-16<<10:]...)
	}
	return len(p), nil
}

// lines is the last n non-empty lines, joined by "; ".
func (t *tail) lines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, l := range strings.Split(string(t.b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "; ")
}

func (t *tail) text() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (t *tail) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.b, []byte(s))
}

// enospcText is how C programs print ENOSPC.
const enospcText = "No space left on device"

// runErr is the error of a child process name that failed with err,
// carrying the end of its output.
func runErr(name string, err error, out *tail) error {
	l := out.lines(6)
	switch {
	case l == "":
		return fmt.Errorf("%s: %w", name, err)
	case strings.HasPrefix(l, name+":"): // PostgreSQL's programs name themselves
		return fmt.Errorf("%s (%w)", l, err)
	}
	return fmt.Errorf("%s: %s (%w)", name, l, err)
}

// freePort is a TCP port on loopback nobody listens on, just now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a running scratch server.
type process struct {
	cmd    *exec.Cmd
	out    *tail
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's, once exited is closed
}

// start starts cmd and waits for it in the background.
func start(cmd *exec.Cmd, out *tail) (*process, error) {
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends sig and waits for the process to exit, killing it if it has
// not after a while.
func (p *process) stop(sig os.Signal) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// sortedKeys is m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// command is a child process that is killed when ctx ends, with env as
// its whole environment.
func (t Tools) command(ctx context.Context, path string, args []string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	// Do not wait long for pipes a killed process's children hold open.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// dump runs the program at path, whose standard output is a backup, and
// copies that to w. A failure to write w stops the program.
func (t Tools) dump(ctx context.Context, path string, args, env []string, w io.Writer) error {
	name := filepath.Base(path)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := t.command(cctx, path, args, env)
	out := &tail{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	_, rerr, werr := writeTo(w, stdout)
	if werr != nil {
		cancel()
	}
	err = cmd.Wait()
	switch {
	case werr != nil:
		return werr
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return runErr(name, err, out)
	case rerr != nil:
		return fmt.Errorf("read the output of %s: %w", name, rerr)
	}
	return nil
}

// errBusy is a scratch server's answer while it loads its data: it is
// making progress, so waitReady keeps waiting.
var errBusy = errors.New("busy loading")

// waitReady polls ping until the server p answers, p exits, ctx ends, or
// a minute passes without progress.
func waitReady(ctx context.Context, p *process, name string, ping func(context.Context) error) error {
	const patience = time.Minute
	deadline := time.Now().Add(patience)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, errBusy) {
			deadline = time.Now().Add(patience)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v: %w (log: %s)", name, patience, err, p.out.lines(6))
		}
		select {
		case <-p.exited:
			return runErr(name+" exited", p.err, p.out)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// scratch is a running scratch server.
type scratch struct {
	url  string
	root string // its directory, removed by close
	proc *process
	sig  os.Signal // that stops it
	once sync.Once
}

// halt stops the server, leaving its files.
func (s *scratch) halt() { s.proc.stop(s.sig) }

// close stops the server and removes its files.
func (s *scratch) close() {
	s.once.Do(func() {
		s.halt()
		os.RemoveAll(s.root)
	})
}
