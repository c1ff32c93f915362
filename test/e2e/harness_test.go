// Package e2e drives a real `skiff server`, built from this tree, through
// the real CLI and plain HTTP requests, as a user would.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/testkit"
)

// skiffBin is the binary built once for every test.
var skiffBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skiffBin = filepath.Join(dir, "skiff")
	build := exec.Command("go", "build", "-o", skiffBin, "../../cmd/skiff")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build skiff:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const domain = "skiff.test"

// server is a running `skiff server` with a logged-in CLI.
type server struct {
	t       *testing.T
	data    string
	home    string
	apiAddr string
	rtrAddr string
	sshAddr string
	flags   []string
	// netns, when set, is the network namespace (a host of a multi-host
	// test, netns_test.go) the server runs in.
	netns string
	// wait waits for the server to be up after it started (default:
	// healthy).
	wait   func()
	cmd    *exec.Cmd
	out    *testkit.SyncBuffer
	exited chan struct{}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort is a loopback address with a port nothing listens on, taken
// below the ephemeral range (32768 and up) and the agents' ports
// (20000-29999): a port of the ephemeral range may be taken by the local
// end of some connection by the time the server binds it.
// A port is handed out once per test process.
func freePort(t *testing.T) string {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		port := 10000 + rand.IntN(10000)
		if portsGiven[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			portsGiven[port] = true
			return addr
		}
	}
	t.Fatal("no free port in 10000-19999")
	return ""
}

// startServer runs skiff server on random loopback ports with a fresh data
// directory; extra flags are passed through.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	data := t.TempDir()
	// Builds run as their app's user, which must be able to reach the
	// data directory, as it can under /var/lib.
	os.Chmod(filepath.Dir(data), 0o711)
	s := &server{t: t, data: data, home: t.TempDir(), apiAddr: freePort(t), rtrAddr: freePort(t), sshAddr: freePort(t), flags: flags}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server output:\n%s", tail(s.out.String(), 150))
		}
	})
	token, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(s.data, "admin.token")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode = %v, %v; want 0600", info.Mode(), err)
	}
	s.ok("login", "--api", "http://"+s.apiAddr, "--token", strings.TrimSpace(string(token)))
	return s
}

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"server", "--data", s.data, "--api-addr", s.apiAddr, "--router-addr", s.rtrAddr, "--ssh-addr", s.sshAddr,
		"--domain", domain, "--node-name", "e2e", "--boot-timeout", "15s", "--drain-delay", "500ms",
		"--stop-grace", "5s", "--log-level", "debug"}, s.flags...)
	if s.wait == nil {
		s.wait = s.healthy
	}
	s.cmd = exec.Command(skiffBin, args...)
	if s.netns != "" {
		// nsenter enters the network namespace only, and execs the server
		// in its place: ip netns exec would also remount /sys, hiding
		// the cgroups the isolated driver needs.
		s.cmd = exec.Command("nsenter", append([]string{"--net=" + netnsPath(s.netns), "--", skiffBin}, args...)...)
	}
	if s.out == nil {
		s.out = &testkit.SyncBuffer{}
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.wait()
}

// healthy waits until the server's API says it is ready.
func (s *server) healthy() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.apiAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.exited:
			s.t.Fatalf("skiff server exited at start:\n%s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("skiff server not healthy within 60s:\n%s", tail(s.out.String(), 100))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(45 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		s.t.Errorf("skiff server did not stop within 45s of SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 && !s.t.Failed() {
		s.t.Errorf("skiff server exited with %d after SIGTERM:\n%s", code, tail(s.out.String(), 50))
	}
	s.cmd = nil
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// result is what one CLI run printed and how it exited.
type result struct {
	out, err string
	code     int
}

// cli runs the skiff CLI with the test's HOME, so it uses the login made
// at start.
func (s *server) cli(args ...string) result {
	return s.cliIn("", args...)
}

func (s *server) cliIn(dir string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+s.home, "XDG_CONFIG_HOME="+filepath.Join(s.home, ".config"),
		"SKIFF_API=", "SKIFF_TOKEN=", "SKIFF_APP=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{out: stdout.String(), err: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else if err != nil {
		s.t.Fatalf("skiff %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (s *server) ok(args ...string) string {
	s.t.Helper()
	r := s.cli(args...)
	if r.code != 0 {
		s.t.Fatalf("skiff %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// fails runs the CLI and checks it exits with code and says msg on stderr.
func (s *server) fails(code int, msg string, args ...string) result {
	s.t.Helper()
	r := s.cli(args...)
	if r.code != code || !strings.Contains(r.err, msg) {
		s.t.Fatalf("skiff %s: exit %d, stderr %q; want exit %d and %q\nstdout:\n%s", strings.Join(args, " "), r.code, r.err, code, msg, r.out)
	}
	return r
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get requests path from the router with the given Host.
func (s *server) get(host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+s.rtrAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls the app at host until its answer contains want.
func (s *server) waitFor(host, want string) string {
	s.t.Helper()
	var body string
	eventually(s.t, 30*time.Second, fmt.Sprintf("%s to answer %q", host, want), func() bool {
		code, b, err := s.get(host, "/")
		body = b
		return err == nil && code == 200 && strings.Contains(b, want)
	})
	return body
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// app copies a test app from testdata into a fresh directory, with files
// overridden or added by extra (name -> content).
func app(t *testing.T, name string, extra map[string]string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	for n, content := range extra {
		p := filepath.Join(dst, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func host(name string) string { return name + "." + domain }

// processesIn lists the processes whose working directory is under dir:
// the app processes of a server whose data directory is dir.
func processesIn(dir string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, dir+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// load keeps clients busy requesting / from host through the router until
// the returned stop is called; stop reports how many requests were made,
// how many failed (an error, or an answer without want), and the first
// failure.
func (s *server) load(clients int, host, want string) (stop func() (ok, failed int64, first string)) {
	done := make(chan struct{})
	var okN, failedN atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				code, body, err := s.get(host, "/")
				if err != nil || code != 200 || !strings.Contains(body, want) {
					failedN.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("code %d, err %v, body %q", code, err, body))
				} else {
					okN.Add(1)
				}
			}
		}()
	}
	return func() (int64, int64, string) {
		close(done)
		wg.Wait()
		first, _ := firstErr.Load().(string)
		return okN.Load(), failedN.Load(), first
	}
}
