// Package router is the router role: an HTTP reverse proxy that sends each
// request to a healthy web instance of the app its Host names.
//
// The proxy is written for the job rather than built on net/http: each
// client connection is served by one goroutine that reads a request head
// into a buffer of its own, checks it strictly (http1.go), picks a
// backend, writes the rewritten head and streams the body to a pooled
// keep-alive connection (pool.go), and streams the response back
// (proxy.go). A request costs no lookups under a lock and few
// allocations.
//
// Routing (table.go): a host resolves to an app by exact name (custom
// domains and APP.DOMAIN), then by wildcard suffix. The app's backends are
// its web instances reported up, of the current release when any of
// those is up, else of any release (so that a switch of releases never
// leaves a gap while the watches catch up). A request goes to the less
// loaded of two backends taken at random; a backend that refuses a
// connection is skipped at once and for a while, and the request tried
// on another, which is safe because not a byte of it was sent. A request
// without a body whose connection fails before any answer is tried again
// on a fresh connection only if its method is idempotent.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/http2"

	"github.com/skiff-paas/skiff/internal/image"
	"github.com/skiff-paas/skiff/internal/netx"
	"github.com/skiff-paas/skiff/internal/skiff"
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
	// TLSAddr is the address to serve HTTPS on (empty: none);
	// TLSListener, when set, is used instead.
	TLSAddr     string
	TLSListener net.Listener
	// ACME, when set, gets certificates for custom domains without one
	// (needs TLS).
	ACME *ACME
	// AccessLog writes a line per request into the app's logs (source
	// router).
	AccessLog bool
	// ShutdownTimeout bounds how long requests under way may take to
	// finish at shutdown (default 10 s).
	ShutdownTimeout time.Duration
	// DrainTimeout bounds how long requests under way on a retired
	// backend (an instance stopped or replaced) may take to finish
	// (default 30 s); their connections are closed after it.
	DrainTimeout time.Duration
	// Images, when set, is the local image cache the router serves
	// static files and error pages from (images are fetched from the
	// bus into it). Without it, every request goes to the app.
	Images *image.Cache
	// Node names this router in the samples of its apps' metrics that it
	// publishes every SampleInterval (sample.go); empty: it publishes
	// none.
	Node string
	// SampleInterval is how often samples are published (default
	// skiff.SampleInterval; tests shorten it).
	SampleInterval time.Duration
	Logger         *slog.Logger
}

// Router is the router role.
type Router struct {
	cfg      Config
	st       *store.Store
	log      *slog.Logger
	table    atomic.Pointer[table]
	ready    atomic.Bool
	listener net.Listener
	port     string // the listener's, for X-Forwarded-Port

	tlsListener net.Listener // nil without TLS
	tlsPort     string
	certs       atomic.Pointer[certTable]
	h2          *http2.Server
	h2Base      *http.Server
	h2conns     map[net.Conn]struct{} // guarded by mu
	acme        *autocert.Manager     // nil without ACME

	access        chan accessEntry // nil without an access log
	accessDropped atomic.Int64

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*clientConn]struct{} // guarded by mu
	served  sync.WaitGroup           // connections being served
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
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = skiff.SampleInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{cfg: cfg, st: st, log: cfg.Logger.With("role", "router"), conns: map[*clientConn]struct{}{},
		h2conns: map[net.Conn]struct{}{}}
	r.certs.Store(&certTable{})
	r.table.Store(&table{exact: newHostMap(nil)})
	if cfg.AccessLog {
		r.access = make(chan accessEntry, accessQueue)
	}
	r.listener = cfg.Listener
	if r.listener == nil {
		l, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("router: listen on %s: %w", cfg.Addr, err)
		}
		r.listener = l
	}
	_, r.port, _ = net.SplitHostPort(r.listener.Addr().String())
	r.tlsListener = cfg.TLSListener
	if r.tlsListener == nil && cfg.TLSAddr != "" {
		l, err := net.Listen("tcp", cfg.TLSAddr)
		if err != nil {
			r.listener.Close()
			return nil, fmt.Errorf("router: listen on %s: %w", cfg.TLSAddr, err)
		}
		r.tlsListener = l
	}
	if r.tlsListener != nil {
		_, r.tlsPort, _ = net.SplitHostPort(r.tlsListener.Addr().String())
		r.newH2()
		if cfg.ACME != nil {
			r.newACME(cfg.ACME)
		}
	}
	return r, nil
}

// Addr is the address the router listens on.
func (r *Router) Addr() string { return r.listener.Addr().String() }

// TLSAddr is the address the router serves HTTPS on, or "".
func (r *Router) TLSAddr() string {
	if r.tlsListener == nil {
		return ""
	}
	return r.tlsListener.Addr().String()
}

// Close releases the listeners of a router that will not Run.
func (r *Router) Close() error {
	if r.tlsListener != nil {
		r.tlsListener.Close()
	}
	return r.listener.Close()
}

// Ready reports whether the router serves with a complete routing table.
func (r *Router) Ready() bool { return r.ready.Load() }

// Run serves until ctx ends, then lets requests under way finish.
func (r *Router) Run(ctx context.Context) error {
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
	if r.access != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.writeAccessLog(ctx)
		}()
	}
	// The last sample is taken once the requests under way have ended.
	drained := make(chan struct{})
	defer close(drained) // before wg.Wait
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.publishSamples(ctx, drained)
	}()
	served := make(chan error, 2)
	go func() { served <- r.accept() }()
	if r.tlsListener != nil {
		go func() {
			if err := r.acceptTLS(); err != nil {
				served <- err
			}
		}()
	}
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
	r.shutdown()
	return nil
}

// accept serves every connection the listener takes, until it is closed.
func (r *Router) accept() error {
	var delay time.Duration
	for {
		c, err := r.listener.Accept()
		if err != nil {
			if r.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors, or the like: wait and go on.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				r.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		go r.serveConn(netx.Raw(c), false)
	}
}

// track adds or removes a connection from those being served; it refuses
// new ones once the router is shutting down.
func (r *Router) track(cc *clientConn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		if r.closing.Load() {
			return false
		}
		r.conns[cc] = struct{}{}
		r.served.Add(1)
		return true
	}
	delete(r.conns, cc)
	r.served.Done()
	return true
}

// shutdown stops accepting, ends idle connections at once and lets the
// requests under way finish, for at most ShutdownTimeout.
func (r *Router) shutdown() {
	r.mu.Lock()
	r.closing.Store(true)
	r.mu.Unlock()
	r.listener.Close()
	if r.tlsListener != nil {
		r.tlsListener.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	go r.shutdownH2(sctx)
	done := make(chan struct{})
	go func() { r.served.Wait(); close(done) }()
	deadline := time.Now().Add(r.cfg.ShutdownTimeout)
	for {
		r.mu.Lock()
		for cc := range r.conns {
			if !cc.active.Load() {
				// Waiting for a request: wake it to see the router closing.
				cc.c.SetReadDeadline(time.Now())
			}
		}
		r.mu.Unlock()
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			for cc := range r.conns {
				cc.c.Close()
			}
			for c := range r.h2conns {
				c.Close()
			}
			r.mu.Unlock()
			<-done
			return
		}
	}
}
