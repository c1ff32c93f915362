package router

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// startStatic starts a router with an image cache.
func startStatic(t *testing.T) *env {
	images, err := image.NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := startWith(t, func(c *Config) { c.Images = images })
	return e
}

// release packs files (name -> content) into an image, stores it and
// makes it release version of app.
func (e *env) release(app string, version int, files map[string]string, rel skiff.Release) {
	t := e.t
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, content := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "image.squashfs")
	ctx := context.Background()
	if err := image.Pack(ctx, tree, img); err != nil {
		t.Fatal(err)
	}
	digest, size, err := image.Digest(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rel.Image = skiff.Image{Digest: digest, Size: size, Object: app + "/" + strings.TrimPrefix(digest, "sha256:")}
	if _, err := e.st.Slugs.Put(ctx, jetstream.ObjectMeta{Name: rel.Image.Object}, f); err != nil {
		t.Fatal(err)
	}
	rel.App = app
	if rel.Processes == nil {
		rel.Processes = map[string]string{"web": "./server"}
	}
	got, err := e.st.CreateRelease(ctx, rel)
	if err != nil || got.Version != version {
		t.Fatalf("release %d: %v (got v%d)", version, err, got.Version)
	}
}

func (e *env) do(req *http.Request) (*http.Response, string) {
	e.t.Helper()
	resp, err := http.DefaultTransport.(*http.Transport).RoundTrip(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

func (e *env) request(method, host, path string, hdr ...string) *http.Request {
	req, _ := http.NewRequest(method, "http://"+e.r.Addr()+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

var appJS = strings.Repeat("console.log('skiff');\n", 64)

func TestStaticPrefixServedFromTheImage(t *testing.T) {
	e := startStatic(t)
	e.release("shop", 1, map[string]string{
		"public/assets/app.js":    appJS,
		"public/assets/.env":      "SECRET=1",
		"public/assets/sub/a.txt": "a",
		"public/503.html":         "<h1>shop is resting</h1>",
		"public/down.html":        "<h1>shop is being fixed</h1>",
		"secret.txt":              "not served",
	}, skiff.Release{Static: []skiff.StaticMount{{Path: "/assets", Dir: "public/assets", CacheControl: "public, max-age=60"}}})
	e.st.Apps.Put(context.Background(), "shop", skiff.App{Name: "shop", Current: 1,
		Router: skiff.RouterSettings{ErrorPage: "public/503.html", MaintenancePage: "/public/down.html"}})
	e.instance("shop", "a", 1, skiff.StateUp, upstream(t, "app"))

	const host = "shop.apps.test"
	eventually(t, func() bool { _, body := e.get(host, "/assets/app.js"); return body == appJS })
	resp, _ := e.do(e.request("GET", host, "/assets/app.js"))
	tag := resp.Header.Get("Etag")
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60" || tag == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("headers %v", resp.Header)
	}
	if resp, _ := e.do(e.request("GET", host, "/assets/app.js", "If-None-Match", tag)); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, body := e.do(e.request("HEAD", host, "/assets/app.js")); resp.StatusCode != 200 || body != "" ||
		resp.ContentLength != int64(len(appJS)) {
		t.Errorf("HEAD: %d %d %q", resp.StatusCode, resp.ContentLength, body)
	}
	if resp, body := e.do(e.request("GET", host, "/assets/app.js", "Range", "bytes=0-6")); resp.StatusCode != 206 || body != "console" {
		t.Errorf("Range: %d %q", resp.StatusCode, body)
	}
	if _, body := e.get(host, "/assets/sub/a.txt"); body != "a" {
		t.Errorf("sub directory: %q", body)
	}
	// What has no file goes to the app (a directory without index.html
	// too), as does what is not GET or HEAD and what is outside the
	// prefix.
	for _, c := range []struct{ method, path string }{
		{"GET", "/assets/missing.js"}, {"GET", "/assets/.env"}, {"POST", "/assets/app.js"}, {"GET", "/assetsx/app.js"},
		{"GET", "/secret.txt"}, {"GET", "/assets/../secret.txt"}, {"GET", "/assets/sub"},
	} {
		resp, body := e.do(e.request(c.method, host, c.path))
		if !strings.HasPrefix(body, "app ") {
			t.Errorf("%s %s: %d %q, want the app's answer", c.method, c.path, resp.StatusCode, body)
		}
	}

	// An HTTP/1.0 client gets the file and a closed connection.
	c, err := net.Dial("tcp", e.r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /assets/sub/a.txt HTTP/1.0\r\nHost: shop.apps.test\r\n\r\n")
	raw, _ := io.ReadAll(bufio.NewReader(c))
	if !strings.HasPrefix(string(raw), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(raw), "\r\n\r\na") {
		t.Errorf("HTTP/1.0: %q", raw)
	}

	// Over HTTP/2 the same.
	ca := testkit.NewCA(t)
	e.cert(t, ca, "shop", "shop.example.com", "shop.example.com")
	h2 := e.h2Client(ca)
	eventually(t, func() bool {
		resp, err := h2.Get("https://shop.example.com/assets/sub/a.txt")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return string(mustRead(resp.Body)) == "a"
	})
	if resp, body := h2Get(t, h2, "https://shop.example.com/assets/app.js"); body != appJS || resp.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Errorf("h2 static file: %v %q", resp.Header, body)
	}
	if _, body := h2Get(t, h2, "https://shop.example.com/assets/missing.js"); !strings.HasPrefix(body, "app ") {
		t.Errorf("h2 missing file: %q, want the app's answer", body)
	}

	// Maintenance mode and no web process show the app's pages.
	app, _, _ := e.st.Apps.Get(context.Background(), "shop")
	app.Maintenance = true
	e.st.Apps.Put(context.Background(), "shop", app)
	eventually(t, func() bool {
		code, body := e.get(host, "/")
		return code == 503 && strings.Contains(body, "being fixed")
	})
	app.Maintenance = false
	e.st.Apps.Put(context.Background(), "shop", app)
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "a"))
	eventually(t, func() bool {
		code, body := e.get(host, "/")
		return code == 503 && strings.Contains(body, "shop is resting")
	})
	if resp, body := h2Get(t, h2, "https://shop.example.com/"); resp.StatusCode != 503 || !strings.Contains(body, "shop is resting") {
		t.Errorf("h2 error page: %d %q", resp.StatusCode, body)
	}
	// With no web process up, not even the static files are served: the
	// app is off.
	if code, body := e.get(host, "/assets/app.js"); code != 503 || !strings.Contains(body, "resting") {
		t.Errorf("static file of an app without web process: %d %q", code, body)
	}
}

func TestStaticSiteServedByTheRouter(t *testing.T) {
	e := startStatic(t)
	e.release("site", 1, map[string]string{
		"index.html":         "<h1>home</h1>",
		"about.html":         "<h1>about</h1>",
		"404.html":           "<h1>lost</h1>",
		".skiff/static.json": `{"version": 1, "root": ".", "clean_urls": true, "error_page": "404.html"}`,
	}, skiff.Release{Processes: map[string]string{"web": skiff.StaticCommand}})
	e.app("site", 1)
	e.instance("site", "a", 1, skiff.StateUp, upstream(t, "agent"))
	const host = "site.apps.test"
	eventually(t, func() bool { _, body := e.get(host, "/"); return body == "<h1>home</h1>" })
	if _, body := e.get(host, "/about"); body != "<h1>about</h1>" {
		t.Errorf("clean URL: %q", body)
	}
	if code, body := e.get(host, "/nowhere"); code != 404 || body != "<h1>lost</h1>" {
		t.Errorf("missing page: %d %q", code, body)
	}
	if resp, _ := e.do(e.request("POST", host, "/")); resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	// A new release without static files: everything goes to the app.
	e.release("site", 2, map[string]string{"server": "x"}, skiff.Release{})
	e.app("site", 2)
	e.instance("site", "b", 2, skiff.StateUp, upstream(t, "new"))
	eventually(t, func() bool { _, body := e.get(host, "/"); return strings.HasPrefix(body, "new ") })
}
