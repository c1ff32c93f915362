package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/pyindex"
)

// pushTwice pushes a test app with git, waits for it to answer want, then
// changes one line (old to new), pushes again and waits for the change.
// It returns both pushes' output and their times to first 200.
func pushTwice(t *testing.T, s *server, key, name, dir, file, old, new string) (outs [2]string, times [2]time.Duration) {
	t.Helper()
	s.ok("apps", "create", name)
	mustGit(t, dir, "/dev/null", "init", "-q", "-b", "main")
	commit(t, dir, "first")
	url := "ssh://git@" + s.sshAddr + "/" + name + ".git"
	for i, want := range []string{old, new} {
		if i == 1 {
			p := filepath.Join(dir, file)
			data, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644)
			commit(t, dir, "one line")
		}
		start := time.Now()
		outs[i] = mustGit(t, dir, key, "push", url, "main")
		s.waitFor(host(name), want+" release=v"+fmt.Sprint(i+1))
		times[i] = time.Since(start)
	}
	t.Logf("%s: first push to 200 %s, push after a one-line change %s", name, times[0].Round(time.Millisecond), times[1].Round(time.Millisecond))
	return outs, times
}

func TestGoApp(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	outs, _ := pushTwice(t, s, key, "goapp", app(t, "goapp", nil), "main.go", "hello from go", "hola from go")
	for _, want := range []string{"Go app detected", "Built bin/goapp", "downloading github.com/google/uuid"} {
		if !strings.Contains(outs[0], want) {
			t.Fatalf("first push lacks %q:\n%s", want, outs[0])
		}
	}
	if strings.Contains(outs[1], "downloading") {
		t.Fatalf("the second build downloaded modules again:\n%s", outs[1])
	}
	if rels := s.ok("releases", "-a", "goapp", "--json"); !strings.Contains(rels, `"version": 2`) {
		t.Fatalf("releases: %s", rels)
	}
}

func TestNodeApp(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	outs, _ := pushTwice(t, s, key, "nodeapp", app(t, "nodeapp", nil), "index.js", "hello from node", "hola from node")
	for _, want := range []string{"Node.js app detected", "npm install", "Procfile declares types -> web"} {
		if !strings.Contains(outs[0], want) {
			t.Fatalf("first push lacks %q:\n%s", want, outs[0])
		}
	}
	// npm's cache is kept for the app between builds.
	if entries, err := os.ReadDir(filepath.Join(s.data, "buildcache", "nodeapp", "nodejs", "npm", "_cacache")); err != nil || len(entries) == 0 {
		t.Fatalf("no npm cache kept for the app: %v", err)
	}
}

func TestPythonApp(t *testing.T) {
	ix := pyindex.Serve(pyindex.Package{Name: "skiffgreet", Version: "1.0",
		Files: map[string]string{"skiffgreet/__init__.py": "def greet():\n    return 'greeted'\n"}})
	t.Cleanup(ix.Close)
	index := ix.URL()
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	dir := app(t, "pydeps", nil)
	mustGit(t, dir, "/dev/null", "init", "-q", "-b", "main")
	commit(t, dir, "first")
	s.ok("apps", "create", "pydeps")
	s.ok("config", "set", "-a", "pydeps", "PIP_INDEX_URL="+index)
	url := "ssh://git@" + s.sshAddr + "/pydeps.git"
	start := time.Now()
	out := mustGit(t, dir, key, "push", url, "main")
	s.waitFor(host("pydeps"), "hello from python greeted release=v1")
	first := time.Since(start)
	if !strings.Contains(out, "skiffgreet") {
		t.Fatalf("first push did not install the requirement:\n%s", out)
	}
	seen := ix.Requests()
	os.WriteFile(filepath.Join(dir, "server.py"), bytes.Replace(must(os.ReadFile(filepath.Join(dir, "server.py"))), []byte("hello from"), []byte("hola from"), 1), 0o644)
	commit(t, dir, "one line")
	start = time.Now()
	out = mustGit(t, dir, key, "push", url, "main")
	s.waitFor(host("pydeps"), "hola from python greeted release=v2")
	t.Logf("pydeps: first push to 200 %s, push after a one-line change %s", first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "reusing the cached virtualenv") || ix.Requests() != seen {
		t.Fatalf("the second build did not reuse the virtualenv (index requests %d then %d):\n%s", seen, ix.Requests(), out)
	}
}

func TestStaticSite(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	s.ok("apps", "create", "site")
	dir := app(t, "static", nil)
	mustGit(t, dir, "/dev/null", "init", "-q", "-b", "main")
	commit(t, dir, "first")
	mustGit(t, dir, key, "push", "ssh://git@"+s.sshAddr+"/site.git", "main")
	s.waitFor(host("site"), "static home")
	if code, body, _ := s.get(host("site"), "/about"); code != 200 || !strings.Contains(body, "static about") {
		t.Fatalf("/about: %d %q", code, body)
	}
	if code, _, _ := s.get(host("site"), "/missing"); code != 404 {
		t.Fatalf("/missing: %d", code)
	}
	// No app process runs for it.
	if ps := processesIn(s.data); len(ps) != 0 {
		t.Fatalf("a static site runs processes %v", ps)
	}
}

// TestUnchangedPushReusesTheImage pushes the same tree twice: the second
// build reuses the first image without building.
func TestUnchangedPushReusesTheImage(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "same")
	dir := app(t, "static", nil)
	s.ok("deploy", dir, "-a", "same")
	out := s.ok("deploy", dir, "-a", "same")
	if !strings.Contains(out, "reusing its image") || strings.Contains(out, "Compressing") {
		t.Fatalf("second deploy of the same tree:\n%s", out)
	}
	s.waitFor(host("same"), "static home")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
