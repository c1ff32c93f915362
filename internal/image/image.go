// Package image packs a built app into a read-only SquashFS image (zstd)
// and keeps a local cache of images by digest, both packed and unpacked,
// from which Prune removes the images no longer needed (prune.go).
//
// The real work is done by squashfs-tools (mksquashfs, unsquashfs), which
// the set-up installs from Debian's packages. Images are reproducible:
// every timestamp is fixed and every file owned by root, so the same tree
// gives the same bytes and the same digest.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Pack makes a SquashFS image of the tree at src in the file dst. It first
// makes every file and directory of src readable by all, since the image is
// mounted for an unprivileged app user.
func Pack(ctx context.Context, src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode().Perm() | 0o444
		if d.IsDir() || mode&0o100 != 0 {
			mode |= 0o111
		}
		if mode != info.Mode().Perm() {
			return os.Chmod(p, mode)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack image: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mksquashfs", src, dst,
		"-comp", "zstd", "-Xcompression-level", "3",
		"-noappend", "-no-xattrs", "-all-root", "-mkfs-time", "0", "-all-time", "0",
		"-quiet", "-no-progress")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pack image: mksquashfs: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Digest is the "sha256:<hex>" digest of the file at path, and its size.
func Digest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// Cache keeps images by digest under Dir: packed ones as <hex>.squashfs and
// unpacked ones under rootfs/<hex>/, with work in progress under tmp/. It
// is safe for concurrent use, also by several processes sharing Dir, since
// every entry appears by rename.
//
// Every use of an image (Add, Fetch, Unpacked) sets the modification time
// of the form it used to now: the newest of them is when the image was
// last used, which Prune goes by.
type Cache struct {
	dir   string
	mu    sync.Mutex             // guards locks and temps
	locks map[string]*sync.Mutex // per digest
	temps map[string]bool        // names in tmp/ being written
}

// NewCache opens (creating) a cache in dir.
func NewCache(dir string) (*Cache, error) {
	for _, d := range []string{dir, filepath.Join(dir, "rootfs"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
	}
	return &Cache{dir: dir, locks: map[string]*sync.Mutex{}, temps: map[string]bool{}}, nil
}

func hexOf(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("bad image digest %q", digest)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("bad image digest %q", digest)
	}
	return h, nil
}

func (c *Cache) lock(digest string) func() {
	c.mu.Lock()
	l := c.locks[digest]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[digest] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// tryLock takes digest's lock if nobody holds it.
func (c *Cache) tryLock(digest string) (unlock func(), ok bool) {
	c.mu.Lock()
	l := c.locks[digest]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[digest] = l
	}
	c.mu.Unlock()
	if !l.TryLock() {
		return nil, false
	}
	return l.Unlock, true
}

// tempFile and tempDir make a temporary file or directory under tmp/ that
// Prune leaves alone until done is called.
func (c *Cache) tempFile(pattern string) (f *os.File, done func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, err = os.CreateTemp(filepath.Join(c.dir, "tmp"), pattern); err != nil {
		return nil, nil, err
	}
	return f, c.tempDone(filepath.Base(f.Name())), nil
}

func (c *Cache) tempDir(pattern string) (dir string, done func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if dir, err = os.MkdirTemp(filepath.Join(c.dir, "tmp"), pattern); err != nil {
		return "", nil, err
	}
	return dir, c.tempDone(filepath.Base(dir)), nil
}

// tempDone registers name as being written; c.mu is held.
func (c *Cache) tempDone(name string) func() {
	c.temps[name] = true
	return func() {
		c.mu.Lock()
		delete(c.temps, name)
		c.mu.Unlock()
	}
}

// touch records a use of the cached file or directory at path. A failure
// only makes the image look older to Prune; the caller's keep still has
// the last word.
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

// Path is where the packed image of digest is kept.
func (c *Cache) Path(digest string) (string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.dir, h+".squashfs"), nil
}

// Add moves the image file at src into the cache under digest, which the
// caller has computed. It is how a builder hands an image to the agent of
// its own node without a round trip through the object store.
func (c *Cache) Add(src, digest string) error {
	dst, err := c.Path(digest)
	if err != nil {
		return err
	}
	defer c.lock(digest)()
	if err := os.Rename(src, dst); err == nil {
		touch(dst)
		return nil
	}
	// Another file system: copy, then rename.
	return c.write(digest, dst, func(w io.Writer) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// Fetch returns the path of the packed image of digest, calling open to
// download it if the cache does not have it. A download whose digest does
// not match is discarded with an error.
func (c *Cache) Fetch(ctx context.Context, digest string, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	dst, err := c.Path(digest)
	if err != nil {
		return "", err
	}
	defer c.lock(digest)()
	if _, err := os.Stat(dst); err == nil {
		touch(dst)
		return dst, nil
	}
	err = c.write(digest, dst, func(w io.Writer) error {
		r, err := open(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(w, r)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("fetch image %s: %w", digest, err)
	}
	return dst, nil
}

// write fills a temporary file through fill, checks its digest and renames
// it to dst.
func (c *Cache) write(digest, dst string, fill func(io.Writer) error) error {
	tmp, done, err := c.tempFile("image-*")
	if err != nil {
		return err
	}
	defer done()
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if err := fill(io.MultiWriter(tmp, h)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("image digest mismatch: got %s, want %s", got, digest)
	}
	return os.Rename(tmp.Name(), dst)
}

// Unpacked returns a directory holding the contents of the cached image of
// digest, unpacking it on first use. Fetch or Add must have put the image
// in the cache.
func (c *Cache) Unpacked(ctx context.Context, digest string) (string, error) {
	h, err := hexOf(digest)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(c.dir, "rootfs", h)
	defer c.lock(digest)()
	if _, err := os.Stat(dst); err == nil {
		touch(dst)
		return dst, nil
	}
	src := filepath.Join(c.dir, h+".squashfs")
	tmp, done, err := c.tempDir("rootfs-*")
	if err != nil {
		return "", err
	}
	defer done()
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	cmd := exec.CommandContext(ctx, "unsquashfs", "-d", root, "-n", "-q", "-no-xattrs", src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack image %s: unsquashfs: %w: %s", digest, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(root, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("unpack image %s: %w", digest, err)
	}
	// unsquashfs gave the tree the image's fixed times.
	touch(dst)
	return dst, nil
}
