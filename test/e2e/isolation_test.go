package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostileApps runs two apps under the isolated driver and has each
// try what an app must not do to the other or to the platform.
func TestHostileApps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the isolated driver needs root")
	}
	s := startServer(t, "--driver", "isolated", "--instance-memory", strconv.Itoa(128<<20))
	for _, name := range []string{"alpha", "beta"} {
		s.ok("apps", "create", name)
		s.ok("deploy", app(t, "hostile", nil), "-a", name)
		s.waitFor(host(name), "hostile "+name)
	}
	try := func(app, path string) (int, string) {
		t.Helper()
		code, body, err := s.get(host(app), path)
		if err != nil {
			t.Fatalf("%s%s: %v", app, path, err)
		}
		return code, strings.TrimSpace(body)
	}
	if code, body := try("beta", "/write"); code != 200 {
		t.Fatalf("beta could not write its own files: %s", body)
	}
	// beta's files in its home and /tmp, at their paths in beta's
	// sandbox and through /proc on the host (where they do exist), and
	// the platform's data directory.
	betaPIDs := pidsOf(t, "beta")
	if len(betaPIDs) == 0 {
		t.Fatal("no processes of beta found on the host")
	}
	paths := []string{"/home/beta/secret.txt", "/tmp/secret.txt", filepath.Join(s.data, "admin.token"), filepath.Join(s.data, "bus", "jetstream")}
	for _, pid := range betaPIDs {
		p := "/proc/" + strconv.Itoa(pid) + "/root/home/beta/secret.txt"
		if b, err := os.ReadFile(p); err != nil || string(b) != "secret of beta" {
			t.Fatalf("the host cannot find beta's file at %s: %q %v", p, b, err)
		}
		paths = append(paths, p, "/proc/"+strconv.Itoa(pid)+"/root/tmp/secret.txt")
	}
	for _, p := range paths {
		if code, body := try("alpha", "/read?path="+p); code == 200 || strings.Contains(body, "secret of beta") {
			t.Errorf("alpha read %s: %s", p, body)
		}
	}
	if code, body := try("beta", "/read?path=/tmp/secret.txt"); code != 200 || body != "secret of beta" {
		t.Errorf("beta cannot read its own /tmp: %d %s", code, body)
	}

	// alpha sees only its own processes, and cannot signal beta's.
	_, seen := try("alpha", "/pids")
	if n := len(strings.Fields(seen)); n > 4 {
		t.Errorf("alpha sees %d processes: %s", n, seen)
	}
	for _, pid := range betaPIDs {
		try("alpha", "/kill?pid="+strconv.Itoa(pid))
	}
	s.waitFor(host("beta"), "hostile beta")
	if ps := s.ok("ps", "-a", "beta"); !strings.Contains(ps, "up") || strings.Contains(ps, "last exited") {
		t.Errorf("beta was hurt:\n%s", ps)
	}

	// beta allocating past its limit is killed and restarted while alpha
	// keeps serving.
	stop := s.load(2, host("alpha"), "hostile alpha")
	try("beta", "/alloc?mb=512")
	eventually(t, 20*time.Second, "beta to be restarted after running out of memory", func() bool {
		return strings.Contains(s.ok("ps", "-a", "beta"), "last exited: out of memory")
	})
	s.waitFor(host("beta"), "hostile beta")
	if ok, failed, first := stop(); failed > 0 || ok == 0 {
		t.Errorf("alpha failed %d of %d requests while beta ran out of memory: %s", failed, ok+failed, first)
	}
	t.Logf("beta's processes %v; alpha saw %s; after running out of memory:\n%s", betaPIDs, seen, s.ok("ps", "-a", "beta"))
	if logs := s.ok("logs", "-a", "beta", "-n", "200"); !strings.Contains(logs, "Process exited: out of memory") {
		t.Errorf("beta's logs:\n%s", logs)
	}

	// A fork bomb in alpha stops at its PIDs limit while beta keeps
	// serving.
	stop = s.load(2, host("beta"), "hostile beta")
	try("alpha", "/forkbomb")
	time.Sleep(3 * time.Second)
	if ok, failed, first := stop(); failed > 0 || ok == 0 {
		t.Errorf("beta failed %d of %d requests during alpha's fork bomb: %s", failed, ok+failed, first)
	}
}

// pidsOf lists the host's processes that run as app's user: those of its
// sandbox but its init.
func pidsOf(t *testing.T, app string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains(string(env), "SKIFF_APP="+app+"\x00") && !strings.Contains(string(status), "Uid:\t0\t") {
			pids = append(pids, pid)
		}
	}
	return pids
}
