package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// keepLogs is how many of a server's own log files (PostgreSQL's, in
// the volume's log directory) are kept.
const keepLogs = 5

// process is a running server.
type process struct {
	cmd     *exec.Cmd
	pid     int
	stopSig syscall.Signal
	done    chan struct{} // closed once it has exited and been reaped
	err     error         // Wait's answer, set before done is closed
	started time.Time
	logFrom int64 // where its output starts in the volume's server.log
}

// command runs as the service user in the volume, with a small
// environment of its own, in a process group of its own, and gets sig
// should the host die.
func (s *server) command(args []string, out *os.File, sig syscall.Signal) *exec.Cmd {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + s.dir, "TZ=UTC"}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig, Credential: s.h.acct.Cred}
	return cmd
}

// spawn starts a server whose output goes to out.
func (s *server) spawn(args []string, out *os.File, sig syscall.Signal, logFrom int64) (*process, error) {
	cmd := s.command(args, out, sig)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(args[0]), err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, stopSig: sig, done: make(chan struct{}), started: time.Now(), logFrom: logFrom}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// runTo runs a command to its end as the service user (initdb), its
// output appended to out; an error carries the output's last lines.
func (s *server) runTo(ctx context.Context, timeout time.Duration, args []string, out *os.File) error {
	from, _ := out.Seek(0, io.SeekEnd)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := s.command(args, out, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(args[0]), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	msg := err.Error()
	if lines := tailLines(out.Name(), from, tailMax); len(lines) > 0 {
		msg += "; its output ends:\n" + strings.Join(lines, "\n")
	}
	return errors.New(msg)
}

// stop asks the server to stop, and kills its process group if it has
// not within StopTimeout. It returns once the server has exited.
func (s *server) stop(p *process) {
	_ = p.cmd.Process.Signal(p.stopSig)
	select {
	case <-p.done:
	case <-time.After(s.h.cfg.StopTimeout):
		s.log.Warn("the server did not stop in time: killing it", "timeout", s.h.cfg.StopTimeout)
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // whatever it left behind
	s.log.Info("server stopped", "reason", p.exitReason())
}

// exitReason says how the server ended.
func (p *process) exitReason() string {
	if p.err == nil {
		return "the server exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "the server was killed by " + unix.SignalName(ws.Signal())
		}
		return fmt.Sprintf("the server exited with status %d", ee.ExitCode())
	}
	return "the server ended: " + p.err.Error()
}

// lastOutput is the end of what an exited server said, for its failure
// report: its own output, then the end of its newest log file if it
// wrote one during this run.
func (s *server) lastOutput(p *process) string {
	// Kill what is left of the group now, so the restart finds the data
	// free (PostgreSQL backends outlive a killed postmaster for a moment).
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	lines := tailLines(filepath.Join(s.dir, logFile), p.logFrom, tailMax)
	if f := newestLog(filepath.Join(s.dir, "log")); f != "" {
		if fi, err := os.Stat(f); err == nil && !fi.ModTime().Before(p.started) {
			lines = append(lines, tailLines(f, 0, tailMax)...)
		}
	}
	if len(lines) > tailMax {
		lines = lines[len(lines)-tailMax:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "; its output ends:\n" + strings.Join(lines, "\n")
}

// tailLines returns the last n non-empty lines of the file at path after
// offset from, reading at most tailSize bytes.
func tailLines(path string, from int64, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	start := max(from, fi.Size()-tailSize)
	if start >= fi.Size() {
		return nil
	}
	buf := make([]byte, fi.Size()-start)
	k, _ := f.ReadAt(buf, start)
	text := string(buf[:k])
	if start > from {
		if _, rest, ok := strings.Cut(text, "\n"); ok {
			text = rest // the first line was cut
		}
	}
	var lines []string
	for line := range strings.Lines(text) {
		if line = strings.TrimRight(line, "\r\n"); strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--- ") {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// newestLog is the newest file in dir, or "".
func newestLog(dir string) string {
	files := logFiles(dir)
	if len(files) == 0 {
		return ""
	}
	return files[len(files)-1]
}

// logFiles are the files of dir, oldest first.
func logFiles(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type file struct {
		path string
		mod  time.Time
	}
	var files []file
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			files = append(files, file{filepath.Join(dir, e.Name()), fi.ModTime()})
		}
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].path < files[j].path
	})
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out
}

// pruneLogs removes all but the keep newest files of dir.
func pruneLogs(dir string, keep int) {
	files := logFiles(dir)
	for len(files) > keep {
		_ = os.Remove(files[0])
		files = files[1:]
	}
}

// readPidFile reads the pid on the first line of a pid file, 0 if none.
func readPidFile(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// serverAlive reports whether pid is a live (not zombie) process of the
// program named command, run by uid: a server of ours, not a process that
// got its pid since.
func serverAlive(pid int, command string, uid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != command {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "State:"); ok && strings.HasPrefix(strings.TrimSpace(v), "Z") {
			return false
		}
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 || f[0] != strconv.Itoa(uid) {
				return false
			}
		}
	}
	return true
}

// stopPid stops a process that is not our child: sig, then SIGKILL to its
// group and itself after timeout; it waits until alive says it is gone.
func stopPid(pid int, sig syscall.Signal, timeout time.Duration, alive func() bool) {
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(timeout)
	for alive() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; alive() && i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// writeFile writes a file whole (through a temporary file and a rename,
// so that a crash leaves the old or the new one), with mode perm, owned
// by the service user unless own is nil.
func writeFile(path string, data []byte, perm os.FileMode, own func(string) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil && own != nil {
		err = own(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
