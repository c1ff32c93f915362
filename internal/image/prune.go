package image

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Prune removes from the cache every image, packed and unpacked, that keep
// does not want and that was not used (added, fetched or unpacked) within
// unusedFor, and every temporary left by an interrupted fetch or unpack
// that is older than unusedFor. It returns the digests of the images it
// removed and the bytes it freed; it goes on past a failure to remove one
// image, and reports every failure at the end.
//
// An image being added, fetched or unpacked in this process is left alone,
// and so is one whose unpacked tree is a mount point or has something
// mounted under it in this process's mount namespace. Nothing else tells
// Prune that an unpacked tree is the root of a running process: keep must
// want the images of every process that runs. Another process sharing the
// cache's directory is protected only by the times of use: it should not
// prune with a short unusedFor.
func (c *Cache) Prune(keep func(digest string) bool, unusedFor time.Duration) (removed []string, freed int64, err error) {
	cutoff := time.Now().Add(-unusedFor)
	var errs []error
	mounts, merr := mountPoints()
	if merr != nil {
		// Without the mount table no tree is known to be unused.
		errs = append(errs, fmt.Errorf("prune images: unpacked trees left alone: %w", merr))
	}
	busy := func(path string) bool {
		if merr != nil {
			return true
		}
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			real = path
		}
		return slices.ContainsFunc(mounts, func(m string) bool {
			return m == real || strings.HasPrefix(m, real+"/")
		})
	}

	digests, err := c.digests()
	if err != nil {
		return nil, 0, fmt.Errorf("prune images: %w", err)
	}
	for _, digest := range digests {
		if keep(digest) {
			continue
		}
		n, ok, err := c.pruneImage(digest, cutoff, busy)
		if err != nil {
			errs = append(errs, fmt.Errorf("prune image %s: %w", digest, err))
		}
		freed += n
		if ok {
			removed = append(removed, digest)
		}
	}

	n, err := c.pruneTemps(cutoff, busy)
	freed += n
	if err != nil {
		errs = append(errs, fmt.Errorf("prune image temporaries: %w", err))
	}
	return removed, freed, errors.Join(errs...)
}

// digests lists the images in the cache, in either form.
func (c *Cache) digests() ([]string, error) {
	seen := map[string]bool{}
	add := func(dir string, name func(string) (string, bool)) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if h, ok := name(e.Name()); ok {
				if _, err := hexOf("sha256:" + h); err == nil {
					seen["sha256:"+h] = true
				}
			}
		}
		return nil
	}
	if err := add(c.dir, func(n string) (string, bool) { return strings.CutSuffix(n, ".squashfs") }); err != nil {
		return nil, err
	}
	if err := add(filepath.Join(c.dir, "rootfs"), func(n string) (string, bool) { return n, true }); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}

// pruneImage removes both forms of digest if neither was used since
// cutoff, nobody holds its lock and its tree is not busy. It reports the
// bytes freed and whether the image is gone.
func (c *Cache) pruneImage(digest string, cutoff time.Time, busy func(string) bool) (int64, bool, error) {
	unlock, ok := c.tryLock(digest)
	if !ok {
		return 0, false, nil // being added, fetched or unpacked: in use
	}
	defer unlock()
	h, _ := hexOf(digest)
	packed, tree := filepath.Join(c.dir, h+".squashfs"), filepath.Join(c.dir, "rootfs", h)
	var lastUse time.Time
	for _, p := range []string{packed, tree} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(lastUse) {
			lastUse = fi.ModTime()
		}
	}
	if lastUse.After(cutoff) {
		return 0, false, nil
	}
	var freed int64
	if _, err := os.Lstat(tree); err == nil {
		if busy(tree) {
			return 0, false, nil
		}
		// Out of the way first, in one step: a tree half removed must
		// never be taken for the image.
		gone, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "prune-*")
		if err != nil {
			return 0, false, err
		}
		if err := os.Rename(tree, filepath.Join(gone, "root")); err != nil {
			os.Remove(gone)
			return 0, false, err
		}
		n, err := removeTree(gone)
		freed += n
		if err != nil {
			return freed, false, err // the rest goes with the temporaries
		}
	}
	if fi, err := os.Stat(packed); err == nil {
		if err := os.Remove(packed); err != nil {
			return freed, false, err
		}
		freed += fi.Size()
	}
	return freed, true, nil
}

// pruneTemps removes what interrupted work left under tmp/ before cutoff.
func (c *Cache) pruneTemps(cutoff time.Time, busy func(string) bool) (int64, error) {
	dir := filepath.Join(c.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var freed int64
	var errs []error
	for _, e := range entries {
		c.mu.Lock()
		active := c.temps[e.Name()]
		c.mu.Unlock()
		if active {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || fi.ModTime().After(cutoff) || busy(p) {
			continue
		}
		n, err := removeTree(p)
		freed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return freed, errors.Join(errs...)
}

// removeTree removes the file or tree at path and reports the bytes of
// the files it held. Directories without write permission (an image may
// have them) are made writable first.
func removeTree(path string) (int64, error) {
	var size int64
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o700 != 0o700 {
				_ = os.Chmod(p, info.Mode().Perm()|0o700)
			}
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	if err := os.RemoveAll(path); err != nil {
		return 0, err
	}
	return size, nil
}

// mountPoints lists the mount points of this process's mount namespace.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountInfo(f)
}

// parseMountInfo reads the mount points out of a mountinfo file
// (proc_pid_mountinfo(5)): the fifth field, with spaces, tabs, newlines
// and backslashes escaped as octal.
func parseMountInfo(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeOctal(fields[4]))
	}
	return out, sc.Err()
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
