// Package build is the builder role: it turns an uploaded source archive
// into a read-only image and a release.
//
// A build arrives as a NATS request on skiff.SubjectBuild, taken by one
// builder of the queue group. The builder answers at once (so the caller
// knows a builder has it), then streams output lines on the build's output
// subject and ends with a skiff.BuildResult on its done subject. Builds of
// one app run one at a time; builds of different apps run
// in parallel up to Config.Concurrency.
//
// Steps: fetch the archive from the sources store, unpack it with every
// path and link checked, read the Procfile, pack the tree into a SquashFS
// image, store the image in the slugs store (and hand it to the local image
// cache), then create a pending release with the app's current config. The
// scheduler takes it from there.
//
// Every command the buildpack and app.json's predeploy script run goes
// through the build's sandbox (sandbox.go): as the app's own user, and,
// isolated, in a sandbox of package isolate per command, which sees the
// build's directories and the app's cache at their host paths and
// nothing else of the builder's.
package build

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/archive"
	"github.com/skiff-paas/skiff/internal/build/buildpack"
	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/isolate"
	"github.com/skiff-paas/skiff/internal/procfile"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures a builder.
type Config struct {
	// Name identifies this builder in replies; usually the node name.
	Name string
	// WorkDir holds the builds in progress. Required.
	WorkDir string
	// Images, when set, receives each built image, so that an agent on this
	// node starts it without downloading it.
	Images *image.Cache
	// Concurrency is how many builds run at once (default 2).
	Concurrency int
	// Timeout bounds one build (default 15 minutes).
	Timeout time.Duration
	// Limits bound what an upload may unpack to.
	Limits archive.Limits
	// CacheDir holds each app's build cache, between builds. Required.
	CacheDir string
	// MaxImage bounds an image's size (default 1 GiB).
	MaxImage int64
	// Isolate runs each command of a build in a sandbox of its own
	// (package isolate): namespaces, the host's runtime directories
	// read-only, only the build's directories and the app's cache
	// writable, a cgroup. It needs root and cgroups. Without it, builds
	// run on the host as their app's user (as root) or as the builder's
	// own user.
	Isolate bool
	// Cgroup is the cgroup version of isolated builds, "v1" or "v2";
	// empty takes the host's.
	Cgroup string
	// Memory bounds the memory of each command of an isolated build
	// (default 2 GiB); past it the kernel kills one of its processes.
	Memory int64
	Logger *slog.Logger
}

// Limits of an isolated build command besides its memory: a fair share
// of contended CPU, and processes enough for parallel compilers.
const (
	buildCPUWeight = 100
	buildPIDs      = 4096
)

// Builder is the builder role.
type Builder struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	slots chan struct{}
	ready atomic.Bool

	mu   sync.Mutex
	apps map[string]*sync.Mutex // serialises builds per app; guarded by mu
}

// New validates cfg and returns a builder.
func New(cfg Config, st *store.Store) (*Builder, error) {
	if cfg.WorkDir == "" || cfg.CacheDir == "" {
		return nil, errors.New("build: WorkDir and CacheDir are required")
	}
	if cfg.MaxImage <= 0 {
		cfg.MaxImage = 1 << 30
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = "builder"
	}
	if cfg.Memory <= 0 {
		cfg.Memory = 2 << 30
	}
	if cfg.Isolate && os.Geteuid() != 0 {
		return nil, errors.New("build: isolated builds need root")
	}
	// Builds run as their app's user, which must reach its own build and
	// cache directories but list nothing else. An isolated build is shown
	// them at their paths, whatever the directories above allow.
	for _, d := range []string{cfg.WorkDir, cfg.CacheDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		if os.Geteuid() == 0 && !cfg.Isolate {
			if err := traversable(d); err != nil {
				return nil, err
			}
		}
	}
	return &Builder{cfg: cfg, st: st, log: cfg.Logger.With("role", "builder"),
		slots: make(chan struct{}, cfg.Concurrency), apps: map[string]*sync.Mutex{}}, nil
}

// Ready reports whether the builder takes requests.
func (b *Builder) Ready() bool { return b.ready.Load() }

// Run takes build requests until ctx ends, then waits for running builds.
func (b *Builder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sub, err := b.st.NC.QueueSubscribe(skiff.SubjectBuild, skiff.QueueBuilders, func(m *nats.Msg) {
		var req skiff.BuildRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || req.ID == "" || req.App == "" {
			b.log.Warn("malformed build request", "err", err)
			return
		}
		reply, _ := json.Marshal(skiff.BuildAccepted{Builder: b.cfg.Name})
		if err := m.Respond(reply); err != nil {
			b.log.Warn("reply to build request", "err", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.run(ctx, req)
		}()
	})
	if err != nil {
		return fmt.Errorf("build: subscribe: %w", err)
	}
	if err := b.st.NC.Flush(); err != nil {
		return fmt.Errorf("build: subscribe: %w", err)
	}
	wg.Go(func() {
		b.st.WatchGoneApps(ctx, func() ([]string, error) { return b.remembered(ctx) }, b.forget)
	})
	b.ready.Store(true)
	<-ctx.Done()
	b.ready.Store(false)
	// Unsubscribe before waiting: no callback may start a build once the
	// wait begins.
	if err := sub.Unsubscribe(); err != nil {
		b.log.Warn("unsubscribe", "err", err)
	}
	return nil
}

// traversable checks that every directory above dir lets other users
// through, as builds, which run as their app's user, need.
func traversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("build: builds run as their app's own user, which cannot reach %s: let other users through %s (chmod o+x %s) or choose another data directory", dir, p, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (b *Builder) appLock(app string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.apps[app]
	if l == nil {
		l = &sync.Mutex{}
		b.apps[app] = l
	}
	return l
}

// run performs one build and publishes its output and result.
func (b *Builder) run(ctx context.Context, req skiff.BuildRequest) {
	log := b.log.With("app", req.App, "build", req.ID)
	out := func(format string, args ...any) {
		if err := b.st.NC.Publish(skiff.BuildOutputSubject(req.ID), []byte(fmt.Sprintf(format, args...))); err != nil {
			log.Warn("build output dropped", "err", err)
		}
	}
	lock := b.appLock(req.App)
	lock.Lock()
	defer lock.Unlock()
	var res skiff.BuildResult
	var err error
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	case <-ctx.Done():
		err = ctx.Err()
	}

	started := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err == nil {
		b.st.Emit(skiff.Event{App: req.App, Type: skiff.EventBuildStarted, Component: "build", Actor: req.Actor,
			Message: "Build started by " + orSomeone(req.Actor)})
		res, err = b.build(ctx, req, out)
	}
	res.ID = req.ID
	if err != nil {
		if parent.Err() != nil {
			err = skiff.Errorf(skiff.KindUnavailable, "push or deploy again once the server is back",
				"the builder stopped before the build finished")
		} else if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = skiff.Errorf(skiff.KindFailed, "make the build faster, or raise the builder's timeout (skiff server --build-timeout)",
				"build timed out after %s", b.cfg.Timeout)
		}
		var serr *skiff.Error
		if errors.As(err, &serr) {
			res.Error, res.Hint = serr.Error(), serr.Hint
		} else {
			res.Error, res.Hint = "build failed: "+err.Error(), "this is a fault of the platform; the server log has details"
			log.Error("build failed", "err", err)
		}
		out(" !     %s", res.Error)
		b.st.Emit(skiff.Event{App: req.App, Type: skiff.EventBuildFailed, Component: "build", Actor: req.Actor,
			Message: "Build failed: " + res.Error})
	} else {
		b.st.Emit(skiff.Event{App: req.App, Type: skiff.EventBuildSucceeded, Component: "build", Actor: req.Actor, Release: res.Release,
			Message: fmt.Sprintf("Build succeeded in %s: release %s", time.Since(started).Round(time.Millisecond), skiff.VersionLabel(res.Release))})
	}
	observeBuild(err, time.Since(started)) // metrics.go
	b.deleteSource(req.Source)
	data, _ := json.Marshal(res)
	if err := b.st.NC.Publish(skiff.BuildDoneSubject(req.ID), data); err != nil {
		log.Warn("build result dropped", "err", err)
	}
}

func orSomeone(actor string) string {
	if actor == "" {
		return "someone"
	}
	return actor
}

func (b *Builder) build(ctx context.Context, req skiff.BuildRequest, out func(string, ...any)) (skiff.BuildResult, error) {
	var res skiff.BuildResult
	work, err := os.MkdirTemp(b.cfg.WorkDir, req.App+"-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)

	out("-----> Building %s (build %s)", req.App, req.ID)
	src := filepath.Join(work, "app")
	if err := os.Mkdir(src, 0o755); err != nil {
		return res, err
	}
	obj, err := b.st.Sources.Get(ctx, req.Source)
	if err != nil {
		return res, fmt.Errorf("fetch source %s: %w", req.Source, err)
	}
	st, err := archive.Extract(obj, src, b.cfg.Limits)
	obj.Close()
	if err != nil {
		return res, err
	}
	out("       %d files, %s", st.Files, skiff.HumanBytes(st.Bytes))

	manifest, err := readAppJSON(src)
	if err != nil {
		return res, err
	}
	vars, version, err := b.st.Config(ctx, req.App)
	if err != nil {
		return res, err
	}
	named := vars["SKIFF_BUILDPACK"]
	if named == "" {
		named = manifest.buildpack()
	}
	key := buildKey(st.Digest, named, vars)
	if prev, ok, err := b.reusable(ctx, req.App, key); err != nil {
		return res, err
	} else if ok {
		out("-----> No change in the source, buildpack or config since %s: reusing its image", prev.Label())
		prev.Cron = manifest.Cron
		return b.release(ctx, req, prev, version, vars, out)
	}

	if n, err := applySlugignore(src); err != nil {
		return res, fmt.Errorf(".slugignore: %w", err)
	} else if n > 0 {
		out("-----> Removed %d %s named by .slugignore", n, plural(n, "entry", "entries"))
	}
	box, cache, err := b.prepareSandbox(ctx, req.App, work, src)
	if err != nil {
		return res, err
	}
	bp, err := b.choose(src, named)
	if err != nil {
		return res, err
	}
	if hr, ok := bp.(buildpack.HostReader); ok && box.iso != nil {
		if err := b.showHostPaths(box.iso, hr.HostPaths()); err != nil {
			return res, err
		}
	}
	defaults := map[string]string{}
	packName := "procfile"
	if bp != nil {
		packName = bp.Name()
		result, err := bp.Compile(ctx, &buildpack.Build{App: req.App, Dir: src, CacheDir: cache, Env: vars, Out: lineWriter(out), Sandbox: box})
		if err != nil {
			return res, err
		}
		defaults = result.Processes
		packName = bp.Name()
	}

	procs, err := processes(src, defaults)
	if err != nil {
		return res, err
	}
	releaseCommand := cmp.Or(procs[skiff.ReleaseProcess], manifest.Scripts.Release)
	delete(procs, skiff.ReleaseProcess)
	if _, ok := procs["web"]; !ok && !manifest.noWebWanted() {
		return res, skiff.Errorf(skiff.KindFailed,
			"add a web process to the Procfile (web: COMMAND listening on $PORT), or declare a formation without web in app.json",
			"no web process: the Procfile declares %s", strings.Join(skiff.SortedTypes(procs), ", "))
	}
	out("-----> Discovering process types")
	out("       Procfile declares types -> %s", strings.Join(skiff.SortedTypes(procs), ", "))
	if releaseCommand != "" {
		out("       Release phase -> %s", releaseCommand)
	}
	env, err := manifest.env(vars)
	if err != nil {
		return res, err
	}
	if script := manifest.Scripts.Predeploy; script != "" {
		out("-----> Running predeploy: %s", script)
		if err := b.runScript(ctx, box, src, vars, script, out); err != nil {
			return res, err
		}
	}
	if err := b.checkSize(src); err != nil {
		return res, err
	}
	static, err := manifest.staticMounts()
	if err != nil {
		return res, err
	}
	if err := checkStaticDirs(src, static); err != nil {
		return res, err
	}

	out("-----> Compressing...")
	img := filepath.Join(work, "image.squashfs")
	if err := image.Pack(ctx, src, img); err != nil {
		return res, err
	}
	digest, size, err := image.Digest(img)
	if err != nil {
		return res, err
	}
	if size > b.cfg.MaxImage {
		return res, imageTooLarge(size, b.cfg.MaxImage)
	}
	out("       Done: %s (%s)", skiff.HumanBytes(size), digest[:19])
	im := skiff.Image{Digest: digest, Size: size, Object: req.App + "/" + digest[len("sha256:"):]}
	if err := b.storeImage(ctx, img, im); err != nil {
		return res, err
	}
	if err := b.applyFormation(ctx, req.App, manifest); err != nil {
		return res, err
	}
	built := skiff.Release{Image: im, Processes: procs, Buildpack: packName, BuildKey: key,
		ManifestHealthCheck: manifest.healthCheck(), Env: env, Static: static, Cron: manifest.Cron, ReleaseCommand: releaseCommand}
	return b.release(ctx, req, built, version, vars, out)
}

// release makes the build's release from what was built (or reused) and
// the app's current config.
func (b *Builder) release(ctx context.Context, req skiff.BuildRequest, built skiff.Release, version int, vars map[string]string,
	out func(string, ...any)) (skiff.BuildResult, error) {
	res := skiff.BuildResult{Image: built.Image}
	sealed, err := b.st.SealConfig(vars)
	if err != nil {
		return res, err
	}
	app, _, err := b.st.Apps.Get(ctx, req.App)
	if err != nil {
		return res, err
	}
	desc := req.Description
	if desc == "" {
		desc = "Deploy " + req.ID[:min(len(req.ID), 8)]
	}
	rel, err := b.st.CreateRelease(ctx, skiff.Release{
		App: req.App, Description: desc, Image: built.Image, Processes: built.Processes,
		ConfigVersion: version, ConfigSealed: sealed, CreatedBy: req.Actor, Buildpack: built.Buildpack,
		BuildKey: built.BuildKey, ManifestHealthCheck: built.ManifestHealthCheck, Env: built.Env, Static: built.Static, Cron: built.Cron,
		ReleaseCommand: built.ReleaseCommand,
		HealthCheck:    skiff.EffectiveHealthCheck(app, built.ManifestHealthCheck),
	})
	if err != nil {
		return res, err
	}
	res.Release = rel.Version
	out("-----> Created release %s", rel.Label())
	return res, nil
}

// buildKey digests everything a build reads.
func buildKey(tree, buildpack string, vars map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "skiff-build-1\x00%s\x00%s\x00", tree, buildpack)
	for _, k := range skiff.SortedTypes(vars) {
		fmt.Fprintf(h, "%s=%s\x00", k, vars[k])
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// reusable finds the newest release of app built from the same inputs
// whose image is still stored.
func (b *Builder) reusable(ctx context.Context, app, key string) (skiff.Release, bool, error) {
	rels, err := b.st.ListReleases(ctx, app)
	if err != nil {
		return skiff.Release{}, false, err
	}
	for i := len(rels) - 1; i >= 0; i-- {
		r := rels[i]
		if r.BuildKey != key {
			continue
		}
		if info, err := b.st.Slugs.GetInfo(ctx, r.Image.Object); err == nil && !info.Deleted {
			return r, true, nil
		}
	}
	return skiff.Release{}, false, nil
}

// choose picks the buildpack: the one the app names, else the first that
// detects the tree, else none when a Procfile says what to run.
func (b *Builder) choose(src, named string) (buildpack.Buildpack, error) {
	if named != "" {
		bp, err := buildpack.Named(named)
		if err != nil {
			return nil, err
		}
		if ok, err := bp.Detect(src); err != nil {
			return nil, err
		} else if !ok {
			return nil, skiff.Errorf(skiff.KindFailed, "check SKIFF_BUILDPACK or app.json's buildpacks, or the app's files",
				"buildpack %s does not recognise this app", bp.Name())
		}
		return bp, nil
	}
	bp, err := buildpack.Detect(src)
	if err != nil || bp != nil {
		return bp, err
	}
	if _, err := os.Stat(filepath.Join(src, "Procfile")); err == nil {
		return nil, nil
	}
	return nil, skiff.Errorf(skiff.KindFailed,
		"add go.mod, package.json, requirements.txt or index.html, a Procfile saying what to run, or name a buildpack with skiff config set SKIFF_BUILDPACK=…",
		"no app detected: Skiff builds Go, Node.js, Python and static sites")
}

// prepareSandbox makes the build's HOME and TMPDIR and the app's cache
// directory, all owned by the app's build user, and gives it the tree;
// isolated, it shows them to the build's sandboxes.
func (b *Builder) prepareSandbox(ctx context.Context, app, work, src string) (sandbox, string, error) {
	box := sandbox{uid: -1, user: app, home: filepath.Join(work, "home"), tmp: filepath.Join(work, "tmp")}
	cache := filepath.Join(b.cfg.CacheDir, app)
	for _, d := range []string{box.home, box.tmp, cache} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return box, "", err
		}
	}
	if os.Geteuid() != 0 {
		return box, cache, nil
	}
	uid, err := b.appUID(ctx, app)
	if err != nil {
		return box, "", err
	}
	box.uid = uid
	if err := os.Chmod(work, 0o711); err != nil {
		return box, "", err
	}
	for _, d := range []string{box.home, box.tmp, src} {
		if err := chownTree(d, uid); err != nil {
			return box, "", err
		}
	}
	// The cache may hold files of an earlier build; they are the app's.
	if err := chownTree(cache, uid); err != nil {
		return box, "", err
	}
	if b.cfg.Isolate {
		root := filepath.Join(work, "root")
		if err := os.Mkdir(root, 0o700); err != nil {
			return box, "", err
		}
		box.iso = &isolation{id: "build-" + filepath.Base(work), root: root, cgroup: b.cfg.Cgroup,
			limits: isolate.Limits{Memory: b.cfg.Memory, CPUWeight: buildCPUWeight, PIDs: buildPIDs}}
		for _, d := range []string{src, box.home, box.tmp, cache} {
			box.iso.mounts = append(box.iso.mounts, isolate.Mount{Source: d, Target: d, Writable: true})
		}
		box.iso.show(toolConfigs...)
	}
	return box, cache, nil
}

// showHostPaths shows a buildpack's files on the server to the build's
// sandboxes, read-only, unless that would show the builder's own
// directories (other builds, other apps' caches): a buildpack at / or in
// the data directory.
func (b *Builder) showHostPaths(iso *isolation, paths []string) error {
	var own []string
	for _, d := range []string{b.cfg.WorkDir, b.cfg.CacheDir} {
		if r, err := resolved(d); err == nil {
			own = append(own, r)
		}
	}
	for _, p := range paths {
		r, err := resolved(p)
		if err != nil {
			continue // missing: the buildpack says so
		}
		for _, d := range own {
			if within(r, d) || within(d, r) {
				return skiff.Errorf(skiff.KindFailed, "put the buildpack in a directory of its own on the server, outside Skiff's data directory",
					"buildpack %s is in or above the builder's own directory %s, which builds are not shown", p, d)
			}
		}
		iso.mounts = append(iso.mounts, isolate.Mount{Source: r, Target: p})
	}
	return nil
}

// resolved is p absolute and free of symlinks.
func resolved(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether path p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// processes reads the Procfile, whose types override the buildpack's
// defaults.
func processes(src string, defaults map[string]string) (map[string]string, error) {
	procs := map[string]string{}
	for t, c := range defaults {
		procs[t] = c
	}
	declared, err := readProcfile(src)
	if err != nil {
		var serr *skiff.Error
		if len(defaults) > 0 && errors.As(err, &serr) && serr.Message == "no Procfile found" {
			return procs, nil
		}
		return nil, err
	}
	for t, c := range declared {
		procs[t] = c
	}
	return procs, nil
}

// runScript runs an app.json script in the built tree, in the sandbox.
func (b *Builder) runScript(ctx context.Context, box sandbox, dir string, vars map[string]string, script string, out func(string, ...any)) error {
	cmd := box.Command(ctx, "/bin/bash", "-c", script)
	cmd.Dir = dir
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	w := buildpack.Indent(lineWriter(out))
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.Flush()
	if err != nil {
		return skiff.Errorf(skiff.KindFailed, "fix app.json's scripts.predeploy or what it runs", "predeploy script failed: %v", err)
	}
	return nil
}

// checkSize refuses a tree that cannot make an image under the limit,
// before spending time compressing it.
func (b *Builder) checkSize(dir string) error {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		return err
	}
	// Compression rarely does better than a tenth.
	if total/10 > b.cfg.MaxImage {
		return imageTooLarge(total, b.cfg.MaxImage)
	}
	return nil
}

func imageTooLarge(size, limit int64) error {
	return skiff.Errorf(skiff.KindFailed,
		"list what the app does not need at run time (tests, docs, build caches) in .slugignore, or raise the limit: skiff server --max-image",
		"the image is %s, over the limit of %s", skiff.HumanBytes(size), skiff.HumanBytes(limit))
}

// applyFormation sets, from app.json, the quantity of each process type
// the app has not been scaled for yet.
func (b *Builder) applyFormation(ctx context.Context, app string, m appJSON) error {
	if len(m.Formation) == 0 {
		return nil
	}
	_, err := b.st.Formations.Upsert(ctx, app, func(f *skiff.Formation) error {
		f.App = app
		for t, e := range m.Formation {
			if e.Quantity == nil {
				continue
			}
			if _, set := f.Quantity[t]; !set {
				if f.Quantity == nil {
					f.Quantity = map[string]int{}
				}
				f.Quantity[t] = *e.Quantity
			}
		}
		return nil
	})
	return err
}

// lineWriter turns out into a writer of whole lines.
func lineWriter(out func(string, ...any)) io.Writer { return lineFunc(out) }

type lineFunc func(string, ...any)

func (f lineFunc) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		f("%s", strings.TrimRight(line, "\r"))
	}
	return len(p), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// storeImage puts the image in the slugs store (unless an identical one is
// there) and hands it to the local cache.
func (b *Builder) storeImage(ctx context.Context, path string, img skiff.Image) error {
	if info, err := b.st.Slugs.GetInfo(ctx, img.Object); err == nil && !info.Deleted && info.Size == uint64(img.Size) {
		// Same name means same digest: already stored.
	} else {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = b.st.Slugs.Put(ctx, jetstream.ObjectMeta{Name: img.Object, Description: img.Digest}, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("store image: %w", err)
		}
	}
	if b.cfg.Images != nil {
		if err := b.cfg.Images.Add(path, img.Digest); err != nil {
			b.log.Warn("hand image to local cache", "err", err)
		}
	}
	return nil
}

func (b *Builder) deleteSource(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.st.Sources.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		b.log.Warn("delete source archive", "object", name, "err", err)
	}
}

func readProcfile(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, skiff.Errorf(skiff.KindFailed,
			"add a Procfile at the root of the app naming its processes, e.g. web: python3 -m http.server $PORT",
			"no Procfile found")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && !info.Mode().IsRegular() {
		return nil, skiff.Errorf(skiff.KindFailed, "make the Procfile a regular file", "Procfile is not a regular file")
	}
	procs, err := procfile.Parse(io.Reader(f))
	if err != nil {
		var serr *skiff.Error
		if errors.As(err, &serr) {
			serr.Kind = skiff.KindFailed
		}
		return nil, err
	}
	return procs, nil
}
