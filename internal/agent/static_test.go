package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// countingDriver counts the processes it is asked to start.
type countingDriver struct {
	Exec
	starts atomic.Int32
}

func (d *countingDriver) Start(spec Spec) (Process, error) {
	d.starts.Add(1)
	return d.Exec.Start(spec)
}

func TestStaticSiteIsServedWithoutAProcess(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		paths map[string]string // path -> part of the body
	}{
		{"defaults", map[string]string{"index.html": "<h1>home</h1>"}, map[string]string{"/": "<h1>home</h1>"}},
		{"clean urls", map[string]string{
			"index.html": "<h1>home</h1>", "about.html": "<h1>about</h1>", ".skiff/static.json": `{"version": 1, "root": ".", "clean_urls": true}`,
		}, map[string]string{"/": "<h1>home</h1>", "/about": "<h1>about</h1>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := &countingDriver{}
			h := newHarnessFiles(t, Config{Driver: drv, StopGrace: 5 * time.Second, DrainDelay: 50 * time.Millisecond}, tc.files)
			h.updateRelease(func(r *skiff.Release) { r.HealthCheck = "/" })
			a := h.assign("s1", "web", skiff.StaticCommand)
			var inst skiff.Instance
			eventually(t, 10*time.Second, func() bool {
				inst, _ = h.instance("s1")
				if inst.State == skiff.StateCrashed {
					t.Fatalf("static instance crashed:\n%s", h.logs("web.1"))
				}
				return inst.State == skiff.StateUp
			})
			if inst.PID != 0 || inst.Addr == "" {
				t.Fatalf("static instance = %+v", inst)
			}
			for path, want := range tc.paths {
				if body, err := get("http://" + inst.Addr + path); err != nil || !strings.Contains(body, want) {
					t.Errorf("GET %s = %q, %v; want %q", path, body, err, want)
				}
			}
			resp, err := http.Get("http://" + inst.Addr + "/missing")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /missing = %d", resp.StatusCode)
			}
			// Requests show in the app's log; the health check's too.
			eventually(t, 5*time.Second, func() bool { return strings.Contains(h.logs("web.1"), "app[web.1]: GET /missing 404 ") })
			if logs := h.logs("web.1"); !strings.Contains(logs, "app[web.1]: GET / 200 ") {
				t.Errorf("no access line for /:\n%s", logs)
			}

			h.st.Assignments.Delete(context.Background(), a.Key())
			eventually(t, 10*time.Second, func() bool { _, ok := h.instance("s1"); return !ok })
			if _, err := get("http://" + inst.Addr + "/"); err == nil {
				t.Error("the site still answers after its assignment was deleted")
			}
			if logs := h.logs("web.1"); !strings.Contains(logs, "platform[web.1]: Process exited: stopped") {
				t.Errorf("logs:\n%s", logs)
			}
			if n := drv.starts.Load(); n != 0 {
				t.Errorf("the driver started %d processes", n)
			}
		})
	}
}

func TestStaticSiteWithABadConfigFailsToStart(t *testing.T) {
	h := newHarnessFiles(t, Config{}, map[string]string{"index.html": "hi", ".skiff/static.json": `{"version": 99}`})
	h.assign("s1", "web", skiff.StaticCommand)
	eventually(t, 10*time.Second, func() bool { i, _ := h.instance("s1"); return i.State == skiff.StateCrashed })
	if logs := h.logs("web.1"); !strings.Contains(logs, "platform[web.1]: Failed to start: serve static files: static: .skiff/static.json: format version 99") {
		t.Errorf("logs:\n%s", logs)
	}
}

// nopCloser is a log writer for tests of startServer.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestServerProcessStopsGracefullyOnSIGTERMAndAtOnceOnSIGKILL(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run("kill="+strconv.FormatBool(kill), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				io.WriteString(w, "done")
			})
			defer close(release)
			addr := freeAddr(t)
			var log strings.Builder
			p, err := startServer(h, addr, nopCloser{&log}, nopCloser{io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				body string
				err  error
			}
			got := make(chan result, 1)
			go func() { b, err := get("http://" + addr + "/slow"); got <- result{b, err} }()
			<-entered

			p.Signal(syscall.SIGTERM)
			select {
			case <-p.Done():
				t.Fatal("stopped with a request under way")
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				t.Error("still accepting connections after SIGTERM")
			}
			if kill {
				p.Signal(syscall.SIGKILL)
				if r := <-got; r.err == nil {
					t.Errorf("request finished after SIGKILL: %q", r.body)
				}
			} else {
				release <- struct{}{}
				if r := <-got; r.err != nil || r.body != "done" {
					t.Errorf("request under way = %q, %v", r.body, r.err)
				}
			}
			select {
			case <-p.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("not stopped")
			}
			if p.ExitReason() != "stopped" || p.PID() != 0 {
				t.Errorf("exit reason %q, pid %d", p.ExitReason(), p.PID())
			}
			if !kill && !strings.HasPrefix(log.String(), "GET /slow 200 4B ") {
				t.Errorf("access log %q", log.String())
			}
		})
	}
}
