package buildpack

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// v2Scripts is a tiny Heroku v2 buildpack. bin/detect looks for
// hello.txt; bin/compile writes bin/hello, counts its builds in the
// cache, copies GREETING from ENV_DIR and writes a .profile.d script; it
// fails when the app has a file named fail. bin/release declares web and
// worker.
var v2Scripts = map[string]string{
	"bin/detect": `#!/bin/sh
if [ -f "$1/hello.txt" ]; then
  echo "Hello"
  exit 0
fi
echo "no hello.txt here" >&2
exit 1
`,
	"bin/compile": `#!/bin/sh
set -eu
BUILD_DIR=$1 CACHE_DIR=$2 ENV_DIR=$3
echo "-----> Installing hello"
# Config vars come in ENV_DIR, not in the environment.
if [ -n "${GREETING:-}" ]; then echo "GREETING is in the environment" >&2; exit 9; fi
mkdir -p "$BUILD_DIR/bin" "$BUILD_DIR/.profile.d"
echo build >> "$CACHE_DIR/count"
echo "       build number $(wc -l < "$CACHE_DIR/count" | tr -d ' ')"
cp "$ENV_DIR/GREETING" "$BUILD_DIR/greeting.txt"
printf '#!/bin/sh\necho "$(cat greeting.txt) from hello"\n' > "$BUILD_DIR/bin/hello"
chmod +x "$BUILD_DIR/bin/hello"
echo 'export HELLO_READY=yes' > "$BUILD_DIR/.profile.d/hello.sh"
printf 'a partial line'
if [ -f "$BUILD_DIR/fail" ]; then
  echo
  echo " !     failing as asked" >&2
  exit 3
fi
echo
`,
	"bin/release": `#!/bin/sh
cat <<EOF
---
addons: []
default_process_types:
  web: bin/hello
  worker: "bin/hello --forever"
EOF
`,
}

// v2WriteBuildpack writes the buildpack into dir, with release replaced
// (or removed, when empty) if one is given.
func v2WriteBuildpack(t *testing.T, dir string, release ...string) {
	t.Helper()
	scripts := maps.Clone(v2Scripts)
	if len(release) > 0 {
		scripts["bin/release"] = release[0]
	}
	for name, content := range scripts {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if content == "" {
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// v2GitRepo makes a git repository of the buildpack with a branch
// "loud" whose release has a different web command, and returns its
// file:// URL.
func v2GitRepo(t *testing.T) (dir, url string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed")
	}
	dir = t.TempDir()
	v2WriteBuildpack(t, dir)
	v2Git(t, dir, "init", "-q", "-b", "main")
	v2Git(t, dir, "add", ".")
	v2Git(t, dir, "commit", "-q", "-m", "hello buildpack")
	v2Git(t, dir, "checkout", "-q", "-b", "loud")
	os.WriteFile(filepath.Join(dir, "bin/release"), []byte("#!/bin/sh\necho 'default_process_types: {web: bin/hello --loud}'\n"), 0o755)
	v2Git(t, dir, "commit", "-q", "-am", "loud")
	v2Git(t, dir, "checkout", "-q", "main")
	return dir, "file://" + dir
}

func v2Git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.com"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// v2Build compiles a new app tree with files against cache.
func v2Build(t *testing.T, bp Buildpack, cache string, files map[string]string) (dir, out string, res Result, err error) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "app")
	os.MkdirAll(dir, 0o755)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	b := &Build{App: "hello", Dir: dir, CacheDir: cache, Env: map[string]string{"GREETING": "Good morning", "WEIRD/NAME": "x"},
		Out: &buf, Sandbox: Direct{Home: t.TempDir(), Tmp: t.TempDir()}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err = bp.Compile(ctx, b)
	t.Logf("build output:\n%s", buf.String())
	return dir, buf.String(), res, err
}

// v2CheckApp checks a tree the buildpack compiled and the environment
// dir's removal.
func v2CheckApp(t *testing.T, dir, cache string, res Result, web string) {
	t.Helper()
	if res.Processes["web"] != web || res.Processes["worker"] != "bin/hello --forever" && web == "bin/hello" {
		t.Errorf("processes = %v, want web: %s", res.Processes, web)
	}
	cmd := exec.Command("bash", "-c", ". .profile.d/hello.sh && echo $HELLO_READY && bin/hello")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "yes\nGood morning from hello\n" {
		t.Errorf("run the app: %q, %v", out, err)
	}
	if envs, _ := filepath.Glob(filepath.Join(cache, "herokuv2", "env-*")); len(envs) != 0 {
		t.Errorf("ENV_DIR left behind: %v", envs)
	}
}

func TestHerokuV2ByPath(t *testing.T) {
	t.Parallel()
	bpDir := t.TempDir()
	v2WriteBuildpack(t, bpDir)
	cache := t.TempDir()
	bp := HerokuV2(bpDir)
	if bp.Name() != filepath.Base(bpDir) {
		t.Errorf("Name before compile = %q, want the directory's name", bp.Name())
	}
	if ok, err := bp.Detect(t.TempDir()); !ok || err != nil {
		t.Errorf("Detect = %v, %v; want true: bin/detect runs in Compile", ok, err)
	}

	stale := filepath.Join(cache, "herokuv2", "env-0123456789abcdef")
	os.MkdirAll(stale, 0o700)
	os.WriteFile(filepath.Join(stale, "SECRET"), []byte("left by a build that died"), 0o600)
	for build := 1; build <= 2; build++ {
		dir, out, res, err := v2Build(t, bp, cache, map[string]string{"hello.txt": "hi"})
		if err != nil {
			t.Fatalf("build %d: %v", build, err)
		}
		// The buildpack's lines pass through as they are, whole.
		for _, want := range []string{
			"-----> Using buildpack " + bpDir + "\n",
			"-----> Hello app detected\n",
			"-----> Installing hello\n",
			"       build number " + string(rune('0'+build)) + "\n",
			"a partial line\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("build %d: output lacks %q", build, want)
			}
		}
		v2CheckApp(t, dir, cache, res, "bin/hello")
	}
	if bp.Name() != "Hello" {
		t.Errorf("Name after compile = %q, want what bin/detect printed", bp.Name())
	}
}

func TestHerokuV2ByGit(t *testing.T) {
	t.Parallel()
	repo, url := v2GitRepo(t)
	cache := t.TempDir()
	main := v2Git(t, repo, "rev-parse", "main")

	// The default branch, cloned and then reused.
	for build := 1; build <= 2; build++ {
		dir, out, res, err := v2Build(t, HerokuV2(url), cache, map[string]string{"hello.txt": "hi"})
		if err != nil {
			t.Fatalf("build %d: %v", build, err)
		}
		for _, want := range []string{"-----> Fetching buildpack " + url + "\n", "       at commit " + main[:12] + "\n",
			"       build number " + string(rune('0'+build)) + "\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("build %d: output lacks %q", build, want)
			}
		}
		v2CheckApp(t, dir, cache, res, "bin/hello")
	}

	// A new commit on the branch is fetched by the next build.
	os.WriteFile(filepath.Join(repo, "bin/release"), []byte("#!/bin/sh\necho 'default_process_types: {web: bin/hello --new}'\n"), 0o755)
	v2Git(t, repo, "commit", "-q", "-am", "new")
	dir, _, res, err := v2Build(t, HerokuV2(url), cache, map[string]string{"hello.txt": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	v2CheckApp(t, dir, cache, res, "bin/hello --new")

	// A branch, a commit, and a plain path ending in .git.
	for _, tc := range []struct{ source, web string }{
		{url + "#loud", "bin/hello --loud"},
		{url + "#" + main, "bin/hello"},
		{url + "#" + main[:10], "bin/hello"},
	} {
		dir, out, res, err := v2Build(t, HerokuV2(tc.source), cache, map[string]string{"hello.txt": "hi"})
		if err != nil {
			t.Fatalf("%s: %v", tc.source, err)
		}
		if !strings.Contains(out, "       build number 1\n") {
			t.Errorf("%s: the cache is not its own", tc.source)
		}
		v2CheckApp(t, dir, cache, res, tc.web)
	}
	bare := filepath.Join(t.TempDir(), "hello.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", repo, bare).CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v: %s", err, out)
	}
	if !IsV2Source(bare) {
		t.Fatalf("IsV2Source(%q) = false", bare)
	}
	dir, _, res, err = v2Build(t, HerokuV2(bare), cache, map[string]string{"hello.txt": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	v2CheckApp(t, dir, cache, res, "bin/hello --new")

	// The clone is kept when the repository cannot be reached.
	os.RemoveAll(repo)
	_, out, _, err := v2Build(t, HerokuV2(url), cache, map[string]string{"hello.txt": "hi"})
	if err != nil || !strings.Contains(out, " !     Could not update the buildpack: using the copy from the last build\n") {
		t.Errorf("build with the repository gone: %v", err)
	}
	_, _, _, err = v2Build(t, HerokuV2(url+"#other"), cache, map[string]string{"hello.txt": "hi"})
	pyWantFailed(t, err, "could not fetch buildpack "+url+" at other", "SKIFF_BUILDPACK")
}

func TestHerokuV2Failures(t *testing.T) {
	t.Parallel()
	bpDir := t.TempDir()
	v2WriteBuildpack(t, bpDir)
	noRelease := t.TempDir()
	v2WriteBuildpack(t, noRelease, "")
	badRelease := t.TempDir()
	v2WriteBuildpack(t, badRelease, "#!/bin/sh\necho 'default_process_types: [web, worker]'\n")
	notExec := t.TempDir()
	v2WriteBuildpack(t, notExec)
	os.Chmod(filepath.Join(notExec, "bin/compile"), 0o644)
	empty := t.TempDir()

	for _, tc := range []struct {
		name, source string
		files        map[string]string
		message      string
		hint, output string
	}{
		{"not detected", bpDir, map[string]string{"other.txt": ""},
			"buildpack " + filepath.Base(bpDir) + " cannot build this app (its bin/detect said no)", "SKIFF_BUILDPACK", "       no hello.txt here\n"},
		{"compile fails", bpDir, map[string]string{"hello.txt": "", "fail": ""},
			"buildpack Hello failed to compile", "output above", " !     failing as asked\n"},
		{"bad release", badRelease, map[string]string{"hello.txt": ""},
			"buildpack Hello printed a release that is not valid: yaml: unmarshal errors: line 1: cannot unmarshal !!seq into map[string]string", "default_process_types", ""},
		{"compile not executable", notExec, map[string]string{"hello.txt": ""},
			"could not run bin/compile of buildpack Hello: fork/exec " + filepath.Join(notExec, "bin/compile") + ": permission denied", "chmod=+x", ""},
		{"no bin/compile", empty, map[string]string{"hello.txt": ""}, "buildpack " + empty + " has no bin/detect", "SKIFF_BUILDPACK", ""},
		{"no such directory", "/nonexistent/buildpack", nil, "buildpack directory /nonexistent/buildpack does not exist on the build server", "SKIFF_BUILDPACK", ""},
		{"unreachable git", "file:///nonexistent/buildpack.git", nil, "could not fetch buildpack file:///nonexistent/buildpack.git", "check the URL", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out, _, err := v2Build(t, HerokuV2(tc.source), t.TempDir(), tc.files)
			pyWantFailed(t, err, tc.message, tc.hint)
			if !strings.Contains(out, tc.output) {
				t.Errorf("output lacks %q", tc.output)
			}
		})
	}

	t.Run("no bin/release", func(t *testing.T) {
		_, _, res, err := v2Build(t, HerokuV2(noRelease), t.TempDir(), map[string]string{"hello.txt": ""})
		if err != nil || res.Processes != nil {
			t.Errorf("Compile = %v, %v; want no processes and no error", res, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		slow := t.TempDir()
		v2WriteBuildpack(t, slow)
		os.WriteFile(filepath.Join(slow, "bin/compile"), []byte("#!/bin/sh\nsleep 30\n"), 0o755)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "hello.txt"), nil, 0o644)
		start := time.Now()
		_, err := HerokuV2(slow).Compile(ctx, &Build{Dir: dir, CacheDir: t.TempDir(), Out: &bytes.Buffer{},
			Sandbox: Direct{Home: t.TempDir(), Tmp: t.TempDir()}})
		if err != context.DeadlineExceeded || time.Since(start) > 5*time.Second {
			t.Errorf("Compile = %v after %v, want the context's error at once", err, time.Since(start))
		}
	})
}

func TestIsV2Source(t *testing.T) {
	for _, tc := range []struct {
		source string
		want   bool
		name   string
	}{
		{"python", false, "python"},
		{"go", false, "go"},
		{"heroku/python", false, "python"},
		{"relative/dir", false, "dir"},
		{"/srv/buildpacks/hello", true, "hello"},
		{"/srv/buildpacks/hello/", true, "hello"},
		{"https://github.com/heroku/heroku-buildpack-python", true, "heroku-buildpack-python"},
		{"https://github.com/heroku/heroku-buildpack-python.git#v250", true, "heroku-buildpack-python"},
		{"git://example.com/bp.git", true, "bp"},
		{"file:///srv/git/bp#main", true, "bp"},
		{"ssh://git@example.com/team/bp.git", true, "bp"},
		{"git@github.com:team/custom-bp.git#abc1234", true, "custom-bp"},
		{"example.com/team/bp.git", true, "bp"},
	} {
		if got := IsV2Source(tc.source); got != tc.want {
			t.Errorf("IsV2Source(%q) = %v, want %v", tc.source, got, tc.want)
		}
		if got := v2BaseName(tc.source); got != tc.name {
			t.Errorf("v2BaseName(%q) = %q, want %q", tc.source, got, tc.name)
		}
	}
	for _, tc := range []struct {
		source, url, ref string
	}{
		{"https://h/x.git#v1.2", "https://h/x.git", "v1.2"},
		{"file:///r#0123abc", "file:///r", "0123abc"},
		{"https://h/x", "https://h/x", ""},
	} {
		if url, ref, git := v2ParseSource(tc.source); !git || url != tc.url || ref != tc.ref {
			t.Errorf("v2ParseSource(%q) = %q, %q, %v", tc.source, url, ref, git)
		}
	}
}

// TestV2HostPaths: a buildpack read from the server names what the
// build's sandbox must show of it; one fetched from elsewhere, nothing.
func TestV2HostPaths(t *testing.T) {
	for source, want := range map[string][]string{
		"/srv/buildpacks/hello/":                     {"/srv/buildpacks/hello"},
		"file:///srv/git/bp#main":                    {"/srv/git/bp"},
		"/srv/git/bp.git#v1":                         {"/srv/git/bp.git"},
		"https://github.com/heroku/heroku-buildpack": nil,
		"git@github.com:team/custom-bp.git#abc1234":  nil,
	} {
		if got := HerokuV2(source).(HostReader).HostPaths(); !slices.Equal(got, want) {
			t.Errorf("HostPaths of %s = %q, want %q", source, got, want)
		}
	}
}

func TestV2LineWriter(t *testing.T) {
	var got []string
	w := v2Lines(writerFunc(func(p []byte) (int, error) { got = append(got, string(p)); return len(p), nil }))
	w.Write([]byte("-----> One\r\n   two\nthr"))
	w.Write([]byte("ee\n\nfour"))
	w.Flush()
	want := []string{"-----> One\n", "   two\n", "three\n", "\n", "four\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("writes = %q, want %q", got, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
