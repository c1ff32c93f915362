package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testImage packs a small tree (with a directory nobody may write, as
// images can have) and returns its digest and bytes.
func testImage(t *testing.T, content string) (string, []byte) {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Fatal("mksquashfs is missing: run make deps (squashfs-tools)")
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "ro"), 0o755)
	os.WriteFile(filepath.Join(src, "ro", "file"), []byte(content), 0o644)
	os.Chmod(filepath.Join(src, "ro"), 0o555)
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "ro"), 0o755) })
	img := filepath.Join(t.TempDir(), "img")
	if err := Pack(context.Background(), src, img); err != nil {
		t.Fatal(err)
	}
	digest, _, err := Digest(img)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(img)
	return digest, data
}

func opener(data []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

// cached puts an image in c, packed and, if unpack, unpacked too, and
// returns its packed file and tree.
func cached(t *testing.T, c *Cache, content string, unpack bool) (digest, packed, tree string) {
	t.Helper()
	digest, data := testImage(t, content)
	packed, err := c.Fetch(context.Background(), digest, opener(data))
	if err != nil {
		t.Fatal(err)
	}
	if unpack {
		if tree, err = c.Unpacked(context.Background(), digest); err != nil {
			t.Fatal(err)
		}
	}
	return digest, packed, tree
}

// age makes paths look last used two days ago.
func age(t *testing.T, paths ...string) {
	t.Helper()
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func wantNone(string) bool { return false }

func TestPruneRemovesOldUnwantedImagesOnly(t *testing.T) {
	ctx := context.Background()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	oldBoth, oldBothPacked, oldBothTree := cached(t, c, "old, packed and unpacked", true)
	oldPacked, oldPackedFile, _ := cached(t, c, "old, packed only", false)
	wanted, wantedPacked, wantedTree := cached(t, c, "old but wanted", true)
	_, recentPacked, _ := cached(t, c, "recent", false)
	fetched, fetchedPacked, fetchedTree := cached(t, c, "old, then fetched again", true)
	unpacked, unpackedPacked, unpackedTree := cached(t, c, "old, then its tree asked for", true)
	age(t, oldBothPacked, oldBothTree, oldPackedFile, wantedPacked, wantedTree, fetchedPacked, fetchedTree, unpackedPacked, unpackedTree)
	// Uses since make them recent again.
	if _, err := c.Fetch(ctx, fetched, func(context.Context) (io.ReadCloser, error) {
		t.Fatal("a cached image was downloaded")
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unpacked(ctx, unpacked); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, p := range []string{oldBothPacked, oldPackedFile} {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}

	removed, freed, err := c.Prune(func(d string) bool { return d == wanted }, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{oldBoth, oldPacked}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	if freed <= size { // the packed files, and the unpacked tree's file
		t.Fatalf("freed %d bytes, want more than %d", freed, size)
	}
	for _, p := range []string{oldBothPacked, oldBothTree, oldPackedFile} {
		if exists(p) {
			t.Errorf("%s is left", p)
		}
	}
	for _, p := range []string{wantedPacked, wantedTree, recentPacked, fetchedPacked, fetchedTree, unpackedPacked, unpackedTree} {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(c.dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %d entries after a prune", len(entries))
	}

	// A removed image comes back whole.
	_, data := testImage(t, "old, packed and unpacked")
	if _, err := c.Fetch(ctx, oldBoth, opener(data)); err != nil {
		t.Fatal(err)
	}
	tree, err := c.Unpacked(ctx, oldBoth)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(tree, "ro", "file")); string(got) != "old, packed and unpacked" {
		t.Fatalf("the image fetched again holds %q", got)
	}
}

// TestPruneSkipsAnImageBeingFetched: an image whose lock is held (here, a
// download of its packed file, which the old tree outlived) is left alone,
// and so is the download's temporary file, however old it looks.
func TestPruneSkipsAnImageBeingFetched(t *testing.T) {
	ctx := context.Background()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest, packed, tree := cached(t, c, "being fetched", true)
	data, _ := os.ReadFile(packed)
	os.Remove(packed)
	age(t, tree)

	midway, resume := make(chan struct{}), make(chan struct{})
	fetched := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, digest, func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(&pausingReader{data: data, midway: midway, resume: resume}), nil
		})
		fetched <- err
	}()
	select {
	case <-midway:
	case err := <-fetched:
		t.Fatalf("fetch ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the download did not start")
	}
	temps, _ := filepath.Glob(filepath.Join(c.dir, "tmp", "image-*"))
	if len(temps) != 1 {
		t.Fatalf("temporaries %v, want the download's", temps)
	}
	age(t, temps[0])

	removed, _, err := c.Prune(wantNone, 0)
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune during a fetch removed %v, %v", removed, err)
	}
	if !exists(tree) || !exists(temps[0]) {
		t.Fatal("prune removed the tree or the temporary of an image being fetched")
	}
	close(resume)
	if err := <-fetched; err != nil {
		t.Fatalf("the fetch failed after a prune: %v", err)
	}
	if !exists(packed) {
		t.Fatal("the fetched image is missing")
	}

	// Done, and used just now: a prune by age keeps it.
	if removed, _, err := c.Prune(wantNone, time.Hour); err != nil || len(removed) != 0 {
		t.Fatalf("prune after the fetch removed %v, %v", removed, err)
	}
}

// pausingReader gives half of data, then waits for resume.
type pausingReader struct {
	data           []byte
	off            int
	midway, resume chan struct{}
	paused         bool
}

func (r *pausingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off >= len(r.data)/2 && !r.paused {
		r.paused = true
		close(r.midway) // the first half is written by now
		<-r.resume
	}
	end := len(r.data)
	if !r.paused {
		end = len(r.data) / 2
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

func TestPruneRemovesStaleTemporaries(t *testing.T) {
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "tmp")
	staleFile := filepath.Join(tmp, "image-1")
	os.WriteFile(staleFile, []byte("half a download"), 0o644)
	staleTree := filepath.Join(tmp, "rootfs-2")
	os.MkdirAll(filepath.Join(staleTree, "root", "ro"), 0o755)
	os.WriteFile(filepath.Join(staleTree, "root", "ro", "file"), []byte("half an unpack"), 0o644)
	os.Chmod(filepath.Join(staleTree, "root", "ro"), 0o555)
	fresh := filepath.Join(tmp, "image-3")
	os.WriteFile(fresh, []byte("a download under way in another process"), 0o644)
	age(t, staleFile, staleTree)

	removed, freed, err := c.Prune(wantNone, time.Hour)
	if err != nil || len(removed) != 0 {
		t.Fatalf("prune: %v, %v", removed, err)
	}
	if exists(staleFile) || exists(staleTree) {
		t.Fatal("stale temporaries are left")
	}
	if !exists(fresh) {
		t.Fatal("a recent temporary was removed")
	}
	if want := int64(len("half a download") + len("half an unpack")); freed != want {
		t.Fatalf("freed %d bytes, want %d", freed, want)
	}
}

// TestPruneLeavesMountedTrees: an unpacked tree with something mounted
// under it is in use, whatever keep says.
func TestPruneLeavesMountedTrees(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest, packed, tree := cached(t, c, "mounted", true)
	mnt := filepath.Join(tree, "ro")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(unmount)
	age(t, packed, tree)

	removed, _, err := c.Prune(wantNone, 0)
	if err != nil || len(removed) != 0 || !exists(tree) || !exists(packed) {
		t.Fatalf("prune removed %v (%v) from under a mount", removed, err)
	}
	unmount()
	if removed, _, err := c.Prune(wantNone, 0); err != nil || !slices.Equal(removed, []string{digest}) || exists(tree) {
		t.Fatalf("prune after the unmount removed %v, %v", removed, err)
	}
}

func TestParseMountInfo(t *testing.T) {
	info := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:31 / /var/lib/skiff/images/rootfs/ab\040cd rw - tmpfs tmpfs rw
37 22 0:32 / /a\134b\011c rw - tmpfs tmpfs rw
`
	got, err := parseMountInfo(strings.NewReader(info))
	want := []string{"/", "/var/lib/skiff/images/rootfs/ab cd", "/a\\b\tc"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("mount points %q, %v; want %q", got, err, want)
	}
}
