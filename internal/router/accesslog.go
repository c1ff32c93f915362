package router

import (
	"context"
	"strconv"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// The access log has one line per request, in the app's logs with source
// router, in the style of Heroku's router:
//
//	method=GET path="/cart?id=1" host=shop.example.com request_id=… fwd="203.0.113.9" dyno=web.1 connect=0ms service=12ms status=200 bytes=1432 protocol=http
//
// Requests never wait for it: each request copies its facts into a
// fixed-size entry and offers it to a buffered channel; one goroutine
// formats and publishes the lines. When the channel is full (the bus is
// slow), entries are dropped and counted, and the count is logged.

// accessQueue is how many entries may wait to be written.
const accessQueue = 8192

// accessEntry is one request's facts, its texts copied out of its
// connection's buffers into one array of its own (each cut at a limit).
type accessEntry struct {
	app, dyno                    string
	status                       int
	bytes                        int64
	connect, service             time.Duration
	method, path, host, rid, fwd span
	used                         int
	text                         [512]byte
}

// span is where a text is in an entry's array.
type span struct{ off, n int }

// put copies b, at most max bytes of it, into the entry.
func (e *accessEntry) put(s *span, b []byte, max int) {
	if len(b) > max {
		b = b[:max]
	}
	s.off = e.used
	s.n = copy(e.text[e.used:], b)
	e.used += s.n
}

func (e *accessEntry) get(s span) []byte { return e.text[s.off : s.off+s.n] }

// logAccess offers an entry to the access log, never waiting.
func (r *Router) logAccess(e *accessEntry) {
	if r.access == nil {
		return
	}
	select {
	case r.access <- *e:
	default:
		r.accessDropped.Add(1)
	}
}

// writeAccessLog publishes the access log's entries until ctx ends.
func (r *Router) writeAccessLog(ctx context.Context) {
	report := time.NewTicker(time.Minute)
	defer report.Stop()
	var line []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-report.C:
			if n := r.accessDropped.Swap(0); n > 0 {
				r.log.Warn("access log lines dropped: the bus is not keeping up", "lines", n)
			}
		case e := <-r.access:
			line = e.format(line[:0])
			r.st.Log(e.app, skiff.SourceRouter, "router", string(line))
		}
	}
}

func (e *accessEntry) format(b []byte) []byte {
	b = append(b, "method="...)
	b = append(b, e.get(e.method)...)
	b = append(b, " path="...)
	b = strconv.AppendQuote(b, string(e.get(e.path)))
	b = append(b, " host="...)
	b = append(b, e.get(e.host)...)
	b = append(b, " request_id="...)
	b = append(b, e.get(e.rid)...)
	b = append(b, " fwd="...)
	b = strconv.AppendQuote(b, string(e.get(e.fwd)))
	b = append(b, " dyno="...)
	if e.dyno == "" {
		b = append(b, "none"...)
	} else {
		b = append(b, e.dyno...)
	}
	b = append(b, " connect="...)
	b = strconv.AppendInt(b, e.connect.Milliseconds(), 10)
	b = append(b, "ms service="...)
	b = strconv.AppendInt(b, e.service.Milliseconds(), 10)
	b = append(b, "ms status="...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " protocol=http"...)
	return b
}
