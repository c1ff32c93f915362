package static

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

func TestAcceptedEncoding(t *testing.T) {
	for _, tt := range []struct {
		header string // fields separated by "|"
		want   string
	}{
		{"", ""},
		{"br", "br"},
		{"gzip", "gzip"},
		{"gzip, deflate, br, zstd", "br"},
		{"gzip, br", "br"},
		{"BR, GZIP", "br"},
		{"x-gzip", "gzip"},
		{"deflate", ""},
		{"gzip;q=1.0, br;q=0.8", "gzip"},
		{"br;q=0.5, gzip;q=0.5", "br"},
		{"br;q=0, gzip", "gzip"},
		{"br;q=0.000, gzip;q=0.001", "gzip"},
		{"br;q=0, gzip;q=0", ""},
		{"gzip ; q=0.5", "gzip"},
		{"*", "br"},
		{"*;q=0.5, br;q=0.2", "gzip"},
		{"*;q=0", ""},
		{"*;q=0, gzip", "gzip"},
		{"identity", ""},
		{"identity;q=0", ""},
		{"identity, gzip;q=0.5", ""},
		{"identity;q=0.5, gzip", "gzip"},
		{"identity;q=0.5, br;q=0.5", "br"},
		{"*;q=0.5, identity", ""},
		{"br;q=2", ""},
		{"br;q=1.5, gzip", "gzip"},
		{"br;q=0.1234, gzip;q=0.1", "gzip"},
		{"br;q=abc", ""},
		{"br;level=1;q=0.3, gzip;q=0.2", "br"},
		{"br;q=0|gzip", "gzip"},
		{"gzip;q=0.1|br;q=0.2", "br"},
		{" , ,br", "br"},
	} {
		var fields []string
		if tt.header != "" {
			fields = strings.Split(tt.header, "|")
		}
		if got := acceptedEncoding(fields); got != tt.want {
			t.Errorf("Accept-Encoding %q: %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestCompressibleType(t *testing.T) {
	for ctype, want := range map[string]bool{
		"text/html; charset=utf-8":       true,
		"text/javascript; charset=utf-8": true,
		"application/javascript":         true,
		"application/json":               true,
		"Application/JSON":               true,
		"application/manifest+json":      true,
		"application/xml":                true,
		"application/atom+xml":           true,
		"application/wasm":               true,
		"image/svg+xml":                  true,
		"font/ttf":                       true,
		"font/otf":                       true,
		"image/x-icon":                   true,
		"image/png":                      false,
		"image/jpeg":                     false,
		"image/webp":                     false,
		"video/mp4":                      false,
		"application/zip":                false,
		"application/gzip":               false,
		"application/octet-stream":       false,
		"application/pdf":                false,
		"font/woff":                      false,
		"font/woff2":                     false,
		"":                               false,
		"text":                           false,
	} {
		if got := compressibleType(ctype); got != want {
			t.Errorf("%q: %v, want %v", ctype, got, want)
		}
	}
	for name, want := range map[string]bool{"a.js": true, "a.css": true, "a.svg": true, "a.json": true, "a.wasm": true,
		"a.txt": true, "a.ttf": true, "a.otf": true, "a.webmanifest": true, "a.png": false, "a.woff2": false, "a": false} {
		if got := compressibleType(contentType(name)); got != want {
			t.Errorf("%s (%q): %v, want %v", name, contentType(name), got, want)
		}
	}
}

// decoded returns a response's body, decoded from its Content-Encoding.
func decoded(t *testing.T, enc string, body []byte) string {
	t.Helper()
	s, err := decode(enc, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decode(enc string, body []byte) (string, error) {
	var r io.Reader = bytes.NewReader(body)
	switch enc {
	case "":
	case "br":
		r = brotli.NewReader(r)
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", fmt.Errorf("gzip: %w", err)
		}
		r = zr
	default:
		return "", fmt.Errorf("unknown Content-Encoding %q", enc)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decode %s: %w", enc, err)
	}
	return string(data), nil
}

// textOf returns size bytes of compressible text, distinct for seed:
// the compression cache outlives each test.
func textOf(seed string, size int) string {
	line := "function greet(" + seed + ") { return 'hello, ' + name + '!'; }\n"
	return strings.Repeat(line, size/len(line)+1)[:size]
}

// noise returns size bytes that do not compress.
func noise(seed uint64, size int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// compressedSite builds a static site and returns its handler and files.
func compressedSite(t *testing.T) (http.Handler, map[string]string) {
	t.Helper()
	files := map[string]string{
		"static.json": `{"headers": {"/pre.js": {"Content-Encoding": "gzip"}, "/varied.css": {"Vary": "Origin"}}}`,
		"index.html":  "<h1>" + textOf(t.Name()+"index", 2000) + "</h1>",
		"app.js":      textOf(t.Name()+"app", 5000),
		"varied.css":  textOf(t.Name()+"css", 3000),
		"logo.svg":    "<svg>" + textOf(t.Name()+"svg", 1000) + "</svg>",
		"font.ttf":    textOf(t.Name()+"ttf", 1000),
		"edge.js":     textOf(t.Name()+"edge", compressMinSize),
		"tiny.js":     textOf(t.Name()+"tiny", compressMinSize-1),
		"noise.js":    noise(1, 4000),
		"photo.png":   textOf(t.Name()+"png", 4000),
		"font.woff2":  textOf(t.Name()+"woff2", 4000),
		"data":        textOf(t.Name()+"data", 4000),
		"pre.js":      textOf(t.Name()+"pre", 1000),
		"big.txt":     textOf(t.Name()+"big", compressMaxSize+1),
	}
	h, err := Handler(buildSite(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return h, files
}

func TestStaticCompression(t *testing.T) {
	h, files := compressedSite(t)
	for _, tt := range []struct {
		path, accept string
		enc          string // Content-Encoding wanted
		vary         string // Vary wanted
		ctype        string // Content-Type wanted, when set
	}{
		{path: "/app.js", accept: "gzip, deflate, br", enc: "br", vary: "Accept-Encoding", ctype: "text/javascript; charset=utf-8"},
		{path: "/app.js", accept: "br;q=0, gzip", enc: "gzip", vary: "Accept-Encoding"},
		{path: "/app.js", accept: "br;q=0.5, gzip", enc: "gzip", vary: "Accept-Encoding"},
		{path: "/app.js", accept: "gzip;q=0, br;q=0", vary: "Accept-Encoding"},
		{path: "/app.js", accept: "identity", vary: "Accept-Encoding"},
		{path: "/app.js", vary: "Accept-Encoding"},
		{path: "/", accept: "br", enc: "br", vary: "Accept-Encoding", ctype: "text/html; charset=utf-8"},
		{path: "/logo.svg", accept: "br", enc: "br", vary: "Accept-Encoding", ctype: "image/svg+xml"},
		{path: "/font.ttf", accept: "gzip", enc: "gzip", vary: "Accept-Encoding"},
		{path: "/varied.css", accept: "br", enc: "br", vary: "Origin, Accept-Encoding"},
		{path: "/edge.js", accept: "br", enc: "br", vary: "Accept-Encoding"},
		{path: "/tiny.js", accept: "br", vary: "Accept-Encoding"},
		{path: "/noise.js", accept: "br", vary: "Accept-Encoding"},
		{path: "/noise.js", accept: "br", vary: "Accept-Encoding"}, // remembered
		{path: "/big.txt", accept: "br", vary: "Accept-Encoding"},
		{path: "/photo.png", accept: "br", ctype: "image/png"},
		{path: "/font.woff2", accept: "br"},
		{path: "/data", accept: "br", ctype: "text/plain; charset=utf-8"},
	} {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			rec := serveStatic(h, "GET", tt.path, map[string]string{"Accept-Encoding": tt.accept})
			if rec.Code != 200 {
				t.Fatalf("status %d: %q", rec.Code, rec.Body)
			}
			hdr := rec.Header()
			if got := hdr.Get("Content-Encoding"); got != tt.enc {
				t.Errorf("Content-Encoding %q, want %q", got, tt.enc)
			}
			if got := strings.Join(hdr.Values("Vary"), ", "); got != tt.vary {
				t.Errorf("Vary %q, want %q", got, tt.vary)
			}
			if tt.ctype != "" && hdr.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", hdr.Get("Content-Type"), tt.ctype)
			}
			if got := hdr.Get("Content-Length"); got != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %s, body of %d bytes", got, rec.Body.Len())
			}
			name := strings.TrimPrefix(tt.path, "/")
			if name == "" {
				name = "index.html"
			}
			if got := decoded(t, tt.enc, rec.Body.Bytes()); got != files[name] {
				t.Fatalf("body of %d bytes decoded to %d bytes, not the file's %d", rec.Body.Len(), len(got), len(files[name]))
			}
			if tt.enc != "" && rec.Body.Len() >= len(files[name]) {
				t.Errorf("compressed to %d bytes from %d", rec.Body.Len(), len(files[name]))
			}
			tag := serveStatic(h, "GET", tt.path, nil).Header().Get("Etag")
			want := tag
			if tt.enc != "" {
				want = strings.TrimSuffix(tag, `"`) + map[string]string{"br": "-br", "gzip": "-gz"}[tt.enc] + `"`
			}
			if got := hdr.Get("Etag"); got != want || tag == "" {
				t.Errorf("ETag %q, want %q", got, want)
			}
		})
	}

	t.Run("a file compressed in the image", func(t *testing.T) {
		rec := serveStatic(h, "GET", "/pre.js", map[string]string{"Accept-Encoding": "br, gzip"})
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || rec.Body.String() != files["pre.js"] {
			t.Fatalf("%d %s, %d bytes: the site's Content-Encoding should send the file as it is",
				rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len())
		}
	})
}

func TestStaticCompressionConditional(t *testing.T) {
	h, files := compressedSite(t)
	br := map[string]string{"Accept-Encoding": "br"}
	get := serveStatic(h, "GET", "/app.js", br)
	tag, body := get.Header().Get("Etag"), get.Body.Bytes()
	plainTag := serveStatic(h, "GET", "/app.js", nil).Header().Get("Etag")
	if !strings.HasSuffix(tag, `-br"`) || tag == plainTag {
		t.Fatalf("ETag %q, identity's %q", tag, plainTag)
	}
	with := func(more map[string]string) map[string]string {
		m := map[string]string{}
		for _, h := range []map[string]string{br, more} {
			for k, v := range h {
				m[k] = v
			}
		}
		return m
	}

	t.Run("If-None-Match", func(t *testing.T) {
		rec := serveStatic(h, "GET", "/app.js", with(map[string]string{"If-None-Match": tag}))
		if rec.Code != 304 || rec.Body.Len() != 0 || rec.Header().Get("Etag") != tag || rec.Header().Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%d %v, want 304 with the tag and Vary", rec.Code, rec.Header())
		}
		// Another representation's tag does not match.
		rec = serveStatic(h, "GET", "/app.js", with(map[string]string{"If-None-Match": plainTag}))
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "br" {
			t.Fatalf("identity's tag: %d %s, want 200 br", rec.Code, rec.Header().Get("Content-Encoding"))
		}
		rec = serveStatic(h, "GET", "/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": tag})
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("br's tag, gzip accepted: %d %s, want 200 gzip", rec.Code, rec.Header().Get("Content-Encoding"))
		}
		rec = serveStatic(h, "GET", "/app.js", map[string]string{"If-None-Match": plainTag})
		if rec.Code != 304 {
			t.Fatalf("identity's tag, identity: %d, want 304", rec.Code)
		}
	})

	t.Run("If-Match fails", func(t *testing.T) {
		rec := serveStatic(h, "GET", "/app.js", with(map[string]string{"If-Match": plainTag}))
		if rec.Code != 412 || rec.Header().Get("Content-Encoding") != "" || rec.Header().Get("Content-Length") != "" {
			t.Fatalf("%d %v, want 412 without Content-Encoding nor Content-Length", rec.Code, rec.Header())
		}
	})

	t.Run("Range", func(t *testing.T) {
		rec := serveStatic(h, "GET", "/app.js", with(map[string]string{"Range": "bytes=0-9"}))
		hdr := rec.Header()
		if rec.Code != 206 || hdr.Get("Content-Encoding") != "br" || hdr.Get("Etag") != tag {
			t.Fatalf("%d %v, want 206 br", rec.Code, hdr)
		}
		if want := fmt.Sprintf("bytes 0-9/%d", len(body)); hdr.Get("Content-Range") != want {
			t.Errorf("Content-Range %q, want %q", hdr.Get("Content-Range"), want)
		}
		if !bytes.Equal(rec.Body.Bytes(), body[:10]) || hdr.Get("Content-Length") != "10" {
			t.Errorf("body %x (Content-Length %s), want %x", rec.Body, hdr.Get("Content-Length"), body[:10])
		}
		rec = serveStatic(h, "GET", "/app.js", with(map[string]string{"Range": "bytes=10-", "If-Range": tag}))
		if rec.Code != 206 || !bytes.Equal(rec.Body.Bytes(), body[10:]) {
			t.Fatalf("If-Range with the tag: %d, %d bytes", rec.Code, rec.Body.Len())
		}
		rec = serveStatic(h, "GET", "/app.js", with(map[string]string{"Range": "bytes=10-", "If-Range": plainTag}))
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Fatalf("If-Range with identity's tag: %d, %d bytes, want all of br", rec.Code, rec.Body.Len())
		}
		// Several ranges make a multipart body, which is not encoded.
		rec = serveStatic(h, "GET", "/app.js", with(map[string]string{"Range": "bytes=0-1,5-6"}))
		if rec.Code != 206 || rec.Header().Get("Content-Encoding") != "" || !strings.Contains(rec.Body.String(), files["app.js"][5:7]) {
			t.Fatalf("multipart: %d %v", rec.Code, rec.Header())
		}
		rec = serveStatic(h, "GET", "/app.js", with(map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(body)+10)}))
		if rec.Code != 416 || rec.Header().Get("Content-Encoding") != "" {
			t.Fatalf("unsatisfiable: %d %v", rec.Code, rec.Header())
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		rec := serveStatic(h, "HEAD", "/app.js", br)
		hdr := rec.Header()
		if rec.Code != 200 || rec.Body.Len() != 0 || hdr.Get("Content-Encoding") != "br" || hdr.Get("Etag") != tag ||
			hdr.Get("Content-Length") != strconv.Itoa(len(body)) || hdr.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%d, %d bytes, %v; want what GET has (Content-Length %d) without the body", rec.Code, rec.Body.Len(), hdr, len(body))
		}
	})
}

// TestStaticCompressionForgedETag serves an image that claims another
// site's file's digest for a file of its own: the shared cache must not
// then give either site the other's content.
func TestStaticCompressionForgedETag(t *testing.T) {
	victim, forger := t.TempDir(), t.TempDir()
	victimJS, forgerJS := textOf(t.Name()+"victim", 3000), textOf(t.Name()+"forger", 3000)
	tag, err := contentETag(strings.NewReader(victimJS))
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, victim, map[string]string{"app.js": victimJS})
	writeTree(t, forger, map[string]string{
		"app.js":             forgerJS,
		".skiff/static.json": `{"version": 1, "root": ".", "etags": {"app.js": ` + strconv.Quote(tag) + `}}`,
	})
	hv, err := Handler(victim)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := Handler(forger)
	if err != nil {
		t.Fatal(err)
	}
	br := map[string]string{"Accept-Encoding": "br"}
	// The forger asks first, to fill the cache under the victim's tag.
	rec := serveStatic(hf, "GET", "/app.js", br)
	if strings.HasPrefix(rec.Header().Get("Etag"), strings.TrimSuffix(tag, `"`)) {
		t.Fatalf("the forger's site sent the tag its static.json claims: %s", rec.Header().Get("Etag"))
	}
	if got := decoded(t, rec.Header().Get("Content-Encoding"), rec.Body.Bytes()); got != forgerJS {
		t.Fatalf("the forger's site sent %d bytes that are not its file", len(got))
	}
	rec = serveStatic(hv, "GET", "/app.js", br)
	if rec.Header().Get("Content-Encoding") != "br" {
		t.Fatalf("Content-Encoding %q, want br", rec.Header().Get("Content-Encoding"))
	}
	if got := decoded(t, "br", rec.Body.Bytes()); got != victimJS {
		t.Fatalf("the victim's site sent another file: %.40q", got)
	}
}

// TestStaticCompressionConcurrent sends first requests for the same files
// at once, over a real server (run with -race).
func TestStaticCompressionConcurrent(t *testing.T) {
	h, files := compressedSite(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	accepts := []string{"br", "gzip", "", "br, gzip"}
	paths := []string{"/app.js", "/varied.css", "/noise.js", "/logo.svg"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			p, accept := paths[i%len(paths)], accepts[i/len(paths)%len(accepts)]
			req, _ := http.NewRequest("GET", srv.URL+p, nil)
			req.Header.Set("Accept-Encoding", accept)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- fmt.Errorf("%s (%s): %w", p, accept, err)
				return
			}
			if resp.ContentLength != int64(len(body)) {
				errs <- fmt.Errorf("%s (%s): Content-Length %d, body of %d bytes", p, accept, resp.ContentLength, len(body))
			}
			enc := resp.Header.Get("Content-Encoding")
			if got, err := decode(enc, body); err != nil || got != files[p[1:]] {
				errs <- fmt.Errorf("%s (%s, sent as %q): not the file (%v)", p, accept, enc, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCompressCacheLRU(t *testing.T) {
	data := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	key := func(i int) compressKey { return compressKey{tag: fmt.Sprintf(`"%02d"`, i), enc: "br"} }
	cost := (&compressEntry{key: key(0), data: data(1000)}).cost()
	c := newCompressCache(3 * cost)
	for i := range 3 {
		if _, err := c.get(key(i), func() ([]byte, error) { return data(1000), nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, ok := c.lookup(key(i)); !ok {
			t.Fatalf("entry %d evicted within the bound", i)
		}
	}
	// 0 was used last, so 1 is the least recently used.
	c.lookup(key(0))
	c.get(key(3), func() ([]byte, error) { return data(1000), nil })
	if _, ok := c.lookup(key(1)); ok {
		t.Fatal("the least recently used entry was kept beyond the bound")
	}
	for _, i := range []int{0, 2, 3} {
		if _, ok := c.lookup(key(i)); !ok {
			t.Fatalf("entry %d evicted, not the least recently used", i)
		}
	}
	if c.size > c.max || c.size != 3*cost || c.lru.Len() != 3 || len(c.entries) != 3 {
		t.Fatalf("size %d of %d, %d entries (%d in the map)", c.size, c.max, c.lru.Len(), len(c.entries))
	}
	// One entry bigger than the whole cache takes nothing from it.
	c.get(key(4), func() ([]byte, error) { return data(int(4 * cost)), nil })
	if _, ok := c.lookup(key(4)); ok || c.lru.Len() != 3 {
		t.Fatalf("an entry over the bound was kept (%d entries)", c.lru.Len())
	}
	// Files not worth compressing are remembered, and counted.
	c.get(key(5), func() ([]byte, error) { return nil, nil })
	if d, ok := c.lookup(key(5)); !ok || d != nil {
		t.Fatalf("the marker of a file not worth compressing: %v %v", d, ok)
	}
	if _, ok := c.lookup(key(0)); ok || c.lru.Len() != 3 || c.size > c.max {
		t.Fatalf("the marker took no room: %d entries, size %d of %d", c.lru.Len(), c.size, c.max)
	}
	// Errors are not kept.
	c.get(key(6), func() ([]byte, error) { return nil, io.ErrUnexpectedEOF })
	if _, ok := c.lookup(key(6)); ok {
		t.Fatal("an error was kept")
	}
}

func TestCompressCacheOnce(t *testing.T) {
	c := newCompressCache(1 << 20)
	key := compressKey{tag: `"once"`, enc: "gzip"}
	var calls atomic.Int32
	var started sync.WaitGroup
	const n = 32
	started.Add(n)
	compute := func() ([]byte, error) {
		calls.Add(1)
		// Give the others time to ask while this one computes: without
		// the wait for it, they would compute too.
		started.Wait()
		time.Sleep(20 * time.Millisecond)
		return []byte("compressed"), nil
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			started.Done()
			if data, err := c.get(key, compute); err != nil || string(data) != "compressed" {
				t.Errorf("get: %q, %v", data, err)
			}
		})
	}
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Fatalf("compressed %d times, want once", got)
	}
	if len(c.pending) != 0 {
		t.Fatalf("%d compressions left pending", len(c.pending))
	}

	// A compression that panics does not leave the others waiting.
	key.tag = `"panics"`
	release := make(chan struct{})
	go func() {
		defer func() { recover() }()
		c.get(key, func() ([]byte, error) { <-release; panic("boom") })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		_, pending := c.pending[key]
		c.mu.Unlock()
		if pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the compression never started")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error)
	go func() {
		_, err := c.get(key, func() ([]byte, error) { return []byte("second"), nil })
		done <- err
	}()
	close(release)
	select {
	case err := <-done:
		// Either it waited for the one that panicked, or it came after.
		if err != nil && err != errCompressAborted {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request waits forever for a compression that panicked")
	}
}
