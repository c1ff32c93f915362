package buildpack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/pyindex"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// pyWheelSpec describes a pure-Python wheel made for a test.
type pyWheelSpec struct {
	name, version string
	requires      []string // Requires-Dist lines
	script        bool     // a console script NAME-hello that prints "hello from NAME VERSION"
}

// pkg is the wheel as the test index serves it.
func (w pyWheelSpec) pkg() pyindex.Package {
	p := pyindex.Package{Name: w.name, Version: w.version, Requires: w.requires}
	p.Files = map[string]string{
		p.Module() + "/__init__.py": fmt.Sprintf("VERSION = %q\n\ndef main():\n    print(\"hello from %s \" + VERSION)\n", w.version, w.name),
	}
	if w.script {
		p.Files[p.DistInfo()+"/entry_points.txt"] = fmt.Sprintf("[console_scripts]\n%s-hello = %s:main\n", w.name, p.Module())
	}
	return p
}

// pyIndex is a PEP 503 simple package index on loopback that records the
// requests it gets.
type pyIndex struct{ *pyindex.Index }

func pyStartIndex(t *testing.T, wheels ...pyWheelSpec) pyIndex {
	t.Helper()
	pkgs := make([]pyindex.Package, len(wheels))
	for i, w := range wheels {
		pkgs[i] = w.pkg()
	}
	ix := pyindex.Serve(pkgs...)
	t.Cleanup(ix.Close)
	return pyIndex{ix}
}

func (ix pyIndex) url() string { return ix.URL() }

// take returns the paths requested since the last call.
func (ix pyIndex) take() []string { return ix.Take() }

func pyNeedPython(t *testing.T) {
	t.Helper()
	if err := exec.Command("python3", "-c", "import venv, ensurepip").Run(); err != nil {
		t.Fatalf("python3 with venv and ensurepip is needed: %v", err)
	}
}

// pyBuild compiles a tree of files in a new directory against cache.
func pyBuild(t *testing.T, cache string, env map[string]string, files map[string]string) (dir, out string, took time.Duration, err error) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "app")
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	b := &Build{App: "pyapp", Dir: dir, CacheDir: cache, Env: env, Out: &buf,
		Sandbox: Direct{Home: t.TempDir(), Tmp: t.TempDir()}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = Python().Compile(ctx, b)
	took = time.Since(start)
	t.Logf("build output:\n%s", buf.String())
	return dir, buf.String(), took, err
}

// pyRun runs a shell command in dir with HOME=dir and a minimal
// environment, as the platform starts a process.
func pyRun(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func pyWantFailed(t *testing.T, err error, message string, hints ...string) {
	t.Helper()
	var serr *skiff.Error
	if !errors.As(err, &serr) || serr.Kind != skiff.KindFailed {
		t.Fatalf("err = %v, want a skiff.Error of kind failed", err)
	}
	if serr.Message != message {
		t.Errorf("message = %q, want %q", serr.Message, message)
	}
	for _, h := range hints {
		if !strings.Contains(serr.Hint, h) {
			t.Errorf("hint %q does not mention %q", serr.Hint, h)
		}
	}
}

// pyAssertRelocatable checks what makes a virtualenv independent of the
// build's path.
func pyAssertRelocatable(t *testing.T, dir string) {
	t.Helper()
	venv := filepath.Join(dir, ".venv")
	bin := filepath.Join(venv, "bin")
	entries, err := os.ReadDir(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(bin, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			if strings.HasPrefix(target, dir) || (filepath.IsAbs(target) && !strings.HasPrefix(filepath.Base(target), "python")) {
				t.Errorf("%s -> %s", e.Name(), target)
			}
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(dir)) {
			t.Errorf("bin/%s mentions the build directory %s", e.Name(), dir)
		}
	}
	target, err := os.Readlink(filepath.Join(bin, "python3"))
	if err != nil || !filepath.IsAbs(target) {
		t.Errorf("bin/python3 -> %q (%v), want an absolute link to the server's interpreter", target, err)
	}
}

// pyPycFlags returns the flags word of the bytecode of a source file:
// 3 for hash-checked.
func pyPycFlags(t *testing.T, source string) byte {
	t.Helper()
	dir, file := filepath.Split(source)
	matches, _ := filepath.Glob(filepath.Join(dir, "__pycache__", strings.TrimSuffix(file, ".py")+".cpython-*.pyc"))
	if len(matches) != 1 {
		t.Fatalf("bytecode of %s: found %v", source, matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil || len(data) < 16 {
		t.Fatalf("read %s: %v", matches[0], err)
	}
	return data[4]
}

func TestPythonDetect(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  bool
	}{
		{"requirements", []string{"requirements.txt"}, true},
		{"pyproject", []string{"pyproject.toml"}, true},
		{"pyproject and uv.lock", []string{"pyproject.toml", "uv.lock"}, true},
		{"setup.py alone", []string{"setup.py"}, false},
		{"Pipfile alone", []string{"Pipfile"}, false},
		{"plain python files", []string{"app.py"}, false},
		{"requirements.txt is a directory", []string{"requirements.txt/x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			got, err := Python().Detect(dir)
			if err != nil || got != tc.want {
				t.Fatalf("Detect = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestPythonCompile builds an app several times against one cache: a
// cold build, a rebuild that reuses the virtualenv without asking the
// index, a rebuild that adds a package, one that removes it, failing
// builds that leave the cache intact, and a tree moved elsewhere.
func TestPythonCompile(t *testing.T) {
	pyNeedPython(t)
	t.Parallel()
	ix := pyStartIndex(t,
		pyWheelSpec{name: "alpha", version: "1.0", script: true},
		pyWheelSpec{name: "beta", version: "2.0", requires: []string{"gamma>=1", `delta; python_version < "3"`}},
		pyWheelSpec{name: "gamma", version: "1.5"},
	)
	cache := t.TempDir()
	env := map[string]string{"PIP_INDEX_URL": ix.url(), "PIP_TIMEOUT": "5", "PIP_RETRIES": "0", "SECRET": "x"}
	app := func(requirements string) map[string]string {
		return map[string]string{
			"requirements.txt": requirements,
			"app.py":           "import alpha\nprint(alpha.VERSION)\n",
			"broken.py":        "def oops(:\n",
			"Procfile":         "web: python app.py\n",
		}
	}

	// Cold: the virtualenv is made and alpha comes from the index.
	dir1, out, cold, err := pyBuild(t, cache, env, app("alpha==1.0\n"))
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	if hits := ix.take(); !slices.Contains(hits, "/simple/alpha/") || !slices.Contains(hits, "/files/alpha-1.0-py3-none-any.whl") {
		t.Errorf("first build asked the index for %v, want alpha's page and wheel", hits)
	}
	for _, want := range []string{"-----> Using Python 3.", "-----> Creating a virtualenv in .venv", "-----> Installing requirements with pip",
		"       Successfully installed alpha-1.0", "-----> Compiling bytecode"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	pyAssertRelocatable(t, dir1)
	if got, err := pyRun(t, dir1, ". .profile.d/python.sh && alpha-hello && python app.py"); err != nil || got != "hello from alpha 1.0\n1.0\n" {
		t.Errorf("run in the build tree: %q, %v", got, err)
	}
	if f := pyPycFlags(t, filepath.Join(dir1, "app.py")); f != 3 {
		t.Errorf("app.py bytecode flags = %d, want 3 (hash-checked)", f)
	}
	site, _ := filepath.Glob(filepath.Join(dir1, ".venv/lib/python3*/site-packages"))
	if len(site) != 1 {
		t.Fatalf("site-packages: %v", site)
	}
	siteRel, _ := filepath.Rel(dir1, site[0])
	for _, src := range []string{"alpha/__init__.py", "pip/__init__.py"} {
		if f := pyPycFlags(t, filepath.Join(site[0], src)); f != 3 {
			t.Errorf("%s bytecode flags = %d, want 3 (hash-checked)", src, f)
		}
	}

	// Warm: same requirements, new tree; nothing is asked of the index.
	dir2, out, warm, err := pyBuild(t, cache, env, app("alpha==1.0\n"))
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	if hits := ix.take(); len(hits) != 0 {
		t.Errorf("second build asked the index for %v, want nothing", hits)
	}
	if !strings.Contains(out, "-----> Requirements unchanged: reusing the cached virtualenv\n") || strings.Contains(out, "Creating a virtualenv") {
		t.Errorf("second build did not reuse the virtualenv")
	}
	t.Logf("cold build %v, warm build %v", cold.Round(time.Millisecond), warm.Round(time.Millisecond))
	if warm > cold/2 {
		t.Errorf("warm build took %v, cold %v: want at most half", warm, cold)
	}
	pyAssertRelocatable(t, dir2)
	if got, err := pyRun(t, dir2, ". .profile.d/python.sh && alpha-hello && python app.py"); err != nil || got != "hello from alpha 1.0\n1.0\n" {
		t.Errorf("run the restored virtualenv: %q, %v", got, err)
	}

	// A package added: only it (and what it needs) comes from the index.
	dir3, out, _, err := pyBuild(t, cache, env, app("alpha==1.0\nbeta==2.0\n"))
	if err != nil {
		t.Fatalf("third build: %v", err)
	}
	hits := ix.take()
	slices.Sort(hits)
	if want := []string{"/files/beta-2.0-py3-none-any.whl", "/files/gamma-1.5-py3-none-any.whl", "/simple/beta/", "/simple/gamma/"}; !slices.Equal(hits, want) {
		t.Errorf("third build asked the index for %v, want %v", hits, want)
	}
	if !strings.Contains(out, "-----> Requirements changed: updating the cached virtualenv") || !strings.Contains(out, "Successfully installed beta-2.0 gamma-1.5") {
		t.Errorf("third build did not install beta on top of the cached virtualenv")
	}
	if got, err := pyRun(t, dir3, ". .profile.d/python.sh && python -c 'import alpha, beta, gamma'"); err != nil {
		t.Errorf("import after the third build: %q, %v", got, err)
	}

	// A package removed: it leaves the virtualenv, with its dependencies.
	dir4, out, _, err := pyBuild(t, cache, env, app("alpha==1.0\n"))
	if err != nil {
		t.Fatalf("fourth build: %v", err)
	}
	if !strings.Contains(out, "-----> Removing packages no longer required: beta, gamma\n") {
		t.Errorf("fourth build did not remove beta and gamma")
	}
	if got, err := pyRun(t, dir4, ". .profile.d/python.sh && python -c 'import beta'"); err == nil {
		t.Errorf("beta is still importable after its removal: %q", got)
	}
	ix.take()

	// Requirements the index cannot satisfy fail the build clearly, and
	// leave the cache as it was.
	for _, req := range []string{"alpha==1.0\nnosuch==1.0\n", "alpha==9.9\n"} {
		_, out, _, err := pyBuild(t, cache, env, app(req))
		pyWantFailed(t, err, "pip could not install the requirements", "requirements.txt", "PIP_INDEX_URL")
		if !strings.Contains(out, "       ERROR: Could not find a version that satisfies the requirement") {
			t.Errorf("pip's own error is not in the output")
		}
	}
	ix.take()
	_, out, _, err = pyBuild(t, cache, env, app("alpha==1.0\n"))
	if err != nil || !strings.Contains(out, "Requirements unchanged") {
		t.Errorf("build after failed ones did not reuse the cache: %v", err)
	}
	if hits := ix.take(); len(hits) != 0 {
		t.Errorf("build after failed ones asked the index for %v", hits)
	}

	// The image runs elsewhere: move the trees of a cold and a warm
	// build, remove the originals, and run from the copies.
	for i, dir := range []string{dir1, dir2} {
		moved := filepath.Join(t.TempDir(), "somewhere", "else")
		os.MkdirAll(filepath.Dir(moved), 0o755)
		if out, err := exec.Command("cp", "-a", dir, moved).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		got, err := pyRun(t, moved, `. .profile.d/python.sh && alpha-hello && python -c "import alpha, sys; print(alpha.__file__); print(sys.prefix)" && echo "$VIRTUAL_ENV" && . .venv/bin/activate && echo "$VIRTUAL_ENV"`)
		venv := filepath.Join(moved, ".venv")
		want := fmt.Sprintf("hello from alpha 1.0\n%s\n%s\n%s\n%s\n", filepath.Join(moved, siteRel, "alpha", "__init__.py"), venv, venv, venv)
		if err != nil || got != want {
			t.Errorf("tree %d moved: got %q (%v), want %q", i+1, got, err, want)
		}
	}
}

// TestPythonPyproject builds an app that lists its dependencies in
// pyproject.toml without a build system: they are installed, the app
// itself is not.
func TestPythonPyproject(t *testing.T) {
	pyNeedPython(t)
	t.Parallel()
	ix := pyStartIndex(t, pyWheelSpec{name: "alpha", version: "1.0", script: true})
	dir, out, _, err := pyBuild(t, t.TempDir(), map[string]string{"PIP_INDEX_URL": ix.url()}, map[string]string{
		"pyproject.toml":    "[project]\nname = \"myapp\"\nversion = \"0.1.0\"\ndependencies = [\"alpha>=1\"]\n",
		"runtime.txt":       "python-3.99.1\n",
		".python-version":   "3\n",
		"app.py":            "import alpha\n",
		".venv/bin/python3": "#!/bin/sh\necho committed venv\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		" !     Removing .venv from the app's source",
		" !     runtime.txt asks for Python 3.99.1, but this server has Python 3.",
		"-----> Installing the dependencies in pyproject.toml with pip",
		"Successfully installed alpha-1.0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, ".python-version asks") {
		t.Errorf(".python-version says 3, which the server has, but a warning was printed")
	}
	if got, err := pyRun(t, dir, ". .profile.d/python.sh && python -c 'import alpha' && pip list --format=freeze"); err != nil || strings.Contains(strings.ToLower(got), "myapp") {
		t.Errorf("after the build: %q, %v", got, err)
	}
}

// pyTinyBackend is an in-tree PEP 517 build backend: pip builds the app
// as a package without fetching build tools from the index.
const pyTinyBackend = `import base64, hashlib, os, zipfile

NAME, VERSION = "myapp", "0.1.0"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = "%s-%s.dist-info" % (NAME, VERSION)
    name = "%s-%s-py3-none-any.whl" % (NAME, VERSION)
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        def add(path, data):
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
        with open("myapp/__init__.py", "rb") as f:
            add("myapp/__init__.py", f.read())
        meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\nRequires-Dist: alpha\n" % (NAME, VERSION)
        add(info + "/METADATA", meta.encode())
        add(info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: tiny\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        record.append(info + "/RECORD,,")
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return name
`

// TestPythonPackage builds an app whose pyproject.toml has a build
// system: pip installs it as a package, and a rebuild with the same
// pyproject.toml but new code reinstalls the package from the reused
// virtualenv without asking the index for its dependencies again.
func TestPythonPackage(t *testing.T) {
	pyNeedPython(t)
	t.Parallel()
	ix := pyStartIndex(t, pyWheelSpec{name: "alpha", version: "1.0", script: true})
	cache := t.TempDir()
	env := map[string]string{"PIP_INDEX_URL": ix.url()}
	app := func(v string) map[string]string {
		return map[string]string{
			"pyproject.toml": "[build-system]\nrequires = []\nbuild-backend = \"tinybackend\"\nbackend-path = [\"_backend\"]\n\n" +
				"[project]\nname = \"myapp\"\nversion = \"0.1.0\"\ndependencies = [\"alpha\"]\n",
			"_backend/tinybackend.py": pyTinyBackend,
			"myapp/__init__.py":       "V = " + v + "\n",
		}
	}
	// The check runs from / so that the tree's own myapp is not on the path.
	check := `. .profile.d/python.sh && cd / && python -c 'import myapp, alpha; print(myapp.V, myapp.__file__.count("site-packages"))'`
	dir, out, _, err := pyBuild(t, cache, env, app("1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "-----> Installing the app's package with pip (pip install .)") || !strings.Contains(out, "Successfully installed alpha-1.0 myapp-0.1.0") {
		t.Errorf("first build did not install the app's package and its dependency")
	}
	if got, err := pyRun(t, dir, check); err != nil || got != "1 1\n" {
		t.Errorf("after the first build: %q, %v", got, err)
	}
	ix.take()
	dir, out, _, err = pyBuild(t, cache, env, app("2"))
	if err != nil {
		t.Fatal(err)
	}
	if hits := ix.take(); len(hits) != 0 {
		t.Errorf("second build asked the index for %v", hits)
	}
	if !strings.Contains(out, "Requirements unchanged: reusing the cached virtualenv") || !strings.Contains(out, "Successfully installed myapp-0.1.0") {
		t.Errorf("second build did not reinstall the app's package into the cached virtualenv")
	}
	if got, err := pyRun(t, dir, check); err != nil || got != "2 1\n" {
		t.Errorf("after the second build: %q, %v", got, err)
	}
}

// TestPyRelocate relocates a virtualenv made by hand with the cases pip
// and venv leave behind.
func TestPyRelocate(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "app")
	venv := filepath.Join(tree, ".venv")
	bin := filepath.Join(venv, "bin")
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	os.MkdirAll(bin, 0o755)
	os.MkdirAll(site, 0o755)
	os.MkdirAll(filepath.Join(tree, "src"), 0o755)
	write := func(path, content string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(venv, "pyvenv.cfg"), "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n", 0o644)
	os.Symlink("/usr/bin/python3", filepath.Join(bin, "python3"))
	os.Symlink("python3", filepath.Join(bin, "python"))
	os.Symlink(filepath.Join(bin, "python3"), filepath.Join(bin, "python3.11"))
	write(filepath.Join(bin, "tool"), "#!"+bin+"/python\nimport tool\n", 0o755)
	write(filepath.Join(bin, "shell-tool"), "#!/bin/sh\necho "+bin+"\n", 0o755)
	write(filepath.Join(bin, "activate"), "VIRTUAL_ENV=\""+venv+"\"\nexport VIRTUAL_ENV\n", 0o644)
	write(filepath.Join(site, "app.pth"), tree+"/src\n/opt/elsewhere\n", 0o644)
	write(filepath.Join(site, "__editable___app_finder.py"), "MAPPING = {'app': '"+tree+"/src/app'}\n", 0o644)

	warnings, err := pyRelocate(venv, tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "__editable___app_finder.py") {
		t.Errorf("warnings = %q, want one about the editable finder", warnings)
	}
	for name, want := range map[string]string{"python3": "/usr/bin/python3", "python": "python3", "python3.11": "python3"} {
		if got, _ := os.Readlink(filepath.Join(bin, name)); got != want {
			t.Errorf("bin/%s -> %s, want %s", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"bin/tool":                             fmt.Sprintf(pyScriptHeader, "python", "") + "import tool\n",
		"bin/shell-tool":                       "#!/bin/sh\necho " + bin + "\n",
		"bin/activate":                         "VIRTUAL_ENV=\"$HOME/.venv\"\nexport VIRTUAL_ENV\n",
		"lib/python3.11/site-packages/app.pth": "../../../../src\n/opt/elsewhere\n",
	} {
		if got, _ := os.ReadFile(filepath.Join(venv, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if info, _ := os.Stat(filepath.Join(bin, "tool")); info.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool mode = %v, want it kept", info.Mode())
	}

	// An interpreter inside the tree cannot be relocated.
	os.Remove(filepath.Join(bin, "python3"))
	os.Symlink(filepath.Join(tree, "python", "bin", "python3"), filepath.Join(bin, "python3"))
	if _, err := pyRelocate(venv, tree); err == nil || !strings.Contains(err.Error(), "points into the build tree") {
		t.Errorf("pyRelocate with the interpreter in the tree: %v", err)
	}
}

func TestPyVersionMatches(t *testing.T) {
	for _, tc := range []struct {
		want string
		ok   bool
	}{{"3", true}, {"3.11", true}, {"3.11.7", true}, {"3.1", false}, {"3.11.70", false}, {"3.12", false}, {"pypy3.11", false}} {
		if got := pyVersionMatches(tc.want, "3.11.7"); got != tc.ok {
			t.Errorf("pyVersionMatches(%q, 3.11.7) = %v", tc.want, got)
		}
	}
}

func TestPyParseShebang(t *testing.T) {
	bin := "/b/app/.venv/bin"
	for _, tc := range []struct {
		name, script       string
		interp, args, rest string
		ok                 bool
	}{
		{"plain", "#!/b/app/.venv/bin/python3\nimport x\n", "python3", "", "import x\n", true},
		{"arguments", "#!/b/app/.venv/bin/python -E -s\nimport x\n", "python", "-E -s", "import x\n", true},
		{"long path form", "#!/bin/sh\n'''exec' \"/b/app/.venv/bin/python3.11\" \"$0\" \"$@\"\n' '''\nimport x\n", "python3.11", "", "import x\n", true},
		{"other directory", "#!/usr/bin/python3\nimport x\n", "", "", "", false},
		{"not python", "#!/b/app/.venv/bin/node\n", "", "", "", false},
		{"no newline", "#!/b/app/.venv/bin/python3", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			interp, args, rest, ok := pyParseShebang([]byte(tc.script), bin)
			if ok != tc.ok || interp != tc.interp || args != tc.args || string(rest) != tc.rest {
				t.Errorf("got %q %q %q %v", interp, args, rest, ok)
			}
		})
	}
}

// TestPyScriptHeader runs a relocated script through sh and checks that
// Python, reading the same file, skips the header.
func TestPyScriptHeader(t *testing.T) {
	pyNeedPython(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(py, filepath.Join(bin, "python3")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(bin, "tool")
	os.WriteFile(script, []byte("#!"+bin+"/python3 -S\nimport sys\nprint(sys.argv[1:], 'site' in sys.modules)\n"), 0o755)
	if err := pyRelocateScript(script, bin); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "tool-link")
	os.Symlink(script, link)
	for _, run := range []string{script, link} {
		out, err := exec.Command(run, "a b", "c").CombinedOutput()
		if err != nil || string(out) != "['a b', 'c'] False\n" {
			t.Errorf("%s: %q, %v", run, out, err)
		}
	}
}

func TestPyRequirementFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "req"), 0o755)
	os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("-r req/base.txt\n--constraint=req/c.txt\n-r ../outside.txt\nflask\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "req", "base.txt"), []byte("--requirement missing.txt\n-r base.txt\nrequests\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "req", "c.txt"), []byte("urllib3<3\n"), 0o644)
	files, err := pyRequirementFiles(dir, "requirements.txt")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"requirements.txt", "req/base.txt", "req/c.txt"}; !slices.Equal(files, want) {
		t.Errorf("files = %v, want %v", files, want)
	}
	k1, _ := pyHashFiles(dir, pyModeRequirements, files...)
	os.WriteFile(filepath.Join(dir, "req", "c.txt"), []byte("urllib3<2\n"), 0o644)
	k2, _ := pyHashFiles(dir, pyModeRequirements, files...)
	if k1 == k2 {
		t.Errorf("a changed constraints file left the key unchanged")
	}
}

func TestPyEnv(t *testing.T) {
	env := pyEnv(map[string]string{
		"PIP_INDEX_URL": "https://pypi.example/simple", "PIP_PROGRESS_BAR": "on", "PIP_TARGET": "/elsewhere",
		"PIP_CACHE_DIR": "/elsewhere", "UV_INDEX_URL": "https://uv.example", "DATABASE_URL": "postgres://secret",
	}, "/cache/python", "/app/.venv")
	// Later entries win in os/exec: look at the last value of each key.
	last := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		last[k] = v
	}
	for k, want := range map[string]string{
		"PIP_INDEX_URL": "https://pypi.example/simple", "PIP_PROGRESS_BAR": "on", "PIP_TARGET": "",
		"PIP_CACHE_DIR": "/cache/python/pip", "UV_INDEX_URL": "https://uv.example", "DATABASE_URL": "",
		"SOURCE_DATE_EPOCH": pySourceDateEpoch, "UV_PROJECT_ENVIRONMENT": "/app/.venv",
	} {
		if last[k] != want {
			t.Errorf("%s = %q, want %q", k, last[k], want)
		}
	}
}
