package static

import (
	"fmt"
	"net/http"
	"os"
	"path"
)

// Dir serves the files of the directory dir of the image at root,
// as the router does for app.json's static prefixes: each with the given
// Cache-Control (none when empty), its ETag and, where the client takes
// it, compressed. It has Handler's rules (GET and HEAD only, no
// directory listing, no dotfile, nothing outside dir whatever a symlink
// says), no routes nor clean URLs; a request that finds no file goes to
// missing. The request's path is relative to dir: the caller strips the
// URL prefix.
func Dir(root, dir, cacheControl string, missing http.Handler) (http.Handler, error) {
	cfg := DefaultConfig()
	cfg.Root = path.Clean(dir)
	if cacheControl != "" {
		cfg.Headers = []HeaderRule{{Path: "/**", Headers: map[string]string{"Cache-Control": cacheControl}}}
	}
	if err := cfg.compile(); err != nil {
		return nil, fmt.Errorf("static %s: %w", dir, err)
	}
	app, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	defer app.Close()
	docs, err := app.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static: directory %s: %w", dir, err)
	}
	docs.Close()
	return &handler{root: root, cfg: cfg, missing: missing}, nil
}
