package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// harness runs an agent on a real bus with one app image in the store.
type harness struct {
	t     *testing.T
	st    *store.Store
	ag    *Agent
	img   skiff.Image
	stop  context.CancelFunc
	done  chan error
	dir   string
	cache *image.Cache
}

const serverPy = `import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %s %s\n" % (os.environ["DYNO"], os.environ.get("GREETING", ""))).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
print("listening on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

// defaultFiles are the files of the harness's app image.
func defaultFiles() map[string]string {
	return map[string]string{
		"server.py":      serverPy,
		"ignore-term.sh": "trap '' TERM\necho ignoring TERM\nwhile true; do sleep 0.1; done\n",
	}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessFiles(t, cfg, defaultFiles())
}

// newHarnessFiles starts an agent whose app image holds files (path ->
// contents; paths ending in .sh or under a bin directory are executable).
func newHarnessFiles(t *testing.T, cfg Config, files map[string]string) *harness {
	t.Helper()
	nc := bustest.Start(t)
	box, _ := secret.New(make([]byte, secret.KeySize))
	st, err := store.Open(context.Background(), nc, box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, dir: t.TempDir()}

	src := t.TempDir()
	for name, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") || filepath.Base(filepath.Dir(name)) == "bin" {
			mode = 0o755
		}
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	imgPath := filepath.Join(h.dir, "img.squashfs")
	if err := image.Pack(context.Background(), src, imgPath); err != nil {
		t.Fatal(err)
	}
	digest, size, _ := image.Digest(imgPath)
	h.img = skiff.Image{Digest: digest, Size: size, Object: "app/" + digest[7:]}
	f, _ := os.Open(imgPath)
	if _, err := st.Slugs.Put(context.Background(), jetstream.ObjectMeta{Name: h.img.Object}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The agent's cache starts empty: it must fetch the image from the store.
	if h.cache, err = image.NewCache(filepath.Join(h.dir, "images")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apps.Put(context.Background(), "app", skiff.App{Name: "app", UID: testUID, Current: 1}); err != nil {
		t.Fatal(err)
	}
	sealed, _ := st.SealConfig(map[string]string{"GREETING": "hi"})
	if _, err := st.Releases.Put(context.Background(), skiff.ReleaseKey("app", 1),
		skiff.Release{App: "app", Version: 1, Image: h.img, ConfigSealed: sealed}); err != nil {
		t.Fatal(err)
	}

	cfg.Node, cfg.Dir, cfg.Images, cfg.Roles = "n1", filepath.Join(h.dir, "agent"), h.cache, []string{skiff.RoleAgent}
	if h.ag, err = New(cfg, st); err != nil {
		t.Fatal(err)
	}
	h.start()
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.ag.Run(ctx) }()
	h.t.Cleanup(func() { h.shutdown() })
	eventually(h.t, 10*time.Second, h.ag.Ready)
}

func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Error(err)
		}
	case <-time.After(20 * time.Second):
		h.t.Error("agent did not stop")
	}
}

func (h *harness) assign(id, proc, command string) skiff.Assignment {
	a := skiff.Assignment{ID: id, App: "app", Proc: proc, Index: 1, Release: 1, Node: "n1", Image: h.img, Command: command}
	if _, err := h.st.Assignments.Put(context.Background(), a.Key(), a); err != nil {
		h.t.Fatal(err)
	}
	return a
}

// updateRelease changes release v1 before an assignment names it.
func (h *harness) updateRelease(change func(*skiff.Release)) {
	h.t.Helper()
	rel, _, err := h.st.Release(context.Background(), "app", 1)
	if err != nil {
		h.t.Fatal(err)
	}
	change(&rel)
	if _, err := h.st.Releases.Put(context.Background(), skiff.ReleaseKey("app", 1), rel); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) instance(id string) (skiff.Instance, bool) {
	i, _, err := h.st.Instances.Get(context.Background(), skiff.InstanceKey("app", id))
	return i, err == nil
}

func (h *harness) logs(process string) string {
	var b strings.Builder
	h.st.ReadLogs(context.Background(), store.LogQuery{App: "app", Tail: 1000, Process: process}, func(l skiff.LogLine) error {
		fmt.Fprintf(&b, "%s[%s]: %s\n", l.Source, l.Process, l.Line)
		return nil
	})
	return b.String()
}

func eventually(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestWebInstanceRunsReportsUpAndStopsOnRetire(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			h := newHarness(t, Config{DrainDelay: 100 * time.Millisecond, StopGrace: 5 * time.Second, Driver: d})
			a := h.assign("w1", "web", "exec python3 -u server.py")

			var inst skiff.Instance
			eventually(t, 15*time.Second, func() bool { inst, _ = h.instance("w1"); return inst.State == skiff.StateUp })
			if inst.Addr == "" || inst.PID == 0 || inst.Node != "n1" {
				t.Fatalf("up instance = %+v", inst)
			}
			body, err := get("http://" + inst.Addr + "/")
			if err != nil || body != "hello from web.1 hi\n" {
				t.Fatalf("GET = %q, %v: want DYNO and config in the environment", body, err)
			}
			eventually(t, 5*time.Second, func() bool { return strings.Contains(h.logs("web.1"), "app[web.1]: listening on") })
			logs := h.logs("web.1")
			for _, want := range []string{"platform[web.1]: Starting process with command `exec python3 -u server.py`", "platform[web.1]: State changed from starting to up"} {
				if !strings.Contains(logs, want) {
					t.Fatalf("logs lack %q:\n%s", want, logs)
				}
			}

			h.st.Assignments.Delete(context.Background(), a.Key())
			eventually(t, 10*time.Second, func() bool { _, ok := h.instance("w1"); return !ok })
			if _, err := get("http://" + inst.Addr + "/"); err == nil {
				t.Fatal("the instance still answers after its assignment was deleted")
			}
			if !strings.Contains(h.logs("web.1"), "Stopping all processes with SIGTERM") {
				t.Fatal("no stop in the logs")
			}
		})
	}
}

func TestCrashedInstanceRestartsAndReportsCrashLoop(t *testing.T) {
	h := newHarness(t, Config{})
	h.assign("c1", "worker", "echo boom; exit 3")
	var inst skiff.Instance
	eventually(t, 20*time.Second, func() bool { inst, _ = h.instance("c1"); return inst.CrashLoop })
	if inst.State != skiff.StateCrashed || inst.Restarts < crashLoopAfter || inst.ExitReason != "exit status 3" {
		t.Fatalf("crash-looping instance = %+v", inst)
	}
	logs := h.logs("worker.1")
	if strings.Count(logs, "app[worker.1]: boom") < crashLoopAfter || !strings.Contains(logs, "Crash loop: worker.1") {
		t.Fatalf("logs:\n%s", logs)
	}
}

func TestStopKillsAProcessIgnoringSIGTERMAfterGrace(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			h := newHarness(t, Config{StopGrace: 500 * time.Millisecond, Driver: d})
			a := h.assign("t1", "worker", "exec bash ignore-term.sh")
			var inst skiff.Instance
			eventually(t, 10*time.Second, func() bool {
				inst, _ = h.instance("t1")
				return inst.State == skiff.StateUp && strings.Contains(h.logs("worker.1"), "ignoring TERM")
			})
			h.st.Assignments.Delete(context.Background(), a.Key())
			eventually(t, 10*time.Second, func() bool { _, ok := h.instance("t1"); return !ok })
			if processStart(inst.PID) != "" {
				t.Fatalf("process %d survives", inst.PID)
			}
			if logs := h.logs("worker.1"); !strings.Contains(logs, "stopping them with SIGKILL") || !strings.Contains(logs, "killed by signal 9 (SIGKILL)") {
				t.Fatalf("logs:\n%s", logs)
			}
		})
	}
}

func TestRestartedAgentKillsLeftoverProcesses(t *testing.T) {
	h := newHarness(t, Config{})
	h.assign("l1", "worker", "sleep 1000")
	var first skiff.Instance
	eventually(t, 10*time.Second, func() bool { first, _ = h.instance("l1"); return first.State == skiff.StateUp })

	// Simulate an agent that died without stopping its processes: a fresh
	// agent on the same directory must kill the leftover before it starts
	// the instance again.
	leftover := first.PID
	ag2, err := New(h.ag.cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	ag2.reap()
	eventually(t, 5*time.Second, func() bool { return processStart(leftover) == "" })
}

func TestLineWriterSplitsLines(t *testing.T) {
	var mu sync.Mutex
	var got []string
	w := &lineWriter{emit: func(b []byte) { mu.Lock(); got = append(got, string(b)); mu.Unlock() }}
	io.WriteString(w, "one\r\ntw")
	io.WriteString(w, "o\nthree")
	io.WriteString(w, strings.Repeat("x", maxLine+1))
	w.Close()
	if len(got) != 4 || got[0] != "one" || got[1] != "two" || len(got[2]) != maxLine || got[3] != "xxxxxx" {
		t.Fatalf("lines = %d %q", len(got), got[:2])
	}
}

// TestReapLeftovers: what an earlier life of the agent left running (found
// by its instance directory) is killed, with everything it started.
func TestReapLeftovers(t *testing.T) {
	for _, d := range drivers() {
		t.Run(d.Name(), func(t *testing.T) {
			h := newHarness(t, Config{Driver: d})
			dir := filepath.Join(h.ag.cfg.Dir, "instances", "left-"+d.Name())
			os.MkdirAll(dir, 0o700)
			proc, err := d.Start(Spec{ID: filepath.Base(dir), Dir: dir, Root: t.TempDir(), User: "app", UID: testUID,
				Command: "sleep 300 & exec sleep 301", Env: []string{"PATH=/usr/bin:/bin"}, Stdout: nopCloser{io.Discard}, Stderr: nopCloser{io.Discard}})
			if err != nil {
				t.Fatal(err)
			}
			writePidFile(filepath.Join(dir, "pid"), proc.PID())
			time.Sleep(200 * time.Millisecond)
			h.ag.reap()
			select {
			case <-proc.Done():
			case <-time.After(5 * time.Second):
				proc.Signal(syscall.SIGKILL)
				t.Fatal("the leftover process outlived reap")
			}
			if _, err := os.Stat(dir); err == nil {
				t.Error("the instance directory is left")
			}
		})
	}
}

// TestRunOnce: an assignment run once (the release phase) is not
// restarted; its instance reports exited with the exit code, until the
// assignment is deleted.
func TestRunOnce(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	for id, code := range map[string]int{"ok": 0, "bad": 3} {
		a := skiff.Assignment{ID: id, App: "app", Proc: skiff.ReleaseProcess, Index: 1, Release: 1, Node: "n1", Image: h.img,
			Command: fmt.Sprintf("echo migrating; exit %d", code), Once: true}
		if _, err := h.st.Assignments.Put(ctx, a.Key(), a); err != nil {
			t.Fatal(err)
		}
		var inst skiff.Instance
		eventually(t, 15*time.Second, func() bool { inst, _ = h.instance(id); return inst.State == skiff.StateExited })
		if inst.ExitCode != code || inst.Restarts != 0 {
			t.Fatalf("%s: %+v, want exit code %d and no restart", id, inst, code)
		}
		time.Sleep(300 * time.Millisecond)
		if again, _ := h.instance(id); again.State != skiff.StateExited || again.Restarts != 0 {
			t.Fatalf("%s ran again: %+v", id, again)
		}
		h.st.Assignments.Delete(ctx, a.Key())
		eventually(t, 10*time.Second, func() bool { _, ok := h.instance(id); return !ok })
	}
	if logs := h.logs("release.1"); strings.Count(logs, "app[release.1]: migrating") != 2 {
		t.Fatalf("logs:\n%s", logs)
	}
}
