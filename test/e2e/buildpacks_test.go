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

// TestGoApp pushes a Go app in the shape of Heroku's go-getting-started
// (gin, templates, static files, Procfile "web: go-getting-started").
func TestGoApp(t *testing.T) {
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	outs, _ := pushTwice(t, s, key, "goapp", app(t, "goapp", nil), "main.go", "hello from go", "hola from go")
	for _, want := range []string{"Go app detected", "Built bin/go-getting-started", "downloading github.com/gin-gonic/gin"} {
		if !strings.Contains(outs[0], want) {
			t.Fatalf("first push lacks %q:\n%s", want, outs[0])
		}
	}
	if strings.Contains(outs[1], "downloading") {
		t.Fatalf("the second build downloaded modules again:\n%s", outs[1])
	}
	if code, body, _ := s.get(host("goapp"), "/static/main.css"); code != 200 || !strings.Contains(body, "font-family") {
		t.Fatalf("/static/main.css: %d %q", code, body)
	}
	if rels := s.ok("releases", "-a", "goapp", "--json"); !strings.Contains(rels, `"version": 2`) {
		t.Fatalf("releases: %s", rels)
	}
}

// TestHerokuGettingStarted pushes a Heroku getting-started app unchanged,
// from the git URL or directory in SKIFF_E2E_GETTING_STARTED (for example
// https://github.com/heroku/go-getting-started), and waits for its page.
// The build machines reach neither GitHub nor that module on the Go proxy,
// so the variable is unset there and TestGoApp covers the same shape.
func TestHerokuGettingStarted(t *testing.T) {
	src := os.Getenv("SKIFF_E2E_GETTING_STARTED")
	if src == "" {
		t.Skip("set SKIFF_E2E_GETTING_STARTED to a getting-started app's git URL or directory")
	}
	dir := filepath.Join(t.TempDir(), "app")
	mustGit(t, "", "/dev/null", "clone", "-q", src, dir)
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	s.ok("apps", "create", "getting-started")
	out := mustGit(t, dir, key, "push", "ssh://git@"+s.sshAddr+"/getting-started.git", "HEAD:main")
	s.waitFor(host("getting-started"), "<html")
	t.Logf("push:\n%s", out)
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
	// No app process runs for it, and the router serves its files itself
	// once it has the image.
	if ps := processesIn(s.data); len(ps) != 0 {
		t.Fatalf("a static site runs processes %v", ps)
	}
	eventually(t, 10*time.Second, "the router to serve the site", func() bool {
		s.get(host("site"), "/about")
		for _, line := range strings.Split(s.ok("logs", "-a", "site", "--source", "router"), "\n") {
			if strings.Contains(line, `path="/about"`) && strings.Contains(line, "dyno=router") {
				return true
			}
		}
		return false
	})
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

// v2Buildpack is a Heroku v2 buildpack for apps with a hello.txt: compile
// reads a config var from ENV_DIR, counts builds in CACHE_DIR and writes a
// .profile.d script that the web process needs at run time. It also says
// what it finds of the host: its name, and whether the server's data
// directory (PROBE_DATA in ENV_DIR) shows its keys or another app's cache.
var v2Buildpack = map[string]string{
	"bin/detect": "#!/bin/sh\n[ -f \"$1/hello.txt\" ] && echo Hello\n",
	"bin/compile": `#!/bin/sh
set -eu
BUILD_DIR=$1 CACHE_DIR=$2 ENV_DIR=$3
echo "-----> Installing hello"
echo build >> "$CACHE_DIR/count"
echo "       build number $(wc -l < "$CACHE_DIR/count" | tr -d ' ')"
DATA=$(cat "$ENV_DIR/PROBE_DATA")
echo "       probe: uid $(id -u) on $(hostname)"
if test -e "$DATA/admin.token"; then echo "       probe: admin.token seen"; fi
if test -e "$DATA/buildcache/other"; then echo "       probe: the cache of app other seen"; fi
mkdir -p "$BUILD_DIR/bin" "$BUILD_DIR/.profile.d"
echo "export HELLO_SUFFIX='$(cat "$ENV_DIR/SUFFIX")'" > "$BUILD_DIR/.profile.d/hello.sh"
cat > "$BUILD_DIR/bin/web" <<'WEB'
#!/bin/sh
exec python3 -c '
import http.server, os
body = ("%s %s release=%s\n" % (open("hello.txt").read().strip(), os.environ["HELLO_SUFFIX"], os.environ["SKIFF_RELEASE"])).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
'
WEB
chmod +x "$BUILD_DIR/bin/web"
`,
	"bin/release": "#!/bin/sh\necho '---'\necho 'default_process_types:'\necho '  web: bin/web'\n",
}

// TestHerokuV2Buildpack pushes an app built by a Heroku v2 buildpack named
// by its git URL in SKIFF_BUILDPACK, twice: the buildpack's cache dir
// persists between builds and its .profile.d script runs at start. As
// root, the build runs in a sandbox: of the data directory, it sees its
// own build and cache directories only.
func TestHerokuV2Buildpack(t *testing.T) {
	bp := t.TempDir()
	for name, content := range v2Buildpack {
		os.MkdirAll(filepath.Join(bp, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(bp, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustGit(t, bp, "/dev/null", "init", "-q", "-b", "main")
	commit(t, bp, "hello buildpack")
	// The build runs as the app's own user, which must be able to read it.
	for d := bp; d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	s := startServer(t)
	key := sshKey(t, s.home)
	s.ok("keys", "add")
	s.ok("apps", "create", "hello")
	s.ok("config", "set", "-a", "hello", "SKIFF_BUILDPACK=file://"+bp+"#main", "SUFFIX=and its profile", "PROBE_DATA="+s.data)
	os.MkdirAll(filepath.Join(s.data, "buildcache", "other"), 0o755)
	dir := t.TempDir()
	url := "ssh://git@" + s.sshAddr + "/hello.git"
	mustGit(t, dir, "/dev/null", "init", "-q", "-b", "main")
	for i, greeting := range []string{"hello from a buildpack", "hola from a buildpack"} {
		os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(greeting+"\n"), 0o644)
		commit(t, dir, greeting)
		out := mustGit(t, dir, key, "push", url, "main")
		for _, want := range []string{"Installing hello", fmt.Sprintf("build number %d", i+1)} {
			if !strings.Contains(out, want) {
				t.Fatalf("push %d lacks %q:\n%s", i+1, want, out)
			}
		}
		if os.Geteuid() == 0 {
			if strings.Contains(out, "probe: uid 0 ") || !strings.Contains(out, "on hello.build") || strings.Contains(out, "token seen") || strings.Contains(out, "other seen") {
				t.Fatalf("push %d: the build did not run in its sandbox:\n%s", i+1, out)
			}
		}
		s.waitFor(host("hello"), fmt.Sprintf("%s and its profile release=v%d", greeting, i+1))
	}
}
