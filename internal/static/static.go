package static

import (
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
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Handler serves the static site in the image at root, as the build
// left it: the directory named by ConfigFile (defaults when there is
// none), with its clean URLs, routes, headers, error page and redirects.
// It serves GET and HEAD only, never lists a directory, never serves a
// dotfile (but .well-known), and never a file outside the site's
// directory, whatever the path or a symlink says. It opens the directory
// per request and holds nothing open between them, so that the image can
// be unmounted once the handler is no longer used.
func Handler(root string) (http.Handler, error) {
	app, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	defer app.Close()
	cfg := DefaultConfig()
	data, err := app.ReadFile(ConfigFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("static: read %s: %w", ConfigFile, err)
	default:
		cfg = Config{}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("static: read %s: %w", ConfigFile, err)
		}
	}
	if err := cfg.compile(); err != nil {
		return nil, fmt.Errorf("static: %s: %w", ConfigFile, err)
	}
	docs, err := app.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static: root %s: %w", cfg.Root, err)
	}
	docs.Close()
	return &handler{root: root, cfg: cfg}, nil
}

type handler struct {
	root string // the image
	cfg  Config
	// etags holds the entity tags of the files served, computed on
	// first use: name -> string.
	etags sync.Map
	// missing, when set, answers the requests that find no file, in
	// place of the 404 page.
	missing http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if !Hidden(name) {
		f, info, err := Open(docs, name)
		if err != nil && !notThere(err) {
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
			if f, info, _ := Open(docs, name+".html"); f != nil {
				if !info.IsDir() {
					h.serve(w, r, clean, name+".html", f, info)
					return
				}
				f.Close()
			}
		}
		if isDir {
			index := path.Join(name, "index.html")
			if f, info, _ := Open(docs, index); f != nil {
				if info.IsDir() {
					f.Close()
				} else if !dirLike {
					f.Close()
					localRedirect(w, r, path.Base(clean)+"/")
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
		if f, info, _ := Open(docs, route.File); f != nil {
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
func (h *handler) open() (*os.Root, error) {
	app, err := os.OpenRoot(h.root)
	if err != nil || h.cfg.Root == "." {
		return app, err
	}
	defer app.Close()
	return app.OpenRoot(h.cfg.Root)
}

// serve sends an open file with the custom headers of the request path.
// ServeContent answers conditional and range requests.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, urlPath, name string, f *os.File, info os.FileInfo) {
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
	if ctype := contentType(info.Name()); ctype != "" {
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
	if serveEncoded(w, r, tag, f, info) {
		return
	}
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

// etag is the entity tag of the file name, open as f: a digest of its
// content computed on first use and kept, since the image does not
// change. The build's tags in static.json are not taken on trust: an
// app's owner could write any, and compressed files are cached by tag
// across every site a process serves.
func (h *handler) etag(name string, f *os.File) (string, error) {
	if tag, ok := h.etags.Load(name); ok {
		return tag.(string), nil
	}
	tag, err := contentETag(f)
	if err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h.etags.Store(name, tag)
	return tag, nil
}

// contentETag is the entity tag of a file's content.
func contentETag(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`, nil
}

// notFound answers 404 with the site's error page, if it has one.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request, docs *os.Root) {
	if h.missing != nil {
		h.missing.ServeHTTP(w, r)
		return
	}
	if h.cfg.ErrorPage != "" {
		if f, info, _ := Open(docs, h.cfg.ErrorPage); f != nil {
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

// Open opens name in the site's directory docs and stats it, as the
// handlers do before serving it: os.Root refuses any path or symlink that
// leads outside docs, and anything but a directory or a regular file is
// not there.
func Open(docs *os.Root, name string) (*os.File, os.FileInfo, error) {
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

// notThere reports whether an open failed because there is no such file
// to serve (or none the site may serve), rather than for a fault of the
// server.
func notThere(err error) bool {
	return !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
		!errors.Is(err, syscall.ENOMEM)
}

// localRedirect redirects to a path relative to the request's, keeping
// the query, as http.FileServer does.
func localRedirect(w http.ResponseWriter, r *http.Request, to string) {
	if q := r.URL.RawQuery; q != "" {
		to += "?" + q
	}
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusMovedPermanently)
}
