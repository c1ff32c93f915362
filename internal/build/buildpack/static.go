package buildpack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/static"
)

// Static returns the buildpack for static sites: a tree with an
// index.html or a static.json at its root. Nothing is compiled: the build
// checks static.json (the format of Heroku's static buildpack, which
// package static describes) and writes it in canonical form to
// static.ConfigFile, and the web process is the platform's own file
// server (skiff.StaticCommand), which static.Handler implements.
func Static() Buildpack { return staticPack{} }

type staticPack struct{}

func (staticPack) Name() string { return "static" }

func (staticPack) Detect(dir string) (bool, error) { return hasFile(dir, "index.html", "static.json") }

func (staticPack) Compile(ctx context.Context, b *Build) (Result, error) {
	fmt.Fprintln(b.Out, "-----> Static site detected")
	cfg := static.DefaultConfig()
	data, err := os.ReadFile(filepath.Join(b.Dir, "static.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return Result{}, fmt.Errorf("read static.json: %w", err)
	default:
		var warnings []string
		cfg, warnings, err = static.Parse(data)
		for _, w := range warnings {
			fmt.Fprintf(b.Out, " !     static.json: %s\n", w)
		}
		if err != nil {
			return Result{}, err
		}
		fmt.Fprintln(b.Out, "       Using static.json")
	}
	files, size, hasIndex, err := checkStaticTree(b.Dir, &cfg)
	if err != nil {
		return Result{}, err
	}

	canonical, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return Result{}, err
	}
	if err := writeStaticConfig(b.Dir, append(canonical, '\n')); err != nil {
		return Result{}, err
	}

	shown := cfg.Root + "/"
	if cfg.Root == "." {
		shown = "the app's root"
	}
	fmt.Fprintf(b.Out, "       Serving %s (%d files, %s)\n", shown, files, skiff.HumanBytes(size))
	var features []string
	if cfg.CleanURLs {
		features = append(features, "clean URLs")
	}
	for _, f := range []struct {
		n    int
		what string
	}{{len(cfg.Routes), "route"}, {len(cfg.Headers), "header rule"}, {len(cfg.Redirects), "redirect"}} {
		if f.n == 1 {
			features = append(features, "1 "+f.what)
		} else if f.n > 1 {
			features = append(features, fmt.Sprintf("%d %ss", f.n, f.what))
		}
	}
	if cfg.ErrorPage != "" {
		features = append(features, "error page "+cfg.ErrorPage)
	}
	if len(features) > 0 {
		fmt.Fprintf(b.Out, "       With %s\n", strings.Join(features, ", "))
	}
	if !hasIndex && !cfg.Routed("/") {
		fmt.Fprintf(b.Out, " !     %s has no index.html: the site's home page will answer 404\n", shown)
	}
	return Result{Processes: map[string]string{"web": skiff.StaticCommand}}, nil
}

// checkStaticTree checks that the files cfg names are in the tree, counts
// the files served, and says whether the site has a home page.
func checkStaticTree(dir string, cfg *static.Config) (files int, size int64, hasIndex bool, err error) {
	app, err := os.OpenRoot(dir)
	if err != nil {
		return 0, 0, false, err
	}
	defer app.Close()
	docs := app
	if cfg.Root != "." {
		info, err := app.Stat(cfg.Root)
		if link, lerr := app.Lstat(cfg.Root); err != nil && lerr == nil && link.Mode()&fs.ModeSymlink != 0 {
			return 0, 0, false, skiff.Errorf(skiff.KindFailed, "make "+cfg.Root+" a directory of the app, not a link out of it",
				"static.json: root %q leads outside the app (or nowhere)", cfg.Root)
		}
		if err != nil || !info.IsDir() {
			return 0, 0, false, skiff.Errorf(skiff.KindFailed, "create "+cfg.Root+"/ with the site's files, or change root in static.json",
				"static.json: root %q is not a directory in the app", cfg.Root)
		}
		// OpenRoot refuses a root that leads out of the app through a
		// symlink.
		if docs, err = app.OpenRoot(cfg.Root); err != nil {
			return 0, 0, false, skiff.Errorf(skiff.KindFailed, "make "+cfg.Root+" a directory of the app, not a link out of it",
				"static.json: root %q leads outside the app", cfg.Root)
		}
		defer docs.Close()
	}
	err = fs.WalkDir(docs.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && name != "." && static.Hidden(name) {
			return fs.SkipDir
		}
		if d.IsDir() || static.Hidden(name) {
			return nil
		}
		// Through docs, a symlink is followed only when it stays inside;
		// one that leads out is not served, so not counted either.
		f, info, err := static.Open(docs, name)
		if err != nil || info.IsDir() {
			if f != nil {
				f.Close()
			}
			return nil
		}
		f.Close()
		files++
		size += info.Size()
		return nil
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("static: list %s: %w", cfg.Root, err)
	}
	if files == 0 {
		return 0, 0, false, skiff.Errorf(skiff.KindFailed, "put the site's files in "+cfg.Root+"/, or change root in static.json",
			"static.json: root %q contains no files", cfg.Root)
	}
	isRegular := func(name string) bool {
		info, err := docs.Stat(name)
		return err == nil && info.Mode().IsRegular()
	}
	for _, r := range cfg.Routes {
		if !isRegular(r.File) {
			return 0, 0, false, static.ConfigError(fmt.Sprintf("routes[%q] names %q, which is not a file in %s/", r.Path, r.File, cfg.Root))
		}
	}
	if cfg.ErrorPage != "" && !isRegular(cfg.ErrorPage) {
		return 0, 0, false, static.ConfigError(fmt.Sprintf("error_page %q is not a file in %s/", cfg.ErrorPage, cfg.Root))
	}
	return files, size, isRegular("index.html"), nil
}

// writeStaticConfig writes the canonical config into the tree, never
// through a link out of it.
func writeStaticConfig(dir string, data []byte) error {
	app, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.MkdirAll(path.Dir(static.ConfigFile), 0o755); err != nil {
		return fmt.Errorf("static: write %s: %w", static.ConfigFile, err)
	}
	if err := app.Remove(static.ConfigFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("static: write %s: %w", static.ConfigFile, err)
	}
	if err := app.WriteFile(static.ConfigFile, data, 0o644); err != nil {
		return fmt.Errorf("static: write %s: %w", static.ConfigFile, err)
	}
	return nil
}
