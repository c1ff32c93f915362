package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/skiff-paas/skiff/internal/testkit"
)

// terminal is a program running in a pseudo terminal opened by the test,
// as in a user's terminal window.
type terminal struct {
	t    *testing.T
	ptmx *os.File
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
}

// inTerminal starts name with args in a terminal of 100x30, with the
// environment of the test's CLI.
func (s *server) inTerminal(name string, args ...string) *terminal {
	s.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+s.home, "XDG_CONFIG_HOME="+filepath.Join(s.home, ".config"),
		"SKIFF_API=", "SKIFF_TOKEN=", "SKIFF_APP=", "TERM=xterm")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 100, Rows: 30})
	if err != nil {
		s.t.Fatal(err)
	}
	tm := &terminal{t: s.t, ptmx: ptmx, cmd: cmd, out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			tm.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { cmd.Wait(); close(tm.done) }()
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		<-tm.done
		ptmx.Close()
	})
	return tm
}

// send types s.
func (tm *terminal) send(s string) {
	if _, err := tm.ptmx.Write([]byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

// expect waits for the terminal to show a match of re.
func (tm *terminal) expect(re string) {
	tm.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for !rx.MatchString(tm.out.String()) {
		if time.Now().After(deadline) {
			tm.t.Fatalf("the terminal never showed %q:\n%s", re, tm.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitCode waits for the program to end.
func (tm *terminal) exitCode() int {
	tm.t.Helper()
	select {
	case <-tm.done:
	case <-time.After(30 * time.Second):
		tm.t.Fatalf("the program did not end:\n%s", tm.out.String())
	}
	var exit *exec.ExitError
	if err := tm.cmd.Wait(); errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return tm.cmd.ProcessState.ExitCode()
}

// TestRun: skiff run gives a shell in the app's environment through a
// real terminal (typed input, window resize, Ctrl-C, exit status), pipes
// in scripts, a detached process with its output in the logs, the same
// over SSH, and nothing left running when the client goes away.
func TestRun(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "runner")
	s.ok("config", "set", "-a", "runner", "GREETING=bonjour")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "runner")

	// A terminal: an interactive bash, as the app's user, with its config.
	tm := s.inTerminal(skiffBin, "run", "-a", "runner", "--", "bash")
	tm.expect(`Running .bash. on runner\.\.\. up, run\.\d{4}`)
	tm.send("echo \"user $(id -un) says $GREETING, $((6*7))\"\r")
	tm.expect(`user runner says bonjour, 42`)
	if ps := s.ok("ps", "-a", "runner"); !regexp.MustCompile(`run\.\d{4}\s+up .*bash`).MatchString(ps) {
		t.Errorf("skiff ps does not show the run:\n%s", ps)
	}
	// The window grows: the remote terminal follows.
	if err := pty.Setsize(tm.ptmx, &pty.Winsize{Cols: 132, Rows: 43}); err != nil {
		t.Fatal(err)
	}
	tm.cmd.Process.Signal(syscall.SIGWINCH)
	time.Sleep(300 * time.Millisecond)
	tm.send("stty size\r")
	tm.expect(`\b43 132\r`)
	// Ctrl-C interrupts the remote command, not the session.
	tm.send("sleep 100\r")
	time.Sleep(500 * time.Millisecond)
	tm.send("\x03")
	tm.send("echo \"interrupted with $?, $((2+3))\"\r")
	tm.expect(`interrupted with 130, 5`)
	tm.send("exit 7\r")
	if code := tm.exitCode(); code != 7 {
		t.Errorf("skiff run exited with %d, want the shell's 7:\n%s", code, tm.out.String())
	}

	// Pipes, in a script: input in, output and exit status out.
	cmd := exec.Command(skiffBin, "run", "-a", "runner", "--", `read x; echo "got $x"; echo to-stderr >&2; exit 4`)
	cmd.Env = append(os.Environ(), "HOME="+s.home, "XDG_CONFIG_HOME="+filepath.Join(s.home, ".config"), "SKIFF_API=", "SKIFF_TOKEN=")
	cmd.Stdin = strings.NewReader("hello\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 4 || stdout.String() != "got hello\n" ||
		!strings.Contains(stderr.String(), "to-stderr") {
		t.Errorf("piped run: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}

	// Detached: the output goes to the logs.
	out := s.ok("run", "-a", "runner", "--detach", "--", `echo "detached in $DYNO"`)
	name := regexp.MustCompile(`run\.\d{4}`).FindString(out)
	if name == "" {
		t.Fatalf("run --detach: %s", out)
	}
	eventually(t, 15*time.Second, "the detached run's output in the logs", func() bool {
		return strings.Contains(s.ok("logs", "-a", "runner", "-p", name), "detached in "+name)
	})

	// Over SSH, with a terminal.
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	_, port, _ := strings.Cut(s.sshAddr, ":")
	tm = s.inTerminal("ssh", "-t", "-i", key, "-p", port, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "git@127.0.0.1", "run", "runner", "--", "bash")
	tm.send("test -t 0 && echo \"ssh tty $((3*3))\"\r")
	tm.expect(`ssh tty 9`)
	tm.send("exit 5\r")
	if code := tm.exitCode(); code != 5 {
		t.Errorf("ssh run exited with %d, want 5:\n%s", code, tm.out.String())
	}

	// A health check set from the CLI makes a release that comes up on it.
	if out := s.ok("healthcheck", "set", "-a", "runner", "/"); !strings.Contains(out, "GET /") || !strings.Contains(out, "Released v2") {
		t.Errorf("healthcheck set: %s", out)
	}
	eventually(t, 20*time.Second, "v2 to serve", func() bool {
		return regexp.MustCompile(`\*\s+v2\s+succeeded`).MatchString(s.ok("releases", "-a", "runner"))
	})
	if out := s.ok("healthcheck", "-a", "runner"); !strings.Contains(out, "runner's health check: GET /") {
		t.Errorf("healthcheck: %s", out)
	}

	// A client that goes away leaves nothing running.
	tm = s.inTerminal(skiffBin, "run", "-a", "runner", "--", "sleep 4321")
	tm.expect(`up, run\.\d{4}`)
	eventually(t, 10*time.Second, "the sleep to start", func() bool { return len(processesNamed("sleep 4321")) > 0 })
	tm.cmd.Process.Kill()
	eventually(t, 30*time.Second, "the run to be stopped", func() bool { return len(processesNamed("sleep 4321")) == 0 })
	eventually(t, 10*time.Second, "the run to leave skiff ps", func() bool {
		return !strings.Contains(s.ok("ps", "-a", "runner"), "run.")
	})
}

// processesNamed lists the processes whose command line is cmdline.
func processesNamed(cmdline string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			out = append(out, e.Name())
		}
	}
	return out
}
