package router

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/static"
)

// What the router serves of an app by itself comes from the image of the
// app's current release, unpacked in the node's image cache: the files
// of app.json's static prefixes, the whole site of an app built by the
// static buildpack, and the app's custom error and maintenance pages.
// It is loaded in the background when the current release or the pages
// change; until then the previous release's stays in place (or, at
// first, every request goes to the app, which can answer it too).
//
// Files are served only while the app has a web process up, so that an
// app scaled to zero is off, as users expect.

// appStatic is an app's static files and pages, for one release.
type appStatic struct {
	key    staticKey
	site   http.Handler  // the whole site (static buildpack), or nil
	mounts []staticMount // longest prefix first
	// errorPage and maintenancePage replace the router's own pages.
	errorPage, maintenancePage *page
}

// staticKey is what an appStatic was loaded from.
type staticKey struct {
	release                    int
	errorPage, maintenancePage string
}

func keyOf(a skiff.App) staticKey {
	return staticKey{release: a.Current, errorPage: a.Router.ErrorPage, maintenancePage: a.Router.MaintenancePage}
}

type staticMount struct {
	prefix string
	h      http.Handler
}

// page is a custom error page.
type page struct {
	body  string
	ctype string
}

// maxPage bounds the size of an error page, which is kept in memory.
const maxPage = 512 << 10

// serves reports whether the router serves anything of the app itself.
func (s *appStatic) serves() bool { return s != nil && (s.site != nil || len(s.mounts) > 0) }

// handler returns the handler of urlPath, and the path relative to its
// prefix; nil if the app serves it.
func (s *appStatic) handler(method, urlPath string) (http.Handler, string) {
	if s.site != nil {
		return s.site, urlPath
	}
	if method != http.MethodGet && method != http.MethodHead {
		return nil, ""
	}
	for _, m := range s.mounts {
		if m.prefix == "/" {
			return m.h, urlPath
		}
		if rest, ok := strings.CutPrefix(urlPath, m.prefix); ok && (rest == "" || rest[0] == '/') {
			if rest == "" {
				rest = "/"
			}
			return m.h, rest
		}
	}
	return nil, ""
}

// passed is the handler of requests a static prefix has no file for: it
// marks them to go on to the app.
var passed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	if p, ok := w.(*passWriter); ok {
		p.passed = true
	}
})

// serveFrom answers req from h, a handler of s, with the path relative to
// its prefix; it reports false, having written nothing, when h has no
// file for it and the app is to answer. Both sides of the router, HTTP/1.1
// and HTTP/2, serve static files through it.
func serveFrom(w http.ResponseWriter, req *http.Request, h http.Handler, rel string) bool {
	if rel != req.URL.Path {
		u := *req.URL
		u.Path, u.RawPath = rel, ""
		req = req.WithContext(req.Context()) // a shallow copy
		req.URL = &u
	}
	pw := &passWriter{ResponseWriter: w}
	h.ServeHTTP(pw, req)
	return !pw.passed || pw.wrote
}

// passWriter notes whether a static handler answered or passed.
type passWriter struct {
	http.ResponseWriter
	passed, wrote bool
}

func (w *passWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *passWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *passWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wantStatic notes what e's static files should be loaded from, and
// starts loading them if that changed.
func (r *Router) wantStatic(ctx context.Context, e *appEntry, a skiff.App) {
	if r.cfg.Images == nil {
		return
	}
	k := keyOf(a)
	if w := e.wantStatic.Load(); w != nil && *w == k {
		return
	}
	e.wantStatic.Store(&k)
	if !e.loading.CompareAndSwap(false, true) {
		return // the loader under way sees the new want when it is done
	}
	go r.loadStatic(ctx, e)
}

// loadStatic loads what e wants until it has it.
func (r *Router) loadStatic(ctx context.Context, e *appEntry) {
	for {
		want := e.wantStatic.Load()
		if cur := e.static.Load(); cur == nil || cur.key != *want {
			s := r.buildStatic(ctx, e.name, *want)
			if s == nil {
				e.loading.Store(false)
				return // the router stops
			}
			e.static.Store(s)
		}
		e.loading.Store(false)
		// A want stored while the flag was still up found a loader under
		// way: take its work over if nobody else did.
		if w := e.wantStatic.Load(); *w == *want || !e.loading.CompareAndSwap(false, true) {
			return
		}
	}
}

// buildStatic loads app's static files and pages of k, retrying for a
// while when the bus or the image store fails; it gives an empty one
// (the app answers everything) when they cannot be had, and nil when ctx
// ends.
func (r *Router) buildStatic(ctx context.Context, app string, k staticKey) *appStatic {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		s, err := r.tryStatic(ctx, app, k)
		if err == nil {
			return s
		}
		if ctx.Err() != nil {
			return nil
		}
		if attempt == 5 {
			r.log.Warn("static files and pages not served by the router", "app", app, "release", k.release, "err", err)
			return &appStatic{key: k}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (r *Router) tryStatic(ctx context.Context, app string, k staticKey) (*appStatic, error) {
	s := &appStatic{key: k}
	if k.release == 0 {
		return s, nil
	}
	rel, _, err := r.st.Release(ctx, app, k.release)
	if err != nil {
		return nil, err
	}
	site := rel.Processes["web"] == skiff.StaticCommand
	if !site && len(rel.Static) == 0 && k.errorPage == "" && k.maintenancePage == "" {
		return s, nil
	}
	if _, err := r.cfg.Images.Fetch(ctx, rel.Image.Digest, func(ctx context.Context) (io.ReadCloser, error) {
		return r.st.Slugs.Get(ctx, rel.Image.Object)
	}); err != nil {
		return nil, err
	}
	root, err := r.cfg.Images.Unpacked(ctx, rel.Image.Digest)
	if err != nil {
		return nil, err
	}
	if site {
		if s.site, err = static.Handler(root); err != nil {
			return nil, err
		}
	}
	for _, m := range rel.Static {
		h, err := static.Dir(root, m.Dir, cmp.Or(m.CacheControl, skiff.DefaultStaticCacheControl), passed)
		if err != nil {
			r.log.Warn("static prefix not served by the router", "app", app, "path", m.Path, "err", err)
			continue
		}
		s.mounts = append(s.mounts, staticMount{prefix: m.Path, h: h})
	}
	s.errorPage = r.readPage(root, app, k.errorPage)
	s.maintenancePage = r.readPage(root, app, k.maintenancePage)
	return s, nil
}

// readPage reads a page file of the image at root; nil (the router's own
// page) when there is none, or it cannot be read.
func (r *Router) readPage(root, app, name string) *page {
	if name == "" {
		return nil
	}
	p, err := loadPage(root, name)
	if err != nil {
		r.log.Warn("custom page not used", "app", app, "page", name, "err", err)
		return nil
	}
	return p
}

func loadPage(root, name string) (*page, error) {
	img, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	f, err := img.Open(path.Clean(strings.TrimPrefix(name, "/")))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || info.Size() > maxPage {
		return nil, fmt.Errorf("not a file of at most %d KiB", maxPage>>10)
	}
	body, err := io.ReadAll(io.LimitReader(f, maxPage))
	if err != nil {
		return nil, err
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "text/html; charset=utf-8"
	}
	return &page{body: string(body), ctype: ctype}, nil
}

// pageFor is the app's page in place of the router's own of status: the
// maintenance page in maintenance mode, the error page for a 502 or 503.
func (s *appStatic) pageFor(maintenance bool) *page {
	if s == nil {
		return nil
	}
	if maintenance {
		return s.maintenancePage
	}
	return s.errorPage
}

// servePage answers an HTTP/2 request with a page of the router's: the
// app's own when it has one.
func servePage(w http.ResponseWriter, p *page, status int, text string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if p == nil {
		http.Error(w, text, status)
		return
	}
	w.Header().Set("Content-Type", p.ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, p.body)
}
