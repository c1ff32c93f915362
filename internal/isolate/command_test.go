package isolate_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/isolate"
)

// command makes a sandboxed command running script as uid, on cgroup
// version v, with a writable directory shown at its own path.
func command(t *testing.T, ctx context.Context, v string, uid int, script string) (*isolate.Cmd, string) {
	t.Helper()
	ids++
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	os.Chown(work, uid, uid)
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o700)
	id := fmt.Sprintf("test-cmd-%d-%d", os.Getpid(), ids)
	t.Cleanup(func() { removeCgroup(id) })
	return isolate.Command(ctx, isolate.Spec{
		ID: id, Root: root, User: "beta", UID: uid, Hostname: "builder",
		Args:   []string{"/bin/sh", "-c", script},
		Env:    []string{"PATH=/usr/bin:/bin"},
		Mounts: []isolate.Mount{{Source: work, Target: work, Writable: true}},
		Cgroup: v,
	}), work
}

// removeCgroup removes what a sandbox whose wrapper was killed leaves.
func removeCgroup(id string) {
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		os.Remove(filepath.Join(base, "skiff", id))
		if entries, err := os.ReadDir(base); err == nil {
			for _, e := range entries {
				os.Remove(filepath.Join(base, e.Name(), "skiff", id))
			}
		}
	}
}

// processesOf lists the host's processes running as uid.
func processesOf(uid int) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var name string
		for _, line := range strings.Split(string(status), "\n") {
			if n, ok := strings.CutPrefix(line, "Name:"); ok {
				name = strings.TrimSpace(n)
			}
			if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "Uid:" && fields[1] == fmt.Sprint(uid) {
				found = append(found, e.Name()+" "+name)
			}
		}
	}
	return found
}

// TestCommand runs a command as an exec.Cmd is run: its Env, Dir and
// standard files set on the Cmd, its exit status back as an ExitError.
func TestCommand(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			cmd, work := command(t, context.Background(), v, 210011, `
read line; echo "stdin: $line"
echo "uid: $(id -u) $(id -un)"
echo "host: $(hostname)"
echo "dir: $(pwd)"
echo "greeting: $GREETING"
echo "godebug: $GODEBUG"
env | grep -q SKIFF_SANDBOX && echo "wrapper variables leaked"
echo made > made.txt
echo "to stderr" >&2
exit 7`)
			cmd.Dir = work
			// GODEBUG=inittrace=1 makes a Go program, as the wrapper is,
			// print its init times: the command's environment must not be
			// the wrapper's.
			cmd.Env = append(cmd.Env, "GREETING=hello", "GODEBUG=inittrace=1")
			cmd.Stdin = strings.NewReader("from stdin\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 7 {
				t.Errorf("err = %v, want exit status 7\n%s%s", err, out, stderr.String())
			}
			for _, want := range []string{"stdin: from stdin", "uid: 210011 beta", "host: builder", "dir: " + work,
				"greeting: hello", "godebug: inittrace=1"} {
				if !strings.Contains(string(out), want+"\n") {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(string(out), "leaked") {
				t.Errorf("the command sees its wrapper's variables:\n%s", out)
			}
			if stderr.String() != "to stderr\n" {
				t.Errorf("stderr = %q, want only the command's (not the wrapper's init trace)", stderr.String())
			}
			info, err := os.Stat(filepath.Join(work, "made.txt"))
			if err != nil || info.Sys().(*syscall.Stat_t).Uid != 210011 {
				t.Errorf("the command did not write its file in the mounted directory as its user: %v", err)
			}
		})
	}
}

// TestCommandExitStatus: a command ended by a signal exits 128+N, one
// not found 127, and an exec.Cmd started unsealed fails.
func TestCommandExitStatus(t *testing.T) {
	v := versions(t)[0]
	cmd, _ := command(t, context.Background(), v, 210012, `kill -USR1 $$`)
	if err := cmd.Run(); exitCode(err) != 128+int(syscall.SIGUSR1) {
		t.Errorf("killed by SIGUSR1: %v, want exit status %d", err, 128+int(syscall.SIGUSR1))
	}

	cmd = isolate.Command(context.Background(), isolate.Spec{ID: fmt.Sprintf("test-cmd-%d-nf", os.Getpid()), Root: t.TempDir(),
		User: "beta", UID: 210012, Args: []string{"no-such-command"}, Cgroup: v})
	out, err := cmd.CombinedOutput()
	if exitCode(err) != 127 || !strings.Contains(string(out), "no-such-command") {
		t.Errorf("a command not found: %v, %q; want exit status 127 and a message", err, out)
	}

	cmd, _ = command(t, context.Background(), v, 210012, "true")
	if err := cmd.Cmd.Run(); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Errorf("an unsealed exec.Cmd ran: %v", err)
	}
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	return -1
}

// TestCommandCancel: cancelling the context ends every process of the
// sandbox, one that ignores SIGTERM included, and the command returns.
func TestCommandCancel(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			const uid = 210013
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd, _ := command(t, ctx, v, uid, `trap '' TERM; sleep 300 & (trap '' TERM; sleep 300) & echo ready; wait`)
			out := ready(t, cmd)
			cancel()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if exitCode(err) != 128+int(syscall.SIGKILL) {
					t.Errorf("err = %v, want exit status %d (killed after SIGTERM was ignored)", err, 128+int(syscall.SIGKILL))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled command did not end")
			}
			io.Copy(io.Discard, out)
			// The kernel ends the rest of a PID namespace after its first
			// process, not at the same instant.
			deadline := time.Now().Add(5 * time.Second)
			for len(processesOf(uid)) > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if ps := processesOf(uid); len(ps) > 0 {
				t.Errorf("processes left after the cancel: %v", ps)
			}
		})
	}
}

// ready starts cmd and waits for it to print "ready".
func ready(t *testing.T, cmd *isolate.Cmd) io.Reader {
	t.Helper()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(pipe)
	line, err := r.ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	return r
}

// TestCommandWrapperKilled: a wrapper killed outright takes its sandbox
// with it.
func TestCommandWrapperKilled(t *testing.T) {
	const uid = 210014
	cmd, _ := command(t, context.Background(), versions(t)[0], uid, `sleep 300 & echo ready; wait`)
	ready(t, cmd)
	if ps := processesOf(uid); len(ps) == 0 {
		t.Fatal("no process of the sandbox to see")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for len(processesOf(uid)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes outlived their killed wrapper: %v", processesOf(uid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommandsShareRoot: sandboxes may be put together in the same
// directory at once.
func TestCommandsShareRoot(t *testing.T) {
	v := versions(t)[0]
	root := t.TempDir()
	var cmds []*isolate.Cmd
	var outs []*bytes.Buffer
	for i := range 3 {
		id := fmt.Sprintf("test-share-%d-%d", os.Getpid(), i)
		t.Cleanup(func() { removeCgroup(id) })
		cmd := isolate.Command(context.Background(), isolate.Spec{ID: id, Root: root, User: "beta", UID: 210015,
			Hostname: fmt.Sprint("box-", i), Args: []string{"/bin/sh", "-c", "sleep 0.2; hostname; ls /"}, Cgroup: v})
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil || !strings.HasPrefix(outs[i].String(), fmt.Sprintf("box-%d\napp\n", i)) {
			t.Errorf("sandbox %d: %v\n%s", i, err, outs[i])
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the shared root directory holds %d entries on the host", len(entries))
	}
}

// TestCommandOutOfMemory: the wrapper says when the sandbox ran out of
// memory.
func TestCommandOutOfMemory(t *testing.T) {
	v := versions(t)[0]
	l := isolate.Limits{Memory: 64 << 20}
	limited(t, v, l)
	ids++
	id := fmt.Sprintf("test-cmd-%d-%d", os.Getpid(), ids)
	cmd := isolate.Command(context.Background(), isolate.Spec{ID: id, Root: t.TempDir(), User: "beta", UID: 210016,
		Args: []string{"/bin/sh", "-c", "head -c 512M /dev/zero | tail -n 1 >/dev/null"}, Cgroup: v, Limits: l})
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "out of memory") || !strings.Contains(string(out), "64 MiB") {
		t.Errorf("err = %v, output %q; want a failure that says out of memory", err, out)
	}
}
