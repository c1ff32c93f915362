package buildpack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Static returns the buildpack for static sites: a tree with an
// index.html or a static.json at its root. Nothing is compiled: the build
// checks static.json (the format of Heroku's static buildpack) and writes
// it in canonical form to .skiff/static.json, and the web process is the
// platform's own file server (skiff.StaticCommand), which StaticHandler
// implements.
//
// static.json, all fields optional:
//
//	{
//	  "root": "public",                         // directory served; default "."
//	  "clean_urls": true,                       // /about serves about.html
//	  "routes": {"/**": "index.html"},          // file for paths that match no file
//	  "headers": {"/assets/**": {"Cache-Control": "public, max-age=31536000"}},
//	  "error_page": "404.html",                 // served with status 404
//	  "redirects": {"/old": {"url": "/new", "status": 301}}
//	}
//
// Patterns start with "/"; "*" matches within one path segment and "**"
// across segments. Routes are tried in the order of the file, and so are
// header rules (a later rule overrides an earlier one's header).
func Static() Buildpack { return staticPack{} }

type staticPack struct{}

func (staticPack) Name() string { return "static" }

func (staticPack) Detect(dir string) (bool, error) { return hasFile(dir, "index.html", "static.json") }

// staticConfigFile is where the build leaves the canonical configuration
// in the tree, for StaticHandler.
const staticConfigFile = ".skiff/static.json"

// staticConfig is the canonical form of static.json, as .skiff/static.json
// holds it: lists in the order of the user's file, paths cleaned.
type staticConfig struct {
	// Version is the format's version: 1. A server refuses a newer one.
	Version   int              `json:"version"`
	Root      string           `json:"root"`
	CleanURLs bool             `json:"clean_urls"`
	Routes    []staticRoute    `json:"routes"`
	Headers   []staticHeaders  `json:"headers"`
	ErrorPage string           `json:"error_page"`
	Redirects []staticRedirect `json:"redirects"`
}

type staticRoute struct {
	Path string `json:"path"`
	File string `json:"file"`
	re   *regexp.Regexp
}

type staticHeaders struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	re      *regexp.Regexp
}

type staticRedirect struct {
	Path   string `json:"path"`
	URL    string `json:"url"`
	Status int    `json:"status"`
	re     *regexp.Regexp
}

func defaultStaticConfig() staticConfig { return staticConfig{Version: 1, Root: "."} }

func (staticPack) Compile(ctx context.Context, b *Build) (Result, error) {
	fmt.Fprintln(b.Out, "-----> Static site detected")
	cfg := defaultStaticConfig()
	data, err := os.ReadFile(filepath.Join(b.Dir, "static.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return Result{}, fmt.Errorf("read static.json: %w", err)
	default:
		var warnings []string
		cfg, warnings, err = parseStaticJSON(data)
		for _, w := range warnings {
			fmt.Fprintf(b.Out, " !     static.json: %s\n", w)
		}
		if err != nil {
			return Result{}, err
		}
		fmt.Fprintln(b.Out, "       Using static.json")
	}
	if err := cfg.compile(); err != nil {
		return Result{}, staticJSONError(err.Error())
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
	if !hasIndex && !cfg.routes("/") {
		fmt.Fprintf(b.Out, " !     %s has no index.html: the site's home page will answer 404\n", shown)
	}
	return Result{Processes: map[string]string{"web": skiff.StaticCommand}}, nil
}

func staticJSONError(msg string) error {
	return skiff.Errorf(skiff.KindFailed, "fix static.json and push again (see the static site docs for its fields)", "static.json: %s", msg)
}

// checkStaticTree checks that the files cfg names are in the tree, counts
// the files served, and says whether the site has a home page.
func checkStaticTree(dir string, cfg *staticConfig) (files int, size int64, hasIndex bool, err error) {
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
		if d.IsDir() && name != "." && staticHidden(name) {
			return fs.SkipDir
		}
		if d.IsDir() || staticHidden(name) {
			return nil
		}
		// Through docs, a symlink is followed only when it stays inside;
		// one that leads out is not served, so not counted either.
		f, info, err := staticOpen(docs, name)
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
			return 0, 0, false, staticJSONError(fmt.Sprintf("routes[%q] names %q, which is not a file in %s/", r.Path, r.File, cfg.Root))
		}
	}
	if cfg.ErrorPage != "" && !isRegular(cfg.ErrorPage) {
		return 0, 0, false, staticJSONError(fmt.Sprintf("error_page %q is not a file in %s/", cfg.ErrorPage, cfg.Root))
	}
	return files, size, isRegular("index.html"), nil
}

// staticETag is the entity tag of a file's content.
func staticETag(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`, nil
}

// writeStaticConfig writes the canonical config into the tree, never
// through a link out of it.
func writeStaticConfig(dir string, data []byte) error {
	app, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.MkdirAll(path.Dir(staticConfigFile), 0o755); err != nil {
		return fmt.Errorf("static: write %s: %w", staticConfigFile, err)
	}
	if err := app.Remove(staticConfigFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("static: write %s: %w", staticConfigFile, err)
	}
	if err := app.WriteFile(staticConfigFile, data, 0o644); err != nil {
		return fmt.Errorf("static: write %s: %w", staticConfigFile, err)
	}
	return nil
}

// parseStaticJSON reads a user's static.json. Unknown fields (Heroku's
// https_only, proxies…) are warnings, not errors: the site still works
// without them.
func parseStaticJSON(data []byte) (staticConfig, []string, error) {
	cfg := defaultStaticConfig()
	var warnings []string
	fields, err := jsonObject(data)
	if err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := jsonPosition(data, syn.Offset)
			return cfg, nil, staticJSONError(fmt.Sprintf("not valid JSON: line %d, column %d: %s", line, col, syn.Error()))
		}
		return cfg, nil, staticJSONError("not valid JSON: " + err.Error())
	}
	for _, f := range fields {
		bad := func(want string) error {
			return staticJSONError(fmt.Sprintf("%q must be %s", f.key, want))
		}
		switch f.key {
		case "root":
			if json.Unmarshal(f.value, &cfg.Root) != nil {
				return cfg, warnings, bad(`a directory name, like "public"`)
			}
		case "clean_urls":
			if json.Unmarshal(f.value, &cfg.CleanURLs) != nil {
				return cfg, warnings, bad("true or false")
			}
		case "error_page":
			if json.Unmarshal(f.value, &cfg.ErrorPage) != nil {
				return cfg, warnings, bad(`a file name, like "404.html"`)
			}
		case "routes":
			routes, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of URL pattern to file, like {"/**": "index.html"}`)
			}
			for _, r := range routes {
				var file string
				if json.Unmarshal(r.value, &file) != nil {
					return cfg, warnings, staticJSONError(fmt.Sprintf("routes[%q] must be a file name, like \"index.html\"", r.key))
				}
				cfg.Routes = append(cfg.Routes, staticRoute{Path: r.key, File: file})
			}
		case "headers":
			rules, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of URL pattern to headers, like {"/assets/**": {"Cache-Control": "max-age=3600"}}`)
			}
			for _, r := range rules {
				var h map[string]string
				if json.Unmarshal(r.value, &h) != nil || h == nil {
					return cfg, warnings, staticJSONError(fmt.Sprintf("headers[%q] must be an object of header name to value", r.key))
				}
				cfg.Headers = append(cfg.Headers, staticHeaders{Path: r.key, Headers: h})
			}
		case "redirects":
			redirects, err := jsonObject(f.value)
			if err != nil {
				return cfg, warnings, bad(`an object of path to redirect, like {"/old": {"url": "/new", "status": 301}}`)
			}
			for _, r := range redirects {
				var rd struct {
					URL    string `json:"url"`
					Status int    `json:"status"`
				}
				if json.Unmarshal(r.value, &rd) != nil {
					return cfg, warnings, staticJSONError(fmt.Sprintf("redirects[%q] must be an object like {\"url\": \"/new\", \"status\": 301}", r.key))
				}
				if rd.Status == 0 {
					rd.Status = http.StatusMovedPermanently
				}
				cfg.Redirects = append(cfg.Redirects, staticRedirect{Path: r.key, URL: rd.URL, Status: rd.Status})
			}
		default:
			warnings = append(warnings, fmt.Sprintf("ignoring unknown field %q", f.key))
		}
	}
	cfg.Root = strings.TrimSuffix(filepath.ToSlash(cfg.Root), "/")
	if cfg.Root == "" {
		cfg.Root = "."
	}
	cfg.Root = path.Clean(cfg.Root)
	for i := range cfg.Routes {
		cfg.Routes[i].File = path.Clean(strings.TrimPrefix(cfg.Routes[i].File, "/"))
	}
	if cfg.ErrorPage != "" {
		cfg.ErrorPage = path.Clean(strings.TrimPrefix(cfg.ErrorPage, "/"))
	}
	if err := cfg.compile(); err != nil {
		return cfg, warnings, staticJSONError(err.Error())
	}
	return cfg, warnings, nil
}

// compile checks cfg and compiles its patterns. Its errors name the field
// of static.json at fault.
func (cfg *staticConfig) compile() error {
	if cfg.Version != 1 {
		return fmt.Errorf("format version %d is not supported (this skiff reads version 1)", cfg.Version)
	}
	if !staticLocal(cfg.Root) {
		return fmt.Errorf(`"root" must be a directory inside the app, like "public", not %q`, cfg.Root)
	}
	if cfg.ErrorPage != "" && !staticLocal(cfg.ErrorPage) {
		return fmt.Errorf(`"error_page" must be a file inside root, like "404.html", not %q`, cfg.ErrorPage)
	}
	var err error
	for i, r := range cfg.Routes {
		if cfg.Routes[i].re, err = staticGlob(r.Path); err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		if !staticLocal(r.File) || r.File == "." {
			return fmt.Errorf("routes[%q] must name a file inside root, like \"index.html\", not %q", r.Path, r.File)
		}
	}
	for i, h := range cfg.Headers {
		if cfg.Headers[i].re, err = staticGlob(h.Path); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		for name, value := range h.Headers {
			if !staticHeaderName(name) {
				return fmt.Errorf("headers[%q]: %q is not a valid header name", h.Path, name)
			}
			switch http.CanonicalHeaderKey(name) {
			case "Content-Length", "Transfer-Encoding", "Connection", "Content-Range":
				return fmt.Errorf("headers[%q]: %s is set by the server and cannot be changed", h.Path, name)
			}
			if strings.ContainsAny(value, "\r\n\x00") {
				return fmt.Errorf("headers[%q][%q]: a header value cannot contain line breaks", h.Path, name)
			}
		}
	}
	for i, r := range cfg.Redirects {
		if cfg.Redirects[i].re, err = staticGlob(r.Path); err != nil {
			return fmt.Errorf("redirects: %w", err)
		}
		if r.URL == "" || strings.ContainsAny(r.URL, " \t\r\n\x00") {
			return fmt.Errorf("redirects[%q] needs a \"url\" to redirect to, without spaces", r.Path)
		}
		switch r.Status {
		case 301, 302, 303, 307, 308:
		default:
			return fmt.Errorf("redirects[%q]: status %d is not a redirect status (301, 302, 303, 307 or 308)", r.Path, r.Status)
		}
	}
	return nil
}

// routes reports whether a route covers urlPath.
func (cfg *staticConfig) routes(urlPath string) bool {
	for _, r := range cfg.Routes {
		if r.re.MatchString(urlPath) {
			return true
		}
	}
	return false
}

// staticLocal reports whether a slash-separated name stays inside its
// directory.
func staticLocal(name string) bool {
	return name != "" && filepath.IsLocal(filepath.FromSlash(name))
}

// staticGlob compiles a URL pattern: "*" matches within a path segment,
// "**" across segments, "?" one character of a segment.
func staticGlob(pattern string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(pattern, "/") {
		return nil, fmt.Errorf("pattern %q must start with /", pattern)
	}
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(".*")
			i += 2
		case pattern[i] == '*':
			re.WriteString("[^/]*")
			i++
		case pattern[i] == '?':
			re.WriteString("[^/]")
			i++
		default:
			r, size := utf8.DecodeRuneInString(pattern[i:])
			re.WriteString(regexp.QuoteMeta(string(r)))
			i += size
		}
	}
	re.WriteString("$")
	return regexp.Compile(re.String())
}

// staticHeaderName reports whether name is an HTTP token (RFC 9110).
func staticHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// staticHidden reports whether a slash-separated name has a segment that
// starts with a dot, except .well-known: .git, .env and .skiff are never
// served.
func staticHidden(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." && seg != ".well-known" {
			return true
		}
	}
	return false
}

// jsonField is one member of a JSON object, in the object's order.
type jsonField struct {
	key   string
	value json.RawMessage
}

// jsonObject decodes a JSON object keeping the order of its members.
func jsonObject(data []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("it must be a JSON object")
	}
	var fields []jsonField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var f jsonField
		f.key = tok.(string)
		if err := dec.Decode(&f.value); err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the top-level object")
	}
	return fields, nil
}

// StaticHandler serves the static site in the image at root, as the build
// left it: the directory named by .skiff/static.json (defaults when there
// is none), with its clean URLs, routes, headers, error page and
// redirects. It serves GET and HEAD only, never lists a directory, never
// serves a dotfile (but .well-known), and never a file outside the site's
// directory, whatever the path or a symlink says. It opens the directory
// per request and holds nothing open between them, so that the image can
// be unmounted once the handler is no longer used.
func StaticHandler(root string) (http.Handler, error) {
	app, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	defer app.Close()
	cfg := defaultStaticConfig()
	data, err := app.ReadFile(staticConfigFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("static: read %s: %w", staticConfigFile, err)
	default:
		cfg = staticConfig{}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("static: read %s: %w", staticConfigFile, err)
		}
	}
	if err := cfg.compile(); err != nil {
		return nil, fmt.Errorf("static: %s: %w", staticConfigFile, err)
	}
	docs, err := app.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static: root %s: %w", cfg.Root, err)
	}
	docs.Close()
	return &staticHandler{root: root, cfg: cfg}, nil
}

type staticHandler struct {
	root string // the image
	cfg  staticConfig
	// etags holds the entity tags of the files served, computed on
	// first use: name -> string.
	etags sync.Map
	// missing, when set, answers the requests that find no file, in
	// place of the 404 page.
	missing http.Handler
}

func (h *staticHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	clean := path.Clean(upath)
	dirLike := strings.HasSuffix(upath, "/") || clean == "/"
	if dirLike && clean != "/" {
		clean += "/"
	}
	for _, rd := range h.cfg.Redirects {
		if rd.re.MatchString(clean) || dirLike && clean != "/" && rd.re.MatchString(strings.TrimSuffix(clean, "/")) {
			http.Redirect(w, r, rd.URL, rd.Status)
			return
		}
	}

	docs, err := h.open()
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return
	}
	defer docs.Close()

	name := strings.Trim(clean, "/")
	if name == "" {
		name = "."
	}
	if !staticHidden(name) {
		f, info, err := staticOpen(docs, name)
		if err != nil && !staticMissing(err) {
			http.Error(w, "500 internal server error", http.StatusInternalServerError)
			return
		}
		isDir := false
		if f != nil {
			// foo.html/ is not foo.html.
			if !info.IsDir() && !dirLike {
				h.serve(w, r, clean, name, f, info)
				return
			}
			isDir = info.IsDir()
			f.Close()
		}
		if h.cfg.CleanURLs && !dirLike {
			if f, info, _ := staticOpen(docs, name+".html"); f != nil {
				if !info.IsDir() {
					h.serve(w, r, clean, name+".html", f, info)
					return
				}
				f.Close()
			}
		}
		if isDir {
			index := path.Join(name, "index.html")
			if f, info, _ := staticOpen(docs, index); f != nil {
				if info.IsDir() {
					f.Close()
				} else if !dirLike {
					f.Close()
					staticLocalRedirect(w, r, path.Base(clean)+"/")
					return
				} else {
					h.serve(w, r, clean, index, f, info)
					return
				}
			}
		}
	}
	for _, route := range h.cfg.Routes {
		if !route.re.MatchString(clean) {
			continue
		}
		if f, info, _ := staticOpen(docs, route.File); f != nil {
			if !info.IsDir() {
				h.serve(w, r, clean, route.File, f, info)
				return
			}
			f.Close()
		}
		break
	}
	h.notFound(w, r, docs)
}

// open opens the site's directory, confined to the image.
func (h *staticHandler) open() (*os.Root, error) {
	app, err := os.OpenRoot(h.root)
	if err != nil || h.cfg.Root == "." {
		return app, err
	}
	defer app.Close()
	return app.OpenRoot(h.cfg.Root)
}

// serve sends an open file with the custom headers of the request path.
// ServeContent answers conditional and range requests.
func (h *staticHandler) serve(w http.ResponseWriter, r *http.Request, urlPath, name string, f *os.File, info os.FileInfo) {
	defer f.Close()
	hdr := w.Header()
	tag, err := h.etag(name, f)
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return
	}
	hdr.Set("Etag", tag)
	// Set, not sniffed: the bytes sent may be compressed. A header rule
	// may still change it.
	if ctype := staticContentType(info.Name()); ctype != "" {
		hdr.Set("Content-Type", ctype)
	}
	for _, rule := range h.cfg.Headers {
		if !rule.re.MatchString(urlPath) {
			continue
		}
		names := make([]string, 0, len(rule.Headers))
		for name := range rule.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if v := rule.Headers[name]; v != "" {
				hdr.Set(name, v)
			}
		}
	}
	if staticServeEncoded(w, r, tag, f, info) {
		return
	}
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

// etag is the entity tag of the file name, open as f: a digest of its
// content computed on first use and kept, since the image does not
// change. The build's tags in static.json are not taken on trust: an
// app's owner could write any, and compressed files are cached by tag
// across every site a process serves.
func (h *staticHandler) etag(name string, f *os.File) (string, error) {
	if tag, ok := h.etags.Load(name); ok {
		return tag.(string), nil
	}
	tag, err := staticETag(f)
	if err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h.etags.Store(name, tag)
	return tag, nil
}

// notFound answers 404 with the site's error page, if it has one.
func (h *staticHandler) notFound(w http.ResponseWriter, r *http.Request, docs *os.Root) {
	if h.missing != nil {
		h.missing.ServeHTTP(w, r)
		return
	}
	if h.cfg.ErrorPage != "" {
		if f, info, _ := staticOpen(docs, h.cfg.ErrorPage); f != nil {
			defer f.Close()
			if !info.IsDir() {
				ctype := mime.TypeByExtension(path.Ext(h.cfg.ErrorPage))
				if ctype == "" {
					ctype = "text/html; charset=utf-8"
				}
				w.Header().Set("Content-Type", ctype)
				w.Header().Set("Content-Length", fmt.Sprint(info.Size()))
				w.WriteHeader(http.StatusNotFound)
				if r.Method != http.MethodHead {
					io.CopyN(w, f, info.Size())
				}
				return
			}
		}
	}
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// staticOpen opens name in docs and stats it; os.Root refuses any path or
// symlink that leads outside docs.
func staticOpen(docs *os.Root, name string) (*os.File, os.FileInfo, error) {
	f, err := docs.Open(name)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !info.IsDir() && !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, info, nil
}

// staticMissing reports whether an open failed because there is no such
// file to serve (or none the site may serve), rather than for a fault of
// the server.
func staticMissing(err error) bool {
	return !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
		!errors.Is(err, syscall.ENOMEM)
}

// staticLocalRedirect redirects to a path relative to the request's,
// keeping the query, as http.FileServer does.
func staticLocalRedirect(w http.ResponseWriter, r *http.Request, to string) {
	if q := r.URL.RawQuery; q != "" {
		to += "?" + q
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusMovedPermanently)
}
