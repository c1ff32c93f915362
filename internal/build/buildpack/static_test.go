package buildpack

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/static"
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

func readStaticConfig(t *testing.T, dir string) static.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".skiff", "static.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg static.Config
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
		// The web process serves what the build left.
		h, err := static.Handler(dir)
		if err != nil {
			t.Fatal(err)
		}
		for target, want := range map[string]int{"/css/site.css": 200, "/.skiff/static.json": 404} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
			if rec.Code != want || want == 200 && rec.Body.String() != "h1{}" {
				t.Errorf("%s: %d %q, want %d", target, rec.Code, rec.Body, want)
			}
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
		if len(cfg.Routes) != 2 || cfg.Routes[0] != (static.Route{Path: "/app/**", File: "app.html"}) || cfg.Routes[1].Path != "/**" {
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
