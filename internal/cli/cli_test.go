package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// world is a real API handler over a real store, and a CLI environment
// (HOME, config dir) of the test's own.
type world struct {
	t     *testing.T
	url   string
	token string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := apitest.Start(t, api.Config{Domain: "apps.test", RouterPort: 80, MaxUpload: 1 << 20})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SKIFF_API", "")
	t.Setenv("SKIFF_TOKEN", "")
	t.Setenv("SKIFF_APP", "")
	return &world{t: t, url: srv.URL, token: srv.Token}
}

// run runs the CLI with args and returns its stdout, stderr and exit code.
func run(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := Main(NewRoot(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errOut, code := run(args...)
	if code != 0 {
		w.t.Fatalf("skiff %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (w *world) fails(code int, msg string, args ...string) string {
	w.t.Helper()
	out, errOut, got := run(args...)
	if got != code || !strings.Contains(errOut, msg) || !strings.HasPrefix(errOut, "error: ") {
		w.t.Fatalf("skiff %s: exit %d, stderr %q; want exit %d with %q\nstdout: %s", strings.Join(args, " "), got, errOut, code, msg, out)
	}
	return errOut
}

func (w *world) login() {
	w.t.Helper()
	w.ok("login", "--api", w.url, "--token", w.token)
}

func TestLoginSavesTheTokenPrivately(t *testing.T) {
	w := newWorld(t)
	w.fails(ExitUnauthorized, "skiff login", "apps")
	w.fails(ExitUnauthorized, "unknown API token", "login", "--api", w.url, "--token", "nope")
	w.fails(ExitUsage, "--api", "login", "--token", w.token)
	out := w.ok("login", "--api", w.url, "--token", w.token)
	if !strings.Contains(out, "Logged in to "+w.url+" as admin") {
		t.Fatalf("login said %q", out)
	}
	p := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "skiff", "config.json")
	info, err := os.Stat(p)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config file %s: %v %v", p, info, err)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), w.token) {
		t.Fatalf("config file lacks the token: %s", data)
	}
	// Logging in again replaces the file; flags and env override it.
	w.ok("login", "--api", w.url, "--token", w.token)
	if !strings.Contains(w.ok("apps"), "No apps yet") {
		t.Fatal("apps after login")
	}
	w.fails(ExitUnauthorized, "unknown API token", "apps", "--token", "wrong")
	t.Setenv("SKIFF_TOKEN", "wrong-too")
	w.fails(ExitUnauthorized, "unknown API token", "apps")
	t.Setenv("SKIFF_TOKEN", "")
	w.ok("logout")
	w.fails(ExitUnauthorized, "not logged in", "apps")
	// The token may come on stdin.
	var out2, errOut bytes.Buffer
	if code := Main(NewRoot(), []string{"login", "--api", w.url}, strings.NewReader(w.token+"\n"), &out2, &errOut); code != 0 {
		t.Fatalf("login with the token on stdin: %d %s", code, errOut.String())
	}
}

func TestUnreachableAPI(t *testing.T) {
	newWorld(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, errOut, code := run("apps", "--api", url, "--token", "x")
	if code != ExitFailed || !strings.Contains(errOut, "cannot reach the Skiff API at "+url) || !strings.Contains(errOut, "hint: ") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestAppsAndExitCodes(t *testing.T) {
	w := newWorld(t)
	w.login()
	if out := w.ok("apps", "create", "shop"); !strings.Contains(out, "Created shop: http://shop.apps.test") {
		t.Fatalf("create said %q", out)
	}
	w.fails(ExitConflict, "already exists", "apps", "create", "shop")
	w.fails(ExitUsage, "invalid", "apps", "create", "Bad_Name")
	w.fails(ExitUsage, "needs 1 more argument", "apps", "create")
	w.fails(ExitNotFound, "no app named ghost", "apps", "info", "ghost")
	w.fails(ExitUsage, "unknown command", "frobnicate")
	w.fails(ExitUsage, "unknown flag", "apps", "--frob")

	list := w.ok("apps")
	if !strings.Contains(list, "NAME") || !strings.Contains(list, "shop") {
		t.Fatalf("apps:\n%s", list)
	}
	var apps []skiff.AppInfo
	if err := json.Unmarshal([]byte(w.ok("apps", "--json")), &apps); err != nil || len(apps) != 1 || apps[0].Name != "shop" {
		t.Fatalf("apps --json: %v %v", apps, err)
	}
	info := w.ok("apps", "info", "shop")
	for _, want := range []string{"=== shop", "URL:", "http://shop.apps.test", "Release:", "none"} {
		if !strings.Contains(info, want) {
			t.Fatalf("info lacks %q:\n%s", want, info)
		}
	}
	w.fails(ExitUsage, "--confirm shop", "apps", "destroy", "shop")
	w.fails(ExitUsage, "--confirm shop", "apps", "destroy", "shop", "--confirm", "shoq")
	w.ok("apps", "destroy", "shop", "--confirm", "shop")
	w.fails(ExitNotFound, "no app named shop", "apps", "info", "shop")
}

func TestConfigDomainsAndScaleArguments(t *testing.T) {
	w := newWorld(t)
	w.login()
	w.ok("apps", "create", "shop")
	// Without a release, config changes are kept and make no release.
	if out := w.ok("config", "set", "-a", "shop", "A=1", "B=x=y"); !strings.Contains(out, "done") {
		t.Fatalf("config set said %q", out)
	}
	if got := w.ok("config", "get", "-a", "shop", "B"); got != "x=y\n" {
		t.Fatalf("config get B = %q", got)
	}
	w.fails(ExitNotFound, "no config var C", "config", "get", "-a", "shop", "C")
	w.fails(ExitUsage, `"NOEQUALS" is not KEY=VALUE`, "config", "set", "-a", "shop", "NOEQUALS")
	w.fails(ExitUsage, "set by the platform", "config", "set", "-a", "shop", "PORT=1")
	w.fails(ExitUsage, "takes names", "config", "unset", "-a", "shop", "A=1")
	w.ok("config", "unset", "-a", "shop", "A")
	var cfg map[string]string
	if err := json.Unmarshal([]byte(w.ok("config", "-a", "shop", "--json")), &cfg); err != nil || len(cfg) != 1 || cfg["B"] != "x=y" {
		t.Fatalf("config --json = %v %v", cfg, err)
	}
	if out := w.ok("config", "-a", "shop"); !strings.Contains(out, "B:") || !strings.Contains(out, "x=y") {
		t.Fatalf("config:\n%s", out)
	}

	w.ok("domains", "add", "-a", "shop", "www.shop.example")
	w.fails(ExitConflict, "", "domains", "add", "-a", "shop", "www.shop.example")
	if out := w.ok("domains", "-a", "shop"); !strings.Contains(out, "www.shop.example") {
		t.Fatalf("domains:\n%s", out)
	}
	w.ok("domains", "remove", "-a", "shop", "www.shop.example")
	w.fails(ExitNotFound, "", "domains", "remove", "-a", "shop", "www.shop.example")

	w.fails(ExitUsage, `"web" is not TYPE=N`, "scale", "-a", "shop", "web")
	w.fails(ExitUsage, "whole number", "scale", "-a", "shop", "web=-1")
	w.fails(ExitUsage, "whole number", "scale", "-a", "shop", "web=two")
	w.fails(ExitUsage, "deploy it first", "scale", "-a", "shop", "web=2")
	w.fails(ExitUsage, "invalid release", "rollback", "-a", "shop", "vx")
	w.fails(ExitUsage, "no running release", "rollback", "-a", "shop")
	if out := w.ok("releases", "-a", "shop"); !strings.Contains(out, "no releases yet") {
		t.Fatalf("releases:\n%s", out)
	}
	if out := w.ok("ps", "-a", "shop"); !strings.Contains(out, "no processes") {
		t.Fatalf("ps:\n%s", out)
	}
	w.fails(ExitUsage, "which app?", "ps")
	w.fails(ExitUsage, "cannot deploy", "deploy", filepath.Join(t.TempDir(), "missing"), "-a", "shop")
}

func TestAppFromGitRemoteAndEnv(t *testing.T) {
	w := newWorld(t)
	w.login()
	w.ok("apps", "create", "shop")
	w.ok("apps", "create", "blog")
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"remote", "add", "skiff", "ssh://git@127.0.0.1:2222/shop.git"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	if out := w.ok("apps", "info"); !strings.Contains(out, "=== shop") {
		t.Fatalf("app from the git remote:\n%s", out)
	}
	t.Setenv("SKIFF_APP", "blog")
	if out := w.ok("apps", "info"); !strings.Contains(out, "=== blog") {
		t.Fatalf("app from SKIFF_APP:\n%s", out)
	}
	if out := w.ok("releases", "-a", "shop"); !strings.Contains(out, "shop has no releases") {
		t.Fatalf("-a wins:\n%s", out)
	}
}

func TestAppFromRemote(t *testing.T) {
	for in, want := range map[string]string{
		"ssh://git@host:2222/shop.git":  "shop",
		"git@host:shop.git":             "shop",
		"ssh://git@host/shop":           "shop",
		"http://host:7070/git/shop.git": "shop",
		"https://host/shop.git/":        "shop",
	} {
		if got := appFromRemote(in); got != want {
			t.Errorf("appFromRemote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatLogLine(t *testing.T) {
	var l skiff.LogLine
	json.Unmarshal([]byte(`{"time":"2026-11-24T13:53:00.1234567+01:00","source":"platform","process":"build","line":"Build started"}`), &l)
	if got, want := FormatLogLine(l), "2026-11-24T12:53:00.123456Z skiff[build]: Build started"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
