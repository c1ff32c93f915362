package buildpack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Python returns the buildpack for Python apps: a requirements.txt or a
// pyproject.toml at the root of the tree.
//
// Dependencies go into a virtualenv at .venv inside the tree, made with the
// build server's python3 and installed with pip (or with uv sync when the
// app has a uv.lock and the server has uv). The image does not run at the
// build's path, so the virtualenv is made relocatable afterwards: scripts
// find their interpreter next to themselves, the python links point at the
// server's interpreter, and .profile.d/python.sh puts $HOME/.venv/bin on
// the PATH at run time.
//
// The finished virtualenv is kept in the cache (CacheDir/python/venv),
// keyed by the interpreter and a hash of the files that list the
// dependencies: an unchanged key reuses it without running pip, a changed
// one installs on top of it and removes what is no longer required.
//
// Bytecode is compiled at build time, hash-checked rather than
// timestamped: the image is read-only and its timestamps are all zero, so
// timestamped .pyc files would be stale and recompiled on every start.
func Python() Buildpack { return pythonPack{} }

type pythonPack struct{}

func (pythonPack) Name() string { return "python" }

func (pythonPack) Detect(dir string) (bool, error) {
	return hasFile(dir, "requirements.txt", "pyproject.toml")
}

const (
	// pyLayout is the version of what the buildpack keeps in its cache;
	// a cached virtualenv of another layout is not reused.
	pyLayout = 1
	// pySourceDateEpoch makes pip and ensurepip write hash-checked .pyc
	// files (py_compile's default when SOURCE_DATE_EPOCH is set). It is
	// 1980-01-01, the earliest time a wheel's zip can record.
	pySourceDateEpoch = "315532800"
)

// Ways of installing an app's dependencies.
const (
	pyModeRequirements = "requirements.txt" // pip install -r requirements.txt
	pyModeDeps         = "pyproject.toml"   // pip install [project].dependencies; the app is not a package
	pyModePackage      = "package"          // pip install . (the app is a package with a build system)
	pyModeUV           = "uv.lock"          // uv sync --frozen
	pyModeNone         = "none"             // nothing to install
)

// pyMeta describes the virtualenv kept in the cache.
type pyMeta struct {
	Layout      int    `json:"layout"`
	Interpreter string `json:"interpreter"`
	Mode        string `json:"mode"`
	Key         string `json:"key"`
}

// pyInfo is what the probe script finds out about the interpreter and
// the app's pyproject.toml.
type pyInfo struct {
	Version     string `json:"version"`
	Interpreter string `json:"interpreter"`
	TOMLError   string `json:"toml_error"`
	Pyproject   *struct {
		BuildSystem  bool     `json:"build_system"`
		Project      bool     `json:"project"`
		Name         string   `json:"name"`
		Dependencies []string `json:"dependencies"`
		Dynamic      []string `json:"dynamic"`
	} `json:"pyproject"`
}

// pyPlan is how this build installs dependencies.
type pyPlan struct {
	mode string
	key  string   // hash of the files that list the dependencies
	deps []string // pyModeDeps: the requirements to install
	name string   // pyModePackage: the project's name
}

// pyJob is one compile of a Python app.
type pyJob struct {
	ctx   context.Context
	b     *Build
	cache string // CacheDir/python
	venv  string // Dir/.venv
	env   []string
	// inVenv is set once the virtualenv exists: commands then find its
	// bin first on the PATH.
	inVenv bool
}

func (p pythonPack) Compile(ctx context.Context, b *Build) (Result, error) {
	j := &pyJob{ctx: ctx, b: b, cache: filepath.Join(b.CacheDir, "python"), venv: filepath.Join(b.Dir, ".venv")}
	j.env = pyEnv(b.Env, j.cache, j.venv)
	// Made by the sandbox, so that its user can write there.
	if err := j.run(b.Dir, "mkdir", "-p", filepath.Join(j.cache, "pip")); err != nil {
		return Result{}, j.fail(err, "create the python cache")
	}

	// A virtualenv in the source was made elsewhere and would shadow
	// the server's python3 below.
	if ok, err := pyExists(j.venv); err != nil {
		return Result{}, err
	} else if ok {
		fmt.Fprintf(b.Out, " !     Removing .venv from the app's source: the build makes the virtualenv\n")
		if err := os.RemoveAll(j.venv); err != nil {
			return Result{}, fmt.Errorf("remove the app's .venv: %w", err)
		}
	}

	info, err := j.probe()
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(b.Out, "-----> Using Python %s\n", info.Version)
	if err := j.checkRequested(info.Version); err != nil {
		return Result{}, err
	}
	plan, err := j.plan(info)
	if err != nil {
		return Result{}, err
	}

	meta := j.loadMeta()
	restored := false
	if meta.Layout == pyLayout && meta.Interpreter == info.Interpreter {
		if ok, _ := isDir(j.cachedVenv()); ok {
			if err := j.run(b.Dir, "cp", "-a", j.cachedVenv(), j.venv); err != nil {
				if ctx.Err() != nil {
					return Result{}, ctx.Err()
				}
				fmt.Fprintf(b.Out, " !     Could not restore the cached virtualenv (%v): making a new one\n", err)
				if err := os.RemoveAll(j.venv); err != nil {
					return Result{}, fmt.Errorf("remove the partly restored virtualenv: %w", err)
				}
			} else {
				restored, j.inVenv = true, true
			}
		}
	}
	if !restored {
		fmt.Fprintf(b.Out, "-----> Creating a virtualenv in .venv\n")
		if err := j.run(b.Dir, "python3", "-m", "venv", j.venv); err != nil {
			return Result{}, j.fail(err, "create the virtualenv")
		}
		j.inVenv = true
	}

	changed := true
	switch same := meta.Mode == plan.mode && meta.Key == plan.key; {
	case restored && same && plan.mode == pyModePackage:
		// The app's own package changes with its code: pip install .
		// reinstalls it, and finds its dependencies installed.
		fmt.Fprintf(b.Out, "-----> Requirements unchanged: reusing the cached virtualenv\n")
	case restored && same:
		fmt.Fprintf(b.Out, "-----> Requirements unchanged: reusing the cached virtualenv\n")
		changed = false
	case restored:
		fmt.Fprintf(b.Out, "-----> Requirements changed: updating the cached virtualenv\n")
	}
	if changed {
		if err := j.install(plan); err != nil {
			return Result{}, err
		}
		if restored {
			if err := j.prune(plan); err != nil {
				return Result{}, err
			}
		}
	}

	warnings, err := pyRelocate(j.venv, b.Dir)
	if err != nil {
		return Result{}, err
	}
	for _, w := range warnings {
		fmt.Fprintf(b.Out, " !     %s\n", w)
	}

	fmt.Fprintf(b.Out, "-----> Compiling bytecode\n")
	if err := j.run(b.Dir, j.python(), "-c", pyCompileScript, b.Dir, j.venv); err != nil {
		return Result{}, j.fail(err, "compile bytecode")
	}

	if changed {
		j.save(pyMeta{Layout: pyLayout, Interpreter: info.Interpreter, Mode: plan.mode, Key: plan.key})
	}
	if err := j.writeProfile(); err != nil {
		return Result{}, err
	}
	return Result{}, nil
}

func (j *pyJob) python() string     { return filepath.Join(j.venv, "bin", "python") }
func (j *pyJob) cachedVenv() string { return filepath.Join(j.cache, "venv") }
func (j *pyJob) metaFile() string   { return filepath.Join(j.cache, "venv.json") }

// pyPassEnvDeny are the app's PIP_ settings that would install somewhere
// else than the virtualenv or move the cache out of the build's own.
var pyPassEnvDeny = map[string]bool{
	"PIP_TARGET": true, "PIP_PREFIX": true, "PIP_ROOT": true, "PIP_USER": true,
	"PIP_PYTHON": true, "PIP_CACHE_DIR": true, "PIP_REQUIRE_VIRTUALENV": true,
	"UV_PROJECT_ENVIRONMENT": true, "UV_CACHE_DIR": true, "UV_PYTHON": true,
	"UV_PYTHON_DOWNLOADS": true, "UV_LINK_MODE": true, "UV_COMPILE_BYTECODE": true,
	"UV_NO_CACHE": true,
}

// pyEnv is what the build's Python commands get on top of the sandbox's
// environment: quiet defaults the app may override, the app's PIP_ and
// UV_ settings (index URLs, trusted hosts, find-links…), and the
// settings that keep everything inside the virtualenv and the cache.
func pyEnv(appEnv map[string]string, cache, venv string) []string {
	env := []string{
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PIP_PROGRESS_BAR=off",
		"PIP_ROOT_USER_ACTION=ignore",
		"UV_NO_PROGRESS=1",
	}
	keys := make([]string, 0, len(appEnv))
	for k := range appEnv {
		if (strings.HasPrefix(k, "PIP_") || strings.HasPrefix(k, "UV_")) && !pyPassEnvDeny[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+appEnv[k])
	}
	return append(env,
		"PIP_CACHE_DIR="+filepath.Join(cache, "pip"),
		"PIP_USER=0",
		"SOURCE_DATE_EPOCH="+pySourceDateEpoch,
		"PYTHONUNBUFFERED=1",
		"PYTHONNOUSERSITE=1",
		"VIRTUAL_ENV="+venv,
		"UV_PROJECT_ENVIRONMENT="+venv,
		"UV_CACHE_DIR="+filepath.Join(cache, "uv"),
		"UV_PYTHON="+filepath.Join(venv, "bin", "python"),
		"UV_PYTHON_DOWNLOADS=never",
		"UV_LINK_MODE=copy",
		"UV_COMPILE_BYTECODE=0",
	)
}

// command makes a sandboxed command in dir with the Python environment.
func (j *pyJob) command(dir, name string, args ...string) *Cmd {
	cmd := j.b.command(j.ctx, dir, nil, name, args...)
	path := ""
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	cmd.Env = append(cmd.Env, j.env...)
	if j.inVenv {
		cmd.Env = append(cmd.Env, "PATH="+filepath.Join(j.venv, "bin")+string(os.PathListSeparator)+path)
	}
	return cmd
}

// run runs a command with its output indented under the current heading.
func (j *pyJob) run(dir, name string, args ...string) error {
	return runTo(j.command(dir, name, args...), Indent(j.b.Out))
}

// output runs a command and returns its standard output; its standard
// error is shown to the user.
func (j *pyJob) output(dir, name string, args ...string) ([]byte, error) {
	return outputOf(j.command(dir, name, args...), j.b.Out)
}

// fail is the error of a step that failed for a reason outside the app.
func (j *pyJob) fail(err error, what string) error { return platformError(j.ctx, err, what) }

// pyProbeScript prints, as JSON, the interpreter's version and identity
// and what the app's pyproject.toml (if any) declares.
const pyProbeScript = `
import json, os, platform, sys
info = {
    "version": platform.python_version(),
    "interpreter": "|".join([sys.version, os.path.realpath(sys.executable), platform.machine()]),
}
if os.path.isfile("pyproject.toml"):
    try:
        import tomllib
    except ImportError:
        info["toml_error"] = "Python %s cannot read TOML (3.11 or later can)" % platform.python_version()
    else:
        try:
            with open("pyproject.toml", "rb") as f:
                doc = tomllib.load(f)
        except Exception as e:
            info["toml_error"] = str(e)
        else:
            project = doc.get("project")
            if not isinstance(project, dict):
                project = None
            deps = (project or {}).get("dependencies") or []
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                info["toml_error"] = "[project] dependencies must be a list of strings"
                deps = []
            info["pyproject"] = {
                "build_system": isinstance(doc.get("build-system"), dict),
                "project": project is not None,
                "name": str((project or {}).get("name") or ""),
                "dependencies": deps,
                "dynamic": [str(d) for d in (project or {}).get("dynamic") or []],
            }
print(json.dumps(info))
`

// probe asks the server's python3 who it is and reads pyproject.toml.
func (j *pyJob) probe() (pyInfo, error) {
	var info pyInfo
	out, err := j.output(j.b.Dir, "python3", "-c", pyProbeScript)
	if err != nil {
		if j.ctx.Err() != nil {
			return info, j.ctx.Err()
		}
		return info, fmt.Errorf("run python3 on the build server (is it installed?): %w", err)
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("read what python3 says about itself: %w", err)
	}
	return info, nil
}

// checkRequested warns when runtime.txt or .python-version asks for a
// Python the server does not have. The build goes on with the server's.
func (j *pyJob) checkRequested(installed string) error {
	for _, f := range []struct{ name, prefix string }{{"runtime.txt", "python-"}, {".python-version", ""}} {
		data, err := os.ReadFile(filepath.Join(j.b.Dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.name, err)
		}
		want := ""
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				want = strings.TrimPrefix(line, f.prefix)
				break
			}
		}
		if want == "" || pyVersionMatches(want, installed) {
			continue
		}
		fmt.Fprintf(j.b.Out, " !     %s asks for Python %s, but this server has Python %s: building with Python %s\n",
			f.name, want, installed, installed)
	}
	return nil
}

// pyVersionMatches reports whether the installed version (3.11.7) is
// what want asks for: 3, 3.11 or 3.11.7.
func pyVersionMatches(want, installed string) bool {
	return want == installed || strings.HasPrefix(installed, want+".")
}

// plan decides how to install the app's dependencies.
func (j *pyJob) plan(info pyInfo) (pyPlan, error) {
	dir := j.b.Dir
	if ok, err := isFile(filepath.Join(dir, "requirements.txt")); err != nil {
		return pyPlan{}, err
	} else if ok {
		files, err := pyRequirementFiles(dir, "requirements.txt")
		if err != nil {
			return pyPlan{}, err
		}
		key, err := pyHashFiles(dir, pyModeRequirements, files...)
		return pyPlan{mode: pyModeRequirements, key: key}, err
	}

	if info.TOMLError != "" {
		return pyPlan{}, skiff.Errorf(skiff.KindFailed, "fix pyproject.toml, or list the app's dependencies in a requirements.txt instead",
			"could not read pyproject.toml: %s", info.TOMLError)
	}
	pp := info.Pyproject
	if pp == nil {
		return pyPlan{}, fmt.Errorf("python3 did not read pyproject.toml")
	}
	if ok, err := isFile(filepath.Join(dir, "uv.lock")); err != nil {
		return pyPlan{}, err
	} else if ok {
		if j.run(dir, "uv", "--version") == nil {
			key, err := pyHashFiles(dir, pyModeUV, "pyproject.toml", "uv.lock")
			return pyPlan{mode: pyModeUV, key: key}, err
		}
		if j.ctx.Err() != nil {
			return pyPlan{}, j.ctx.Err()
		}
		fmt.Fprintf(j.b.Out, " !     The app has a uv.lock, but uv is not installed on this server: installing with pip,\n")
		fmt.Fprintf(j.b.Out, " !     which does not read uv.lock (versions come from pyproject.toml alone)\n")
	}
	key, err := pyHashFiles(dir, "pyproject", "pyproject.toml")
	if err != nil {
		return pyPlan{}, err
	}
	switch {
	case pp.BuildSystem || slices.Contains(pp.Dynamic, "dependencies"):
		// A package: only its build backend knows what it needs.
		return pyPlan{mode: pyModePackage, key: key, name: pp.Name}, nil
	case !pp.Project:
		fmt.Fprintf(j.b.Out, " !     pyproject.toml has no [project] table: there are no dependencies to install\n")
		return pyPlan{mode: pyModeNone, key: key}, nil
	}
	return pyPlan{mode: pyModeDeps, key: key, deps: pp.Dependencies}, nil
}

// install installs the app's dependencies into the virtualenv.
func (j *pyJob) install(plan pyPlan) error {
	pip := []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input"}
	var err error
	var msg, hint string
	switch plan.mode {
	case pyModeRequirements:
		fmt.Fprintf(j.b.Out, "-----> Installing requirements with pip\n")
		err = j.run(j.b.Dir, j.python(), append(pip, "-r", "requirements.txt")...)
		msg = "pip could not install the requirements"
		hint = "check the names and versions in requirements.txt (pip's output above says which one failed); " +
			"packages come from PyPI unless PIP_INDEX_URL says otherwise: skiff config set PIP_INDEX_URL=https://…/simple"
	case pyModeDeps:
		if len(plan.deps) == 0 {
			fmt.Fprintf(j.b.Out, "-----> pyproject.toml lists no dependencies\n")
			return nil
		}
		fmt.Fprintf(j.b.Out, "-----> Installing the dependencies in pyproject.toml with pip\n")
		err = j.run(j.b.Dir, j.python(), append(pip, plan.deps...)...)
		msg = "pip could not install the dependencies in pyproject.toml"
		hint = "check the names and versions in [project] dependencies of pyproject.toml (pip's output above says which one failed); " +
			"packages come from PyPI unless PIP_INDEX_URL says otherwise: skiff config set PIP_INDEX_URL=https://…/simple"
	case pyModePackage:
		fmt.Fprintf(j.b.Out, "-----> Installing the app's package with pip (pip install .)\n")
		err = j.run(j.b.Dir, j.python(), append(pip, ".")...)
		msg = "pip could not install the app's package"
		hint = "pyproject.toml has a [build-system], so the app is built as a package: check that it builds (pip install .), " +
			"or remove [build-system] to install only its dependencies, or list them in a requirements.txt; " +
			"packages come from PyPI unless PIP_INDEX_URL says otherwise"
	case pyModeUV:
		fmt.Fprintf(j.b.Out, "-----> Installing the dependencies in uv.lock with uv\n")
		err = j.run(j.b.Dir, "uv", "sync", "--frozen", "--no-dev", "--no-install-project")
		msg = "uv could not install the dependencies in uv.lock"
		hint = "check that uv.lock is up to date with pyproject.toml (uv lock), and that the index is reachable: " +
			"packages come from PyPI unless UV_INDEX_URL says otherwise"
	case pyModeNone:
		return nil
	}
	if err == nil {
		return nil
	}
	if j.ctx.Err() != nil {
		return j.ctx.Err()
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("run the installer: %w", err)
	}
	return skiff.Errorf(skiff.KindFailed, hint, "%s", msg)
}

// pyPruneScript prints, as a JSON list, the installed distributions that
// nothing the app requires needs any more. It prints null when it cannot
// tell (a requirement it cannot read, such as a path or -e), and then
// nothing is removed.
const pyPruneScript = `
import json, os, re, sys, sysconfig
from importlib import metadata
try:
    from pip._vendor.packaging.requirements import Requirement, InvalidRequirement
    from pip._vendor.packaging.utils import canonicalize_name
except ImportError:
    print("null"); sys.exit(0)

class Unknown(Exception):
    pass

def read(path, seen, out):
    path = os.path.abspath(path)
    if path in seen:
        return
    seen.add(path)
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\r?\n", "", f.read())
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        m = re.match(r"^(-r|--requirement)(\s*=?\s*)(\S+)$", line)
        if m:
            read(os.path.join(os.path.dirname(path), m.group(3)), seen, out)
            continue
        if line.startswith(("-e", "--editable")):
            raise Unknown(line)
        if line.startswith("-"):
            continue
        line = re.split(r"\s+--?[A-Za-z]", line)[0]
        try:
            out.append(Requirement(line))
        except InvalidRequirement:
            raise Unknown(line)

roots = []
try:
    if sys.argv[1] == "file":
        read(sys.argv[2], set(), roots)
    else:
        roots = [Requirement(r) for r in json.loads(sys.argv[2])]
    paths = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    dists = {}
    for d in metadata.distributions(path=paths):
        if d.metadata["Name"]:
            dists[canonicalize_name(d.metadata["Name"])] = d
    need = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in roots
            if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        name, extras = todo.pop()
        if name in need and extras <= need[name]:
            continue
        extras = need[name] = need.get(name, set()) | extras
        d = dists.get(name)
        if d is None:
            continue
        for spec in d.requires or []:
            try:
                r = Requirement(spec)
            except InvalidRequirement:
                raise Unknown(spec)
            if r.marker is not None and not any(r.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            todo.append((canonicalize_name(r.name), set(r.extras)))
except Unknown:
    print("null"); sys.exit(0)
keep = {"pip", "setuptools", "wheel"}
print(json.dumps(sorted(n for n in dists if n not in need and n not in keep)))
`

// prune removes from a reused virtualenv the packages that the app no
// longer requires, so that a build from a warm cache gives the app the
// same packages as one from a cold cache.
func (j *pyJob) prune(plan pyPlan) error {
	var args []string
	switch plan.mode {
	case pyModeRequirements:
		args = []string{"file", filepath.Join(j.b.Dir, "requirements.txt")}
	case pyModeDeps, pyModeNone:
		deps, _ := json.Marshal(append([]string{}, plan.deps...))
		args = []string{"list", string(deps)}
	case pyModePackage:
		if plan.name == "" {
			return nil
		}
		deps, _ := json.Marshal([]string{plan.name})
		args = []string{"list", string(deps)}
	default: // uv sync removes what the lock does not list
		return nil
	}
	out, err := j.output(j.b.Dir, j.python(), append([]string{"-c", pyPruneScript}, args...)...)
	if err != nil {
		return j.fail(err, "find unused packages")
	}
	var remove []string
	if err := json.Unmarshal(out, &remove); err != nil {
		return fmt.Errorf("find unused packages: %w", err)
	}
	if len(remove) == 0 {
		return nil
	}
	fmt.Fprintf(j.b.Out, "-----> Removing packages no longer required: %s\n", strings.Join(remove, ", "))
	uninstall := append([]string{"-m", "pip", "uninstall", "--disable-pip-version-check", "--yes"}, remove...)
	if err := j.run(j.b.Dir, j.python(), uninstall...); err != nil {
		return j.fail(err, "remove unused packages")
	}
	return nil
}

// pyCompileScript compiles the .py files of the app (argv[1], without
// its .venv) and of the virtualenv (argv[2]) to hash-checked bytecode,
// skipping files whose bytecode is current. Files that do not compile
// are left alone: Python reports them when (if ever) they are imported.
const pyCompileScript = `
import importlib.util, os, py_compile, sys
from concurrent.futures import ProcessPoolExecutor

SKIP = {"__pycache__", ".git", ".hg", ".svn", "node_modules"}

def sources(top, skip_venv):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP and not (skip_venv and root == top and d == ".venv")]
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(root, f)

def stale(path):
    try:
        with open(importlib.util.cache_from_source(path), "rb") as f:
            head = f.read(16)
        with open(path, "rb") as f:
            source = f.read()
    except OSError:
        return True
    return not (head[:4] == importlib.util.MAGIC_NUMBER and head[4:8] == b"\x03\x00\x00\x00"
                and head[8:16] == importlib.util.source_hash(source))

def compile(path):
    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        return True
    except (py_compile.PyCompileError, OSError, ValueError):
        return False

todo = [p for p in list(sources(sys.argv[1], True)) + list(sources(sys.argv[2], False)) if stale(p)]
if len(todo) > 64:
    with ProcessPoolExecutor() as pool:
        done = list(pool.map(compile, todo, chunksize=32))
else:
    done = [compile(p) for p in todo]
if todo:
    n = sum(done)
    print("%d file%s compiled" % (n, "" if n == 1 else "s"))
`

// loadMeta reads what the cache holds; an unreadable file means nothing.
func (j *pyJob) loadMeta() pyMeta {
	var m pyMeta
	data, err := os.ReadFile(j.metaFile())
	if err != nil || json.Unmarshal(data, &m) != nil {
		return pyMeta{}
	}
	return m
}

// save keeps the virtualenv in the cache for the next build. A failure
// costs the next build time, not this one its success: it is reported
// and the build goes on.
func (j *pyJob) save(m pyMeta) {
	err := j.saveVenv(m)
	if err != nil {
		if j.ctx.Err() != nil {
			return
		}
		fmt.Fprintf(j.b.Out, " !     Could not keep the virtualenv for the next build: %v\n", err)
		os.RemoveAll(j.cachedVenv())
		os.Remove(j.metaFile())
	}
}

func (j *pyJob) saveVenv(m pyMeta) error {
	// The meta file goes first and comes back last: a venv without one
	// is never reused.
	if err := os.Remove(j.metaFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := j.cachedVenv() + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := j.run(j.b.Dir, "cp", "-a", j.venv, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("copy: %w", err)
	}
	if err := os.RemoveAll(j.cachedVenv()); err != nil {
		return err
	}
	if err := os.Rename(tmp, j.cachedVenv()); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(j.metaFile(), data, 0o644)
}

// pyRequirementFiles lists file and every file it includes with -r or
// -c, as paths relative to dir. Files outside dir are left out: pip
// reads them, but they are not the app's to hash.
func pyRequirementFiles(dir, file string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	var walk func(rel string) error
	walk = func(rel string) error {
		rel = filepath.Clean(rel)
		if seen[rel] || !filepath.IsLocal(rel) {
			return nil
		}
		seen[rel] = true
		f, err := os.Open(filepath.Join(dir, rel))
		if errors.Is(err, fs.ErrNotExist) && len(files) > 0 {
			return nil // pip says so, better than we would
		}
		if err != nil {
			return err
		}
		defer f.Close()
		files = append(files, rel)
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			m := pyIncludeRe.FindStringSubmatch(strings.TrimSpace(sc.Text()))
			if m == nil {
				continue
			}
			if err := walk(filepath.Join(filepath.Dir(rel), m[2])); err != nil {
				return err
			}
		}
		return sc.Err()
	}
	return files, walk(file)
}

var pyIncludeRe = regexp.MustCompile(`^(-r|-c|--requirement|--constraint)\s*=?\s*(\S+)`)

// pyHashFiles hashes mode and the named files of dir, names included.
func pyHashFiles(dir, mode string, files ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", mode)
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", name)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pyScriptHeader replaces the shebang of a virtualenv's scripts. It is
// both a shell script and a Python string: sh runs the python next to
// the script (wherever the tree is), and Python skips the string. pip
// writes the same for paths too long for a shebang.
const pyScriptHeader = "#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")/%s\"%s \"$0\" \"$@\"\n' '''\n"

// pyRelocate makes the virtualenv at venv work from any path: it rewrites
// the scripts that name the build's interpreter, checks that the python
// links lead out of the build tree by absolute path, points the activate
// scripts at $HOME/.venv and makes .pth paths into the tree relative. It
// returns warnings about what it cannot relocate.
func pyRelocate(venv, tree string) ([]string, error) {
	bin := filepath.Join(venv, "bin")
	entries, err := os.ReadDir(bin)
	if err != nil {
		return nil, fmt.Errorf("relocate the virtualenv: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(bin, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			if err := pyRelocateLink(path, venv, tree); err != nil {
				return nil, err
			}
		case e.Type().IsRegular():
			if err := pyRelocateScript(path, bin); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range []string{"activate", "activate.csh", "activate.fish"} {
		path := filepath.Join(bin, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("relocate the virtualenv: %w", err)
		}
		if fixed := bytes.ReplaceAll(data, []byte(venv), []byte("$HOME/.venv")); !bytes.Equal(fixed, data) {
			if err := pyRewrite(path, fixed); err != nil {
				return nil, err
			}
		}
	}
	cfg, err := os.ReadFile(filepath.Join(venv, "pyvenv.cfg"))
	if err != nil {
		return nil, fmt.Errorf("relocate the virtualenv: %w", err)
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "home" && pyWithin(strings.TrimSpace(v), tree) {
			return nil, fmt.Errorf("relocate the virtualenv: its interpreter %s is inside the build tree", strings.TrimSpace(v))
		}
	}
	return pyRelocatePth(venv, tree)
}

// pyRelocateScript gives a script whose shebang names the virtualenv's
// python the relocatable header instead.
func pyRelocateScript(path, bin string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	head := make([]byte, 2+len(bin)+256)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	if !bytes.HasPrefix(head, []byte("#!")) || !bytes.Contains(head, []byte(bin+"/")) {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	interp, args, rest, ok := pyParseShebang(data, bin)
	if !ok {
		return nil
	}
	if args != "" {
		args = " '" + strings.ReplaceAll(args, "'", `'\''`) + "'"
	}
	fixed := append([]byte(fmt.Sprintf(pyScriptHeader, interp, args)), rest...)
	return pyRewrite(path, fixed)
}

// pyLongShebangRe is the header pip and uv write instead of a shebang
// that would be too long.
var pyLongShebangRe = regexp.MustCompile(`^#!/bin/sh\n'''exec' "([^"\n]+)" "\$0" "\$@"\n' '''\n`)

// pyParseShebang finds the interpreter a script names in bin: its base
// name, the interpreter's arguments, and the script after the header.
func pyParseShebang(data []byte, bin string) (interp, args string, rest []byte, ok bool) {
	var path string
	if m := pyLongShebangRe.FindSubmatchIndex(data); m != nil {
		path, rest = string(data[m[2]:m[3]]), data[m[1]:]
	} else {
		line, after, found := bytes.Cut(data, []byte("\n"))
		if !found {
			return "", "", nil, false
		}
		path, args, _ = strings.Cut(strings.TrimSpace(string(line[2:])), " ")
		rest = after
	}
	dir, name := filepath.Split(path)
	if filepath.Clean(dir) != bin || !strings.HasPrefix(name, "python") {
		return "", "", nil, false
	}
	return name, strings.TrimSpace(args), rest, true
}

// pyRelocateLink checks a link in the virtualenv's bin: one that stays in
// the virtualenv is made relative, one that leaves it must lead out of
// the tree by absolute path.
func pyRelocateLink(path, venv, tree string) error {
	target, err := os.Readlink(path)
	if err != nil {
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	abs := target
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(filepath.Dir(path), target)
	}
	var fixed string
	switch {
	case pyWithin(abs, venv):
		if !filepath.IsAbs(target) {
			return nil
		}
		if fixed, err = filepath.Rel(filepath.Dir(path), abs); err != nil {
			return err
		}
	case pyWithin(abs, tree):
		return fmt.Errorf("relocate the virtualenv: %s points into the build tree (%s)", path, target)
	case filepath.IsAbs(target):
		return nil
	default:
		fixed = filepath.Clean(abs)
	}
	tmp := path + ".relocate"
	os.Remove(tmp)
	if err := os.Symlink(fixed, tmp); err != nil {
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	return nil
}

// pyRelocatePth makes the absolute paths into the tree that .pth files of
// site-packages add to sys.path (pip install -e of a path in the app)
// relative to site-packages, as the site module allows. Editable installs
// that hide their paths in code cannot be fixed: they are reported.
func pyRelocatePth(venv, tree string) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages"))
	if err != nil {
		return nil, err
	}
	var warnings []string
	for _, site := range dirs {
		entries, err := os.ReadDir(site)
		if err != nil {
			return nil, fmt.Errorf("relocate the virtualenv: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !(strings.HasSuffix(name, ".pth") || strings.HasPrefix(name, "__editable__")) {
				continue
			}
			path := filepath.Join(site, name)
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("relocate the virtualenv: %w", err)
			}
			if !bytes.Contains(data, []byte(tree)) {
				continue
			}
			lines := strings.Split(string(data), "\n")
			fixable := strings.HasSuffix(name, ".pth")
			for i, line := range lines {
				l := strings.TrimSpace(line)
				if !strings.Contains(l, tree) {
					continue
				}
				if !fixable || strings.HasPrefix(l, "import") || !pyWithin(l, tree) {
					fixable = false
					break
				}
				rel, err := filepath.Rel(site, l)
				if err != nil {
					fixable = false
					break
				}
				lines[i] = rel
			}
			if !fixable {
				warnings = append(warnings, fmt.Sprintf("%s refers to the build directory and will not work at run time: "+
					"install the app's own code without -e (or leave it out: the app's root is its working directory)", name))
				continue
			}
			if err := pyRewrite(path, []byte(strings.Join(lines, "\n"))); err != nil {
				return nil, err
			}
		}
	}
	return warnings, nil
}

// pyRewrite replaces a file's content in place, keeping its owner and mode.
func pyRewrite(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0); err != nil {
		return fmt.Errorf("relocate %s: %w", path, err)
	}
	return nil
}

// pyWithin reports whether path is dir or inside it.
func pyWithin(path, dir string) bool {
	rel, err := filepath.Rel(dir, filepath.Clean(path))
	return err == nil && filepath.IsLocal(rel)
}

// pyProfile is sourced before every process of the app starts, with HOME
// at the app's root.
const pyProfile = `# Written by Skiff's python buildpack: run the app in its virtualenv.
export PATH="$HOME/.venv/bin:$PATH"
export VIRTUAL_ENV="$HOME/.venv"
export PYTHONUNBUFFERED=1
unset PYTHONHOME
`

func (j *pyJob) writeProfile() error {
	err := writeInSandbox(j.ctx, j.b, j.b.Dir,
		sandboxFile{name: ".profile.d/", mode: 0o755},
		sandboxFile{name: ".profile.d/python.sh", mode: 0o644, data: []byte(pyProfile)})
	if err != nil {
		return fmt.Errorf("write .profile.d/python.sh: %w", err)
	}
	return nil
}

// pyExists reports whether anything, even a dangling link, is at name.
func pyExists(name string) (bool, error) {
	_, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
