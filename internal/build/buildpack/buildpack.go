// Package buildpack turns an app's source tree into a runnable tree: it
// detects what kind of app it is (Go, Node.js, Python, a static site, or
// anything a Heroku v2 buildpack knows) and compiles it in place,
// installing dependencies with caches that persist between builds.
//
// The builder role owns everything around a compile: fetching the source,
// the sandbox (the app's build user, its own HOME and TMPDIR, a time
// limit, and as root its own namespaces and cgroup), the per-app cache
// directory, and packing the result into an image. A buildpack only reads
// and writes the tree and its own cache subdirectory, and runs commands
// through the Sandbox it is given; one that needs more of the server's
// files says so (HostReader).
package buildpack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Build is one compile of an app.
type Build struct {
	// App is the app's name.
	App string
	// Dir is the app's tree. The buildpack compiles it in place; what is
	// in it afterwards becomes the image, which runs with Dir's contents
	// as its working directory and HOME (Heroku's /app). Nothing may
	// depend on Dir's own path at run time: it is not where the image
	// will be.
	Dir string
	// CacheDir persists between builds of this app and of no other. Each
	// buildpack keeps to its own subdirectory of it (CacheDir/go,
	// CacheDir/nodejs…). It may be empty or stale: a buildpack must work
	// from an empty cache and must not trust a cache made by another
	// version of a tool without checking.
	CacheDir string
	// Env is the app's config vars, as the build sees them (Heroku's
	// ENV_DIR). Buildpacks read their settings from it (PIP_INDEX_URL,
	// GOPROXY, NPM_CONFIG_REGISTRY…) and pass it to the tools they run.
	Env map[string]string
	// Out receives the build's output for the user. Headings are written as
	// "-----> Installing dependencies", details indented by seven spaces;
	// Indent wraps a writer for a tool's own output.
	Out io.Writer
	// Sandbox runs the build's commands.
	Sandbox Sandbox
}

// MkdirAll makes a directory, and its parents, as the sandbox's user: a
// cache directory must belong to the user the build's tools run as.
func (b *Build) MkdirAll(ctx context.Context, dir string) error {
	cmd := b.Sandbox.Command(ctx, "mkdir", "-p", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mkdir %s: %v: %s", dir, err, bytes.TrimSpace(out))
	}
	return nil
}

// Sandbox makes the commands a build runs. The builder's sandbox runs
// each in a sandbox of its own (package isolate) where only the build's
// directories and the app's cache are writable, as the app's build user,
// never root, with HOME and TMPDIR of the build's own, a PATH with the
// platform's toolchains, and kills them (and everything they started)
// when ctx ends.
type Sandbox interface {
	// Command returns a command ready to run. Its Env holds the base
	// environment (PATH, HOME, TMPDIR, LANG); the caller appends to it,
	// sets Dir, Stdout and Stderr, and runs it with the Cmd's own Run,
	// Output or CombinedOutput (or Start and Wait).
	Command(ctx context.Context, name string, args ...string) *Cmd
}

// Cmd is a command a Sandbox made: an exec.Cmd, set up as one, whose
// sandbox may need a last word before it starts.
type Cmd struct {
	*exec.Cmd
	// Seal, when not nil, is called once the caller has set the command
	// up, just before it starts; its error is the start's. A sandbox
	// that runs commands through a wrapper takes the environment and
	// directory the caller set here.
	Seal func() error
}

func (c *Cmd) seal() error {
	if c.Seal == nil {
		return nil
	}
	return c.Seal()
}

// Start seals and starts the command.
func (c *Cmd) Start() error {
	if err := c.seal(); err != nil {
		return err
	}
	return c.Cmd.Start()
}

// Run seals and runs the command.
func (c *Cmd) Run() error {
	if err := c.seal(); err != nil {
		return err
	}
	return c.Cmd.Run()
}

// Output seals and runs the command and returns its standard output.
func (c *Cmd) Output() ([]byte, error) {
	if err := c.seal(); err != nil {
		return nil, err
	}
	return c.Cmd.Output()
}

// CombinedOutput seals and runs the command and returns its standard
// output and error.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if err := c.seal(); err != nil {
		return nil, err
	}
	return c.Cmd.CombinedOutput()
}

// HostReader is implemented by a buildpack whose commands read files of
// the build server beyond the platform's toolchains, the tree and the
// cache (a Heroku v2 buildpack in a directory of the server): the
// sandbox shows them, read-only, at the same paths.
type HostReader interface {
	HostPaths() []string
}

// Result is what a compile found out about the app.
type Result struct {
	// Processes are the default process types (e.g. web: npm start). The
	// app's Procfile overrides them type by type.
	Processes map[string]string
}

// Buildpack is one way of building an app.
type Buildpack interface {
	// Name is the buildpack's short name: go, nodejs, python, static, or a
	// Heroku v2 buildpack's own name.
	Name() string
	// Detect reports whether the tree at dir is an app of this kind.
	Detect(dir string) (bool, error)
	// Compile builds b.Dir in place.
	Compile(ctx context.Context, b *Build) (Result, error)
}

// Direct is a Sandbox that runs commands as the calling user, with the
// given HOME and TMPDIR and the calling process's PATH. It is for tests
// and for a builder that does not run as root.
type Direct struct {
	Home, Tmp string
}

// Command implements Sandbox.
func (d Direct) Command(ctx context.Context, name string, args ...string) *Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.Home, "TMPDIR=" + d.Tmp, "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return &Cmd{Cmd: cmd}
}

// Indent wraps w so that every line written to it is indented by seven
// spaces, as the details under a "-----> " heading are. Write whole lines
// for the best result; a partial last line is held until Flush.
func Indent(w io.Writer) *Indenter { return &Indenter{w: w} }

// Indenter is the writer Indent returns.
type Indenter struct {
	w   io.Writer
	buf []byte
}

func (in *Indenter) Write(p []byte) (int, error) {
	in.buf = append(in.buf, p...)
	for {
		i := bytes.IndexByte(in.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(in.buf[:i]), "\r")
		in.buf = in.buf[i+1:]
		if _, err := fmt.Fprintf(in.w, "       %s\n", line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes a partial last line, if any.
func (in *Indenter) Flush() error {
	if len(in.buf) == 0 {
		return nil
	}
	line := string(in.buf)
	in.buf = nil
	_, err := fmt.Fprintf(in.w, "       %s\n", line)
	return err
}

// Helpers shared by the buildpacks.

// command makes a sandboxed command in dir with env added to the
// sandbox's own environment.
func (b *Build) command(ctx context.Context, dir string, env []string, name string, args ...string) *Cmd {
	cmd := b.Sandbox.Command(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// flushWriter is an output that holds a partial line until flushed, as
// an Indenter does.
type flushWriter interface {
	io.Writer
	Flush() error
}

// runTo runs cmd with its standard output and error to out, flushed
// afterwards.
func runTo(cmd *Cmd, out flushWriter) error {
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// outputOf runs cmd and returns its standard output; its standard error
// goes to w, indented.
func outputOf(cmd *Cmd, w io.Writer) ([]byte, error) {
	var stdout bytes.Buffer
	errs := Indent(w)
	cmd.Stdout, cmd.Stderr = &stdout, errs
	err := cmd.Run()
	errs.Flush()
	return stdout.Bytes(), err
}

// platformError is the error of a step that failed for a reason outside
// the app: the cancellation if the build was cancelled, else err with
// what was being done.
func platformError(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %w", what, err)
}

// sandboxRun runs a command of the build in b.Dir with env added to the
// sandbox's own, streaming its output (stdout and stderr, in order)
// indented to b.Out. It returns the last part of that output, for errors
// that depend on what the tool said.
func sandboxRun(ctx context.Context, b *Build, env []string, name string, args ...string) (string, error) {
	cmd := b.command(ctx, b.Dir, env, name, args...)
	tail := &tailWriter{max: 32 << 10}
	out := Indent(b.Out)
	// One writer for both: exec then copies them through one pipe, in
	// the order the tool wrote them.
	w := io.MultiWriter(out, tail)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	out.Flush()
	return tail.String(), err
}

// sandboxOutput runs a command of the build in b.Dir and returns its
// output, trimmed. It is for short queries (versions), whose failure is
// the platform's, not the app's.
func sandboxOutput(ctx context.Context, b *Build, env []string, name string, args ...string) (string, error) {
	cmd := b.command(ctx, b.Dir, env, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		line := strings.Join(append([]string{name}, args...), " ")
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%s: %w: %s", line, err, msg)
		}
		return "", fmt.Errorf("%s: %w", line, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

// isFile reports whether name exists and is not a directory.
func isFile(name string) (bool, error) {
	info, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.Mode().IsRegular(), nil
}

// hasFile reports whether dir holds a file of one of the names: how the
// built-in buildpacks detect their apps.
func hasFile(dir string, names ...string) (bool, error) {
	for _, name := range names {
		if ok, err := isFile(filepath.Join(dir, name)); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// isDir reports whether name exists and is a directory.
func isDir(name string) (bool, error) {
	info, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.IsDir(), nil
}
