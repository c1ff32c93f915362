package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/server"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a server.Run under way.
type running struct {
	out    *testkit.SyncBuffer
	api    string // base URL of the API, read from the output
	cancel context.CancelFunc
	done   chan error
}

// startServer runs a server on dir with every role, on loopback ports the
// kernel picks, and waits until it says how to log in.
func startServer(t *testing.T, dir string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{out: &testkit.SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	cfg := server.Config{
		DataDir:    dir,
		NodeName:   "test-node",
		APIAddr:    "127.0.0.1:0",
		RouterAddr: "127.0.0.1:0",
		SSHAddr:    "127.0.0.1:0",
		StopGrace:  time.Second,
		DrainDelay: -1,
		Out:        r.out,
	}
	go func() { r.done <- server.Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })

	login := regexp.MustCompile(`skiff login --api (http://127\.0\.0\.1:\d+) --token \$\(cat (\S+)\)`)
	eventually(t, 20*time.Second, "telling how to log in", func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("Run returned early: %v\noutput:\n%s", err, r.out)
		default:
		}
		m := login.FindStringSubmatch(r.out.String())
		if m == nil {
			return false
		}
		if want := filepath.Join(dir, "admin.token"); m[2] != want {
			t.Fatalf("output says the token is in %s, want %s\noutput:\n%s", m[2], want, r.out)
		}
		r.api = m[1]
		return true
	})
	return r
}

// stop cancels the server and checks that Run returns nil promptly. It is
// safe to call more than once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending")
	}
}

func (r *running) get(t *testing.T, path, token string, v any) int {
	t.Helper()
	req, err := http.NewRequest("GET", r.api+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return resp.StatusCode
}

func TestRun(t *testing.T) {
	dir := filepath.Join(reachable(t), "data")
	tokenPath := filepath.Join(dir, "admin.token")

	r := startServer(t, dir)
	var health struct {
		Status string          `json:"status"`
		Roles  map[string]bool `json:"roles"`
	}
	eventually(t, 20*time.Second, "healthy", func() bool {
		return r.get(t, "/healthz", "", &health) == http.StatusOK
	})
	for _, role := range server.AllRoles {
		if !health.Roles[role] {
			t.Errorf("healthz roles = %v, want %s true", health.Roles, role)
		}
	}
	if health.Status != "ok" {
		t.Errorf("healthz status = %q, want ok", health.Status)
	}

	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %#o, want 0600", tokenPath, mode)
	}
	first, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(first))
	if token == "" {
		t.Fatalf("%s is empty", tokenPath)
	}
	var who skiff.WhoAmI
	if code := r.get(t, "/v1/whoami", token, &who); code != http.StatusOK || !who.Admin {
		t.Fatalf("whoami with the admin token = %d %+v, want 200 and admin", code, who)
	}

	eventually(t, 5*time.Second, "saying it is ready", func() bool {
		return strings.Contains(r.out.String(), "Skiff is ready.")
	})
	out := r.out.String()
	for _, want := range []string{
		fmt.Sprintf("Created the admin API token in %s (mode 0600).", tokenPath),
		"Apps answer at http://NAME.localhost:", // Domain defaults to localhost
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q:\n%s", want, out)
		}
	}
	r.stop(t)

	// A second start on the same directory keeps the token, and the
	// token still works: it is in the bus's state, which survived.
	r = startServer(t, dir)
	second, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("%s changed on restart: %q, then %q", tokenPath, first, second)
	}
	if out := r.out.String(); strings.Contains(out, "Created the admin API token") {
		t.Errorf("second start says it created a token:\n%s", out)
	}
	who = skiff.WhoAmI{}
	if code := r.get(t, "/v1/whoami", token, &who); code != http.StatusOK || !who.Admin {
		t.Fatalf("whoami with the admin token after restart = %d %+v, want 200 and admin", code, who)
	}
	r.stop(t)
}

func TestRunRejectsBadConfig(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	tests := []struct {
		name string
		cfg  func(dir string) server.Config
		want string
	}{
		{
			name: "no data dir",
			cfg:  func(string) server.Config { return server.Config{} },
			want: "data directory is required",
		},
		{
			name: "unknown role",
			cfg:  func(dir string) server.Config { return server.Config{DataDir: dir, Roles: []string{"bus", "web"}} },
			want: `unknown role "web"`,
		},
		{
			name: "no bus role",
			cfg:  func(dir string) server.Config { return server.Config{DataDir: dir, Roles: []string{"api"}} },
			want: "give --join-token",
		},
		{
			name: "api port in use",
			cfg: func(dir string) server.Config {
				return server.Config{DataDir: dir, NodeName: "test-node", APIAddr: taken.Addr().String(),
					RouterAddr: "127.0.0.1:0", SSHAddr: "127.0.0.1:0"}
			},
			want: "api: listen on " + taken.Addr().String(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := server.Run(ctx, tt.cfg(reachable(t)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// reachable is a temporary directory that builds, which run as their app's
// user, can reach.
func reachable(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
