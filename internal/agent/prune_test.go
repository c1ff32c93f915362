package agent

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestPruneImages: once its assignment is deleted, the image of a release
// that is neither current nor the one before goes from the node's cache
// after the retention; the images of a running instance (of another such
// release), of the current release and of the previous one stay, however
// long unused.
func TestPruneImages(t *testing.T) {
	h := newHarness(t, Config{PruneInterval: 50 * time.Millisecond, ImageRetention: 300 * time.Millisecond})
	ctx := context.Background()

	// v1 (the harness's image) failed, v2 served before v3, the current
	// one, and v4 failed.
	h.updateRelease(func(r *skiff.Release) { r.Status = skiff.ReleaseFailed })
	previous, current, failed := h.newImage("previous"), h.newImage("current"), h.newImage("failed")
	for v, r := range map[int]skiff.Release{
		2: {Image: previous, Status: skiff.ReleaseSucceeded},
		3: {Image: current, Status: skiff.ReleaseSucceeded},
		4: {Image: failed, Status: skiff.ReleaseFailed},
	} {
		r.App, r.Version = "app", v
		if _, err := h.st.Releases.Put(ctx, skiff.ReleaseKey("app", v), r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.st.Apps.Put(ctx, "app", skiff.App{Name: "app", UID: testUID, Current: 3}); err != nil {
		t.Fatal(err)
	}
	// The router of this node would have cached the current release's
	// image, and the previous one's, long ago.
	for _, img := range []skiff.Image{previous, current} {
		if _, err := h.cache.Fetch(ctx, img.Digest, h.slug(img)); err != nil {
			t.Fatal(err)
		}
	}

	running := h.assign("r1", "worker", "sleep 1000") // v1
	gone := skiff.Assignment{ID: "g1", App: "app", Proc: "worker", Index: 2, Release: 4, Node: "n1", Image: failed, Command: "sleep 1000"}
	if _, err := h.st.Assignments.Put(ctx, gone.Key(), gone); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "g1"} {
		eventually(t, 10*time.Second, func() bool { in, _ := h.instance(id); return in.State == skiff.StateUp })
	}
	// Unused for two days, but needed.
	for _, img := range []skiff.Image{running.Image, previous, current} {
		h.age(img)
	}
	if !h.cached(failed, true) {
		t.Fatal("the image of g1 is not in the cache")
	}

	h.st.Assignments.Delete(ctx, gone.Key())
	eventually(t, 10*time.Second, func() bool { return !h.cached(failed, false) })
	for name, img := range map[string]skiff.Image{"running": running.Image, "previous": previous, "current": current} {
		if !h.cached(img, name == "running") {
			t.Errorf("the %s release's image was pruned", name)
		}
	}
	if in, _ := h.instance("r1"); in.State != skiff.StateUp {
		t.Fatalf("the running instance is %s", in.State)
	}
}

// newImage packs a one-file image, stores it and returns it.
func (h *harness) newImage(content string) skiff.Image {
	h.t.Helper()
	src := h.t.TempDir()
	os.WriteFile(filepath.Join(src, "content"), []byte(content), 0o644)
	p := filepath.Join(h.t.TempDir(), "img")
	if err := image.Pack(context.Background(), src, p); err != nil {
		h.t.Fatal(err)
	}
	digest, size, _ := image.Digest(p)
	img := skiff.Image{Digest: digest, Size: size, Object: "app/" + digest[7:]}
	f, _ := os.Open(p)
	defer f.Close()
	if _, err := h.st.Slugs.Put(context.Background(), jetstream.ObjectMeta{Name: img.Object}, f); err != nil {
		h.t.Fatal(err)
	}
	return img
}

func (h *harness) slug(img skiff.Image) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) { return h.st.Slugs.Get(ctx, img.Object) }
}

// forms are where the cache keeps img, packed and unpacked.
func (h *harness) forms(img skiff.Image) (packed, tree string) {
	packed, err := h.cache.Path(img.Digest)
	if err != nil {
		h.t.Fatal(err)
	}
	return packed, filepath.Join(filepath.Dir(packed), "rootfs", img.Digest[7:])
}

// cached reports whether img is in the cache: packed, and unpacked too if
// unpacked is true; any form if false.
func (h *harness) cached(img skiff.Image, unpacked bool) bool {
	packed, tree := h.forms(img)
	_, perr := os.Stat(packed)
	_, terr := os.Stat(tree)
	if unpacked {
		return perr == nil && terr == nil
	}
	return perr == nil || terr == nil
}

// age makes img look last used two days ago.
func (h *harness) age(img skiff.Image) {
	old := time.Now().Add(-48 * time.Hour)
	packed, tree := h.forms(img)
	for _, p := range []string{packed, tree} {
		if err := os.Chtimes(p, old, old); err != nil && !os.IsNotExist(err) {
			h.t.Fatal(err)
		}
	}
}

// TestNeededImages: what each rule of neededImages keeps.
func TestNeededImages(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	img := func(c string) skiff.Image { return skiff.Image{Digest: "sha256:" + strings.Repeat(c, 64)} }
	check := func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	h.updateRelease(func(r *skiff.Release) { r.Status = skiff.ReleaseFailed })
	for _, r := range []skiff.Release{
		{App: "app", Version: 2, Image: img("b"), Status: skiff.ReleaseSucceeded},
		{App: "app", Version: 3, Image: img("c"), Status: skiff.ReleaseSucceeded}, // what a rollback goes to
		{App: "app", Version: 4, Image: img("d"), Status: skiff.ReleaseSucceeded}, // a config change
		{App: "app", Version: 5, Image: img("d"), Status: skiff.ReleaseSucceeded}, // current
		{App: "app", Version: 6, Image: img("e"), Status: skiff.ReleaseDeploying},
		{App: "app", Version: 7, Image: img("f"), Status: skiff.ReleaseFailed},
		{App: "other", Version: 1, Image: img("1"), Status: skiff.ReleaseFailed},
		{App: "other", Version: 2, Image: img("2"), Status: skiff.ReleaseFailed},
	} {
		check(h.st.Releases.Put(ctx, skiff.ReleaseKey(r.App, r.Version), r))
	}
	check(h.st.Apps.Put(ctx, "app", skiff.App{Name: "app", UID: testUID, Current: 5}))
	check(h.st.Apps.Put(ctx, "other", skiff.App{Name: "other"}))
	// Another agent's view, of node n9, which is not running: the
	// harness's agent (n1) must not take these up.
	for _, a := range []skiff.Assignment{
		{ID: "a1", App: "other", Proc: "worker", Index: 1, Release: 2, Node: "n9", Image: img("9")},
		{ID: "a2", App: "other", Proc: "worker", Index: 2, Release: 2, Node: "n2", Image: img("8")},
	} {
		check(h.st.Assignments.Put(ctx, a.Key(), a))
	}
	for _, in := range []skiff.Instance{
		{ID: "i1", App: "other", Proc: "run", Index: 1, Release: 1, Node: "n9"}, // a one-off, or one stopping
		{ID: "i2", App: "other", Proc: "run", Index: 2, Release: 2, Node: "n2"},
	} {
		check(h.st.Instances.Put(ctx, in.Key(), in))
	}
	cfg := h.ag.cfg
	cfg.Node = "n9"
	ag, err := New(cfg, h.st)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := ag.pruner().neededImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{img("c").Digest: true, img("d").Digest: true, img("e").Digest: true,
		img("9").Digest: true, img("1").Digest: true}
	if !maps.Equal(keep, want) {
		t.Fatalf("kept %v, want %v", slices.Sorted(maps.Keys(keep)), slices.Sorted(maps.Keys(want)))
	}
}

// TestPrunerWithoutAgent: a node without the agent role (a router's static
// files) prunes its cache with a pruner of its own: the current release's
// image stays, an unneeded one goes.
func TestPrunerWithoutAgent(t *testing.T) {
	h := newHarness(t, Config{PruneInterval: -1})
	ctx := context.Background()
	old := h.newImage("old")
	if _, err := h.cache.Fetch(ctx, old.Digest, h.slug(old)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cache.Fetch(ctx, h.img.Digest, h.slug(h.img)); err != nil {
		t.Fatal(err)
	}
	h.age(old)
	h.age(h.img)
	p := &Pruner{St: h.st, Node: "router-only", Images: h.cache, Interval: 50 * time.Millisecond, Retention: time.Hour}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.Run(pctx)
	eventually(t, 10*time.Second, func() bool { return !h.cached(old, false) })
	if !h.cached(h.img, false) {
		t.Fatal("the current release's image was pruned")
	}
}
