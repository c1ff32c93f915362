package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRouterServesStaticFilesAndPages: app.json's static prefix is served
// by the router from the image (the app answers everything else), with
// its caching headers, compressed for a client that takes it; the app's
// own pages replace the router's in maintenance mode and when it has no
// web process.
func TestRouterServesStaticFilesAndPages(t *testing.T) {
	s := startServer(t)
	s.ok("apps", "create", "pages")
	css := strings.Repeat("body { font-family: sans-serif; }\n", 200)
	dir := app(t, "pyapp", map[string]string{
		"app.json":        `{"static": {"/assets": {"dir": "public", "cache_control": "public, max-age=600"}}}`,
		"public/app.css":  css,
		"public/503.html": "<h1>pages will be back</h1>",
	})
	s.ok("deploy", dir, "-a", "pages")
	s.waitFor(host("pages"), "release=v1")
	s.ok("router", "set", "-a", "pages", "error-page=public/503.html", "maintenance-page=public/503.html")

	// A client that leaves encodings to the test.
	raw := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+s.rtrAddr+path, nil)
		req.Host = host("pages")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	eventually(t, 30*time.Second, "the router to serve /assets/app.css", func() bool {
		_, body := get("/assets/app.css")
		return body == css
	})
	resp, _ := get("/assets/app.css")
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=600" || resp.Header.Get("Etag") == "" {
		t.Errorf("/assets/app.css headers: %v", resp.Header)
	}
	if resp, body := get("/assets/app.css", "Accept-Encoding", "gzip, br"); resp.Header.Get("Content-Encoding") != "br" ||
		len(body) >= len(css)/4 {
		t.Errorf("compressed: %q, %d bytes of %d", resp.Header.Get("Content-Encoding"), len(body), len(css))
	}
	if _, body := get("/assets/none.css"); !strings.HasPrefix(body, "release=v1") {
		t.Errorf("a file the image lacks goes to the app: %q", body)
	}
	logs := s.ok("logs", "-a", "pages", "--source", "router")
	if !strings.Contains(logs, `path="/assets/app.css"`) || !strings.Contains(logs, "dyno=router") {
		t.Errorf("router logs lack the static requests:\n%s", logs)
	}

	s.ok("maintenance", "on", "-a", "pages")
	eventually(t, 10*time.Second, "the maintenance page", func() bool {
		resp, body := get("/")
		return resp.StatusCode == 503 && strings.Contains(body, "pages will be back")
	})
	s.ok("maintenance", "off", "-a", "pages")
	s.ok("scale", "web=0", "-a", "pages")
	eventually(t, 20*time.Second, "the error page", func() bool {
		resp, body := get("/")
		return resp.StatusCode == 503 && strings.Contains(body, "pages will be back")
	})
}
