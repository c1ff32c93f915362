package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Timeouts of client connections (variables for the tests).
var (
	headTimeout = 30 * time.Second  // to send a request's head once it has begun
	keepIdle    = 120 * time.Second // between requests on one connection
)

// clientConn is a connection from a client, served one request at a time.
type clientConn struct {
	r      *Router
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	req    head
	resp   head
	buf    []byte
	ip     []byte // the client's address, for X-Forwarded-For
	active atomic.Bool
	tried  []*backend
	secure bool // the connection is over TLS
	// setCookie is the backend a sticky session's cookie must now name.
	setCookie *backend
	hostLC    [256]byte
	scratch   [64]byte // for numbers being written
	out       countingConn
	entry     accessEntry // the current request's access log entry
	// fwdErr is why the last forward asked for a retry.
	fwdErr error
	// deadline is the read deadline set on c (zero: none).
	deadline time.Time
	// began is when the current request was routed: X-Request-Start.
	began time.Time
}

// countingConn counts the bytes written to a client, for the access log.
type countingConn struct {
	net.Conn
	n int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n += int64(n)
	return n, err
}

var clientConns = sync.Pool{New: func() any {
	return &clientConn{br: bufio.NewReaderSize(nil, bufSize), bw: bufio.NewWriterSize(nil, 4<<10), buf: make([]byte, 32<<10)}
}}

// serveConn serves the requests of a client connection (over TLS when
// secure) until it closes, fails or the router shuts down.
func (r *Router) serveConn(c net.Conn, secure bool) {
	cc := clientConns.Get().(*clientConn)
	cc.r, cc.c, cc.secure = r, c, secure
	cc.out.Conn = c
	cc.br.Reset(c)
	cc.bw.Reset(&cc.out)
	cc.ip = cc.ip[:0]
	cc.deadline = time.Time{}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cc.ip = append(cc.ip, a.IP.String()...)
	}
	if !r.track(cc, true) {
		c.Close()
		return
	}
	defer func() {
		r.track(cc, false)
		c.Close()
		cc.r, cc.c, cc.out.Conn = nil, nil, nil
		cc.br.Reset(nil)
		cc.bw.Reset(nil)
		clientConns.Put(cc)
	}()
	for {
		if cc.br.Buffered() == 0 {
			cc.awaitRequest()
		}
		if _, err := cc.br.Peek(1); err != nil {
			return // closed, idle too long, or the router is shutting down
		}
		cc.active.Store(true)
		if !headBuffered(cc.br) {
			cc.setReadDeadline(time.Now().Add(headTimeout))
		}
		err := cc.req.parseRequest(cc.br)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				cc.reply(he.status, he.msg, true)
			}
			return
		}
		keep := cc.proxy() && !r.closing.Load()
		cc.active.Store(false)
		if !keep {
			return
		}
	}
}

// Read deadlines of a client connection. Setting one costs a timer
// change in the runtime, so a request does not set any in the usual case:
// the idle deadline is moved forward at most once a second (a 120th of
// keepIdle, so a connection may be closed that much early), and the head
// timeout is set only when the head is not all buffered already. Reads
// other than the head's (bodies, tunnels) clear the deadline first
// (readsBody).

// awaitRequest sets the deadline for the next request to begin, unless
// the one set is within a 120th of keepIdle of it.
func (cc *clientConn) awaitRequest() {
	now := time.Now()
	if cc.deadline.IsZero() || cc.deadline.Sub(now) < keepIdle-keepIdle/120 {
		cc.setReadDeadline(now.Add(keepIdle))
	}
}

// readsBody clears the read deadline before the body of a request, or a
// tunnel, is read from the client: they may take as long as they take.
// Always, not only when one was set here: a shutdown may have set one to
// wake the connection as it began this request.
func (cc *clientConn) readsBody() { cc.setReadDeadline(time.Time{}) }

func (cc *clientConn) setReadDeadline(t time.Time) {
	cc.deadline = t
	cc.c.SetReadDeadline(t)
}

// headBuffered reports whether br holds a whole request head already
// (after any empty lines before it), so that reading it cannot block.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	i := bytes.Index(b, []byte("\n\r\n"))
	if i < 0 {
		i = bytes.Index(b, []byte("\n\n"))
	}
	return i >= 0
}

// reply answers the current request with a plain-text page of the
// router's own, closing the connection after it if close is set.
func (cc *clientConn) reply(status int, body string, close bool) {
	cc.replyWith(status, "text/plain; charset=utf-8", body, close)
}

// replyPage answers with the app's page p in place of the router's own
// text when it has one.
func (cc *clientConn) replyPage(status int, p *page, text string, close bool) {
	if p == nil {
		cc.reply(status, text, close)
		return
	}
	cc.replyWith(status, p.ctype, p.body, close)
}

func (cc *clientConn) replyWith(status int, ctype, body string, close bool) {
	cc.entry.status = status
	w := cc.bw
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(cc.buf[:0], int64(status), 10))
	w.WriteString(" ")
	w.WriteString(statusText(status))
	w.WriteString("\r\nCache-Control: no-store\r\nContent-Type: ")
	w.WriteString(ctype)
	w.WriteString("\r\nContent-Length: ")
	w.Write(strconv.AppendInt(cc.buf[:0], int64(len(body)), 10))
	if status == 503 {
		w.WriteString("\r\nRetry-After: 5")
	}
	if close {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	if !equalFold(cc.req.method, "head") {
		w.WriteString(body)
	}
	w.Flush()
}

func statusText(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 431:
		return "Request Header Fields Too Large"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Error"
}

// hasBody reports whether the request has a body to read.
func (h *head) hasBody() bool { return h.chunked || h.contentLength > 0 }

// proxy forwards the current request and its response; it reports whether
// the connection may serve another request.
func (cc *clientConn) proxy() bool {
	req := &cc.req
	host := cc.normalizeHost(req.host)
	e := cc.r.table.Load().lookup(host)
	// A request whose body is not read cannot be followed by another.
	keep := !req.close && !req.hasBody()
	if e == nil {
		cc.reply(404, "No app is deployed at "+string(host)+".\n", !keep)
		return keep
	}
	cc.startEntry(e.name, host)
	began, sent := time.Now(), cc.out.n
	cc.began = began
	defer func() {
		cc.entry.bytes = cc.out.n - sent
		e.metrics.observe(cc.entry.status, time.Since(began), cc.entry.bytes)
		cc.r.logAccess(&cc.entry)
	}()
	settings := e.settings.Load()
	static := e.static.Load()
	if settings.maintenance {
		cc.replyPage(503, static.pageFor(true), "App "+e.name+" is down for maintenance. Please try again later.\n", !keep)
		return keep
	}
	if settings.HTTPSRedirect && !cc.secure && cc.r.tlsPort != "" {
		cc.redirectHTTPS(host, !keep)
		return keep
	}
	rt := e.route.Load()
	if len(rt.backends) == 0 {
		cc.replyPage(503, static.pageFor(false), "App "+e.name+" has no running web process. See skiff ps -a "+e.name+".\n", !keep)
		return keep
	}
	if static.serves() && !req.hasBody() {
		if served, again := cc.serveStatic(static, keep); served {
			return again
		}
	}
	if req.expect100 && req.hasBody() {
		// Answered here, not by the backend: the body is then on its way
		// while a backend is chosen.
		cc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if cc.bw.Flush() != nil {
			return false
		}
	}

	cc.tried = cc.tried[:0]
	now := began.UnixNano()
	// Connect and service times are for the access log only: without
	// one, a request reads the clock twice (here and at its end).
	timed := cc.r.access != nil
	var stuck *backend // the backend the client's sticky cookie names
	if settings.Sticky {
		stuck = rt.byID(req.cookie(skiff.StickyCookie), now)
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A retry takes the route as it is now: the backend that
			// failed may have gone with its node meanwhile.
			rt = e.route.Load()
		}
		b := rt.choose(settings, stuck, attempt, now, cc.tried)
		cc.setCookie = nil
		if settings.Sticky && b != stuck && b != nil {
			cc.setCookie = b
		}
		if b == nil || attempt > len(rt.backends)+2 {
			cc.replyPage(502, static.pageFor(false), "App "+e.name+" did not answer the request.\n", !keep)
			return keep
		}
		var t time.Time
		if timed {
			t = time.Now()
		}
		bc, reused, err := b.conn()
		if timed {
			cc.entry.connect += time.Since(t)
		}
		if err != nil {
			// Refused or unreachable: nothing was sent; the backend is
			// skipped for a while, and another one tried.
			b.markDown(now)
			cc.tried = append(cc.tried, b)
			continue
		}
		b.inflight.Add(1)
		cc.entry.dyno = b.name
		if timed {
			t = time.Now()
		}
		result := cc.forward(bc)
		if timed {
			cc.entry.service += time.Since(t)
		}
		b.inflight.Add(-1)
		switch result {
		case forwarded:
			if bc.br.Buffered() > 0 {
				// The backend sent more than its response: the next
				// request on this connection would read it as its answer.
				b.pool.drop(bc)
			} else {
				b.pool.put(bc)
			}
			return !req.close
		case forwardedClose:
			b.pool.drop(bc)
			return !req.close
		case retry:
			// The connection failed before any answer and nothing of the
			// request's body was read: another connection may take it,
			// unless it was cut for taking longer than the drain.
			b.pool.drop(bc)
			if b.pool.cutLate() {
				cc.replyPage(502, static.pageFor(false), "App "+e.name+" did not answer the request.\n", true)
				return false
			}
			if !reused || errors.Is(cc.fwdErr, syscall.ETIMEDOUT) {
				// A fresh connection failing, or one whose backend
				// stopped acknowledging (its machine died or was cut
				// off): not that backend again.
				if reused {
					b.markDown(now)
				}
				cc.tried = append(cc.tried, b)
			}
			continue
		case failedBeforeAnswer:
			b.pool.drop(bc)
			cc.replyPage(502, static.pageFor(false), "App "+e.name+" did not answer the request.\n", true)
			return false
		default: // failedAfterAnswer, or the client went away
			b.pool.drop(bc)
			return false
		}
	}
}

type outcome int

const (
	forwarded          outcome = iota // done; the backend connection may be reused
	forwardedClose                    // done; the backend connection must close
	retry                             // nothing was answered nor read: try again
	failedBeforeAnswer                // the client may still get an error page
	failedAfterAnswer                 // the client's connection must close
	upgraded                          // the connection was tunnelled and is over
)

// idempotent methods may be sent again after a connection failure.
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// forward sends the request to bc and its response to the client.
func (cc *clientConn) forward(bc *backendConn) outcome {
	req, resp := &cc.req, &cc.resp
	cc.writeRequestHead(bc.bw)
	if req.hasBody() {
		cc.readsBody()
	}
	var err error
	switch {
	case req.chunked:
		err = copyChunked(bc.bw, cc.br, cc.buf, false, nil)
	case req.contentLength > 0:
		err = copyN(bc.bw, cc.br, req.contentLength, cc.buf, nil)
	}
	if err == nil {
		err = bc.bw.Flush()
	}
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			cc.reply(he.status, he.msg, true)
			return failedAfterAnswer
		}
		if !req.hasBody() {
			cc.fwdErr = err
			return retry
		}
		return failedBeforeAnswer
	}
	for {
		err = resp.parseResponse(bc.br)
		if err != nil {
			if !req.hasBody() && idempotent(req.method) && isConnFailure(err) {
				cc.fwdErr = err
				return retry
			}
			return failedBeforeAnswer
		}
		if resp.status == 101 && req.upgrade {
			cc.tunnel(bc)
			return upgraded
		}
		if resp.status >= 100 && resp.status < 200 {
			continue // 100 Continue was answered already; others are dropped
		}
		break
	}
	return cc.writeResponse(bc)
}

// isConnFailure reports whether err is a connection ending or failing,
// rather than a malformed answer.
func isConnFailure(err error) bool {
	var he *httpError
	return !errors.As(err, &he)
}

// hop-by-hop fields are the connection's own: not forwarded.
func hopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "upgrade") || equalFold(name, "trailer")
	case 10:
		return equalFold(name, "connection") || equalFold(name, "keep-alive")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	}
	return false
}

// namedInConnection reports whether name is listed in the head's
// Connection fields (so is hop-by-hop too).
func (h *head) namedInConnection(name []byte) bool {
	for _, f := range h.fields {
		if !equalFold(f.name, "connection") {
			continue
		}
		found := false
		eachToken(f.value, func(tok []byte) {
			if !found && len(tok) == len(name) && equalFoldBytes(tok, name) {
				found = true
			}
		})
		if found {
			return true
		}
	}
	return false
}

func equalFoldBytes(a, b []byte) bool {
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// writeRequestHead writes the request's head for a backend: its fields
// without the hop-by-hop ones and those the router sets, then the
// router's (X-Forwarded-*, X-Request-Id, X-Request-Start) and the framing.
func (cc *clientConn) writeRequestHead(w *bufio.Writer) {
	req := &cc.req
	w.Write(req.method)
	w.WriteByte(' ')
	w.Write(req.target)
	w.WriteString(" HTTP/1.1\r\n")
	var xff, rid []byte
	for _, f := range req.fields {
		n := f.name
		if hopByHop(n) || req.connOther && req.namedInConnection(n) {
			if !(req.upgrade && equalFold(n, "upgrade")) {
				continue
			}
		}
		switch {
		case equalFold(n, "x-forwarded-for"):
			if len(xff) == 0 {
				xff = f.value
			} else {
				// Several fields: joined, in a scratch slice of the buffer.
				xff = append(append(append(cc.buf[:0:0], xff...), ", "...), f.value...)
			}
			continue
		case equalFold(n, "x-request-id"):
			rid = f.value
			continue
		case equalFold(n, "expect"), equalFold(n, "x-forwarded-proto"), equalFold(n, "x-forwarded-host"),
			equalFold(n, "x-forwarded-port"), equalFold(n, "x-request-start"):
			continue
		}
		w.Write(n)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	if len(xff) > 0 {
		w.Write(xff)
		w.WriteString(", ")
	}
	w.Write(cc.ip)
	if cc.secure {
		w.WriteString("\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: ")
		w.WriteString(cc.r.tlsPort)
	} else {
		w.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ")
		w.WriteString(cc.r.port)
	}
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(req.host)
	w.WriteString("\r\nX-Request-Id: ")
	// The same id on every attempt of the request.
	if cc.entry.rid.n == 0 {
		if !validRequestID(rid) {
			rid = newRequestID(cc.scratch[:0])
		}
		cc.entry.put(&cc.entry.rid, rid, 200)
	}
	w.Write(cc.entry.get(cc.entry.rid))
	w.WriteString("\r\nX-Request-Start: t=")
	w.Write(strconv.AppendInt(cc.scratch[:0], cc.began.UnixMilli(), 10))
	w.WriteString("\r\n")
	if req.upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	if req.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
}

// validRequestID reports whether a client's X-Request-Id may be kept:
// 20 to 200 characters of letters, digits and +/=_.-
func validRequestID(id []byte) bool {
	if len(id) < 20 || len(id) > 200 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' ||
			c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// newRequestID appends a random version 4 UUID to b.
func newRequestID(b []byte) []byte {
	const hexDigits = "0123456789abcdef"
	x, y := rand.Uint64(), rand.Uint64()
	x = x&^(0xf<<12) | 0x4<<12 // version 4
	y = y&^(0x3<<62) | 0x2<<62 // variant 10
	for i := 0; i < 16; i++ {
		var v byte
		if i < 8 {
			v = byte(x >> (56 - 8*i))
		} else {
			v = byte(y >> (56 - 8*(i-8)))
		}
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[v>>4], hexDigits[v&0xf])
	}
	return b
}

// writeResponse sends the backend's response to the client.
func (cc *clientConn) writeResponse(bc *backendConn) outcome {
	req, resp := &cc.req, &cc.resp
	w := cc.bw
	bodyless := equalFold(req.method, "head") || resp.status == 204 || resp.status == 304
	// A body delimited by the backend closing its connection can only be
	// passed on the same way to the client.
	untilClose := !bodyless && !resp.chunked && resp.contentLength < 0
	dechunk := resp.chunked && req.minor == 0 // an HTTP/1.0 client cannot read chunks
	closeClient := req.close || untilClose || dechunk

	cc.entry.status = resp.status
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(cc.buf[:0], int64(resp.status), 10))
	w.WriteByte(' ')
	w.Write(resp.reason)
	w.WriteString("\r\n")
	for _, f := range resp.fields {
		if hopByHop(f.name) || resp.connOther && resp.namedInConnection(f.name) {
			continue
		}
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	if resp.chunked && !bodyless && !dechunk {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if b := cc.setCookie; b != nil {
		w.WriteString("Set-Cookie: " + skiff.StickyCookie + "=")
		w.WriteString(b.id)
		w.WriteString("; Path=/; HttpOnly; SameSite=Lax\r\n")
	}
	if closeClient {
		w.WriteString("Connection: close\r\n")
	} else if req.minor == 0 {
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")

	flush := w.Flush
	var err error
	switch {
	case bodyless:
	case resp.chunked:
		err = copyChunked(w, bc.br, cc.buf, dechunk, flush)
	case resp.contentLength >= 0:
		err = copyN(w, bc.br, resp.contentLength, cc.buf, flush)
	default:
		err = copyUntilEOF(w, bc.br, cc.buf, flush)
	}
	if err == nil {
		err = w.Flush()
	}
	switch {
	case err != nil:
		return failedAfterAnswer
	case closeClient:
		req.close = true
		return forwardedClose
	case resp.close:
		return forwardedClose
	}
	return forwarded
}

// copyUntilEOF copies br to w until br's connection ends.
func copyUntilEOF(w *bufio.Writer, br *bufio.Reader, buf []byte, flush func() error) error {
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if br.Buffered() == 0 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// tunnel passes a switched protocol (a WebSocket) both ways until either
// side ends it. Its backend connection stays busy meanwhile, so a retired
// backend's tunnels end with its drain timeout.
func (cc *clientConn) tunnel(bc *backendConn) {
	cc.entry.status = 101
	w := cc.bw
	resp := &cc.resp
	w.WriteString("HTTP/1.1 101 ")
	w.Write(resp.reason)
	w.WriteString("\r\n")
	for _, f := range resp.fields {
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if w.Flush() != nil {
		return
	}
	cc.req.close = true
	cc.readsBody()
	done := make(chan struct{})
	go func() {
		io.Copy(bc.Conn, cc.br) // what the client already sent comes first
		closeWrite(bc.Conn)
		close(done)
	}()
	if _, err := io.Copy(cc.c, bc.br); err != nil {
		// The backend's connection failed, or was closed at the end of
		// its drain (pool.go): the client's side has nowhere to go.
		cc.c.SetReadDeadline(time.Now())
	}
	closeWrite(cc.c)
	<-done
}

// closeWrite shuts down the writing side of c, if it has one of its own.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// redirectHTTPS answers with a redirect to the same URL over HTTPS.
func (cc *clientConn) redirectHTTPS(host []byte, close bool) {
	cc.entry.status = 308
	w := cc.bw
	w.WriteString("HTTP/1.1 308 Permanent Redirect\r\nLocation: https://")
	w.Write(host)
	if cc.r.tlsPort != "443" {
		w.WriteByte(':')
		w.WriteString(cc.r.tlsPort)
	}
	w.Write(cc.req.target)
	w.WriteString("\r\nContent-Length: 0\r\n")
	if close {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	w.Flush()
}

// cookie returns the value of the request's cookie name, or nil.
func (h *head) cookie(name string) []byte {
	for _, f := range h.fields {
		if !equalFold(f.name, "cookie") {
			continue
		}
		v := f.value
		for len(v) > 0 {
			var pair []byte
			if i := bytes.IndexByte(v, ';'); i >= 0 {
				pair, v = v[:i], v[i+1:]
			} else {
				pair, v = v, nil
			}
			pair = trimOWS(pair)
			if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
				return pair[len(name)+1:]
			}
		}
	}
	return nil
}

// startEntry begins the access log entry of the current request.
func (cc *clientConn) startEntry(app string, host []byte) {
	e := &cc.entry
	e.app, e.dyno, e.status, e.bytes, e.connect, e.service, e.used = app, "", 0, 0, 0, 0, 0
	e.rid = span{}
	if cc.r.access == nil {
		return // the texts are for the access log only
	}
	e.put(&e.method, cc.req.method, 16)
	e.put(&e.fwd, cc.ip, 46)
	e.put(&e.host, host, 100)
	e.put(&e.path, cc.req.target, 128)
}

// normalizeHost lower-cases host and strips its port and a trailing dot,
// into the connection's scratch array.
func (cc *clientConn) normalizeHost(host []byte) []byte { return normalizeInto(cc.hostLC[:], host) }

// lastColon finds the colon before a port, not inside an IPv6 literal.
func lastColon(host []byte) int {
	for i := len(host) - 1; i >= 0; i-- {
		switch host[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}
