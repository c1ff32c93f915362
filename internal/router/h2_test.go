package router

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// h2Client speaks HTTP/2 only, over TLS to the router's TLS address
// whatever the URL's host, trusting ca.
func (e *env) h2Client(ca *testkit.CA) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
		DialTLSContext: func(ctx context.Context, _, _ string, cfg *tls.Config) (net.Conn, error) {
			d := tls.Dialer{Config: cfg}
			return d.DialContext(ctx, "tcp", e.r.TLSAddr())
		},
	}}
}

// h2Get sends a GET over HTTP/2; it fails the test unless the answer
// came over HTTP/2.
func h2Get(t *testing.T, client *http.Client, url string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over HTTP/%d", resp.ProtoMajor)
	}
	return resp, string(mustRead(resp.Body))
}

// h2App routes app, with a certificate for host, to instances a and b at
// addrs, and returns a client once host answers over HTTP/2.
func (e *env) h2App(t *testing.T, app, host string, addrs ...string) *http.Client {
	ca := testkit.NewCA(t)
	e.app(app, 1)
	for i, addr := range addrs {
		e.instance(app, string(rune('a'+i)), 1, skiff.StateUp, addr)
	}
	e.cert(t, ca, app, host, host)
	client := e.h2Client(ca)
	eventually(t, func() bool {
		req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && len(e.backends(app)) == len(addrs)
	})
	return client
}

// setRouter sets app's router settings and waits until they apply.
func (e *env) setRouter(t *testing.T, app string, s skiff.RouterSettings) {
	e.st.Apps.Put(context.Background(), app, skiff.App{Name: app, Current: 1, Router: s})
	eventually(t, func() bool {
		en := e.r.table.Load().lookup([]byte(app + ".apps.test"))
		return en != nil && en.settings.Load().RouterSettings == s
	})
}

// TestHTTP2RouterSettings: round robin and sticky sessions over HTTP/2,
// as over HTTP/1.1; no redirect to HTTPS, the client being on it.
func TestHTTP2RouterSettings(t *testing.T) {
	e := start(t)
	client := e.h2App(t, "shop", "www.shop.example", upstream(t, "one"), upstream(t, "two"))
	const url = "https://www.shop.example/"

	e.setRouter(t, "shop", skiff.RouterSettings{Balance: skiff.BalanceRoundRobin})
	var seq []string
	for i := 0; i < 6; i++ {
		_, body := h2Get(t, client, url)
		seq = append(seq, strings.Fields(body)[0])
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("round robin served %v", seq)
		}
	}

	e.setRouter(t, "shop", skiff.RouterSettings{Sticky: true})
	resp, body := h2Get(t, client, url)
	first := strings.Fields(body)[0]
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == skiff.StickyCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.Path != "/" {
		t.Fatalf("sticky cookie %v in %v", cookie, resp.Header)
	}
	for i := 0; i < 10; i++ {
		resp, body := h2Get(t, client, url, &http.Cookie{Name: "other", Value: "x"}, cookie)
		if got := strings.Fields(body)[0]; got != first || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("request %d with the cookie went to %s (first %s), set-cookie %q", i, got, first, resp.Header.Get("Set-Cookie"))
		}
	}
	// A cookie naming no backend of the app is replaced.
	resp, _ = h2Get(t, client, url, &http.Cookie{Name: skiff.StickyCookie, Value: "gone"})
	if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), skiff.StickyCookie+"=") {
		t.Fatalf("a stale sticky cookie was not replaced: %v", resp.Header)
	}

	e.setRouter(t, "shop", skiff.RouterSettings{HTTPSRedirect: true})
	if resp, body := h2Get(t, client, url); resp.StatusCode != 200 || !strings.Contains(body, "proto=https") {
		t.Fatalf("with the redirect to HTTPS set, HTTP/2 got %d %q", resp.StatusCode, body)
	}
}

// TestHTTP2AccessLogAndMetrics: a request over HTTP/2 is a line of the
// access log and counted in its app's metrics, and so is an answer of
// the router's own.
func TestHTTP2AccessLogAndMetrics(t *testing.T) {
	e := startWith(t, func(c *Config) { c.AccessLog = true })
	addr, _ := echo(t)
	client := e.h2App(t, "h2shop", "www.h2shop.example", addr)
	ok := func() float64 { return metricValue(t, "skiff_router_requests_total", "h2shop", "2xx") }
	unavailable := func() float64 { return metricValue(t, "skiff_router_requests_total", "h2shop", "5xx") }
	okBefore, bytesBefore := ok(), metricValue(t, "skiff_router_response_bytes_total", "h2shop", "")

	req, _ := http.NewRequest("GET", "https://www.h2shop.example/cart?id=1", nil)
	req.Header.Set("X-Request-Id", "abcdefghijklmnopqrstuvwxyz")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := string(mustRead(resp.Body))
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.Contains(body, `X-Request-Id=["abcdefghijklmnopqrstuvwxyz"]`) {
		t.Fatalf("HTTP/%d %q", resp.ProtoMajor, body)
	}
	line := e.accessLine(t, "h2shop", "/cart")
	for _, want := range []string{`method=GET path="/cart?id=1" host=www.h2shop.example request_id=abcdefghijklmnopqrstuvwxyz fwd="127.0.0.1" dyno=web.1 connect=`,
		"status=200 bytes=" + strconv.Itoa(len(body))} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line %q lacks %q", line, want)
		}
	}
	eventually(t, func() bool { return ok()-okBefore >= 1 })
	if d := metricValue(t, "skiff_router_response_bytes_total", "h2shop", "") - bytesBefore; d < float64(len(body)) {
		t.Errorf("%v bytes counted for a body of %d", d, len(body))
	}

	// Maintenance is answered as before, and logged and counted too.
	before := unavailable()
	e.st.Apps.Put(context.Background(), "h2shop", skiff.App{Name: "h2shop", Current: 1, Maintenance: true})
	eventually(t, func() bool {
		resp, body := h2Get(t, client, "https://www.h2shop.example/down")
		return resp.StatusCode == 503 && strings.Contains(body, "down for maintenance") && resp.Header.Get("Retry-After") == "5"
	})
	if line := e.accessLine(t, "h2shop", "/down"); !strings.Contains(line, "dyno=none") || !strings.Contains(line, "status=503") {
		t.Errorf("access log line %q", line)
	}
	if unavailable()-before < 1 {
		t.Error("the maintenance page was not counted")
	}
}

// accessLine waits for the access log line of app whose path has path.
func (e *env) accessLine(t *testing.T, app, path string) string {
	var line string
	eventually(t, func() bool {
		e.st.ReadLogs(context.Background(), store.LogQuery{App: app, Tail: 100}, func(l skiff.LogLine) error {
			if l.Source == skiff.SourceRouter && strings.Contains(l.Line, `path="`+path) {
				line = l.Line
			}
			return nil
		})
		return line != ""
	})
	return line
}

// TestDrainCutsHTTP2Requests: a request of the HTTP/2 side on a retired
// backend is cut at the drain timeout too.
func TestDrainCutsHTTP2Requests(t *testing.T) {
	const drain = 300 * time.Millisecond
	e := startWith(t, func(c *Config) { c.DrainTimeout = drain })
	old := newSlowBackend(t, "old")
	client := e.h2App(t, "shop", "www.shop.example", old.addr)
	slow := goGet(client, "https://www.shop.example/slow", "")
	old.waitStarted(t)
	retired := time.Now()
	e.st.Instances.Delete(context.Background(), skiff.InstanceKey("shop", "a"))
	r := wait(t, slow)
	if r.err != nil || r.code != 502 || !strings.Contains(r.body, "App shop did not answer") {
		t.Fatalf("the request on the retired backend got %d %q %v, want a 502", r.code, r.body, r.err)
	}
	if d := r.at.Sub(retired); d < drain {
		t.Errorf("cut %v after the retirement, before the drain timeout", d)
	}
}
