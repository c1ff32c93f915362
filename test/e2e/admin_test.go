package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deployForExport makes the state an export must carry: an app deployed,
// then given a config var (a second release) and a custom domain.
func deployForExport(t *testing.T, s *server) {
	t.Helper()
	s.ok("apps", "create", "hello")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "hello")
	s.ok("config", "set", "-a", "hello", "GREETING=hola")
	s.ok("domains", "add", "-a", "hello", "www.hello.example")
	s.waitFor(host("hello"), "release=v2 dyno=web.1 greeting=hola")
}

// exportFrom runs skiff admin export against s and stops s, as a move
// does; it returns the file and what the CLI showed of the app before.
func exportFrom(t *testing.T, s *server) (file, releases, config, oldToken string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "skiff.tar")
	start := time.Now()
	r := s.cli("admin", "export", "-o", file)
	if r.code != 0 || !strings.Contains(r.err, "Exported 1 app, 2 releases, 1 image") {
		t.Fatalf("admin export: exit %d\n%s%s", r.code, r.out, r.err)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", info, err)
	}
	t.Logf("export: %s in %s", strings.TrimSpace(strings.SplitN(r.err, "\n", 2)[0]), time.Since(start).Round(time.Millisecond))
	releases = s.ok("releases", "-a", "hello", "--json")
	config = s.ok("config", "-a", "hello", "--json")
	tok, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s.stop()
	return file, releases, config, strings.TrimSpace(string(tok))
}

// importInto runs skiff admin import against s and checks that the app
// serves there as it did, with the same releases and config, and that
// both installations' admin tokens work.
func importInto(t *testing.T, s *server, file, releases, config, oldToken string) {
	t.Helper()
	start := time.Now()
	out := s.ok("admin", "import", file)
	if !strings.Contains(out, "Imported 1 app, 2 releases, 1 image") || !strings.Contains(out, "Apps: hello.") {
		t.Fatalf("admin import said:\n%s", out)
	}
	s.waitFor(host("hello"), "release=v2 dyno=web.1 greeting=hola")
	t.Logf("import to first 200: %s", time.Since(start).Round(time.Millisecond))
	s.waitFor("www.hello.example", "greeting=hola")
	if got := s.ok("releases", "-a", "hello", "--json"); got != releases {
		t.Fatalf("releases after import:\n%s\nwant:\n%s", got, releases)
	}
	if got := s.ok("config", "-a", "hello", "--json"); got != config {
		t.Fatalf("config after import:\n%s\nwant:\n%s", got, config)
	}
	eventually(t, 10*time.Second, "the app's logs to tell of the import", func() bool {
		return strings.Contains(s.ok("logs", "-a", "hello", "-n", "100"), "skiff[admin]: Imported from an export made")
	})
	// The target's own token (the CLI's login) and the source's.
	if out := s.ok("--token", oldToken, "apps"); !strings.Contains(out, "hello") {
		t.Fatalf("apps with the old installation's token:\n%s", out)
	}
	s.fails(5, "already has app hello", "admin", "import", file)
}

// TestAdminExportImport moves an installation to a fresh one: export,
// stop the old server, start a new one with a data directory (and so a
// secret key) of its own, import; the app serves again.
func TestAdminExportImport(t *testing.T) {
	old := startServer(t)
	deployForExport(t, old)
	file, releases, config, oldToken := exportFrom(t, old)

	fresh := startServer(t)
	importInto(t, fresh, file, releases, config, oldToken)
	if ps := fresh.ok("ps", "-a", "hello"); !strings.Contains(ps, "web.1") || !strings.Contains(ps, "up") {
		t.Fatalf("ps after import:\n%s", ps)
	}
}

// TestAdminSingleNodeToCluster is the path docs/cluster.md gives from one
// machine to a cluster: export the single node, start a cluster of three
// bus nodes (the first running every role), import into it.
func TestAdminSingleNodeToCluster(t *testing.T) {
	old := startServer(t)
	deployForExport(t, old)
	file, releases, config, oldToken := exportFrom(t, old)

	home := t.TempDir()
	start := func(i int, extra ...string) *server {
		s := &server{t: t, data: t.TempDir(), home: home, apiAddr: freePort(t), rtrAddr: freePort(t), sshAddr: freePort(t),
			flags: append([]string{"--node-name", fmt.Sprintf("n%d", i+1), "--bus-addr", freePort(t), "--cluster-addr", freePort(t)}, extra...),
			wait:  func() {}}
		os.Chmod(filepath.Dir(s.data), 0o711)
		s.start()
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("n%d output:\n%s", i+1, tail(s.out.String(), 60))
			}
		})
		return s
	}
	formed := time.Now()
	n1 := start(0)
	eventually(t, 20*time.Second, "the cluster's secrets", func() bool {
		_, err := os.Stat(filepath.Join(n1.data, "cluster", "cluster.json"))
		return err == nil
	})
	token := strings.TrimSpace(n1.ok("server", "join-token", "--data", n1.data))
	start(1, "--roles", "bus", "--join-token", token)
	start(2, "--roles", "bus", "--join-token", token)
	n1.healthy()
	t.Logf("cluster ready in %s", time.Since(formed).Round(time.Millisecond))
	admin, err := os.ReadFile(filepath.Join(n1.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	n1.ok("login", "--api", "http://"+n1.apiAddr, "--token", strings.TrimSpace(string(admin)))
	importInto(t, n1, file, releases, config, oldToken)
}
