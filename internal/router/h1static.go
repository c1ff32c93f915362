package router

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The HTTP/1.1 path serves an app's static files through the same
// http.Handlers as the HTTP/2 one: h1Writer is an http.ResponseWriter
// over a client connection. This path allocates, unlike proxying, and is
// taken only for apps that have static files.

// serveStatic answers the current request from s if one of its static
// prefixes (or its site) covers it; it reports whether it did, and
// whether the connection may serve another request.
func (cc *clientConn) serveStatic(s *appStatic, keep bool) (served, again bool) {
	req := &cc.req
	u, err := url.ParseRequestURI(string(req.target))
	if err != nil {
		return false, false
	}
	method := string(req.method)
	h, rel := s.handler(method, u.Path)
	if h == nil {
		return false, false
	}
	hr := &http.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: req.minor,
		Header: make(http.Header, len(req.fields)), Host: string(req.host), RequestURI: string(req.target),
		Body: http.NoBody, RemoteAddr: string(cc.ip),
	}
	for _, f := range req.fields {
		if !equalFold(f.name, "host") {
			hr.Header.Add(string(f.name), string(f.value))
		}
	}
	w := &h1Writer{cc: cc, h: http.Header{}, keep: keep}
	began := time.Now()
	if !serveFrom(w, hr, h, rel) {
		return false, false // no such file: the app answers
	}
	err = w.finish()
	cc.entry.dyno = "router"
	cc.entry.status = w.status
	cc.entry.service += time.Since(began)
	return true, err == nil && w.keep
}

// h1Writer writes a handler's response on a client connection.
type h1Writer struct {
	cc      *clientConn
	h       http.Header
	status  int
	keep    bool // the connection may serve another request
	chunked bool
	noBody  bool
}

func (w *h1Writer) Header() http.Header { return w.h }

func (w *h1Writer) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	req := &w.cc.req
	w.noBody = equalFold(req.method, "head") || code == 204 || code == 304
	h := w.h
	h.Del("Transfer-Encoding")
	if !w.noBody && h.Get("Content-Length") == "" {
		if req.minor == 1 {
			w.chunked = true
			h.Set("Transfer-Encoding", "chunked")
		} else {
			w.keep = false // the body ends with the connection
		}
	}
	switch {
	case !w.keep || req.close:
		w.keep = false
		h.Set("Connection", "close")
	case req.minor == 0:
		h.Set("Connection", "keep-alive")
	}
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	bw := w.cc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(w.cc.scratch[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
	h.Write(bw)
	bw.WriteString("\r\n")
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		if w.h.Get("Content-Type") == "" {
			w.h.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	bw := w.cc.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.cc.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// finish ends the response.
func (w *h1Writer) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.cc.bw.WriteString("0\r\n\r\n")
	}
	return w.cc.bw.Flush()
}
