package buildpack

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// HerokuV2 returns a buildpack that runs a Heroku v2 buildpack
// (https://devcenter.heroku.com/articles/buildpack-api): a directory with
// bin/detect, bin/compile and (optionally) bin/release.
//
// source is either a directory on the build server or a git URL, with an
// optional #ref naming a branch, tag or commit (IsV2Source tells them from
// the names of the built-in buildpacks). A git buildpack is cloned into
// CacheDir/herokuv2/buildpacks and brought up to date on every build,
// except when its ref is a commit; when the fetch fails, the copy from
// the last build is used.
//
// Every script runs in the build's sandbox. Detect cannot run one (it is
// given no sandbox), so it says yes: the buildpack is the one the app
// asked for, and Compile runs bin/detect first, failing the build if it
// says no. The buildpack's own output is passed through line by line, as
// Heroku buildpacks write their own "-----> " headings.
func HerokuV2(source string) Buildpack { return &herokuV2{source: source} }

// IsV2Source reports whether s names a Heroku v2 buildpack by where it is
// (a git URL or an absolute path on the server) rather than a built-in
// buildpack by name (go, nodejs, python, static).
func IsV2Source(s string) bool {
	_, _, git := v2ParseSource(s)
	return git || filepath.IsAbs(s)
}

type herokuV2 struct {
	source string

	mu   sync.Mutex
	name string // what bin/detect said, once Compile ran it; guarded by mu
}

// Name is the name bin/detect printed, or before Compile has run it, the
// base name of the buildpack's repository or directory.
func (h *herokuV2) Name() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.name != "" {
		return h.name
	}
	return v2BaseName(h.source)
}

var _ HostReader = (*herokuV2)(nil)

// HostPaths implements HostReader: a buildpack in a directory of the
// server, or cloned from a repository there.
func (h *herokuV2) HostPaths() []string {
	url, _, git := v2ParseSource(h.source)
	if git {
		url = strings.TrimPrefix(url, "file://")
	}
	if !filepath.IsAbs(url) {
		return nil
	}
	return []string{filepath.Clean(url)}
}

// Detect says yes: bin/detect runs in the sandbox, from Compile.
func (h *herokuV2) Detect(dir string) (bool, error) { return true, nil }

// v2Hint is the hint of errors in naming the buildpack.
const v2Hint = "SKIFF_BUILDPACK must name a Heroku v2 buildpack: a git URL (with #branch, #tag or #commit if needed) " +
	"or a directory on the server, holding bin/detect, bin/compile and bin/release"

// v2Job is one compile with a v2 buildpack.
type v2Job struct {
	ctx  context.Context
	b    *Build
	root string // CacheDir/herokuv2
	key  string // hash of the source: names its clone and its cache
	name string
}

func (h *herokuV2) Compile(ctx context.Context, b *Build) (Result, error) {
	j := &v2Job{ctx: ctx, b: b, root: filepath.Join(b.CacheDir, "herokuv2"), key: v2Hash(h.source), name: h.Name()}
	cache := filepath.Join(j.root, "cache", j.key)
	// Made by the sandbox, so that its user can write there.
	if err := j.run(b.Dir, nil, Indent(b.Out), "mkdir", "-p", cache, filepath.Join(j.root, "buildpacks")); err != nil {
		return Result{}, j.fail(err, "create the buildpack cache")
	}

	// An ENV_DIR left by a build that died holds the app's secrets in a
	// directory that persists: it goes now.
	if stale, err := filepath.Glob(filepath.Join(j.root, "env-*")); err == nil {
		for _, d := range stale {
			os.RemoveAll(d)
		}
	}

	dir, err := j.fetch(h.source)
	if err != nil {
		return Result{}, err
	}
	for _, script := range []string{"detect", "compile"} {
		if ok, err := isFile(filepath.Join(dir, "bin", script)); err != nil {
			return Result{}, err
		} else if !ok {
			return Result{}, skiff.Errorf(skiff.KindFailed, v2Hint, "buildpack %s has no bin/%s", h.source, script)
		}
	}

	name, err := j.detect(dir)
	if err != nil {
		return Result{}, err
	}
	h.mu.Lock()
	h.name = name
	h.mu.Unlock()
	j.name = name
	fmt.Fprintf(b.Out, "-----> %s app detected\n", name)

	envDir, err := j.writeEnvDir()
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(envDir)
	out := v2Lines(b.Out)
	err = j.run(b.Dir, j.env(), out, filepath.Join(dir, "bin", "compile"), b.Dir, cache, envDir)
	if err != nil {
		return Result{}, j.scriptError(err, "compile", "failed to compile", "the buildpack's output above says why")
	}
	return j.release(dir)
}

// env is what the buildpack's scripts get on top of the sandbox's
// environment. The app's config is not in it: bin/compile reads it from
// ENV_DIR, as on Heroku. STACK is passed when the app sets it, for
// buildpacks that choose their binaries by it.
func (j *v2Job) env() []string {
	env := []string{"GIT_TERMINAL_PROMPT=0"}
	if stack, ok := j.b.Env["STACK"]; ok {
		env = append(env, "STACK="+stack)
	}
	return env
}

// run runs a command in dir with the sandbox's environment and extra,
// its standard output and error to out.
func (j *v2Job) run(dir string, extra []string, out flushWriter, name string, args ...string) error {
	return runTo(j.b.command(j.ctx, dir, extra, name, args...), out)
}

// output runs a command and returns its standard output; its standard
// error goes to the user, indented.
func (j *v2Job) output(dir string, extra []string, name string, args ...string) ([]byte, error) {
	return outputOf(j.b.command(j.ctx, dir, extra, name, args...), j.b.Out)
}

// fail is the error of a step that failed for a reason outside the app.
func (j *v2Job) fail(err error, what string) error { return platformError(j.ctx, err, what) }

// scriptError is the error of a buildpack script that failed.
func (j *v2Job) scriptError(err error, script, failed, hint string) error {
	if j.ctx.Err() != nil {
		return j.ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return skiff.Errorf(skiff.KindFailed, hint, "buildpack %s %s", j.name, failed)
	}
	return skiff.Errorf(skiff.KindFailed, "bin/"+script+" must be an executable file (git update-index --chmod=+x bin/"+script+")",
		"could not run bin/%s of buildpack %s: %v", script, j.name, err)
}

// fetch returns the buildpack's directory: source itself, or its clone.
func (j *v2Job) fetch(source string) (string, error) {
	url, ref, git := v2ParseSource(source)
	if !git {
		if !filepath.IsAbs(source) {
			return "", skiff.Errorf(skiff.KindFailed, v2Hint, "buildpack %q is neither a git URL nor an absolute path", source)
		}
		if ok, err := isDir(source); err != nil {
			return "", err
		} else if !ok {
			return "", skiff.Errorf(skiff.KindFailed, v2Hint, "buildpack directory %s does not exist on the build server", source)
		}
		fmt.Fprintf(j.b.Out, "-----> Using buildpack %s\n", source)
		return source, nil
	}

	fmt.Fprintf(j.b.Out, "-----> Fetching buildpack %s\n", source)
	dir := filepath.Join(j.root, "buildpacks", j.key)
	head, cached := j.head(dir)
	switch {
	case cached && v2IsCommit(ref):
		// A commit does not change: a copy of it is current, a copy of
		// another is replaced.
		cached = strings.HasPrefix(head, ref)
	case cached:
		target := ref
		if target == "" {
			target = "HEAD"
		}
		err := j.git(dir, append([]string{"fetch", "--quiet", "--depth", "1"}, append(v2UploadPack(url), "origin", target)...)...)
		if err == nil {
			err = j.git(dir, "reset", "--quiet", "--hard", "FETCH_HEAD")
		}
		if err == nil {
			err = j.git(dir, "clean", "-qffdx")
		}
		if err != nil {
			if j.ctx.Err() != nil {
				return "", j.ctx.Err()
			}
			fmt.Fprintf(j.b.Out, " !     Could not update the buildpack: using the copy from the last build\n")
		}
	}
	if !cached {
		if err := j.clone(url, ref, dir); err != nil {
			return "", err
		}
	}
	if head, ok := j.head(dir); ok {
		fmt.Fprintf(j.b.Out, "       at commit %s\n", head[:min(len(head), 12)])
	}
	return dir, nil
}

// head returns the commit checked out in dir, if dir is a working clone.
func (j *v2Job) head(dir string) (string, bool) {
	if ok, _ := isDir(filepath.Join(dir, ".git")); !ok {
		return "", false
	}
	cmd := j.b.Sandbox.Command(j.ctx, "git", "-C", dir, "rev-parse", "--verify", "HEAD")
	cmd.Env = append(cmd.Env, j.env()...)
	out, err := cmd.Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// git runs git -C dir args, its output indented.
func (j *v2Job) git(dir string, args ...string) error {
	args = append([]string{"-C", dir, "-c", "advice.detachedHead=false"}, args...)
	return j.run(j.b.Dir, j.env(), Indent(j.b.Out), "git", args...)
}

// clone clones url at ref into dir (through a temporary directory, so
// that a failed clone leaves nothing that looks like one).
func (j *v2Job) clone(url, ref, dir string) error {
	from := url
	if filepath.IsAbs(url) {
		from = "file://" + url // so that --depth applies
	}
	up := v2UploadPack(url)
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	var err error
	if v2IsCommit(ref) {
		// --branch takes branches and tags; a commit needs the history.
		err = j.git(j.b.Dir, append(append([]string{"clone", "--quiet", "--no-checkout"}, up...), "--", from, tmp)...)
		if err == nil {
			err = j.git(tmp, "checkout", "--quiet", "--detach", ref)
		}
	} else {
		args := append([]string{"clone", "--quiet", "--depth", "1"}, up...)
		if ref != "" {
			args = append(args, "--branch", ref)
		}
		err = j.git(j.b.Dir, append(args, "--", from, tmp)...)
	}
	if err != nil {
		os.RemoveAll(tmp)
		if j.ctx.Err() != nil {
			return j.ctx.Err()
		}
		hint := "check the URL and that the server can reach it; " + v2Hint
		if ref != "" {
			return skiff.Errorf(skiff.KindFailed, hint, "could not fetch buildpack %s at %s", url, ref)
		}
		return skiff.Errorf(skiff.KindFailed, hint, "could not fetch buildpack %s", url)
	}
	return os.Rename(tmp, dir)
}

// detect runs bin/detect, which prints the buildpack's name and exits 0
// when it can build the app.
func (j *v2Job) detect(dir string) (string, error) {
	out, err := j.output(j.b.Dir, j.env(), filepath.Join(dir, "bin", "detect"), j.b.Dir)
	if err != nil {
		if len(out) > 0 {
			w := Indent(j.b.Out)
			w.Write(out)
			w.Flush()
		}
		return "", j.scriptError(err, "detect", "cannot build this app (its bin/detect said no)",
			"give the app what the buildpack looks for (its documentation says what), or choose another buildpack with SKIFF_BUILDPACK")
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if first = strings.TrimSpace(first); first != "" {
		return first, nil
	}
	return j.name, nil
}

// writeEnvDir writes the app's config into a new ENV_DIR, one file per
// variable, and returns its path. The files are made by the sandbox, so
// that they belong to its user, who alone can read them.
func (j *v2Job) writeEnvDir() (string, error) {
	var suffix [8]byte
	rand.Read(suffix[:])
	name := "env-" + hex.EncodeToString(suffix[:])
	keys := make([]string, 0, len(j.b.Env))
	for k := range j.b.Env {
		if k != "" && k != "." && k != ".." && !strings.ContainsAny(k, "/\x00") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	files := []sandboxFile{{name: name + "/", mode: 0o700}}
	for _, k := range keys {
		files = append(files, sandboxFile{name: name + "/" + k, mode: 0o600, data: []byte(j.b.Env[k])})
	}
	if err := writeInSandbox(j.ctx, j.b, j.root, files...); err != nil {
		os.RemoveAll(filepath.Join(j.root, name))
		return "", j.fail(err, "write ENV_DIR")
	}
	return filepath.Join(j.root, name), nil
}

// v2Release is what bin/release prints.
type v2Release struct {
	DefaultProcessTypes map[string]string `yaml:"default_process_types"`
	ConfigVars          map[string]string `yaml:"config_vars"`
}

// release runs bin/release, if the buildpack has one, for the app's
// default process types.
func (j *v2Job) release(dir string) (Result, error) {
	script := filepath.Join(dir, "bin", "release")
	if _, err := os.Stat(script); errors.Is(err, fs.ErrNotExist) {
		return Result{}, nil
	}
	out, err := j.output(j.b.Dir, j.env(), script, j.b.Dir)
	if err != nil {
		return Result{}, j.scriptError(err, "release", "failed to release (bin/release)", "the buildpack's output above says why")
	}
	var rel v2Release
	if err := yaml.Unmarshal(out, &rel); err != nil {
		return Result{}, skiff.Errorf(skiff.KindFailed,
			"bin/release must print YAML such as \"default_process_types:\\n  web: bin/start\"",
			"buildpack %s printed a release that is not valid: %s", j.name, strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(rel.ConfigVars) > 0 {
		names := make([]string, 0, len(rel.ConfigVars))
		for k := range rel.ConfigVars {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintf(j.b.Out, " !     Buildpack %s sets config vars in bin/release (%s): Skiff does not apply them;\n",
			j.name, strings.Join(names, ", "))
		fmt.Fprintf(j.b.Out, " !     set them with skiff config set, or have the buildpack export them from .profile.d\n")
	}
	return Result{Processes: rel.DefaultProcessTypes}, nil
}

var (
	// v2SchemeRe matches the URL schemes git fetches from.
	v2SchemeRe = regexp.MustCompile(`^(https?|git|ssh|file|git\+ssh)://`)
	// v2SCPRe matches git's scp-like syntax: user@host:path.
	v2SCPRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:`)
	v2CommitRe = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
)

// v2ParseSource splits a git source into URL and ref (after #) and says
// whether it is one.
func v2ParseSource(s string) (url, ref string, git bool) {
	url, ref, _ = strings.Cut(s, "#")
	git = v2SchemeRe.MatchString(url) || v2SCPRe.MatchString(url) || strings.HasSuffix(strings.TrimSuffix(url, "/"), ".git")
	if !git {
		return s, "", false
	}
	return url, ref, true
}

// v2UploadPack returns the clone and fetch options for a buildpack
// repository on this server. Such a repository belongs to the operator,
// not to the build's user, and git refuses to read it ("dubious
// ownership") unless safe.directory allows it in the process that reads
// it: git upload-pack, which does not inherit "git -c" settings over a
// local transport. The build's user still reads it with its own
// permissions. Remote repositories need nothing.
func v2UploadPack(url string) []string {
	if filepath.IsAbs(url) || strings.HasPrefix(url, "file://") {
		return []string{"--upload-pack", "git -c safe.directory='*' upload-pack"}
	}
	return nil
}

// v2IsCommit reports whether ref looks like a commit rather than a name.
func v2IsCommit(ref string) bool { return v2CommitRe.MatchString(ref) }

// v2BaseName is the name of a buildpack's repository or directory:
// https://github.com/heroku/heroku-buildpack-go.git#v1 is
// heroku-buildpack-go.
func v2BaseName(source string) string {
	url, _, git := v2ParseSource(source)
	if git {
		source = url
		if i := strings.LastIndex(source, ":"); i >= 0 && !v2SchemeRe.MatchString(source) {
			source = source[i+1:] // scp-like: the path after the colon
		}
	}
	name := strings.TrimSuffix(path.Base(strings.TrimRight(source, "/")), ".git")
	if name == "" || name == "." || name == "/" {
		return "buildpack"
	}
	return name
}

// v2Hash names a source's clone and cache.
func v2Hash(source string) string {
	sum := sha256.Sum256([]byte(source))
	return hex.EncodeToString(sum[:8])
}

// v2Lines returns a writer that passes whole lines to w as they are: a
// buildpack's own output, which has its own headings and indentation.
func v2Lines(w io.Writer) *v2LineWriter { return &v2LineWriter{w: w} }

type v2LineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *v2LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := append(bytes.TrimRight(l.buf[:i], "\r"), '\n')
		_, err := l.w.Write(line)
		l.buf = l.buf[i+1:]
		if err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes a partial last line, if any, with a newline.
func (l *v2LineWriter) Flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(append(l.buf, '\n'))
	l.buf = nil
	return err
}

// sandboxFile is a file to write with writeInSandbox; a name ending in /
// is a directory.
type sandboxFile struct {
	name string
	mode int64
	data []byte
}

// writeInSandbox writes files under dir as the sandbox's user (tar reading
// from standard input), so that the build's later commands, which run as
// that user, can change them: a file the builder wrote itself would
// belong to the builder.
func writeInSandbox(ctx context.Context, b *Build, dir string, files ...sandboxFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	cmd := b.Sandbox.Command(ctx, "tar", "-x", "-f", "-", "-C", dir)
	cmd.Dir = b.Dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("tar: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
