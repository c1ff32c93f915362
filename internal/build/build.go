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
package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/skiff-paas/skiff/internal/image"
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
	Logger *slog.Logger
}

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
	if cfg.WorkDir == "" {
		return nil, errors.New("build: WorkDir is required")
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
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("build: %w", err)
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

	procs, err := readProcfile(src)
	if err != nil {
		return res, err
	}
	out("-----> Discovering process types")
	types := skiff.Release{Processes: procs}.ProcessTypes()
	out("       Procfile declares types -> %s", strings.Join(types, ", "))

	out("-----> Compressing...")
	img := filepath.Join(work, "image.squashfs")
	if err := image.Pack(ctx, src, img); err != nil {
		return res, err
	}
	digest, size, err := image.Digest(img)
	if err != nil {
		return res, err
	}
	out("       Done: %s (%s)", skiff.HumanBytes(size), digest[:19])
	res.Image = skiff.Image{Digest: digest, Size: size, Object: req.App + "/" + digest[len("sha256:"):]}
	if err := b.storeImage(ctx, img, res.Image); err != nil {
		return res, err
	}

	vars, version, err := b.st.Config(ctx, req.App)
	if err != nil {
		return res, err
	}
	sealed, err := b.st.SealConfig(vars)
	if err != nil {
		return res, err
	}
	desc := req.Description
	if desc == "" {
		desc = "Deploy " + req.ID[:min(len(req.ID), 8)]
	}
	rel, err := b.st.CreateRelease(ctx, skiff.Release{
		App: req.App, Description: desc, Image: res.Image, Processes: procs,
		ConfigVersion: version, ConfigSealed: sealed, CreatedBy: req.Actor,
	})
	if err != nil {
		return res, err
	}
	res.Release = rel.Version
	out("-----> Created release %s", rel.Label())
	return res, nil
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
