package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// The router speaks HTTP/1.1 itself, on a path written for it: the heads
// of requests and responses are read into a buffer of the connection's,
// parsed in place and checked strictly (RFC 9112), and forwarded field by
// field, so that a request costs few allocations and no two parties can
// disagree on where a message ends.
//
// What is refused, with 400 and a closed connection: a request with both
// Transfer-Encoding and Content-Length, Content-Length headers that differ
// or are not plain digits, a transfer coding other than chunked, a
// Transfer-Encoding in HTTP/1.0, obsolete line folding, whitespace between
// a field name and its colon, control characters in a field, no Host or
// more than one. A head over maxHead bytes or maxFields fields is refused
// with 431.

const (
	maxHead   = 64 << 10
	maxFields = 200
)

// httpError is a refusal of a request: its status and the text shown.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

var (
	errHeadTooLarge = &httpError{431, "Request header fields too large.\n"}
	errBadRequest   = &httpError{400, "Bad request.\n"}
)

func badRequest(msg string) *httpError { return &httpError{400, msg + "\n"} }

// field is one header field: name and value point into the head buffer.
type field struct {
	name, value []byte
}

// head is a parsed request or response head. Its slices point into buf,
// which is reused from message to message.
type head struct {
	buf    []byte
	fields []field

	// Request line.
	method, target []byte
	// Status line.
	status int
	reason []byte

	minor int // HTTP/1.minor

	// Framing, from the fields.
	chunked       bool
	contentLength int64 // -1: none
	// Connection handling, from the fields.
	close     bool // Connection: close (or HTTP/1.0 without keep-alive)
	upgrade   bool // Connection: upgrade with an Upgrade field
	connOther bool // Connection names other fields, hop-by-hop too
	host      []byte
	expect100 bool
}

func (h *head) reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
	h.method, h.target, h.reason, h.host = nil, nil, nil, nil
	h.status, h.minor = 0, 1
	h.chunked, h.contentLength = false, -1
	h.close, h.upgrade, h.expect100, h.connOther = false, false, false, false
}

// readHead reads a head, up to and including its empty line, into h.buf.
// Empty lines before a request line are skipped, as RFC 9112 allows.
func (h *head) readHead(br *bufio.Reader, request bool) error {
	h.reset()
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return errHeadTooLarge
		}
		if err != nil {
			if len(h.buf) == 0 && len(line) == 0 {
				return err // the connection ended between messages
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(h.buf) == 0 && request && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			continue
		}
		if len(h.buf)+len(line) > maxHead {
			return errHeadTooLarge
		}
		h.buf = append(h.buf, line...)
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return nil
		}
	}
}

// lines calls fn with each line of the head, without its line ending; it
// refuses a bare CR.
func (h *head) lines(fn func(line []byte) error) error {
	rest := h.buf
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i]
		rest = rest[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return nil
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			return badRequest("Bare CR in the request head.")
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// parseRequest reads and checks a request head.
func (h *head) parseRequest(br *bufio.Reader) error {
	if err := h.readHead(br, true); err != nil {
		return err
	}
	first := true
	err := h.lines(func(line []byte) error {
		if first {
			first = false
			return h.requestLine(line)
		}
		return h.fieldLine(line)
	})
	if err != nil {
		return err
	}
	return h.requestFraming()
}

func (h *head) requestLine(line []byte) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return badRequest("Malformed request line.")
	}
	h.method = line[:sp]
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return badRequest("Malformed request line.")
	}
	h.target = rest[:sp]
	version := rest[sp+1:]
	for _, c := range h.method {
		if !isToken(c) {
			return badRequest("Malformed request method.")
		}
	}
	for _, c := range h.target {
		if c <= ' ' || c == 0x7f {
			return badRequest("Malformed request target.")
		}
	}
	minor, ok := httpVersion(version)
	if !ok {
		return &httpError{505, "HTTP version not supported: use HTTP/1.1.\n"}
	}
	h.minor = minor
	return nil
}

// httpVersion reads "HTTP/1.0" or "HTTP/1.1".
func httpVersion(v []byte) (minor int, ok bool) {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || v[7] != '0' && v[7] != '1' {
		return 0, false
	}
	return int(v[7] - '0'), true
}

func (h *head) fieldLine(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return badRequest("Obsolete line folding in a header field.")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return badRequest("Malformed header field.")
	}
	name := line[:colon]
	for _, c := range name {
		if !isToken(c) {
			return badRequest("Malformed header field name.")
		}
	}
	value := trimOWS(line[colon+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return badRequest("Control character in a header field.")
		}
	}
	if len(h.fields) >= maxFields {
		return errHeadTooLarge
	}
	h.fields = append(h.fields, field{name, value})
	return nil
}

// requestFraming works out how the request's body is delimited and how
// its connection is to be handled, refusing what could be read two ways.
func (h *head) requestFraming() error {
	if err := h.framing(); err != nil {
		return err
	}
	if h.chunked && h.minor == 0 {
		return badRequest("Transfer-Encoding in an HTTP/1.0 request.")
	}
	hosts := 0
	for _, f := range h.fields {
		if equalFold(f.name, "host") {
			hosts++
			h.host = f.value
		} else if equalFold(f.name, "expect") && equalFold(f.value, "100-continue") {
			h.expect100 = true
		}
	}
	if hosts > 1 || hosts == 0 && h.minor == 1 {
		return badRequest("A request must have one Host header field.")
	}
	if h.contentLength < 0 && !h.chunked {
		h.contentLength = 0 // a request without framing has no body
	}
	return nil
}

// framing reads Transfer-Encoding, Content-Length and Connection.
func (h *head) framing() error {
	var te, cl bool
	keepAlive := false
	for _, f := range h.fields {
		switch {
		case equalFold(f.name, "transfer-encoding"):
			if te || !equalFold(f.value, "chunked") {
				return badRequest("Unsupported Transfer-Encoding: only chunked is accepted.")
			}
			te = true
		case equalFold(f.name, "content-length"):
			n, ok := parseContentLength(f.value)
			if !ok || cl && n != h.contentLength {
				return badRequest("Invalid or conflicting Content-Length.")
			}
			cl, h.contentLength = true, n
		case equalFold(f.name, "connection"):
			eachToken(f.value, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					h.close = true
				case equalFold(tok, "keep-alive"):
					keepAlive = true
				case equalFold(tok, "upgrade"):
					h.upgrade = true
				default:
					h.connOther = true
				}
			})
		}
	}
	if te && cl {
		return badRequest("Both Transfer-Encoding and Content-Length.")
	}
	h.chunked = te
	if h.minor == 0 && !keepAlive {
		h.close = true
	}
	if h.upgrade && !h.has("upgrade") {
		h.upgrade = false
	}
	return nil
}

// parseResponse reads and checks a backend's response head.
func (h *head) parseResponse(br *bufio.Reader) error {
	if err := h.readHead(br, false); err != nil {
		return err
	}
	first := true
	err := h.lines(func(line []byte) error {
		if first {
			first = false
			return h.statusLine(line)
		}
		return h.fieldLine(line)
	})
	if err != nil {
		return err
	}
	return h.framing()
}

func (h *head) statusLine(line []byte) error {
	if len(line) < 12 || line[8] != ' ' {
		return badRequest("Malformed status line.")
	}
	minor, ok := httpVersion(line[:8])
	if !ok {
		return badRequest("Unsupported HTTP version in the response.")
	}
	h.minor = minor
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return badRequest("Malformed status code.")
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return badRequest("Malformed status line.")
		}
		h.reason = line[13:]
	}
	return nil
}

// has reports whether the head has a field named name (lower case).
func (h *head) has(name string) bool {
	for _, f := range h.fields {
		if equalFold(f.name, name) {
			return true
		}
	}
	return false
}

// get returns the value of the first field named name (lower case).
func (h *head) get(name string) []byte {
	for _, f := range h.fields {
		if equalFold(f.name, name) {
			return f.value
		}
	}
	return nil
}

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// eachToken calls fn with each element of a comma-separated list.
func eachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		if tok = trimOWS(tok); len(tok) > 0 {
			fn(tok)
		}
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with lower, which is lower case, ignoring the case
// of ASCII letters in b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isToken reports whether c may appear in a token (RFC 9110, 5.6.2).
func isToken(c byte) bool { return tokenChars[c] }

var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// copyChunked reads a chunked body from br and writes it to w, still
// chunked but in a form of its own (sizes in lower-case hex, no
// extensions; trailers pass through), or, when raw, as the plain bytes
// of its chunks. It refuses malformed sizes and framing. flush, when not
// nil, is called whenever br has nothing more buffered, so that a stream
// reaches its reader as it comes.
func copyChunked(w *bufio.Writer, br *bufio.Reader, buf []byte, raw bool, flush func() error) error {
	frame := func(s string) {
		if !raw {
			w.WriteString(s)
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return errBadChunk(err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return badRequest("Malformed chunk size.")
		}
		if size == 0 {
			frame("0\r\n")
			// Trailer fields, then the empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return errBadChunk(err)
				}
				if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
					frame("\r\n")
					return nil
				}
				if line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, ':') <= 0 {
					return badRequest("Malformed trailer field.")
				}
				if !raw {
					w.Write(line)
				}
			}
		}
		if !raw {
			var hex [16]byte
			w.Write(strconv.AppendInt(hex[:0], size, 16))
			w.WriteString("\r\n")
		}
		if err := copyN(w, br, size, buf, nil); err != nil {
			return err
		}
		crlf, err := br.ReadSlice('\n')
		if err != nil {
			return errBadChunk(err)
		}
		if !(len(crlf) == 2 && crlf[0] == '\r' || len(crlf) == 1) {
			return badRequest("Malformed chunk.")
		}
		frame("\r\n")
		if flush != nil && br.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func errBadChunk(err error) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return badRequest("Chunk line too long.")
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// chunkSize reads a chunk-size line: hex digits, optional extensions.
func chunkSize(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// copyN copies n bytes from br to w through buf, calling flush whenever
// br has nothing more buffered, so that a stream reaches its reader as it
// comes.
func copyN(w *bufio.Writer, br *bufio.Reader, n int64, buf []byte, flush func() error) error {
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		k, err := br.Read(chunk)
		if k > 0 {
			if _, werr := w.Write(chunk[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
			if br.Buffered() == 0 && flush != nil {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				return io.ErrUnexpectedEOF
			}
			if n > 0 {
				return err
			}
		}
	}
	return nil
}
