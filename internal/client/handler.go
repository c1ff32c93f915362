package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// NewHandler returns a client of the API whose handler is h, in this
// process: each request is served by h as if it had come over a
// connection (its own goroutine, the headers and the streamed body as h
// writes them, a context that ends when the answer's body is closed), so
// that h checks it exactly as it checks the CLI's. The web dashboard
// acts through it with the token of the user logged in.
func NewHandler(h http.Handler, token string) *Client {
	c := New("http://skiff", token)
	c.UserAgent = "skiff-dashboard"
	c.http = &http.Client{Transport: handlerTransport{h}}
	return c
}

// handlerTransport is an http.RoundTripper that serves requests with a
// handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	in := req.Clone(ctx)
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0"
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	if in.Host == "" {
		in.Host = req.URL.Host
	}
	if in.Body == nil {
		in.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &pipeResponse{header: http.Header{}, body: pw, head: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer in.Body.Close()
		defer func() {
			// A panic in a handler ends its answer, as net/http's server
			// does, instead of the process.
			if p := recover(); p != nil {
				w.WriteHeader(http.StatusInternalServerError)
				pw.CloseWithError(fmt.Errorf("the API's handler failed: %v", p))
				return
			}
			w.WriteHeader(http.StatusOK)
			pw.Close()
		}()
		t.h.ServeHTTP(w, in)
	}()
	select {
	case <-w.head:
	case <-ctx.Done():
		pr.Close()
		<-done
		cancel()
		return nil, ctx.Err()
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)),
		StatusCode: w.code,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		Body:          &handlerBody{PipeReader: pr, cancel: cancel, done: done},
		ContentLength: -1,
		Request:       req,
	}, nil
}

// pipeResponse is the http.ResponseWriter of a request served in
// process: the head once written, the body through a pipe that the
// client reads as the handler writes (so Flush has nothing to do).
type pipeResponse struct {
	header http.Header
	body   *io.PipeWriter
	once   sync.Once
	head   chan struct{} // closed once code and sent are set
	code   int
	sent   http.Header // the header as it was when the head was written
}

func (w *pipeResponse) Header() http.Header { return w.header }

func (w *pipeResponse) WriteHeader(code int) {
	if code < 200 {
		return // an informational answer: the final one follows
	}
	w.once.Do(func() {
		w.code, w.sent = code, w.header.Clone()
		close(w.head)
	})
}

func (w *pipeResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *pipeResponse) Flush() {}

// handlerBody is an answer's body: closing it ends the request's context
// and waits for the handler to return.
type handlerBody struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *handlerBody) Close() error {
	err := b.PipeReader.Close()
	b.cancel()
	<-b.done
	if errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	return err
}
