package build_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/build"
	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// goodApp is the smallest app that builds.
var goodApp = map[string]string{
	"Procfile":  "web: python3 server.py\n",
	"server.py": "print('hello')\n",
}

// start runs a builder configured by cfg over a store on a bus of the
// test's own, and returns the store. The builder stops when the test ends.
func start(t *testing.T, cfg build.Config) *store.Store {
	t.Helper()
	st, _ := startIn(t, cfg)
	return st
}

// startIn is start, also returning the directory that holds the
// builder's work and cache directories (builds, cache), as the data
// directory does.
func startIn(t *testing.T, cfg build.Config) (*store.Store, string) {
	t.Helper()
	box, err := secret.New(make([]byte, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), bustest.Start(t), box, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.Chmod(root, 0o711)
	os.Chmod(filepath.Dir(root), 0o711)
	cfg.WorkDir, cfg.CacheDir = filepath.Join(root, "builds"), filepath.Join(root, "cache")
	b, err := build.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, 5*time.Second, b.Ready)
	return st, root
}

// modes are the ways the tests can run builds here: on the host, and
// isolated when the tests run as root on a host with cgroups.
func modes() []bool {
	if os.Geteuid() == 0 && isolate.CgroupVersion() != "" {
		return []bool{false, true}
	}
	return []bool{false}
}

func modeName(isolated bool) string {
	if isolated {
		return "isolated"
	}
	return "host"
}

// upload archives files (path -> content) as the CLI does and puts the
// archive in the sources store as the API does, returning its name.
func upload(t *testing.T, st *store.Store, app, id string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := archive.Write(&buf, dir); err != nil {
		t.Fatal(err)
	}
	name := app + "/" + id + ".tar.gz"
	if _, err := st.Apps.Upsert(context.Background(), app, func(a *skiff.App) error { a.Name = app; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sources.Put(context.Background(), jetstream.ObjectMeta{Name: name}, &buf); err != nil {
		t.Fatal(err)
	}
	return name
}

// deploy uploads files and builds them, returning the result and the
// output lines. A build that could not be run or followed fails the test.
func deploy(t *testing.T, st *store.Store, req skiff.BuildRequest, files map[string]string) (skiff.BuildResult, []string) {
	t.Helper()
	req.Source = upload(t, st, req.App, req.ID, files)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lines []string
	res, err := st.Build(ctx, req, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatalf("build %s: %v", req.ID, err)
	}
	if res.ID != req.ID {
		t.Fatalf("result of build %s has ID %q", req.ID, res.ID)
	}
	checkSourceDeleted(t, st, req.Source)
	return res, lines
}

// checkSourceDeleted fails the test if the uploaded archive outlived its
// build. The builder deletes it before publishing the result, so there is
// nothing to wait for.
func checkSourceDeleted(t *testing.T, st *store.Store, name string) {
	t.Helper()
	if _, err := st.Sources.GetInfo(context.Background(), name); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("source %s after the build: err = %v, want ErrObjectNotFound", name, err)
	}
}

// watchEvents collects app's events from now on.
func watchEvents(t *testing.T, st *store.Store, app string) func() []skiff.Event {
	t.Helper()
	sub, err := st.NC.SubscribeSync(skiff.EventSubject(app, ">"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := st.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	var evs []skiff.Event
	return func() []skiff.Event {
		for {
			m, err := sub.NextMsg(200 * time.Millisecond)
			if err != nil {
				return evs
			}
			var ev skiff.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
}

func hasEvent(evs []skiff.Event, typ string, release int) bool {
	return slices.ContainsFunc(evs, func(ev skiff.Event) bool { return ev.Type == typ && ev.Release == release })
}

func TestBuildMakesImageAndRelease(t *testing.T) {
	cache, err := image.NewCache(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	st := start(t, build.Config{Images: cache})
	ctx := context.Background()
	events := watchEvents(t, st, "hello")

	res, lines := deploy(t, st, skiff.BuildRequest{ID: "0123456789ab", App: "hello", Actor: "ann"}, goodApp)
	if res.Error != "" || res.Release != 1 {
		t.Fatalf("result = %+v, want release 1 and no error; output:\n%s", res, strings.Join(lines, "\n"))
	}
	out := strings.Join(lines, "\n")
	if !strings.Contains(out, "Procfile declares types -> web") {
		t.Errorf("output does not name the process types:\n%s", out)
	}
	if last := lines[len(lines)-1]; last != "-----> Created release v1" {
		t.Errorf("last line = %q, want the release", last)
	}

	rel, _, err := st.Release(ctx, "hello", 1)
	if err != nil {
		t.Fatal(err)
	}
	hexDigest, ok := strings.CutPrefix(rel.Image.Digest, "sha256:")
	if !ok || len(hexDigest) != 64 || rel.Image.Size <= 0 || rel.Image.Object != "hello/"+hexDigest {
		t.Errorf("release image = %+v", rel.Image)
	}
	if rel.Image != res.Image {
		t.Errorf("release image %+v differs from the result's %+v", rel.Image, res.Image)
	}
	if want := map[string]string{"web": "python3 server.py"}; !maps.Equal(rel.Processes, want) {
		t.Errorf("processes = %v, want %v", rel.Processes, want)
	}
	if rel.Status != skiff.ReleasePending || rel.CreatedBy != "ann" || rel.Description != "Deploy 01234567" || rel.ConfigVersion != 0 {
		t.Errorf("release = %+v, want pending, by ann, described by the build ID, config version 0", rel)
	}

	// The slugs store holds the very image the release names.
	obj, err := st.Slugs.Get(ctx, rel.Image.Object)
	if err != nil {
		t.Fatalf("image object: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, obj)
	obj.Close()
	if err != nil || n != rel.Image.Size || hex.EncodeToString(h.Sum(nil)) != hexDigest {
		t.Errorf("stored image: %d bytes, sha256 %x, %v; want %d bytes, %s", n, h.Sum(nil), err, rel.Image.Size, hexDigest)
	}

	// The local cache got it too, with the app's files in it.
	root, err := cache.Unpacked(ctx, rel.Image.Digest)
	if err != nil {
		t.Fatalf("image not handed to the local cache: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "server.py")); err != nil || string(data) != goodApp["server.py"] {
		t.Errorf("server.py in the image = %q, %v", data, err)
	}

	evs := events()
	for _, typ := range []string{skiff.EventBuildStarted, skiff.EventReleaseCreated, skiff.EventBuildSucceeded} {
		release := 1
		if typ == skiff.EventBuildStarted {
			release = 0
		}
		if !hasEvent(evs, typ, release) {
			t.Errorf("no %s event for release %d among %+v", typ, release, evs)
		}
	}
}

func TestSecondBuildTakesCurrentConfig(t *testing.T) {
	st := start(t, build.Config{})
	ctx := context.Background()
	if res, lines := deploy(t, st, skiff.BuildRequest{ID: "first", App: "hello"}, goodApp); res.Release != 1 {
		t.Fatalf("first build = %+v\n%s", res, strings.Join(lines, "\n"))
	}
	vars := map[string]string{"DATABASE_URL": "postgres://db/hello"}
	if _, _, _, err := st.UpdateConfig(ctx, "hello", func(m map[string]string) error {
		maps.Copy(m, vars)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	res, lines := deploy(t, st, skiff.BuildRequest{ID: "second", App: "hello", Description: "fix the thing"}, goodApp)
	if res.Error != "" || res.Release != 2 || lines[len(lines)-1] != "-----> Created release v2" {
		t.Fatalf("second build = %+v\n%s", res, strings.Join(lines, "\n"))
	}
	rels, err := st.ListReleases(ctx, "hello")
	if err != nil || len(rels) != 2 {
		t.Fatalf("releases = %+v, %v", rels, err)
	}
	v1, v2 := rels[0], rels[1]
	if v2.Version != 2 || v2.Description != "fix the thing" || v2.Status != skiff.ReleasePending {
		t.Errorf("v2 = %+v", v2)
	}
	got, err := st.OpenConfig(v2.ConfigSealed)
	if err != nil || v2.ConfigVersion != 1 || !maps.Equal(got, vars) {
		t.Errorf("v2 config = version %d, %v, %v; want version 1, %v", v2.ConfigVersion, got, err, vars)
	}
	if v1.ConfigVersion != 0 {
		t.Errorf("v1 config version changed to %d", v1.ConfigVersion)
	}
	// The same tree packs to the same image, which is stored once.
	if v1.Image != v2.Image {
		t.Errorf("the same source gave images %+v and %+v", v1.Image, v2.Image)
	}
}

func TestBuildRejectsBadProcfile(t *testing.T) {
	st := start(t, build.Config{})
	tests := []struct {
		name  string
		files map[string]string
		err   string // in the result's error
		hint  string // in its hint
	}{
		{"missing", map[string]string{"server.py": "print()\n"}, "no app detected", "a Procfile saying what to run"},
		{"malformed", map[string]string{"Procfile": "web python3 server.py\n"}, "Procfile line 1", `"type: command"`},
		{"bad type", map[string]string{"Procfile": "web: ./a\nweb server: ./b\n"}, `Procfile line 2: invalid process type "web server"`, `"type: command"`},
		{"no types", map[string]string{"Procfile": "# to do\n"}, "Procfile defines no process types", "web: ./server"},
		{"directory", map[string]string{"Procfile/web": "./server\n"}, "Procfile is not a regular file", "regular file"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := "bad" + string(rune('a'+i))
			events := watchEvents(t, st, app)
			res, lines := deploy(t, st, skiff.BuildRequest{ID: "build-" + app, App: app}, tt.files)
			if !strings.Contains(res.Error, tt.err) || !strings.Contains(res.Hint, tt.hint) {
				t.Errorf("result = %q (hint %q), want %q (hint with %q)", res.Error, res.Hint, tt.err, tt.hint)
			}
			if res.Release != 0 {
				t.Errorf("a failed build made release %d", res.Release)
			}
			if last := lines[len(lines)-1]; last != " !     "+res.Error {
				t.Errorf("last line = %q, want the error", last)
			}
			if rels, err := st.ListReleases(context.Background(), app); err != nil || len(rels) != 0 {
				t.Errorf("releases after a failed build = %+v, %v", rels, err)
			}
			if !hasEvent(events(), skiff.EventBuildFailed, 0) {
				t.Error("no build.failed event")
			}
		})
	}
}

func TestBuildsOfOneAppRunOneAtATime(t *testing.T) {
	st := start(t, build.Config{Concurrency: 2})
	// Everything the builder publishes about builds, in the order it does.
	sub, err := st.NC.SubscribeSync("skiff.build.*.*")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := st.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	ids := []string{"build-one", "build-two"}
	sources := make([]string, len(ids))
	for i, id := range ids {
		sources[i] = upload(t, st, "hello", id, goodApp)
	}
	results := make([]skiff.BuildResult, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := st.Build(ctx, skiff.BuildRequest{ID: id, App: "hello", Source: sources[i]}, nil)
			if err != nil {
				t.Errorf("build %s: %v", id, err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	versions := []int{results[0].Release, results[1].Release}
	slices.Sort(versions)
	if results[0].Error != "" || results[1].Error != "" || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("results = %+v, want releases 1 and 2", results)
	}
	for _, s := range sources {
		checkSourceDeleted(t, st, s)
	}

	// One build's output and result all come before the other's first line.
	var order []string
	for done := 0; done < len(ids); {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", order, err)
		}
		id := strings.Split(m.Subject, ".")[2]
		if len(order) == 0 || order[len(order)-1] != id {
			order = append(order, id)
		}
		if strings.HasSuffix(m.Subject, ".done") {
			done++
		}
	}
	if len(order) != 2 {
		t.Fatalf("the builds ran in turns %v, want one after the other", order)
	}
}

func TestBuildTimesOut(t *testing.T) {
	st := start(t, build.Config{Timeout: time.Nanosecond})
	res, _ := deploy(t, st, skiff.BuildRequest{ID: "slow", App: "hello"}, goodApp)
	if res.Error != "build timed out after 1ns" || !strings.Contains(res.Hint, "--build-timeout") || res.Release != 0 {
		t.Fatalf("result = %+v, want a timeout with a hint", res)
	}
	if rels, err := st.ListReleases(context.Background(), "hello"); err != nil || len(rels) != 0 {
		t.Errorf("releases after a timed-out build = %+v, %v", rels, err)
	}
}

func eventually(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBuildSandboxAndManifest builds an app whose app.json predeploy
// script reports who it runs as and tries another app's cache, and whose
// .slugignore, env, health check and formation reach the release.
func TestBuildSandboxAndManifest(t *testing.T) {
	for _, isolated := range modes() {
		t.Run(modeName(isolated), func(t *testing.T) { testBuildSandboxAndManifest(t, isolated) })
	}
}

func testBuildSandboxAndManifest(t *testing.T, isolated bool) {
	st := start(t, build.Config{Isolate: isolated})
	ctx := context.Background()
	if res, _ := deploy(t, st, skiff.BuildRequest{ID: "other", App: "other"}, goodApp); res.Error != "" {
		t.Fatalf("first app: %+v", res)
	}
	files := map[string]string{
		"Procfile":     "web: python3 server.py\nworker: sleep 1000\n",
		"server.py":    "print()\n",
		"docs/big.psd": "layers",
		"notes.psd":    "more layers",
		"keep.txt":     "kept",
		".slugignore":  "# design files\n*.psd\n/docs\n",
		"app.json": `{"scripts": {"predeploy": "echo uid=$(id -u); test -d ../../../cache/other && echo other-there; ls ../../../cache/other >/dev/null 2>&1 && echo peeked || echo no-peek; test -e notes.psd && echo psd-kept || echo psd-gone"},
			"env": {"MODE": "fast", "SECRET": {"required": false}},
			"healthchecks": {"web": [{"type": "startup", "path": "/health"}]},
			"formation": {"worker": {"quantity": 2}}}`,
	}
	res, lines := deploy(t, st, skiff.BuildRequest{ID: "mine", App: "mine"}, files)
	out := strings.Join(lines, "\n")
	if res.Error != "" {
		t.Fatalf("build: %+v\n%s", res, out)
	}
	if os.Geteuid() == 0 {
		if strings.Contains(out, "uid=0") || !strings.Contains(out, "uid=2") {
			t.Errorf("the build did not run as the app's own user:\n%s", out)
		}
		if !strings.Contains(out, "other-there") || !strings.Contains(out, "no-peek") {
			t.Errorf("the build could read another app's cache:\n%s", out)
		}
	}
	for _, want := range []string{"psd-gone", "Removed 2 entries named by .slugignore", "Procfile declares types -> web, worker"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rel, _, err := st.Releases.Get(ctx, skiff.ReleaseKey("mine", res.Release))
	if err != nil {
		t.Fatal(err)
	}
	if rel.HealthCheck != "/health" || rel.Env["MODE"] != "fast" || rel.Buildpack != "procfile" || rel.BuildKey == "" {
		t.Errorf("release = health %q env %v buildpack %q key %q", rel.HealthCheck, rel.Env, rel.Buildpack, rel.BuildKey)
	}
	if f, _, err := st.Formations.Get(ctx, "mine"); err != nil || f.Quantity["worker"] != 2 {
		t.Errorf("formation from app.json = %+v, %v", f, err)
	}
	// The same inputs again reuse the image without building.
	res2, lines := deploy(t, st, skiff.BuildRequest{ID: "again", App: "mine"}, files)
	if again := strings.Join(lines, "\n"); res2.Image != res.Image || !strings.Contains(again, "reusing its image") || strings.Contains(again, "predeploy") {
		t.Errorf("an unchanged build was not reused:\n%s", again)
	}
}

func TestBuildRefusesBadManifests(t *testing.T) {
	st := start(t, build.Config{MaxImage: 4096})
	for name, c := range map[string]struct {
		files map[string]string
		err   string
	}{
		"no web":         {map[string]string{"Procfile": "worker: sleep 1\n"}, "no web process"},
		"required env":   {map[string]string{"Procfile": "web: x\n", "app.json": `{"env": {"API_KEY": {"required": true}}}`}, "API_KEY"},
		"bad app.json":   {map[string]string{"Procfile": "web: x\n", "app.json": `{"formation": [1]}`}, "app.json is not valid"},
		"failed script":  {map[string]string{"Procfile": "web: x\n", "app.json": `{"scripts": {"predeploy": "exit 3"}}`}, "predeploy script failed"},
		"unknown pack":   {map[string]string{"Procfile": "web: x\n", "app.json": `{"buildpacks": [{"url": "cobol"}]}`}, `unknown buildpack "cobol"`},
		"too large":      {map[string]string{"Procfile": "web: x\n", "blob": testkit.RandomText(200_000)}, "over the limit of 4.0 KiB"},
		"static prefix":  {map[string]string{"Procfile": "web: x\n", "app.json": `{"static": {"assets": "public"}}`}, "not a clean URL path"},
		"static outside": {map[string]string{"Procfile": "web: x\n", "app.json": `{"static": {"/assets": "../etc"}}`}, "not inside the app"},
		"static missing": {map[string]string{"Procfile": "web: x\n", "app.json": `{"static": {"/assets": "public"}}`}, "public is not a directory of the app"},
	} {
		res, lines := deploy(t, st, skiff.BuildRequest{ID: strings.ReplaceAll(name, " ", "-"), App: "bad"}, c.files)
		if !strings.Contains(res.Error, c.err) || res.Hint == "" || res.Release != 0 {
			t.Errorf("%s: result %+v, want an error with %q and a hint\n%s", name, res, c.err, strings.Join(lines, "\n"))
		}
	}
	// Static prefixes are checked and kept in the release, longest
	// first.
	res, lines := deploy(t, st, skiff.BuildRequest{ID: "static", App: "good"}, map[string]string{
		"Procfile": "web: x\n", "public/a.css": "a", "public/img/b.png": "b",
		"app.json": `{"static": {"/assets/": "public", "/img": {"dir": "/public/img", "cache_control": "public, max-age=31536000, immutable"}}}`,
	})
	if res.Error != "" {
		t.Fatalf("static prefixes: %+v\n%s", res, strings.Join(lines, "\n"))
	}
	rel, _, err := st.Release(context.Background(), "good", res.Release)
	want := []skiff.StaticMount{{Path: "/assets", Dir: "public"}, {Path: "/img", Dir: "public/img", CacheControl: "public, max-age=31536000, immutable"}}
	if err != nil || !slices.Equal(rel.Static, want) {
		t.Errorf("release static = %+v, %v; want %+v", rel.Static, err, want)
	}
	// A worker-only app is allowed when app.json says so.
	res, _ = deploy(t, st, skiff.BuildRequest{ID: "workers", App: "bad"},
		map[string]string{"Procfile": "worker: sleep 1\n", "app.json": `{"formation": {"worker": {"quantity": 1}}}`})
	if res.Error != "" {
		t.Errorf("worker-only app: %+v", res)
	}
}

// TestIsolatedBuild: an isolated build's commands run in a sandbox: the
// app's user, a host name and processes of its own, its cgroup, and of
// the platform's data only its own build and cache directories, which it
// reaches at their host paths.
func TestIsolatedBuild(t *testing.T) {
	if !slices.Contains(modes(), true) {
		t.Skip("isolated builds need root and cgroups")
	}
	st, data := startIn(t, build.Config{Isolate: true, Memory: 256 << 20})
	os.WriteFile(filepath.Join(data, "secret.key"), []byte("platform secret"), 0o644)
	if res, _ := deploy(t, st, skiff.BuildRequest{ID: "other", App: "other"}, goodApp); res.Error != "" {
		t.Fatalf("first app: %+v", res)
	}
	os.MkdirAll(filepath.Join(data, "cache", "other", "pip"), 0o755)
	// Run in the build's tree, data/builds/mine-N/app, whose cache is
	// data/cache/mine. What it finds is said on lines "probe: …", which
	// the script's own text, echoed by the build, does not hold.
	script := `say() { echo "probe:" "$@"; }
say "uid=$(id -u) user=$(id -un) host=$(hostname)"
say "procs=$(ls /proc | grep -c '^[0-9]')"
grep -q skiff/build-mine- /proc/self/cgroup && say in its cgroup
test -e ../../../secret.key && say secret visible
test -e ../../../cache/other && say other cache visible
say "builds: $(ls ../..)"
echo cached > ../../../cache/mine/note && say cache writable
touch /usr/local/x 2>/dev/null && say usr writable
say "dir=$(pwd)"`
	files := map[string]string{"Procfile": "web: python3 server.py\n", "server.py": "print()\n",
		"app.json": fmt.Sprintf(`{"scripts": {"predeploy": %q}}`, script)}
	res, lines := deploy(t, st, skiff.BuildRequest{ID: "mine", App: "mine"}, files)
	out := strings.Join(lines, "\n")
	if res.Error != "" {
		t.Fatalf("build: %+v\n%s", res, out)
	}
	var probes []string
	for _, l := range lines {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "probe: "); ok {
			probes = append(probes, p)
		}
	}
	said := strings.Join(probes, "\n")
	for _, want := range []string{"uid=2", "user=mine ", "host=mine.build", "in its cgroup", "cache writable",
		"dir=" + filepath.Join(data, "builds", "mine-")} {
		if !strings.Contains(said, want) {
			t.Errorf("the build did not say %q:\n%s", want, said)
		}
	}
	for _, bad := range []string{"uid=0", "secret visible", "other cache visible", "usr writable"} {
		if strings.Contains(said, bad) {
			t.Errorf("%s:\n%s", bad, said)
		}
	}
	var procs int
	var builds string
	for _, p := range probes {
		fmt.Sscanf(p, "procs=%d", &procs)
		if b, ok := strings.CutPrefix(p, "builds: "); ok {
			builds = b
		}
	}
	if procs == 0 || procs > 6 {
		t.Errorf("%d processes seen: not a PID namespace of its own\n%s", procs, said)
	}
	if !strings.HasPrefix(builds, "mine-") || strings.Contains(builds, " ") {
		t.Errorf("the build sees builds %q, want its own only", builds)
	}
	if b, err := os.ReadFile(filepath.Join(data, "cache", "mine", "note")); err != nil || string(b) != "cached\n" {
		t.Errorf("the cache written in the sandbox: %q, %v", b, err)
	}
}

// TestIsolatedBuildpackOnServer: a Heroku buildpack in a directory of the
// server is shown to the isolated build at its path, read-only; one in
// the builder's own directories is refused.
func TestIsolatedBuildpackOnServer(t *testing.T) {
	if !slices.Contains(modes(), true) {
		t.Skip("isolated builds need root and cgroups")
	}
	st, data := startIn(t, build.Config{Isolate: true})
	writeBuildpack := func(dir string) {
		for name, body := range map[string]string{
			"bin/detect":  "#!/bin/sh\necho Probe\n",
			"bin/compile": "#!/bin/sh\necho \"       compiled on $(hostname)\"\ntouch \"$0\" 2>/dev/null && echo '       buildpack writable'\ntrue\n",
		} {
			os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			// Writable by all: only the read-only mount stops the build.
			os.Chmod(filepath.Join(dir, name), 0o777)
		}
	}
	setBuildpack := func(app, bp string) {
		if _, err := st.Apps.Upsert(context.Background(), app, func(a *skiff.App) error { a.Name = app; return nil }); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := st.UpdateConfig(context.Background(), app, func(m map[string]string) error {
			m["SKIFF_BUILDPACK"] = bp
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	bp := filepath.Join(t.TempDir(), "probe-buildpack")
	writeBuildpack(bp)
	setBuildpack("probe", bp)
	res, lines := deploy(t, st, skiff.BuildRequest{ID: "probe", App: "probe"}, goodApp)
	out := strings.Join(lines, "\n")
	if res.Error != "" || !strings.Contains(out, "compiled on probe.build") || strings.Contains(out, "buildpack writable") {
		t.Errorf("build with a buildpack on the server: %+v\n%s", res, out)
	}

	inData := filepath.Join(data, "cache", "probe", "evil-buildpack")
	writeBuildpack(inData)
	setBuildpack("evil", inData)
	res, lines = deploy(t, st, skiff.BuildRequest{ID: "evil", App: "evil"}, goodApp)
	if !strings.Contains(res.Error, "builder's own directory") || res.Hint == "" {
		t.Errorf("build with a buildpack in the data directory: %+v\n%s", res, strings.Join(lines, "\n"))
	}
}
