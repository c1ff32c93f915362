// Package archive writes and reads the gzipped tar archives that carry an
// app's source from the CLI to the builder.
//
// Reading is where the care is: an archive comes from a user, so every
// entry is checked before anything is written. Paths must stay inside the
// root, only regular files, directories and symbolic links are allowed,
// and every symbolic link must resolve, through any other links of the
// archive, to a place inside the root. Sizes are bounded. A bad archive
// gets an error of kind invalid or too-large that names the entry.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Limits bound what an archive may unpack to.
type Limits struct {
	MaxBytes int64 // total size of the files; default 2 GiB
	MaxFiles int   // number of entries; default 200,000
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 2 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 200_000
	}
	return l
}

// Stats describes an archive's contents.
type Stats struct {
	Files int
	Bytes int64
	// Digest identifies the tree the archive holds, whatever the order of
	// its entries, their times or owners: names, kinds, executable bits,
	// contents and link targets. Set by Check and Extract.
	Digest string
}

// Write archives the tree at dir to w as a gzipped tar. Version-control
// directories (.git, .hg, .svn) are left out; symbolic links are stored as
// links, not followed; sockets and devices are skipped.
func Write(w io.Writer, dir string) (Stats, error) {
	var st Stats
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".hg" || d.Name() == ".svn") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !info.Mode().IsRegular() && !info.IsDir():
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		st.Files++
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			st.Bytes += n
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	return st, gz.Close()
}

// Check reads a whole archive and reports the first reason it may not be
// unpacked, or its stats.
func Check(r io.Reader, lim Limits) (Stats, error) {
	return read(r, "", lim)
}

// Extract unpacks an archive into dir, which must exist and be empty. It
// checks the archive as Check does, and writes nothing through a symbolic
// link.
func Extract(r io.Reader, dir string, lim Limits) (Stats, error) {
	if dir == "" {
		return Stats{}, errors.New("extract: no directory")
	}
	return read(r, dir, lim)
}

type entry struct {
	typ    byte
	target string // for links
}

func read(r io.Reader, dir string, lim Limits) (Stats, error) {
	lim = lim.withDefaults()
	var st Stats
	gz, err := gzip.NewReader(r)
	if err != nil {
		return st, invalid("the upload is not a gzipped tar archive", "upload with skiff deploy, which builds the archive itself")
	}
	tr := tar.NewReader(gz)
	entries := map[string]entry{}
	sums := map[string]string{} // what each entry contributes to the digest
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, invalid(fmt.Sprintf("the archive is damaged: %v", err), "upload it again")
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return st, err
		}
		if name == "." {
			continue
		}
		st.Files++
		if st.Files > lim.MaxFiles {
			return st, skiff.Errorf(skiff.KindTooLarge, "leave build output and dependencies out of the upload",
				"the archive has more than %d entries", lim.MaxFiles)
		}
		if inside, ok := symlinkPrefix(entries, name); ok {
			return st, invalid(fmt.Sprintf("entry %q lies under the symbolic link %q", name, inside),
				"an archive may not place files through a link")
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			entries[name] = entry{typ: tar.TypeDir}
			sums[name] = "d"
			if dir != "" {
				if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
					return st, err
				}
			}
		case tar.TypeReg, tar.TypeRegA:
			if _, dup := entries[name]; dup {
				return st, invalid(fmt.Sprintf("entry %q appears twice", name), "")
			}
			entries[name] = entry{typ: tar.TypeReg}
			if hdr.Size < 0 || st.Bytes+hdr.Size > lim.MaxBytes {
				return st, skiff.Errorf(skiff.KindTooLarge, "leave build output and dependencies out of the upload",
					"the archive unpacks to more than %d MiB", lim.MaxBytes>>20)
			}
			st.Bytes += hdr.Size
			h := sha256.New()
			if err := writeFile(io.TeeReader(tr, h), dir, name, hdr); err != nil {
				return st, err
			}
			sums[name] = fmt.Sprintf("f %o %x", hdr.Mode&0o111, h.Sum(nil))
		case tar.TypeSymlink:
			if _, dup := entries[name]; dup {
				return st, invalid(fmt.Sprintf("entry %q appears twice", name), "")
			}
			if path.IsAbs(hdr.Linkname) {
				return st, invalid(fmt.Sprintf("symbolic link %q points outside the app, to %q", name, hdr.Linkname),
					"use relative links to files inside the app")
			}
			entries[name] = entry{typ: tar.TypeSymlink, target: hdr.Linkname}
			sums[name] = "l " + hdr.Linkname
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		case tar.TypeLink:
			return st, invalid(fmt.Sprintf("entry %q is a hard link", name), "replace hard links by copies or symbolic links")
		default:
			return st, invalid(fmt.Sprintf("entry %q is a special file (type %q)", name, hdr.Typeflag),
				"an app may contain only files, directories and symbolic links")
		}
	}
	st.Digest = treeDigest(sums)
	// Links are checked once every entry is known, since a link may pass
	// through links that come later in the archive.
	for name, e := range entries {
		if e.typ != tar.TypeSymlink {
			continue
		}
		if _, err := resolve(entries, name); errors.Is(err, errLoop) {
			return st, invalid(fmt.Sprintf("symbolic link %q is part of a loop of links", name), "")
		} else if err != nil {
			return st, invalid(fmt.Sprintf("symbolic link %q points outside the app, to %q", name, e.target),
				"use relative links to files inside the app")
		}
	}
	if dir != "" {
		for name, e := range entries {
			if e.typ == tar.TypeSymlink {
				if err := os.Symlink(e.target, filepath.Join(dir, name)); err != nil {
					return st, fmt.Errorf("extract %s: %w", name, err)
				}
			}
		}
	}
	return st, nil
}

// treeDigest hashes the entries' contributions in name order.
func treeDigest(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\n", n, sums[n])
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

func writeFile(r io.Reader, dir, name string, hdr *tar.Header) error {
	if dir == "" {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(hdr.Mode).Perm() | 0o400
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return f.Close()
}

func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) || path.IsAbs(name) || strings.HasPrefix(name, `\`) {
		return "", invalid(fmt.Sprintf("entry %q has an absolute path", name), "archive paths must be relative to the app's root")
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", invalid(fmt.Sprintf("entry %q escapes the app's root", name), "archive paths must stay inside the app's root")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", invalid(fmt.Sprintf("entry %q contains \"..\"", name), "archive paths must stay inside the app's root")
		}
	}
	return clean, nil
}

// symlinkPrefix reports a link among the parents of name.
func symlinkPrefix(entries map[string]entry, name string) (string, bool) {
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if entries[p].typ == tar.TypeSymlink {
			return p, true
		}
	}
	return "", false
}

var (
	errEscapes = errors.New("escapes the root")
	errLoop    = errors.New("too many levels of links")
)

// resolve follows name through the archive's links as the kernel would and
// returns where it ends, or errEscapes if any step leaves the root.
func resolve(entries map[string]entry, name string) (string, error) {
	budget := 40 // as the kernel's limit on nested links
	var walk func(base []string, rel string) ([]string, error)
	walk = func(base []string, rel string) ([]string, error) {
		cur := append([]string(nil), base...)
		for _, part := range strings.Split(rel, "/") {
			switch part {
			case "", ".":
				continue
			case "..":
				if len(cur) == 0 {
					return nil, errEscapes
				}
				cur = cur[:len(cur)-1]
				continue
			}
			cur = append(cur, part)
			e, ok := entries[strings.Join(cur, "/")]
			if !ok || e.typ != tar.TypeSymlink {
				continue
			}
			if budget--; budget < 0 {
				return nil, errLoop
			}
			var err error
			if cur, err = walk(cur[:len(cur)-1], e.target); err != nil {
				return nil, err
			}
		}
		return cur, nil
	}
	parts, err := walk(nil, name)
	return strings.Join(parts, "/"), err
}

func invalid(msg, hint string) error {
	if hint == "" {
		hint = "fix the app's files and deploy again"
	}
	return &skiff.Error{Kind: skiff.KindInvalid, Message: "bad upload: " + msg, Hint: hint}
}
