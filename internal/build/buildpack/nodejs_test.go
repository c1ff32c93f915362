package buildpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// npmRegistry is an npm registry on loopback serving fixed packages,
// counting tarball downloads.
type npmRegistry struct {
	*httptest.Server
	mu       sync.Mutex
	tarballs int
}

// npmPackage is one version of a package the registry serves.
type npmPackage struct {
	name, version string
	files         map[string]string // besides package.json
}

func startNPMRegistry(t *testing.T, pkgs ...npmPackage) *npmRegistry {
	t.Helper()
	reg := &npmRegistry{}
	mux := http.NewServeMux()
	reg.Server = httptest.NewServer(mux)
	t.Cleanup(reg.Close)
	packuments := map[string]map[string]any{}
	for _, p := range pkgs {
		manifest := map[string]any{"name": p.name, "version": p.version, "main": "index.js"}
		tgz := npmTarball(t, manifest, p.files)
		sha1sum := sha1.Sum(tgz)
		sha512sum := sha512.Sum512(tgz)
		tarPath := "/" + p.name + "/-/" + p.name + "-" + p.version + ".tgz"
		mux.HandleFunc("GET "+tarPath, func(w http.ResponseWriter, r *http.Request) {
			reg.mu.Lock()
			reg.tarballs++
			reg.mu.Unlock()
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(tgz)
		})
		doc := packuments[p.name]
		if doc == nil {
			doc = map[string]any{"name": p.name, "dist-tags": map[string]string{}, "versions": map[string]any{}}
			packuments[p.name] = doc
		}
		version := map[string]any{}
		for k, v := range manifest {
			version[k] = v
		}
		version["dist"] = map[string]string{
			"tarball":   reg.URL + tarPath,
			"shasum":    hex.EncodeToString(sha1sum[:]),
			"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:]),
		}
		doc["versions"].(map[string]any)[p.version] = version
		doc["dist-tags"].(map[string]string)["latest"] = p.version
	}
	for name, doc := range packuments {
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(data)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"Not found"}`))
	})
	return reg
}

func (r *npmRegistry) tarballCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tarballs
}

// npmTarball packs a package as npm publishes it: a gzipped tar of
// package/…
func npmTarball(t *testing.T, manifest map[string]any, files map[string]string) []byte {
	t.Helper()
	pj, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"package.json": string(pj)}
	for k, v := range files {
		all[k] = v
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range all {
		hdr := &tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestNodejsDetect(t *testing.T) {
	dir := t.TempDir()
	if ok, err := Nodejs().Detect(dir); ok || err != nil {
		t.Fatalf("empty dir: Detect = %v, %v", ok, err)
	}
	writeTree(t, dir, map[string]string{"package.json": "{}"})
	if ok, err := Nodejs().Detect(dir); !ok || err != nil {
		t.Fatalf("with package.json: Detect = %v, %v", ok, err)
	}
	if Nodejs().Name() != "nodejs" {
		t.Fatalf("Name = %q", Nodejs().Name())
	}
}

// TestNodejsCompile installs an app without a lockfile, then installs it
// again from the lockfile the first build wrote, with the same cache, then
// fails on a dependency the registry does not have.
func TestNodejsCompile(t *testing.T) {
	needTool(t, "npm")
	t.Parallel()
	reg := startNPMRegistry(t,
		npmPackage{name: "greeting", version: "1.0.0", files: map[string]string{
			"index.js": "module.exports = () => 'hello from greeting';\n"}},
		npmPackage{name: "greeting", version: "1.1.0", files: map[string]string{
			"index.js": "module.exports = () => 'hello from greeting 1.1';\n"}},
		npmPackage{name: "buildtool", version: "2.0.0", files: map[string]string{
			"index.js": "module.exports = (s) => s.toUpperCase();\n"}},
	)
	env := map[string]string{"NPM_CONFIG_REGISTRY": reg.URL + "/", "NODE_ENV": "production", "GREETING_SUFFIX": "!"}
	pkgJSON := `{
  "name": "demo",
  "version": "1.0.0",
  "engines": {"node": ">=99"},
  "dependencies": {"greeting": "^1.0.0"},
  "devDependencies": {"buildtool": "2.0.0"},
  "scripts": {
    "build": "node build.js build",
    "start": "node server.js"
  }
}
`
	app := map[string]string{
		"package.json": pkgJSON,
		"build.js": `const fs = require('fs');
const up = require('buildtool');
const greet = require('greeting');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/out.txt', up(greet()) + process.env.GREETING_SUFFIX + ' (' + process.argv[2] + ')\n');
console.log('built dist/out.txt');
`,
		"server.js": "require('greeting');\n",
	}
	cache := t.TempDir()
	ctx := context.Background()
	var lockfile []byte

	var first time.Duration
	t.Run("install without lockfile", func(t *testing.T) {
		b, out := newBuild(t, cache, env, app)
		start := time.Now()
		res, err := Nodejs().Compile(ctx, b)
		first = time.Since(start)
		t.Logf("first build: %s\n%s", first, out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(b.Dir, "dist", "out.txt"))
		if err != nil || string(got) != "HELLO FROM GREETING 1.1! (build)\n" {
			t.Fatalf("dist/out.txt = %q, %v: the build script did not run with the dependencies and config", got, err)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, "node_modules", "greeting", "index.js")); err != nil {
			t.Fatalf("dependency not installed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(b.Dir, "node_modules", "buildtool")); !os.IsNotExist(err) {
			t.Fatalf("devDependency not pruned: %v", err)
		}
		if res.Processes["web"] != "npm start" {
			t.Fatalf("processes = %v, want web: npm start", res.Processes)
		}
		for _, want := range []string{"-----> Node.js app detected\n", "-----> Using node v", ", npm ",
			` !     package.json asks for node ">=99" (engines.node) but this builder has node v`,
			"-----> Installing dependencies (npm install)\n", "-----> Running: npm run build\n",
			"       built dist/out.txt\n", "-----> Pruning devDependencies\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if reg.tarballCount() != 2 {
			t.Errorf("registry served %d tarballs, want 2", reg.tarballCount())
		}
		lockfile, err = os.ReadFile(filepath.Join(b.Dir, "package-lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(cache)
		if len(entries) != 1 || entries[0].Name() != "nodejs" {
			t.Fatalf("cache holds %v, want only nodejs/", entries)
		}
	})

	t.Run("npm ci from the cache", func(t *testing.T) {
		if lockfile == nil {
			t.Skip("no lockfile from the first build")
		}
		before := reg.tarballCount()
		files := map[string]string{"package-lock.json": string(lockfile)}
		for k, v := range app {
			files[k] = v
		}
		// heroku-postbuild replaces build.
		files["package.json"] = strings.Replace(pkgJSON, `"scripts": {`, `"scripts": {
    "heroku-postbuild": "node build.js postbuild",`, 1)
		b, out := newBuild(t, cache, env, files)
		start := time.Now()
		_, err := Nodejs().Compile(ctx, b)
		took := time.Since(start)
		t.Logf("cached rebuild: %s\n%s", took, out)
		if err != nil {
			t.Fatal(err)
		}
		if n := reg.tarballCount() - before; n != 0 {
			t.Fatalf("the rebuild downloaded %d tarballs, want 0 (all in the cache)", n)
		}
		if !strings.Contains(out.String(), "-----> Installing dependencies (npm ci)\n") ||
			!strings.Contains(out.String(), "-----> Running: npm run heroku-postbuild\n") ||
			strings.Contains(out.String(), "npm run build") {
			t.Fatalf("want npm ci and heroku-postbuild instead of build:\n%s", out)
		}
		got, _ := os.ReadFile(filepath.Join(b.Dir, "dist", "out.txt"))
		if string(got) != "HELLO FROM GREETING 1.1! (postbuild)\n" {
			t.Fatalf("dist/out.txt = %q", got)
		}
	})

	t.Run("missing dependency", func(t *testing.T) {
		b, out := newBuild(t, t.TempDir(), env, map[string]string{
			"package.json": `{"name": "demo", "dependencies": {"no-such-package": "1.0.0"}}`,
		})
		_, err := Nodejs().Compile(ctx, b)
		wantFailed(t, err, "npm install failed: a dependency was not found in the registry")
		if !strings.Contains(out.String(), "no-such-package") {
			t.Fatalf("npm's own error is not in the output:\n%s", out)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		b, _ := newBuild(t, t.TempDir(), env, app)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Nodejs().Compile(cctx, b); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("lockfile out of sync", func(t *testing.T) {
		if lockfile == nil {
			t.Skip("no lockfile from the first build")
		}
		b, out := newBuild(t, t.TempDir(), env, map[string]string{
			"package.json":      strings.Replace(pkgJSON, `"greeting": "^1.0.0"`, `"greeting": "1.0.0"`, 1),
			"package-lock.json": string(lockfile),
		})
		_, err := Nodejs().Compile(ctx, b)
		serr := wantFailed(t, err, "npm ci failed: package-lock.json does not match package.json")
		if !strings.Contains(serr.Hint, "npm install") {
			t.Errorf("hint = %q\n%s", serr.Hint, out)
		}
	})
}

func TestNodejsInvalidPackageJSON(t *testing.T) {
	b, out := newBuild(t, t.TempDir(), nil, map[string]string{
		"package.json": "{\n  \"name\": \"demo\",\n  \"scripts\": {\"start\": \"node server.js\",}\n}\n",
	})
	b.Sandbox = failSandbox{t}
	_, err := Nodejs().Compile(context.Background(), b)
	serr := wantFailed(t, err, "package.json is not valid JSON")
	if !strings.Contains(serr.Error(), "line 3, column 41") {
		t.Fatalf("error %q does not say where", serr.Error())
	}
	if strings.Contains(out.String(), "Installing") {
		t.Fatalf("went on to install:\n%s", out)
	}
	_, err = parsePackageJSON([]byte(`["not", "an", "object"]`))
	wantFailed(t, err, "package.json is not valid JSON")
}

// failSandbox fails a test that runs a command.
type failSandbox struct{ t *testing.T }

func (s failSandbox) Command(ctx context.Context, name string, args ...string) *Cmd {
	s.t.Errorf("ran %s %v", name, args)
	return &Cmd{Cmd: exec.CommandContext(ctx, "false")}
}

func TestNodeBuildScript(t *testing.T) {
	for _, tt := range []struct {
		scripts map[string]string
		want    string
	}{
		{nil, ""},
		{map[string]string{"start": "node ."}, ""},
		{map[string]string{"build": "vite build"}, "build"},
		{map[string]string{"build": "vite build", "heroku-postbuild": "make"}, "heroku-postbuild"},
	} {
		if got := nodeBuildScript(tt.scripts); got != tt.want {
			t.Errorf("nodeBuildScript(%v) = %q, want %q", tt.scripts, got, tt.want)
		}
	}
}

func TestNodeSatisfies(t *testing.T) {
	for _, tt := range []struct {
		r, v      string
		ok, known bool
	}{
		{">=18", "v20.11.1", true, true},
		{">= 18.5.0", "v20.11.1", true, true},
		{">=22", "v20.11.1", false, true},
		{"20.x", "v20.11.1", true, true},
		{"18.x", "v20.11.1", false, true},
		{"^20", "v20.11.1", true, true},
		{"^20.1.0", "v20.11.1", true, true},
		{"^18.0.0", "v20.11.1", false, true},
		{"~20.11", "v20.11.1", true, true},
		{"20", "v20.11.1", true, true},
		{"22", "v20.11.1", false, true},
		{"18 || 20", "v20.11.1", true, true},
		{"16.x || 18.x", "v20.11.1", false, true},
		{"*", "v20.11.1", true, true},
		{"<21", "v20.11.1", false, false},
		{">=18 <21", "v20.11.1", false, false},
		{"18 - 20", "v20.11.1", false, false},
	} {
		ok, known := nodeSatisfies(tt.r, tt.v)
		if ok != tt.ok || known != tt.known {
			t.Errorf("nodeSatisfies(%q, %q) = %v, %v, want %v, %v", tt.r, tt.v, ok, known, tt.ok, tt.known)
		}
	}
}

func TestNodeEnv(t *testing.T) {
	env := strings.Join(nodeEnv(map[string]string{
		"NODE_ENV": "production", "NPM_CONFIG_REGISTRY": "https://r.example/", "NPM_CONFIG_CACHE": "/elsewhere",
		"PATH": "/evil", "LD_PRELOAD": "x.so", "API_URL": "https://api.example",
	}, "/cache/nodejs/npm"), "\n") + "\n"
	for _, want := range []string{"NODE_ENV=production\n", "npm_config_registry=https://r.example/\n",
		"API_URL=https://api.example\n", "npm_config_cache=/cache/nodejs/npm\n", "npm_config_update_notifier=false\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	for _, bad := range []string{"/elsewhere", "PATH=", "LD_PRELOAD"} {
		if strings.Contains(env, bad) {
			t.Errorf("env passes %s:\n%s", bad, env)
		}
	}
}
