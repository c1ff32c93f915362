package static

import (
	"bytes"
	"compress/gzip"
	"container/list"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// Static files are sent compressed where the client takes it, as nginx's
// gzip_static and Caddy's encode do: a file of a compressible type (known
// from its extension, or set by a header rule; never sniffed) and of
// compressMinSize to compressMaxSize bytes is compressed with brotli or
// gzip once, on first request, and the result kept in a cache shared by
// every site the process serves. The cache is keyed by the file's ETag,
// a digest of its content, so that the same file in several images (the
// releases of an app, apps built from one template) is compressed once.
//
// Each encoding is a representation of its own: its ETag is the file's
// with "-br" or "-gz" added, and responses of compressible types carry
// Vary: Accept-Encoding whichever they send. ServeContent answers
// conditional and range requests over the compressed bytes.
const (
	// compressMinSize is the smallest file compressed: below it, the
	// saving is less than a packet.
	compressMinSize = 256
	// compressMaxSize is the largest file compressed; larger ones are
	// sent as they are rather than held in memory.
	compressMaxSize = 8 << 20
	// compressCacheSize bounds the memory the compressed files take.
	compressCacheSize = 64 << 20
	// brotliLevel is moderate: a file is compressed once, but its first
	// request waits for it.
	brotliLevel = 6
	// compressMinSaving is the share of its size a file must lose, in
	// tenths, to be sent compressed; otherwise it is sent as it is.
	compressMinSaving = 1
)

// compressed holds the compressed files of every static site of the
// process.
var compressed = newCompressCache(compressCacheSize)

// serveEncoded sends the open file f compressed, and reports
// whether it did; when not, the caller sends f as it is. The response's
// headers are set but for the encoding's: Content-Type (never sniffed
// here) and Etag, which may differ from tag, the digest of f's content,
// through a header rule of the site.
func serveEncoded(w http.ResponseWriter, r *http.Request, tag string, f *os.File, info os.FileInfo) bool {
	hdr := w.Header()
	// A header rule that sets Content-Encoding serves files compressed
	// in the image.
	if hdr.Get("Content-Encoding") != "" || !compressibleType(hdr.Get("Content-Type")) {
		return false
	}
	addVary(hdr, "Accept-Encoding")
	if size := info.Size(); size < compressMinSize || size > compressMaxSize {
		return false
	}
	enc := acceptedEncoding(r.Header.Values("Accept-Encoding"))
	// ServeContent would send several ranges as a multipart body, which
	// no coding applies to: send the ranges of the file itself.
	if enc == "" || strings.Contains(r.Header.Get("Range"), ",") {
		return false
	}
	data := encodedContent(f, info.Size(), tag, enc)
	if data == nil {
		return false
	}
	hdr.Set("Content-Encoding", enc)
	hdr.Set("Etag", encodedETag(hdr.Get("Etag"), enc))
	http.ServeContent(&encodedWriter{ResponseWriter: w, size: len(data)}, r, info.Name(), info.ModTime(), bytes.NewReader(data))
	return true
}

// encodedContent returns the content of f, of size bytes and digest tag,
// compressed with enc: from the cache, or compressed now. It returns nil
// when compressing saves too little or fails, and f is then to be sent
// as it is. f is left at its start.
func encodedContent(f *os.File, size int64, tag, enc string) []byte {
	key := compressKey{tag: tag, enc: enc}
	if data, ok := compressed.lookup(key); ok {
		return data
	}
	// tag is the digest of f's content that the handler computed (never
	// one the image claims), so one site cannot put its content under the
	// tag of another's file in this cache, shared by every site.
	defer f.Seek(0, io.SeekStart)
	data, err := compressed.get(key, func() ([]byte, error) { return compressFile(f, size, enc) })
	if err != nil {
		return nil
	}
	return data
}

// compressFile reads size bytes from f and compresses them with enc; nil
// if that saves less than compressMinSaving.
func compressFile(f io.Reader, size int64, enc string) ([]byte, error) {
	src := make([]byte, size)
	if _, err := io.ReadFull(f, src); err != nil {
		return nil, fmt.Errorf("compress: read: %w", err)
	}
	var buf bytes.Buffer
	var zw io.WriteCloser
	switch enc {
	case "br":
		zw = brotli.NewWriterLevel(&buf, brotliLevel)
	case "gzip":
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	default:
		return nil, fmt.Errorf("compress: unknown encoding %q", enc)
	}
	if _, err := zw.Write(src); err != nil {
		return nil, fmt.Errorf("compress %s: %w", enc, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress %s: %w", enc, err)
	}
	if buf.Len() > len(src)-len(src)*compressMinSaving/10 {
		return nil, nil
	}
	// The buffer grew by doubling: keep no more than the bytes.
	return bytes.Clone(buf.Bytes()), nil
}

// encodedETag is the entity tag of the representation of a file whose
// tag is tag, compressed with enc.
func encodedETag(tag, enc string) string {
	suffix := "-" + enc
	if enc == "gzip" {
		suffix = "-gz"
	}
	if tag == "" {
		return ""
	}
	if strings.HasSuffix(tag, `"`) && len(tag) >= 2 {
		return tag[:len(tag)-1] + suffix + `"`
	}
	return tag + suffix
}

// encodedWriter completes ServeContent's headers for a compressed body.
// ServeContent leaves out Content-Length of a whole body when
// Content-Encoding is set, for handlers that compress as they write,
// which this one does not; and it keeps Content-Encoding on a 412, which
// has no body.
type encodedWriter struct {
	http.ResponseWriter
	size        int
	wroteHeader bool
}

func (w *encodedWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		switch code {
		case http.StatusOK:
			w.Header().Set("Content-Length", strconv.Itoa(w.size))
		case http.StatusPartialContent, http.StatusNotModified:
		default:
			w.Header().Del("Content-Encoding")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *encodedWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *encodedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// addVary adds field to the Vary header, unless it is there already.
func addVary(h http.Header, field string) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	h.Add("Vary", field)
}

// acceptedEncoding chooses the coding of a response from the request's
// Accept-Encoding fields (RFC 9110, section 12.5.3): "br", "gzip", or ""
// for none. The coding the client weighs most wins, br before gzip at
// equal weight, and either before identity unless the client weighs
// identity more. "*" stands for each coding the field does not name, and
// q=0 refuses a coding. A client that refuses identity as well as both
// codings still gets identity, as most servers do, rather than a 406.
func acceptedEncoding(fields []string) string {
	const unset = -1
	br, gz, id, star := unset, unset, unset, unset
	for _, field := range fields {
		for _, elem := range strings.Split(field, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			q, ok := 1000, true
			for params != "" && ok {
				var param string
				param, params, _ = strings.Cut(params, ";")
				if name, value, _ := strings.Cut(param, "="); strings.EqualFold(strings.TrimSpace(name), "q") {
					q, ok = parseQValue(strings.TrimSpace(value))
				}
			}
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "br":
				br = max(br, q)
			case "gzip", "x-gzip":
				gz = max(gz, q)
			case "identity":
				id = max(id, q)
			case "*":
				star = max(star, q)
			}
		}
	}
	if br == unset {
		br = star
	}
	if gz == unset {
		gz = star
	}
	// Not named, identity is acceptable but preferred to nothing: 0 here
	// loses to any coding accepted.
	if id == unset {
		id = max(star, 0)
	}
	best, enc := gz, "gzip"
	if br >= gz {
		best, enc = br, "br"
	}
	if best <= 0 || best < id {
		return ""
	}
	return enc
}

// parseQValue parses a weight (RFC 9110, section 12.4.2), in thousandths.
func parseQValue(s string) (int, bool) {
	if s == "" || s[0] != '0' && s[0] != '1' {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	rest := s[1:]
	if rest == "" {
		return q, true
	}
	if rest[0] != '.' || len(rest) > 4 {
		return 0, false
	}
	for i, unit := 1, 100; i < len(rest); i, unit = i+1, unit/10 {
		c := rest[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * unit
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// contentType is the type of a file by its name's extension; ""
// if unknown. The web's types of a few compressible files come first:
// Go's own table lacks them, and the host's may have them wrong (the
// desktop's database makes .otf an OpenDocument formula template).
func contentType(name string) string {
	ext := path.Ext(name)
	if ctype, ok := webTypes[strings.ToLower(ext)]; ok {
		return ctype
	}
	return mime.TypeByExtension(ext)
}

var webTypes = map[string]string{
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".jsonld":      "application/ld+json",
	".xhtml":       "application/xhtml+xml",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".ico":         "image/x-icon",
}

// compressibleType reports whether a file of the media type ctype (with
// or without parameters) gets smaller compressed: text, scripts, data,
// SVG, uncompressed fonts and icons; not images, video, archives or
// WOFF fonts, which are compressed already.
func compressibleType(ctype string) bool {
	mt, _, _ := strings.Cut(ctype, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	typ, sub, ok := strings.Cut(mt, "/")
	switch {
	case !ok:
		return false
	case typ == "text", strings.HasSuffix(sub, "+json"), strings.HasSuffix(sub, "+xml"):
		return true
	}
	return compressibleTypes[mt]
}

var compressibleTypes = map[string]bool{
	"application/javascript":        true,
	"application/x-javascript":      true,
	"application/ecmascript":        true,
	"application/json":              true,
	"application/x-ndjson":          true,
	"application/xml":               true,
	"application/wasm":              true,
	"application/yaml":              true,
	"application/x-yaml":            true,
	"application/toml":              true,
	"application/x-sh":              true,
	"application/vnd.ms-fontobject": true,
	"application/x-font-ttf":        true,
	"application/x-font-otf":        true,
	"application/x-font-opentype":   true,
	"application/x-font-truetype":   true,
	"application/font-sfnt":         true,
	"font/ttf":                      true,
	"font/otf":                      true,
	"font/sfnt":                     true,
	"font/collection":               true,
	"image/x-icon":                  true,
	"image/vnd.microsoft.icon":      true,
	"image/bmp":                     true,
}

// compressCache is a least-recently-used cache of compressed files,
// bounded in bytes, which compresses each file once however many
// requests ask for it at the same time.
type compressCache struct {
	max int64 // bytes

	mu sync.Mutex // guards the fields below
	// size is the sum of the entries' costs.
	size    int64
	lru     *list.List // of *compressEntry, most recently used first
	entries map[compressKey]*list.Element
	// pending holds the compressions under way, for the requests that
	// want the same one to wait for it.
	pending map[compressKey]*compressCall
}

type compressKey struct {
	tag string // of the content
	enc string // "br" or "gzip"
}

type compressEntry struct {
	key  compressKey
	data []byte // nil: compressing saves too little
}

// compressEntryOverhead is counted for each entry beside its bytes: the
// cache also remembers files not worth compressing.
const compressEntryOverhead = 128

func (e *compressEntry) cost() int64 {
	return int64(len(e.data) + len(e.key.tag) + len(e.key.enc) + compressEntryOverhead)
}

type compressCall struct {
	done chan struct{} // closed once data and err are set
	data []byte
	err  error
}

// errCompressAborted is what the requests waiting for a compression get
// when it ended in a panic.
var errCompressAborted = errors.New("compress: aborted")

func newCompressCache(bound int64) *compressCache {
	return &compressCache{
		max:     bound,
		lru:     list.New(),
		entries: map[compressKey]*list.Element{},
		pending: map[compressKey]*compressCall{},
	}
}

// lookup returns the entry of key, if the cache has it.
func (c *compressCache) lookup(key compressKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*compressEntry).data, true
}

// get returns the entry of key, calling compute to make it if the cache
// has none and no other call is making it; otherwise it waits for that
// call's result. An error is returned, not kept.
func (c *compressCache) get(key compressKey, compute func() ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*compressEntry).data, nil
	}
	if call, ok := c.pending[key]; ok {
		c.mu.Unlock()
		<-call.done
		return call.data, call.err
	}
	call := &compressCall{done: make(chan struct{}), err: errCompressAborted}
	c.pending[key] = call
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.pending, key)
		if call.err == nil {
			c.add(&compressEntry{key: key, data: call.data})
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.data, call.err = compute()
	return call.data, call.err
}

// add keeps e, evicting the least recently used entries beyond the
// bound. c.mu is held.
func (c *compressCache) add(e *compressEntry) {
	cost := e.cost()
	if cost > c.max {
		return
	}
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.size += cost
	for c.size > c.max {
		c.remove(c.lru.Back())
	}
}

// remove drops an entry. c.mu is held.
func (c *compressCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*compressEntry)
	delete(c.entries, e.key)
	c.size -= e.cost()
}
