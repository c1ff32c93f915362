// Package router is the router role: an HTTP reverse proxy that sends each
// request to a healthy web instance of the app its Host names.
//
// The routing table is immutable and sits behind an atomic pointer: the
// request path loads it once and never locks. One goroutine owns the view
// of the state (apps, instances, custom domains), follows it through bus
// watches, and swaps in a new table after every batch of changes, so routes
// change without reloading or restarting anything.
//
// A host resolves to an app through its custom domains, then through
// APP.DOMAIN. The app's backends are its web instances reported up, of the
// current release when any of those is up, else of any release (so that a
// switch of releases never leaves a gap while the watches catch up).
// Backends are taken round robin; a backend that refuses the connection is
// skipped for the next one, which is safe because not a byte of the request
// was sent.
package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-paas/skiff/internal/store"
)

// Config configures a router.
type Config struct {
	// Addr is the address to listen on, e.g. ":80".
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Domain is the platform domain: apps answer at NAME.Domain. Required.
	Domain string
	// ShutdownTimeout bounds how long requests under way may take to
	// finish at shutdown (default 10 s).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Router is the router role.
type Router struct {
	cfg       Config
	st        *store.Store
	log       *slog.Logger
	table     atomic.Pointer[table]
	proxy     *httputil.ReverseProxy
	ready     atomic.Bool
	listener  net.Listener
	listenErr error
}

// New validates cfg and opens the router's listener, so that its address
// is known before Run.
func New(cfg Config, st *store.Store) (*Router, error) {
	if cfg.Domain == "" {
		return nil, errors.New("router: Domain is required")
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{cfg: cfg, st: st, log: cfg.Logger.With("role", "router")}
	r.table.Store(&table{hosts: map[string]*route{}})
	r.listener = cfg.Listener
	if r.listener == nil {
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("router: listen on %s: %w", cfg.Addr, err)
		}
		r.listener = l
	}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:      r.rewrite,
		Transport:    &retrying{base: transport},
		ErrorHandler: r.proxyError,
		ErrorLog:     slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		BufferPool:   bufferPool{},
	}
	return r, nil
}

// Addr is the address the router listens on.
func (r *Router) Addr() string { return r.listener.Addr().String() }

// Close releases the listener of a router that will not Run.
func (r *Router) Close() error { return r.listener.Close() }

// Ready reports whether the router serves with a complete routing table.
func (r *Router) Ready() bool { return r.ready.Load() }

// Run serves until ctx ends, then lets requests under way finish.
func (r *Router) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	synced := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.follow(ctx, synced); err != nil && ctx.Err() == nil {
			r.log.Error("routing table stopped following state", "err", err)
			cancel()
		}
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(r.listener) }()
	select {
	case <-synced:
		r.ready.Store(true)
		r.log.Info("routing", "addr", r.Addr(), "domain", r.cfg.Domain)
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("router: %w", err)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("router: %w", err)
	}
	r.ready.Store(false)
	sctx, scancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

type ctxKey struct{}

// ServeHTTP routes one request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host := normalizeHost(req.Host)
	rt := r.table.Load().hosts[host]
	switch {
	case rt == nil:
		plain(w, http.StatusNotFound, fmt.Sprintf("No app is deployed at %s.\n", host))
		return
	case len(rt.backends) == 0:
		w.Header().Set("Retry-After", "5")
		plain(w, http.StatusServiceUnavailable, fmt.Sprintf("App %s has no running web process. See skiff ps -a %s.\n", rt.app, rt.app))
		return
	}
	r.proxy.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), ctxKey{}, rt)))
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// normalizeHost lower-cases host and strips its port and trailing dot.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9+/=_.-]{20,200}$`)

func (r *Router) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "backend" // the retrying transport picks the backend
	pr.Out.Host = pr.In.Host
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
		pr.Out.Header["X-Forwarded-For"] = append([]string(nil), prior...)
	}
	pr.SetXForwarded() // appends the client to X-Forwarded-For; sets -Host and -Proto
	if _, port, err := net.SplitHostPort(r.Addr()); err == nil {
		pr.Out.Header.Set("X-Forwarded-Port", port)
	}
	if id := pr.In.Header.Get("X-Request-Id"); !requestIDRE.MatchString(id) {
		pr.Out.Header.Set("X-Request-Id", newRequestID())
	}
	pr.Out.Header.Set("X-Request-Start", "t="+strconv.FormatInt(time.Now().UnixMilli(), 10))
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // a version 4 UUID
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil {
		return // the client went away
	}
	rt, _ := req.Context().Value(ctxKey{}).(*route)
	app := ""
	if rt != nil {
		app = rt.app
	}
	r.log.Debug("proxy error", "app", app, "err", err)
	plain(w, http.StatusBadGateway, fmt.Sprintf("App %s did not answer the request.\n", app))
}

// retrying sends a request to the route's backends in round-robin order,
// moving on to the next only when the connection was refused or failed to
// open: then the backend has not seen a byte of the request.
type retrying struct{ base http.RoundTripper }

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := req.Context().Value(ctxKey{}).(*route)
	n := uint64(len(rt.backends))
	start := rt.next.Add(1)
	var body *onceBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &onceBody{rc: req.Body}
		defer req.Body.Close()
	}
	var err error
	for i := uint64(0); i < n; i++ {
		b := rt.backends[(start+i)%n]
		out := *req
		u := *req.URL
		u.Host = b.addr
		out.URL = &u
		if body != nil {
			out.Body = body
		}
		var resp *http.Response
		resp, err = t.base.RoundTrip(&out)
		if err == nil {
			return resp, nil
		}
		if !isDialError(err) || (body != nil && body.read) {
			return nil, err
		}
	}
	return nil, err
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// onceBody passes a request body through, remembers whether any of it was
// read, and ignores Close so that a failed attempt does not spoil the body
// for the next.
type onceBody struct {
	rc   io.ReadCloser
	read bool
}

func (b *onceBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read = true
	}
	return n, err
}

func (b *onceBody) Close() error { return nil }

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool lends the proxy its copy buffers.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
