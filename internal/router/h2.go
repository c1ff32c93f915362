package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"time"

	"golang.org/x/net/http2"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// The HTTP/2 side serves clients that chose HTTP/2 over TLS, with
// net/http's ReverseProxy and Transport (HTTP/1.1 to the backends), but
// routes as the HTTP/1.1 path does: the app's balance and sticky
// sessions choose the backend (route.choose), a backend that refuses the
// connection is skipped for another, each request is an access log entry
// and counted in the app's metrics, and a request on a retired backend
// is cancelled at the end of its drain (pool.go). Unlike the HTTP/1.1
// path, it allocates per request. There is no redirect to HTTPS: the
// client is on it.
//
// A request's state (h2Request) rides in its context from the handler
// (serveH2) to the transport (h2Transport) and back to the proxy's
// error handler; all of them run on the handler's goroutine.

// h2Request is one request of the HTTP/2 side.
type h2Request struct {
	app      *appEntry
	settings *appSettings
	rt       *route
	stuck    *backend // the backend the client's sticky cookie names, if up
	rid      string   // its X-Request-Id
	entry    accessEntry
}

type h2Key struct{}

// errNoBackend ends a request that no backend took.
var errNoBackend = errors.New("no backend took the connection")

// newH2 makes the HTTP/2 side.
func (r *Router) newH2() {
	transport := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: maxIdlePerBackend,
		IdleConnTimeout:     idleTimeout,
		DisableCompression:  true,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			hr := pr.In.Context().Value(h2Key{}).(*h2Request)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "backend" // the transport picks it
			pr.Out.Host = pr.In.Host
			if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
				pr.Out.Header["X-Forwarded-For"] = append([]string(nil), prior...)
			}
			pr.SetXForwarded() // X-Forwarded-For, -Host, -Proto (https)
			pr.Out.Header.Set("X-Forwarded-Port", r.tlsPort)
			pr.Out.Header.Set("X-Request-Id", hr.rid)
			pr.Out.Header.Set("X-Request-Start", fmt.Sprintf("t=%d", time.Now().UnixMilli()))
		},
		Transport: h2Transport{transport},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() == nil {
				hr := req.Context().Value(h2Key{}).(*h2Request)
				servePage(w, hr.app.static.Load().pageFor(false), http.StatusBadGateway, "App "+hr.app.name+" did not answer the request.")
			}
		},
	}
	r.h2 = &http2.Server{IdleTimeout: keepIdle}
	r.h2Base = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.serveH2(w, req, proxy)
	}), ReadHeaderTimeout: headTimeout}
	http2.ConfigureServer(r.h2Base, r.h2)
}

// serveH2 answers a request of the HTTP/2 side.
func (r *Router) serveH2(w http.ResponseWriter, req *http.Request, proxy http.Handler) {
	var scratch [256]byte
	host := normalizeInto(scratch[:], []byte(req.Host))
	e := r.table.Load().lookup(host)
	if e == nil {
		http.Error(w, "No app is deployed at "+string(host)+".", http.StatusNotFound)
		return
	}
	hr := &h2Request{app: e, settings: e.settings.Load(), rt: e.route.Load(), rid: req.Header.Get("X-Request-Id")}
	if !validRequestID([]byte(hr.rid)) {
		hr.rid = string(newRequestID(nil))
	}
	hr.entry.startH2(e.name, req, host, hr.rid)
	cw := &countingWriter{ResponseWriter: w}
	began := time.Now()
	defer func() {
		// Also when the proxy aborts a response it could not finish.
		en := &hr.entry
		en.status, en.bytes = cw.status, cw.n
		e.metrics.observe(en.status, time.Since(began), en.bytes)
		r.logAccess(en)
	}()
	static := e.static.Load()
	switch {
	case hr.settings.maintenance:
		servePage(cw, static.pageFor(true), http.StatusServiceUnavailable, "App "+e.name+" is down for maintenance. Please try again later.")
		return
	case len(hr.rt.backends) == 0:
		servePage(cw, static.pageFor(false), http.StatusServiceUnavailable, "App "+e.name+" has no running web process.")
		return
	}
	if static.serves() && req.ContentLength == 0 {
		if h, rel := static.handler(req.Method, req.URL.Path); h != nil {
			began := time.Now()
			if serveFrom(cw, req, h, rel) {
				hr.entry.dyno = "router"
				hr.entry.service += time.Since(began)
				return
			}
		}
	}
	if hr.settings.Sticky {
		if c, err := req.Cookie(skiff.StickyCookie); err == nil {
			hr.stuck = hr.rt.byID([]byte(c.Value), time.Now().UnixNano())
		}
	}
	proxy.ServeHTTP(cw, req.WithContext(context.WithValue(req.Context(), h2Key{}, hr)))
}

// h2Transport sends a request to the backend its route chooses, and to
// another when a connection is refused: then nothing of the request was
// sent. The request stays counted in its backend's pool (for the drain)
// and load until its response body is closed.
type h2Transport struct{ base http.RoundTripper }

func (t h2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	hr := req.Context().Value(h2Key{}).(*h2Request)
	now := time.Now().UnixNano()
	var tried []*backend
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			hr.rt = hr.app.route.Load() // as in the HTTP/1.1 path
		}
		b := hr.rt.choose(hr.settings, hr.stuck, attempt, now, tried)
		if b == nil || attempt > len(hr.rt.backends)+2 {
			return nil, errNoBackend
		}
		ctx, cancel := context.WithCancel(req.Context())
		s := &h2Stream{cancel: cancel}
		if !b.pool.track(s) {
			// Retired, and drained: another backend may take it.
			cancel()
			tried = append(tried, b)
			continue
		}
		began := time.Now()
		var gotConn time.Time
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { gotConn = time.Now() },
		})
		out := req.WithContext(ctx)
		u := *req.URL
		u.Host = b.addr
		out.URL = &u
		b.inflight.Add(1)
		hr.entry.dyno = b.name
		resp, err := t.base.RoundTrip(out)
		if gotConn.IsZero() {
			gotConn = time.Now()
		}
		hr.entry.connect += gotConn.Sub(began)
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
			// Not asked for: HTTP/2 has no upgrades.
			resp.Body.Close()
			resp, err = nil, errors.New("backend switched protocols unasked")
		}
		if err != nil {
			cut := ctx.Err() != nil // by the pool's drain, or the client
			hr.entry.service += time.Since(gotConn)
			b.inflight.Add(-1)
			b.pool.untrack(s)
			cancel()
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				b.markDown(now)
				tried = append(tried, b)
				continue
			}
			if cut && !b.pool.cutLate() && req.Context().Err() == nil && (req.Body == nil || req.Body == http.NoBody) &&
				idempotent([]byte(req.Method)) {
				// Cut by the router before any answer (the backend's node
				// died): sent again elsewhere, as on HTTP/1.1.
				tried = append(tried, b)
				continue
			}
			return nil, err
		}
		if hr.settings.Sticky && b != hr.stuck {
			resp.Header.Add("Set-Cookie", skiff.StickyCookie+"="+b.id+"; Path=/; HttpOnly; SameSite=Lax")
		}
		resp.Body = &h2Body{ReadCloser: resp.Body, done: func() {
			hr.entry.service += time.Since(gotConn)
			b.inflight.Add(-1)
			b.pool.untrack(s)
			cancel()
		}}
		return resp, nil
	}
}

// h2Body is a backend response's body that calls done once closed.
type h2Body struct {
	io.ReadCloser
	done func()
}

func (b *h2Body) Close() error {
	err := b.ReadCloser.Close()
	if b.done != nil {
		b.done()
		b.done = nil
	}
	return err
}

// countingWriter notes the status and counts the body bytes of a
// response, for the access log and metrics. HTTP/2 compresses heads, so
// unlike the HTTP/1.1 path's count, it counts bodies only.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (the proxy's flushes) reach the
// connection's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// startH2 begins the access log entry of a request of the HTTP/2 side.
func (e *accessEntry) startH2(app string, req *http.Request, host []byte, rid string) {
	ip, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		ip = req.RemoteAddr
	}
	*e = accessEntry{app: app}
	e.putString(&e.method, req.Method, 16)
	e.putString(&e.fwd, ip, 46)
	e.put(&e.host, host, 100)
	e.putString(&e.path, req.RequestURI, 128)
	e.putString(&e.rid, rid, 200)
}

// putString is put for a string.
func (e *accessEntry) putString(s *span, v string, max int) {
	if len(v) > max {
		v = v[:max]
	}
	s.off = e.used
	s.n = copy(e.text[e.used:], v)
	e.used += s.n
}
