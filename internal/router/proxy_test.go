package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// echo starts a backend that answers with what it received: method,
// target, headers and body.
func echo(t *testing.T) (addr string, requests *atomic.Int64) {
	requests = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s len=%d body=%s\n", r.Method, r.RequestURI, len(body), body)
		for _, k := range []string{"Connection", "Keep-Alive", "X-Hop", "X-Forwarded-For", "X-Request-Id", "Te", "Expect"} {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header.Values(k))
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests
}

// raw sends bytes to the router on a fresh connection and returns what
// came back until the router closed it or went quiet.
func (e *env) raw(data string) string {
	e.t.Helper()
	c, err := net.Dial("tcp", e.r.Addr())
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(data))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	out, _ := io.ReadAll(c)
	return string(out)
}

// route routes app to addr, and waits until path answers through it.
func (e *env) route(t *testing.T, app, addr, path string) {
	e.app(app, 1)
	e.instance(app, app+"-1", 1, skiff.StateUp, addr)
	eventually(t, func() bool { code, _ := e.get(app+".apps.test", path); return code != 404 && code != 503 })
}

// TestSmugglingIsRefused: every request head that two parties could read
// differently gets a 400 (or 431) and a closed connection, and never
// reaches the backend.
func TestSmugglingIsRefused(t *testing.T) {
	e := start(t)
	addr, requests := echo(t)
	e.route(t, "shop", addr, "/")
	before := requests.Load()
	const h = "Host: shop.apps.test\r\n"
	for _, tc := range []struct{ name, req, status string }{
		{"CL and TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"TE and CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "400"},
		{"differing CLs", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"},
		{"CL list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 4, 5\r\n\r\nabcde", "400"},
		{"signed CL", "POST / HTTP/1.1\r\n" + h + "Content-Length: +4\r\n\r\nabcd", "400"},
		{"unknown coding", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "400"},
		{"chunked twice", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"TE with a space before the colon", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "400"},
		{"obsolete folding", "GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n  continued\r\n\r\n", "400"},
		{"bare CR", "GET / HTTP/1.1\r\n" + h + "X-A: 1\rX-B: 2\r\n\r\n", "400"},
		{"NUL in a value", "GET / HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n", "400"},
		{"two Hosts", "GET / HTTP/1.1\r\n" + h + h + "\r\n", "400"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"bad chunk size", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "400"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505"},
		{"oversized head", "GET / HTTP/1.1\r\n" + h + strings.Repeat("X-Big: "+strings.Repeat("a", 8000)+"\r\n", 10) + "\r\n", "431"},
		{"oversized line", "GET / HTTP/1.1\r\n" + h + "X-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n", "431"},
	} {
		out := e.raw(tc.req + "GET / HTTP/1.1\r\n" + h + "\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") || !strings.Contains(out, "Connection: close") ||
			strings.Contains(out, "HTTP/1.1 200") {
			t.Errorf("%s: got %q", tc.name, out)
		}
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("%d refused requests reached the backend", n)
	}
}

// TestForwarding: bodies in both framings, keep-alive, hop-by-hop fields
// stripped, the router's fields set, HEAD and HTTP/1.0.
func TestForwarding(t *testing.T) {
	e := start(t)
	addr, requests := echo(t)
	e.route(t, "shop", addr, "/")
	const h = "Host: shop.apps.test\r\n"
	out := e.raw("POST /a?b=1 HTTP/1.1\r\n" + h + "Content-Length: 5\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n" +
		"X-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abcdefghijklmnopqrstuvwxyz\r\n\r\nhello" +
		"POST /c HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"HEAD / HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n")
	for _, want := range []string{"POST /a?b=1 len=5 body=hello", `Connection=[]`, `Keep-Alive=[]`, `X-Hop=[]`, `Te=[]`,
		`X-Forwarded-For=["10.0.0.1, 127.0.0.1"]`, `X-Request-Id=["abcdefghijklmnopqrstuvwxyz"]`, "POST /c len=5 body=abcde"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "HTTP/1.1 200 OK"); n != 3 {
		t.Errorf("%d answers on one connection, want 3:\n%s", n, out)
	}
	if requests.Load() != 3+1 { // and one while waiting for the route
		t.Errorf("%d requests reached the backend", requests.Load())
	}
	// HTTP/1.0: the connection closes after the answer.
	out = e.raw("GET /old HTTP/1.0\r\n" + h + "\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK") || !strings.Contains(out, "GET /old len=0") || !strings.Contains(out, "Connection: close") {
		t.Errorf("HTTP/1.0: %q", out)
	}
	// A request id that is not well-formed is replaced.
	_, body := e.get("shop.apps.test", "/", "X-Request-Id", "bad id")
	if !strings.Contains(body, `X-Request-Id=["`) || strings.Contains(body, "bad id") {
		t.Errorf("request id: %s", body)
	}
}

// TestStreams: a streamed response reaches the client as it is written;
// a large upload passes through without being held whole.
func TestStreams(t *testing.T) {
	e := start(t)
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "got %d", n)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	defer srv.Close()
	e.route(t, "events", strings.TrimPrefix(srv.URL, "http://"), "/upload")

	req, _ := http.NewRequest("GET", "http://"+e.r.Addr()+"/events", nil)
	req.Host = "events.apps.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}

	// 64 MiB, generated as it is sent.
	const size = 64 << 20
	up, _ := http.NewRequest("POST", "http://"+e.r.Addr()+"/upload", io.LimitReader(zeros{}, size))
	up.Host = "events.apps.test"
	up.ContentLength = size
	resp, err = http.DefaultClient.Do(up)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != fmt.Sprintf("got %d", size) {
		t.Fatalf("upload: %s", b)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// rawBackend serves each connection to it with serve, on a goroutine of
// its own, until the test ends; it returns its address. The connection
// is closed when serve returns.
func rawBackend(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return l.Addr().String()
}

// echoUpgradeBackend answers "ok" to plain requests and switches to an
// echo of what it reads for an upgrade to "echo".
func echoUpgradeBackend(t *testing.T) string {
	return rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "echo" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		io.Copy(c, br)
	})
}

// TestUpgrade: a WebSocket-style upgrade is tunnelled both ways.
func TestUpgrade(t *testing.T) {
	e := start(t)
	addr := echoUpgradeBackend(t)
	e.route(t, "ws", addr, "/")
	c, err := net.Dial("tcp", e.r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /socket HTTP/1.1\r\nHost: ws.apps.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst ")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade: %v %+v", err, resp)
	}
	io.WriteString(c, "second")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("first second"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "first second" {
		t.Fatalf("echoed %q, %v", got, err)
	}
}

// TestRetriesAStaleConnection: a backend that closed its idle keep-alive
// connection does not fail the next idempotent request.
func TestRetriesAStaleConnection(t *testing.T) {
	e := start(t)
	addr := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		// One request per connection, then close without saying so.
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	e.route(t, "flaky", addr, "/")
	for i := 0; i < 5; i++ {
		if code, body := e.get("flaky.apps.test", "/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
}

// TestShutdownFinishesRequests: a request under way when the router
// stops is answered.
func TestShutdownFinishesRequests(t *testing.T) {
	e := start(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer srv.Close()
	e.route(t, "slow", strings.TrimPrefix(srv.URL, "http://"), "/")
	r2, err := New(Config{Addr: "127.0.0.1:0", Domain: "apps.test"}, e.st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r2.Run(ctx) }()
	eventually(t, r2.Ready)
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+r2.Addr()+"/", nil)
		req.Host = "slow.apps.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if body := <-got; body != "finished" {
		t.Errorf("the request under way got %q", body)
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
	if _, err := net.DialTimeout("tcp", r2.Addr(), time.Second); err == nil {
		t.Error("the router still accepts after it stopped")
	}
}

// TestAccessLog: each request is a line in its app's logs, source router.
func TestAccessLog(t *testing.T) {
	st, err := store.Open(context.Background(), bustest.Start(t), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Addr: "127.0.0.1:0", Domain: "apps.test", AccessLog: true}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e := &env{t: t, st: st, r: r}
	eventually(t, r.Ready)
	addr, _ := echo(t)
	e.route(t, "shop", addr, "/ready")
	e.get("shop.apps.test", "/cart?id=1", "X-Request-Id", "abcdefghijklmnopqrstuvwxyz")
	var line string
	eventually(t, func() bool {
		st.ReadLogs(context.Background(), store.LogQuery{App: "shop", Tail: 100}, func(l skiff.LogLine) error {
			if l.Source == skiff.SourceRouter && strings.Contains(l.Line, "/cart") {
				line = l.Line
			}
			return nil
		})
		return line != ""
	})
	for _, want := range []string{`method=GET path="/cart?id=1" host=shop.apps.test request_id=abcdefghijklmnopqrstuvwxyz fwd="127.0.0.1" dyno=web.1 connect=`,
		"status=200 bytes=", "protocol=http"} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line %q lacks %q", line, want)
		}
	}
}

// TestMaintenance: an app in maintenance mode gets the maintenance page
// while its backend keeps running.
func TestMaintenance(t *testing.T) {
	e := start(t)
	addr, _ := echo(t)
	e.route(t, "shop", addr, "/")
	e.st.Apps.Put(context.Background(), "shop", skiff.App{Name: "shop", Current: 1, Maintenance: true})
	eventually(t, func() bool {
		code, body := e.get("shop.apps.test", "/")
		return code == 503 && strings.Contains(body, "down for maintenance")
	})
	e.st.Apps.Put(context.Background(), "shop", skiff.App{Name: "shop", Current: 1})
	eventually(t, func() bool { code, _ := e.get("shop.apps.test", "/"); return code == 200 })
}

// TestRouterSettings: round robin, sticky sessions and the redirect to
// HTTPS, as app settings.
func TestRouterSettings(t *testing.T) {
	e := start(t)
	e.app("shop", 1)
	e.instance("shop", "a", 1, skiff.StateUp, upstream(t, "one"))
	e.instance("shop", "b", 1, skiff.StateUp, upstream(t, "two"))
	settings := func(s skiff.RouterSettings) {
		e.st.Apps.Put(context.Background(), "shop", skiff.App{Name: "shop", Current: 1, Router: s})
		eventually(t, func() bool {
			en := e.r.table.Load().lookup([]byte("shop.apps.test"))
			return en != nil && en.settings.Load().RouterSettings == s && len(en.route.Load().backends) == 2
		})
	}

	settings(skiff.RouterSettings{Balance: skiff.BalanceRoundRobin})
	var seq []string
	for i := 0; i < 6; i++ {
		_, body := e.get("shop.apps.test", "/")
		seq = append(seq, strings.Fields(body)[0])
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("round robin served %v", seq)
		}
	}

	settings(skiff.RouterSettings{Sticky: true})
	req, _ := http.NewRequest("GET", "http://"+e.r.Addr()+"/", nil)
	req.Host = "shop.apps.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Fields(string(mustRead(resp.Body)))[0]
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == skiff.StickyCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no sticky cookie: %v", resp.Header)
	}
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest("GET", "http://"+e.r.Addr()+"/", nil)
		req.Host = "shop.apps.test"
		req.AddCookie(&http.Cookie{Name: "other", Value: "x"})
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(string(mustRead(resp.Body)))[0]
		resp.Body.Close()
		if got != first || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("request %d with the cookie went to %s (first %s), set-cookie %q", i, got, first, resp.Header.Get("Set-Cookie"))
		}
	}

	settings(skiff.RouterSettings{HTTPSRedirect: true})
	out := e.raw("GET /cart?x=1 HTTP/1.1\r\nHost: shop.apps.test\r\nConnection: close\r\n\r\n")
	_, port, _ := net.SplitHostPort(e.r.TLSAddr())
	if !strings.HasPrefix(out, "HTTP/1.1 308") || !strings.Contains(out, "Location: https://shop.apps.test:"+port+"/cart?x=1\r\n") {
		t.Fatalf("redirect: %q", out)
	}
}

// TestMetrics: requests are counted per app and status class.
func TestMetrics(t *testing.T) {
	e := start(t)
	addr, _ := echo(t)
	e.route(t, "counted", addr, "/")
	before := metricValue(t, "skiff_router_requests_total", "counted", "2xx")
	for i := 0; i < 3; i++ {
		e.get("counted.apps.test", "/")
	}
	// Counted once the response is out: the client may read it first, and
	// the requests that waited for the route may be counted late too.
	eventually(t, func() bool {
		return metricValue(t, "skiff_router_requests_total", "counted", "2xx")-before >= 3
	})
	if metricValue(t, "skiff_router_response_bytes_total", "counted", "") <= 0 {
		t.Error("no bytes counted")
	}
}

// TestExtraBytesDoNotLeak: a backend that sends more than its response
// says does not get the excess read as the next request's answer.
func TestExtraBytesDoNotLeak(t *testing.T) {
	e := start(t)
	addr := rawBackend(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/evil" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
			}
		}
	})
	e.route(t, "sloppy", addr, "/")
	for i := 0; i < 5; i++ {
		e.get("sloppy.apps.test", "/evil")
		if _, body := e.get("sloppy.apps.test", "/"); body != "real" {
			t.Fatalf("after a response with extra bytes, got %q", body)
		}
	}
}
