package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/testkit"
)

// TestDeployConfigScaleRollback walks an app through the life the README
// promises: deploy, reach it at its hostname, change config, scale to two
// instances, look at logs and releases, roll back, add a custom domain.
func TestDeployConfigScaleRollback(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "hello")
	dir := app(t, "pyapp", nil)

	start := time.Now()
	out := s.ok("deploy", dir, "-a", "hello")
	for _, want := range []string{"Procfile declares types -> web, worker", "v1 deployed", "http://hello.skiff.test:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("deploy output lacks %q:\n%s", want, out)
		}
	}
	body := s.waitFor(host("hello"), "release=v1")
	t.Logf("deploy to first 200: %s", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"dyno=web.1", "host=hello.skiff.test", "xff=127.0.0.1"} {
		if !strings.Contains(body, want) {
			t.Fatalf("app saw %q, want %q", body, want)
		}
	}
	if code, body, _ := s.get("nobody.skiff.test", "/"); code != 404 || !strings.Contains(body, "No app is deployed at nobody.skiff.test") {
		t.Fatalf("unknown host: %d %q", code, body)
	}

	// Config: a new release, running with the new value.
	out = s.ok("config", "set", "-a", "hello", "GREETING=hola", "SECRET=x=y")
	if !strings.Contains(out, "v2") {
		t.Fatalf("config set output: %q", out)
	}
	s.waitFor(host("hello"), "release=v2 dyno=web.1 greeting=hola")
	if got := strings.TrimSpace(s.ok("config", "get", "-a", "hello", "SECRET")); got != "x=y" {
		t.Fatalf("config get SECRET = %q", got)
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(s.ok("config", "-a", "hello", "--json")), &cfg); err != nil || cfg["GREETING"] != "hola" {
		t.Fatalf("config --json = %v, %v", cfg, err)
	}

	// Scale: two web instances, both answering; a worker too.
	s.ok("scale", "-a", "hello", "web=2", "worker=1")
	seen := map[string]bool{}
	eventually(t, 30*time.Second, "both web instances to answer", func() bool {
		_, body, err := s.get(host("hello"), "/")
		if err == nil {
			for _, d := range []string{"dyno=web.1", "dyno=web.2"} {
				if strings.Contains(body, d) {
					seen[d] = true
				}
			}
		}
		return len(seen) == 2
	})
	var ps []struct {
		Name, State, Addr string
		Release           int
	}
	eventually(t, 20*time.Second, "ps to show web.1, web.2 and worker.1 up", func() bool {
		if err := json.Unmarshal([]byte(s.ok("ps", "-a", "hello", "--json")), &ps); err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, p := range ps {
			if p.State == "up" && p.Release == 2 {
				up++
			}
		}
		return up == 3 && len(ps) == 3
	})
	table := s.ok("ps", "-a", "hello")
	for _, want := range []string{"web.1", "web.2", "worker.1", "up", "v2", "e2e", "127.0.0.1:"} {
		if !strings.Contains(table, want) {
			t.Fatalf("ps lacks %q:\n%s", want, table)
		}
	}

	// Logs: app output with process names, and platform events.
	s.get(host("hello"), "/log")
	eventually(t, 10*time.Second, "logs to show the app's own lines", func() bool {
		return strings.Contains(s.ok("logs", "-a", "hello", "-n", "500"), "hello from the log endpoint")
	})
	logs := s.ok("logs", "-a", "hello", "-n", "500")
	for _, want := range []string{"app[web.", "]: hello from the log endpoint", "and a line on stderr", "app[worker.1]: worker up",
		"skiff[build]: Build started", "Release v1 deployed", "Scaled to web@2, worker@1", "Set GREETING, SECRET config vars",
		"State changed from starting to up"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
	if line := strings.SplitN(logs, "\n", 2)[0]; !strings.Contains(line, "T") || !strings.Contains(line, "Z ") {
		t.Fatalf("log line without a timestamp: %q", line)
	}
	web1 := s.ok("logs", "-a", "hello", "-n", "500", "--ps", "worker.1")
	if strings.Contains(web1, "app[web.") || !strings.Contains(web1, "worker up") {
		t.Fatalf("logs --ps worker.1:\n%s", web1)
	}
	if n := strings.Count(s.ok("logs", "-a", "hello", "-n", "3"), "\n"); n != 3 {
		t.Fatalf("logs -n 3 printed %d lines", n)
	}

	// Rollback to v1: its image and its config, as a new release.
	out = s.ok("rollback", "-a", "hello", "v1")
	if !strings.Contains(out, "v3") {
		t.Fatalf("rollback output: %q", out)
	}
	s.waitFor(host("hello"), "release=v3 dyno=web.")
	if _, body, _ := s.get(host("hello"), "/"); !strings.Contains(body, "greeting= ") {
		t.Fatalf("after rollback to v1 the app still has v2's config: %q", body)
	}
	s.fails(3, "GREETING", "config", "get", "-a", "hello", "GREETING")
	rels := s.ok("releases", "-a", "hello")
	for _, want := range []string{"v3", "Rollback to v1", "v2", "Set GREETING, SECRET config vars", "v1", "Deploy"} {
		if !strings.Contains(rels, want) {
			t.Fatalf("releases lack %q:\n%s", want, rels)
		}
	}

	// Custom domain.
	s.ok("domains", "add", "-a", "hello", "www.hello.example")
	s.waitFor("www.hello.example", "release=v3")
	if !strings.Contains(s.ok("domains", "-a", "hello"), "www.hello.example") {
		t.Fatal("domains does not list the domain")
	}
	s.ok("domains", "remove", "-a", "hello", "www.hello.example")
	eventually(t, 10*time.Second, "the removed domain to stop routing", func() bool {
		code, _, _ := s.get("www.hello.example", "/")
		return code == 404
	})

	// Destroy: the app stops answering and its processes go.
	s.fails(2, "--confirm", "apps", "destroy", "hello")
	s.ok("apps", "destroy", "hello", "--confirm", "hello")
	eventually(t, 20*time.Second, "the destroyed app to stop answering", func() bool {
		code, _, _ := s.get(host("hello"), "/")
		return code == 404
	})
	eventually(t, 20*time.Second, "the destroyed app's processes to exit", func() bool {
		return len(processesIn(s.data)) == 0
	})
}

// TestCrashAndRestart kills the app from inside and watches the agent bring
// it back, with the crash in ps and the logs.
func TestCrashAndRestart(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "crashy")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "crashy")
	s.waitFor(host("crashy"), "release=v1")
	s.get(host("crashy"), "/crash")
	var ps []struct {
		Name, State string
		Restarts    int
	}
	eventually(t, 20*time.Second, "web.1 to be up again after a restart", func() bool {
		json.Unmarshal([]byte(s.ok("ps", "-a", "crashy", "--json")), &ps)
		return len(ps) == 1 && ps[0].State == "up" && ps[0].Restarts == 1
	})
	s.waitFor(host("crashy"), "release=v1")
	logs := s.ok("logs", "-a", "crashy", "-n", "200")
	for _, want := range []string{"crashing on request", "Process exited: exit status 3", "State changed from up to crashed"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
}

// TestFailedDeploysKeepTheOldReleaseServing deploys good code, then three
// kinds of bad code, and checks the good code answers all along.
func TestFailedDeploysKeepTheOldReleaseServing(t *testing.T) {
	s := startServer(t, "--boot-timeout", "4s")
	s.ok("apps", "create", "steady")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "steady")
	s.waitFor(host("steady"), "release=v1")

	stop := s.load(1, host("steady"), "release=v1")
	cases := []struct {
		name, procfile, msg string
	}{
		{"crashes", "web: echo starting; exit 1\n", "web.1 crashed repeatedly"},
		{"never listens", "web: sleep 1000\n", "web.1 not up within 4s"},
		{"malformed Procfile", "web python3 server.py\n", "Procfile line 1"},
	}
	for _, c := range cases {
		r := s.fails(1, c.msg, "deploy", app(t, "pyapp", map[string]string{"Procfile": c.procfile}), "-a", "steady")
		if !strings.Contains(r.err+r.out, "hint") && !strings.Contains(r.err, "previous release keeps serving") && c.name != "malformed Procfile" {
			t.Errorf("%s: no hint: %s", c.name, r.err)
		}
	}
	if _, failed, first := stop(); failed != 0 {
		t.Fatalf("%d requests failed or reached a failed release while bad deploys were tried; first: %s", failed, first)
	}
	rels := s.ok("releases", "-a", "steady", "--json")
	var list []struct {
		Version int
		Status  string
		Current bool
	}
	if err := json.Unmarshal([]byte(rels), &list); err != nil {
		t.Fatal(err)
	}
	// v1 serves; v2 and v3 failed; the malformed Procfile made no release.
	if len(list) != 3 || !list[2].Current || list[0].Status != "failed" || list[1].Status != "failed" {
		t.Fatalf("releases = %+v", list)
	}
	s.waitFor(host("steady"), "release=v1")
}

// TestDeployUnderLoadLosesNoRequest keeps several clients busy through the
// router while the app is redeployed, reconfigured and restarted.
func TestDeployUnderLoadLosesNoRequest(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "busy")
	dir := app(t, "pyapp", nil)
	s.ok("deploy", dir, "-a", "busy")
	s.waitFor(host("busy"), "release=v1")

	stop := s.load(4, host("busy"), "release=v")
	s.ok("deploy", dir, "-a", "busy")
	s.waitFor(host("busy"), "release=v2")
	s.ok("config", "set", "-a", "busy", "GREETING=under-load")
	s.waitFor(host("busy"), "release=v3 dyno=web.1 greeting=under-load")
	s.ok("restart", "-a", "busy")
	time.Sleep(3 * time.Second) // the old instance drains and stops meanwhile
	ok, failed, first := stop()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed during deploys; first: %s", failed, failed+ok, first)
	}
	if ok < 100 {
		t.Fatalf("only %d requests were made", ok)
	}
	t.Logf("%d requests, none failed", ok)
}

// TestServerRestartBringsAppsBack stops the server with SIGTERM and starts
// it again on the same data: the app comes back as it was.
func TestServerRestartBringsAppsBack(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "durable")
	s.ok("deploy", app(t, "pyapp", nil), "-a", "durable")
	s.ok("config", "set", "-a", "durable", "GREETING=again")
	s.ok("scale", "-a", "durable", "web=2")
	s.waitFor(host("durable"), "greeting=again")
	eventually(t, 20*time.Second, "two instances", func() bool {
		return strings.Count(s.ok("ps", "-a", "durable"), " up ") == 2
	})

	s.stop()
	if left := processesIn(s.data); len(left) != 0 {
		t.Fatalf("app processes %v survive the server's shutdown", left)
	}
	if code, _, err := s.get(host("durable"), "/"); err == nil {
		t.Fatalf("the router still answers (%d) after shutdown", code)
	}
	s.start()
	s.waitFor(host("durable"), "release=v2 dyno=web.")
	eventually(t, 20*time.Second, "both instances back", func() bool {
		return strings.Count(s.ok("ps", "-a", "durable"), " up ") == 2
	})
	if !strings.Contains(s.ok("releases", "-a", "durable"), "v2") {
		t.Fatal("releases lost")
	}
}

// TestBadInput checks that each kind of bad input gets its own message and
// exit code, and that the running release keeps serving.
func TestBadInput(t *testing.T) {
	s := startServer(t, "--max-upload", "65536")
	s.ok("apps", "create", "guarded")
	dir := app(t, "pyapp", nil)
	s.ok("deploy", dir, "-a", "guarded")
	s.waitFor(host("guarded"), "release=v1")

	s.fails(2, "invalid", "apps", "create", "Not_Valid")
	s.fails(5, "already exists", "apps", "create", "guarded")
	s.fails(3, "no app named missing", "apps", "info", "missing")
	s.fails(3, "no app named missing", "deploy", dir, "-a", "missing")
	s.fails(2, `no process type "clock"`, "scale", "-a", "guarded", "clock=1")
	s.fails(2, "", "scale", "-a", "guarded", "web=-1")
	s.fails(2, "", "scale", "-a", "guarded", "web")
	s.fails(2, "", "config", "set", "-a", "guarded", "NOEQUALS")
	s.fails(2, "set by the platform", "config", "set", "-a", "guarded", "PORT=1")
	s.fails(2, "--confirm", "apps", "destroy", "guarded")

	// An upload with a link out of the app, and one over the size limit.
	evil := app(t, "pyapp", nil)
	if err := os.Symlink("/etc/passwd", filepath.Join(evil, "passwd")); err != nil {
		t.Fatal(err)
	}
	s.fails(2, "points outside the app", "deploy", evil, "-a", "guarded")
	big := app(t, "pyapp", map[string]string{"blob.bin": testkit.RandomText(200_000)})
	s.fails(2, "larger than the limit", "deploy", big, "-a", "guarded")

	// Wrong and missing tokens.
	r := s.cli("apps", "--token", "wrong-token")
	if r.code != 4 || !strings.Contains(r.err, "unknown API token") {
		t.Fatalf("wrong token: exit %d %q", r.code, r.err)
	}
	noLogin := *s
	noLogin.home = t.TempDir()
	if r := noLogin.cli("apps"); r.code != 4 || !strings.Contains(r.err, "skiff login") {
		t.Fatalf("no login: exit %d %q", r.code, r.err)
	}

	s.waitFor(host("guarded"), "release=v1")
	if rels := s.ok("releases", "-a", "guarded", "--json"); strings.Count(rels, `"version"`) != 1 {
		t.Fatalf("bad input made releases: %s", rels)
	}
}
