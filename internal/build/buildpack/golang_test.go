package buildpack

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// goProxy is a Go module proxy on loopback serving fixed modules, counting
// the requests it gets.
type goProxy struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
}

// testModule is one version of a module the proxy serves.
type testModule struct {
	path, version string
	files         map[string]string // must include go.mod
}

func startGoProxy(t *testing.T, mods ...testModule) *goProxy {
	t.Helper()
	p := &goProxy{}
	files := map[string][]byte{}
	versions := map[string][]string{}
	for _, m := range mods {
		base := "/" + m.path + "/@v/" + m.version
		files[base+".info"] = fmt.Appendf(nil, `{"Version":%q,"Time":"2024-01-02T03:04:05Z"}`, m.version)
		files[base+".mod"] = []byte(m.files["go.mod"])
		var zb bytes.Buffer
		zw := zip.NewWriter(&zb)
		for name, content := range m.files {
			w, err := zw.Create(m.path + "@" + m.version + "/" + name)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(content))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		files[base+".zip"] = zb.Bytes()
		versions[m.path] = append(versions[m.path], m.version)
	}
	for mod, vs := range versions {
		files["/"+mod+"/@v/list"] = []byte(strings.Join(vs, "\n") + "\n")
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests++
		p.mu.Unlock()
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *goProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
}

// writeTree writes files (slash-separated names) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// newBuild returns a build of a tree holding files, with its own sandbox
// home and the given cache.
func newBuild(t *testing.T, cache string, env map[string]string, files map[string]string) (*Build, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	home, tmp := t.TempDir(), t.TempDir()
	out := &bytes.Buffer{}
	return &Build{App: "demo", Dir: dir, CacheDir: cache, Env: env, Out: out, Sandbox: Direct{Home: home, Tmp: tmp}}, out
}

func wantFailed(t *testing.T, err error, message string) *skiff.Error {
	t.Helper()
	var serr *skiff.Error
	if !errors.As(err, &serr) || serr.Kind != skiff.KindFailed {
		t.Fatalf("err = %v (%T), want a skiff.Error of kind failed", err, err)
	}
	if !strings.Contains(serr.Message, message) {
		t.Fatalf("message = %q, want it to contain %q", serr.Message, message)
	}
	if serr.Hint == "" {
		t.Fatalf("error %q has no hint", serr.Message)
	}
	return serr
}

func TestGoDetect(t *testing.T) {
	dir := t.TempDir()
	if ok, err := Go().Detect(dir); ok || err != nil {
		t.Fatalf("empty dir: Detect = %v, %v", ok, err)
	}
	writeTree(t, dir, map[string]string{"go.mod": "module x\n"})
	if ok, err := Go().Detect(dir); !ok || err != nil {
		t.Fatalf("with go.mod: Detect = %v, %v", ok, err)
	}
	if Go().Name() != "go" {
		t.Fatalf("Name = %q", Go().Name())
	}
}

// TestGoCompile builds a module with a dependency from a proxy on
// loopback, then rebuilds it with the same cache, then builds a module
// that does not compile and one that needs a newer Go. The builds share
// one cache to keep the test fast: only the first compiles the runtime.
func TestGoCompile(t *testing.T) {
	needTool(t, "go")
	t.Parallel()
	proxy := startGoProxy(t, testModule{path: "example.com/greet", version: "v1.2.0", files: map[string]string{
		"go.mod":   "module example.com/greet\n\ngo 1.21\n",
		"greet.go": "package greet\n\n// Hello greets.\nfunc Hello() string { return \"hello from greet v1.2.0\" }\n",
	}})
	env := map[string]string{
		"GOPROXY": proxy.URL, "GOSUMDB": "off", "GONOSUMDB": "example.com", "GOFLAGS": "-mod=mod",
		"DATABASE_URL": "postgres://not-for-go",
	}
	app := map[string]string{
		"go.mod":           "module example.com/hello\n\ngo 1.21\n\nrequire example.com/greet v1.2.0\n",
		"main.go":          "package main\n\nimport (\n\t\"os\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { os.Stdout.WriteString(greet.Hello() + \"\\n\") }\n",
		"cmd/tool/main.go": "package main\n\nfunc main() { println(\"tool\") }\n",
		"lib/lib.go":       "package lib\n",
		"Procfile":         "web: hello\n",
	}
	cache := t.TempDir()
	ctx := context.Background()

	var first time.Duration
	t.Run("first build", func(t *testing.T) {
		b, out := newBuild(t, cache, env, app)
		start := time.Now()
		res, err := Go().Compile(ctx, b)
		first = time.Since(start)
		t.Logf("first build: %s\n%s", first, out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(filepath.Join(b.Dir, "bin", "hello")).Output()
		if err != nil || string(got) != "hello from greet v1.2.0\n" {
			t.Fatalf("bin/hello: %q, %v", got, err)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, "bin", "tool")); err != nil {
			t.Fatalf("cmd/tool not built: %v", err)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, "bin", "lib")); err == nil {
			t.Fatal("a non-main package was built into bin/")
		}
		if res.Processes != nil {
			t.Fatalf("two commands, yet default processes %v", res.Processes)
		}
		for _, want := range []string{"-----> Go app detected", "-----> Using go1.", "-----> Running: go build -trimpath -o bin/ example.com/hello example.com/hello/cmd/tool",
			"       Built bin/hello (", "       Built bin/tool ("} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if proxy.count() == 0 {
			t.Fatal("the dependency did not come from the test proxy")
		}
		// Everything the build wrote outside the tree is in CacheDir/go.
		entries, _ := os.ReadDir(cache)
		if len(entries) != 1 || entries[0].Name() != "go" {
			t.Fatalf("cache holds %v, want only go/", entries)
		}
	})

	t.Run("cached rebuild", func(t *testing.T) {
		before := proxy.count()
		b, out := newBuild(t, cache, env, app)
		start := time.Now()
		_, err := Go().Compile(ctx, b)
		took := time.Since(start)
		t.Logf("cached rebuild: %s (first: %s)\n%s", took, first, out)
		if err != nil {
			t.Fatal(err)
		}
		if n := proxy.count() - before; n != 0 {
			t.Fatalf("cached rebuild made %d proxy requests, want 0", n)
		}
		if strings.Contains(out.String(), "downloading") {
			t.Fatalf("cached rebuild downloaded modules:\n%s", out)
		}
	})

	t.Run("one main package is the web process", func(t *testing.T) {
		b, out := newBuild(t, cache, nil, map[string]string{
			"go.mod":  "module github.com/heroku/go-getting-started\n\ngo 1.21\n",
			"main.go": "package main\n\nfunc main() {}\n",
		})
		res, err := Go().Compile(ctx, b)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if res.Processes["web"] != "go-getting-started" || len(res.Processes) != 1 {
			t.Fatalf("processes = %v, want web: go-getting-started", res.Processes)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, "bin", "go-getting-started")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("vendored", func(t *testing.T) {
		// No proxy at all: the dependency comes from vendor/.
		b, out := newBuild(t, cache, map[string]string{"GOPROXY": "off"}, map[string]string{
			"go.mod":                            app["go.mod"],
			"main.go":                           app["main.go"],
			"vendor/modules.txt":                "# example.com/greet v1.2.0\n## explicit; go 1.21\nexample.com/greet\n",
			"vendor/example.com/greet/greet.go": "package greet\n\nfunc Hello() string { return \"hello from vendor\" }\n",
		})
		if _, err := Go().Compile(ctx, b); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out.String(), "       Using the vendor directory (-mod=vendor)\n") {
			t.Errorf("output does not say it uses vendor/:\n%s", out)
		}
		got, err := exec.Command(filepath.Join(b.Dir, "bin", "hello")).Output()
		if err != nil || string(got) != "hello from vendor\n" {
			t.Fatalf("bin/hello: %q, %v", got, err)
		}
	})

	t.Run("missing dependency", func(t *testing.T) {
		b, out := newBuild(t, cache, env, map[string]string{
			"go.mod":  "module example.com/needy\n\ngo 1.21\n\nrequire example.com/absent v1.0.0\n",
			"main.go": "package main\n\nimport \"example.com/absent\"\n\nfunc main() { absent.Do() }\n",
		})
		_, err := Go().Compile(ctx, b)
		wantFailed(t, err, "go build failed: a dependency could not be downloaded")
		if !strings.Contains(out.String(), "example.com/absent") {
			t.Fatalf("go's own error is not in the output:\n%s", out)
		}
	})

	t.Run("broken go.mod", func(t *testing.T) {
		b, out := newBuild(t, cache, nil, map[string]string{
			"go.mod":  "module example.com/broken\n\ngo 1.21\n\nrequire example.com/x\n",
			"main.go": "package main\n\nfunc main() {}\n",
		})
		_, err := Go().Compile(ctx, b)
		wantFailed(t, err, "go list failed")
		if !strings.Contains(out.String(), "go.mod:5") {
			t.Fatalf("go's own error is not in the output:\n%s", out)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		b, _ := newBuild(t, cache, env, app)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Go().Compile(cctx, b); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("compile error", func(t *testing.T) {
		b, out := newBuild(t, cache, nil, map[string]string{
			"go.mod":  "module example.com/broken\n\ngo 1.21\n",
			"main.go": "package main\n\nfunc main() {\n\tvar n int = \"seven\"\n\t_ = n\n}\n",
		})
		_, err := Go().Compile(ctx, b)
		serr := wantFailed(t, err, "go build failed")
		if serr.Hint != "fix the errors above and push again" {
			t.Errorf("hint = %q", serr.Hint)
		}
		if !strings.Contains(out.String(), "       ./main.go:4:") || !strings.Contains(out.String(), "cannot use \"seven\"") {
			t.Fatalf("the compiler's output is not in the build output:\n%s", out)
		}
	})

	t.Run("go.mod needs a newer go", func(t *testing.T) {
		b, out := newBuild(t, cache, nil, map[string]string{
			"go.mod":  "module example.com/future\n\ngo 1.99\n",
			"main.go": "package main\n\nfunc main() {}\n",
		})
		_, err := Go().Compile(ctx, b)
		serr := wantFailed(t, err, "go.mod requires go1.99, but this builder has go1.")
		if !strings.Contains(serr.Hint, "GOTOOLCHAIN=auto") {
			t.Errorf("hint = %q", serr.Hint)
		}
		if strings.Contains(out.String(), "Running: go build") {
			t.Fatalf("built anyway:\n%s", out)
		}
	})
}

func TestGoEnv(t *testing.T) {
	env := goEnv(map[string]string{
		"GOPROXY": "https://proxy.example", "GOFLAGS": "-tags=prod", "CGO_ENABLED": "0",
		"CGO_CFLAGS": "-O2", "GOOS": "windows", "SECRET": "x",
	}, "/cache/go", true)
	got := strings.Join(env, "\n")
	for _, want := range []string{"GOMODCACHE=/cache/go/mod", "GOCACHE=/cache/go/build", "GOPATH=/cache/go/path",
		"GOFLAGS=-tags=prod -modcacherw -mod=vendor", "GOTOOLCHAIN=local", "GOPROXY=https://proxy.example",
		"CGO_ENABLED=0", "CGO_CFLAGS=-O2"} {
		if !strings.Contains(got+"\n", want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, got)
		}
	}
	for _, bad := range []string{"GOOS", "SECRET"} {
		if strings.Contains(got, bad) {
			t.Errorf("env passes %s:\n%s", bad, got)
		}
	}
	env = goEnv(map[string]string{"GOTOOLCHAIN": "auto", "GOFLAGS": "-mod=mod"}, "/c", true)
	got = strings.Join(env, "\n")
	if strings.Contains(got, "GOTOOLCHAIN=local") || !strings.Contains(got, "GOTOOLCHAIN=auto") {
		t.Errorf("the app's GOTOOLCHAIN is not kept:\n%s", got)
	}
	if !strings.Contains(got, "GOFLAGS=-mod=mod -modcacherw\n") {
		t.Errorf("the app's -mod is overridden:\n%s", got)
	}
}

func TestCheckGoVersion(t *testing.T) {
	tests := []struct {
		name      string
		mod       string
		installed string
		toolchain string
		fail      bool
		note      string
	}{
		{name: "older", mod: "go 1.21", installed: "go1.26.8"},
		{name: "same minor", mod: "go 1.26", installed: "go1.26.8"},
		{name: "same patch", mod: "go 1.26.8", installed: "go1.26.8"},
		{name: "newer patch", mod: "go 1.26.9", installed: "go1.26.8", fail: true},
		{name: "newer minor", mod: "go 1.27", installed: "go1.26.8", fail: true},
		{name: "rc of the next", mod: "go 1.27rc1", installed: "go1.26.8", fail: true},
		{name: "newer, GOTOOLCHAIN=auto", mod: "go 1.27", installed: "go1.26.8", toolchain: "auto"},
		{name: "newer, GOTOOLCHAIN=local", mod: "go 1.27", installed: "go1.26.8", toolchain: "local", fail: true},
		{name: "devel toolchain", mod: "go 1.27", installed: "devel go1.27-abcdef"},
		{name: "toolchain line newer", mod: "go 1.22\ntoolchain go1.27.1", installed: "go1.26.8", note: "go.mod prefers go1.27.1"},
		{name: "toolchain line older", mod: "go 1.22\ntoolchain go1.23.1", installed: "go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod, err := parseGoMod([]byte("module x\n\n" + tt.mod + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = checkGoVersion(mod, tt.installed, tt.toolchain, &out)
			if tt.fail {
				wantFailed(t, err, "but this builder has "+tt.installed)
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.note == "" && out.Len() > 0 || !strings.Contains(out.String(), tt.note) {
				t.Fatalf("output %q, want %q", out.String(), tt.note)
			}
		})
	}
}

func TestParseGoMod(t *testing.T) {
	mod, err := parseGoMod([]byte(`// +heroku install ./cmd/... ./tools/x
module example.com/app // the app

go 1.22.3 // language
toolchain go1.23.0

require (
	go 1.99 // not a directive inside a block
	example.com/dep v1.0.0
)
`))
	if err != nil {
		t.Fatal(err)
	}
	if mod.goLine != "1.22.3" || mod.toolchain != "go1.23.0" || strings.Join(mod.install, " ") != "./cmd/... ./tools/x" {
		t.Fatalf("parsed %+v", mod)
	}
	_, err = parseGoMod([]byte("module x\ngo one.two\n"))
	wantFailed(t, err, `go.mod:2: invalid go version "one.two"`)
}

func TestGoExecName(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/heroku/go-getting-started": "go-getting-started",
		"example.com/app/cmd/worker":           "worker",
		"example.com/tool/v2":                  "tool",
		"example.com/tool/v1":                  "v1",
		"example.com/tool/v0":                  "v0",
		"hello":                                "hello",
		"v2":                                   "v2",
	} {
		if got := goExecName(in); got != want {
			t.Errorf("goExecName(%q) = %q, want %q", in, got, want)
		}
	}
}
