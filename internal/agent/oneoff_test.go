package agent

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// startRun asks the harness's agent for a one-off and returns the
// caller's end of its stream, whose output is copied into out.
func (h *harness) startRun(req oneoff.Request, opt oneoff.Options) (*oneoff.Conn, oneoff.Started, *testkit.SyncBuffer, <-chan oneoff.Status) {
	h.t.Helper()
	req.ID, req.App, req.User = secret.Token(8), "app", "alice"
	conn, st, err := oneoff.Start(context.Background(), h.st.NC, req, opt)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	out := &testkit.SyncBuffer{}
	status := make(chan oneoff.Status, 1)
	go func() {
		s, err := conn.Output(out, out)
		if err != nil {
			s.Error = err.Error()
		}
		status <- s
	}()
	return conn, st, out, status
}

func waitStatus(t *testing.T, status <-chan oneoff.Status, out *testkit.SyncBuffer) oneoff.Status {
	t.Helper()
	select {
	case s := <-status:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("the run did not end; its output:\n%s", out.String())
	}
	return oneoff.Status{}
}

func TestRunWithPipes(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			h := newHarness(t, Config{Driver: d})
			_, started, _, _ := h.startRun(oneoff.Request{Command: "true"}, oneoff.Options{})
			if !regexp.MustCompile(`^run\.\d{4}$`).MatchString(started.Name) || started.Node != "n1" || started.Release != 1 {
				t.Errorf("started %+v", started)
			}

			req := oneoff.Request{Command: `read line; echo "got $line in $DYNO, $GREETING"; echo oops >&2; exit 3`}
			req.ID, req.App = secret.Token(8), "app"
			conn, started, err := oneoff.Start(context.Background(), h.st.NC, req, oneoff.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Send(oneoff.Stdin, []byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			conn.Send(oneoff.EOF, nil)
			var stdout, stderr bytes.Buffer
			st, err := conn.Output(&stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if want := "got hello in " + started.Name + ", hi\n"; stdout.String() != want || stderr.String() != "oops\n" {
				t.Errorf("stdout %q, stderr %q; want %q and oops", stdout.String(), stderr.String(), want)
			}
			if st.Code != 3 || st.Reason != "exit status 3" {
				t.Errorf("status %+v, want exit status 3", st)
			}
			eventually(t, 5*time.Second, func() bool {
				recs, _ := h.st.Instances.Values(context.Background(), "app.*")
				return len(recs) == 0
			})
		})
	}
}

// TestRunWithTerminal: the process has a terminal of the caller's size
// that follows resizes; Ctrl-C interrupts it; the exit status comes back.
func TestRunWithTerminal(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			h := newHarness(t, Config{Driver: d})
			conn, _, out, status := h.startRun(oneoff.Request{TTY: true, Size: oneoff.Size{Cols: 100, Rows: 40},
				Env:     map[string]string{"TERM": "xterm"},
				Command: `test -t 0 && echo "tty $TERM"; stty size; read x; echo "x=$x"; stty size; sleep 60`}, oneoff.Options{})
			waitOutput(t, out, "tty xterm")
			waitOutput(t, out, "40 100")
			conn.Send(oneoff.Resize, oneoff.Size{Cols: 120, Rows: 50}.Encode())
			conn.Send(oneoff.Stdin, []byte("typed\r"))
			waitOutput(t, out, "x=typed")
			waitOutput(t, out, "50 120")
			time.Sleep(200 * time.Millisecond) // sleep is running
			conn.Send(oneoff.Stdin, []byte{3}) // Ctrl-C
			if st := waitStatus(t, status, out); st.Code != 128+int(syscall.SIGINT) {
				t.Errorf("status %+v after Ctrl-C, want %d; output:\n%s", st, 128+int(syscall.SIGINT), out.String())
			}
		})
	}
}

// TestRunStopsWhenTheCallerGoes: a run whose caller hangs up, or falls
// silent, is stopped, and nothing of it is left running.
func TestRunStopsWhenTheCallerGoes(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			fast := oneoff.Options{Ping: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}
			h := newHarness(t, Config{Driver: d, Runs: fast})

			conn, _, out, status := h.startRun(oneoff.Request{Command: `trap '' TERM; echo started; sleep 300`}, oneoff.Options{})
			waitOutput(t, out, "started")
			pid := h.runPID(t)
			conn.Send(oneoff.Hangup, nil)
			if st := waitStatus(t, status, out); st.Code != 128+int(syscall.SIGHUP) {
				t.Errorf("status %+v after hangup, want %d", st, 128+int(syscall.SIGHUP))
			}
			h.gone(t, pid)

			// A caller that stops answering: its stream closes without a
			// word, as when its machine dies.
			conn, _, out, _ = h.startRun(oneoff.Request{TTY: true, Command: `echo started; exec sleep 300`}, fast)
			waitOutput(t, out, "started")
			pid = h.runPID(t)
			conn.Close()
			h.gone(t, pid)
			if logs := h.logs(""); !strings.Contains(logs, "Client disconnected") {
				t.Errorf("no word of the disconnect in the logs:\n%s", logs)
			}
		})
	}
}

func TestRunDetached(t *testing.T) {
	h := newHarness(t, Config{Driver: drivers()[len(drivers())-1]})
	req := oneoff.Request{ID: secret.Token(8), App: "app", Command: `echo "detached in $DYNO"`, Detach: true}
	conn, started, err := oneoff.Start(context.Background(), h.st.NC, req, oneoff.Options{})
	if err != nil || conn != nil {
		t.Fatal(conn, err)
	}
	eventually(t, 10*time.Second, func() bool { return strings.Contains(h.logs(started.Name), "detached in "+started.Name) })
	eventually(t, 10*time.Second, func() bool { return strings.Contains(h.logs(started.Name), "Process exited: exit status 0") })
}

func TestRunRefusals(t *testing.T) {
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		app, want string
		kind      skiff.Kind
	}{{"nope", "no app named nope", skiff.KindNotFound}, {"idle", "idle has no release running yet", skiff.KindConflict}} {
		h.st.Apps.Put(context.Background(), "idle", skiff.App{Name: "idle"})
		_, _, err := oneoff.Start(context.Background(), h.st.NC, oneoff.Request{ID: secret.Token(8), App: tc.app, Command: "true"}, oneoff.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || skiff.KindOf(err) != tc.kind {
			t.Errorf("run in %s: %v (%s), want %q", tc.app, err, skiff.KindOf(err), tc.want)
		}
	}
}

// runPID is the pid of the one run under way.
func (h *harness) runPID(t *testing.T) int {
	t.Helper()
	var pid int
	eventually(t, 5*time.Second, func() bool {
		recs, _ := h.st.Instances.Values(context.Background(), "app.*")
		for _, r := range recs {
			if r.Proc == oneoff.Proc && r.State == skiff.StateUp && r.PID > 0 {
				pid = r.PID
				return true
			}
		}
		return false
	})
	return pid
}

// gone waits until pid has ended and no record of a run is left.
func (h *harness) gone(t *testing.T, pid int) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
	eventually(t, 5*time.Second, func() bool {
		recs, _ := h.st.Instances.Values(context.Background(), "app.*")
		return len(recs) == 0
	})
}

func waitOutput(t *testing.T, out *testkit.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
