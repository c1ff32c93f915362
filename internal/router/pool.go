package router

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Connections to backends are kept open between requests (keep-alive),
// per backend, and reused newest first, so that a busy backend's
// connections stay warm and the rest time out.
const (
	maxIdlePerBackend = 256
	idleTimeout       = 60 * time.Second // an idle backend connection is closed after it
	idleCheck         = 15 * time.Second // how often idle connections are looked at
	staleAfter        = time.Second      // an idle connection older than this is checked before reuse
	dialTimeout       = 5 * time.Second
	bufSize           = 16 << 10
)

// backendConn is a connection to a backend.
type backendConn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// connPool holds a backend's idle connections.
type connPool struct {
	mu     sync.Mutex
	idle   []*backendConn
	closed bool // the backend is retired: connections are not kept
}

var dialer = net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// conn returns an idle connection to b, or a new one; reused says which.
func (b *backend) conn() (c *backendConn, reused bool, err error) {
	for {
		c := b.pool.get()
		if c == nil {
			break
		}
		if time.Since(c.idleAt) < staleAfter || alive(c) {
			return c, true, nil
		}
		c.Close()
	}
	nc, err := dialer.Dial("tcp", b.addr)
	if err != nil {
		return nil, false, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &backendConn{Conn: nc, br: bufio.NewReaderSize(nc, bufSize), bw: bufio.NewWriterSize(nc, bufSize)}, false, nil
}

// alive checks, without blocking, that an idle connection was not closed
// by the backend meanwhile (nor sent anything unasked).
func alive(c *backendConn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := c.br.Peek(1)
	c.SetReadDeadline(time.Time{})
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (p *connPool) get() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
}

// put keeps c for reuse, or closes it.
func (p *connPool) put(c *backendConn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerBackend {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeIdle closes the connections idle for longer than idleTimeout.
func (p *connPool) closeIdle(now time.Time) {
	p.mu.Lock()
	keep := p.idle[:0]
	var old []*backendConn
	for _, c := range p.idle {
		if now.Sub(c.idleAt) > idleTimeout {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

// closeAll closes every idle connection and keeps none from now on.
func (p *connPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}
