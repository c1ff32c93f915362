package buildpack

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestStaticDetect(t *testing.T) {
	for _, tt := range []struct {
		files map[string]string
		want  bool
	}{
		{map[string]string{"index.html": "<h1>hi</h1>"}, true},
		{map[string]string{"static.json": "{}", "public/index.html": "hi"}, true},
		{map[string]string{"public/index.html": "hi"}, false},
		{map[string]string{"package.json": "{}"}, false},
		{map[string]string{"index.html/x": "a directory named index.html"}, false},
	} {
		dir := t.TempDir()
		writeTree(t, dir, tt.files)
		if ok, err := Static().Detect(dir); ok != tt.want || err != nil {
			t.Errorf("Detect(%v) = %v, %v, want %v", tt.files, ok, err, tt.want)
		}
	}
	if Static().Name() != "static" {
		t.Fatalf("Name = %q", Static().Name())
	}
}

// compileStatic builds a static site from files and returns its tree.
func compileStatic(t *testing.T, files map[string]string) (string, string, error) {
	t.Helper()
	b, out := newBuild(t, t.TempDir(), nil, files)
	b.Sandbox = failSandbox{t}
	res, err := Static().Compile(context.Background(), b)
	if err == nil && (len(res.Processes) != 1 || res.Processes["web"] != skiff.StaticCommand) {
		t.Fatalf("processes = %v, want web: %s", res.Processes, skiff.StaticCommand)
	}
	return b.Dir, out.String(), err
}

func readStaticConfig(t *testing.T, dir string) staticConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".skiff", "static.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg staticConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestStaticCompile(t *testing.T) {
	t.Run("no static.json", func(t *testing.T) {
		dir, out, err := compileStatic(t, map[string]string{"index.html": "<h1>hi</h1>", "css/site.css": "h1{}"})
		if err != nil {
			t.Fatal(err)
		}
		cfg := readStaticConfig(t, dir)
		if cfg.Version != 1 || cfg.Root != "." || cfg.CleanURLs || len(cfg.Routes) != 0 {
			t.Fatalf("config = %+v", cfg)
		}
		for _, want := range []string{"-----> Static site detected\n", "       Serving the app's root (2 files, 15 B)\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		h, err := StaticHandler(dir)
		if err != nil {
			t.Fatal(err)
		}
		if rec := serveStatic(h, "GET", "/css/site.css", nil); rec.Code != 200 || rec.Body.String() != "h1{}" {
			t.Fatalf("/css/site.css: %d %q", rec.Code, rec.Body)
		}
		if rec := serveStatic(h, "GET", "/.skiff/static.json", nil); rec.Code != 404 {
			t.Fatalf("the build's config is served: %d %q", rec.Code, rec.Body)
		}
	})

	t.Run("full static.json", func(t *testing.T) {
		dir, out, err := compileStatic(t, map[string]string{
			"static.json": `{
  "root": "public/",
  "clean_urls": true,
  "routes": {"/app/**": "/app.html", "/**": "index.html"},
  "headers": {"/assets/**": {"cache-control": "public, max-age=31536000"}, "/**": {"X-Frame-Options": "DENY"}},
  "error_page": "404.html",
  "redirects": {"/old": {"url": "/new"}, "/temp": {"url": "https://example.com/", "status": 302}},
  "https_only": true
}`,
			"public/index.html": "home", "public/app.html": "app", "public/404.html": "missing",
		})
		if strings.Contains(out, "has no index.html") {
			t.Errorf("warns of a missing index.html:\n%s", out)
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		cfg := readStaticConfig(t, dir)
		if cfg.Root != "public" || !cfg.CleanURLs || cfg.ErrorPage != "404.html" {
			t.Fatalf("config = %+v", cfg)
		}
		// Lists keep the order of the file: routes are tried in it.
		if len(cfg.Routes) != 2 || cfg.Routes[0] != (staticRoute{Path: "/app/**", File: "app.html"}) || cfg.Routes[1].Path != "/**" {
			t.Fatalf("routes = %+v", cfg.Routes)
		}
		if len(cfg.Headers) != 2 || cfg.Headers[0].Path != "/assets/**" || cfg.Headers[1].Headers["X-Frame-Options"] != "DENY" {
			t.Fatalf("headers = %+v", cfg.Headers)
		}
		if len(cfg.Redirects) != 2 || cfg.Redirects[0].Status != 301 || cfg.Redirects[1].Status != 302 {
			t.Fatalf("redirects = %+v", cfg.Redirects)
		}
		for _, want := range []string{
			` !     static.json: ignoring unknown field "https_only"`,
			"       Using static.json\n",
			"       Serving public/ (3 files, 14 B)\n",
			"       With clean URLs, 2 routes, 2 header rules, 2 redirects, error page 404.html\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "secret"})
	for _, tt := range []struct {
		name    string
		json    string
		files   map[string]string
		links   map[string]string // name -> target
		message string
	}{
		{name: "invalid JSON", json: "{\n  \"root\": \"public\",\n}", message: "static.json: not valid JSON: line 3, column 1"},
		{name: "not an object", json: `["public"]`, message: "static.json: not valid JSON"},
		{name: "root not a string", json: `{"root": 3}`, message: `static.json: "root" must be a directory name`},
		{name: "root missing", json: `{"root": "dist"}`, message: `static.json: root "dist" is not a directory in the app`},
		{name: "root a file", json: `{"root": "index.html"}`, message: `root "index.html" is not a directory`},
		{name: "root outside", json: `{"root": "../.."}`, message: `static.json: "root" must be a directory inside the app`},
		{name: "root absolute", json: `{"root": "/etc"}`, message: `static.json: "root" must be a directory inside the app`},
		{name: "root empty", json: `{"root": "dist"}`, files: map[string]string{"dist/sub/.keep": ""}, message: `static.json: root "dist" contains no files`},
		{name: "root links out", json: `{"root": "dist"}`, links: map[string]string{"dist": outside}, message: `static.json: root "dist" leads outside the app`},
		{name: "clean_urls not a bool", json: `{"clean_urls": "yes"}`, message: `static.json: "clean_urls" must be true or false`},
		{name: "routes not an object", json: `{"routes": ["index.html"]}`, message: `static.json: "routes" must be an object`},
		{name: "route not a string", json: `{"routes": {"/**": 1}}`, message: `static.json: routes["/**"] must be a file name`},
		{name: "route pattern", json: `{"routes": {"**": "index.html"}}`, message: `static.json: routes: pattern "**" must start with /`},
		{name: "route file missing", json: `{"routes": {"/**": "app.html"}}`, message: `static.json: routes["/**"] names "app.html", which is not a file in ./`},
		{name: "route file outside", json: `{"routes": {"/**": "../x.html"}}`, message: `static.json: routes["/**"] must name a file inside root`},
		{name: "headers not an object", json: `{"headers": {"/**": "x"}}`, message: `static.json: headers["/**"] must be an object`},
		{name: "header name", json: `{"headers": {"/**": {"Bad Name": "x"}}}`, message: `static.json: headers["/**"]: "Bad Name" is not a valid header name`},
		{name: "header value", json: `{"headers": {"/**": {"X-A": "a\r\nSet-Cookie: x"}}}`, message: `a header value cannot contain line breaks`},
		{name: "header owned by the server", json: `{"headers": {"/**": {"content-length": "1"}}}`, message: `content-length is set by the server`},
		{name: "error_page missing", json: `{"error_page": "404.html"}`, message: `static.json: error_page "404.html" is not a file`},
		{name: "error_page not a string", json: `{"error_page": true}`, message: `static.json: "error_page" must be a file name`},
		{name: "redirect not an object", json: `{"redirects": {"/a": "/b"}}`, message: `static.json: redirects["/a"] must be an object`},
		{name: "redirect without url", json: `{"redirects": {"/a": {"status": 301}}}`, message: `static.json: redirects["/a"] needs a "url"`},
		{name: "redirect status", json: `{"redirects": {"/a": {"url": "/b", "status": 200}}}`, message: `static.json: redirects["/a"]: status 200 is not a redirect status`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"static.json": tt.json, "index.html": "home"}
			for k, v := range tt.files {
				files[k] = v
			}
			b, out := newBuild(t, t.TempDir(), nil, files)
			for name, target := range tt.links {
				if err := os.Symlink(target, filepath.Join(b.Dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Static().Compile(context.Background(), b)
			wantFailed(t, err, tt.message)
			if _, err := os.Stat(filepath.Join(b.Dir, ".skiff")); err == nil {
				t.Errorf("a failed build wrote .skiff/\n%s", out)
			}
		})
	}

	t.Run("no index.html", func(t *testing.T) {
		_, out, err := compileStatic(t, map[string]string{"static.json": `{"root": "site"}`, "site/page.html": "page"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, " !     site/ has no index.html: the site's home page will answer 404\n") {
			t.Errorf("no warning of the missing index.html:\n%s", out)
		}
	})

	t.Run(".skiff links out of the tree", func(t *testing.T) {
		b, _ := newBuild(t, t.TempDir(), nil, map[string]string{"index.html": "home"})
		target := t.TempDir()
		if err := os.Symlink(target, filepath.Join(b.Dir, ".skiff")); err != nil {
			t.Fatal(err)
		}
		if _, err := Static().Compile(context.Background(), b); err == nil {
			t.Fatal("compiled, writing through a link out of the tree")
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Fatalf("wrote %v outside the tree", entries)
		}
	})
}

// staticSite builds a site with every feature and returns its handler,
// the tree, and a directory outside it.
func staticSite(t *testing.T) (http.Handler, string) {
	t.Helper()
	dir, out, err := compileStatic(t, map[string]string{
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
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
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
	h, err := StaticHandler(dir)
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

func TestStaticHandler(t *testing.T) {
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

// TestStaticHandlerPaths sends paths no client library would, to the
// handler directly.
func TestStaticHandlerPaths(t *testing.T) {
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

func TestStaticHandlerETag(t *testing.T) {
	h, dir := staticSite(t)
	rec := serveStatic(h, "GET", "/about", nil)
	tag := rec.Header().Get("Etag")
	content, err := os.ReadFile(filepath.Join(dir, "public", "about.html"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := staticETag(bytes.NewReader(content))
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

// TestStaticHandlerDefaults serves a tree that no static build prepared.
func TestStaticHandlerDefaults(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "home", "page.html": "page", "sub/a.txt": "a", ".env": "SECRET=1"})
	h, err := StaticHandler(dir)
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

func TestStaticHandlerRefuses(t *testing.T) {
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
			if _, err := StaticHandler(dir); err == nil {
				t.Fatal("StaticHandler accepted it")
			}
		})
	}
	if _, err := StaticHandler(filepath.Join(outside, "missing")); err == nil {
		t.Fatal("StaticHandler accepted a missing directory")
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
		re, err := staticGlob(tt.pattern)
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
