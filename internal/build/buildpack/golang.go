package buildpack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/version"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Go returns the buildpack for Go modules: an app with a go.mod at its
// root. It builds every main package of the module into bin/, as Heroku's
// Go buildpack does, so that a Procfile naming the binary (web:
// go-getting-started) works unchanged.
//
// The go command is the one on the sandbox's PATH. Its module and build
// caches live in CacheDir/go; both are safe to share between Go versions
// (the build cache keys every entry by the toolchain that made it, and
// the module cache holds checksummed sources only).
func Go() Buildpack { return goPack{} }

type goPack struct{}

func (goPack) Name() string { return "go" }

func (goPack) Detect(dir string) (bool, error) { return hasFile(dir, "go.mod") }

// goPassEnv are the app's config vars that reach the go command: where
// modules come from and how they are built. Other config vars (GOOS,
// DATABASE_URL…) stay out: a GOOS=windows meant for something else must
// not produce binaries that cannot run here.
var goPassEnv = []string{
	"GOPROXY", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOSUMDB", "GOINSECURE",
	"GOAUTH", "GOTOOLCHAIN", "GOEXPERIMENT", "GOAMD64", "GOARM64", "CGO_ENABLED",
}

func (p goPack) Compile(ctx context.Context, b *Build) (Result, error) {
	fmt.Fprintln(b.Out, "-----> Go app detected")
	mod, err := readGoMod(filepath.Join(b.Dir, "go.mod"))
	if err != nil {
		return Result{}, err
	}
	cache := filepath.Join(b.CacheDir, "go")
	if err := b.MkdirAll(ctx, cache); err != nil {
		return Result{}, fmt.Errorf("go cache: %w", err)
	}
	if err := goTelemetryOff(ctx, b, cache); err != nil {
		return Result{}, err
	}
	vendored, err := isDir(filepath.Join(b.Dir, "vendor"))
	if err != nil {
		return Result{}, err
	}
	env := goEnv(b.Env, cache, vendored)

	installed, err := goVersion(ctx, b, env)
	if err != nil {
		return Result{}, err
	}
	fmt.Fprintf(b.Out, "-----> Using %s\n", installed)
	if err := checkGoVersion(mod, installed, b.Env["GOTOOLCHAIN"], b.Out); err != nil {
		return Result{}, err
	}
	if vendored {
		fmt.Fprintln(b.Out, "       Using the vendor directory (-mod=vendor)")
	}

	specs := mod.install
	if s := strings.Fields(b.Env["GO_INSTALL_PACKAGE_SPEC"]); len(s) > 0 {
		specs = s
	}
	if len(specs) == 0 {
		specs = []string{"./..."}
	}
	fmt.Fprintf(b.Out, "-----> Finding main packages in %s\n", strings.Join(specs, " "))
	mains, err := goMainPackages(ctx, b, env, specs)
	if err != nil {
		return Result{}, err
	}

	args := append([]string{"build", "-trimpath", "-o", "bin/"}, mains...)
	if len(mains) == 0 {
		// Nothing to put in bin/, but build anyway: a package that does
		// not compile is a likelier cause than a module without commands,
		// and the compiler says which.
		args = append([]string{"build"}, specs...)
	}
	fmt.Fprintf(b.Out, "-----> Running: go %s\n", strings.Join(args, " "))
	if out, err := sandboxRun(ctx, b, env, "go", args...); err != nil {
		return Result{}, goBuildError(ctx, "go build", err, out)
	}
	if len(mains) == 0 {
		return Result{}, skiff.Errorf(skiff.KindFailed,
			"add a main package (package main with a func main) to the module, or name the packages to build with GO_INSTALL_PACKAGE_SPEC",
			"no main package found in %s", strings.Join(specs, " "))
	}

	var bins []string
	for _, pkg := range mains {
		name := goExecName(pkg)
		info, err := os.Stat(filepath.Join(b.Dir, "bin", name))
		if err != nil {
			return Result{}, fmt.Errorf("go build: %s: %w", pkg, err)
		}
		fmt.Fprintf(b.Out, "       Built bin/%s (%s)\n", name, skiff.HumanBytes(info.Size()))
		bins = append(bins, name)
	}
	// Heroku gives Go apps no default process; one command can only be
	// the web process, so that one is a safe default. The Procfile wins.
	var res Result
	if len(bins) == 1 {
		res.Processes = map[string]string{"web": bins[0]}
	}
	return res, nil
}

// goTelemetryOff turns the go command's telemetry off for the builds of
// the app: it would count into the build's home, and start a process of
// its own that outlives the command.
func goTelemetryOff(ctx context.Context, b *Build, cache string) error {
	dir := filepath.Join(cache, "config", "go", "telemetry")
	cmd := b.Sandbox.Command(ctx, "sh", "-c", `mkdir -p "$1" && echo off > "$1/mode"`, "sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("go telemetry off: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// goEnv is the environment of every go command of a build.
func goEnv(appEnv map[string]string, cache string, vendored bool) []string {
	env := []string{
		"GOMODCACHE=" + filepath.Join(cache, "mod"),
		"GOCACHE=" + filepath.Join(cache, "build"),
		"GOPATH=" + filepath.Join(cache, "path"),
		"GOFLAGS=" + goFlags(appEnv["GOFLAGS"], vendored),
		// Where go keeps its settings, telemetry's among them (off).
		"XDG_CONFIG_HOME=" + filepath.Join(cache, "config"),
	}
	if _, ok := appEnv["GOTOOLCHAIN"]; !ok {
		// Never download a toolchain behind the user's back: the build
		// uses the platform's go unless the app asks for another.
		env = append(env, "GOTOOLCHAIN=local")
	}
	for _, k := range goPassEnv {
		if v, ok := appEnv[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	var cgo []string
	for k, v := range appEnv {
		if strings.HasPrefix(k, "CGO_") && k != "CGO_ENABLED" {
			cgo = append(cgo, k+"="+v)
		}
	}
	sort.Strings(cgo)
	return append(env, cgo...)
}

// goFlags merges the app's GOFLAGS with the build's own: -modcacherw, so
// that the builder can clean and pack the module cache (go makes it
// read-only otherwise), and -mod=vendor when the app vendors its
// dependencies and did not choose a -mod itself.
func goFlags(app string, vendored bool) string {
	flags := strings.Fields(app)
	has := func(name string) bool {
		for _, f := range flags {
			f = strings.TrimLeft(f, "-")
			if f == name || strings.HasPrefix(f, name+"=") {
				return true
			}
		}
		return false
	}
	if !has("modcacherw") {
		flags = append(flags, "-modcacherw")
	}
	if vendored && !has("mod") {
		flags = append(flags, "-mod=vendor")
	}
	return strings.Join(flags, " ")
}

// goVersion asks the go command of the sandbox for its version, e.g.
// go1.26.8.
func goVersion(ctx context.Context, b *Build, env []string) (string, error) {
	cmd := b.Sandbox.Command(ctx, "go", "env", "GOVERSION")
	cmd.Dir = b.Dir
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The command did not run: a fault of the platform, not the app.
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", skiff.Errorf(skiff.KindFailed, "fix the Go settings in the app's config (GOTOOLCHAIN, GOFLAGS…) and push again",
			"go env GOVERSION failed: %s", strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// checkGoVersion fails the build when go.mod needs a newer Go than the
// installed one and the go command would not be allowed to fetch it.
func checkGoVersion(mod goMod, installed, toolchain string, out io.Writer) error {
	if !version.IsValid(installed) || (toolchain != "" && toolchain != "local") {
		return nil
	}
	if need := "go" + mod.goLine; mod.goLine != "" && version.IsValid(need) && version.Compare(need, installed) > 0 {
		return skiff.Errorf(skiff.KindFailed,
			"set GOTOOLCHAIN=auto in the app's config to let go download it, or lower the go line of go.mod",
			"go.mod requires %s, but this builder has %s", need, installed)
	}
	if mod.toolchain != "" && version.IsValid(mod.toolchain) && version.Compare(mod.toolchain, installed) > 0 {
		fmt.Fprintf(out, "       go.mod prefers %s (toolchain line); building with %s. Set GOTOOLCHAIN=auto in the app's config to use %s\n",
			mod.toolchain, installed, mod.toolchain)
	}
	return nil
}

// goMainPackages lists the import paths of the main packages among specs.
func goMainPackages(ctx context.Context, b *Build, env []string, specs []string) ([]string, error) {
	// -e: a package that does not compile is reported by go build, which
	// says it better than go list.
	args := append([]string{"list", "-e", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`}, specs...)
	cmd := b.Sandbox.Command(ctx, "go", args...)
	cmd.Dir = b.Dir
	cmd.Env = append(cmd.Env, env...)
	tail := &tailWriter{max: 16 << 10}
	errOut := Indent(b.Out)
	cmd.Stderr = io.MultiWriter(errOut, tail)
	out, err := cmd.Output()
	errOut.Flush()
	if err != nil {
		return nil, goBuildError(ctx, "go list", err, tail.String())
	}
	var mains []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if pkg := strings.TrimSpace(sc.Text()); pkg != "" {
			mains = append(mains, pkg)
			fmt.Fprintf(b.Out, "       %s\n", pkg)
		}
	}
	return mains, nil
}

// goBuildError turns a failed go command into an error for the user. Its
// output has been streamed already; the hint says what to do about the
// commonest causes.
func goBuildError(ctx context.Context, what string, err error, output string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		// The command did not run: a fault of the platform, not the app.
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case strings.Contains(output, "missing go.sum entry"), strings.Contains(output, "updates to go.mod needed"),
		strings.Contains(output, "go.mod file indicates go"), strings.Contains(output, "no required module provides package"):
		return skiff.Errorf(skiff.KindFailed, "run go mod tidy, commit go.mod and go.sum, and push again",
			"%s failed: go.mod and go.sum do not match the code", what)
	case strings.Contains(output, "inconsistent vendoring"):
		return skiff.Errorf(skiff.KindFailed, "run go mod vendor (or delete vendor/), commit, and push again",
			"%s failed: vendor/ does not match go.mod", what)
	case strings.Contains(output, "reading http"), strings.Contains(output, "dial tcp"),
		strings.Contains(output, "unrecognized import path"), strings.Contains(output, "no such host"),
		strings.Contains(output, "410 Gone"), strings.Contains(output, "404 Not Found"):
		return skiff.Errorf(skiff.KindFailed,
			"check the module paths and versions in go.mod; for private modules set GOPRIVATE and GOPROXY in the app's config",
			"%s failed: a dependency could not be downloaded", what)
	}
	return skiff.Errorf(skiff.KindFailed, "fix the errors above and push again", "%s failed", what)
}

// goMod is what a build needs of go.mod.
type goMod struct {
	goLine    string   // the go directive, e.g. 1.22 or 1.22.1
	toolchain string   // the toolchain directive, e.g. go1.23.4
	install   []string // package patterns of a "// +heroku install" comment
}

func readGoMod(file string) (goMod, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return goMod{}, fmt.Errorf("read go.mod: %w", err)
	}
	return parseGoMod(data)
}

// parseGoMod reads the directives a build cares about. The go command
// reads the whole file and reports its errors in its own words.
func parseGoMod(data []byte) (goMod, error) {
	var m goMod
	depth := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		comment := ""
		if i := strings.Index(line, "//"); i >= 0 {
			line, comment = strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+2:])
		}
		if f := strings.Fields(comment); len(f) >= 2 && f[0] == "+heroku" && f[1] == "install" {
			m.install = f[2:]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasSuffix(line, "("):
			depth++
		case line == ")":
			depth--
		case depth > 0:
		case f[0] == "go":
			if len(f) != 2 || !version.IsValid("go"+f[1]) {
				return m, skiff.Errorf(skiff.KindFailed, "write the go line as go 1.22 or go 1.22.1",
					"go.mod:%d: invalid go version %q", n, strings.TrimPrefix(line, "go "))
			}
			m.goLine = f[1]
		case f[0] == "toolchain":
			if len(f) == 2 {
				m.toolchain = f[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read go.mod: %w", err)
	}
	return m, nil
}

// goExecName is the name go build gives the binary of the main package
// importPath: its last element, or the one before a major version suffix
// (example.com/tool/v2 builds "tool").
func goExecName(importPath string) string {
	_, elem := path.Split(importPath)
	if elem != importPath && isMajorVersion(elem) {
		_, elem = path.Split(path.Dir(importPath))
	}
	return elem
}

func isMajorVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' || s[1] == '1' && len(s) == 2 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
