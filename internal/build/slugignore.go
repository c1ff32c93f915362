package build

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// applySlugignore removes from dir what its .slugignore names, as Heroku
// does before a build: one pattern per line, # comments, a pattern with a
// slash matched against the path from the root (a leading slash anchors
// it), one without matched against every name; a match removes a file or a
// whole directory. It returns how many entries it removed.
func applySlugignore(dir string) (int, error) {
	f, err := os.Open(filepath.Join(dir, ".slugignore"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var patterns []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		patterns = append(patterns, strings.TrimSuffix(p, "/"))
	}
	f.Close()
	if err := sc.Err(); err != nil {
		return 0, err
	}
	removed := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if !slugignored(patterns, rel) {
			return nil
		}
		removed++
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	return removed, err
}

func slugignored(patterns []string, rel string) bool {
	base := path.Base(rel)
	for _, p := range patterns {
		if strings.Contains(p, "/") {
			if ok, _ := path.Match(strings.TrimPrefix(p, "/"), rel); ok {
				return true
			}
		} else if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}
