package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The process's metrics are those of Prometheus's default registry:
// the Go runtime's and the process's, and each role's own, registered by
// its package (skiff_router_*, skiff_scheduler_*, …), plus the bus
// node's (skiff_bus_*). The API serves them to admins at /metrics; the
// exporter serves them at --metrics-addr, for nodes without the API and
// for a Prometheus that scrapes every node.

// exporter serves the registry at /metrics, without a token: it is
// meant for a loopback or private address.
type exporter struct {
	ln    net.Listener
	ready atomic.Bool
}

// newExporter listens on addr at once, so that a port in use stops the
// server at its start.
func newExporter(addr string) (*exporter, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: listen on %s: %w", addr, err)
	}
	return &exporter{ln: ln}, nil
}

// Addr is where the exporter listens.
func (x *exporter) Addr() string { return x.ln.Addr().String() }

// Ready reports whether it serves.
func (x *exporter) Ready() bool { return x.ready.Load() }

// Close releases the listener of an exporter that never ran.
func (x *exporter) Close() error { return x.ln.Close() }

// Run serves until ctx ends.
func (x *exporter) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(x.ln) }()
	x.ready.Store(true)
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("metrics exporter: %w", err)
	}
	x.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics exporter: %w", err)
	}
	return nil
}

// registerCollector adds c to the registry and returns what removes it.
// Where one of its kind is registered already (two servers in one test
// process), c is left out.
func registerCollector(c prometheus.Collector) (unregister func()) {
	if err := prometheus.Register(c); err != nil {
		return func() {}
	}
	return func() { prometheus.Unregister(c) }
}
