package static

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// writeTree writes files (slash-separated name -> content) into dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	tree := fstest.MapFS{}
	for name, content := range files {
		tree[name] = &fstest.MapFile{Data: []byte(content), Mode: 0o644}
	}
	if err := os.CopyFS(dir, tree); err != nil {
		t.Fatal(err)
	}
}

// buildSite writes files into a new tree and leaves in it what the
// static buildpack would: static.json's canonical form at ConfigFile.
func buildSite(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	data, err := os.ReadFile(filepath.Join(dir, "static.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return dir
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{ConfigFile: string(canonical)})
	return dir
}

// staticSite builds a site with every feature and returns its handler
// and the tree.
func staticSite(t *testing.T) (http.Handler, string) {
	t.Helper()
	dir := buildSite(t, map[string]string{
		"static.json": `{
  "root": "public",
  "clean_urls": true,
  "routes": {"/app/**": "app.html"},
  "headers": {
    "/assets/**": {"Cache-Control": "public, max-age=31536000, immutable"},
    "/**": {"X-Frame-Options": "DENY", "x-custom": "one"},
    "/about": {"X-Custom": "two"}
  },
  "error_page": "404.html",
  "redirects": {
    "/old": {"url": "/new"},
    "/temp": {"url": "https://example.com/", "status": 307},
    "/blog/*": {"url": "/news", "status": 302}
  }
}`,
		"secret.txt":                         "app secret",
		"public/index.html":                  "<h1>home</h1>",
		"public/about.html":                  "<h1>about</h1>",
		"public/app.html":                    "<h1>app</h1>",
		"public/app/real.js":                 "console.log(1)",
		"public/404.html":                    "<h1>not here</h1>",
		"public/docs/index.html":             "<h1>docs</h1>",
		"public/empty/file.txt/x.txt":        "deep",
		"public/assets/site.css":             "body{}",
		"public/assets/logo.svg":             "<svg></svg>",
		"public/data":                        "no extension",
		"public/.env":                        "SECRET=1",
		"public/.git/config":                 "[core]",
		"public/.well-known/security.txt":    "Contact: a@example.com",
		"public/dir-with-no-index/page.html": "page",
	})
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "outside secret"})
	for name, target := range map[string]string{
		"public/link-abs.txt":  filepath.Join(outside, "secret.txt"),
		"public/link-rel.txt":  "../secret.txt",
		"public/link-dir":      outside,
		"public/alias.html":    "about.html",
		"public/assets/up.css": "../../secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	h, err := Handler(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h, dir
}

func serveStatic(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://app.example"+target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandler(t *testing.T) {
	h, _ := staticSite(t)
	for _, tt := range []struct {
		name, method, path string
		status             int
		body               string            // exact, when set
		header             map[string]string // each must match exactly ("" = absent)
	}{
		{name: "index", path: "/", status: 200, body: "<h1>home</h1>",
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY", "X-Custom": "one"}},
		{name: "index.html itself", path: "/index.html", status: 200, body: "<h1>home</h1>"},
		{name: "file", path: "/about.html", status: 200, body: "<h1>about</h1>"},
		{name: "clean URL", path: "/about", status: 200, body: "<h1>about</h1>", header: map[string]string{"X-Custom": "two"}},
		{name: "clean URL with a slash is not the file", path: "/about/", status: 404, body: "<h1>not here</h1>"},
		{name: "directory redirects to its slash", path: "/docs", status: 301, header: map[string]string{"Location": "docs/"}},
		{name: "directory redirect keeps the query", path: "/docs?page=2", status: 301, header: map[string]string{"Location": "docs/?page=2"}},
		{name: "directory index", path: "/docs/", status: 200, body: "<h1>docs</h1>"},
		{name: "no directory listing", path: "/dir-with-no-index/", status: 404, body: "<h1>not here</h1>"},
		{name: "no directory listing without slash", path: "/dir-with-no-index", status: 404},
		{name: "route", path: "/app/users/42", status: 200, body: "<h1>app</h1>",
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY"}},
		{name: "route root", path: "/app/", status: 200, body: "<h1>app</h1>"},
		{name: "a real file beats the route", path: "/app/real.js", status: 200, body: "console.log(1)",
			header: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
		{name: "error page", path: "/nope", status: 404, body: "<h1>not here</h1>",
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "", "Etag": ""}},
		{name: "error page on HEAD", method: "HEAD", path: "/nope", status: 404, body: ""},
		{name: "css type and header", path: "/assets/site.css", status: 200, body: "body{}",
			header: map[string]string{"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=31536000, immutable"}},
		{name: "svg type", path: "/assets/logo.svg", status: 200, header: map[string]string{"Content-Type": "image/svg+xml"}},
		{name: "sniffed type", path: "/data", status: 200, header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "no custom header on a missing asset", path: "/assets/gone.css", status: 404, header: map[string]string{"Cache-Control": ""}},
		{name: "redirect", path: "/old", status: 301, header: map[string]string{"Location": "/new"}},
		{name: "redirect with a slash", path: "/old/", status: 301, header: map[string]string{"Location": "/new"}},
		{name: "redirect status", path: "/temp", status: 307, header: map[string]string{"Location": "https://example.com/"}},
		{name: "redirect pattern", path: "/blog/hello", status: 302, header: map[string]string{"Location": "/news"}},
		{name: "redirect pattern stays in its segment", path: "/blog/a/b", status: 404},
		{name: "dotfile", path: "/.env", status: 404, body: "<h1>not here</h1>"},
		{name: "dot directory", path: "/.git/config", status: 404},
		{name: "the build's config", path: "/../.skiff/static.json", status: 404},
		{name: ".well-known", path: "/.well-known/security.txt", status: 200, body: "Contact: a@example.com"},
		{name: "outside root", path: "/../secret.txt", status: 404},
		{name: "symlink out, absolute", path: "/link-abs.txt", status: 404, body: "<h1>not here</h1>"},
		{name: "symlink out of root, relative", path: "/link-rel.txt", status: 404},
		{name: "symlink to a directory outside", path: "/link-dir/secret.txt", status: 404},
		{name: "symlink out from a subdirectory", path: "/assets/up.css", status: 404},
		{name: "symlink inside", path: "/alias.html", status: 200, body: "<h1>about</h1>"},
		{name: "HEAD", method: "HEAD", path: "/about.html", status: 200, body: "", header: map[string]string{"Content-Length": "14"}},
		{name: "POST", method: "POST", path: "/about.html", status: 405, header: map[string]string{"Allow": "GET, HEAD"}},
		{name: "range", path: "/about.html", status: 206, body: "<h1>", header: map[string]string{"Content-Range": "bytes 0-3/14"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var hdr map[string]string
			if tt.name == "range" {
				hdr = map[string]string{"Range": "bytes=0-3"}
			}
			rec := serveStatic(h, method, tt.path, hdr)
			if rec.Code != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body %q", method, tt.path, rec.Code, tt.status, rec.Body)
			}
			if (tt.body != "" || method == "HEAD") && rec.Body.String() != tt.body {
				t.Errorf("body %q, want %q", rec.Body, tt.body)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Errorf("leaked %q", rec.Body)
			}
			for k, want := range tt.header {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestHandlerPaths sends paths no client library would, to the
// handler directly.
func TestHandlerPaths(t *testing.T) {
	h, _ := staticSite(t)
	for _, p := range []string{"/../../secret.txt", "../secret.txt", "/public/../../secret.txt", "/..", "/a/../../secret.txt",
		"/link-dir/../../secret.txt", "/\x00", "/%2e%2e/secret.txt"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "secret") || rec.Code == 200 && rec.Body.String() != "<h1>home</h1>" {
			t.Errorf("%q: %d %q", p, rec.Code, rec.Body)
		}
	}
}

func TestHandlerETag(t *testing.T) {
	h, dir := staticSite(t)
	rec := serveStatic(h, "GET", "/about", nil)
	tag := rec.Header().Get("Etag")
	content, err := os.ReadFile(filepath.Join(dir, "public", "about.html"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := contentETag(bytes.NewReader(content))
	if tag == "" || tag != want {
		t.Fatalf("ETag %q, want the digest of the content %q", tag, want)
	}
	if rec := serveStatic(h, "GET", "/about.html", map[string]string{"If-None-Match": tag}); rec.Code != 304 || rec.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d %q, want 304", rec.Code, rec.Body)
	}
	if rec := serveStatic(h, "GET", "/index.html", map[string]string{"If-None-Match": tag}); rec.Code != 200 {
		t.Fatalf("another file's tag: %d, want 200", rec.Code)
	}
	// Every file of the image has the same modification time; the tag
	// follows the content.
	if a, b := serveStatic(h, "GET", "/app.html", nil).Header().Get("Etag"), serveStatic(h, "GET", "/index.html", nil).Header().Get("Etag"); a == b {
		t.Fatalf("two files of different content share the ETag %s", a)
	}
}

// TestHandlerDefaults serves a tree that no static build prepared.
func TestHandlerDefaults(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "home", "page.html": "page", "sub/a.txt": "a", ".env": "SECRET=1"})
	h, err := Handler(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec := serveStatic(h, "GET", "/", nil); rec.Code != 200 || rec.Body.String() != "home" {
		t.Fatalf("/: %d %q", rec.Code, rec.Body)
	}
	if rec := serveStatic(h, "GET", "/page", nil); rec.Code != 404 {
		t.Fatalf("/page without clean_urls: %d", rec.Code)
	}
	if rec := serveStatic(h, "GET", "/sub/", nil); rec.Code != 404 || strings.Contains(rec.Body.String(), "a.txt") {
		t.Fatalf("/sub/: %d %q", rec.Code, rec.Body)
	}
	if rec := serveStatic(h, "GET", "/.env", nil); rec.Code != 404 {
		t.Fatalf("/.env: %d %q", rec.Code, rec.Body)
	}
	rec := serveStatic(h, "GET", "/page.html", nil)
	tag := rec.Header().Get("Etag")
	if rec.Code != 200 || rec.Body.String() != "page" || tag == "" {
		t.Fatalf("/page.html: %d %q, ETag %q", rec.Code, rec.Body, tag)
	}
	if rec := serveStatic(h, "GET", "/page.html", map[string]string{"If-None-Match": tag}); rec.Code != 304 {
		t.Fatalf("If-None-Match: %d", rec.Code)
	}
}

func TestHandlerRefuses(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"index.html": "outside"})
	for _, tt := range []struct {
		name   string
		config string
		link   bool
	}{
		{name: "newer format", config: `{"version": 2, "root": "."}`},
		{name: "root outside", config: `{"version": 1, "root": "../x"}`},
		{name: "root links out", config: `{"version": 1, "root": "public"}`, link: true},
		{name: "bad pattern", config: `{"version": 1, "root": ".", "routes": [{"path": "x", "file": "index.html"}]}`},
		{name: "not JSON", config: `{`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{".skiff/static.json": tt.config, "index.html": "home"})
			if tt.link {
				if err := os.Symlink(outside, filepath.Join(dir, "public")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Handler(dir); err == nil {
				t.Fatal("Handler accepted it")
			}
		})
	}
	if _, err := Handler(filepath.Join(outside, "missing")); err == nil {
		t.Fatal("Handler accepted a missing directory")
	}
}

func TestStaticGlob(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"/**", []string{"/", "/a", "/a/b/c.html"}, nil},
		{"/assets/**", []string{"/assets/", "/assets/a/b.css"}, []string{"/assets", "/x/assets/a"}},
		{"/*.html", []string{"/a.html", "/.html"}, []string{"/a/b.html", "/a.htm"}},
		{"/blog/*", []string{"/blog/x", "/blog/"}, []string{"/blog/x/y", "/blog"}},
		{"/a?c", []string{"/abc"}, []string{"/a/c", "/ac"}},
		{"/exact.(html)", []string{"/exact.(html)"}, []string{"/exact.html"}},
		{"/**/*.js", []string{"/a/b.js", "/a/b/c.js"}, []string{"/b.js"}},
	} {
		re, err := glob(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tt.match {
			if !re.MatchString(p) {
				t.Errorf("%s does not match %s", tt.pattern, p)
			}
		}
		for _, p := range tt.nomatch {
			if re.MatchString(p) {
				t.Errorf("%s matches %s", tt.pattern, p)
			}
		}
	}
}
