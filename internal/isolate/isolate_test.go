package isolate_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/isolate"
)

func TestMain(m *testing.M) {
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// versions are the cgroup versions the tests run on: each that the host
// has mounted.
func versions(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root")
	}
	var vs []string
	for _, v := range []string{"v1", "v2"} {
		if _, err := os.Stat(map[string]string{"v1": "/sys/fs/cgroup/memory", "v2": "/sys/fs/cgroup/cgroup.controllers"}[v]); err == nil {
			vs = append(vs, v)
		} else if v == "v2" {
			if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
				vs = append(vs, v)
			}
		}
	}
	if len(vs) == 0 {
		t.Skip("no cgroups mounted")
	}
	return vs
}

var ids int

// run runs script in a new sandbox on cgroup version v, with spec
// changed by opt, and returns its output and result.
func run(t *testing.T, v, script string, opt func(*isolate.Spec)) (string, isolate.Result) {
	t.Helper()
	s, output := start(t, v, script, opt)
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		s.Signal(syscall.SIGKILL)
		t.Fatalf("the sandbox did not end:\n%s", output())
	}
	return output(), s.Result()
}

// start starts script in a new sandbox; output returns what it printed,
// once it has ended.
func start(t *testing.T, v, script string, opt func(*isolate.Spec)) (s *isolate.Sandbox, output func() string) {
	t.Helper()
	ids++
	dir := t.TempDir()
	image := filepath.Join(dir, "image")
	os.Mkdir(image, 0o755)
	os.WriteFile(filepath.Join(image, "hello.txt"), []byte("hello from the image\n"), 0o644)
	os.Mkdir(filepath.Join(dir, "root"), 0o700)
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	spec := isolate.Spec{
		ID:     fmt.Sprintf("test-%d-%d", os.Getpid(), ids),
		Root:   filepath.Join(dir, "root"),
		Image:  image,
		User:   "alpha",
		UID:    210001,
		Args:   []string{"/bin/sh", "-c", script},
		Env:    []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/alpha"},
		Cgroup: v,
		Stdout: outW, Stderr: outW,
	}
	if opt != nil {
		opt(&spec)
	}
	s, err = isolate.Start(spec)
	outW.Close()
	if err != nil {
		outR.Close()
		t.Fatal(err)
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		out.ReadFrom(outR)
		outR.Close()
		close(copied)
	}()
	t.Cleanup(func() {
		s.Signal(syscall.SIGKILL)
		<-s.Done()
	})
	return s, func() string {
		<-s.Done()
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
			t.Error("the sandbox's output is still open after it ended")
		}
		return out.String()
	}
}

// TestSandbox checks what a command sees in its sandbox.
func TestSandbox(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "platform-secret")
	os.WriteFile(secret, []byte("s3cret"), 0o644)
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			script := `
echo "user $(id -un) $(id -u) $(id -gn)"
echo "host $(hostname)"
echo "pid $$"
echo "root $(ls / | tr '\n' ' ')"
cat /app/hello.txt
touch /app/new 2>/dev/null && echo "image writable"
echo x > /tmp/t && echo "tmp writable"
echo x > ~/h && echo "home writable"
touch /etc/x 2>/dev/null && echo "etc writable"
test -e ` + secret + ` && echo "secret visible"
echo "procs $(ls /proc | grep -c '^[0-9]')"
cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)' | tr -s '\t ' ' '
exit 3`
			out, res := run(t, v, script, func(s *isolate.Spec) { s.Hostname = "web-1" })
			for _, want := range []string{"user alpha 210001 alpha", "host web-1",
				"root app bin dev etc home lib lib64 proc sbin tmp usr", "hello from the image",
				"tmp writable", "home writable", "CapEff: 0000000000000000", "NoNewPrivs: 1"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range []string{"image writable", "etc writable", "secret visible"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s:\n%s", bad, out)
				}
			}
			// init, sh, a subshell, ls and grep: the sandbox shows its own
			// processes only, numbered from 1 (after init's threads).
			var pid, procs int
			for _, line := range strings.Split(out, "\n") {
				fmt.Sscanf(line, "pid %d", &pid)
				fmt.Sscanf(line, "procs %d", &procs)
			}
			if pid == 0 || pid > 32 || procs == 0 || procs > 5 {
				t.Errorf("pid %d, %d processes: processes of others are visible:\n%s", pid, procs, out)
			}
			if res.Code != 3 || res.Signal != 0 || res.Err != nil {
				t.Errorf("result %+v, want exit status 3", res)
			}
		})
	}
}

// limited skips a test of limits on cgroup version v when the host does
// not give that version the controllers it needs.
func limited(t *testing.T, v string, l isolate.Limits) {
	t.Helper()
	dir := t.TempDir()
	s, err := isolate.Start(isolate.Spec{ID: fmt.Sprintf("probe-%d-%d", os.Getpid(), ids), Root: dir, User: "alpha", UID: 210001,
		Args: []string{"/bin/true"}, Cgroup: v, Limits: l})
	ids++
	if err != nil {
		if strings.Contains(err.Error(), "controller is not on this host's cgroup v2 hierarchy") {
			t.Skipf("cgroup %s here: %v", v, err)
		}
		t.Fatal(err)
	}
	<-s.Done()
}

// hasController reports whether cgroup version v has controller here.
func hasController(v, controller string) bool {
	if v == "v1" {
		_, err := os.Stat("/sys/fs/cgroup/" + controller)
		return err == nil
	}
	for _, p := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.Contains(" "+strings.TrimSpace(string(b))+" ", " "+controller+" ")
		}
	}
	return false
}

// TestMemoryLimit: a process allocating past the limit is killed by the
// OOM killer, and the result says so.
func TestMemoryLimit(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			l := isolate.Limits{Memory: 64 << 20}
			limited(t, v, l)
			// tail keeps the whole line, which never ends, in memory.
			out, res := run(t, v, "head -c 512M /dev/zero | tail -n 1 >/dev/null; echo survived", func(s *isolate.Spec) { s.Limits = l })
			if !res.OOMKilled {
				t.Fatalf("not OOM-killed: %+v\n%s", res, out)
			}
			if res.MemoryPeak < 32<<20 || res.MemoryPeak > 64<<20+1<<20 {
				t.Errorf("peak memory %d, want near the 64 MiB limit", res.MemoryPeak)
			}
		})
	}
}

// TestPIDsLimit: a fork bomb stops at the limit, and SIGKILL ends it.
func TestPIDsLimit(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			l := isolate.Limits{PIDs: 64}
			limited(t, v, l)
			s, output := start(t, v, `bomb() { bomb | bomb & }; bomb; sleep 2; echo "still here"`, func(s *isolate.Spec) { s.Limits = l })
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
			}
			s.Signal(syscall.SIGKILL)
			out := output()
			if !strings.Contains(out, "fork") && !strings.Contains(out, "Resource temporarily unavailable") {
				t.Errorf("the fork bomb did not hit the limit:\n%.2000s", out)
			}
		})
	}
}

// TestSignals: SIGTERM reaches every process; one that ignores it is
// ended by SIGKILL.
func TestSignals(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			s, _ := start(t, v, `sleep 60 & sleep 60`, nil)
			s.Signal(syscall.SIGTERM)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("SIGTERM did not end the sandbox")
			}
			if res := s.Result(); res.Signal != syscall.SIGTERM {
				t.Errorf("result %+v, want killed by SIGTERM", res)
			}

			s, _ = start(t, v, `trap '' TERM; echo ready; sleep 60`, nil)
			time.Sleep(100 * time.Millisecond)
			s.Signal(syscall.SIGTERM)
			select {
			case <-s.Done():
				t.Fatal("a command ignoring SIGTERM ended")
			case <-time.After(300 * time.Millisecond):
			}
			s.Signal(syscall.SIGKILL)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("SIGKILL did not end the sandbox")
			}
			if res := s.Result(); res.Signal != syscall.SIGKILL {
				t.Errorf("result %+v, want killed by SIGKILL", res)
			}
		})
	}
}

// TestUsage: CPU time and memory are measured.
func TestUsage(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			// A fixed amount of work (about 0.3 s of CPU here), not a
			// wall-clock loop: on a loaded machine the loop gets less
			// CPU in the same wall time.
			_, res := run(t, v, `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`, nil)
			if res.CPU < 50*time.Millisecond || res.CPU > 10*time.Second {
				t.Errorf("CPU %s for 300,000 turns of a shell loop", res.CPU)
			}
			if res.MemoryPeak <= 0 && hasController(v, "memory") {
				t.Errorf("no peak memory measured: %+v", res.Usage)
			}
		})
	}
}

// TestReap: the processes a sandbox left in its cgroup are killed and the
// cgroup removed, as an agent does at start for what its last life left.
func TestReap(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v, func(t *testing.T) {
			var id string
			s, _ := start(t, v, `sleep 300 & sleep 300 & wait`, func(spec *isolate.Spec) { id = spec.ID })
			time.Sleep(300 * time.Millisecond) // the sleeps start
			killed, err := isolate.Reap(id)
			if err != nil || killed < 3 {
				t.Errorf("Reap: %d killed, %v; want init, sh and two sleeps", killed, err)
			}
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the sandbox outlived Reap")
			}
			for _, dir := range []string{"/sys/fs/cgroup/pids/skiff/" + id, "/sys/fs/cgroup/unified/skiff/" + id, "/sys/fs/cgroup/skiff/" + id} {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("%s is left", dir)
				}
			}
			if n, err := isolate.Reap(id); n != 0 || err != nil {
				t.Errorf("a second Reap: %d, %v", n, err)
			}
		})
	}
}
