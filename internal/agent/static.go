package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/static"
)

// startStatic serves the files of a static site's image at addr from the
// agent itself, for an instance whose command is skiff.StaticCommand: no
// app process runs. The server stands in for the process, so that the
// supervisor probes, reports, drains, stops and restarts it like any other
// web instance. Each request is logged to stdout as
// "GET /path 200 1234B 3ms"; the server's own errors go to stderr.
func startStatic(root, addr string, stdout, stderr io.WriteCloser) (Process, error) {
	h, err := static.Handler(root)
	if err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("serve static files: %w", err)
	}
	return startServer(h, addr, stdout, stderr)
}

// startServer serves h at addr as a Process.
func startServer(h http.Handler, addr string, stdout, stderr io.WriteCloser) (Process, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("serve static files: %w", err)
	}
	p := &staticProcess{
		srv: &http.Server{
			Handler:           accessLog(h, stdout),
			ErrorLog:          log.New(stderr, "", 0),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		term: make(chan struct{}),
		kill: make(chan struct{}),
		done: make(chan struct{}),
	}
	go func() {
		p.reason = p.serve(l)
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	return p, nil
}

// staticProcess is an in-process HTTP server seen as a Process. SIGTERM
// shuts it down gracefully: it stops accepting and waits for the requests
// under way. SIGKILL closes it and every connection at once.
type staticProcess struct {
	srv                *http.Server
	term, kill         chan struct{} // closed by Signal, once each
	termOnce, killOnce sync.Once
	done               chan struct{}
	reason             string // set before done is closed
}

var _ Process = (*staticProcess)(nil)

// PID is 0: there is no process of its own.
func (p *staticProcess) PID() int              { return 0 }
func (p *staticProcess) Done() <-chan struct{} { return p.done }
func (p *staticProcess) ExitReason() string    { <-p.done; return p.reason }

// ExitCode is 0 for a server that stopped when asked to, 1 for one that
// failed.
func (p *staticProcess) ExitCode() int {
	if strings.HasPrefix(p.ExitReason(), "failed") {
		return 1
	}
	return 0
}

func (p *staticProcess) Signal(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGKILL:
		p.killOnce.Do(func() { close(p.kill) })
	case syscall.SIGTERM, syscall.SIGINT:
		p.termOnce.Do(func() { close(p.term) })
	}
	return nil
}

// serve runs the server until it is signalled or fails, and returns the
// exit reason.
func (p *staticProcess) serve(l net.Listener) string {
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(l) }()
	select {
	case err := <-served:
		p.srv.Close()
		return fmt.Sprintf("failed: %v", err)
	case <-p.kill:
	case <-p.term:
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.kill:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := p.srv.Shutdown(ctx)
		cancel()
		if err == nil {
			<-served
			return "stopped"
		}
	}
	p.srv.Close()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Sprintf("failed: %v", err)
	}
	return "stopped"
}

// accessLog logs one line per request to w when the request is done.
func accessLog(h http.Handler, w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggingWriter{ResponseWriter: rw}
		defer func() {
			// The path without its query, which may carry tokens.
			fmt.Fprintf(w, "%s %s %d %dB %dms\n", r.Method, r.URL.Path, lw.status(), lw.n, time.Since(start).Milliseconds())
		}()
		h.ServeHTTP(lw, r)
	})
}

// loggingWriter records a response's status and body size.
type loggingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *loggingWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *loggingWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
